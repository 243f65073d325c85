"""The schema of a loaded artifact, checked as hostile: every violation found, at load, before any use.

A `.s2l` file's framing and checksum prove only that it was written whole; anyone can
rewrite the manifest and recompute the checksum. So `spike2loihi.convert.artifact` checks
the manifest here before it trusts it:

* `tensor_entries`: each tensor entry's name, dtype (a fixed set), shape (non-negative,
  bounded) and byte range (its size matches its shape; it lies inside the data region);
* `problems`, on the parsed model: the config and semantics are valid and rebuild exactly the
  stored graph (ops, widths, parameters, edges, placements); every chip node has its record
  and nothing else has one; each record's values lie inside Lava's ranges (the fixed-point
  checks the converter makes, re-run on every load); the tensors each node names exist with
  the dtype and shape the node implies, and weight mantissas fit their bits; the schedule is
  the graph's.

All problems are returned together; the loader reports them in one line.
"""
from __future__ import annotations

import math
from typing import Dict, List, Tuple

import numpy as np

from spike2loihi.convert import ir
from spike2loihi.convert.fixed_point import LIMITS, MAX_MESSAGE_BITS, find_violations
from spike2loihi.convert.records import (CHIP_GRID, DYNAMIC, STATIC, DenseParams, GridParams, LayerNormParams,
                                         LifParams, ProductParams, ResidualParams, SigmoidParams, WkvParams)

DTYPES = ("int8", "int16", "int32", "int64", "uint8", "float32", "float64")
MAX_DIM = 1 << 24                 # any one axis
MAX_ELEMENTS = 1 << 34            # any one tensor
MAX_LAYERS, MAX_WIDTH, MAX_VOCAB = 4096, 1 << 16, 1 << 21
MAX_SHIFT = 62                    # any shift in the integer datapaths (int64 arithmetic)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def tensor_entries(entries, data_start: int, data_end: int) -> Tuple[List[dict], List[str]]:
    """(valid entries, problems) of the manifest's tensor list, checked before any array is made."""
    out, bad = [], []
    if not isinstance(entries, list):
        return [], [f"tensors is a {type(entries).__name__}, not a list"]
    seen = set()
    for i, e in enumerate(entries):
        where = f"tensor #{i}"
        if not isinstance(e, dict):
            bad.append(f"{where} is not an object")
            continue
        name = e.get("name")
        if not isinstance(name, str) or not name:
            bad.append(f"{where} has no name")
            continue
        where = f"tensor {name!r}"
        if name in seen:
            bad.append(f"{where} appears twice")
            continue
        seen.add(name)
        dtype, shape, offset, nbytes = e.get("dtype"), e.get("shape"), e.get("offset"), e.get("nbytes")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            bad.append(f"{where}: dtype {str(dtype)[:20]!r} is not one of {', '.join(DTYPES)}")
            continue
        if not isinstance(shape, list) or len(shape) > 8 or not all(_is_int(d) and 0 <= d <= MAX_DIM for d in shape):
            bad.append(f"{where}: shape {str(shape)[:40]} is not a list of up to 8 sizes 0..{MAX_DIM}")
            continue
        count = math.prod(shape)
        if count > MAX_ELEMENTS:
            bad.append(f"{where}: {count:,} elements, more than {MAX_ELEMENTS:,}")
            continue
        if not (_is_int(offset) and _is_int(nbytes)) or offset < 0 or nbytes < 0:
            bad.append(f"{where}: offset and nbytes must be non-negative integers")
            continue
        if nbytes != count * np.dtype(dtype).itemsize:
            bad.append(f"{where}: {nbytes} bytes do not hold shape {shape} of {dtype}")
            continue
        if data_start + offset + nbytes > data_end:
            bad.append(f"{where}: bytes {offset}..{offset + nbytes} lie outside the data region "
                       f"({data_end - data_start} bytes)")
            continue
        out.append({"name": name, "dtype": dtype, "shape": shape, "offset": offset, "nbytes": nbytes})
    return out, bad


# ---------------------------------------------------------------------------
# Records: Lava's ranges, and the tensors a node implies
# ---------------------------------------------------------------------------
def _range(bad: List[str], where: str, key: str, value, lo: int, hi: int) -> None:
    if value is not None and (not _is_int(value) or not lo <= value <= hi):
        bad.append(f"{where}.{key} = {str(value)[:20]} is outside {lo}..{hi}")


