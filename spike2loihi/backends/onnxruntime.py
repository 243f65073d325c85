"""The `onnxruntime` backend: an exported step graph (`spike2loihi export --format onnx`) on the CPU.

The file says everything the runner needs in its metadata (`spike2loihi.export.onnx.M_*`):
config, semantics, the state tensors with their dtype, width and initial value, and the
tokenizer. The state is a dict of numpy arrays named like the graph's state inputs
(`blocks.0.att.wkv/aa`, ...); `step` feeds it with the token and replaces each entry by
its `.next` output, in place, as the other backends update theirs.

A `.onnx` file is read as hostile input (`spike2loihi.inputs`), and onnxruntime never opens
a file itself:

* the model must be a regular file of at most `MAX_MODEL_BYTES` (a named pipe or a device
  is refused unread); its bytes are read once and parsed with the `onnx` package (protobuf
  only) before onnxruntime sees anything;
* every tensor stored as *external data* (initializers, sparse initializers, tensors in node
  attributes, in subgraphs, in model-local functions and training graphs) must name a
  relative `location` that resolves, symlinks followed, inside the model's own folder, to a
  regular file that holds `offset` + `length`; spike2loihi reads those bytes itself and puts
  them into the model, so that onnxruntime is given one protobuf with no path in it (no
  `/etc/passwd`, no `../`, no `*/_ORT_MEM_ADDR_/*` address: such a model is one
  `BackendError` line naming the tensor and the location);
* the metadata is checked against a small schema (`_check_metadata`) before any of it is
  used: every problem is named in one line, and the state it implies is bounded
  (`MAX_STATE_ELEMENTS` per batch row);
* onnxruntime's own logging is turned down to fatal messages (`ORT_LOG_SEVERITY`, on the default
  logger, the session and every run): at severity 3 (error) it still prints a coloured line for
  each error that it also raises, and every error it raises becomes our one `BackendError` line.

Sessions run with onnxruntime's default graph optimizations (constant folding turns the
int8 weight mantissas into the MatMul's dtype once) and one intra-op thread: a step is a
chain of small ops, which more threads only slow down.
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from spike2loihi.backends.onnx_metadata import (MAX_N_EMBD, MAX_N_LAYER, MAX_STATE_ELEMENTS,  # noqa: F401
                                                MAX_VOCAB, STATE_DTYPES, _check_metadata, _name, _show)
from spike2loihi import ort_fork
from spike2loihi.errors import BackendError, InputFileError

SUFFIX = ".onnx"

GiB = 1 << 30
MiB = 1 << 20
#: A protobuf message (the .onnx file, and the model handed to onnxruntime once its external
#: data is read in) cannot exceed 2 GiB; spike2loihi's exporter refuses larger models.
MAX_MODEL_BYTES = 2 * GiB - 1
#: Bounds on the metadata (`spike2loihi.export.onnx.M_*`).
#: State dtypes and their ONNX element types (TensorProto.FLOAT, DOUBLE, INT32, INT64).
#: onnxruntime's log severity: 0 verbose .. 3 error, 4 fatal. Its errors are raised (and become one line).
ORT_LOG_SEVERITY = 4


def is_onnx(path) -> bool:
    """ONNX files are recognised by their suffix (protobuf has no magic number)."""
    return str(path).lower().endswith(SUFFIX)


def _ort_message(exc: Exception) -> str:
    """onnxruntime's message without its error-code prefix and C++ source location."""
    text = str(exc).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    m = re.search(r"\S+\.(?:cc|h|cpp):\d+ (?:\S+\(.*?\) )?(.*)$", text)
    return m.group(1) if m and m.group(1) else text


