"""Issue 14: `run` and `inspect` as a new user meets them.

Output paths checked before any work and written all or nothing (mode 0644), numbers
refused up front, a default that generates, warnings for prompt characters that are
replaced or dropped and for options without effect, progress on stderr, one-line
usage errors. Ctrl-C is tested in test_cli_interrupt.py (it needs a subprocess).
Every failure case checks the exit code, exactly one line on stderr, and that no
output file, partial or temporary, is left behind.
"""
import errno
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from _factories import train_hf_tokenizer
from conftest import DEMO_CKPT, ROOT, one_line_error, spiking_state_dict
from converters.spikegpt import save_checkpoint
from spike2loihi.cli import params, progress, rules as cliutil
from spike2loihi.cli.app import main
from spike2loihi.cli.options import DEFAULT_MAX_NEW_TOKENS, SEMANTICS_CHOICES
from spike2loihi.errors import Spike2LoihiError
from spike2loihi.fileio import atomic_path


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def tree(folder):
    """Every path under `folder`, dot files included, with its size."""
    folder = Path(folder)
    return sorted((str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1)
                  for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A small 2-layer checkpoint, vocabulary 40, no tokenizer beside it."""
    path = tmp_path_factory.mktemp("ckpt") / "small.pth"
    save_checkpoint(spiking_state_dict(2, 16, 40, seed=3), path)
    return path


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the command gets as far as loading the checkpoint."""
    import converters.spikegpt

    def refuse(*a, **k):
        raise AssertionError("the checkpoint was loaded: the check did not come before the work")

    monkeypatch.setattr(converters.spikegpt, "load_checkpoint", refuse)


@pytest.fixture
def keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


# --------------------------------------------------------------------------- 1. output paths


def test_output_directory_refused_before_work(tmp_path, ckpt, no_work):
    """`--dump-logits /tmp` (a directory): one line before any work, no JSON, nothing written."""
    before = tree(tmp_path)
    res = invoke("run", ckpt, "--tokens", "1,2,3", "--max-new-tokens", 3, "--dump-logits", tmp_path, "--json")
    one_line_error(res, f"--dump-logits {tmp_path}: is a directory")
    assert res.stdout == "" and tree(tmp_path) == before


def test_output_path_ending_in_slash_refused(tmp_path, ckpt, no_work):
    res = invoke("run", ckpt, "--tokens", "1", "--dump-logits", f"{tmp_path}/newdir/")
    one_line_error(res, "names a directory")
    assert tree(tmp_path) == []


def test_output_under_sys_refused(tmp_path, ckpt, no_work):
    if not Path("/sys").is_dir():
        pytest.skip("no /sys here")
    res = invoke("run", ckpt, "--tokens", "1", "--dump-spikes", "/sys/s.npz")
    one_line_error(res, "--dump-spikes /sys/s.npz: /sys is on a kernel file system (sysfs)")


def test_output_under_proc_refused(ckpt, no_work):
    res = invoke("run", ckpt, "--tokens", "1", "--dump-logits", "/proc/self/logits.npy")
    one_line_error(res, "kernel file system (proc)")


def test_output_special_file_refused(ckpt, no_work):
    res = invoke("run", ckpt, "--tokens", "1", "--dump-logits", os.devnull)
    one_line_error(res, "is a special file")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_output_parent_is_a_file(tmp_path, ckpt, no_work):
    f = tmp_path / "f.txt"
    f.write_text("x")
    res = invoke("run", ckpt, "--tokens", "1", "--dump-logits", f / "sub" / "l.npy")
    one_line_error(res, f"{f} is a file, not a folder")
    assert tree(tmp_path) == [("f.txt", 1)]


def test_output_read_only_filesystem(tmp_path, ckpt, no_work, monkeypatch):
    """A folder where nothing can be created (EROFS, simulated: root writes anywhere else)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real_open = os.open

    def fake_open(path, flags, *a, **k):
        if str(path).startswith(str(ro)) and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", fake_open)
    res = invoke("run", ckpt, "--tokens", "1", "--dump-logits", ro / "l.npy")
    one_line_error(res, f"cannot write in folder {ro} (Read-only file system)")
    monkeypatch.undo()
    assert tree(tmp_path) == [("ro", -1)]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_read_only_folder(tmp_path, ckpt, no_work):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        res = invoke("run", ckpt, "--tokens", "1", "--dump-logits", ro / "l.npy")
        one_line_error(res, f"cannot write in folder {ro}")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_output_same_file_twice_and_input_clobber_refused(tmp_path, ckpt, no_work):
    out = tmp_path / "x.npy"
    res = invoke("run", ckpt, "--tokens", "1", "--dump-logits", out, "--dump-spikes", tmp_path / "." / "x.npy")
    one_line_error(res, "--dump-logits and --dump-spikes name the same file")
    size = ckpt.stat().st_size
    res = invoke("run", ckpt, "--tokens", "1", "--dump-logits", ckpt)
    one_line_error(res, "is also the input MODEL; refusing to overwrite it")
    assert ckpt.stat().st_size == size and tree(tmp_path) == []


def test_good_and_bad_output_writes_neither(tmp_path, ckpt, no_work):
    """`--dump-logits ok.npy --dump-spikes /sys/s.npz` used to write ok.npy, then fail."""
    if not Path("/sys").is_dir():
        pytest.skip("no /sys here")
    res = invoke("run", ckpt, "--tokens", "1,2,3", "--dump-logits", tmp_path / "ok.npy",
                 "--dump-spikes", "/sys/s.npz", "--json")
    one_line_error(res, "--dump-spikes /sys/s.npz")
    assert res.stdout == "" and tree(tmp_path) == []


def test_failure_while_writing_leaves_nothing(tmp_path, ckpt, monkeypatch):
    """The disk fills up while the second output is written (after the work): no output at all."""
    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", full)
    res = invoke("run", ckpt, "--tokens", "1,2,3", "--max-new-tokens", 2, "--json",
                 "--dump-logits", tmp_path / "a" / "ok.npy", "--dump-spikes", tmp_path / "a" / "b" / "s.npz")
    one_line_error(res, "--dump-spikes: cannot write")
    assert "No space left on device" in res.stderr
    assert res.stdout == "" and tree(tmp_path) == []  # no ok.npy, no temporary, no created folder


def test_outputs_written_with_created_parents(tmp_path, ckpt):
    res = invoke("run", ckpt, "--tokens", "1,2,3", "--max-new-tokens", 2, "--json",
                 "--dump-logits", tmp_path / "new" / "deep" / "l.npy", "--dump-spikes", tmp_path / "s.npz")
    assert res.exit_code == 0, res.stderr
    assert np.load(tmp_path / "new" / "deep" / "l.npy").shape == (3, 40)
    assert {p for p, _ in tree(tmp_path) if Path(p).name.startswith(".")} == set()


def test_rename_failure_restores_every_target(tmp_path, monkeypatch):
    """OutputSet: if the second rename fails, the first target gets its old content back."""
    old = tmp_path / "a.txt"
    old.write_text("old")
    paths = cliutil.check_output_paths({"--a": old, "--b": tmp_path / "b.txt", "--c": tmp_path / "c.txt"})
    real_replace = os.replace

    def flaky(src, dst):
        if str(dst).endswith("b.txt"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(Spike2LoihiError, match="--b: cannot write .*no output file was written"):
        with cliutil.OutputSet(paths) as outs:
            outs.write_text("--a", "new")
            outs.write_text("--b", "b")
            outs.write_text("--c", "c")
    monkeypatch.undo()
    assert old.read_text() == "old" and tree(tmp_path) == [("a.txt", 3)]


def test_output_set_discards_on_exception(tmp_path):
    paths = cliutil.check_output_paths({"--a": tmp_path / "d" / "a.bin"})
    with pytest.raises(KeyboardInterrupt):
        with cliutil.OutputSet(paths) as outs:
            outs.write_bytes("--a", b"123")
            raise KeyboardInterrupt
    assert tree(tmp_path) == []


# --------------------------------------------------------------------------- 2. and 8. numbers


@pytest.mark.parametrize("args, needle", [
    (["--seed", "99999999999999999999"],
     "--seed: 99999999999999999999 is out of range: expected an integer in 0..18446744073709551615"),
    (["--seed", "-5"], "--seed: -5 is out of range: expected an integer in 0..18446744073709551615"),
    (["--seed", "1.5"], "--seed: '1.5' is not an integer in 0..18446744073709551615"),
    (["--temperature", "inf"], "--temperature: inf is not finite: expected a finite number >= 1e-06"),
    (["--temperature", "nan"], "--temperature: nan is not finite"),
    (["--temperature", "-1"], "--temperature: -1 is out of range"),
    (["--top-p", "inf"], "--top-p: inf is not finite: expected a number in (0, 1]"),
    (["--top-p", "0"], "--top-p: 0 is out of range: expected a number in (0, 1]"),
    (["--max-new-tokens", "-1"], "--max-new-tokens: -1 is out of range: expected an integer >= 0"),
    (["--threads", "0"], "--threads: 0 is out of range: expected an integer >= 1"),
])
def test_numbers_refused_up_front(tmp_path, ckpt, no_work, args, needle):
    res = invoke("run", ckpt, "--prompt", "hello", *args, "--dump-logits", tmp_path / "l.npy")
    line = one_line_error(res, needle)
    assert line.endswith("(see 'spike2loihi run --help')")
    assert res.stdout == "" and tree(tmp_path) == []  # refused before the prompt is echoed


def test_largest_seed_is_accepted(ckpt):
    res = invoke("run", ckpt, "--tokens", "1,2", "--max-new-tokens", 2, "--seed", params.SEED_MAX, "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["seed"] == 2 ** 64 - 1
    g = torch.Generator().manual_seed(params.SEED_MAX)  # what torch takes
    with pytest.raises(RuntimeError):
        g.manual_seed(params.SEED_MAX + 1)


@pytest.mark.parametrize("tokens, needle", [
    ("1,,2", "--tokens: empty item at position 2"),
    ("1,2,", "--tokens: empty item at position 3"),
    (",1", "--tokens: empty item at position 1"),
    ("1,٣", "--tokens: '٣' is not an integer token id"),
    ("1,-5", "--tokens: token id -5 is outside the vocabulary 0..39"),
    (" ", "--tokens: no token ids given"),
])
def test_token_list_refused(tmp_path, ckpt, tokens, needle):
    res = invoke("run", ckpt, "--tokens", tokens, "--dump-logits", tmp_path / "l.npy")
    one_line_error(res, needle)
    assert res.stdout == "" and tree(tmp_path) == []


def test_token_list_spaces_and_commas_accepted(ckpt):
    a = json.loads(invoke("run", ckpt, "--tokens", "1, 2,3", "--max-new-tokens", 0, "--json").stdout)
    b = json.loads(invoke("run", ckpt, "--tokens", "1 2 3", "--max-new-tokens", 0, "--json").stdout)
    assert a["prompt_tokens"] == b["prompt_tokens"] == [1, 2, 3]


def test_threads_above_cores_warn_and_cap(ckpt, keep_threads):
    cores = params.available_cores()
    res = invoke("run", ckpt, "--tokens", "1", "--max-new-tokens", 1, "--threads", cores + 7, "--json")
    assert res.exit_code == 0, res.stderr
    assert res.stderr.splitlines() == [f"warning: --threads {cores + 7} is more than the {cores} available CPU "
                                       f"core{'s' if cores != 1 else ''}; using {cores}"]
    assert json.loads(res.stdout)["threads"] == cores


# --------------------------------------------------------------------------- 3. defaults and idle options


def test_default_generates(keep_threads):
    res = invoke("run", DEMO_CKPT, "--prompt", "The for statement", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert len(out["generated_tokens"]) == DEFAULT_MAX_NEW_TOKENS == 200
    assert "[default: 200]" in invoke("run", "--help").stdout


@pytest.mark.parametrize("args, needle", [
    (["--max-new-tokens", "0", "--temperature", "0.5"],
     "warning: --temperature has no effect with --max-new-tokens 0 (nothing is generated)"),
    (["--max-new-tokens", "0", "--top-p", "0.9", "--seed", "3"],
     "warning: --top-p, --seed have no effect with --max-new-tokens 0"),
    (["--max-new-tokens", "0", "--greedy"], "warning: --greedy has no effect with --max-new-tokens 0"),
    (["--max-new-tokens", "2", "--greedy", "--seed", "3"], "warning: --seed has no effect with --greedy"),
])
def test_options_without_effect_warn(ckpt, args, needle):
    res = invoke("run", ckpt, "--tokens", "1,2", *args, "--json")
    assert res.exit_code == 0, res.stderr
    assert res.stderr.splitlines() == [needle] or (len(res.stderr.splitlines()) == 1 and
                                                   res.stderr.startswith(needle))
    json.loads(res.stdout)


def test_no_warning_when_every_option_counts(ckpt):
    res = invoke("run", ckpt, "--tokens", "1,2", "--max-new-tokens", 2, "--temperature", 0.7, "--top-p", 0.9,
                 "--seed", 5, "--json")
    assert res.exit_code == 0 and res.stderr == ""


# --------------------------------------------------------------------------- 4. the prompt


def test_replaced_characters_warn(tmp_path):
    res = invoke("run", DEMO_CKPT, "--prompt", "café 🙂\ttab", "--max-new-tokens", 0, "--json")
    assert res.exit_code == 0, res.stderr
    assert res.stderr.splitlines() == [
        "warning: --prompt: 3 characters not in the vocabulary were replaced by ' ': 'é', '🙂', '\\t'"]
    assert json.loads(res.stdout)["prompt"] == "caf    tab"


def test_replaced_characters_warn_in_text_mode_too():
    res = invoke("run", DEMO_CKPT, "--prompt", "é" * 9 + "The", "--max-new-tokens", 1)
    assert res.exit_code == 0, res.stderr
    assert res.stderr.splitlines()[0] == ("warning: --prompt: 9 characters not in the vocabulary were replaced "
                                          "by ' ': 'é'")
    assert res.stdout.startswith(" " * 9 + "The")


def test_many_distinct_characters_show_the_first_five():
    res = invoke("run", DEMO_CKPT, "--prompt", "The ёжзийк", "--max-new-tokens", 0)
    assert "6 characters not in the vocabulary were replaced by ' ': 'ё', 'ж', 'з', 'и', 'й', ..." in res.stderr


@pytest.mark.parametrize("prompt", ["🙂", "🙂🙂 🙂"])
def test_emoji_only_prompt_char_vocab_is_an_error(tmp_path, prompt):
    res = invoke("run", DEMO_CKPT, "--prompt", prompt, "--dump-logits", tmp_path / "l.npy")
    one_line_error(res, "--prompt has nothing in the vocabulary: every character is unknown")
    assert "'🙂'" in res.stderr and res.stdout == "" and tree(tmp_path) == []


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    """Checkpoints with a BPE tokenizer that has no unknown token and a word-level one with [UNK]."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    d = tmp_path_factory.mktemp("hf")
    tok = Tokenizer(models.BPE())  # no unk_token: unknown characters vanish
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["the cat sat on the mat", "a tab and a cafe"],
                            trainers.BpeTrainer(vocab_size=60, show_progress=False))
    tok.save(str(d / "bpe.json"))
    word = train_hf_tokenizer(d / "word.json", kind="wordlevel")
    out = {}
    for name, t in (("bpe", tok), ("word", word)):
        ck = d / f"{name}.pth"
        save_checkpoint(spiking_state_dict(2, 8, t.get_vocab_size(with_added_tokens=True), seed=2), ck)
        out[name] = (ck, d / f"{name}.json")
    return out


