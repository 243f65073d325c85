"""`convert`, `eval`, `run` and `inspect` on converted .s2l models, end to end through the CLI."""
import json
import shutil
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import DEMO_CKPT, ROOT, spiking_state_dict
from converters.spikegpt import save_checkpoint
from spike2loihi.convert import artifact
from spike2loihi.cli.app import main


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(res, needle, code=2):
    assert res.exit_code == code, (res.exit_code, res.stderr, res.exception)
    lines = [ln for ln in res.stderr.splitlines() if not ln.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], res.stderr


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    sys.path.insert(0, str(ROOT / "examples"))
    import demo_corpus

    train, held = demo_corpus.corpus()
    d = tmp_path_factory.mktemp("texts")
    (d / "train.txt").write_text(train[:3000])
    (d / "held.txt").write_text(held[:400])
    return d


@pytest.fixture(scope="module")
def demo_s2l(tmp_path_factory, texts):
    out = tmp_path_factory.mktemp("conv")
    res = invoke("convert", DEMO_CKPT, "-o", out / "demo.s2l", "--calib", texts / "train.txt", "--calib-len", 200,
                 "--report", out / "rep.json", "--plot", out / "rep.png")
    assert res.exit_code == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def random_ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("rand")
    save_checkpoint(spiking_state_dict(7, 16, 40, seed=3), d / "rand7.pth")
    (d / "calib.txt").write_text(" ".join(str(i) for i in np.random.default_rng(0).integers(0, 40, 120)))
    return d