# ---------------------------------------------------------------------------
# Reading the file: a regular file, bounded, parsed by protobuf only
# ---------------------------------------------------------------------------
def _open_regular(path: str, flags: int = 0) -> Tuple[int, os.stat_result]:
    """An fd on `path` opened without blocking (a FIFO swapped in after a stat is not waited on) and its
    fstat, which must be a regular file; OSError otherwise (the caller names it)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(0, "not a regular file") if stat.S_ISDIR(st.st_mode) else \
                OSError(0, "not a regular file")
        os.set_blocking(fd, True)
        return fd, st
    except BaseException:
        os.close(fd)
        raise


def _pread_all(fd: int, length: int, offset: int) -> bytes:
    chunks, done = [], 0
    while done < length:
        chunk = os.pread(fd, min(length - done, 64 * MiB), offset + done)
        if not chunk:
            break
        chunks.append(chunk)
        done += len(chunk)
    return b"".join(chunks)


def _read_model_file(path: Path) -> bytes:
    from spike2loihi.inputs import check_input_file

    try:
        check_input_file(path, "", max_bytes=MAX_MODEL_BYTES)
    except InputFileError as exc:
        hint = ", expected an .onnx model file" if str(exc).endswith("is a directory") else ""
        raise BackendError(f"{exc}{hint}") from None
    try:
        fd, st = _open_regular(str(path))
    except OSError as exc:
        raise BackendError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        data = _pread_all(fd, min(st.st_size, MAX_MODEL_BYTES) + 1, 0)
    except OSError as exc:
        raise BackendError(f"{path}: cannot read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_MODEL_BYTES:   # it grew after the check
        raise BackendError(f"{path}: more than the {MAX_MODEL_BYTES:,} bytes an ONNX model may have")
    return data


def _parse(data: bytes, where: str):
    import onnx

    try:
        return onnx.load_model_from_string(data)
    except Exception as exc:   # google.protobuf.message.DecodeError, RecursionError (nesting), ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BackendError(f"{where}: onnxruntime cannot load it (not an ONNX protobuf: {first})") from None


# ---------------------------------------------------------------------------
# External data: confined to the model's folder, read here, put into the model
# ---------------------------------------------------------------------------
def _all_tensors(proto) -> List[Tuple[object, str]]:
    """Every TensorProto of the model with a label: initializers, sparse initializers, node attributes
    (t, tensors, sparse_tensor(s)), subgraphs at any depth, model-local functions, training graphs."""
    out: List[Tuple[object, str]] = []
    graphs = [(proto.graph, "")]
    nodes: List[Tuple[object, str]] = []
    for f in proto.functions:
        nodes.extend((n, f"function {_name(f.name)}: ") for n in f.node)
    for i, ti in enumerate(proto.training_info):
        graphs.append((ti.initialization, f"training_info[{i}].initialization: "))
        graphs.append((ti.algorithm, f"training_info[{i}].algorithm: "))

    def sparse(sp, label):
        out.append((sp.values, f"{label} (values)"))
        out.append((sp.indices, f"{label} (indices)"))

    while graphs or nodes:
        if graphs:
            g, ctx = graphs.pop()
            for t in g.initializer:
                out.append((t, f"{ctx}initializer {_name(t.name)}"))
            for sp in g.sparse_initializer:
                sparse(sp, f"{ctx}sparse initializer {_name(sp.values.name)}")
            nodes.extend((n, ctx) for n in g.node)
            continue
        n, ctx = nodes.pop()
        node = _name(n.name or n.op_type)
        for a in n.attribute:
            label = f"{ctx}attribute {_name(a.name)} of node {node}"
            if a.HasField("t"):
                out.append((a.t, label + (f" (tensor {_name(a.t.name)})" if a.t.name else "")))
            for i, t in enumerate(a.tensors):
                out.append((t, f"{label}[{i}]"))
            if a.HasField("sparse_tensor"):
                sparse(a.sparse_tensor, label)
            for i, sp in enumerate(a.sparse_tensors):
                sparse(sp, f"{label}[{i}]")
            if a.HasField("g"):
                graphs.append((a.g, f"{ctx}subgraph {_name(a.name)} of node {node}: "))
            for i, g in enumerate(a.graphs):
                graphs.append((g, f"{ctx}subgraph {_name(a.name)}[{i}] of node {node}: "))
    return out


def _uses_external_data(t) -> bool:
    from onnx import TensorProto

    return t.data_location == TensorProto.EXTERNAL or len(t.external_data) > 0


_DATA_FIELDS = ("raw_data", "float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")


def _external_entry(t, label: str, folder: Optional[str], where: str) -> Tuple[str, int, Optional[int]]:
    """(resolved path, offset, length or None) of a tensor's external data, checked."""
    entries: Dict[str, str] = {}
    for e in t.external_data:
        if e.key in entries:
            raise BackendError(f"{where}: {label}: external data key {_show(e.key)} given twice")
        entries[e.key] = e.value
    location = entries.get("location", "")
    loc = _show(location)
    if not location:
        raise BackendError(f"{where}: {label}: external data without a location")
    if folder is None:
        raise BackendError(f"{where}: {label}: external data at {loc}, but the model was given as bytes, not as "
                           "a file in a folder; give the .onnx file's path")
    if "\x00" in location or os.path.isabs(location):
        raise BackendError(f"{where}: {label}: external data at {loc}: an absolute path; external data must be "
                           "a relative path inside the model's folder")
    real = os.path.realpath(os.path.join(folder, location))
    if real == folder or os.path.commonpath([folder, real]) != folder:
        raise BackendError(f"{where}: {label}: external data at {loc} resolves to {_show(real)}, outside the "
                           f"model's folder {_show(folder)}")
    nums = {}
    for key in ("offset", "length"):
        if key in entries:
            v = entries[key]
            if not re.fullmatch(r"[0-9]{1,19}", v):
                raise BackendError(f"{where}: {label}: external data at {loc}: {key} {_show(v)} is not a "
                                   "non-negative integer")
            nums[key] = int(v)
    return real, nums.get("offset", 0), nums.get("length")


