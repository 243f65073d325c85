"""The command line, end to end, on the bundled model and on seeded random checkpoints."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import DEMO_CKPT, spiking_state_dict
from converters.spikegpt import load_checkpoint, save_checkpoint
from spike2loihi.cli.app import main
from spike2loihi.model.reference import ReferenceModel


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def random_ckpt(tmp_path_factory):
    """An 8-layer checkpoint with no tokenizer beside it."""
    path = tmp_path_factory.mktemp("rand") / "rand8.pth"
    save_checkpoint(spiking_state_dict(8, 16, 40, seed=5), path)
    return path


def test_version_and_help():
    res = invoke("--version")
    assert res.exit_code == 0 and "0." in res.stdout
    for cmd in ([], ["inspect"], ["run"]):
        res = invoke(*cmd, "--help")
        assert res.exit_code == 0 and "Usage" in res.stdout


def test_inspect_bundled_model_text_and_json():
    res = invoke("inspect", DEMO_CKPT)
    assert res.exit_code == 0, res.stderr
    assert "vocabulary 77" in res.stdout and "validation   ok" in res.stdout and "char, 77 tokens" in res.stdout
    info = json.loads(invoke("inspect", DEMO_CKPT, "--json").stdout)
    cfg = info["config"]
    assert cfg["vocab_size"] == 77 and cfg["n_layer"] <= 6
    spec = load_checkpoint(DEMO_CKPT)
    assert info["parameters"]["total"] == sum(t.numel() for t in spec.tensors.values())
    assert info["tokenizer"]["vocab_size"] == 77


def test_run_json_fields_and_seeded_sampling():
    args = ("run", DEMO_CKPT, "--prompt", "The if statement", "--max-new-tokens", 40,
            "--temperature", 0.9, "--top-p", 0.9, "--json")
    a = json.loads(invoke(*args, "--seed", 3).stdout)
    b = json.loads(invoke(*args, "--seed", 3).stdout)
    c = json.loads(invoke(*args, "--seed", 4).stdout)
    for key in ("prompt_tokens", "generated_tokens", "text", "spike_rates", "tokens_per_s"):
        assert key in a
    assert a["generated_tokens"] == b["generated_tokens"] and a["text"] == b["text"]
    assert a["generated_tokens"] != c["generated_tokens"]
    assert len(a["generated_tokens"]) == 40
    n_layer = load_checkpoint(DEMO_CKPT).config.n_layer
    assert len(a["spike_rates"]["att"]) == n_layer and len(a["spike_rates"]["ffn"]) == n_layer
    assert all(0 <= r <= 1 for r in a["spike_rates"]["att"] + a["spike_rates"]["ffn"])


def test_run_streams_text_and_greedy_matches_reference_argmax():
    res = invoke("run", DEMO_CKPT, "--prompt", "The for statement", "--max-new-tokens", 30, "--greedy")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("The for statement")
    spec = load_checkpoint(DEMO_CKPT)
    model = ReferenceModel(spec)
    state = model.initial_state()
    for t in spec.tokenizer.encode("The for statement"):
        out = model.step(t, state)
    expect = []
    for _ in range(30):
        expect.append(int(torch.argmax(out.logits)))
        out = model.step(expect[-1], state)
    assert res.stdout.rstrip("\n") == "The for statement" + spec.tokenizer.decode(expect)


def test_dumps_equal_the_reference_teacher_forced(tmp_path, random_ckpt):
    toks = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]
    logits_f, spikes_f = tmp_path / "l.npy", tmp_path / "s.npz"
    res = invoke("run", random_ckpt, "--tokens", ",".join(map(str, toks)), "--max-new-tokens", 4, "--greedy",
                 "--dump-logits", logits_f, "--dump-spikes", spikes_f, "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert "text" not in out and out["prompt_tokens"] == toks  # no tokenizer: text left out
    logits = np.load(logits_f)
    spikes = np.load(spikes_f)
    assert logits.dtype == np.float32 and logits.shape == (len(toks), 40)
    assert spikes["att_spikes"].dtype == np.uint8 and spikes["att_spikes"].shape == (len(toks), 8, 16)
    assert spikes["ffn_spikes"].shape == (len(toks), 8, 16)
    ref, _ = ReferenceModel(load_checkpoint(random_ckpt)).forward_tokens(
        toks, keep=("logits", "att_spikes", "ffn_spikes"))
    assert np.array_equal(logits, ref["logits"].numpy())
    assert np.array_equal(spikes["att_spikes"], ref["att_spikes"].numpy().astype(np.uint8))
    assert np.array_equal(spikes["ffn_spikes"], ref["ffn_spikes"].numpy().astype(np.uint8))
    assert spikes["ffn_spikes"].any()
    assert out["generated_tokens"][0] == int(np.argmax(logits[-1]))


def test_tokens_file_and_semantics_flag(tmp_path, random_ckpt):
    f = tmp_path / "toks.txt"
    f.write_text("1 2\n3\t4  5\n")
    run = json.loads(invoke("run", random_ckpt, "--tokens-file", f, "--max-new-tokens", 3, "--greedy", "--json").stdout)
    same = json.loads(invoke("run", random_ckpt, "--tokens", "1,2,3,4,5", "--max-new-tokens", 3, "--greedy",
                             "--json").stdout)
    train = json.loads(invoke("run", random_ckpt, "--tokens", "1,2,3,4,5", "--max-new-tokens", 3, "--greedy",
                              "--semantics", "train", "--json").stdout)
    assert run["generated_tokens"] == same["generated_tokens"]
    assert run["semantics"]["name"] == "run" and train["semantics"]["name"] == "train"
    assert train["semantics"]["binary_embedding"] is True and run["semantics"]["binary_embedding"] is False


@pytest.mark.parametrize("args, needle", [
    (["--tokens", "1,2,40"], "outside the vocabulary 0..39"),
    (["--tokens", "1,x"], "'x' is not an integer"),
    (["--prompt", "hello"], "needs a tokenizer"),
    (["--tokens", "1", "--greedy", "--temperature", "0.5"], "--greedy"),
    (["--tokens", "1", "--temperature", "0"], "--temperature: 0 is out of range: expected a finite number >= 1e-06"),
    (["--tokens", "1", "--top-p", "1.5"], "--top-p: 1.5 is out of range: expected a number in (0, 1]"),
    ([], "exactly one of"),
])
def test_bad_arguments_give_one_line_and_no_output_files(tmp_path, random_ckpt, args, needle):
    dump = tmp_path / "never.npy"
    res = invoke("run", random_ckpt, *args, "--dump-logits", dump)
    assert res.exit_code != 0
    assert needle in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert not dump.exists() and not list(tmp_path.iterdir())


@pytest.mark.subprocess
def test_bad_checkpoint_via_console_script(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00garbage" * 10)
    exe = [sys.executable, "-m", "spike2loihi.cli"]
    res = subprocess.run(exe + ["inspect", str(bad)], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert str(bad) in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
