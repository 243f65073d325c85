"""The converted model as a Lava process graph in Lava's CPU simulator, against the emulator.

Short runs here (the long figures are in the README): teacher-forced prefill and
generation inside the graph give the emulator's logits and spikes exactly, on the
bundled model and on seeded random checkpoints (8 layers with RESCALE, bf16); the
runtime is stopped on success, on error and on Ctrl-C, leaving no process behind.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT
from spike2loihi.convert import artifact, ir
from spike2loihi.backends import generate
from spike2loihi.backends.emulator import EmulatorBackend
from spike2loihi.execute.model_emulator import ModelEmulator, spikes_by_population
from spike2loihi.convert.schedule import schedule
from conftest import convert_spec as convert, random_spec, tokens_for

pytest.importorskip("lava")

pytestmark = pytest.mark.lava   # every test here runs Lava's simulator

from spike2loihi.lava.runtime import LavaRunError, _descendants, run_graph  # noqa: E402


def test_schedule_of_the_graded_mapping(demo_spec):
    g = ir.build_graph(demo_spec.config, demo_spec.semantics("run"))
    s = schedule(g)
    L = demo_spec.config.n_layer
    # per block: (key|value|receptance), output, ffn key, ffn value; then the head
    assert s.critical_path == 4 * L + 1 and s.token_period == 4 * L + 2
    assert s.offsets["blocks.0.att.lif"] == s.offsets["blocks.0.att.output"] + 1
    assert s.offsets["blocks.0.ffn.gate"] == s.offsets["blocks.0.ffn.value"] + 1
    assert s.steps_for(10, 0) == 10 + s.critical_path and s.steps_for(10, 3) == 10 + s.critical_path + 2 * s.token_period


def _emulator_run(model, prompt, n_new, **sampling):
    """The emulator's prompt logits/spikes and the generate loop's tokens, logits and spikes."""
    steps = ModelEmulator(model).run(np.asarray(prompt))
    res = generate.run(EmulatorBackend(model), prompt, max_new_tokens=n_new, keep_logits=True, keep_spikes=True,
                       **sampling)
    return steps, res


def _assert_equal_to_emulator(model, prompt, n_new, **sampling):
    sampling = {"greedy": True, **sampling}
    lava = run_graph(model, prompt, n_new, **sampling)
    steps, emu = _emulator_run(model, prompt, n_new, **sampling)
    T = len(prompt)
    assert np.array_equal(lava.logits[:T], np.stack([s.logits[0] for s in steps]))
    att = np.stack([spikes_by_population(model.graph, s.spikes)[0] for s in steps])
    ffn = np.stack([spikes_by_population(model.graph, s.spikes)[1] for s in steps])
    assert np.array_equal(lava.att_spikes[:T].astype(bool), att)
    assert np.array_equal(lava.ffn_spikes[:T].astype(bool), ffn)
    assert lava.generated == emu.generated_tokens
    # generated tokens run through the graph too: the whole sequence, teacher forced, is the emulator's
    if n_new > 1:
        full = prompt + emu.generated_tokens[:-1]
        steps = ModelEmulator(model).run(np.asarray(full))
        assert np.array_equal(lava.logits, np.stack([s.logits[0] for s in steps]))
        att = np.stack([spikes_by_population(model.graph, s.spikes)[0] for s in steps])
        assert np.array_equal(lava.att_spikes.astype(bool), att)
    assert lava.steps == model.schedule.steps_for(T, n_new)
    return lava


def test_bundled_model_prefill_and_greedy_generation_equal_the_emulator(demo_converted, demo_heldout_tokens):
    model, _ = demo_converted
    lava = _assert_equal_to_emulator(model, demo_heldout_tokens[:24], 6)
    assert lava.att_spikes.sum() > 100


def test_random_rescale_bf16_checkpoint_with_sampling_equals_the_emulator():
    spec = random_spec(n_layer=8, n_embd=16, vocab=50, seed=5, dtype=torch.bfloat16)
    model, _ = convert(spec, tokens_for(50, 40, seed=1))
    assert any(n.halve for n in model.graph.of_type(ir.Residual))
    _assert_equal_to_emulator(model, tokens_for(50, 12, seed=2), 4, greedy=False, temperature=0.8, top_p=0.9, seed=7)


@pytest.fixture(scope="module")
def demo_stock(demo_spec):
    """The bundled model converted with --lif stock (Lava's own LIF, every token a token period apart)."""
    sys.path.insert(0, str(ROOT / "examples"))
    import demo_corpus

    train, _ = demo_corpus.corpus()
    return convert(demo_spec, demo_spec.tokenizer.encode(train[:300]), lif="stock")[0]


def test_stock_lif_bundled_model_equals_the_emulator(demo_stock, demo_heldout_tokens):
    """Stock LIFs: Lava's own LIF process, P - 1 leak steps between tokens, prefill included; logits, every
    spike and the generated tokens equal the emulator's (which idles P - 1 steps after every token)."""
    from lava.proc.lif.process import LIF

    from spike2loihi.lava.procs.processes import TokenLIF

    assert demo_stock.schedule.lif == "stock" and demo_stock.schedule.steps_per_prefill_token > 1
    lava = _assert_equal_to_emulator(demo_stock, demo_heldout_tokens[:10], 4)
    assert lava.att_spikes.sum() > 50
    from spike2loihi.lava.blocks import Records  # noqa: F401  (the graph's LIFs are Lava's own)
    from spike2loihi.lava.build import build
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        cfg = demo_stock.config
        rec = Records(Path(tmp), max_tokens=4, vocab=cfg["vocab_size"], n_lif=len(ir.lif_nodes(demo_stock.graph)),
                      width=cfg["n_embd"], n_plans=cfg["n_layer"] + 1).create()
        procs = build(demo_stock, rec, {"prompt": [1], "max_new_tokens": 0, "greedy": True, "temperature": 1.0,
                                        "top_p": 1.0, "seed": 0}).procs.values()
        lifs = [p for p in procs if isinstance(p, LIF)]
        assert len(lifs) == len(ir.lif_nodes(demo_stock.graph)) and not any(isinstance(p, TokenLIF) for p in lifs)


def test_stock_lif_random_rescale_checkpoint_with_sampling_equals_the_emulator():
    spec = random_spec(n_layer=7, n_embd=16, vocab=50, seed=6)
    model, _ = convert(spec, tokens_for(50, 40, seed=1), lif="stock")
    assert any(n.halve for n in model.graph.of_type(ir.Residual))
    _assert_equal_to_emulator(model, tokens_for(50, 8, seed=2), 4, greedy=False, temperature=0.8, top_p=0.9, seed=7)


def _nan_model(model):
    bad = artifact.ConvertedModel(model.graph, model.nodes, dict(model.tensors), dict(model.manifest))
    key = "blocks.1.ln2.weight"
    bad.tensors[key] = np.full_like(model.tensors[key], np.nan)
    return bad


def test_host_error_is_one_line_and_leaves_no_process(demo_converted):
    model, _ = demo_converted
    before = set(_descendants(os.getpid()))
    with pytest.raises(LavaRunError) as exc:
        run_graph(_nan_model(model), [1, 2, 3, 4, 5], 0)
    assert "block1" in str(exc.value) and "non-finite" in str(exc.value) and "\n" not in str(exc.value)
    time.sleep(0.5)
    assert set(_descendants(os.getpid())) - before == set()


@pytest.mark.subprocess
def test_ctrl_c_stops_the_runtime_and_every_child(demo_converted, tmp_path):
    model, _ = demo_converted
    path = tmp_path / "m.s2l"
    artifact.save(model, path)
    exe = ROOT / ".venv" / "bin" / "spike2loihi"
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "spike2loihi.cli"]),
           "run", str(path), "--backend", "lava-sim", "--tokens", "1,2,3", "--max-new-tokens", "500", "--json"]
    env = dict(os.environ, SPIKE2LOIHI_PROGRESS="always")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        deadline = time.time() + 60
        line = ""
        while time.time() < deadline and not line.startswith("generate"):   # the graph is generating
            line = proc.stderr.readline()
        assert line.startswith("generate"), "the run never started generating"
        assert len(_descendants(proc.pid)) > 10
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err, err
    assert '"interrupted": true' in out
    deadline = time.time() + 10   # Python's resource tracker exits once it has cleaned up
    while time.time() < deadline and _session(proc.pid):
        time.sleep(0.2)
    assert _session(proc.pid) == [], f"processes left behind: {_session(proc.pid)}"


