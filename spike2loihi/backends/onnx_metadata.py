"""The metadata of a spike2loihi ONNX step graph, checked against a small schema before any of it is used.

`check_metadata(proto, where)` returns what the runner needs (config, semantics, the state
spec, the tokenizer) or raises one `BackendError` line naming every problem: required keys,
JSON that parses (bounded in size and depth), a config of positive bounded sizes, valid
semantics, a state spec whose names, dtypes and widths match the graph's inputs and outputs
and whose total size is bounded (`MAX_STATE_ELEMENTS` per batch row).
"""
from __future__ import annotations

import json
import math
import re
from typing import Dict, List, Optional, Tuple

import numpy as np

from spike2loihi.errors import BackendError, one_line

MiB = 1 << 20
MAX_N_LAYER = 10_000
MAX_N_EMBD = 1_000_000
MAX_VOCAB = 1_000_000
MAX_STATE_DIM = 10_000_000                 # one state tensor's width
MAX_STATE_TENSORS_PER_LAYER = 32           # the exports write 7 (float) or 9 (converted)
MAX_STATE_ELEMENTS = 1 << 26               # all state tensors together, per batch row
MAX_META_JSON_CHARS = 1 * MiB              # config, semantics
MAX_STATE_JSON_CHARS = 64 * MiB
MAX_NAME_CHARS = 1024                      # a state tensor's name, the tokenizer's file name
STATE_DTYPES = {"float32": 1, "float64": 11, "int32": 6, "int64": 7}


def _show(text: str, limit: int = 200) -> str:
    """A string from the file, quoted for a one-line message (control characters escaped, cut short)."""
    text = str(text)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _name(text: str, limit: int = 200) -> str:
    """A name from the file as it is when printable, else quoted with its control characters escaped."""
    text = str(text)
    return text if text.isprintable() and len(text) <= limit else _show(text, limit)


# ---------------------------------------------------------------------------
# The metadata schema
# ---------------------------------------------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _json(meta: Dict[str, str], key: str, limit: int, problems: List[str]):
    text = meta.get(key)
    if text is None:
        problems.append(f"{key} missing")
        return None
    if len(text) > limit:
        problems.append(f"{key} of {len(text):,} characters, more than {limit:,}")
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(f"{key} is not JSON ({exc.msg} at character {exc.pos})")
    except RecursionError:
        problems.append(f"{key} is JSON nested too deeply")
    except ValueError as exc:                        # an integer of too many digits, ...
        problems.append(f"{key} is not usable JSON ({one_line(exc)[:100]})")
    return None


def _check_config(cfg, problems: List[str]):
    from spike2loihi.export.onnx import M_CONFIG as key
    from spike2loihi.model.spec import ModelConfig

    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        problems.append(f"{key} is a JSON {type(cfg).__name__}, not an object")
        return None
    ok = True
    bounds = {"n_layer": MAX_N_LAYER, "n_embd": MAX_N_EMBD, "vocab_size": MAX_VOCAB}
    for name, hi in bounds.items():
        v = cfg.get(name)
        if name not in cfg:
            problems.append(f"{key}: {name} missing")
            ok = False
        elif not _is_int(v) or not 1 <= v <= hi:
            problems.append(f"{key}: {name} {_show(json.dumps(v), 40)} is not an integer in 1..{hi:,}")
            ok = False
    extra = sorted(set(cfg) - set(bounds))
    if extra:
        problems.append(f"{key}: unknown key(s) {', '.join(_show(k, 40) for k in extra[:5])}")
        ok = False
    return ModelConfig(**cfg) if ok else None


def _check_semantics(sem, problems: List[str]):
    from spike2loihi.export.onnx import M_SEMANTICS as key
    from spike2loihi.model.spec import SEMANTICS_CHOICES, Semantics

    if sem is None:
        return None
    if not isinstance(sem, dict):
        problems.append(f"{key} is a JSON {type(sem).__name__}, not an object")
        return None
    n = len(problems)
    if sem.get("name") not in SEMANTICS_CHOICES:
        problems.append(f"{key}: name {_show(json.dumps(sem.get('name')), 40)} is not one of "
                        f"{', '.join(SEMANTICS_CHOICES)}")
    if not isinstance(sem.get("binary_embedding"), bool):
        problems.append(f"{key}: binary_embedding is not true or false")
    r = sem.get("rescale_layer")
    if not _is_int(r) or not 0 <= r <= MAX_N_LAYER:
        problems.append(f"{key}: rescale_layer {_show(json.dumps(r), 40)} is not an integer in 0..{MAX_N_LAYER:,}")
    extra = sorted(set(sem) - {"name", "binary_embedding", "rescale_layer"})
    if extra:
        problems.append(f"{key}: unknown key(s) {', '.join(_show(k, 40) for k in extra[:5])}")
    if len(problems) > n:
        return None
    try:
        return Semantics(**sem)
    except (TypeError, ValueError) as exc:
        problems.append(f"{key}: {one_line(exc)}")
        return None


