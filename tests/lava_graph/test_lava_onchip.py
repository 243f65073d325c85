"""`--placement chip` ops as Lava processes in Lava's simulator (fixed_pt) against the emulator.

Our processes (FxpLayerNorm, FxpSigmoid, TokenShiftCat) and our use of Lava's own (ProdNeuron,
GradedReluVec + ProdNeuron for relu², GradedVec with a DelayDense x path and a Dense spike path
for the residual) are fed the integers the emulator saw in a converted bundled model, token by
token, and must send exactly what the emulator computed from them."""
import numpy as np
import pytest

pytest.importorskip("lava.magma.core.run_configs")

from conftest import ROOT, convert_spec  # noqa: E402
from spike2loihi.execute import onchip_ops as oc  # noqa: E402
from spike2loihi.execute.model_emulator import ModelEmulator  # noqa: E402

pytestmark = pytest.mark.lava   # every test here runs Lava's simulator


T = 6


@pytest.fixture(scope="module")
def traced(demo_spec):
    import sys

    sys.path.insert(0, str(ROOT / "examples"))
    import demo_corpus

    train, held = demo_corpus.corpus()
    model = convert_spec(demo_spec, demo_spec.tokenizer.encode(train[:200]), placement="chip")[0]
    vals, steps = {}, []
    ex = ModelEmulator(model, trace=lambda name, v: vals.__setitem__(name, getattr(v, "q", v)))
    for tok in demo_spec.tokenizer.encode(held[:T]):
        vals.clear()
        ex.step([tok])
        steps.append(dict(vals))
    return model, steps


def series(steps, name):
    """(n, T) int32: a node's integers over the tokens (a RingBuffer source's layout)."""
    return np.stack([np.asarray(s[name][0], dtype=np.int64) for s in steps], axis=1).astype(np.int32)


