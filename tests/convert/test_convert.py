"""Conversion: IR, quantization bounds, the .s2l artifact and the whole-model emulator.

Exactness claims (batch independence, save/restore, determinism, chip nodes
equal to Lava's processes) are tested on the bundled model and on seeded
random checkpoints (8 layers with RESCALE, bf16 and fp16 storage, vocabularies
other than 77).
"""
import math
import struct

import numpy as np
import pytest
import torch

from conftest import ROOT, convert_spec, random_spec, tokens_for
from spike2loihi.convert import artifact, ir, quantize
from spike2loihi.reports import evaluate
from spike2loihi.execute import host_ops
from spike2loihi.backends.emulator import EmulatorBackend
from spike2loihi.execute.kernels import lif_update
from spike2loihi.execute.model_emulator import ModelEmulator, flatten_state, unflatten_state
from spike2loihi.convert.fixed_point import (INT32_MAX, LIMITS, VTH_SHIFT, threshold_to_fixed, worst_accumulation)
from spike2loihi.model.reference import ReferenceModel


convert = convert_spec


RANDOM_CASES = {
    "8x32 vocab50 fp32": dict(n_layer=8, n_embd=32, vocab=50, seed=1),
    "7x24 vocab77 bf16": dict(n_layer=7, n_embd=24, vocab=77, seed=2, dtype=torch.bfloat16),
    "3x16 vocab300 fp16": dict(n_layer=3, n_embd=16, vocab=300, seed=3, dtype=torch.float16),
}


@pytest.fixture(scope="module", params=list(RANDOM_CASES))
def random_converted(request):
    spec = random_spec(**RANDOM_CASES[request.param])
    model, records = convert(spec, tokens_for(spec.config.vocab_size, 60, seed=7))
    return spec, model, records


# ---------------------------------------------------------------------------
# IR
# ---------------------------------------------------------------------------
def test_ir_structure_placement_and_json_roundtrip(demo_spec):
    g = ir.build_graph(demo_spec.config, demo_spec.semantics("run"))
    L = demo_spec.config.n_layer
    assert len(g.nodes) == 2 + 26 * L + 3
    chip = [n for n in g.nodes.values() if n.placement.where == ir.CHIP]
    assert {n.kind for n in chip} == {"projection", "head", "lif"}
    assert len(chip) == 9 * L + 1
    for n in g.nodes.values():
        assert n.placement.reason, n.name
        for port, src in g.inputs(n.name).items():
            assert port in type(n).ports and src in g.nodes
        # execution order is topological
        assert all(list(g.nodes).index(src) < list(g.nodes).index(n.name) for src in g.inputs(n.name).values())
    # 8 host->chip and 8 chip->host edges per block, plus the head's two; 5 round trips per block + head
    assert len(g.crossings()) == 16 * L + 2
    assert ir.host_round_trips(g) == 5 * L + 1
    d = g.to_dict()
    g2 = ir.Graph.from_dict(d)
    assert g2.to_dict() == d and g2.nodes == g.nodes and g2.edges == g.edges


def test_ir_follows_semantics():
    spec = random_spec(n_layer=13, n_embd=8, vocab=20)
    run = ir.build_graph(spec.config, spec.semantics("run"))
    train = ir.build_graph(spec.config, spec.semantics("train"))
    assert run.nodes["emb"].binary is False and train.nodes["emb"].binary is True
    assert [n.layer for n in run.of_type(ir.Residual) if n.halve] == [5, 11]
    assert not any(n.halve for n in train.of_type(ir.Residual))
    assert run.nodes["blocks.12.att.output"].divisor == 4 and run.nodes["blocks.12.ffn.value"].divisor == 4
    assert run.nodes["blocks.12.att.key"].divisor == 1 and train.nodes["blocks.12.att.output"].divisor == 1


