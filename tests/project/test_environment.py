"""The environment promises of DESIGN.md: Lava runs fixed point on Python 3.10, and
the model modules work where Lava cannot even be imported."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_python_is_310():
    assert sys.version_info[:2] == (3, 10)


def test_lava_dl_netx_imports():
    import lava.lib.dl.netx as netx

    assert hasattr(netx, "hdf5")


def _shift_toward_zero(x, n):
    return int(np.sign(x)) * (abs(int(x)) >> n)


@pytest.mark.lava
def test_dense_to_lif_fixed_point_matches_hand_computation():
    """Spikes -> Dense -> LIF in Loihi2SimCfg(fixed_pt); u, v against DESIGN.md's equations."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF

    spikes = np.array([[1, 0, 1, 1, 0, 0, 1, 0], [0, 1, 1, 0, 0, 1, 0, 0]])
    weights = np.array([[40, -22], [-100, 64]])  # MIXED 8 bit: Lava makes them even
    du, dv, vth, bias, bias_exp = 1000, 2048, 30, 5, 2
    src = RingBuffer(data=spikes)
    dense = Dense(weights=weights, weight_exp=1)
    lif = LIF(shape=(2,), du=du, dv=dv, vth=vth, bias_mant=bias, bias_exp=bias_exp)
    src.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    got_u, got_v = [], []
    try:
        for _ in range(spikes.shape[1]):
            lif.run(condition=RunSteps(num_steps=1), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            got_u.append(lif.u.get().astype(int).tolist())
            got_v.append(lif.v.get().astype(int).tolist())
    finally:
        lif.stop()

    w_eff = (weights // 2) * 2  # truncation of the lowest bit (MIXED sign mode)
    u, v = [0, 0], [0, 0]
    prev_acc = [0, 0]
    exp_u, exp_v = [], []
    for t in range(spikes.shape[1]):
        a_in = prev_acc  # Dense sends last step's accumulation first
        prev_acc = [int((w_eff[n] * spikes[:, t]).sum()) << 1 for n in range(2)]
        for n in range(2):
            u[n] = _shift_toward_zero(u[n] * (4096 - (du + 1)), 12) + (a_in[n] << 6)
            v[n] = _shift_toward_zero(v[n] * (4096 - dv), 12) + u[n] + (bias << bias_exp)
            if v[n] > (vth << 6):
                v[n] = 0
        exp_u.append(list(u))
        exp_v.append(list(v))
    assert got_u == exp_u
    assert got_v == exp_v
    assert any(x == 0 for row in exp_v[1:] for x in row) and max(max(r) for r in exp_u) > 0


@pytest.mark.subprocess
def test_model_modules_work_where_lava_cannot_be_imported(tmp_path):
    """Reader, reference, sequence model and CLI inspect run with `import lava` failing."""
    fake = tmp_path / "fake"
    (fake / "lava").mkdir(parents=True)
    (fake / "lava" / "__init__.py").write_text("raise ImportError('lava is not available here')\n")
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        try:
            import lava
        except ImportError:
            pass
        else:
            raise SystemExit("the fake lava was not first on the path")
        from _factories import random_state_dict
        from converters.spikegpt import spec_from_state_dict
        from spike2loihi.model.reference import ReferenceModel
        from spike2loihi.model.sequence import from_spec
        import spike2loihi.cli.app, spike2loihi.reports.evaluate, spike2loihi.backends.generate
        spec = spec_from_state_dict(random_state_dict(2, 8, 11, seed=0))
        out, _ = ReferenceModel(spec).forward_tokens([1, 2, 3])
        from_spec(spec)(torch.tensor([[1, 2, 3]]))
        assert not any(m == "lava" or m.startswith("lava.") for m in sys.modules if sys.modules[m]), "lava got imported"
        print("OK", tuple(out["logits"].shape))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake), str(ROOT)]))
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "OK (3, 11)" in res.stdout