def _inline_external_data(proto, folder: Optional[str], where: str) -> bool:
    """Check every external-data tensor and replace its reference by the bytes it names; True if any."""
    from onnx import TensorProto

    found = [(t, label) for t, label in _all_tensors(proto) if _uses_external_data(t)]
    if not found:
        return False
    plans = []
    total = 0
    for t, label in found:
        real, offset, length = _external_entry(t, label, folder, where)
        loc = _show({e.key: e.value for e in t.external_data}["location"])
        try:
            st = os.stat(real)
        except OSError as exc:
            raise BackendError(f"{where}: {label}: external data at {loc}: cannot read ({exc.strerror})") from None
        if not stat.S_ISREG(st.st_mode):
            raise BackendError(f"{where}: {label}: external data at {loc} is not a regular file")
        end = st.st_size if length is None else offset + length
        if offset > st.st_size or end > st.st_size:
            raise BackendError(f"{where}: {label}: external data at {loc}: offset {offset:,} + length "
                               f"{end - offset:,} lies past the end of the file ({st.st_size:,} bytes)")
        total += end - offset
        if total > MAX_MODEL_BYTES:
            raise BackendError(f"{where}: external data of more than {MAX_MODEL_BYTES:,} bytes in all: this backend "
                               "loads a model whole, within protobuf's 2 GiB")
        plans.append((t, label, loc, real, offset, end - offset))
    for t, label, loc, real, offset, length in plans:
        try:    # O_NOFOLLOW: the last component was resolved above; a symlink put there since is refused
            fd, st = _open_regular(real, getattr(os, "O_NOFOLLOW", 0))
            try:
                data = _pread_all(fd, length, offset) if offset + length <= st.st_size else b""
            finally:
                os.close(fd)
        except OSError as exc:
            raise BackendError(f"{where}: {label}: external data at {loc}: cannot read "
                               f"({exc.strerror or exc})") from None
        if len(data) != length:
            raise BackendError(f"{where}: {label}: external data at {loc} changed while it was read")
        for f in _DATA_FIELDS:
            t.ClearField(f)
        del t.external_data[:]
        t.data_location = TensorProto.DEFAULT
        t.raw_data = data
    if proto.ByteSize() > MAX_MODEL_BYTES:
        raise BackendError(f"{where}: with its external data, more than the {MAX_MODEL_BYTES:,} bytes this backend "
                           "loads (protobuf's 2 GiB)")
    return True