def test_ir_rejects_unknown_op_and_version(demo_spec):
    d = ir.build_graph(demo_spec.config, demo_spec.semantics("run")).to_dict()
    bad = dict(d, nodes=[dict(d["nodes"][0], op="teleport")] + d["nodes"][1:])
    with pytest.raises(ValueError, match="teleport"):
        ir.Graph.from_dict(bad)
    with pytest.raises(ValueError, match="version"):
        ir.Graph.from_dict(dict(d, ir_version=99))


# ---------------------------------------------------------------------------
# Quantization: every bound holds by construction
# ---------------------------------------------------------------------------
def _check_bounds(model, records):
    g = model.graph
    for name, qn in model.nodes.items():
        node = g.nodes[name]
        if isinstance(node, ir.Projection):
            m = model.tensors[qn.mantissa].astype(np.int64)
            top = (1 << (qn.num_weight_bits - 1))
            assert m.min() >= -top and m.max() < top
            lw = m << qn.truncate_bits
            assert lw.min() >= -256 and lw.max() <= 255       # Lava's 8-bit grid, unchanged by its clip
            assert np.all(lw % (1 << qn.truncate_bits) == 0)
            assert LIMITS["weight_exp"].lo <= qn.weight_exp <= LIMITS["weight_exp"].hi
            enc = qn.input
            limit = enc.limit or host_ops.qmax(enc.bits)
            worst = worst_accumulation(lw, limit)
            assert worst <= INT32_MAX, name                 # Lava's int32 accumulator never wraps
            e = qn.weight_exp
            out = worst >> -e if e <= 0 else worst << e
            if qn.row_scale:
                assert out + 1 <= 1 << 23, name              # fits the 24-bit payload to the host
            else:
                lif = model.nodes[g.consumers(name)[0].dst]
                assert 2 * ((out + 1) << 6) < 1 << 23, name   # u = a<<6 and |v| <= 2|u| inside 24 bits
                assert lif.input is None
        elif isinstance(node, ir.LIF):
            assert (qn.du, qn.dv) == (4095, 2048)
            assert threshold_to_fixed(1.0, qn.v_scale).vth == qn.vth
            if qn.input is not None:
                assert 2 * (qn.input.limit << 6) < 1 << 23
    assert all(r.wraps == 0 for r in records)


def test_bundled_model_bounds(demo_converted):
    _check_bounds(*demo_converted)


def test_random_checkpoint_bounds(random_converted):
    spec, model, records = random_converted
    _check_bounds(model, records)
    assert {r.node for r in records} == {n.name for n in model.graph.nodes.values()
                                         if n.placement.where == ir.CHIP}


def test_rescale_changes_the_lif_scales_per_layer():
    """Layers 6+ of a RESCALE model get their own calibrated scales (Wo is divided by 2)."""
    spec = random_spec(n_layer=8, n_embd=32, vocab=50, seed=1)
    model, _ = convert(spec, tokens_for(50, 60, seed=7))
    ymax = model.manifest["calibration"]["maxima"]["att.output.in"]
    assert len(ymax) == 8 and len(set(ymax)) == 8
    assert model.graph.nodes["blocks.7.att.output"].divisor == 2


@pytest.mark.parametrize("bits", [4, 12, 16])
def test_other_bit_widths_keep_every_bound(bits):
    spec = random_spec(n_layer=2, n_embd=32, vocab=40, seed=4)
    model, records = convert(spec, tokens_for(40, 40), act_bits=bits, weight_bits=min(bits, 8))
    _check_bounds(model, records)
    acts = {r.act_bits for r in records if r.act_encoding == "dynamic"}
    assert max(acts) <= bits


def test_bit_widths_out_of_range_are_one_error():
    spec = random_spec(n_layer=1, n_embd=8, vocab=10)
    with pytest.raises(quantize.QuantizationError, match=r"--weight-bits 9.*--lif-input-bits 20"):
        convert(spec, [1, 2, 3], weight_bits=9, lif_input_bits=20)