def _limit(bad: List[str], where: str, key: str, value, limit: str) -> None:
    if value is not None:
        bad += [v.describe() for v in find_violations(f"{where}.{key}", value, LIMITS[limit])]


def _positive(bad: List[str], where: str, key: str, value) -> None:
    if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        bad.append(f"{where}.{key} = {str(value)[:20]} is not a finite positive number")


def _encoding(bad: List[str], where: str, enc) -> None:
    if enc is None:
        return
    _range(bad, where, "input.bits", enc.bits, 1, MAX_MESSAGE_BITS)
    if enc.encoding in (STATIC, CHIP_GRID) and enc.limit is not None:
        _range(bad, where, "input.limit", enc.limit, 1, (1 << (MAX_MESSAGE_BITS - 1)) - 1)
    _positive(bad, where, "input.inv_scale", enc.inv_scale)
    _range(bad, where, "input.frac", enc.frac, -MAX_SHIFT, MAX_SHIFT)


def _tensor(bad: List[str], tensors: dict, where: str, key, dtype: str, numel: int, shape=None) -> None:
    if not isinstance(key, str) or key not in tensors:
        bad.append(f"{where}: tensor {str(key)[:60]!r} is missing")
        return
    t = tensors[key]
    if t.dtype.name != dtype:
        bad.append(f"{where}: tensor {key!r} is {t.dtype.name}, expected {dtype}")
    elif shape is not None and tuple(t.shape) != tuple(shape):
        bad.append(f"{where}: tensor {key!r} has shape {list(t.shape)}, expected {list(shape)}")
    elif t.size != numel:
        bad.append(f"{where}: tensor {key!r} has {t.size} elements, expected {numel}")


def _dense(bad, node: ir.Op, q: DenseParams, tensors) -> None:
    w = node.name
    _limit(bad, w, "weight_exp", q.weight_exp, "weight_exp")
    _limit(bad, w, "num_weight_bits", q.num_weight_bits, "num_weight_bits")
    if q.sign_mode not in ("MIXED", "EXCITATORY", "INHIBITORY", "NULL"):
        bad.append(f"{w}.sign_mode = {q.sign_mode[:20]!r} is not a Lava sign mode")
    _range(bad, w, "truncate_bits", q.truncate_bits, 0, 8)
    _encoding(bad, w, q.input)
    _range(bad, w, "output_bits", q.output_bits, 1, MAX_MESSAGE_BITS)
    _positive(bad, w, "weight_step", q.weight_step)
    _positive(bad, w, "in_step", q.in_step)
    _range(bad, w, "out_frac", q.out_frac, -MAX_SHIFT, MAX_SHIFT)
    shape = (node.dim, node.n_in * q.fan_in_factor)
    _tensor(bad, tensors, w, q.mantissa, "int8", math.prod(shape), shape)
    if q.row_scale is not None:
        _tensor(bad, tensors, w, q.row_scale, "float32", node.dim)
    if q.mantissa in tensors and tensors[q.mantissa].dtype.name == "int8" and _is_int(q.num_weight_bits) \
            and 1 <= q.num_weight_bits <= 8 and tensors[q.mantissa].size:
        m = tensors[q.mantissa]
        top = 1 << (q.num_weight_bits - 1)
        if int(m.min()) < -top or int(m.max()) >= top:
            bad.append(f"{w}: weight mantissas outside the {q.num_weight_bits}-bit range")
        if _is_int(q.truncate_bits) and 0 <= q.truncate_bits <= 8 and \
                (int(m.min()) << q.truncate_bits < -256 or int(m.max()) << q.truncate_bits > 255):
            bad.append(f"{w}: weights mantissa << truncate_bits leave Lava's 8-bit grid")


def _lif(bad, node, q: LifParams, tensors) -> None:
    for key in ("du", "dv", "vth", "bias_mant", "bias_exp"):
        _limit(bad, node.name, key, getattr(q, key), key)
    _positive(bad, node.name, "v_scale", q.v_scale)
    _encoding(bad, node.name, q.input)
    if q.input is not None and q.input.encoding == DYNAMIC:
        bad.append(f"{node.name}.input: a LIF takes a static payload, not a dynamic one")
    _range(bad, node.name, "in_frac", q.in_frac, -MAX_SHIFT, MAX_SHIFT)