def test_dropped_characters_warn(hf_models):
    ck, tok = hf_models["bpe"]
    res = invoke("run", ck, "--tokenizer", tok, "--prompt", "café 🙂\ttab", "--max-new-tokens", 0, "--json")
    assert res.exit_code == 0, res.stderr
    assert res.stderr.splitlines() == ["warning: --prompt: 2 characters not in the vocabulary were dropped "
                                       "(the tokenizer has no unknown token): 'é', '🙂'"]


def test_emoji_only_prompt_dropped_is_an_error_saying_why(tmp_path, hf_models):
    ck, tok = hf_models["bpe"]
    res = invoke("run", ck, "--tokenizer", tok, "--prompt", "🙂", "--dump-logits", tmp_path / "l.npy")
    one_line_error(res, "--prompt encodes to no tokens: its only character is outside the tokenizer's "
                        "vocabulary and the tokenizer has no unknown token, so it was dropped: '🙂'")
    assert tree(tmp_path) == []
    res = invoke("run", ck, "--tokenizer", tok, "--prompt", "🙂🙂")
    one_line_error(res, "all 2 characters are outside")


def test_unknown_word_replaced_warns(hf_models):
    ck, tok = hf_models["word"]
    res = invoke("run", ck, "--tokenizer", tok, "--prompt", "the zebra sat", "--max-new-tokens", 0, "--json")
    assert res.exit_code == 0, res.stderr
    assert res.stderr.splitlines() == ["warning: --prompt: 1 piece not in the vocabulary was replaced by "
                                       "'[UNK]': 'zebra'"]