def test_lif_integer_grid_equals_float_lif(demo_converted):
    """Lava's LIF with the converted du/dv/vth, fed a = x * a_in_scale, spikes where SpikeGPT's does.

    Each step starts both from the same membrane (the integer one is the float one on the
    grid, rounded: < 1/2 unit off) and the integer update rounds v/2 toward zero (< 1 unit),
    so the rules must agree wherever the float membrane is more than 2 grid units from the
    threshold: all but a handful of the 20,000 neuron-steps, whose count is checked too.
    """
    model, _ = demo_converted
    rng = np.random.default_rng(0)
    for name in ("blocks.0.ffn.lif", "blocks.3.att.lif"):
        qn = model.nodes[name]
        a_in_scale = qn.v_scale / 128            # 1/tau * v_scale / 2**6
        a = rng.integers(-3 * int(a_in_scale), 5 * int(a_in_scale), (200, 100))
        x = a / a_in_scale
        vf = np.zeros(100)
        checked = 0
        for t in range(200):
            v_int = np.rint(vf * qn.v_scale).astype(np.int64)[None, :]
            _, _, s = lif_update(np.zeros_like(v_int), v_int, a[t:t + 1], qn.du, qn.dv,
                                 qn.vth << VTH_SHIFT)
            vf = vf + (x[t] - vf) / 2
            sf = vf >= 1.0
            far = np.abs(vf - 1.0) * qn.v_scale > 2
            assert np.array_equal(s[0][far], sf[far]), (name, t)
            checked += int(far.sum())
            vf = np.where(sf, 0.0, vf)
        assert checked > 19_900, name


def test_every_chip_node_computes_its_float_op(demo_spec, demo_converted):
    """The integers of each chip node, with the host's encode and decode, compute the float op:
    W x for a host-bound Dense; the LIF's input x * v_scale / 128 (the grid's 1/tau * v_scale / 2**6)
    for Wo and for the ffn LIF. Bound: per product, half a weight step times |x| plus half an input
    step times |w|: about 1/127 of sum |w| |x| for 8-bit weights and inputs (1.2% allowed)."""
    from spike2loihi.execute.kernels import dense_graded_output
    from spike2loihi.execute.model_emulator import Params, Payload, decode_output, encode_input

    model, _ = demo_converted
    P = Params(model)
    floats = quantize.float_weights(ReferenceModel(demo_spec, demo_spec.semantics("run")))
    rng = np.random.default_rng(1)
    g = model.graph
    for node in g.of_type(ir.Projection):
        qn = model.nodes[node.name]
        W = floats[node.name].double().numpy()
        lim = 1.0 / qn.input.inv_scale * qn.input.limit if qn.input.encoding == "static" else 1.0
        x = (rng.uniform(-1, 1, (6, node.n_in)) * lim).astype(np.float32)
        p = encode_input(P, node, x)
        a = dense_graded_output(P.kernels[node.name], p.q, qn.weight_exp)
        scale = np.abs(W) @ np.abs(x.astype(np.float64)).T          # sum |w| |x| per output
        if qn.row_scale:
            got = decode_output(P, node, Payload(a, p.scale)).astype(np.float64)
            want = (W @ x.T).T
            assert np.all(np.abs(got - want) <= 0.012 * scale.T + 1e-6), node.name
        else:
            lif = model.nodes[g.consumers(node.name)[0].dst]
            gain = lif.v_scale / 128
            want = (W @ x.T).T * gain
            assert np.all(np.abs(a - want) <= 0.012 * scale.T * gain + 1), node.name
    for node in g.of_type(ir.LIF):
        qn = model.nodes[node.name]
        if qn.input is not None:
            x = rng.uniform(-1, 1, (4, node.dim)).astype(np.float32) * qn.input.limit / qn.input.inv_scale
            q = encode_input(P, node, x).q
            assert np.all(np.abs(q - x * (qn.v_scale / 128)) <= 0.5 + 1e-3 * np.abs(q)), node.name