class OnnxRuntimeBackend:
    """`initial_state()` / `step(token, state)` over an exported .onnx step graph."""

    name = "onnxruntime"

    def __init__(self, model: Union[str, Path, bytes], threads: int = 1):
        import onnxruntime as ort

        from spike2loihi.export import onnx as OX

        if isinstance(model, (bytes, bytearray, memoryview)):
            where, folder, data = "the ONNX model", None, bytes(model)
            if len(data) > MAX_MODEL_BYTES:
                raise BackendError(f"{where}: more than the {MAX_MODEL_BYTES:,} bytes an ONNX model may have")
        else:
            path = Path(model)
            where = str(path)
            data = _read_model_file(path)
            folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
        proto = _parse(data, where)
        if _inline_external_data(proto, folder, where):
            data = proto.SerializeToString()
        self.metadata, self.kind, self.config, self.semantics, self.state_spec = _check_metadata(proto, where)
        del proto
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.log_severity_level = ORT_LOG_SEVERITY
        ort.set_default_logger_severity(ORT_LOG_SEVERITY)   # what is logged outside the session's logger
        self._run_options = ort.RunOptions()
        self._run_options.log_severity_level = ORT_LOG_SEVERITY
        try:
            self.session = ort_fork.session(lambda: ort.InferenceSession(data, so,
                                                                         providers=["CPUExecutionProvider"]))
        except Exception as exc:  # onnxruntime raises its own pybind classes (Fail, InvalidProtobuf, ...)
            raise BackendError(f"{where}: onnxruntime cannot load it ({_ort_message(exc)})") from None
        self.where = where
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._ox = OX

    def tokenizer(self):
        """The tokenizer stored in the file, or None."""
        OX = self._ox
        text = self.metadata.get(OX.M_TOKENIZER)
        if not text:
            return None
        from converters.tokenizer import tokenizer_from_bytes

        name = self.metadata.get(OX.M_TOKENIZER_NAME) or f"{self.where} (its tokenizer)"
        return tokenizer_from_bytes(text.encode("utf-8", "surrogatepass"), name=name)

    def initial_state(self, batch: int = 1) -> Dict[str, np.ndarray]:
        return {s["name"]: np.full((batch, s["dim"]), s["init"], dtype=np.dtype(s["dtype"])) for s in self.state_spec}

    def run(self, tokens: Sequence[int], state: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """One step for a batch of tokens; updates `state` in place; returns every output by name."""
        feeds = {self._ox.TOKEN: np.asarray(tokens, dtype=np.int64).reshape(-1)}
        feeds.update({s["name"]: state[s["name"]] for s in self.state_spec})
        try:
            outs = dict(zip(self.output_names, self.session.run(None, feeds, self._run_options)))
        except Exception as exc:   # a graph that loads but cannot run (shapes, indices out of range, ...)
            raise BackendError(f"{self.where}: onnxruntime cannot run a step ({_ort_message(exc)})") from None
        for s in self.state_spec:
            nxt, old = outs[s["next"]], state[s["name"]]
            if not isinstance(nxt, np.ndarray) or nxt.shape != old.shape or nxt.dtype != old.dtype:
                raise BackendError(f"{self.where}: output {s['next']!r} is not {s['dtype']} "
                                   f"{list(old.shape)} like its state {s['name']!r}")
        for s in self.state_spec:
            state[s["name"]] = outs[s["next"]]
        return outs

    def step(self, token: int, state: Dict[str, np.ndarray]):
        import torch

        from spike2loihi.model.reference import StepOutput

        OX = self._ox
        outs = self.run([int(token)], state)
        cfg = self.config
        want = {OX.LOGITS: (1, cfg.vocab_size), OX.ATT_SPIKES: (1, cfg.n_layer, cfg.n_embd),
                OX.FFN_SPIKES: (1, cfg.n_layer, cfg.n_embd)}
        for name, shape in want.items():
            got = outs[name]
            if not isinstance(got, np.ndarray) or got.shape != shape or got.dtype != np.float32:
                raise BackendError(f"{self.where}: output {name!r} is not float32 {list(shape)} (the config's "
                                   f"shape) but {getattr(got, 'dtype', type(got).__name__)} "
                                   f"{list(getattr(got, 'shape', ()))}")
        if not np.isfinite(outs[OX.LOGITS]).all():
            raise BackendError(f"{self.where}: the model computed logits that are NaN or infinite")
        return StepOutput(torch.from_numpy(outs[OX.LOGITS][0].copy()), torch.from_numpy(outs[OX.ATT_SPIKES][0].copy()),
                          torch.from_numpy(outs[OX.FFN_SPIKES][0].copy()))
