"""`spike2loihi deploy`: the INRC bundle (nothing here runs on a board).

The bundle's files and checksums; its expected outputs against the emulator, step
by step; the batch script; the run script executed here (no lava-loihi: one line,
exit 3, nothing written), its checksum verification, and its comparison run end to
end on pass-through stand-ins for lava-loihi's adapters (identical, then every kind
of divergence reported first-first); every error path of the command (exit code,
one line, no folder and no temporary folder left), --force, and an interrupted
write.
"""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from conftest import ROOT, one_line_error, saved_random, spiking_state_dict
from converters.spikegpt import save_checkpoint
from spike2loihi.deploy import bundle as D, check as C, expected as E
from spike2loihi.hardware import profiles as hardware, planner
from spike2loihi.backends.emulator import EmulatorBackend
from spike2loihi.cli.app import main

PROMPT = [3, 14, 15, 9, 26, 5]
N_NEW = 4


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def leftovers(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return saved_random(tmp_path_factory, "tiny model.s2l", seed=5)


@pytest.fixture(scope="module")
def bundle(small, tmp_path_factory):
    _, path = small
    out = tmp_path_factory.mktemp("bundles") / "og-bundle"
    res = invoke("deploy", path, "--hw", "oheo_gulch", "-o", out, "--tokens", ",".join(map(str, PROMPT)),
                 "--max-new-tokens", N_NEW)
    assert res.exit_code == 0, (res.stderr, res.exception)
    return out, res


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------------------
# the bundle
# ---------------------------------------------------------------------------
@pytest.mark.subprocess
def test_bundle_contents_and_checksums(small, bundle):
    model, src = small
    out, res = bundle
    assert f"wrote {out}" in res.stdout and "sbatch slurm_job.sh" in res.stdout
    assert "nothing in spike2loihi has run on a Loihi board yet" in res.stderr and "TokenLIF" in res.stderr
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    top = {f for f in files if "/" not in f}
    assert top == {"README.md", "run_on_loihi.py", "slurm_job.sh", "model.s2l", "plan.json", "expected.npz",
                   "requirements.txt", "manifest.json", "SHA256SUMS", "processes.json"}
    assert (out / "model.s2l").read_bytes() == Path(src).read_bytes()
    for rel in ("spike2loihi/deploy/bundle.py", "spike2loihi/backends/loihi2.py", "spike2loihi/lava/hw.py",
                "converters/tokenizer.py", "hw_profiles/oheo_gulch.yaml"):
        assert (out / "toolchain" / rel).read_bytes() == (ROOT / rel).read_bytes()
    assert not any("__pycache__" in f for f in files)
    for script in ("run_on_loihi.py", "slurm_job.sh"):
        assert (out / script).stat().st_mode & 0o111
    man = json.loads((out / "manifest.json").read_text())
    assert man["kind"] == D.BUNDLE_KIND and man["hardware_profile"] == "oheo_gulch"
    assert man["loihi2"] == {"host": {"via": "slurm", "partition": "oheogulch", "board": None, "ethernet_host": None,
                                      "loihi_gen": "N3B3"}, "lif_placement": "host"}
    assert man["check"]["prompt_tokens"] == PROMPT and man["check"]["max_new_tokens"] == N_NEW
    assert man["model"]["sha256"] == sha(src) and man["model"]["name"] == "tiny model.s2l"
    # sha256 and size of every file but the two checksum files; SHA256SUMS covers the manifest too
    assert set(man["files"]) == set(files) - {"manifest.json", "SHA256SUMS"}
    for rel, f in man["files"].items():
        assert f == {"sha256": sha(out / rel), "bytes": (out / rel).stat().st_size}, rel
    sums = dict(reversed(line.split("  ", 1)) for line in (out / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == set(files) - {"SHA256SUMS"} and all(sums[f] == sha(out / f) for f in sums)
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=out, check=True)
    assert leftovers(out.parent) == []
    # the plan is the planner's, on the chosen profile
    plan = json.loads((out / "plan.json").read_text())
    want = planner.plan_model(model, hardware.load_profile("oheo_gulch"), planner.packaged_profiles(),
                              "tiny model.s2l")
    assert plan["hardware_profile"] == "oheo_gulch" and plan["fits"]
    assert plan["totals"] == json.loads(json.dumps(want.to_dict()["totals"]))
    # the README says what to do and what is unverified
    readme = (out / "README.md").read_text()
    for needle in ("Nothing in spike2loihi has run on a Loihi board yet", "sha256sum -c SHA256SUMS",
                   "pip install -r requirements.txt", "sbatch slurm_job.sh", "python3 run_on_loihi.py",
                   "identical", "DIVERGED: first at token row", "no neurocore model", "result.json",
                   "What is unverified until this runs", "lava-loihi is distributed to INRC members only"):
        assert needle in readme, needle
    assert "torch>=2.3.1" in (out / "requirements.txt").read_text()


def test_expected_outputs_equal_the_emulator_step_by_step(small, bundle):
    """Row t = the t-th token fed in (prompt, then the generated tokens but the last): the emulator backend
    stepped token by token gives the same logits and spikes, and its greedy generation the same ids."""
    from spike2loihi.backends import generate

    model, _ = small
    exp = E.Outputs.load(bundle[0] / "expected.npz")
    gen = generate.run(EmulatorBackend(model), PROMPT, N_NEW, greedy=True, keep_logits=True, keep_spikes=True)
    assert list(exp.prompt) == PROMPT and list(exp.generated) == gen.generated_tokens and len(exp.generated) == N_NEW
    emu = EmulatorBackend(model)
    state = emu.initial_state()
    fed = PROMPT + gen.generated_tokens[:-1]
    assert exp.logits.shape == (len(fed), 40) and exp.att_spikes.shape == (len(fed), 2, 16)
    for t, tok in enumerate(fed):
        out = emu.step(tok, state)
        assert np.array_equal(exp.logits[t], out.logits.numpy()), t
        assert np.array_equal(exp.att_spikes[t], out.att_spikes.numpy().astype(np.uint8)), t
        assert np.array_equal(exp.ffn_spikes[t], out.ffn_spikes.numpy().astype(np.uint8)), t
    assert np.array_equal(exp.logits[:len(PROMPT)], gen.prompt_logits)
    assert exp.att_spikes.sum() > 0 and exp.ffn_spikes.sum() > 0


@pytest.mark.subprocess
def test_batch_script(small, bundle, tmp_path):
    text = (bundle[0] / "slurm_job.sh").read_text()
    assert "#SBATCH --partition=oheogulch" in text and "#SBATCH --job-name=s2l-tiny-model" in text
    assert 'run_on_loihi.py --partition "${SLURM_JOB_PARTITION:-oheogulch}" --loihi-gen N3B3 "$@"' in text
    if shutil.which("bash"):
        subprocess.run(["bash", "-n", str(bundle[0] / "slurm_job.sh")], check=True)
    _, path = small
    res = invoke("deploy", path, "--hw", "kapoho_point", "--board", "ncl-kp-01", "--loihi-gen", "N3C1",
                 "-o", tmp_path / "b", "--max-new-tokens", 0, "--json")
    assert res.exit_code == 0, res.stderr
    text = (tmp_path / "b" / "slurm_job.sh").read_text()
    assert "#SBATCH --nodelist=ncl-kp-01" in text and "--partition" not in text
    assert '--board "${SLURMD_NODENAME:-ncl-kp-01}" --loihi-gen N3C1' in text
    man = json.loads(res.stdout)
    assert man["loihi2"]["host"]["board"] == "ncl-kp-01" and man["check"]["rows"] == 16   # the default prompt
    assert man["check"]["prompt_tokens"] == E.default_prompt(40)
    res = invoke("deploy", path, "--hw", "kapoho_point", "-o", tmp_path / "c", "--max-new-tokens", 1)
    assert res.exit_code == 0 and "#SBATCH --partition=kp" in (tmp_path / "c" / "slurm_job.sh").read_text()


# ---------------------------------------------------------------------------
# the run script
# ---------------------------------------------------------------------------
@pytest.mark.subprocess
def test_run_script_here_stops_with_the_missing_lava_loihi_line(bundle, tmp_path):
    copy = tmp_path / "copied to the INRC host"
    shutil.copytree(bundle[0], copy)
    res = subprocess.run([sys.executable, str(copy / "run_on_loihi.py")], cwd=tmp_path, capture_output=True,
                         text=True)
    assert res.returncode == 3, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith("error: the loihi2 backend needs Intel's lava-loihi extension")
    assert "INRC members only" in lines[0] and res.stdout == ""
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in bundle[0].iterdir())   # nothing written
    res = subprocess.run([sys.executable, str(copy / "run_on_loihi.py"), "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "--partition" in res.stdout and "--ethernet-host" in res.stdout


@pytest.mark.parametrize("hidden, code, needle", [
    ("torch", 2, "error: cannot load the bundled spike2loihi toolchain (ModuleNotFoundError: "),
    ("lava", 3, "error: the loihi2 backend needs lava-nc 0.10.0 on CPython 3.10"),
])
@pytest.mark.subprocess
def test_run_script_without_its_dependencies_is_one_line(bundle, hidden, code, needle):
    script = bundle[0] / "run_on_loihi.py"
    run = (f"import sys, runpy; sys.modules[{hidden!r}] = None; sys.argv = [{str(script)!r}]; "
           f"runpy.run_path({str(script)!r}, run_name='__main__')")
    res = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True)
    assert res.returncode == code and len(res.stderr.splitlines()) == 1, res.stderr
    assert res.stderr.startswith(needle), res.stderr


@pytest.mark.subprocess
def test_run_script_uses_the_bundled_toolchain(bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bundle[0], copy)
    mod = copy / "toolchain" / "spike2loihi" / "backends" / "loihi2_host.py"
    mod.write_text(mod.read_text().replace("distributed to INRC members only", "BUNDLED COPY"))
    res = subprocess.run([sys.executable, str(copy / "run_on_loihi.py")], cwd="/", capture_output=True, text=True)
    assert res.returncode == 3 and "BUNDLED COPY" in res.stderr


@pytest.fixture
def board_here(monkeypatch, tmp_path_factory):
    """lava-loihi's checks passed and its adapters replaced by pass-through CPU stand-ins, and Dense/Sparse
    named (Loihi2HwCfg cannot choose among their models without lava-loihi): the run script's own work
    runs end to end in Lava's CPU runtime."""
    pytest.importorskip("lava")
    import importlib

    from lava.proc.dense.models import PyDenseModelBitAcc
    from lava.proc.dense.process import Dense
    from lava.proc.graded.models import PyGradedVecModelFixed
    from lava.proc.graded.process import GradedVec
    from lava.proc.sparse.models import PySparseModelBitAcc
    from lava.proc.sparse.process import Sparse

    from spike2loihi.backends import loihi2 as L2
    from spike2loihi.lava import hw
    from _lava_helpers import FAKE_EIO

    folder = tmp_path_factory.mktemp("fake_lava_loihi_deploy")
    (folder / "fake_embedded_io_deploy.py").write_text(FAKE_EIO)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setitem(sys.modules, "lava.proc.embedded_io", importlib.import_module("fake_embedded_io_deploy"))
    monkeypatch.setattr(L2, "prepare", lambda options: L2._prepared.__setitem__(slice(None), [options]))
    real = hw.Loihi2Target.run_config

    def run_config(self, graph):
        cfg = real(self, graph)
        cfg.exception_proc_model_map.update({Dense: PyDenseModelBitAcc, Sparse: PySparseModelBitAcc,
                                             GradedVec: PyGradedVecModelFixed})   # the readouts
        return cfg

    monkeypatch.setattr(hw.Loihi2Target, "run_config", run_config)


@pytest.mark.lava
def test_run_script_work_end_to_end_on_stand_ins(bundle, tmp_path, board_here, capsys):
    out = tmp_path / "results"
    assert C.run_check(bundle[0], ["--out", str(out)]) == C.EXIT_IDENTICAL
    cap = capsys.readouterr()
    assert cap.out.startswith("identical: logits (9 x 40), att and ffn spikes of every layer, and the 4 generated")
    assert "running tiny model.s2l on SLURM partition oheogulch (N3B3)" in cap.err
    result = json.loads((out / "result.json").read_text())
    assert result["verdict"] == "identical" and result["first_divergence"] is None
    assert result["mismatches"] == {"logits": 0, "att_spikes": 0, "ffn_spikes": 0}
    got, exp = E.Outputs.load(out / "board_outputs.npz"), E.Outputs.load(bundle[0] / "expected.npz")
    assert got.generated == exp.generated and np.array_equal(got.logits, exp.logits)
    assert np.array_equal(got.ffn_spikes, exp.ffn_spikes)


@pytest.mark.lava
def test_run_script_reports_lavas_own_failure_with_its_traceback(bundle, tmp_path, board_here, monkeypatch, capsys):
    from spike2loihi.lava import hw

    def broken(self, graph):
        from lava.magma.core.run_configs import Loihi2HwCfg

        return Loihi2HwCfg(exception_proc_model_map=graph.model_map)   # no lava-loihi: NameError inside Lava

    monkeypatch.setattr(hw.Loihi2Target, "run_config", broken)
    assert C.run_check(bundle[0], ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("error: the board run failed: NameError: name 'CLoihiProcessModel' is not defined")
    assert "Traceback" in (tmp_path / "error_traceback.txt").read_text()
    assert not (tmp_path / "result.json").exists()


def test_run_script_refuses_a_changed_or_incomplete_bundle(bundle, tmp_path, board_here, capsys):
    copy = tmp_path / "b"
    shutil.copytree(bundle[0], copy)
    data = bytearray((copy / "model.s2l").read_bytes())
    data[-1] ^= 1
    (copy / "model.s2l").write_bytes(bytes(data))
    assert C.run_check(copy, []) == 2
    assert capsys.readouterr().err.splitlines()[-1] == ("error: model.s2l: sha256 differs from manifest.json: the "
                                                        "bundle was changed or damaged in transit; copy it again")
    (copy / "toolchain" / "spike2loihi" / "convert" / "ir.py").unlink()
    shutil.copyfile(bundle[0] / "model.s2l", copy / "model.s2l")
    assert C.run_check(copy, []) == 2
    assert "toolchain/spike2loihi/convert/ir.py: missing from the bundle" in capsys.readouterr().err
    assert C.run_check(tmp_path, []) == 2
    assert "cannot read manifest.json" in capsys.readouterr().err


def _changed(exp, **kw):
    fields = dict(prompt=exp.prompt, generated=exp.generated, logits=exp.logits.copy(),
                  att_spikes=exp.att_spikes.copy(), ffn_spikes=exp.ffn_spikes.copy())
    fields.update(kw)
    return E.Outputs(**fields)


def test_first_divergence_in_graph_order(bundle):
    exp = E.Outputs.load(bundle[0] / "expected.npz")
    assert E.first_divergence(exp, _changed(exp)) is None
    ffn = exp.ffn_spikes.copy()
    ffn[7, 1, 3] ^= 1
    att = exp.att_spikes.copy()
    att[8, 0, 0] ^= 1
    logits = exp.logits.copy()
    logits[2, 11] += 1e-3
    d = E.first_divergence(exp, _changed(exp, ffn_spikes=ffn, att_spikes=att, logits=logits))
    assert d["where"] == "logits" and d["token"] == 2 and d["channel"] == 11   # the earliest row wins
    d = E.first_divergence(exp, _changed(exp, ffn_spikes=ffn, att_spikes=att))
    assert (d["token"], d["phase"], d["where"], d["layer"], d["population"], d["channel"]) == \
        (7, "generated token 1 fed back", "spikes", 1, "ffn", 3)
    assert (d["expected"], d["got"]) == (int(exp.ffn_spikes[7, 1, 3]), 1 - int(exp.ffn_spikes[7, 1, 3]))
    line = E.describe_divergence(d, exp)
    assert line.startswith("DIVERGED: first at token row 7 (generated token 1 fed back), spikes, layer 1, "
                           "population ffn, channel 3: expected ")
    d = E.first_divergence(exp, _changed(exp, generated=exp.generated[:-1] + (exp.generated[-1] + 1,)))
    assert d["where"] == "token id" and d["phase"] == f"generated token {N_NEW - 1}"
    d = E.first_divergence(exp, _changed(exp, logits=exp.logits[:5], att_spikes=exp.att_spikes[:5],
                                         ffn_spikes=exp.ffn_spikes[:5]))
    assert (d["where"], d["token"], d["expected"], d["got"]) == ("rows", 5, 9, 5)


@pytest.mark.lava
def test_run_script_reports_a_divergence_exit_1(bundle, tmp_path, board_here, monkeypatch, capsys):
    from spike2loihi.lava import runtime

    real = runtime.run_graph

    def one_spike_off(*a, **k):
        res = real(*a, **k)
        res.att_spikes[2, 1, 5] ^= 1
        return res

    monkeypatch.setattr(runtime, "run_graph", one_spike_off)
    assert C.run_check(bundle[0], ["--out", str(tmp_path)]) == C.EXIT_DIVERGED
    out = capsys.readouterr().out.strip()
    assert out.startswith("DIVERGED: first at token row 2 (prompt token 2), spikes, layer 1, population att, "
                          "channel 5: expected")
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["verdict"] == "diverged" and result["mismatches"]["att_spikes"] == 1


# ---------------------------------------------------------------------------
# the command's error paths: one line, nothing written
# ---------------------------------------------------------------------------
@pytest.fixture
def tiny_profile(tmp_path):
    data = yaml.safe_load((hardware.profile_dir() / "oheo_gulch.yaml").read_text())
    data["chip"]["neurocores_usable"]["value"] = 1
    data["system"]["cores_total"]["value"] = 1
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("extra, needle, code", [
    (["--partition", "kp", "--board", "b1"], "give one of --partition and --board", 2),
    (["--prompt", "ab", "--tokens", "1"], "give at most one of --prompt and --tokens", 2),
    (["--prompt", "ab"], "--prompt needs the model's tokenizer and this model has none", 2),
    (["--tokens", "1,99"], "--tokens: token id 99 is outside the vocabulary 0..39", 2),
    (["--partition", "kp sbatch"], "--partition 'kp sbatch': not a valid SLURM partition name", 2),
    (["--lif-placement", "chip"], "--lif-placement chip: TokenLIF, the token-gated LIF, has no neurocore model", 2),
    (["--max-new-tokens", "-1"], "--max-new-tokens: -1 is out of range", 2),
    (["--hw", "simulator"], "--hw simulator: a simulator profile; deploy needs a Loihi 2 system", 2),
    (["--hw", "hala_point"], "no SLURM partition: the hala_point profile names none", 2),
    (["--hw", "no_such_system"], "no_such_system", 2),
])
def test_deploy_errors_are_one_line_and_write_nothing(small, tmp_path, extra, needle, code):
    _, path = small
    args = ["deploy", path, "-o", tmp_path / "out"]
    if "--hw" not in extra:
        args += ["--hw", "oheo_gulch"]
    res = invoke(*args, *extra)
    one_line_error(res, needle, code)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_deploy_input_and_output_folder_errors(small, tmp_path, tiny_profile):
    model, path = small
    ckpt = tmp_path / "ckpt.pth"
    save_checkpoint(spiking_state_dict(1, 16, 40, seed=1), ckpt)
    one_line_error(invoke("deploy", ckpt, "--hw", "oheo_gulch", "-o", tmp_path / "o1"),
                   "ckpt.pth: not a converted .s2l model; run `spike2loihi convert")
    one_line_error(invoke("deploy", tmp_path / "absent.s2l", "--hw", "oheo_gulch", "-o", tmp_path / "o2"),
                   "absent.s2l: no such file")
    (tmp_path / "afile").write_text("x")
    one_line_error(invoke("deploy", path, "--hw", "oheo_gulch", "-o", tmp_path / "afile"),
                   "is a file, expected a folder for the bundle")
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    one_line_error(invoke("deploy", path, "--hw", "oheo_gulch", "-o", full),
                   "exists and is not empty; give --force to replace an earlier bundle")
    one_line_error(invoke("deploy", path, "--hw", "oheo_gulch", "-o", full, "--force"),
                   "exists and is not a spike2loihi bundle")
    assert (full / "notes.txt").read_text() == "mine"
    one_line_error(invoke("deploy", path, "--hw", "oheo_gulch", "-o", Path(path).parent, "--force"),
                   "exists and is not a spike2loihi bundle")
    # the model does not fit: the plan on stderr, exit 1, nothing written
    res = invoke("deploy", path, "--hw", tiny_profile, "-o", tmp_path / "o3")
    assert res.exit_code == 1 and "DOES NOT FIT" in res.stderr
    assert res.stderr.splitlines()[-1].startswith("error: tiny model.s2l does not fit Oheo Gulch")
    assert "no bundle written" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "ckpt.pth", "full", "tiny.yaml"]


def test_force_replaces_an_earlier_bundle_only_and_an_empty_folder_is_used(small, tmp_path):
    _, path = small
    out = tmp_path / "b"
    out.mkdir()   # an empty folder is fine without --force
    assert invoke("deploy", path, "--hw", "oheo_gulch", "-o", out, "--max-new-tokens", 1).exit_code == 0
    assert json.loads((out / "manifest.json").read_text())["check"]["max_new_tokens"] == 1
    (out / "result.json").write_text("{}")   # a result from an earlier run goes with the old bundle
    res = invoke("deploy", path, "--hw", "oheo_gulch", "-o", out, "--max-new-tokens", 2, "--force")
    assert res.exit_code == 0, res.stderr
    assert json.loads((out / "manifest.json").read_text())["check"]["max_new_tokens"] == 2
    assert not (out / "result.json").exists() and leftovers(tmp_path) == []
    # a bundle holding the model it would replace is refused
    shutil.copyfile(path, out / "inside.s2l")
    one_line_error(invoke("deploy", out / "inside.s2l", "--hw", "oheo_gulch", "-o", out, "--force"),
                   "holds the input MODEL")


@pytest.mark.parametrize("exc, code", [(OSError(28, "No space left on device"), 2), (KeyboardInterrupt(), 130)])
def test_a_failed_or_interrupted_write_leaves_nothing(small, tmp_path, monkeypatch, exc, code):
    _, path = small
    out = tmp_path / "new" / "deeper" / "b"

    def fail(tmp, info, name):
        (tmp / "partial").write_text("x")
        raise exc

    monkeypatch.setattr(D, "finish_bundle", fail)
    res = invoke("deploy", path, "--hw", "oheo_gulch", "-o", out, "--max-new-tokens", 1)
    assert res.exit_code == code, (res.stderr, res.exception)
    assert res.stderr.splitlines()[-1] == ("interrupted" if code == 130 else
                                           f"error: --output {out}: cannot write (No space left on device); no "
                                           "bundle was written")
    assert sorted(p.name for p in tmp_path.iterdir()) == []   # not even the folders it made


def test_the_bundle_lists_its_processes_and_warns_about_chip_processes_without_a_known_model(small, bundle):
    """processes.json: every Lava process type of the board graph, count, side, neurocore-model status and
    source; the default mapping (LIFs on the host) puts only publicly known models on the chip."""
    from spike2loihi.convert import ir
    from spike2loihi.lava.inventory import inventory

    model, _ = small
    out, res = bundle
    rows = json.loads((out / "processes.json").read_text())
    assert rows == [r.to_dict() for r in inventory(model, lif_where="host")]
    assert {tuple(sorted(r)) for r in rows} == {("count", "neurocore_model", "process", "source", "where")}
    chip = [r for r in rows if r["where"] == "chip"]
    assert chip and all(r["neurocore_model"] == "lava-loihi" for r in chip)
    lif = next(r for r in rows if r["process"] == "TokenLIF")
    assert lif["where"] == "host" and lif["count"] == len(ir.lif_nodes(model.graph))
    assert "processes.json:" not in res.stderr   # nothing to warn about
    assert "processes.json" in (out / "README.md").read_text()


def test_a_stock_lif_model_deploys_with_its_lifs_on_the_chip(tmp_path):
    """--lif stock: the LIFs are Lava's own LIF on the chip; --lif-placement chip is accepted (it applies to
    token-gated LIFs only) and the summary and processes.json say where the LIFs are."""
    from conftest import convert_spec, random_spec
    from spike2loihi.convert import artifact

    spec = random_spec(2, 16, 40, seed=5)
    model, _ = convert_spec(spec, [int(t) for t in np.random.default_rng(5).integers(0, 40, 24)], lif="stock")
    path = tmp_path / "stock.s2l"
    artifact.save(model, path)
    for placement in ("chip", "host"):
        out = tmp_path / f"b-{placement}"
        res = invoke("deploy", path, "--hw", "oheo_gulch", "-o", out, "--tokens", "1,2,3", "--max-new-tokens", 1,
                     "--lif-placement", placement)
        assert res.exit_code == 0, (res.stderr, res.exception)
        assert "LIFs on the chip (Lava's LIF, --lif stock)" in res.stdout
        rows = json.loads((out / "processes.json").read_text())
        lif = next(r for r in rows if r["process"] == "LIF")
        assert lif["where"] == "chip" and lif["neurocore_model"] == "lava-loihi"
