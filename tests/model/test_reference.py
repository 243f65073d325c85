"""The float reference against independent implementations of SpikeGPT's equations.

- `official_style_forward` below re-derives model_run.py's arithmetic with
  spikingjelly's own LIFNode and ATan (installed, not ours) and the official
  [5 * n_layer, C] state layout; the reference must match it bit for bit.
- WKV against a float64 transcription of the equations.
- RNN mode against sequence mode (train semantics), and state save/restore.
"""
import io

import pytest
import torch
import torch.nn.functional as F

from conftest import spiking_state_dict
from converters.spikegpt import spec_from_state_dict
from spike2loihi.model.reference import ReferenceModel, RNNState, lif_step, wkv_step
from spike2loihi.model.sequence import from_spec

from spikingjelly.clock_driven import neuron as sj_neuron  # noqa: E402  (independent LIF)
from spikingjelly.clock_driven import surrogate as sj_surrogate  # noqa: E402

# Seeded random checkpoints: > 6 layers exercise RESCALE; vocab 77 the binary embedding;
# fp16/bf16 the upcast order. Weight scale chosen so that both LIFs fire often.
RANDOM_CASES = [
    dict(n_layer=8, n_embd=32, vocab=50, seed=1, dtype=torch.float32),
    dict(n_layer=13, n_embd=24, vocab=77, seed=2, dtype=torch.bfloat16),
    dict(n_layer=7, n_embd=16, vocab=77, seed=3, dtype=torch.float16),
    dict(n_layer=2, n_embd=40, vocab=300, seed=4, dtype=torch.float32),
]


def _random_spec(case):
    return spec_from_state_dict(spiking_state_dict(case["n_layer"], case["n_embd"], case["vocab"],
                                                  seed=case["seed"], dtype=case["dtype"]))