def _layernorm(bad, node, q: LayerNormParams, tensors) -> None:
    for key in ("s0", "s1", "s_sq", "s2", "s3", "s4"):
        _range(bad, node.name, key, getattr(q, key), -MAX_SHIFT if key == "s0" else 0, MAX_SHIFT)
    _range(bad, node.name, "out_bits", q.out_bits, 2, MAX_MESSAGE_BITS)
    for key in ("in_frac", "out_frac"):
        _range(bad, node.name, key, getattr(q, key), -MAX_SHIFT, MAX_SHIFT)
    _encoding(bad, node.name, q.input)
    _tensor(bad, tensors, node.name, q.gamma_q, "int32", node.dim)
    _tensor(bad, tensors, node.name, q.beta_q, "int32", node.dim)


def _grid(bad, node, q: GridParams, tensors) -> None:
    _range(bad, node.name, "frac", q.frac, -MAX_SHIFT, MAX_SHIFT)


def _product(bad, node, q: ProductParams, tensors) -> None:
    _range(bad, node.name, "exp", q.exp, 0, MAX_SHIFT)
    _range(bad, node.name, "out_frac", q.out_frac, -MAX_SHIFT, MAX_SHIFT)
    _range(bad, node.name, "out_bits", q.out_bits, 2, 32)
    _encoding(bad, node.name, q.input)


def _sigmoid(bad, node, q: SigmoidParams, tensors) -> None:
    from spike2loihi.execute.onchip_ops import SIG_MAX_IN_FRAC

    _range(bad, node.name, "in_frac", q.in_frac, 1, SIG_MAX_IN_FRAC)
    _range(bad, node.name, "out_frac", q.out_frac, 0, MAX_SHIFT)


def _residual(bad, node, q: ResidualParams, tensors) -> None:
    w = q.spike_weight
    if not (_is_int(w) and w > 0 and w & (w - 1) == 0 and w <= 1 << 14):
        bad.append(f"{node.name}.spike_weight = {str(w)[:20]} is not a power of two up to 2^14")
    for key in ("in_frac", "out_frac"):
        _range(bad, node.name, key, getattr(q, key), -MAX_SHIFT, MAX_SHIFT)


def _wkv(bad, node, q: WkvParams, tensors) -> None:
    from spike2loihi.execute.onchip_ops import WKV_E_BITS, WKV_E_FRAC_MAX, WKV_E_FRAC_MIN

    for key in ("k_frac", "v_frac"):
        _range(bad, node.name, key, getattr(q, key), -MAX_SHIFT, MAX_SHIFT)
    _range(bad, node.name, "e_frac", q.e_frac, WKV_E_FRAC_MIN, WKV_E_FRAC_MAX)
    _positive(bad, node.name, "w_clamp", q.w_clamp)
    top = (1 << (WKV_E_BITS - 2)) - 1     # u and w on the exponent grid, with room for one step beside E
    for key, neg in ((q.u_q, False), (q.w_q, True)):
        n = len(bad)
        _tensor(bad, tensors, node.name, key, "int32", node.dim)
        if len(bad) == n and tensors[key].size:
            t = tensors[key].astype(np.int64)
            if int(np.abs(t).max()) > top:
                bad.append(f"{node.name}: tensor {key!r} leaves the {WKV_E_BITS}-bit exponent register (|x| > {top})")
            elif neg and int(t.max()) > 0:
                bad.append(f"{node.name}: tensor {key!r} (the decay) has a positive entry")


_RECORD_CHECKS = {DenseParams: _dense, LifParams: _lif, LayerNormParams: _layernorm, GridParams: _grid,
                  ProductParams: _product, SigmoidParams: _sigmoid, ResidualParams: _residual, WkvParams: _wkv}


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------
def _host_tensor_sizes(node: ir.Op) -> Dict[str, int]:
    """Float parameters a host node names, with their element counts."""
    if "token" in node.ports:      # the embedding table
        return {node.weight: node.vocab * node.dim}
    return {v: node.dim for k, v in node.params().items() if isinstance(v, str) and k != "population"}