# ---------------------------------------------------------------------------
# The whole-model emulator: exact across batches, state, bytes
# ---------------------------------------------------------------------------
def _run_single(model, seqs):
    out = []
    for seq in seqs:
        ex = ModelEmulator(model, batch_size=1)
        steps = ex.run(np.asarray(seq))
        out.append(steps)
    return out


def _assert_batch_equals_single(model, seqs):
    single = _run_single(model, seqs)
    ex = ModelEmulator(model, batch_size=len(seqs))
    batched = ex.run(np.asarray(seqs))
    for t, step in enumerate(batched):
        for b in range(len(seqs)):
            assert np.array_equal(step.logits[b], single[b][t].logits[0]), (t, b)
            for name, s in step.spikes.items():
                assert np.array_equal(s[b], single[b][t].spikes[name][0]), (t, b, name)


def test_emulator_batch_equals_single_bundled(demo_converted, demo_heldout_tokens):
    model, _ = demo_converted
    toks = demo_heldout_tokens
    _assert_batch_equals_single(model, [toks[0:40], toks[100:140], toks[200:240]])


def test_emulator_batch_equals_single_random(random_converted):
    spec, model, _ = random_converted
    V = spec.config.vocab_size
    _assert_batch_equals_single(model, [tokens_for(V, 25, seed=s) for s in range(3)])


def test_emulator_state_save_restore_is_exact(demo_converted, demo_heldout_tokens, tmp_path):
    model, _ = demo_converted
    toks = np.asarray(demo_heldout_tokens[:60])
    ex = ModelEmulator(model)
    ex.run(toks[:30])
    np.savez(tmp_path / "state.npz", **flatten_state(ex.get_state()))
    cont = ex.run(toks[30:])
    ex2 = ModelEmulator(model)
    with np.load(tmp_path / "state.npz") as f:
        ex2.set_state(unflatten_state(f))
    again = ex2.run(toks[30:])
    for a, b in zip(cont, again):
        assert np.array_equal(a.logits, b.logits)
        assert all(np.array_equal(a.spikes[k], b.spikes[k]) for k in a.spikes)


def test_conversion_is_deterministic_to_the_byte(demo_spec):
    toks = demo_spec.tokenizer.encode("The for statement is used to iterate over the elements")
    a, _ = convert(demo_spec, toks)
    b, _ = convert(demo_spec, toks)
    assert artifact.to_bytes(a) == artifact.to_bytes(b)
    spec = random_spec(n_layer=7, n_embd=24, vocab=77, seed=2, dtype=torch.bfloat16)
    a, _ = convert(spec, tokens_for(77, 30))
    b, _ = convert(spec, tokens_for(77, 30))
    assert artifact.to_bytes(a) == artifact.to_bytes(b)


def test_artifact_roundtrip_runs_identically(random_converted, tmp_path):
    spec, model, _ = random_converted
    path = tmp_path / "m.s2l"
    artifact.save(model, path)
    loaded = artifact.load(path)
    assert loaded.nodes == model.nodes and loaded.graph.to_dict() == model.graph.to_dict()
    assert set(loaded.tensors) == set(model.tensors)
    toks = np.asarray(tokens_for(spec.config.vocab_size, 20, seed=9))
    for a, b in zip(ModelEmulator(model).run(toks), ModelEmulator(loaded).run(toks)):
        assert np.array_equal(a.logits, b.logits)


def test_artifact_carries_the_tokenizer(demo_converted):
    model, _ = demo_converted
    from converters.tokenizer import artifact_tokenizer
    tok = artifact_tokenizer(artifact.from_bytes(artifact.to_bytes(model)))
    assert tok.vocab_size == 77 and tok.decode(tok.encode("def f(x):")) == "def f(x):"


