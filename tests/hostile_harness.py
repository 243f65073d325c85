"""The hostile-input harness: every class of attack on every command, run as a user would run it.

    .venv/bin/python tests/hostile_harness.py [--quick] [--json OUT.json]

Each case runs the installed `spike2loihi` in its own session with a timeout and is judged:

* clean: a non-zero exit, exactly one `error:` (or `interrupted`) line on stderr besides
  `warning:` lines, no traceback, within the timeout, no process of its session left after a
  few seconds, nothing left in its output folder;
* traceback / hang / orphans / leftovers / accepted (exit 0 on hostile input): what went wrong.

Classes (issue 21): special files as inputs; paths recorded inside an artifact; tampered
artifacts with a recomputed checksum; hardware-profile YAML; ONNX external data and metadata;
Lava runs and signals; memory bombs in small files. The counts per class go to stdout (JSON);
the test suite runs a representative subset of the same generators (tests/*/test_*hostile*.py,
tests/lava_graph/test_lava_lifetime.py).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(HERE / "convert"), str(HERE / "hardware"), str(HERE / "export")]

EXE = ROOT / ".venv" / "bin" / "spike2loihi"


def _cmd(args):
    base = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "spike2loihi.cli"]
    return base + [str(a) for a in args]


def _session(pgid):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.getpgid(int(p)) == pgid:
                    with open(f"/proc/{p}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                            out.append(int(p))
            except (OSError, ProcessLookupError):
                pass
    return out


def judge(args, out_dir: Path, timeout: float = 60.0, signal_plan=None, expect_interrupt=False) -> dict:
    """Run one case and classify it. `signal_plan(proc)` may send signals while it runs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    before = set(os.listdir(out_dir))
    t0 = time.time()
    proc = subprocess.Popen(_cmd(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=out_dir,
                            env=dict(os.environ, SPIKE2LOIHI_PROGRESS="never"))
    hang = False
    try:
        if signal_plan is not None:
            signal_plan(proc)
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        hang = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    seconds = time.time() - t0
    deadline = time.time() + 15
    while time.time() < deadline and _session(proc.pid):
        time.sleep(0.2)
    left = _session(proc.pid)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning:")]
    leftovers = sorted(set(os.listdir(out_dir)) - before)
    one = len(lines) == 1 and (lines[0].startswith("error: ") or lines[0].endswith("interrupted"))
    if hang:
        verdict = "hang"
    elif "Traceback" in err:
        verdict = "traceback"
    elif left:
        verdict = "orphans"
    elif proc.returncode == 0 and not expect_interrupt:
        verdict = "accepted"
    elif not one:
        verdict = "not one line"
    elif leftovers:
        verdict = "leftovers"
    else:
        verdict = "clean"
    return {"args": [str(a)[:120] for a in args], "exit": proc.returncode, "verdict": verdict,
            "seconds": round(seconds, 1), "stderr": err.strip().splitlines()[-1][:200] if err.strip() else "",
            "orphans": len(left), "leftovers": leftovers[:5]}


# ---------------------------------------------------------------------------
# The classes
# ---------------------------------------------------------------------------
def make_fixtures(work: Path) -> dict:
    import numpy as np

    from conftest import DEMO_CKPT, convert_spec, converted_random, spiking_state_dict
    from converters.spikegpt import load_checkpoint, save_checkpoint
    from spike2loihi.convert import artifact

    f = {"work": work}
    spec = load_checkpoint(DEMO_CKPT)
    model = convert_spec(spec, spec.tokenizer.encode("The for statement is a loop over items."))[0]
    f["model"] = work / "demo.s2l"
    artifact.save(model, f["model"])
    f["model_obj"] = model
    small = converted_random(2, 16, 40)
    f["small"] = small
    f["small_bytes"] = artifact.to_bytes(small)
    f["ckpt"] = DEMO_CKPT
    f["fifo"] = work / "pipe"
    os.mkfifo(f["fifo"])
    f["dir"] = work / "a_folder"
    f["dir"].mkdir()
    f["device"] = Path("/dev/zero")
    f["tokens"] = work / "tokens.txt"
    f["tokens"].write_text("1 2 3 4")
    rand = work / "rand.pth"
    save_checkpoint(spiking_state_dict(2, 16, 40, seed=1), rand)
    f["rand_ckpt"] = rand
    np.random.seed(0)
    return f


def special_files(f, out):
    cases = []
    for kind in ("fifo", "device", "dir"):
        bad = f[kind]
        for args in (["inspect", bad], ["run", bad, "--tokens", "1"], ["eval", bad, "--tokens-file", f["tokens"]],
                     ["profile", bad, "--hw", "simulator"], ["export", bad, "-o", out / "x.onnx"],
                     ["deploy", bad, "--hw", "oheo_gulch", "--partition", "p", "-o", out / "b"],
                     ["convert", bad, "-o", out / "x.s2l"],
                     ["convert", f["ckpt"], "-o", out / "x.s2l", "--calib", bad],
                     ["convert", f["ckpt"], "-o", out / "x.s2l", "--calib-tokens-file", bad],
                     ["run", f["model"], "--tokens-file", bad], ["run", f["ckpt"], "--tokenizer", bad, "--tokens", "1"],
                     ["eval", f["model"], "--tokens-file", bad], ["eval", f["model"], "--text", bad],
                     ["profile", f["model"], "--hw", "simulator", "--text", bad],
                     ["profile", f["model"], "--hw", bad],
                     ["run", bad, "--tokens", "1", "--backend", "onnxruntime"]):
            cases.append(args)
    return cases


def recorded_paths(f, out):
    import dataclasses

    from spike2loihi.convert import artifact

    cases = []
    for kind in ("fifo", "device", "dir"):
        m = f["small"]
        m = dataclasses.replace(m, manifest={**m.manifest, artifact.K_SOURCE: {"path": str(f[kind]), "sha256": ""}})
        p = f["work"] / f"src_{kind}.s2l"
        artifact.save(m, p)
        cases.append(["run", p, "--backend", "torch", "--tokens", "1,2"])
        cases.append(["eval", p, "--tokens-file", f["tokens"]])
    return cases


def tampered_artifacts(f, out):
    import test_artifact_hostile as T

    cases = []
    for name, (edit, _) in T.CASES.items():
        p = f["work"] / f"tampered_{len(cases)}.s2l"
        p.write_bytes(T.rewrite(f["small_bytes"], edit))
        cases.append(["run", p, "--tokens", "1,2", "--backend", "emulator"])
        cases.append(["profile", p, "--hw", "simulator"])
    return cases


def profile_yaml(f, out):
    import test_profile_hostile as Y

    texts = {
        "alias bomb": Y.BOMB,
        "50,000 [": "a: " + "[" * 50_000,
        "deep mapping": "".join("  " * i + f"k{i}:\n" for i in range(100)) + "  " * 100 + "leaf: 1\n",
        "1e308 timestep": Y.edit(Y.TIMESTEP, "timestep_us_typical: {value: 1e308,"),
        "400-digit cores": Y.edit(Y.CORES, "neurocores_physical:    {value: " + "7" * 400 + ","),
        "NaN": Y.edit(Y.TIMESTEP, "timestep_us_typical: {value: .nan,"),
        "negative": Y.edit(Y.CORES, "neurocores_physical:    {value: -4,"),
        "python tag": "!!python/object/apply:os.system ['echo pwned']\n",
        "2 MB": "a: " + "x" * (2 << 20),
    }
    cases = []
    for i, text in enumerate(texts.values()):
        p = f["work"] / f"hw_{i}.yaml"
        p.write_text(text)
        cases.append(["profile", f["model"], "--hw", p])
        cases.append(["deploy", f["model"], "--hw", p, "--partition", "p", "-o", out / f"bundle{i}"])
    return cases


def onnx_models(f, out):
    import onnx

    from conftest import random_spec
    from spike2loihi.export import onnx as OX

    import test_onnx_hostile as X

    spec = random_spec(n_layer=1, n_embd=8, vocab=10, seed=3)
    tiny = OX.export_checkpoint(spec, spec.semantics("run"))
    cases = []
    folder = f["work"] / "onnx"
    folder.mkdir(exist_ok=True)
    for i, loc in enumerate(("/etc/passwd", "../../../../etc/passwd", "../outside.bin")):
        p = folder / f"ext{i}.onnx"
        X.save(X.tiny_external(tiny, loc), p)
        cases.append(["run", p, "--tokens", "1,2", "--backend", "onnxruntime"])
    link = folder / "link.bin"
    if not link.exists():
        os.symlink("/etc/passwd", link)
    p = folder / "symlink.onnx"
    X.save(X.tiny_external(tiny, "link.bin"), p)
    cases.append(["run", p, "--tokens", "1,2", "--backend", "onnxruntime"])
    for name, (changes, _) in X.TAMPERED.items():
        p = folder / f"meta{len(cases)}.onnx"
        X.save(X.with_meta(tiny, **changes), p)
        cases.append(["run", p, "--tokens", "1,2", "--backend", "onnxruntime"])
    p = folder / "garbage.onnx"
    p.write_bytes(os.urandom(4096))
    cases.append(["run", p, "--tokens", "1", "--backend", "onnxruntime"])
    del onnx
    return cases


def memory_bombs(f, out):
    import torch

    from _factories import random_state_dict

    sd = random_state_dict(2, 8, 11, seed=0)
    sd["emb.weight"] = torch.zeros(1).expand(65536, 65536)
    p = f["work"] / "expanded.pth"
    torch.save(sd, p)
    sd2 = random_state_dict(2, 16, 40, seed=0)
    sd2["blocks.0.att.key.weight"] = sd2["blocks.0.att.key.weight"] * 1e30
    p2 = f["work"] / "huge.pth"
    torch.save(sd2, p2)
    return [["inspect", p], ["convert", p, "-o", out / "x.s2l"], ["run", p, "--tokens", "1"],
            ["inspect", p2], ["run", p2, "--tokens", "1,2", "--max-new-tokens", "2"],
            ["run", f["model"], "--backend", "lava-sim", "--tokens", "1", "--max-new-tokens", "10000000000000"],
            ["run", f["model"], "--backend", "lava-sim", "--tokens", "1", "--max-new-tokens", "1000000000"]]


def lava_signals(f, out):
    """(args, signal plan, expect_interrupt): signals at points of start-up and of the run, SIGKILL."""
    from spike2loihi.lava.runtime import _descendants

    def after_children(n, sig):
        def plan(proc):
            deadline = time.time() + 60
            while time.time() < deadline and len(_descendants(proc.pid)) < n and proc.poll() is None:
                time.sleep(0.01)
            proc.send_signal(sig)
        return plan

    def after(seconds, sig):
        def plan(proc):
            time.sleep(seconds)
            proc.send_signal(sig)
        return plan

    run = ["run", f["model"], "--backend", "lava-sim", "--tokens", "1,2,3", "--max-new-tokens", "300"]
    out_cases = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        for plan in (after(0.3, sig), after(1.5, sig), after_children(1, sig), after_children(4, sig),
                     after_children(12, sig), after(12, sig)):
            out_cases.append((run, plan, True))
    emu = ["run", f["model"], "--backend", "emulator", "--tokens", "1,2,3", "--max-new-tokens", "10000000"]
    for sig in (signal.SIGINT, signal.SIGTERM):
        out_cases.append((emu, after(6, sig), True))
    return out_cases


def sigkill_parent(f, out):
    from spike2loihi.lava.runtime import _descendants

    results = []
    for n in (1, 6, 14):
        proc = subprocess.Popen(_cmd(["run", f["model"], "--backend", "lava-sim", "--tokens", "1,2,3",
                                      "--max-new-tokens", "3000"]), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline and len(_descendants(proc.pid)) < n:
            time.sleep(0.01)
        proc.kill()
        proc.wait()
        deadline = time.time() + 10
        while time.time() < deadline and _session(proc.pid):
            time.sleep(0.2)
        left = _session(proc.pid)
        if left:
            os.killpg(proc.pid, signal.SIGKILL)
        results.append({"args": [f"SIGKILL after {n} children"], "exit": -9, "orphans": len(left),
                        "verdict": "orphans" if left else "clean", "seconds": 0, "stderr": "", "leftovers": []})
    return results


CLASSES = {
    "special files as inputs": special_files,
    "paths recorded inside an artifact": recorded_paths,
    "tampered artifacts (valid checksum)": tampered_artifacts,
    "hardware profile YAML": profile_yaml,
    "ONNX external data and metadata": onnx_models,
    "memory bombs in small files": memory_bombs,
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few cases of each class")
    ap.add_argument("--json", help="write every case's result here")
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="s2l-hostile-"))
    results = {}
    try:
        f = make_fixtures(work)
        for name, gen in CLASSES.items():
            out = work / "out"
            rows = []
            cases = gen(f, out)
            if a.quick:
                cases = cases[::max(1, len(cases) // 4)]
            for args in cases:
                rows.append(judge(args, out / str(len(rows)), timeout=60))
            results[name] = rows
            print(f"{name}: {len(rows)} cases", file=sys.stderr)
        rows = []
        cases = lava_signals(f, work / "out")
        if a.quick:
            cases = cases[::3]
        for args, plan, expect in cases:
            rows.append(judge(args, work / "out" / f"sig{len(rows)}", timeout=120, signal_plan=plan,
                              expect_interrupt=expect))
        rows += sigkill_parent(f, work / "out")
        results["Lava runs and signals"] = rows
    finally:
        shutil.rmtree(work, ignore_errors=True)
    verdicts = ("clean", "traceback", "hang", "orphans", "accepted", "not one line", "leftovers")
    summary = {name: {"tried": len(rows), **{v: sum(r["verdict"] == v for r in rows) for v in verdicts}}
               for name, rows in results.items()}
    summary["total"] = {k: sum(s[k] for s in summary.values()) for k in ("tried",) + verdicts}
    bad = [r for rows in results.values() for r in rows if r["verdict"] != "clean"]
    print(json.dumps({"summary": summary, "not_clean": bad[:30]}, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