def test_encode_with_report_keeps_encode(hf_models):
    from converters.tokenizer import load_tokenizer

    char = load_tokenizer(DEMO_CKPT.parent / "vocab.json")
    text = "café 🙂\ttab"
    ids, replaced, dropped = char.encode_with_report(text)
    assert ids == char.encode(text) and replaced == ["é", "🙂", "\t"] and dropped == []
    bpe = load_tokenizer(hf_models["bpe"][1])
    ids, replaced, dropped = bpe.encode_with_report(text)
    assert ids == bpe.encode(text) and replaced == [] and dropped == ["é", "🙂"] and bpe.unknown_id is None
    word = load_tokenizer(hf_models["word"][1])
    ids, replaced, dropped = word.encode_with_report("the zebra sat")
    assert ids == word.encode("the zebra sat") and replaced == ["zebra"] and word.unknown_token == "[UNK]"
    byte_level = load_tokenizer(_bytelevel(hf_models["bpe"][1].parent))
    assert byte_level.encode_with_report(text)[1:] == ([], [])  # byte-level BPE covers every character


def _bytelevel(folder):
    path = folder / "bytelevel.json"
    if not path.exists():
        train_hf_tokenizer(path, kind="bpe")
    return path


def test_empty_prompt_is_an_error(tmp_path):
    res = invoke("run", DEMO_CKPT, "--prompt", "", "--dump-logits", tmp_path / "l.npy")
    one_line_error(res, "--prompt is empty")
    assert tree(tmp_path) == []