# ---------------------------------------------------------------------------
# Bad artifacts: one line each
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_artifact_bytes():
    model, _ = convert(random_spec(n_layer=1, n_embd=8, vocab=12), [1, 2, 3, 4])
    return artifact.to_bytes(model)


@pytest.mark.parametrize("case", ["empty", "truncated", "cut_tail", "bitflip", "foreign", "pth", "newer", "zero_version",
                                  "short_header", "bad_manifest"])
def test_bad_artifacts_give_one_line(small_artifact_bytes, tmp_path, case):
    data = bytearray(small_artifact_bytes)
    want = {
        "empty": "not a spike2loihi model", "truncated": "truncated", "cut_tail": "checksum", "bitflip": "checksum",
        "foreign": "not a spike2loihi model", "pth": "zip archive", "newer": "newer than",
        "zero_version": "not a valid version", "short_header": "not a spike2loihi model",
        "bad_manifest": "manifest is not valid",
    }[case]
    if case == "empty":
        data = b""
    elif case == "truncated":
        data = data[: len(data) // 4]
    elif case == "cut_tail":
        data = data[:-100]
    elif case == "bitflip":
        data[len(data) // 2] ^= 0x10
    elif case == "foreign":
        data = b"hello world, not a model at all" * 10
    elif case == "pth":
        data = b"PK\x03\x04" + bytes(200)
    elif case in ("newer", "zero_version"):
        struct.pack_into("<I", data, 8, 2 if case == "newer" else 0)
    elif case == "short_header":
        data = data[:10]
    elif case == "bad_manifest":
        import hashlib
        mlen = struct.unpack_from("<Q", data, 16)[0]
        data[24:24 + mlen] = b" " * mlen            # valid length, not JSON
        data = data[:-32] + hashlib.sha256(bytes(data[:-32])).digest()
    path = tmp_path / "bad.s2l"
    path.write_bytes(bytes(data))
    with pytest.raises(artifact.ArtifactError, match=want) as exc:
        artifact.load(path)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)


def test_artifact_missing_and_directory(tmp_path):
    with pytest.raises(artifact.ArtifactError, match="no such file"):
        artifact.load(tmp_path / "nope.s2l")
    with pytest.raises(artifact.ArtifactError, match="directory"):
        artifact.load(tmp_path)


# ---------------------------------------------------------------------------
# Accuracy (short; the long figures are in the README)
# ---------------------------------------------------------------------------
def test_converted_bundled_model_tracks_float(demo_spec, demo_converted, demo_heldout_tokens):
    """300 held-out characters: bits per character within 2% of float (a 300-token slice is noisy:
    the noise-floor model, float weights moved by +-1/2 LSB, moves by up to ~1% here), top-1
    agreement above 85%, flips growing with depth as spike chaos predicts."""
    model, _ = demo_converted
    sem = demo_spec.semantics("run")
    res = evaluate.evaluate_backends({"torch": ReferenceModel(demo_spec, sem), "emulator": EmulatorBackend(model)},
                                     demo_heldout_tokens)
    emu = res["backends"]["emulator"]
    assert abs(emu["bits_change_pct"]) < 2.0, emu
    assert emu["top1_agreement"] > 0.85
    assert emu["flip_rate_att"][0] < 0.03 and max(emu["flip_rate_att"]) < 0.12


def test_noise_floor_moves_each_weight_by_at_most_half_an_lsb(demo_spec, demo_converted):
    model, _ = demo_converted
    sem = demo_spec.semantics("run")
    base = quantize.float_weights(ReferenceModel(demo_spec, sem))
    noisy = quantize.float_weights(evaluate.perturbed_reference(demo_spec, sem, model, seed=3))
    for name in ("blocks.0.att.key", "blocks.2.att.output", "head"):
        lsb = evaluate.weight_lsb(model, name)
        lsb = lsb[:, None] if np.ndim(lsb) else lsb
        diff = (noisy[name] - base[name]).double().numpy()
        assert np.all(np.abs(diff) <= lsb / 2 * (1 + 1e-5) + 1e-7), name
        assert np.mean(np.abs(diff) > 0) > 0.9


@pytest.mark.parametrize("placement", ["host", "chip"])
def test_wide_inputs_into_wo_keep_its_weights(demo_spec, placement):
    """--act-bits 24: Wo's input grid is so fine that its weights hit the exponent floor; the input is
    coarsened until they keep their mantissa (they once all rounded to 0: no att spikes at all)."""
    toks = demo_spec.tokenizer.encode((ROOT / "examples" / "demo" / "calib.txt").read_text()[:64])
    model, records = convert_spec(demo_spec, toks, act_bits=24, placement=placement)
    by = {r.node: r for r in records}
    for i in range(demo_spec.config.n_layer):
        wo = by[f"blocks.{i}.att.output"]
        assert wo.weight_sqnr_db > 25, wo
        lif = by[f"blocks.{i}.att.lif"]
        assert lif.spike_rate_quant > 0.05 and lif.flip_rate < 0.1, lif
    assert model.manifest["report"]["top1_agreement"] > 0.85


def test_noise_floor_leaves_an_fp32_checkpoint_alone():
    """fp32 weights are the checkpoint's own tensors in the reference (.float() is the identity): the
    noise-floor model must perturb copies, not the float reference and the spec it shares them with."""
    spec = random_spec(n_layer=2, n_embd=16, vocab=40, seed=4, dtype=torch.float32)
    before = {k: t.clone() for k, t in spec.tensors.items()}
    model, _ = convert_spec(spec, tokens_for(40, 24, seed=4))
    sem = spec.semantics("run")
    ref = ReferenceModel(spec, sem)
    noisy = evaluate.perturbed_reference(spec, sem, model, seed=0)
    assert all(torch.equal(before[k], t) for k, t in spec.tensors.items())
    assert not torch.equal(quantize.float_weights(ref)["blocks.0.att.key"],
                           quantize.float_weights(noisy)["blocks.0.att.key"])
    res = evaluate.evaluate_backends({"torch": ref, "noise": noisy}, tokens_for(40, 40, seed=5), char_level=False)
    assert res["backends"]["noise"]["bits_change_pct"] != 0.0


def test_random_checkpoints_convert_and_track_float(random_converted):
    """Random checkpoints are chaotic (bpc near log2 V, every flip matters): the gate is the noise
    floor. The converted model's change in bits must stay within 1.5x the largest change of the float
    model with its weights moved by +-1/2 LSB (4 seeds), plus 1 point."""
    spec, model, _ = random_converted
    sem = spec.semantics("run")
    toks = tokens_for(spec.config.vocab_size, 80, seed=11)
    runners = {"torch": ReferenceModel(spec, sem), "emulator": EmulatorBackend(model)}
    for seed in range(4):
        runners[f"noise {seed}"] = evaluate.perturbed_reference(spec, sem, model, seed=seed)
    res = evaluate.evaluate_backends(runners, toks)["backends"]
    emu = res["emulator"]["bits_change_pct"]
    floor = max(abs(res[f"noise {s}"]["bits_change_pct"]) for s in range(4))
    assert math.isfinite(res["emulator"]["bits"]) and abs(emu) <= 1.5 * floor + 1.0, (emu, floor)


def test_stats_count_each_spike_once(demo_converted, demo_heldout_tokens):
    model, _ = demo_converted
    ex = ModelEmulator(model, stats=True)
    steps = ex.run(np.asarray(demo_heldout_tokens[:20]))
    for name in steps[0].spikes:
        assert ex.stats.counts[name]["spikes"] == sum(int(s.spikes[name].sum()) for s in steps) > 0
        assert ex.stats.counts[name]["neuron_steps"] == 20 * model.graph.nodes[name].dim
