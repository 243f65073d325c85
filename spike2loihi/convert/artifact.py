"""The converted model as one file (`.s2l`): a manifest plus integer and float tensors.

Layout (little endian), magic and version first, as GGUF does:

    b"S2LMODEL"  u32 format version  u32 0  u64 manifest length
    manifest: UTF-8 JSON, keys sorted (the `K_*` constants below)
    zero padding to 64 bytes, then each tensor's bytes, each 64-byte aligned
    sha256 of everything before it (32 bytes)

The manifest's `tensors` list gives each tensor's name, dtype, shape, offset
(from the start of the data section) and size. Loading checks the magic, the
version, every length and the checksum before it trusts anything, so a
corrupt, truncated, foreign or newer file is one clear `ArtifactError` line.
Writing is atomic and deterministic: the same inputs give the same bytes
(nothing time- or host-dependent is stored).
"""
from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from spike2loihi.convert import ir, validate
from spike2loihi.convert.records import Record, RecordError, nodes_to_dict, record_for
from spike2loihi.errors import ArtifactError, InputFileError, PlacementError, one_line

MAGIC = b"S2LMODEL"
FORMAT_VERSION = 1
SUFFIX = ".s2l"
_HEADER = struct.Struct("<8sIIQ")
_ALIGN = 64
_DTYPES = {"int8", "int16", "int32", "int64", "uint8", "float32", "float64"}

# Manifest keys.
K_FORMAT = "format_version"
K_TOOLCHAIN = "toolchain_version"
K_VERSIONS = "versions"              # torch, numpy, lava-nc (if installed)
K_SOURCE = "source"                  # path (absolute), sha256, format, dtypes
K_CONFIG = "config"
K_SEMANTICS = "semantics"
K_TOKENIZER = "tokenizer"            # kind, name; the file's bytes are the tensor TOKENIZER_TENSOR
K_QUANT_CONFIG = "quantization"      # bit widths and options the user chose
K_NODES = "nodes"                    # per chip node: its quantization record (spike2loihi.convert.records)
K_CALIBRATION = "calibration"
K_REPORT = "report"
K_GRAPH = "graph"
K_SCHEDULE = "schedule"              # token period and critical path in time steps (spike2loihi.convert.schedule)
K_TENSORS = "tensors"
TOKENIZER_TENSOR = "tokenizer.file"


def require_host_placement(model: "ConvertedModel", path, what: str) -> None:
    """One line, unless `model` was converted with the host placement (the Lava lowering, the
    planner and the exporters do not cover `--placement chip` yet)."""
    if ir.placement_of(model.graph) != ir.HOST:
        raise PlacementError(f"{path}: {what} supports --placement host models only so far; this model was "
                             f"converted with --placement {ir.placement_of(model.graph)} (run it with --backend "
                             f"emulator or lava-sim, or convert again with --placement host)")


@dataclass
class ConvertedModel:
    """A converted model in memory: the IR, the per-node quantization, the tensors, the rest."""

    graph: ir.Graph
    nodes: Dict[str, Record]                # chip node name -> its quantization record
    tensors: Dict[str, np.ndarray]          # host float params by checkpoint key; chip integers by node
    manifest: dict = field(default_factory=dict)
    path: Optional[str] = None              # the file it was loaded from (messages name it), not stored

    @property
    def config(self) -> dict:
        """The model's config (n_layer, n_embd, vocab_size, ...) as the manifest stores it."""
        return self.manifest[K_CONFIG]

    @property
    def semantics(self):
        """The `spike2loihi.model.spec.Semantics` the model was converted under."""
        from spike2loihi.model.spec import Semantics

        return Semantics(**self.manifest[K_SEMANTICS])

    @property
    def schedule(self):
        """When each op handles a token (`spike2loihi.convert.schedule.Schedule`), as conversion
        recorded it (computed from the graph for artifacts written before offsets were recorded)."""
        from spike2loihi.convert.schedule import Schedule, schedule

        if "_schedule" not in self.__dict__:
            rec = self.manifest.get(K_SCHEDULE) or {}
            self.__dict__["_schedule"] = Schedule.from_dict(rec) if "offsets" in rec else schedule(self.graph)
        return self.__dict__["_schedule"]

    def tokenizer_file(self):
        """(the tokenizer file's bytes, its name) stored in the artifact, or None. The tokenizer itself:
        `converters.tokenizer.artifact_tokenizer(model)` (reading tokenizer formats is the converters')."""
        info = self.manifest.get(K_TOKENIZER)
        if not info:
            return None
        return self.tensors[TOKENIZER_TENSOR].tobytes(), info.get("name", "")