def test_convert_writes_model_report_and_plot(demo_s2l):
    model = artifact.load(demo_s2l / "demo.s2l")
    assert model.manifest["calibration"]["source"] == "text" and model.manifest["calibration"]["tokens"] == 200
    assert model.manifest["source"]["path"] == str(DEMO_CKPT.resolve())
    rep = json.loads((demo_s2l / "rep.json").read_text())
    assert len(rep["layers"]) == 9 * 4 + 1 and rep["total_wraps"] == 0
    assert (demo_s2l / "rep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_convert_prints_worst_layers_first(texts, tmp_path):
    res = invoke("convert", DEMO_CKPT, "-o", tmp_path / "m.s2l", "--calib", texts / "train.txt", "--calib-len", 60)
    assert res.exit_code == 0, res.stderr
    out = res.stdout
    assert "Chip Dense layers, worst weight SQNR first" in out and "LIF populations, worst spike flip rate first" in out
    flips = [float(line.split()[-2]) for line in out.split("LIF populations")[1].splitlines()
             if line.strip().startswith("blocks.")]
    assert len(flips) == 8 and flips == sorted(flips, reverse=True)


def test_convert_is_deterministic_through_the_cli(random_ckpt, tmp_path):
    for name in ("a.s2l", "b.s2l"):
        res = invoke("convert", random_ckpt / "rand7.pth", "-o", tmp_path / name,
                     "--calib-tokens-file", random_ckpt / "calib.txt")
        assert res.exit_code == 0, res.stderr
    assert (tmp_path / "a.s2l").read_bytes() == (tmp_path / "b.s2l").read_bytes()


def test_convert_without_calibration_samples_and_says_so(random_ckpt, tmp_path):
    res = invoke("convert", random_ckpt / "rand7.pth", "-o", tmp_path / "m.s2l", "--calib-len", 30, "--seed", 5)
    assert res.exit_code == 0, res.stderr
    assert "sampled from the float model" in res.stderr and "seed 5" in res.stderr
    cal = artifact.load(tmp_path / "m.s2l").manifest["calibration"]
    assert cal["source"] == "sampled" and cal["seed"] == 5 and cal["tokens"] == 30


@pytest.mark.parametrize("args,needle", [
    (["--weight-bits", 9], "--weight-bits"),
    (["--act-bits", 25], "--act-bits"),
    (["--lif-input-bits", 18], "--lif-input-bits"),
    (["--calib-len", 0], "--calib-len"),
])
def test_convert_bit_widths_out_of_range(random_ckpt, tmp_path, args, needle):
    one_line_error(invoke("convert", random_ckpt / "rand7.pth", "-o", tmp_path / "m.s2l", *args), needle)
    assert leftovers(tmp_path) == []


def test_convert_bad_calibration_inputs(random_ckpt, tmp_path):
    ck = random_ckpt / "rand7.pth"
    (tmp_path / "bad.txt").write_text("1 2 x 4")
    one_line_error(invoke("convert", ck, "-o", tmp_path / "m.s2l", "--calib-tokens-file", tmp_path / "bad.txt"), "'x'")
    (tmp_path / "big.txt").write_text("1 2 400")
    one_line_error(invoke("convert", ck, "-o", tmp_path / "m.s2l", "--calib-tokens-file", tmp_path / "big.txt"),
                   "400")
    (tmp_path / "text.txt").write_text("hello")
    one_line_error(invoke("convert", ck, "-o", tmp_path / "m.s2l", "--calib", tmp_path / "text.txt"),
                   "needs a tokenizer")
    one_line_error(invoke("convert", ck, "-o", tmp_path / "m.s2l", "--calib", tmp_path / "nope.txt"), "nope.txt")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9")
    one_line_error(invoke("convert", DEMO_CKPT, "-o", tmp_path / "m.s2l", "--calib", tmp_path / "latin1.txt"),
                   "not UTF-8")
    one_line_error(invoke("convert", ck, "-o", tmp_path / "m.s2l", "--calib", tmp_path / "text.txt",
                          "--calib-tokens-file", tmp_path / "bad.txt"), "at most one")
    assert sorted(leftovers(tmp_path)) == ["bad.txt", "big.txt", "latin1.txt", "text.txt"]


def test_convert_output_checked_before_work(random_ckpt, tmp_path):
    one_line_error(invoke("convert", random_ckpt / "rand7.pth", "-o", tmp_path), "directory")
    one_line_error(invoke("convert", random_ckpt / "rand7.pth", "-o", tmp_path / "m.s2l",
                          "--report", "/sys/r.json"), "kernel file system")
    assert leftovers(tmp_path) == []


def test_run_converted_model_on_the_emulator_and_its_float_source(demo_s2l):
    m = demo_s2l / "demo.s2l"
    emu = json.loads(invoke("run", m, "--prompt", "The for", "--greedy", "--max-new-tokens", 12, "--json").stdout)
    assert emu["backend"] == "emulator" and len(emu["generated_tokens"]) == 12 and emu["text"]
    src = json.loads(invoke("run", m, "--backend", "torch", "--prompt", "The for", "--greedy",
                            "--max-new-tokens", 12, "--json").stdout)
    ref = json.loads(invoke("run", DEMO_CKPT, "--prompt", "The for", "--greedy", "--max-new-tokens", 12,
                            "--json").stdout)
    assert src["generated_tokens"] == ref["generated_tokens"] and src["spike_rates"] == ref["spike_rates"]


def test_run_emulator_dumps_equal_the_emulator(demo_s2l, tmp_path):
    from spike2loihi.execute.model_emulator import ModelEmulator

    m = demo_s2l / "demo.s2l"
    res = invoke("run", m, "--tokens", "5,9,30,41,2,7", "--max-new-tokens", 0, "--dump-logits", tmp_path / "l.npy")
    assert res.exit_code == 0, res.stderr
    steps = ModelEmulator(artifact.load(m)).run(np.array([5, 9, 30, 41, 2, 7]))
    assert np.array_equal(np.load(tmp_path / "l.npy"), np.stack([s.logits[0] for s in steps]))


def test_run_source_checkpoint_moved_changed_or_given(demo_s2l, tmp_path, random_ckpt):
    # an artifact whose recorded source is gone
    res = invoke("convert", random_ckpt / "rand7.pth", "-o", tmp_path / "m.s2l",
                 "--calib-tokens-file", random_ckpt / "calib.txt")
    assert res.exit_code == 0
    moved = tmp_path / "moved.pth"
    shutil.copy(random_ckpt / "rand7.pth", moved)
    art = tmp_path / "m.s2l"
    data = artifact.load(art)
    data.manifest["source"]["path"] = str(tmp_path / "gone.pth")
    artifact.save(data, art)
    one_line_error(invoke("run", art, "--backend", "torch", "--tokens", "1,2"), "is gone")
    ok = invoke("run", art, "--backend", "torch", "--tokens", "1,2", "--checkpoint", moved, "--max-new-tokens", 2)
    assert ok.exit_code == 0, ok.stderr
    save_checkpoint(spiking_state_dict(7, 16, 40, seed=4), tmp_path / "other.pth")
    one_line_error(invoke("run", art, "--backend", "torch", "--tokens", "1,2", "--checkpoint",
                          tmp_path / "other.pth"), "not the checkpoint this model was converted from")


def test_run_wrong_kind_of_file(demo_s2l, tmp_path):
    one_line_error(invoke("run", DEMO_CKPT, "--backend", "emulator", "--tokens", "1,2"), "convert")
    one_line_error(invoke("run", demo_s2l / "demo.s2l", "--semantics", "train", "--tokens", "1,2"),
                   "converted with --semantics run")
    bad = tmp_path / "bad.s2l"
    bad.write_bytes((demo_s2l / "demo.s2l").read_bytes()[:5000])
    one_line_error(invoke("run", bad, "--tokens", "1,2"), "truncated")


def test_inspect_artifact_and_graphs(demo_s2l):
    m = demo_s2l / "demo.s2l"
    res = invoke("inspect", m)
    assert res.exit_code == 0 and "spike2loihi format 1" in res.stdout and "crossings per token" in res.stdout
    info = json.loads(invoke("inspect", m, "--json").stdout)
    assert info["quantization"]["weight_bits"] == 8 and info["source"]["sha256"]
    g = invoke("inspect", DEMO_CKPT, "--graph")
    assert g.exit_code == 0 and "blocks.0.att.wkv" in g.stdout and "exp, running max and division" in g.stdout
    gj = json.loads(invoke("inspect", m, "--graph", "--json").stdout)
    places = {n["name"]: n["placement"]["where"] for n in gj["nodes"]}
    assert places["blocks.3.ffn.lif"] == "chip" and places["blocks.3.att.wkv"] == "host"


def test_eval_reports_backends_and_noise_floor(demo_s2l, texts, tmp_path):
    res = invoke("eval", demo_s2l / "demo.s2l", "--text", texts / "held.txt", "--max-tokens", 150, "--json",
                 "--plot", tmp_path / "e.png")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out["backends"]) == {"torch", "emulator", "noise floor"} and out["tokens"] == 150
    emu = out["backends"]["emulator"]
    assert len(emu["flip_rate_att"]) == 4 and 0.5 < emu["top1_agreement"] <= 1
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"
    text = invoke("eval", demo_s2l / "demo.s2l", "--text", texts / "held.txt", "--max-tokens", 60)
    assert "bits per character over 60 tokens" in text.stdout and "noise floor" in text.stdout