def _session(pgid):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit() and _pgid(int(p)) == pgid:
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    out.append((int(p), f.read().replace(b"\0", b" ").decode(errors="replace")[:80]))
            except OSError:
                pass
    return out


def _pgid(pid):
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


@pytest.mark.subprocess
def test_missing_lava_is_one_line(demo_converted, tmp_path):
    model, _ = demo_converted
    path = tmp_path / "m.s2l"
    artifact.save(model, path)
    code = ("import sys; sys.modules['lava'] = None; from spike2loihi.cli.app import main; "
            f"main(['run', {str(path)!r}, '--backend', 'lava-sim', '--tokens', '1,2'])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the lava-sim backend needs lava-nc 0.10.0"), res.stderr


def test_eval_compares_emulator_and_lava_sim(demo_converted, demo_heldout_tokens, tmp_path):
    from click.testing import CliRunner

    from spike2loihi.cli.app import main

    model, _ = demo_converted
    path = tmp_path / "m.s2l"
    artifact.save(model, path)
    (tmp_path / "t.txt").write_text(" ".join(map(str, demo_heldout_tokens[:40])))
    res = CliRunner().invoke(main, ["eval", str(path), "--tokens-file", str(tmp_path / "t.txt"),
                                    "--backends", "emulator,lava-sim", "--no-noise-floor", "--json"])
    assert res.exit_code == 0, res.stderr
    import json

    out = json.loads(res.stdout)
    assert out["comparison"]["identical"] is True and out["comparison"]["first_divergence"] is None
    assert out["backends"]["emulator"]["bits"] == out["backends"]["lava-sim"]["bits"]
    assert out["lava_sim"]["processes"] > 10
