"""A Lava run's lifetime: a signal at any moment of start-up is honoured (exit 130, `interrupted`), SIGTERM
acts as Ctrl-C on every backend, a SIGKILLed parent leaves no Lava process behind, record folders do not
outlive their run, and the records are bounded before anything starts."""
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import ROOT, converted_random, one_line_error
from spike2loihi.convert import artifact

pytest.importorskip("lava")

from spike2loihi.lava import runtime  # noqa: E402

pytestmark = pytest.mark.lava   # every test here starts Lava's runtime (most in a subprocess)


def _cmd(*args):
    exe = ROOT / ".venv" / "bin" / "spike2loihi"
    return [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "spike2loihi.cli"]),
            *[str(a) for a in args]]


def _session(pgid):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if os.getpgid(int(p)) != pgid:
                continue
            with open(f"/proc/{p}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            out.append(int(p))
        except (OSError, ProcessLookupError):
            pass
    return out


def _descendants(pid):
    return [p for p in runtime._descendants(pid)]


def _wait_gone(pgid, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline and _session(pgid):
        time.sleep(0.2)
    return _session(pgid)


def _records_of(pid):
    return list(Path(tempfile.gettempdir()).glob(f"{runtime.RECORDS_PREFIX}{pid}-*"))


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "m.s2l"
    artifact.save(converted_random(2, 16, 40), path)
    return path


def _start(model_path, *extra):
    return subprocess.Popen(_cmd("run", model_path, "--backend", "lava-sim", "--tokens", "1,2,3", "--json", *extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=dict(os.environ, SPIKE2LOIHI_PROGRESS="always"))


@pytest.mark.subprocess
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("when", ["forking", "forked"])
def test_a_signal_during_start_up_exits_130_and_leaves_nothing(model_path, sig, when):
    """`forking`: as soon as the runtime has forked its first process; `forked`: once it has many."""
    proc = _start(model_path, "--max-new-tokens", "400")
    try:
        need = 1 if when == "forking" else 8
        deadline = time.time() + 60
        while time.time() < deadline and len(_descendants(proc.pid)) < need and proc.poll() is None:
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before the signal"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].endswith("interrupted") and "Traceback" not in err, err
    assert _wait_gone(proc.pid) == [], "processes left behind"
    assert _records_of(proc.pid) == []


@pytest.mark.subprocess
def test_sigkill_of_the_parent_leaves_no_lava_process(model_path):
    proc = _start(model_path, "--max-new-tokens", "2000")
    try:
        deadline = time.time() + 60
        line = ""
        while time.time() < deadline and not line.startswith("generate"):
            line = proc.stderr.readline()
        assert line.startswith("generate"), "the run never started generating"
        assert len(_descendants(proc.pid)) > 5
        proc.kill()
        proc.wait(timeout=10)
        left = _wait_gone(proc.pid, seconds=10)
        assert left == [], f"{len(left)} processes outlived their SIGKILLed parent"
    finally:
        if _session(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    stale = _records_of(proc.pid)
    assert stale, "the killed run's record folder should be there until the next run"
    runtime.remove_stale_records()
    assert _records_of(proc.pid) == []


@pytest.mark.subprocess
def test_sigterm_on_the_emulator_is_an_interrupt(model_path):
    proc = subprocess.Popen(_cmd("run", model_path, "--backend", "emulator", "--tokens", "1,2,3",
                                 "--max-new-tokens", "100000000"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=dict(os.environ, SPIKE2LOIHI_PROGRESS="always"))
    try:
        time.sleep(8)   # start-up (imports, loading) is over: the emulator is generating
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and err.strip().splitlines()[-1].endswith("interrupted"), (proc.returncode, err)


def test_the_records_are_bounded_before_anything_starts(model_path):
    from click.testing import CliRunner

    from spike2loihi.cli.app import main

    before = set(runtime._descendants(os.getpid()))
    res = CliRunner().invoke(main, ["run", str(model_path), "--backend", "lava-sim", "--tokens", "1",
                                    "--max-new-tokens", "10000000000000"])
    one_line_error(res, "at most 1,000,000 tokens")
    assert set(runtime._descendants(os.getpid())) - before == set()


def test_record_folders_of_dead_runs_are_removed(tmp_path):
    dead = tmp_path / f"{runtime.RECORDS_PREFIX}{2 ** 22 + 12345}-abc"
    mine = tmp_path / f"{runtime.RECORDS_PREFIX}{os.getpid()}-abc"
    for d in (dead, mine):
        d.mkdir()
        (d / "logits.f32").write_bytes(b"x")
    assert runtime.remove_stale_records(str(tmp_path)) == 1
    assert not dead.exists() and mine.exists()
