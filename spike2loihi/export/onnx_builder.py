"""The generic ONNX graph builder of the exporter (`spike2loihi.export.onnx`), knowing nothing of SpikeGPT.

`_OnnxGraph` collects nodes, initializers, inputs and outputs; every node it adds gets the
doc string and metadata of the current `scope` (the IR op it belongs to), names are fresh
per scope, constants are shared, and the opset-dependent spellings (ReduceMax, Split, ...)
live here. `numpy_mean_last` spells numpy's pairwise float32 summation out in ONNX Adds
(bit for bit; `numpy_pairwise_mean` is the same sum in numpy scalars, for tests).

`ExportError` lives here, at the bottom of the exporter's modules, and is re-exported by
`spike2loihi.export.onnx`.
"""
from __future__ import annotations

import contextlib
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from spike2loihi.errors import ExportError

_ONNX_DTYPE = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
               np.dtype(np.int64): TensorProto.INT64, np.dtype(np.int8): TensorProto.INT8}


# ---------------------------------------------------------------------------
# The ONNX graph under construction
# ---------------------------------------------------------------------------
class _OnnxGraph:
    """Nodes, initializers, inputs and outputs; every node gets the current scope's doc and metadata."""

    def __init__(self, opset: int):
        self.opset = int(opset)
        self.nodes: List[onnx.NodeProto] = []
        self.inits: Dict[str, onnx.TensorProto] = {}
        self.inputs: List[onnx.ValueInfoProto] = []
        self.outputs: List[onnx.ValueInfoProto] = []
        self._used: set = set()
        self._scope: Tuple[str, str, Dict[str, str]] = ("step", "", {})
        self._consts: Dict[tuple, str] = {}

    # -- scopes and names ----------------------------------------------------
    @contextlib.contextmanager
    def scope(self, key: str, doc: str, meta: Dict[str, str]) -> Iterator[None]:
        saved = self._scope
        self._scope = (key, doc, meta)
        try:
            yield
        finally:
            self._scope = saved

    def fresh(self, hint: str) -> str:
        base = f"{self._scope[0]}/{hint}"
        name, k = base, 1
        while name in self._used:
            name, k = f"{base}_{k}", k + 1
        self._used.add(name)
        return name

    # -- tensors -------------------------------------------------------------
    def init(self, name: str, array: np.ndarray) -> str:
        """An initializer (a parameter), stored once under `name`."""
        if name not in self.inits:
            arr = np.ascontiguousarray(array)
            if arr.dtype not in _ONNX_DTYPE:
                raise ExportError(f"initializer {name}: dtype {arr.dtype} has no ONNX form here")
            self.inits[name] = numpy_helper.from_array(arr, name)
            self._used.add(name)
        return name

    def const(self, value, dtype=np.float32) -> str:
        """A shared constant: a scalar, or a 1-D int64 list (shapes, axes, split sizes)."""
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            shown = repr(arr.tolist()).replace(" ", "")
            name = f"const:{arr.dtype.name}:{shown}"
            self._consts[key] = self.init(name, arr)
        return self._consts[key]

    def f32(self, value: float) -> str:
        return self.const(np.float32(value), np.float32)

    def i64(self, value) -> str:
        return self.const(value, np.int64)

    # -- nodes ---------------------------------------------------------------
    def op(self, op_type: str, inputs: Sequence[str], n_out: int = 1, hint: str = "", **attrs):
        outs = [self.fresh(hint or op_type) for _ in range(n_out)]
        self._add(helper.make_node(op_type, list(inputs), outs, name=self.fresh(f"{op_type}#node"), **attrs))
        return outs[0] if n_out == 1 else outs

    def identity(self, x: str, name: str) -> str:
        """`name` (a graph output) = x."""
        self._add(helper.make_node("Identity", [x], [name], name=self.fresh("Identity#node")))
        return name

    def _add(self, node: onnx.NodeProto) -> None:
        _, doc, meta = self._scope
        node.doc_string = doc
        for k, v in meta.items():
            e = node.metadata_props.add()
            e.key, e.value = k, str(v)
        self.nodes.append(node)

    # -- opset-dependent helpers -------------------------------------------------
    def reduce_max_last(self, x: str) -> str:
        if self.opset >= 18:
            return self.op("ReduceMax", [x, self.i64([-1])], keepdims=1)
        return self.op("ReduceMax", [x], axes=[-1], keepdims=1)

    def split(self, x: str, axis: int, sizes: Sequence[int]) -> List[str]:
        if len(sizes) == 1:
            return [x]
        return self.op("Split", [x, self.i64(list(sizes))], n_out=len(sizes), axis=axis)

    def slice(self, x: str, start: int, end: int, axis: int) -> str:
        return self.op("Slice", [x, self.i64([start]), self.i64([end]), self.i64([axis])])

    def reshape(self, x: str, shape: Sequence[int]) -> str:
        return self.op("Reshape", [x, self.i64(list(shape))])

    def unsqueeze(self, x: str, axis: int) -> str:
        return self.op("Unsqueeze", [x, self.i64([axis])])

    def cast(self, x: str, to: int) -> str:
        return self.op("Cast", [x], to=to)

    # -- numpy's pairwise sum ----------------------------------------------------
    def numpy_mean_last(self, x: str, n: int) -> str:
        """`x.mean(axis=-1, keepdims=True, dtype=float32)` of a float32 (batch, n), bit for bit.

        numpy sums a contiguous row pairwise (`pairwise_sum` in loops_utils.h): rows
        of <= 128 with 8 accumulators, r[j] += x[i + j] for i = 8, 16, ..., then
        ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), then the rest one by one
        (rows of < 8: one by one); longer rows split at n/2 rounded down to a
        multiple of 8, each half summed so. Then the sum is divided by n in float32.
        Blocks of one size are summed together (one batched Add per step).
        """
        plan = _pairwise_plan(0, n)
        leaves = _plan_leaves(plan)
        sums: Dict[int, str] = {}           # leaf start -> (batch, 1, 1)
        by_size: Dict[int, List[int]] = {}
        for start, size in leaves:
            by_size.setdefault(size, []).append(start)
        for size, starts in by_size.items():
            nl = len(starts)
            if nl == 1:
                group = self.unsqueeze(self.slice(x, starts[0], starts[0] + size, 1), 1)
            elif starts == list(range(0, nl * size, size)) and nl * size == n:
                group = self.reshape(x, [0, nl, size])
            else:
                idx = np.asarray([list(range(s, s + size)) for s in starts], dtype=np.int64)
                group = self.op("Gather", [x, self.i64(idx)], axis=1)
            res = self._block_sums(group, nl, size)           # (batch, nl, 1)
            for start, part in zip(starts, self.split(res, 1, [1] * nl)):
                sums[start] = part

        def combine(p) -> str:
            if p[0] == "leaf":
                return sums[p[1]]
            return self.op("Add", [combine(p[1]), combine(p[2])])

        total = self.reshape(combine(plan), [0, 1])
        return self.op("Div", [total, self.f32(n)])

    def _block_sums(self, g: str, nl: int, size: int) -> str:
        """Pairwise-sum leaves (size <= 128) of g (batch, nl, size) -> (batch, nl, 1)."""
        if size < 8:
            parts = self.split(g, 2, [1] * size)
            res = parts[0]                        # 0 + x0 == x0
            for p in parts[1:]:
                res = self.op("Add", [res, p])
            return res
        m = size - size % 8
        body = g if m == size else self.slice(g, 0, m, 2)
        chunks = self.split(self.reshape(body, [0, nl, m // 8, 8]), 2, [1] * (m // 8))
        r = chunks[0]
        for c in chunks[1:]:
            r = self.op("Add", [r, c])
        lane = self.split(r, 3, [1] * 8)
        add = lambda a, b: self.op("Add", [a, b])  # noqa: E731
        res = add(add(add(lane[0], lane[1]), add(lane[2], lane[3])), add(add(lane[4], lane[5]), add(lane[6], lane[7])))
        res = self.reshape(res, [0, nl, 1])
        for i in range(m, size):
            res = add(res, self.slice(g, i, i + 1, 2))
        return res


def _pairwise_plan(start: int, n: int):
    if n <= 128:
        return ("leaf", start, n)
    n2 = n // 2
    n2 -= n2 % 8
    return ("add", _pairwise_plan(start, n2), _pairwise_plan(start + n2, n - n2))


def _plan_leaves(p) -> List[Tuple[int, int]]:
    if p[0] == "leaf":
        return [(p[1], p[2])]
    return _plan_leaves(p[1]) + _plan_leaves(p[2])


def numpy_pairwise_mean(x: np.ndarray) -> np.ndarray:
    """The same summation in numpy float32 scalars (what the ONNX nodes compute; for tests)."""
    F = np.float32

    def pw(a):
        n = len(a)
        if n <= 128:
            if n < 8:
                r = F(0)
                for v in a:
                    r = F(r + v)
                return r
            acc = [F(v) for v in a[:8]]
            i = 8
            while i < n - n % 8:
                for j in range(8):
                    acc[j] = F(acc[j] + a[i + j])
                i += 8
            res = F(F(F(acc[0] + acc[1]) + F(acc[2] + acc[3])) + F(F(acc[4] + acc[5]) + F(acc[6] + acc[7])))
            for k in range(i, n):
                res = F(res + a[k])
            return res
        n2 = n // 2
        n2 -= n2 % 8
        return F(pw(a[:n2]) + pw(a[n2:]))

    x = np.asarray(x, dtype=F)
    return np.asarray([[F(pw(row) / F(x.shape[-1]))] for row in x.reshape(-1, x.shape[-1])],
                      dtype=F).reshape(x.shape[:-1] + (1,))
