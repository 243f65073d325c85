"""Issue 13: the float and the converted model as ONNX step graphs, checked in onnxruntime.

Acceptance equalities, on the bundled model and on seeded random checkpoints (8 layers
fp32 and 7 layers bf16 with RESCALE, the 7-layer one at vocabulary 77, so with the
binary embedding):

* float export vs the float reference: logits within 1e-5 relative (max |difference|
  over the largest |logit| of the token), spikes equal wherever the reference's
  membrane is not within 1e-5 of the threshold (how often that applied is counted);
* converted export vs the emulator: every chip node's output (Dense accumulation, LIF
  spikes and membranes) identical whenever its input is (state synchronised before
  each token); host ops identical whenever their inputs are, except the ones with an
  exp (sigmoid, WKV), where onnxruntime's float32 exp differs from numpy's in the last
  bit; bits per character within 0.1%; spike flips counted.

The suite runs short streams. `S2L_ONNX_TOKENS=256` runs the acceptance length, and
`S2L_ONNX_FIGURES=FILE` writes every measured figure there as JSON (they are printed
with `-s` too).
"""
import json
import math
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, convert_spec, random_spec, tokens_for
from spike2loihi.export import onnx as OX
from spike2loihi.convert import artifact, ir
from spike2loihi.convert.records import DenseParams, Encoding, LifParams
from spike2loihi.backends.onnxruntime import OnnxRuntimeBackend
from spike2loihi.execute.kernels import DenseKernel, dense_graded_output, lif_update
from spike2loihi.execute.model_emulator import ModelEmulator, flatten_state
from spike2loihi.convert.fixed_point import VTH_SHIFT
from spike2loihi.model.reference import ReferenceModel

N_TOKENS = int(os.environ.get("S2L_ONNX_TOKENS", "64"))
N_SHORT = N_TOKENS if "S2L_ONNX_TOKENS" in os.environ else 32   # the random converted models (slow emulator)
NEAR = 1e-5          # the near-threshold exclusion of the float comparison
REL_TOL = 1e-5       # logits, relative to the token's largest |logit|
FIGURES = {}


@pytest.fixture(scope="module", autouse=True)
def report_figures():
    yield
    if FIGURES:
        text = json.dumps({"tokens": N_TOKENS, **FIGURES}, indent=1, sort_keys=True)
        print("\nONNX export figures:\n" + text)
        if os.environ.get("S2L_ONNX_FIGURES"):
            Path(os.environ["S2L_ONNX_FIGURES"]).write_text(text + "\n")


def convert(spec, tokens, sem_name="run", **opts):
    return convert_spec(spec, tokens, sem_name, **opts)[0]


@pytest.fixture(scope="module")
def demo_text():
    """(train, held-out) text of the bundled model's corpus (slow to build: once per module)."""
    sys.path.insert(0, str(ROOT / "examples"))
    import demo_corpus

    return demo_corpus.corpus()


@pytest.fixture(scope="module")
def held(demo_spec, demo_text):
    """The first max(512, S2L_ONNX_TOKENS) held-out characters as token ids."""
    return demo_spec.tokenizer.encode(demo_text[1][:max(512, N_TOKENS)])


RANDOM = {
    "8x32 vocab50 fp32": dict(n_layer=8, n_embd=32, vocab=50, seed=1),
    "7x24 vocab77 bf16": dict(n_layer=7, n_embd=24, vocab=77, seed=2, dtype=torch.bfloat16),
}


@pytest.fixture(scope="module")
def demo_model(demo_spec, demo_text):
    return convert(demo_spec, demo_spec.tokenizer.encode(demo_text[0][:300]))


