"""The process-level emulator: Lava 0.10.0's fixed-point processes, one by one, Lava-free.

It reproduces, integer for integer, what `Loihi2SimCfg(select_tag="fixed_pt")`
computes with `PyDenseModelBitAcc`, `PySparseModelBitAcc`, `PyLifModelBitAcc`
and the fixed-point `RingBuffer` source, including every int32 wrap that comes
from the dtypes Lava's ports and Vars declare (see docs/EMULATOR.md for the
list of quirks), vectorised over neurons and over a batch of runs. It is verified
against Lava by the Lava-simulator tests and tests/fuzz_emulator_vs_lava.py. Its
arithmetic is `spike2loihi.execute.kernels`, which the whole-model emulator
(`spike2loihi.execute.model_emulator`) shares.

Graph: plain dataclass nodes named after the Lava processes they mirror
(`SourceProc`, `DenseProc`, `SparseProc`, `LIFProc`) and named edges `(src, dst)` in a
`ProcessGraph`, NIR-style. Each node has one input and one output port; several edges
into a node are summed, as Lava's InPort does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from spike2loihi.convert.fixed_point import VTH_SHIFT, SignMode, find_violations, raise_if_violations
from spike2loihi.errors import GraphError
from spike2loihi.execute.kernels import (DenseKernel, _int64, _wrap32, dense_graded_output, lava_weights,
                                         lif_reset_due, lif_update)

__all__ = ["SourceProc", "DenseProc", "SparseProc", "LIFProc", "ProcessGraph", "ProcessEmulator", "GraphError",
           "PROBES"]


# ---------------------------------------------------------------------------
# Nodes
# ---------------------------------------------------------------------------
@dataclass
class SourceProc:
    """Lava's fixed-point `RingBuffer` source: sends `data[..., (t-1) % T]` at step t.

    `data` is integer, (n, T) shared by the batch or (batch, n, T).
    """

    data: np.ndarray

    @property
    def n_out(self) -> int:
        return int(np.shape(self.data)[-2])


@dataclass
class DenseProc:
    """`PyDenseModelBitAcc`: weights (n_out, n_in) as passed to Lava's Dense.

    num_message_bits = 0: binary input (any non-zero is a spike);
    > 0: graded (multiply-accumulate in int32). The value itself is not used.
    """

    weights: np.ndarray
    weight_exp: int = 0
    num_weight_bits: int = 8
    sign_mode: Optional[SignMode] = None
    num_message_bits: int = 0

    @property
    def n_out(self) -> int:
        return int(np.shape(self.weights)[0])

    @property
    def n_in(self) -> int:
        return int(np.shape(self.weights)[1])


@dataclass
class SparseProc(DenseProc):
    """`PySparseModelBitAcc`: same arithmetic as Dense, weights held as CSR by Lava.

    The one difference: Lava keeps a Sparse weight matrix in its given dtype
    until the first step, so the sign mode is inferred from the *float* values
    (Dense infers it after the int32 cast, which truncates toward zero).
    Zeros are absent synapses. Pass a dense ndarray.
    """


@dataclass
class LIFProc:
    """`PyLifModelBitAcc` with Lava's defaults (vth=10, everything else 0); with
    `reset_interval` > 0, Lava's `LIFReset` (`PyLifResetModelBitAcc`): u = v = 0 before every
    step t with t % reset_interval == reset_offset % reset_interval (`kernels.lif_reset_due`)."""

    shape: Union[int, Tuple[int]]
    du: int = 0
    dv: int = 0
    vth: int = 10
    bias_mant: Union[int, np.ndarray] = 0
    bias_exp: Union[int, np.ndarray] = 0
    u: Union[int, np.ndarray] = 0
    v: Union[int, np.ndarray] = 0
    reset_interval: int = 0
    reset_offset: int = 0

    @property
    def n_out(self) -> int:
        return int(np.prod(self.shape))


Node = Union[SourceProc, DenseProc, SparseProc, LIFProc]

#: Variables recorded per node type: LIF u, v (after the step, v after reset)
#: and s (spikes sent); Dense/Sparse a_buff (the Var after the step: this
#: step's accumulation, sent next step, *before* the int32 channel wrap) and
#: a_out (what was sent this step, int32); Source s_out.
PROBES = {LIFProc: ("u", "v", "s"), DenseProc: ("a_buff", "a_out"), SparseProc: ("a_buff", "a_out"),
          SourceProc: ("s_out",)}


@dataclass
class ProcessGraph:
    """Named nodes and edges `(src, dst)`; edges into one node are summed."""

    nodes: Dict[str, Node] = field(default_factory=dict)
    edges: List[Tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, node: Node) -> str:
        """Add a node; returns its name so calls can be chained into edges."""
        if name in self.nodes:
            raise GraphError(f"duplicate node name {name!r}")
        self.nodes[name] = node
        return name

    def connect(self, src: str, dst: str) -> None:
        self.edges.append((src, dst))

    def inputs(self, name: str) -> List[str]:
        return [s for s, d in self.edges if d == name]


Counter = Optional[Callable[[str, int], None]]


class _SourceState:
    """Run-time state of a Source: its data as (T, batch, n) int64, column t-1 sent at step t."""

    delays_output = False    # what it sends is seen downstream in the same step
    takes_input = False

    @staticmethod
    def check(name: str, node: SourceProc, batch: int) -> Tuple[List[str], list]:
        d = np.asarray(node.data)
        if d.ndim not in (2, 3) or not np.issubdtype(d.dtype, np.integer):
            return [f"Source {name!r}: data must be an integer (n, T) or (batch, n, T) array"], []
        if d.ndim == 3 and d.shape[0] != batch:
            return [f"Source {name!r}: data batch {d.shape[0]} != batch_size {batch}"], []
        return [], find_violations(f"{name}.data", d, "payload")

    @staticmethod
    def in_width(node: SourceProc) -> int:
        return 0

    def __init__(self, node: SourceProc, batch: int, counter: Counter = None):
        d = np.asarray(node.data).astype(np.int64)
        self.data = np.ascontiguousarray(np.broadcast_to(
            np.moveaxis(d, -1, 0).reshape(d.shape[-1], -1, node.n_out), (d.shape[-1], batch, node.n_out)))

    def send_early(self) -> Optional[np.ndarray]:
        return None

    def step(self, t: int, inp: Optional[np.ndarray]) -> np.ndarray:
        return self.data[(t - 1) % self.data.shape[0]]

    def set(self, name: str, var: str, value, batch: int) -> None:
        raise GraphError(f"cannot set {var!r} on {name!r}")


class _ConnState:
    """Run-time state of one Dense/Sparse node."""

    delays_output = True     # it sends last step's accumulation: one step of delay
    takes_input = True
    sparse = False

    @staticmethod
    def check(name: str, node: DenseProc, batch: int) -> Tuple[List[str], list]:
        problems = [f"{type(node).__name__} {name!r}: weights must be 2-D"] if np.ndim(node.weights) != 2 else []
        violations = find_violations(f"{name}.weights", np.trunc(np.asarray(node.weights, dtype=np.float64)),
                                     "weights")
        for key in ("weight_exp", "num_weight_bits", "num_message_bits"):
            violations += find_violations(f"{name}.{key}", getattr(node, key), key)
        return problems, violations

    @staticmethod
    def in_width(node: DenseProc) -> int:
        return node.n_in

    def __init__(self, node: DenseProc, batch: int, counter: Counter = None):
        self.node = node
        self.counter = counter
        self.graded = int(node.num_message_bits) > 0
        self.exp = int(node.weight_exp)
        self.raw = np.array(node.weights)
        self.kernel: Optional[DenseKernel] = None   # built at the first step
        self.sign_mode: Optional[SignMode] = None
        self.a_buff = np.zeros((batch, node.n_out), dtype=np.int64)

    @property
    def w(self) -> Optional[np.ndarray]:
        return None if self.kernel is None else self.kernel.w

    def set_weights_raw(self, w: np.ndarray) -> None:
        """Lava's Var.set after the first step: int32 store, no clip/truncate."""
        w = np.asarray(w)
        self.kernel = DenseKernel(_wrap32(np.trunc(w).astype(np.int64) if np.issubdtype(w.dtype, np.floating) else w))

    def first_step(self) -> None:
        w, self.sign_mode = lava_weights(self.raw, self.node.sign_mode, self.node.num_weight_bits,
                                         sparse=self.sparse)
        self.kernel = DenseKernel(w)

    def send_early(self) -> np.ndarray:
        """Last step's accumulation, through the int32 channel (sent before anything runs this step)."""
        if self.kernel is None:
            self.first_step()
        out = _wrap32(self.a_buff)
        if self.counter is not None:
            self.counter("send_wrap32", np.count_nonzero(out != self.a_buff))
        return out

    def step(self, t: int, s: np.ndarray) -> None:
        if self.graded:
            self.a_buff = dense_graded_output(self.kernel, s, self.exp, self.counter)
        else:
            # Lava: s_in.astype(bool), column sum in int64 (numpy's sum of int32).
            acc = self.kernel.accumulate_binary(s != 0)
            self.a_buff = acc << self.exp if self.exp > 0 else acc >> -self.exp

    def set(self, name: str, var: str, value, batch: int) -> None:
        if var != "weights":
            raise GraphError(f"cannot set {var!r} on {name!r}")
        if self.sparse:   # Lava rewrites only the stored CSR entries
            raise GraphError(f"setting Sparse weights ({name!r}) is not emulated; rebuild the graph")
        if self.w is None:
            self.raw = np.array(value)
        else:
            self.set_weights_raw(value)