def test_eval_without_the_source_checkpoint(random_ckpt, tmp_path):
    invoke("convert", random_ckpt / "rand7.pth", "-o", tmp_path / "m.s2l", "--calib-tokens-file",
           random_ckpt / "calib.txt")
    m = artifact.load(tmp_path / "m.s2l")
    m.manifest["source"]["path"] = str(tmp_path / "gone.pth")
    artifact.save(m, tmp_path / "m.s2l")
    one_line_error(invoke("eval", tmp_path / "m.s2l", "--tokens-file", random_ckpt / "calib.txt"), "is gone")
    res = invoke("eval", tmp_path / "m.s2l", "--tokens-file", random_ckpt / "calib.txt", "--backends", "emulator",
                 "--no-noise-floor", "--json")
    assert res.exit_code == 0, res.stderr
    row = json.loads(res.stdout)["backends"]["emulator"]
    assert "top1_agreement" not in row and row["bits"] > 0


def test_eval_errors(demo_s2l, texts):
    m = demo_s2l / "demo.s2l"
    one_line_error(invoke("eval", m), "exactly one of --text and --tokens-file")
    one_line_error(invoke("eval", m, "--text", texts / "held.txt", "--backends", "torch,bogus"), "--backends")
    one_line_error(invoke("eval", m, "--text", texts / "held.txt", "--backends", "emulator"), "noise floor")
    one_line_error(invoke("eval", DEMO_CKPT, "--text", texts / "held.txt"), "not a converted .s2l model")