def _check_state(spec, config, graph_io, token: str, problems: List[str]):
    """The state spec: a list of {name, next, dtype, dim, init, ...}, consistent with the config and the
    graph's inputs and outputs, within `MAX_STATE_ELEMENTS`."""
    from spike2loihi.export.onnx import M_STATE as key

    if spec is None:
        return None
    if not isinstance(spec, list) or not spec:
        problems.append(f"{key} is not a non-empty JSON list" if isinstance(spec, list) else
                        f"{key} is a JSON {type(spec).__name__}, not a list")
        return None
    limit = MAX_STATE_TENSORS_PER_LAYER * (config.n_layer if config else MAX_N_LAYER)
    if len(spec) > limit:
        problems.append(f"{key}: {len(spec):,} state tensors, more than {limit:,}")
        return None
    inputs, outputs = graph_io
    dims = {config.n_embd, config.ffn_dim} if config else None
    n = len(problems)
    total = sum(s["dim"] for s in spec if isinstance(s, dict) and _is_int(s.get("dim")) and s["dim"] > 0)
    if total > MAX_STATE_ELEMENTS:
        problems.append(f"{key}: {total:,} state elements per batch row, more than {MAX_STATE_ELEMENTS:,}")
    seen, complete = set(), True
    for i, s in enumerate(spec):
        at = f"{key}[{i}]"
        if len(problems) - n >= 5:
            problems.append(f"{key}: ...")
            complete = False
            break
        if not isinstance(s, dict):
            problems.append(f"{at} is a JSON {type(s).__name__}, not an object")
            continue
        bad = []
        for field in ("name", "next"):
            v = s.get(field)
            if not isinstance(v, str) or not v or len(v) > MAX_NAME_CHARS:
                bad.append(f"{field} is not a name")
        dtype, dim, init = s.get("dtype"), s.get("dim"), s.get("init")
        if dtype not in STATE_DTYPES:
            bad.append(f"dtype {_show(json.dumps(dtype), 40)} is not one of {', '.join(STATE_DTYPES)}")
        if not _is_int(dim) or not 1 <= dim <= MAX_STATE_DIM:
            bad.append(f"dim {_show(json.dumps(dim), 40)} is not an integer in 1..{MAX_STATE_DIM:,}")
        elif dims is not None and dim not in dims:
            bad.append(f"dim {dim} is neither n_embd ({config.n_embd}) nor the ffn width ({config.ffn_dim})")
        if dtype in STATE_DTYPES:
            if dtype.startswith("int"):
                info = np.iinfo(dtype)
                if not _is_int(init) or not info.min <= init <= info.max:
                    bad.append(f"init {_show(json.dumps(init), 40)} is not a {dtype}")
            elif not (_is_int(init) or isinstance(init, float)) or not math.isfinite(init) or \
                    abs(init) > np.finfo(dtype).max:
                bad.append(f"init {_show(json.dumps(init), 40)} is not a finite {dtype}")
        if bad:
            problems.append(f"{at}: {'; '.join(bad)}")
            continue
        name, nxt = s["name"], s["next"]
        if name in seen:
            problems.append(f"{at}: name {_show(name)} listed twice")
            continue
        seen.add(name)
        if name not in inputs:
            problems.append(f"{at}: {_show(name)} is not an input of the graph")
        elif inputs[name][0] != STATE_DTYPES[dtype] or inputs[name][1] not in (None, dim):
            problems.append(f"{at}: the graph's input {_show(name)} is not {dtype} [batch, {dim}]")
        if nxt not in outputs:
            problems.append(f"{at}: next {_show(nxt)} is not an output of the graph")
    extra = sorted(set(inputs) - {token} - seen) if complete and len(problems) == n else []
    if extra:
        problems.append(f"the graph has input(s) {', '.join(_show(x, 60) for x in extra[:3])}"
                        f"{' ...' if len(extra) > 3 else ''} that {key} does not list")
    if len(problems) > n:
        return None
    return [{k: s[k] for k in ("name", "next", "dtype", "dim", "init")} for s in spec]