# --------------------------------------------------------------------------- 5. progress


def test_progress_on_stderr_keeps_json_clean(ckpt):
    env = {progress.PROGRESS_ENV: "always"}
    res = invoke("run", ckpt, "--tokens", ",".join(["1"] * 30), "--max-new-tokens", 5, "--json", env=env)
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)  # stdout is the JSON object alone
    assert len(out["generated_tokens"]) == 5
    lines = res.stderr.splitlines()
    assert lines[0].startswith("prefill 0/30 tokens (0%)") or lines[0].startswith("prefill ")
    assert "prefill done: 30 tokens" in res.stderr and "generate done: 5 tokens" in res.stderr


def test_progress_in_text_mode_keeps_stdout_clean():
    res = invoke("run", DEMO_CKPT, "--prompt", "The for", "--max-new-tokens", 3, "--greedy",
                 env={progress.PROGRESS_ENV: "always"})
    assert res.exit_code == 0, res.stderr
    assert "prefill" not in res.stdout and res.stdout.startswith("The for")
    assert "prefill done: 7 tokens" in res.stderr


def test_progress_quiet_for_short_work_and_never():
    res = invoke("run", DEMO_CKPT, "--prompt", "The for", "--max-new-tokens", 3, "--json",
                 env={progress.PROGRESS_ENV: "auto"})
    assert res.exit_code == 0 and res.stderr == ""