class _SparseState(_ConnState):
    """A Sparse node: Dense's arithmetic; the sign mode inferred from the float weights, no weight set."""

    sparse = True


class _LifState:
    """Run-time state of one LIF node."""

    delays_output = False    # its spikes are seen downstream in the same step
    takes_input = True

    @staticmethod
    def check(name: str, node: LIFProc, batch: int) -> Tuple[List[str], list]:
        problems = []
        if not isinstance(node.shape, int) and len(tuple(node.shape)) != 1:
            problems.append(f"LIF {name!r}: only 1-D shapes are supported, got {node.shape}")
        violations = []
        for key in ("du", "dv", "vth", "bias_mant", "bias_exp", "u", "v"):
            violations += find_violations(f"{name}.{key}", getattr(node, key), key)
        if int(node.reset_interval) < 0:
            problems.append(f"LIF {name!r}: reset_interval {node.reset_interval} must be >= 0 (0: no reset)")
        return problems, violations

    @staticmethod
    def in_width(node: LIFProc) -> int:
        return node.n_out

    def __init__(self, node: LIFProc, batch: int, counter: Counter = None):
        n = node.n_out
        self.node = node
        self.counter = counter
        # Lava Vars: u, v int32; bias_mant, bias_exp int16 (values wrap on store).
        self.u = np.broadcast_to(_wrap32(_int64(node.u)), (batch, n)).copy()
        self.v = np.broadcast_to(_wrap32(_int64(node.v)), (batch, n)).copy()
        self.bias_mant = np.broadcast_to(_int64(node.bias_mant).astype(np.int16).astype(np.int64), (n,)).copy()
        self.bias_exp = np.broadcast_to(_int64(node.bias_exp).astype(np.int16).astype(np.int64), (n,)).copy()
        self.du = int(node.du)
        self.dv = int(node.dv)
        self.vth = int(node.vth)
        self.eff_vth: Optional[int] = None   # Lava scales vth once (isthrscaled)
        self._bias: Optional[np.ndarray] = None

    def effective_bias(self) -> np.ndarray:
        """bias_mant << bias_exp (>> -bias_exp if negative), in int32.

        Lava recomputes it every step; caching it until bias_mant/bias_exp are
        set again gives the same values.
        """
        if self._bias is None:
            bm, be = self.bias_mant, self.bias_exp
            self._bias = _wrap32(np.where(be >= 0, bm << np.maximum(be, 0), bm >> np.maximum(-be, 0)))
        return self._bias

    def send_early(self) -> Optional[np.ndarray]:
        return None

    def step(self, t: int, a: np.ndarray) -> np.ndarray:
        if self.eff_vth is None:
            self.eff_vth = self.vth << VTH_SHIFT
        if lif_reset_due(t, self.node.reset_interval, self.node.reset_offset):
            self.u[...] = 0
            self.v[...] = 0
        self.u, self.v, s = lif_update(self.u, self.v, a, self.du, self.dv, self.eff_vth, self.effective_bias(),
                                       self.counter)
        return s.astype(np.int64)

    def set(self, name: str, var: str, value, batch: int) -> None:
        n = self.node.n_out
        if var in ("u", "v"):
            setattr(self, var, np.broadcast_to(_wrap32(_int64(value)), (batch, n)).copy())
        elif var in ("bias_mant", "bias_exp"):
            setattr(self, var, np.broadcast_to(_int64(value).astype(np.int16).astype(np.int64), (n,)).copy())
            self._bias = None
        elif var == "vth":
            self.vth = int(np.asarray(value).reshape(-1)[0])
        else:
            raise GraphError(f"LIF {name!r} has no settable var {var!r}")