def _graph_io(proto) -> Tuple[Dict[str, Tuple[int, Optional[int]]], set]:
    """The graph's inputs that are fed (not initializers): name -> (element type, static width or None);
    and its output names."""
    inits = {t.name for t in proto.graph.initializer}
    inputs = {}
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        width = None
        if len(tt.shape.dim) == 2 and tt.shape.dim[1].HasField("dim_value"):
            width = tt.shape.dim[1].dim_value
        inputs[vi.name] = (tt.elem_type, width)
    return inputs, {o.name for o in proto.graph.output}


def _check_metadata(proto, where: str):
    """(metadata, kind, config, semantics, state spec) of a spike2loihi step graph; one BackendError line
    naming the file and every key that is wrong otherwise."""
    from spike2loihi.export import onnx as OX
    from spike2loihi.inputs import MAX_TOKENIZER_BYTES

    meta: Dict[str, str] = {}
    twice = []
    try:
        for p in proto.metadata_props:
            if p.key in meta and p.key.startswith("spike2loihi."):
                twice.append(p.key)
            meta.setdefault(p.key, p.value)
    except Exception as exc:    # a string protobuf cannot decode
        raise BackendError(f"{where}: unreadable metadata ({one_line(exc)[:200]})") from None
    if meta.get(OX.M_FORMAT) != OX.FORMAT:
        raise BackendError(f"{where}: an ONNX model, but not a spike2loihi step graph (no {OX.M_FORMAT} "
                           "metadata); export one with `spike2loihi export MODEL --format onnx -o OUT.onnx`")
    version = meta.get(OX.M_FORMAT_VERSION)
    if version is None or not re.fullmatch(r"[0-9]{1,9}", version) or int(version) < 1:
        shown = "missing" if version is None else f"{_show(version, 40)} is not a version number"
        raise BackendError(f"{where}: bad spike2loihi metadata: {OX.M_FORMAT_VERSION} {shown}")
    if int(version) > OX.FORMAT_VERSION:
        raise BackendError(f"{where}: step-graph format {int(version)} is newer than this spike2loihi reads "
                           f"({OX.FORMAT_VERSION}); upgrade spike2loihi")
    problems: List[str] = [f"{k} given twice" for k in sorted(set(twice))]
    kind = meta.get(OX.M_KIND)
    if kind is None:
        problems.append(f"{OX.M_KIND} missing")
    elif kind not in (OX.KIND_FLOAT, OX.KIND_CONVERTED):
        problems.append(f"{OX.M_KIND} {_show(kind, 40)} is not {OX.KIND_FLOAT} or {OX.KIND_CONVERTED}")
    config = _check_config(_json(meta, OX.M_CONFIG, MAX_META_JSON_CHARS, problems), problems)
    semantics = _check_semantics(_json(meta, OX.M_SEMANTICS, MAX_META_JSON_CHARS, problems), problems)
    inputs, outputs = _graph_io(proto)
    state = _check_state(_json(meta, OX.M_STATE, MAX_STATE_JSON_CHARS, problems), config, (inputs, outputs),
                         OX.TOKEN, problems)
    if OX.TOKEN not in inputs or inputs[OX.TOKEN][0] != 7:
        problems.append(f"the graph has no int64 input {OX.TOKEN!r}")
    missing = [o for o in (OX.LOGITS, OX.ATT_SPIKES, OX.FFN_SPIKES) if o not in outputs]
    if missing:
        problems.append(f"the graph has no output(s) {', '.join(missing)}")
    tok = meta.get(OX.M_TOKENIZER)
    if tok is not None and len(tok.encode("utf-8", "surrogatepass")) > MAX_TOKENIZER_BYTES:
        problems.append(f"{OX.M_TOKENIZER} of more than {MAX_TOKENIZER_BYTES:,} bytes")
    for k in (OX.M_TOKENIZER_NAME, OX.M_TOKENIZER_KIND):
        v = meta.get(k)
        if v is not None and (len(v) > MAX_NAME_CHARS or any(ord(c) < 32 for c in v)):
            problems.append(f"{k} is not a file name")
    if problems:
        raise BackendError(f"{where}: bad spike2loihi metadata: {'; '.join(problems)}")
    return meta, kind, config, semantics, state