class FakeTTY:
    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s

    def flush(self):
        pass

    def isatty(self):
        return True


def test_progress_tty_redraws_one_line_and_erases_it(monkeypatch):
    t = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: t[0])
    tty = FakeTTY()
    with progress.Progress("prefill", total=1000, unit="tokens", stream=tty, mode="auto") as p:
        p(10)  # before the 1 s delay: nothing
        assert tty.text == ""
        t[0] += 2
        p(400)
        t[0] += 0.01
        p(401)  # rate-limited
        t[0] += 0.5
        p(500)
    assert "\n" not in tty.text
    assert tty.text.count("\r") == 3  # two redraws and the erase
    assert "prefill 400/1,000 tokens (40%), 200 tokens/s, 3 s left" in tty.text
    assert tty.text.endswith("\r\x1b[K")


def test_progress_log_mode_is_sparse(monkeypatch):
    t = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: t[0])

    class Log(FakeTTY):
        def isatty(self):
            return False

    log = Log()
    with progress.Progress("convert", total=100, unit="layers", stream=log, mode="auto") as p:
        for i in range(100):
            t[0] += 0.2
            p(i + 1)
    lines = log.text.splitlines()
    assert 3 <= len(lines) <= 6 and lines[-1] == "convert done: 100 layers in 20.0 s"
    assert "\r" not in log.text


