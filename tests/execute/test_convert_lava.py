"""The converted model's chip nodes, run in Lava's own Dense and LIF processes, equal the emulator.

The integer parameters a conversion writes (mantissa << truncate bits, weight_exp,
num_message_bits, du, dv, vth) are handed to Lava 0.10.0's bit-accurate processes
under `Loihi2SimCfg(select_tag="fixed_pt")`, fed the payloads the whole-model
emulator encoded for real text on the bundled model; every accumulation and every
spike must match. (The full graph with host processes is the Lava-graph issue.)
"""
import numpy as np
import pytest

pytest.importorskip("lava")

pytestmark = pytest.mark.lava   # every test here runs Lava's simulator

from _lava_helpers import run_lava  # noqa: E402
from spike2loihi.execute import process_emulator as emu  # noqa: E402
from spike2loihi.execute.model_emulator import ModelEmulator  # noqa: E402
from spike2loihi.convert.fixed_point import SignMode  # noqa: E402


def _dense(model, name):
    qn = model.nodes[name]
    w = model.tensors[qn.mantissa].astype(np.int64) << qn.truncate_bits
    return emu.DenseProc(weights=w, weight_exp=qn.weight_exp, num_weight_bits=qn.num_weight_bits,
                     sign_mode=SignMode[qn.sign_mode], num_message_bits=qn.input.bits)


def _lif(model, name, n):
    qn = model.nodes[name]
    return emu.LIFProc(shape=(n,), du=qn.du, dv=qn.dv, vth=qn.vth, bias_mant=0, bias_exp=0)


def test_chip_nodes_of_a_converted_model_equal_lava(demo_converted, demo_heldout_tokens):
    model, _ = demo_converted
    T = 24
    seen = {}
    ex = ModelEmulator(model, trace=lambda name, v: seen.setdefault(name, []).append(v))
    ex.run(np.asarray(demo_heldout_tokens[:T]))
    # Wo -> att LIF of block 1 (static encoding), and a host-bound Dense (dynamic encoding)
    for name, lif in (("blocks.1.att.output", "blocks.1.att.lif"), ("blocks.2.ffn.value", None)):
        g = emu.ProcessGraph()
        pay = np.stack([p.q[0] for p in seen[name + ".in"]], axis=1)            # (n_in, T)
        src = g.add("src", emu.SourceProc(data=np.concatenate([pay, np.zeros_like(pay[:, :1])], axis=1)))
        d = g.add(name, _dense(model, name))
        g.connect(src, d)
        if lif:
            g.add(lif, _lif(model, lif, g.nodes[d].n_out))
            g.connect(d, lif)
        rec = run_lava(g, T + 1)
        # Dense output at step t+1 is the accumulation of token t; the LIF fires in that same step.
        want = np.stack([p.q[0] for p in seen[name]])
        assert np.array_equal(rec[name]["a_out"][1:, 0], want), name
        if lif:
            want = np.stack([p.q[0] for p in seen[lif]])
            got = rec[lif]["s"][1:, 0]
            assert want.sum() > 50 and np.array_equal(got, want)