# ---------------------------------------------------------------------------
# Float export vs the float reference
# ---------------------------------------------------------------------------
def _ref_state_to_onnx(rs, L):
    out = {}
    for i in range(L):
        p = f"blocks.{i}."
        out[p + "att.shift/prev"] = rs.att_shift[i:i + 1].numpy().copy()
        out[p + "ffn.shift/prev"] = rs.ffn_shift[i:i + 1].numpy().copy()
        for k in ("aa", "bb", "pp"):
            out[p + f"att.wkv/{k}"] = getattr(rs, k)[i:i + 1].numpy().copy()
        out[p + "att.lif/v"] = rs.v_att[i:i + 1].numpy().copy()
        out[p + "ffn.lif/v"] = rs.v_ffn[i:i + 1].numpy().copy()
    return out


def compare_float(spec, sem, tokens, opset=OX.DEFAULT_OPSET):
    """Free-running float export vs the reference. A spike that differs inside the near-threshold
    band ends that token's logit comparison and re-synchronises the ONNX state to the reference's."""
    L = spec.config.n_layer
    be = OnnxRuntimeBackend(OX.to_bytes(OX.export_checkpoint(spec, sem, opset=opset)))
    lif_in = {}
    ref = ReferenceModel(spec, sem, probe=lambda i, name, t: lif_in.__setitem__((i, name), t.clone()))
    rs, st = ref.initial_state(), be.initial_state()
    assert set(st) == set(_ref_state_to_onnx(rs, L))
    f = dict(tokens=len(tokens), max_rel_logit_err=0.0, neuron_steps=0, near_threshold=0,
             spike_mismatch_outside=0, spike_mismatch_near=0, resyncs=0)
    for tok in tokens:
        v_prev = {"att": rs.v_att.clone(), "ffn": rs.v_ffn.clone()}
        r = ref.step(tok, rs)
        o = be.run([tok], st)
        flipped_near = False
        for pop, want, got in (("att", r.att_spikes, o[OX.ATT_SPIKES][0]), ("ffn", r.ffn_spikes, o[OX.FFN_SPIKES][0])):
            a = torch.stack([lif_in[(i, f"{pop}.lif.in")] for i in range(L)])
            v = v_prev[pop] + (a - v_prev[pop]) / 2.0          # the reference's membrane before reset
            near = ((v - 1.0).abs() < NEAR).numpy()
            bad = want.numpy() != got
            f["neuron_steps"] += near.size
            f["near_threshold"] += int(near.sum())
            f["spike_mismatch_outside"] += int((bad & ~near).sum())
            f["spike_mismatch_near"] += int((bad & near).sum())
            flipped_near |= bool((bad & near).any())
        if flipped_near:
            f["resyncs"] += 1
            st.update(_ref_state_to_onnx(rs, L))
            continue
        ref_logits = r.logits.numpy()
        rel = float(np.abs(o[OX.LOGITS][0] - ref_logits).max() / np.abs(ref_logits).max())
        f["max_rel_logit_err"] = max(f["max_rel_logit_err"], rel)
    f["near_threshold_pct"] = 100.0 * f["near_threshold"] / f["neuron_steps"]
    return f