def test_chip_ops_in_lavas_simulator_equal_the_emulator(traced):
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense, DelayDense
    from lava.proc.graded.process import GradedReluVec, GradedVec
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.prodneuron.process import ProdNeuron
    from lava.utils.weightutils import SignMode

    from spike2loihi.lava.procs.onchip import FxpLayerNorm, FxpSigmoid, TokenShiftCat

    model, steps = traced
    q = model.nodes
    b = "blocks.1."
    C = model.graph.nodes[b + "ln1"].dim
    F = model.graph.nodes[b + "ffn.relu2"].dim
    procs, sinks, want, lag = {}, {}, {}, {}

    def sink(name, port, n, expected, delay=0):
        sinks[name] = Sink(shape=(n,), buffer=T + 1)   # the run's every step (a ring buffer)
        port.connect(sinks[name].a_in)
        want[name], lag[name] = expected, delay

    # LayerNorm (blocks.1.ln1 on the att residual's integers)
    ln = q[b + "ln1"]
    src = Source(data=series(steps, "blocks.0.ffn.residual"))
    procs["ln"] = FxpLayerNorm((C,), ln.datapath(),
                               model.tensors[ln.gamma_q], model.tensors[ln.beta_q])
    src.s_out.connect(procs["ln"].a_in)
    sink("ln", procs["ln"].s_out, C, series(steps, b + "ln1"))
    # token shift + mix concatenation, gated on every step (teacher forcing)
    procs["shift"] = TokenShiftCat((C,))
    procs["ln"].s_out.connect(procs["shift"].a_in)
    Source(data=np.ones((1, T), np.int32)).s_out.connect(procs["shift"].gate)
    sink("shift", procs["shift"].s_out, 2 * C, series(steps, b + "att.mix_k"))
    # sigmoid over a slice of its input
    r = series(steps, b + "att.receptance")
    wide = np.concatenate([np.zeros_like(r), r], axis=0)            # the receptance in the upper half
    procs["sig"] = FxpSigmoid(2 * C, C, 2 * C, q[b + "att.sigmoid"].in_frac)
    Source(data=wide).s_out.connect(procs["sig"].a_in)
    sink("sig", procs["sig"].s_out, C, series(steps, b + "att.sigmoid"))
    # products: r * wkv (wkv encoded from the host) and the ffn gate
    for key, a, bb in (("rwkv", b + "att.sigmoid", b + "att.rwkv.in"), ("gate", b + "ffn.sigmoid", b + "ffn.value")):
        node = b + ("att.rwkv" if key == "rwkv" else "ffn.gate")
        procs[key] = ProdNeuron(shape=(C,), vth=0, exp=q[node].exp)
        Source(data=series(steps, a)).s_out.connect(procs[key].a_in1)
        Source(data=series(steps, bb)).s_out.connect(procs[key].a_in2)
        sink(key, procs[key].s_out, C, series(steps, node))
    # relu²: GradedReluVec, then ProdNeuron squares it
    procs["relu"] = GradedReluVec(shape=(F,), vth=0)
    Source(data=series(steps, b + "ffn.key")).s_out.connect(procs["relu"].a_in)
    procs["sq"] = ProdNeuron(shape=(F,), vth=0, exp=q[b + "ffn.relu2"].exp)
    procs["relu"].s_out.connect(procs["sq"].a_in1)
    procs["relu"].s_out.connect(procs["sq"].a_in2)
    sink("sq", procs["sq"].s_out, F, series(steps, b + "ffn.relu2"))
    # residual: GradedVec summing x (a DelayDense of 2 I >> 1) and the spikes (a Dense of 2^frac)
    res = q[b + "att.residual"]
    procs["res"] = GradedVec(shape=(C,), vth=0)
    xd = DelayDense(weights=2 * np.eye(C, dtype=np.int32), delays=0, weight_exp=-1, num_message_bits=24,
                    sign_mode=SignMode.MIXED)
    src.s_out.connect(xd.s_in)                                   # the LayerNorm's input is x
    from spike2loihi.lava.lowering import spike_weight

    w, e = spike_weight("res", res.spike_weight)
    sd = Dense(weights=w * np.eye(C, dtype=np.int32), weight_exp=e, num_message_bits=0, sign_mode=SignMode.MIXED)
    Source(data=series(steps, b + "att.lif")).s_out.connect(sd.s_in)
    xd.a_out.connect(procs["res"].a_in)
    sd.a_out.connect(procs["res"].a_in)
    sink("res", procs["res"].s_out, C, series(steps, b + "att.residual"), delay=1)

    got = {}
    # Lava compiles the connected component of the process it runs: one run per component
    components = {"ln": ("ln", "shift", "res"), "sig": ("sig",), "rwkv": ("rwkv",), "gate": ("gate",), "sq": ("sq",)}
    for anchor_name, names in components.items():
        anchor = procs[anchor_name]
        try:
            anchor.run(condition=RunSteps(num_steps=T + 1), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            got.update({name: np.asarray(sinks[name].data.get()).astype(np.int64) for name in names})
        finally:
            anchor.stop()
    assert set(got) == set(want)
    for name, exp in want.items():
        g = got[name][:, lag[name]:lag[name] + T]
        assert np.array_equal(g, exp.astype(np.int64)), (name, np.argwhere(g != exp)[:3])
    assert np.any(want["sig"]) and np.any(want["res"]) and np.any(want["sq"])
    assert oc.STATE_BITS == 24


def _emulated(model, prompt, n_new):
    """Greedy: the emulator's logits (prompt and generated), spikes, and generated tokens."""
    from spike2loihi.execute.model_emulator import spikes_by_population

    ex = ModelEmulator(model)
    logits, att, ffn, gen = [], [], [], []

    def step(tok):
        st = ex.step([tok])
        a, f = spikes_by_population(model.graph, st.spikes)
        logits.append(st.logits[0]), att.append(a), ffn.append(f)
        return int(np.argmax(st.logits[0]))

    for t in prompt:
        nxt = step(t)
    for i in range(n_new):
        gen.append(nxt)
        if i + 1 < n_new:
            nxt = step(nxt)
    return np.array(logits), np.array(att), np.array(ffn), gen


@pytest.mark.parametrize("n_layer,width,seed,placement", [(2, 16, 3, "chip"), (7, 8, 11, "chip"),
                                                         (2, 16, 3, "chip-wkv"), (7, 8, 11, "chip-wkv")])
def test_chip_placement_graph_equals_the_emulator(n_layer, width, seed, placement):
    """The whole `--placement chip` graph in Lava's simulator (short runs; the bundled model and
    256 + 32 tokens are tests/long_lava_equality.py --placement chip): teacher-forced logits and
    spikes of both populations, then greedy generation inside the graph, identical to the emulator.
    7 layers: the RESCALE halving after block 5 changes the residual's grid. chip-wkv: the WKV on the
    chip too (FxpWKV), one host round trip per token."""
    from converters.spikegpt import spec_from_state_dict
    from conftest import spiking_state_dict
    from spike2loihi.lava.runtime import run_graph

    spec = spec_from_state_dict(spiking_state_dict(n_layer, width, 40, seed=seed))
    toks = [int(t) for t in np.random.default_rng(seed).integers(0, 40, 32)]
    model = convert_spec(spec, toks, placement=placement)[0]
    assert any(n.halve for n in model.graph.of_type(__import__("spike2loihi.convert.ir", fromlist=["Residual"]).Residual)) == (n_layer > 6)
    prompt, n_new = toks[:10], 5
    res = run_graph(model, prompt, n_new)
    logits, att, ffn, gen = _emulated(model, prompt, n_new)
    assert res.generated == gen
    assert res.logits.shape == logits.shape and np.array_equal(res.logits, logits)
    assert np.array_equal(res.att_spikes.astype(bool), att) and np.array_equal(res.ffn_spikes.astype(bool), ffn)
    assert att.any() and ffn.any()