def _config(manifest: dict, bad: List[str]):
    from spike2loihi.model.spec import ModelConfig, Semantics

    cfg, sem = manifest.get("config"), manifest.get("semantics")
    config = semantics = None
    if not isinstance(cfg, dict) or not all(_is_int(cfg.get(k)) for k in ("n_layer", "n_embd", "vocab_size")):
        bad.append("config is missing or not n_layer, n_embd, vocab_size integers")
    elif not (1 <= cfg["n_layer"] <= MAX_LAYERS and 1 <= cfg["n_embd"] <= MAX_WIDTH
              and 1 <= cfg["vocab_size"] <= MAX_VOCAB):
        bad.append(f"config n_layer {cfg['n_layer']}, n_embd {cfg['n_embd']}, vocab_size {cfg['vocab_size']} "
                   f"outside 1..{MAX_LAYERS}, 1..{MAX_WIDTH}, 1..{MAX_VOCAB}")
    else:
        config = ModelConfig(cfg["n_layer"], cfg["n_embd"], cfg["vocab_size"])
    if not isinstance(sem, dict) or not isinstance(sem.get("name"), str) or sem.get("name") not in ("run", "train") \
            or not isinstance(sem.get("binary_embedding"), bool) or not _is_int(sem.get("rescale_layer")) \
            or not 0 <= sem["rescale_layer"] <= MAX_LAYERS or set(sem) != {"name", "binary_embedding", "rescale_layer"}:
        bad.append("semantics is missing or malformed")
    else:
        semantics = Semantics(**sem)
    return config, semantics


def _same_graph(stored: ir.Graph, built: ir.Graph) -> List[str]:
    def sig(g):
        return ({n.name: (n.kind, n.dim, n.layer, n.placement.where, tuple(sorted(n.params().items())))
                 for n in g.nodes.values()}, sorted((e.src, e.dst, e.port) for e in g.edges))
    (sn, se), (bn, be) = sig(stored), sig(built)
    if list(stored.nodes) != list(built.nodes) or sn != bn:
        diff = sorted(set(sn.items()) ^ set(bn.items()))
        first = diff[0][0] if diff else next((a for a, b in zip(stored.nodes, built.nodes) if a != b), "order")
        return [f"the graph is not the one its config and semantics build (first difference at {first!r})"]
    if se != be:
        return ["the graph's edges are not the ones its config and semantics build"]
    return []


def problems(model) -> List[str]:
    """Every violation of the schema in a parsed ConvertedModel (empty: it may be used)."""
    bad: List[str] = []
    m, g, nodes, tensors = model.manifest, model.graph, model.nodes, model.tensors
    config, semantics = _config(m, bad)
    placement = ir.placement_of(g)
    if placement not in ir.MAPPINGS:
        bad.append(f"graph placement {str(placement)[:20]!r} is not one of {', '.join(ir.MAPPINGS)}")
    elif config is not None and semantics is not None:
        bad += _same_graph(g, ir.build_graph(config, semantics, placement))
    if bad:
        return bad
    chip = {n.name for n in g.nodes.values() if n.placement.where == ir.CHIP}
    for name in sorted(chip - set(nodes)):
        bad.append(f"chip node {name!r} has no quantization record")
    for name in sorted(set(nodes) - chip):
        bad.append(f"node {name!r} is not on the chip but has a quantization record")
    for name, rec in nodes.items():
        if name in chip:
            _RECORD_CHECKS[type(rec)](bad, g.nodes[name], rec, tensors)
    for n in g.nodes.values():
        if n.placement.where == ir.HOST:
            for key, numel in _host_tensor_sizes(n).items():
                _tensor(bad, tensors, n.name, key, "float32", numel)
    sched = m.get("schedule")
    if isinstance(sched, dict) and "offsets" in sched:
        from spike2loihi.convert.schedule import schedule

        want = schedule(g)
        if sched.get("offsets") != want.offsets or sched.get("critical_path_steps") != want.critical_path \
                or sched.get("token_period_steps") != want.token_period:
            bad.append("the recorded schedule is not the graph's")
    return bad