def _json_bytes(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _pad(n: int) -> int:
    return (-n) % _ALIGN


class _HashingWriter:
    def __init__(self, f):
        self.f = f
        self.h = hashlib.sha256()
        self.n = 0

    def write(self, b) -> None:
        self.h.update(b)
        self.f.write(b)
        self.n += len(b)


def write(model: ConvertedModel, f) -> None:
    """Serialise deterministically to a binary file object, streaming (see the module docstring)."""
    manifest = dict(model.manifest)
    manifest[K_FORMAT] = FORMAT_VERSION
    manifest[K_GRAPH] = model.graph.to_dict()
    manifest[K_NODES] = nodes_to_dict(model.nodes)
    entries, arrays, offset = [], [], 0
    for name in sorted(model.tensors):
        arr = np.ascontiguousarray(model.tensors[name])
        dt = arr.dtype.name
        if dt not in _DTYPES:
            raise ArtifactError(f"tensor {name!r}: dtype {dt} cannot be stored")
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        entries.append({"name": name, "dtype": dt, "shape": list(arr.shape), "offset": offset, "nbytes": arr.nbytes})
        arrays.append(arr)
        offset += arr.nbytes + _pad(arr.nbytes)
    manifest[K_TENSORS] = entries
    try:
        mbytes = _json_bytes(manifest)
    except ValueError as exc:  # NaN/inf in the manifest
        raise ArtifactError(f"manifest cannot be written as JSON ({exc})") from None
    out = _HashingWriter(f)
    head = _HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(mbytes)) + mbytes
    out.write(head + b"\0" * _pad(len(head)))
    for arr in arrays:
        out.write(memoryview(arr).cast("B"))
        out.write(b"\0" * _pad(arr.nbytes))
    f.write(out.h.digest())


def to_bytes(model: ConvertedModel) -> bytes:
    import io

    buf = io.BytesIO()
    write(model, buf)
    return buf.getvalue()


def save(model: ConvertedModel, path) -> None:
    """Write atomically: a temporary file beside `path`, then rename."""
    from spike2loihi.fileio import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(model, f)


def from_bytes(data: bytes, source: str = "<bytes>") -> ConvertedModel:
    n = len(data)
    if n < _HEADER.size or data[:8] != MAGIC:
        if n >= 2 and data[:2] == b"PK":
            hint = " (a zip archive: a PyTorch checkpoint? use it as CHECKPOINT, or convert it first)"
        else:
            hint = ""
        raise ArtifactError(f"{source}: not a spike2loihi model file (no {MAGIC.decode()} header){hint}")
    _, version, _, mlen = _HEADER.unpack_from(data)
    if version > FORMAT_VERSION:
        raise ArtifactError(f"{source}: format version {version} is newer than this spike2loihi "
                            f"reads ({FORMAT_VERSION}); upgrade spike2loihi")
    if version < 1:
        raise ArtifactError(f"{source}: format version {version} is not a valid version")
    if n < _HEADER.size + mlen + 32:
        raise ArtifactError(f"{source}: truncated ({n} bytes, the header promises a {mlen}-byte manifest)")
    body, digest = data[:-32], data[-32:]
    if hashlib.sha256(body).digest() != digest:
        raise ArtifactError(f"{source}: checksum mismatch: the file is corrupt or truncated")
    try:
        manifest = json.loads(data[_HEADER.size:_HEADER.size + mlen].decode("utf-8"))
    except RecursionError:
        raise ArtifactError(f"{source}: manifest is not valid (nested too deep)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{source}: manifest is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{source}: manifest is not valid (not an object)")
    try:
        graph = ir.Graph.from_dict(manifest.pop(K_GRAPH))
        raw_nodes = manifest.pop(K_NODES)
        entries = manifest.pop(K_TENSORS)
        if not isinstance(raw_nodes, dict):
            raise ValueError("nodes is not an object")
        unknown = sorted(set(raw_nodes) - set(graph.nodes))
        if unknown:
            raise ValueError(f"node {unknown[0]!r} is not in the graph")
        nodes = {name: record_for(graph.nodes[name], d) for name, d in raw_nodes.items()}
    except RecordError as exc:
        raise ArtifactError(f"{source}: manifest is not valid ({exc})") from None
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise ArtifactError(f"{source}: manifest is not valid ({one_line(exc)[:300]})") from None
    start = _HEADER.size + mlen
    start += _pad(start)
    good, bad = validate.tensor_entries(entries, start, len(body))
    if bad:
        raise ArtifactError(f"{source}: manifest is not valid ({_listed(bad)})")
    tensors = {}
    for e in good:
        arr = np.frombuffer(data, dtype=np.dtype(e["dtype"]).newbyteorder("<"), count=math.prod(e["shape"]),
                            offset=start + e["offset"])
        tensors[e["name"]] = arr.reshape(e["shape"])
    manifest[K_FORMAT] = version
    model = ConvertedModel(graph=graph, nodes=nodes, tensors=tensors, manifest=manifest)
    bad = validate.problems(model)
    if bad:
        raise ArtifactError(f"{source}: not a valid model ({_listed(bad)})")
    return model


def _listed(problems, shown: int = 5) -> str:
    more = len(problems) - shown
    return "; ".join(problems[:shown]) + (f"; and {more} more" if more > 0 else "")


def load(path) -> ConvertedModel:
    """Read and check a `.s2l` file (a regular file: a named pipe or a device is refused unread)."""
    from spike2loihi.inputs import check_input_file

    path = Path(path)
    try:
        st = check_input_file(path)
    except InputFileError as exc:
        hint = ", expected a .s2l model file" if path.is_dir() else ""
        raise ArtifactError(f"{exc}{hint}") from None
    try:
        with open(path, "rb") as f:
            data = f.read(st.st_size + 1)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read ({exc.strerror})") from None
    model = from_bytes(data, str(path))
    model.path = str(path)
    return model


def is_artifact(path) -> bool:
    """True when `path` is a regular file that starts with the .s2l magic (cheap: reads 8 bytes; a named
    pipe or a device is never opened)."""
    from spike2loihi.inputs import regular_file

    if not regular_file(path):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(8) == MAGIC
    except OSError:
        return False


def sha256_file(path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                return h.hexdigest()
            h.update(b)