def test_generate_progress_callback_changes_nothing(demo_spec):
    from spike2loihi.backends import generate
    from spike2loihi.model.reference import ReferenceModel

    ids = demo_spec.tokenizer.encode("The for statement")
    calls = []
    a = generate.run(ReferenceModel(demo_spec), ids, max_new_tokens=6, seed=1, keep_logits=True)
    b = generate.run(ReferenceModel(demo_spec), ids, max_new_tokens=6, seed=1, keep_logits=True,
                     on_progress=lambda *c: calls.append(c))
    assert a.generated_tokens == b.generated_tokens and np.array_equal(a.prompt_logits, b.prompt_logits)
    assert calls[0] == ("prefill", 0, len(ids)) and ("prefill", len(ids), len(ids)) in calls
    assert calls[-1] == ("generate", 6, 6)


# --------------------------------------------------------------------------- 6. file modes


def test_output_files_mode_follows_umask(tmp_path, ckpt, umask022):
    res = invoke("run", ckpt, "--tokens", "1,2", "--max-new-tokens", 1, "--json",
                 "--dump-logits", tmp_path / "l.npy", "--dump-spikes", tmp_path / "s.npz")
    assert res.exit_code == 0, res.stderr
    for name in ("l.npy", "s.npz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    os.umask(0o077)
    with atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("x")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o600
    os.umask(0o022)
    (tmp_path / "l.npy").chmod(0o640)  # an existing file keeps its mode
    res = invoke("run", ckpt, "--tokens", "1,2", "--max-new-tokens", 1, "--dump-logits", tmp_path / "l.npy")
    assert res.exit_code == 0 and stat.S_IMODE((tmp_path / "l.npy").stat().st_mode) == 0o640
    with atomic_path(tmp_path / "b.txt") as tmp:
        tmp.write_text("x")
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o644


# --------------------------------------------------------------------------- 7. usage errors


@pytest.mark.parametrize("args, needle, hint", [
    (["run", DEMO_CKPT, "--tokens", "1", "--bogus"], "error: no such option '--bogus'", "spike2loihi run"),
    (["run"], "error: missing argument 'MODEL'", "spike2loihi run"),
    (["run", DEMO_CKPT, "--backend", "lava"], "error: --backend: 'lava' is not one of", "spike2loihi run"),
    (["run", DEMO_CKPT, "--temprature", "1"], "error: no such option '--temprature'", "spike2loihi run"),
    (["inspect"], "error: missing argument 'MODEL'", "spike2loihi inspect"),
    (["frobnicate"], "error: no such command 'frobnicate'", "spike2loihi"),
    (["run", DEMO_CKPT, "--tokens"], "error: option '--tokens' requires an argument", "spike2loihi run"),
])
def test_usage_errors_are_one_line_with_a_help_hint(args, needle, hint):
    res = invoke(*args)
    line = one_line_error(res, needle)
    assert line.endswith(f"(see '{hint} --help')"), line
    assert res.stdout == ""


def test_semantics_choices_match_the_model():
    from spike2loihi.model.spec import SEMANTICS_CHOICES as MODEL_CHOICES

    assert SEMANTICS_CHOICES == MODEL_CHOICES


# --------------------------------------------------------------------------- 8. inspect


def test_inspect_npz_is_named(tmp_path):
    path = tmp_path / "arrays.npz"
    np.savez(path, logits=np.zeros(3), spikes=np.ones(2))
    res = invoke("inspect", path)
    one_line_error(res, f"{path}: a NumPy .npz archive (arrays logits, spikes), not a PyTorch checkpoint")
    assert "zip" not in res.stderr.replace(".npz", "")  # no torch zip internals


@pytest.mark.parametrize("n_layer, text", [
    (4, "no rescale (n_layer 4 < 6)"),
    (6, "no weight rescale; x halved once after the last block (n_layer 6)"),
    (8, "rescale every 6 layers"),
])
def test_inspect_rescale_line(tmp_path, n_layer, text):
    path = tmp_path / f"m{n_layer}.pth"
    save_checkpoint(spiking_state_dict(n_layer, 8, 20, seed=1), path)
    res = invoke("inspect", path)
    assert res.exit_code == 0, res.stderr
    line = next(l for l in res.stdout.splitlines() if l.startswith("semantics"))
    assert text in line
    assert ("rescale every" in line) == (n_layer > 6)


def test_inspect_bundled_model_says_no_rescale():
    res = invoke("inspect", DEMO_CKPT)
    assert "binary embedding on, no rescale (n_layer 4 < 6)" in res.stdout


def test_readme_commands_name_files_that_exist():
    """The README's example commands use the venv's entry point and files of this repository."""
    text = (ROOT / "README.md").read_text()
    assert "about 3 GB" not in text and "5.7 GB" in text
    assert "model.pth" not in text
    commands = [l.split("$ ", 1)[1] for l in text.splitlines() if l.lstrip().startswith("$ ")
                and "spike2loihi " in l]
    assert commands
    for cmd in commands:
        assert cmd.startswith((".venv/bin/spike2loihi ", "make ")), cmd
        for word in cmd.split():
            if word.endswith((".pth", ".json")) and not word.startswith("-"):
                assert (ROOT / word).exists(), word
    assert "--max-new-tokens" in text and "200" in text