def official_style_forward(spec, tokens):
    """model_run.py's computation, written independently: returns logits [T, V] and spikes."""
    cfg = spec.config
    L, C = cfg.n_layer, cfg.n_embd
    w = {}
    for k, t in spec.tensors.items():
        block = int(k.split(".")[1]) if k.startswith("blocks.") else 0
        if k.endswith("att.output.weight") or k.endswith("ffn.value.weight"):
            t = t / (2 ** int(block // 6))
        if ".time_" in k:
            t = t.squeeze()
        if k.endswith(".time_decay"):
            t = -torch.exp(t.float())
        w[k] = t.float()
    state = torch.zeros(L * 5, C)
    for i in range(L):
        state[5 * i + 4] -= 1e30
    mem1 = [sj_neuron.LIFNode() for _ in range(L)]
    mem2 = [sj_neuron.LIFNode() for _ in range(L)]
    ln = lambda x, n: F.layer_norm(x, (C,), weight=w[n + ".weight"], bias=w[n + ".bias"])  # noqa: E731
    out_logits, out_att, out_ffn = [], [], []
    for tok in tokens:
        x = w["emb.weight"][tok]
        if cfg.vocab_size == 77:
            x = sj_surrogate.ATan()(x)
        att_s, ffn_s = [], []
        for i in range(L):
            p = f"blocks.{i}."
            if i == 0:
                x = ln(x, p + "ln0")
            h = ln(x, p + "ln1")
            xx = state[5 * i + 1]
            xk = h * w[p + "att.time_mix_k"] + xx * (1 - w[p + "att.time_mix_k"])
            xv = h * w[p + "att.time_mix_v"] + xx * (1 - w[p + "att.time_mix_v"])
            xr = h * w[p + "att.time_mix_r"] + xx * (1 - w[p + "att.time_mix_r"])
            state[5 * i + 1] = h
            r = torch.sigmoid(w[p + "att.receptance.weight"] @ xr)
            k = w[p + "att.key.weight"] @ xk
            v = w[p + "att.value.weight"] @ xv
            aa, bb, pp = state[5 * i + 2], state[5 * i + 3], state[5 * i + 4]
            ww = w[p + "att.time_first"] + k
            q = torch.maximum(pp, ww)
            e1, e2 = torch.exp(pp - q), torch.exp(ww - q)
            a, b = e1 * aa + e2 * v, e1 * bb + e2
            ww = pp + w[p + "att.time_decay"]
            q = torch.maximum(ww, k)
            e1, e2 = torch.exp(ww - q), torch.exp(k - q)
            state[5 * i + 2], state[5 * i + 3], state[5 * i + 4] = e1 * aa + e2 * v, e1 * bb + e2, q
            s = mem1[i](w[p + "att.output.weight"] @ (r * (a / b)))
            att_s.append(s)
            x = x + s
            h = ln(x, p + "ln2")
            xx = state[5 * i + 0]
            xk = h * w[p + "ffn.time_mix_k"] + xx * (1 - w[p + "ffn.time_mix_k"])
            xr = h * w[p + "ffn.time_mix_r"] + xx * (1 - w[p + "ffn.time_mix_r"])
            state[5 * i + 0] = h
            r = torch.sigmoid(w[p + "ffn.receptance.weight"] @ xr)
            kk = torch.square(torch.relu(w[p + "ffn.key.weight"] @ xk))
            s = mem2[i](r * (w[p + "ffn.value.weight"] @ kk))
            ffn_s.append(s)
            x = x + s
            if (i + 1) % 6 == 0:
                x = x / 2
        out_logits.append(w["head.weight"] @ ln(x, "ln_out"))
        out_att.append(torch.stack(att_s))
        out_ffn.append(torch.stack(ffn_s))
    return torch.stack(out_logits), torch.stack(out_att), torch.stack(out_ffn)


def _assert_bit_equal(spec, tokens):
    ours, _ = ReferenceModel(spec).forward_tokens(tokens, keep=("logits", "att_spikes", "ffn_spikes"))
    logits, att, ffn = official_style_forward(spec, tokens)
    assert torch.equal(ours["att_spikes"], att)
    assert torch.equal(ours["ffn_spikes"], ffn)
    assert torch.equal(ours["logits"], logits)
    return ours


@pytest.mark.parametrize("case", RANDOM_CASES, ids=lambda c: f"L{c['n_layer']}-C{c['n_embd']}-V{c['vocab']}")
def test_reference_bit_equal_to_official_arithmetic_on_random_checkpoints(case):
    spec = _random_spec(case)
    tokens = torch.randint(0, case["vocab"], (60,), generator=torch.Generator().manual_seed(7)).tolist()
    ours = _assert_bit_equal(spec, tokens)
    # The comparison is only meaningful if neurons fire, and not all of them.
    for key in ("att_spikes", "ffn_spikes"):
        rate = float(ours[key].mean())
        assert 0.02 < rate < 0.9, (key, rate)


def test_reference_bit_equal_to_official_arithmetic_on_bundled_model(demo_spec, demo_heldout_tokens):
    ours = _assert_bit_equal(demo_spec, demo_heldout_tokens[:120])
    assert float(ours["ffn_spikes"].mean()) > 0.01


def test_lif_equals_spikingjelly_lifnode_exactly():
    g = torch.Generator().manual_seed(0)
    node = sj_neuron.LIFNode()
    v = torch.zeros(4096)
    # Inputs that land exactly on the threshold (x = 2 from rest gives v = 1) included.
    for t in range(200):
        x = torch.randn(4096, generator=g) * 1.5
        x[:64] = 2.0
        x[64:128] = torch.nextafter(torch.tensor(2.0), torch.tensor(0.0))
        ref = node(x)
        s, v = lif_step(v, x)
        assert torch.equal(s, ref), t
        assert torch.equal(v, node.v), t


def test_wkv_step_matches_float64_equations():
    g = torch.Generator().manual_seed(1)
    C = 512
    u = torch.randn(C, generator=g)
    w = -torch.exp(torch.rand(C, generator=g) * 7 - 6)
    u64, w64 = u.double(), w.double()
    aa64, bb64, mag64 = (torch.zeros(C, dtype=torch.float64) for _ in range(3))
    aa, bb, pp = torch.zeros(C), torch.zeros(C), torch.full((C,), -1e30)
    for t in range(40):
        k = torch.randn(C, generator=g) * 4
        v = torch.randn(C, generator=g)
        wkv, aa, bb, pp = wkv_step(u, w, k, v, aa, bb, pp)
        # The equations in plain float64 (no max trick): decayed sums of exp(k_i) v_i.
        k64, v64 = k.double(), v.double()
        num = aa64 + torch.exp(u64 + k64) * v64
        den = bb64 + torch.exp(u64 + k64)
        # Tolerance, relative to the sum of |terms| (not to the possibly cancelling signed
        # sum): the log-scale pp (|pp| <= ~20 here) is rounded in fp32 every step, an absolute
        # error of ~|pp| * 6e-8 that becomes a relative error of the sums; over 40 steps that is
        # <= 5e-5 (measured: 1.7e-5 for the state, 4.5e-6 for wkv). A wrong or missing term is
        # off by far more.
        tol = 2e-5 * (mag64 + torch.exp(u64 + k64) * v64.abs()) / den
        assert ((wkv.double() - num / den).abs() <= tol).all(), t
        aa64 = torch.exp(w64) * aa64 + torch.exp(k64) * v64
        bb64 = torch.exp(w64) * bb64 + torch.exp(k64)
        mag64 = torch.exp(w64) * mag64 + torch.exp(k64) * v64.abs()
        # The state holds the same sums, scaled by exp(-pp).
        scale = torch.exp(pp.double())
        assert ((aa.double() * scale - aa64).abs() <= 1e-4 * mag64).all(), t
        assert ((bb.double() * scale - bb64).abs() <= 1e-4 * bb64).all(), t


@pytest.mark.parametrize("case", RANDOM_CASES[:3], ids=lambda c: f"L{c['n_layer']}")
def test_sequence_mode_equals_rnn_mode_under_train_semantics(case):
    spec = _random_spec(case)
    sem = spec.semantics("train")
    tokens = torch.randint(0, case["vocab"], (1, 80), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits, att, ffn = from_spec(spec, sem)(tokens, return_spikes=True)
    ours, _ = ReferenceModel(spec, sem).forward_tokens(tokens[0].tolist(),
                                                       keep=("logits", "att_spikes", "ffn_spikes"))
    assert torch.equal(att[0], ours["att_spikes"])
    assert torch.equal(ffn[0], ours["ffn_spikes"])
    torch.testing.assert_close(logits[0], ours["logits"], rtol=1e-4, atol=1e-4)


def test_sequence_mode_has_surrogate_gradients():
    spec = _random_spec(RANDOM_CASES[0])
    model = from_spec(spec).train()
    tokens = torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(0))
    loss = F.cross_entropy(model(tokens).reshape(-1, 50), tokens.reshape(-1))
    loss.backward()
    g = model.blocks[0].att.output.weight.grad  # reaches the LIF input only through the surrogate
    assert g is not None and float(g.abs().sum()) > 0
    assert float(model.emb.weight.grad.abs().sum()) > 0  # through the binary embedding's surrogate


def test_state_save_and_restore_gives_identical_results():
    spec = _random_spec(RANDOM_CASES[0])
    model = ReferenceModel(spec)
    toks = torch.randint(0, 50, (50,), generator=torch.Generator().manual_seed(11)).tolist()
    prefix, rest = toks[:30], toks[30:]
    _, state = model.forward_tokens(prefix)
    buf = io.BytesIO()
    torch.save(state.to_dict(), buf)  # the saved form loads without pickled code
    first, _ = model.forward_tokens(rest, state, keep=("logits", "att_spikes", "ffn_spikes"))
    buf.seek(0)
    restored = RNNState.from_dict(torch.load(buf, weights_only=True))
    assert restored.position == 30
    again, _ = model.forward_tokens(rest, restored, keep=("logits", "att_spikes", "ffn_spikes"))
    whole, _ = model.forward_tokens(toks, keep=("logits",))
    for k in first:
        assert torch.equal(first[k], again[k]), k
    assert torch.equal(whole["logits"][30:], first["logits"])


def test_semantics_change_the_computation_where_the_quirks_apply():
    spec = _random_spec(RANDOM_CASES[0])  # 8 layers, vocab 50: run = no binary emb, rescale from block 6
    toks = list(range(20))
    run, _ = ReferenceModel(spec, spec.semantics("run")).forward_tokens(toks)
    train, _ = ReferenceModel(spec, spec.semantics("train")).forward_tokens(toks)
    assert not torch.equal(run["logits"], train["logits"])
    assert spec.semantics("run").binary_embedding is False
    assert spec.semantics("train").binary_embedding is True
    assert spec.semantics("run").weight_divisor(13) == 4


# --------------------------------------------------------------------------- issue 15: exact edge cases

def test_wkv_step_stays_finite_and_exact_with_large_time_first():
    """time_first ~ 100 and k up to ~240: exp(time_first) alone overflows fp32 (> 88.7).

    The first half must take its max against ww = time_first + k (not k alone), otherwise
    exp(ww - p) = exp(time_first) is inf and the output NaN. Compared over 12 steps of
    carried state (aa, bb, pp from pp = -1e30) with the plain float64 sums.
    """
    g = torch.Generator().manual_seed(3)
    C, T = 256, 12
    u = 100 + (torch.rand(C, generator=g) * 2 - 1) * 8  # in [92, 108]
    w = -torch.exp(torch.rand(C, generator=g) * 7 - 6)
    assert torch.isinf(torch.exp(u)).all()  # the naive fp32 form cannot represent these terms
    u64, w64 = u.double(), w.double()
    aa64, bb64, mag64 = (torch.zeros(C, dtype=torch.float64) for _ in range(3))
    aa, bb, pp = torch.zeros(C), torch.zeros(C), torch.full((C,), -1e30)
    history_dominant = 0
    for t in range(T):
        # Wide range: the current token dominates where k is large, the history where it is small.
        k = torch.rand(C, generator=g) * 300 - 60
        v = torch.randn(C, generator=g)
        wkv, aa, bb, pp = wkv_step(u, w, k, v, aa, bb, pp)
        for name, x in (("wkv", wkv), ("aa", aa), ("bb", bb), ("pp", pp)):
            assert torch.isfinite(x).all(), (t, name)
        # float64 transcription of the equations, no max trick (exp(u + k) <= e^370 fits):
        # wkv_t = (sum_{i<t} e^{(t-1-i)w + k_i} v_i + e^{u + k_t} v_t)
        #       / (sum_{i<t} e^{(t-1-i)w + k_i}     + e^{u + k_t})
        k64, v64 = k.double(), v.double()
        cur = torch.exp(u64 + k64)
        num, den = aa64 + cur * v64, bb64 + cur
        history_dominant += int((bb64 / den > 0.5).sum())
        # Tolerance relative to the sum of |terms| (as in the test above). Here |pp| < 256, so
        # each fp32 rounding of a log-scale quantity (pp + w, k - p) is off by <= 2^-17 ~ 7.6e-6
        # absolute, i.e. relative in the term it exponentiates; two per step over T = 12 steps
        # give <= 12 * 2^-16 = 1.8e-4, plus ~1e-6 from the exp/mul/div roundings. Measured: 5e-5
        # (wkv) and 8e-5 (state). Overflow (the wrong max) gives inf/NaN, caught above.
        tol = 2e-4 * (mag64 + cur * v64.abs()) / den
        assert ((wkv.double() - num / den).abs() <= tol).all(), t
        aa64 = torch.exp(w64) * aa64 + torch.exp(k64) * v64
        bb64 = torch.exp(w64) * bb64 + torch.exp(k64)
        mag64 = torch.exp(w64) * mag64 + torch.exp(k64) * v64.abs()
        scale = torch.exp(pp.double())  # pp <= ~240: e^pp fits in float64
        assert ((aa.double() * scale - aa64).abs() <= 2e-4 * mag64).all(), t
        assert ((bb.double() * scale - bb64).abs() <= 2e-4 * bb64).all(), t
    # The carried state matters: in a good share of (step, channel) the history outweighs the token.
    assert history_dominant > 0.2 * C * T


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_binary_embedding_maps_exact_zero_to_one(dtype):
    """SpikeGPT's binary embedding is the ATan surrogate's Heaviside forward: x >= 0, so 0 -> 1.

    Random checkpoints never hold an exact 0, so zeros (and a -0.0) are planted in the
    embeddings of tokens that are fed; run semantics apply the binary embedding at vocab 77.
    """
    sd = spiking_state_dict(7, 16, 77, seed=5, dtype=dtype)
    emb = sd["emb.weight"].clone()
    zeroed = [0, 9, 33, 76]
    for j, tok in enumerate(zeroed):
        cols = torch.arange(j, 16, 4)[:3]  # 3 entries per token, mixed signs before zeroing
        emb[tok, cols] = 0.0
        emb[tok, (j + 1) % 16] = -0.0  # -0.0 >= 0 too
    sd["emb.weight"] = emb
    spec = spec_from_state_dict(sd)
    assert spec.semantics("run").binary_embedding
    tokens = torch.randint(0, 77, (40,), generator=torch.Generator().manual_seed(9)).tolist()
    tokens[::5] = zeroed * 2  # every fifth token has zeros in its embedding
    ours = _assert_bit_equal(spec, tokens)

    # Known to be sensitive: `> 0` would give other binary vectors for these tokens ...
    for tok in zeroed:
        x = emb[tok].float()
        assert not torch.equal((x >= 0).float(), (x > 0).float()), tok
    # ... and other outputs: the official arithmetic with the zeros made negative is `> 0` semantics.
    gt_sd = dict(sd, **{"emb.weight": torch.where(emb == 0, torch.full_like(emb, -1.0), emb)})
    gt_logits, _, _ = official_style_forward(spec_from_state_dict(gt_sd), tokens)
    assert not torch.equal(gt_logits, ours["logits"])