def _check_float(f):
    assert f["max_rel_logit_err"] <= REL_TOL, f
    assert f["spike_mismatch_outside"] == 0, f
    assert f["resyncs"] <= max(1, f["tokens"] // 100), f


def test_float_export_matches_reference_bundled(demo_spec, held):
    f = compare_float(demo_spec, demo_spec.semantics("run"), held[:N_TOKENS])
    FIGURES["float bundled 4x256 run"] = f
    _check_float(f)


@pytest.mark.parametrize("case", list(RANDOM))
def test_float_export_matches_reference_random(case):
    spec = random_spec(**RANDOM[case])
    f = compare_float(spec, spec.semantics("run"), tokens_for(spec.config.vocab_size, N_TOKENS, seed=5))
    FIGURES[f"float {case} run"] = f
    _check_float(f)


def test_float_export_follows_semantics():
    """--semantics train: binary embedding on, no RESCALE; the exported graph is the train graph."""
    spec = random_spec(n_layer=7, n_embd=16, vocab=30, seed=4)
    for name in ("train", "run"):
        f = compare_float(spec, spec.semantics(name), tokens_for(30, 24, seed=1))
        _check_float(f)
    proto = OX.export_checkpoint(spec, spec.semantics("train"))
    assert any(n.op_type == "GreaterOrEqual" and "emb" in n.name for n in proto.graph.node)
    assert json.loads(OX.metadata(proto)[OX.M_SEMANTICS])["name"] == "train"


# ---------------------------------------------------------------------------
# Converted export vs the emulator
# ---------------------------------------------------------------------------
def _eq(a, b):
    return a.shape == b.shape and np.array_equal(a, b)


def compare_converted_sync(model, tokens):
    """Before each token the ONNX state is set to the emulator's; then every chip node's output is
    compared wherever its input is identical, and every host node's wherever its inputs are."""
    g = model.graph
    be = OnnxRuntimeBackend(OX.to_bytes(OX.export_artifact(model, probes=True)))
    trace = {}
    ex = ModelEmulator(model, trace=lambda n, v: trace.__setitem__(n, v))
    order = [n for n in g.nodes.values() if not isinstance(n, ir.Sampler)]
    chip = [n for n in order if n.placement.where == ir.CHIP]
    host = [n for n in order if n.placement.where == ir.HOST]
    f = dict(tokens=len(tokens), chip_node_steps=0, chip_same_input=0, chip_violations=[],
             chip_input_elements_differing=0, lif_neuron_steps=0, spike_flips=0, host_by_kind={})

    def same_value(key, o):
        v = trace[key]
        if hasattr(v, "q"):
            ok = _eq(o[OX.PROBE_PREFIX + key], v.q)
            if v.scale is not None:
                ok = ok and _eq(o[OX.PROBE_PREFIX + key + ".scale"], v.scale)
            return ok
        return _eq(o[OX.PROBE_PREFIX + key], v)

    for tok in tokens:
        st = {k: a.copy() for k, a in flatten_state(ex.get_state()).items()}
        trace.clear()
        ex.step([tok])
        o = be.run([tok], st)
        emu_next = flatten_state(ex.state)
        for n in chip:
            src = g.inputs(n.name)["x"]
            key = src if g.nodes[src].placement.where == ir.CHIP else n.name + ".in"
            f["chip_node_steps"] += 1
            out_same = same_value(n.name, o)
            if isinstance(n, ir.LIF):
                out_same &= _eq(st[n.name + "/u"], emu_next[n.name + "/u"]) and _eq(st[n.name + "/v"],
                                                                                   emu_next[n.name + "/v"])
                f["lif_neuron_steps"] += n.dim
                f["spike_flips"] += int((o[OX.PROBE_PREFIX + n.name] != trace[n.name].q).sum())
            f["chip_input_elements_differing"] += int((o[OX.PROBE_PREFIX + key] != trace[key].q).sum())
            if same_value(key, o):
                f["chip_same_input"] += 1
                if not out_same:
                    f["chip_violations"].append(n.name)
        for n in host:
            srcs = g.inputs(n.name)
            keys = [s for s in srcs.values()]
            d = f["host_by_kind"].setdefault(n.kind, {"node_steps": 0, "same_inputs": 0, "equal_given_same_inputs": 0,
                                                       "elements": 0, "elements_differing": 0})
            d["node_steps"] += 1
            if all(same_value(k, o) for k in keys):
                d["same_inputs"] += 1
                got, want = o[OX.PROBE_PREFIX + n.name], trace[n.name]
                d["equal_given_same_inputs"] += int(_eq(got, want))
                d["elements"] += want.size
                d["elements_differing"] += int((got != want).sum())
    f["spike_flip_rate"] = f["spike_flips"] / max(1, f["lif_neuron_steps"])
    return f


def _bits(logits, tokens):
    lt = torch.from_numpy(np.stack(logits)).double()
    logp = torch.log_softmax(lt, -1)
    nxt = torch.as_tensor(tokens[1:])
    return float(-logp[torch.arange(len(tokens) - 1), nxt].mean()) / math.log(2)


def compare_converted_free(model, tokens):
    """Free-running over `tokens` (teacher forced): the file as users run it (no probes)."""
    be = OnnxRuntimeBackend(OX.to_bytes(OX.export_artifact(model)))
    ex = ModelEmulator(model)
    st = be.initial_state()
    lo, le = [], []
    f = dict(tokens=len(tokens), logits_identical_tokens=0, first_logit_difference=None, spike_flips=0,
             neuron_steps=0, first_spike_flip=None)
    for t, tok in enumerate(tokens):
        step = ex.step([tok])
        o = be.run([tok], st)
        lo.append(o[OX.LOGITS][0])
        le.append(step.logits[0])
        if _eq(lo[-1], le[-1]):
            f["logits_identical_tokens"] += 1
        elif f["first_logit_difference"] is None:
            f["first_logit_difference"] = t
        lifs = ir.lif_nodes(model.graph)
        for pop, out in (("att", OX.ATT_SPIKES), ("ffn", OX.FFN_SPIKES)):
            want = np.stack([step.spikes[n.name][0] for n in lifs if n.population == pop])
            flips = int((o[out][0].astype(bool) != want).sum())
            f["spike_flips"] += flips
            f["neuron_steps"] += want.size
            if flips and f["first_spike_flip"] is None:
                f["first_spike_flip"] = t
    f["bpc_emulator"] = _bits(le, tokens)
    f["bpc_onnxruntime"] = _bits(lo, tokens)
    f["bpc_diff_pct"] = 100.0 * (f["bpc_onnxruntime"] - f["bpc_emulator"]) / f["bpc_emulator"]
    return f


def _check_sync(f):
    assert not f["chip_violations"], f["chip_violations"][:10]
    assert f["chip_same_input"] >= 0.9 * f["chip_node_steps"], f
    for kind, d in f["host_by_kind"].items():
        if kind not in ("sigmoid", "wkv"):       # the ops with an exp
            assert d["equal_given_same_inputs"] == d["same_inputs"], (kind, d)


def test_converted_export_integer_parts_identical_bundled(demo_model, held):
    f = compare_converted_sync(demo_model, held[:N_TOKENS])
    FIGURES["converted bundled sync"] = f
    _check_sync(f)


def test_converted_export_bpc_equals_emulator_bundled(demo_model, held):
    f = compare_converted_free(demo_model, held[:N_TOKENS])
    FIGURES["converted bundled free-running"] = f
    assert abs(f["bpc_diff_pct"]) < 0.1, f


@pytest.mark.parametrize("case", list(RANDOM))
def test_converted_export_random(case):
    spec = random_spec(**RANDOM[case])
    model = convert(spec, tokens_for(spec.config.vocab_size, 60, seed=7))
    toks = tokens_for(spec.config.vocab_size, N_SHORT, seed=11)
    f = compare_converted_sync(model, toks)
    FIGURES[f"converted {case} sync"] = f
    _check_sync(f)
    f = compare_converted_free(model, toks)
    FIGURES[f"converted {case} free-running"] = f
    assert abs(f["bpc_diff_pct"]) < 0.1, f


# ---------------------------------------------------------------------------
# The exact pieces on their own: numpy's mean, Lava's Dense and LIF
# ---------------------------------------------------------------------------
def _run_graph(g, inputs, outputs, feeds):
    from onnx import helper

    graph = helper.make_graph(g.nodes, "t", inputs, outputs, list(g.inits.values()))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", g.opset)])
    proto.ir_version = OX.MIN_IR_VERSION
    OX.check(proto)
    import onnxruntime as ort

    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


@pytest.mark.parametrize("n", [5, 8, 24, 100, 128, 129, 256, 300, 768, 1000])
def test_pairwise_mean_is_numpys(n):
    from onnx import TensorProto, helper

    rng = np.random.default_rng(n)
    x = (rng.standard_normal((16, n)) * np.exp(rng.uniform(-8, 8, (16, n)))).astype(np.float32)
    g = OX._OnnxGraph(OX.DEFAULT_OPSET)
    m = g.numpy_mean_last("x", n)
    (got,) = _run_graph(g, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", n])],
                        [helper.make_tensor_value_info(m, TensorProto.FLOAT, ["b", 1])], {"x": x})
    want = x.mean(axis=-1, keepdims=True, dtype=np.float32)
    assert np.array_equal(got, want) and np.array_equal(OX.numpy_pairwise_mean(x), want)


def _fake_export(q, tensors):
    params = types.SimpleNamespace(q=q, model=types.SimpleNamespace(tensors=tensors))
    return types.SimpleNamespace(g=OX._OnnxGraph(OX.DEFAULT_OPSET), params=params)


@pytest.mark.parametrize("k,e,limit", [(1, -9, 127), (3, -4, 2047), (1, 2, 15), (1, 0, 1 << 15)])
def test_integer_dense_equals_lava_dense(k, e, limit):
    from onnx import TensorProto, helper

    rng = np.random.default_rng(k + 10 * limit)
    m = rng.integers(-128 >> (k - 1), 128 >> (k - 1), (40, 300)).astype(np.int8)
    qn = DenseParams(mantissa="w.mantissa", truncate_bits=k, weight_exp=e, num_weight_bits=8, sign_mode="MIXED",
                     input=Encoding("static", 16, inv_scale=1.0, limit=limit))
    ex = _fake_export({"w": qn}, {"w.mantissa": m})
    node = ir.Projection(name="w", dim=40, layer=0, placement=ir.Projection.mapping[ir.HOST], n_in=300)
    from spike2loihi.convert.fixed_point import worst_accumulation

    if worst_accumulation(m.astype(np.int64) << k, limit) > 2 ** 31 - 1:
        with pytest.raises(OX.ExportError, match="w .*int32 accumulator can wrap"):
            OX.ONNX_INTEGER.find(ir.Projection)(ex, node, {"x": OX.Payload("s", None, limit)}, {})
        return
    out = OX.ONNX_INTEGER.find(ir.Projection)(ex, node, {"x": OX.Payload("s", None, limit)}, {})
    s = rng.integers(-limit, limit + 1, (64, 300))
    s[0] = limit * np.sign(m[0]).astype(np.int64)            # a worst case
    (got,) = _run_graph(ex.g, [helper.make_tensor_value_info("s", TensorProto.INT64, ["b", 300])],
                        [helper.make_tensor_value_info(out.q, TensorProto.INT64, ["b", 40])], {"s": s})
    want = dense_graded_output(DenseKernel(m.astype(np.int64) << k), s, e)
    assert np.array_equal(got, want)


def test_integer_lif_equals_lava_lif_including_wrap_and_clip():
    """Every branch of lif_update: u beyond +-2**23 (the 24-bit wrap), v saturating, spikes, decays."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    B, C = 64, 200
    for du, dv, vth in ((4095, 2048, 1000), (0, 0, 5), (100, 3000, 1 << 16), (4095, 4095, 1)):
        qn = LifParams(du=du, dv=dv, vth=vth, v_scale=1.0)
        ex = _fake_export({"l": qn}, {})
        node = ir.LIF(name="l", dim=C, layer=0, placement=ir.LIF.mapping[ir.HOST])
        st = {"u": "u", "v": "v"}
        s = OX.ONNX_INTEGER.find(ir.LIF)(ex, node, {"x": OX.Payload("a", None, 1 << 18)}, st)
        vi = lambda n: helper.make_tensor_value_info(n, TensorProto.INT64, ["b", C])  # noqa: E731
        a = rng.integers(-(1 << 18), (1 << 18) + 1, (B, C))
        u = rng.integers(-(1 << 23) + 1, (1 << 23) + 1, (B, C))
        v = rng.integers(-(1 << 23) + 1, 1 << 23, (B, C))
        got_s, got_u, got_v = _run_graph(ex.g, [vi("a"), vi("u"), vi("v")], [vi(s.q), vi(st["u"]), vi(st["v"])],
                                         {"a": a, "u": u, "v": v})
        cnt = {}
        want_u, want_v, want_s = lif_update(u, v, a, du, dv, vth << VTH_SHIFT, 0,
                                            lambda key, c: cnt.__setitem__(key, cnt.get(key, 0) + c))
        assert np.array_equal(got_u, want_u) and np.array_equal(got_v, want_v)
        assert np.array_equal(got_s.astype(bool), want_s)
        if du == 0:
            assert cnt["u_wrap_pos"] > 0 and cnt["u_wrap_neg"] > 0 and cnt["v_sat_pos"] + cnt["v_sat_neg"] > 0


# ---------------------------------------------------------------------------
# The file: checker, metadata, placement on every node, opsets
# ---------------------------------------------------------------------------
def test_every_node_names_its_ir_op_and_placement(demo_spec, demo_model):
    import onnx

    for proto, graph in ((OX.export_checkpoint(demo_spec, demo_spec.semantics("run")),
                          ir.build_graph(demo_spec.config, demo_spec.semantics("run"))),
                         (OX.export_artifact(demo_model), demo_model.graph)):
        onnx.checker.check_model(proto, full_check=True)
        seen = {}
        for n in proto.graph.node:
            md = {p.key: p.value for p in n.metadata_props}
            assert n.doc_string and "placement: " in n.doc_string, n.name
            assert md["s2l.placement"] in (ir.CHIP, ir.HOST) and md["s2l.reason"], n.name
            if md["s2l.role"] == "op":
                node = graph.nodes[md["s2l.ir_node"]]
                assert md["s2l.ir_op"] == node.kind and md["s2l.placement"] == node.placement.where
                assert node.placement.reason in n.doc_string
                seen[node.name] = seen.get(node.name, 0) + 1
            elif md["s2l.role"] in ("encode", "decode"):
                assert md["s2l.placement"] == ir.HOST and graph.nodes[md["s2l.ir_node"]].placement.where == ir.CHIP
        assert set(seen) == {n.name for n in graph.nodes.values() if not isinstance(n, ir.Sampler)}
    counts = OX.node_counts(proto)
    assert counts["blocks.0.att.key"] >= 4 and counts["blocks.0.att.key.in"] >= 8


def test_block_picture_reads_the_partition_back(demo_model):
    import io

    proto = OX.export_artifact(demo_model)
    groups, edges = OX.block_groups(proto, 1)
    ops = {g["ir_node"] for g in groups.values() if g["role"] == "op"}
    assert ops == {n.name for n in demo_model.graph.nodes.values() if n.layer == 1}
    chip = {g["ir_node"] for g in groups.values() if g["placement"] == ir.CHIP}
    assert chip == {n.name for n in demo_model.graph.nodes.values() if n.layer == 1 and n.placement.where == ir.CHIP}
    enc = {g["ir_node"] for g in groups.values() if g["role"] == "encode"}
    assert len(enc) == 8 and enc <= chip            # 8 host->chip crossings per block
    assert ("x", "blocks.1.ln1|op") in edges and ("blocks.1.att.shift|op", "blocks.1.att.mix_k|op") in edges
    buf = io.BytesIO()
    OX.draw_block(proto, 1, buf)
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_metadata_carries_identity(demo_model, tmp_path):
    path = tmp_path / "m.s2l"
    artifact.save(demo_model, path)
    info = {"path": str(path), "sha256": artifact.sha256_file(path)}
    model = artifact.load(path)
    meta = OX.metadata(OX.export_artifact(model, artifact_info=info))
    q = model.manifest["quantization"]
    assert meta[OX.M_FORMAT] == OX.FORMAT and meta[OX.M_KIND] == OX.KIND_CONVERTED
    assert meta[OX.M_ARTIFACT_SHA256] == info["sha256"]
    assert meta[OX.M_ARTIFACT_FORMAT_VERSION] == str(artifact.FORMAT_VERSION)
    assert (meta[OX.M_WEIGHT_BITS], meta[OX.M_ACT_BITS], meta[OX.M_LIF_INPUT_BITS]) == \
        (str(q["weight_bits"]), str(q["act_bits"]), str(q["lif_input_bits"]))
    assert meta[OX.M_TOKENIZER_KIND] == "char" and json.loads(meta[OX.M_CONFIG])["vocab_size"] == 77
    state = json.loads(meta[OX.M_STATE])
    lif_vars = {(s["var"], s["dtype"]) for s in state if s["node"].endswith(".lif")}
    assert lif_vars == {("u", "int64"), ("v", "int64")}
    assert {s["init"] for s in state if s["var"] == "pp"} == {-1e30}


@pytest.mark.parametrize("opset", [OX.MIN_OPSET, 16, 18, OX.MAX_OPSET])
def test_every_opset_in_range_runs(opset):
    spec = random_spec(n_layer=2, n_embd=16, vocab=20, seed=3)
    f = compare_float(spec, spec.semantics("run"), tokens_for(20, 8), opset=opset)
    _check_float(f)
    model = convert(spec, tokens_for(20, 20))
    be = OnnxRuntimeBackend(OX.to_bytes(OX.export_artifact(model, opset=opset)))
    st, ex = be.initial_state(), ModelEmulator(model)
    for tok in tokens_for(20, 8, seed=2):
        assert np.array_equal(be.run([tok], st)[OX.LOGITS], ex.step([tok]).logits)


def test_batch_dimension_is_free(demo_model, held):
    be = OnnxRuntimeBackend(OX.to_bytes(OX.export_artifact(demo_model)))
    seqs = np.asarray([held[:12], held[100:112]])
    st = be.initial_state(batch=2)
    ex = ModelEmulator(demo_model, batch_size=2)
    for t in range(seqs.shape[1]):
        assert np.array_equal(be.run(seqs[:, t], st)[OX.LOGITS], ex.step(seqs[:, t]).logits)


# ---------------------------------------------------------------------------
# What ONNX cannot express: one line naming the op
# ---------------------------------------------------------------------------
def test_unknown_op_is_one_error_naming_it(demo_model):
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Teleport(ir.Op):
        kind = "teleport"

    g = demo_model.graph
    nodes = dict(g.nodes)
    old = nodes["blocks.1.att.sigmoid"]
    nodes[old.name] = Teleport(name=old.name, dim=old.dim, layer=old.layer, placement=old.placement)
    bad = dataclasses.replace(demo_model, graph=ir.Graph(nodes, g.edges, g.meta))
    with pytest.raises(OX.ExportError) as exc:
        OX.export_artifact(bad)
    msg = str(exc.value)
    assert "blocks.1.att.sigmoid" in msg and "teleport" in msg and "\n" not in msg


def test_possible_int32_wrap_is_refused(demo_model):
    import dataclasses

    nodes = dict(demo_model.nodes)
    rec = nodes["blocks.2.ffn.key"]
    nodes["blocks.2.ffn.key"] = dataclasses.replace(rec, input=dataclasses.replace(rec.input, bits=24))
    with pytest.raises(OX.ExportError, match=r"blocks\.2\.ffn\.key \(projection on chip\).*int32"):
        OX.export_artifact(dataclasses.replace(demo_model, nodes=nodes))


def test_opset_outside_range_is_refused(demo_spec):
    with pytest.raises(OX.ExportError, match="opset 12 is outside 13..23"):
        OX.export_checkpoint(demo_spec, demo_spec.semantics("run"), opset=12)


def test_cli_constants_follow_the_exporter():
    from spike2loihi.cli import options as cli
    from spike2loihi.cli import export as cli_export

    assert (cli_export.MIN_OPSET, cli_export.MAX_OPSET, cli_export.DEFAULT_OPSET) == \
        (OX.MIN_OPSET, OX.MAX_OPSET, OX.DEFAULT_OPSET)
    assert cli_export.SEMANTICS_CHOICES == cli.SEMANTICS_CHOICES
    assert "onnxruntime" in cli.BACKENDS