#: Node type -> its run-time state class, which holds the type's behaviour (checks, state, step, set).
STATES = {SourceProc: _SourceState, DenseProc: _ConnState, SparseProc: _SparseState, LIFProc: _LifState}


class ProcessEmulator:
    """Steps a Graph like Lava's synchronous LoihiProtocol, on a batch of runs.

    Per step t: every Source sends data[..., (t-1) % T]; every Dense/Sparse
    first sends its previous accumulation (one step of delay), then receives
    this step's input and accumulates; every LIF receives the sum of its
    inputs, updates and sends spikes in the same step. So a Source or LIF
    feeding a Dense is seen by the Dense's consumers one step later, while a
    Source or LIF feeding a LIF directly is seen in the same step. A cycle must
    pass through a Dense/Sparse, as it must in Lava (else it deadlocks).
    """

    def __init__(self, graph: ProcessGraph, batch_size: int = 1, probes: Optional[Dict[str, Tuple[str, ...]]] = None,
                 count_events: bool = False):
        self.graph = graph
        self.batch = int(batch_size)
        if self.batch < 1:
            raise GraphError(f"batch_size={batch_size} must be >= 1")
        self._validate()
        self.order = self._schedule()
        self._in = {name: graph.inputs(name) for name in graph.nodes}
        self.probes = ({name: PROBES[type(node)] for name, node in graph.nodes.items()}
                       if probes is None else {k: tuple(v) for k, v in probes.items()})
        for name, vars_ in self.probes.items():
            if name not in self.graph.nodes:
                raise GraphError(f"probe on unknown node {name!r}")
            allowed = PROBES[type(self.graph.nodes[name])]
            bad = [v for v in vars_ if v not in allowed]
            if bad:
                raise GraphError(f"node {name!r} has no probe {bad}; it offers {allowed}")
        self.count_events = count_events
        self.events: Dict[str, Dict[str, int]] = {}
        self.reset()

    # -- set-up -------------------------------------------------------------
    def _validate(self) -> None:
        g = self.graph
        problems: List[str] = []
        violations = []
        for name, node in g.nodes.items():
            if type(node) not in STATES:
                problems.append(f"node {name!r} has unsupported type {type(node).__name__}")
                continue
            p, v = STATES[type(node)].check(name, node, self.batch)
            problems += p
            violations += v
        for s, d in g.edges:
            for end in (s, d):
                if end not in g.nodes:
                    problems.append(f"edge ({s!r}, {d!r}) names unknown node {end!r}")
        if not problems:
            for s, d in g.edges:
                dst = g.nodes[d]
                kind = STATES[type(dst)]
                if not kind.takes_input:
                    problems.append(f"edge ({s!r}, {d!r}): a Source has no input")
                    continue
                n_in = kind.in_width(dst)
                if g.nodes[s].n_out != n_in:
                    problems.append(f"edge ({s!r}, {d!r}): width {g.nodes[s].n_out} != {n_in}")
        if problems:
            raise GraphError("; ".join(problems))
        raise_if_violations(violations)

    def _schedule(self) -> List[str]:
        """Topological order of the graph without the (delayed) Dense out-edges."""
        g = self.graph
        deps = {n: set() for n in g.nodes}
        for s, d in g.edges:
            if not STATES[type(g.nodes[s])].delays_output:
                deps[d].add(s)
        order: List[str] = []
        done: set = set()
        pending = list(g.nodes)
        while pending:
            ready = [n for n in pending if deps[n] <= done]
            if not ready:
                raise GraphError(f"cycle without a Dense/Sparse among {sorted(pending)}: Lava would deadlock")
            for n in ready:
                order.append(n)
                done.add(n)
            pending = [n for n in pending if n not in done]
        return order

    def reset(self) -> None:
        """Back to the state Lava builds from the Var inits (time step 0)."""
        self.time_step = 0
        self.state: Dict[str, object] = {}
        for name, node in self.graph.nodes.items():
            if self.count_events:
                self.events[name] = {}
            self.state[name] = STATES[type(node)](node, self.batch, self._counter(name))

    def set(self, name: str, var: str, value) -> None:
        """Lava's `Var.set` between runs, with Lava's consequences.

        LIF `bias_mant`/`bias_exp` take effect next step (Lava rescales the
        bias every step); `vth` only before the first step (scaled once);
        `u`, `v` at once. Dense `weights` set before the first step are still
        clipped and truncated; set later, they are used as given (int32).
        Sparse weights cannot be set (Lava's CSR set is not emulated).
        """
        st = self.state.get(name)
        if st is None:
            raise GraphError(f"cannot set {var!r} on {name!r}")
        st.set(name, var, value, self.batch)

    # -- running ------------------------------------------------------------
    def _count(self, name: str, key: str, n) -> None:
        ev = self.events[name]
        ev[key] = ev.get(key, 0) + int(n)

    def _gather(self, name: str, sent: Dict[str, np.ndarray], width: int) -> np.ndarray:
        """Sum of everything sent to `name` this step, added in int32 like Lava's InPort."""
        srcs = self._in[name]
        if not srcs:
            return np.zeros((self.batch, width), dtype=np.int64)
        if len(srcs) == 1:
            return sent[srcs[0]]
        total = sum(sent[s] for s in srcs)
        out = _wrap32(total)
        if self.count_events:
            self._count(name, "in_sum_wrap32", np.count_nonzero(out != total))
        return out

    def step(self, rec: Optional[Dict[str, Dict[str, np.ndarray]]] = None, row: int = 0) -> None:
        """Advance one time step (recording into `rec[node][var][row]` if given)."""
        self.time_step += 1
        t = self.time_step
        g = self.graph
        sent: Dict[str, np.ndarray] = {}
        # Dense/Sparse send last step's accumulation first (int32 channel).
        for name, st in self.state.items():
            out = st.send_early()
            if out is not None:
                sent[name] = out
        for name in self.order:
            st = self.state[name]
            inp = self._gather(name, sent, st.in_width(g.nodes[name])) if st.takes_input else None
            out = st.step(t, inp)
            if out is not None:
                sent[name] = out
        if rec is not None:
            for name, vars_ in self.probes.items():
                st = self.state.get(name)
                for var in vars_:
                    if var in ("u", "v"):
                        val = getattr(st, var)
                    elif var == "a_buff":
                        val = st.a_buff
                    else:  # s, a_out, s_out: what was sent this step
                        val = sent[name]
                    rec[name][var][row] = val

    def _counter(self, name: str):
        return (lambda key, n: self._count(name, key, n)) if self.count_events else None

    def run(self, num_steps: int) -> Dict[str, Dict[str, np.ndarray]]:
        """Run `num_steps` more steps; returns probes[node][var], int64 (steps, batch, n)."""
        rec = {name: {var: np.zeros((num_steps, self.batch, self.graph.nodes[name].n_out), dtype=np.int64)
                      for var in vars_} for name, vars_ in self.probes.items()}
        for i in range(num_steps):
            self.step(rec, i)
        return rec
