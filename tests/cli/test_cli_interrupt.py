"""Issue 14, item 5: Ctrl-C at any moment is one line (`interrupted`) and exit code 130.

A real SIGINT to a child process: during start-up (imports, loading), during a long
prefill (text and --json) and during generation (--json prints what was done). No
output file, partial or temporary, is left behind.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DEMO_CKPT, ROOT
from spike2loihi.cli.progress import PROGRESS_ENV

LONG_PROMPT = "The for statement is a loop over the items of a sequence. " * 400  # ~23,000 characters
CONSOLE_SCRIPT = Path(sys.executable).parent / "spike2loihi"


def start(args, progress="auto", exe=None):
    env = dict(os.environ, **{PROGRESS_ENV: progress})
    cmd = ([str(exe)] if exe else [sys.executable, "-m", "spike2loihi.cli"]) + [str(a) for a in args]
    # SIGINT must reach the child's own handler even if this test run ignores it (a background job).
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_stderr_line(proc, prefix, timeout=90):
    """Read stderr until a line starts with `prefix`; return the lines read."""
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(prefix):
            return lines
    proc.kill()
    pytest.fail(f"no stderr line starting with {prefix!r}: {''.join(lines)!r}")


def interrupt(proc, earlier_stderr=()):
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, "".join(earlier_stderr) + err


def not_progress(stderr):
    return [line for line in stderr.splitlines() if not line.startswith(("prefill ", "generate "))]


@pytest.mark.subprocess
@pytest.mark.parametrize("delay, console", [(0.15, False), (0.8, True)])
def test_ctrl_c_during_startup_is_one_line(tmp_path, delay, console):
    if console and not CONSOLE_SCRIPT.exists():
        pytest.skip("console script not installed")
    proc = start(["run", DEMO_CKPT, "--prompt", "The for", "--max-new-tokens", 100000,
                  "--dump-logits", tmp_path / "l.npy"], exe=CONSOLE_SCRIPT if console else None)
    time.sleep(delay)  # inside the imports (torch takes seconds)
    code, out, err = interrupt(proc)
    assert code == 130, (code, err)
    assert err == "interrupted\n", err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.subprocess
def test_ctrl_c_during_long_prefill_text(tmp_path):
    proc = start(["run", DEMO_CKPT, "--prompt", LONG_PROMPT, "--dump-logits", tmp_path / "l.npy",
                  "--dump-spikes", tmp_path / "s.npz"], progress="always")
    seen = wait_for_stderr_line(proc, "prefill ")
    code, out, err = interrupt(proc, seen)
    assert code == 130, (code, err)
    assert not_progress(err) == ["interrupted"], err
    assert "Traceback" not in err and out == ""  # the prompt is echoed once prefill is done
    assert list(tmp_path.iterdir()) == []  # no dump, no temporary file


@pytest.mark.subprocess
def test_ctrl_c_during_long_prefill_json_reports_progress(tmp_path):
    proc = start(["run", DEMO_CKPT, "--prompt", LONG_PROMPT, "--json", "--dump-logits", tmp_path / "l.npy"],
                 progress="always")
    seen = wait_for_stderr_line(proc, "prefill ")
    code, out, err = interrupt(proc, seen)
    assert code == 130 and not_progress(err) == ["interrupted"], (code, err)
    partial = json.loads(out)
    assert partial["interrupted"] is True and partial["phase"] == "prefill"
    assert 0 <= partial["prefill_tokens_done"] < len(partial["prompt_tokens"]) == len(LONG_PROMPT)
    assert partial["generated_tokens"] == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.subprocess
def test_ctrl_c_during_generation_json_keeps_what_was_generated(tmp_path):
    proc = start(["run", DEMO_CKPT, "--prompt", "The for", "--max-new-tokens", 100000, "--json",
                  "--dump-spikes", tmp_path / "s.npz"], progress="always")
    seen = wait_for_stderr_line(proc, "generate ")
    time.sleep(1.0)
    code, out, err = interrupt(proc, seen)
    assert code == 130 and not_progress(err) == ["interrupted"], (code, err)
    partial = json.loads(out)
    assert partial["interrupted"] is True and partial["phase"] == "generate"
    assert partial["prefill_tokens_done"] == len(partial["prompt_tokens"]) == 7
    assert len(partial["generated_tokens"]) >= 1
    assert len(partial["text"]) == len(partial["generated_tokens"])  # char vocabulary: one character each
    assert list(tmp_path.iterdir()) == []
