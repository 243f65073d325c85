"""INRC deployment bundles: one folder that runs a converted model on a Loihi 2 board and checks it.

`spike2loihi deploy` (spike2loihi/cli/deploy.py) writes the folder with this module
(`BundleWriter`, `write_bundle`, `finish_bundle`, after `check_output_dir`); the run
script in it calls `run_check` of spike2loihi.deploy.check, the board-side check.
Lava-free: the board run goes through the `loihi2` backend
(spike2loihi.backends.loihi2), which does its own checks.

A bundle holds (names below):

| file | what |
|---|---|
| `model.s2l` | the converted model, copied byte for byte |
| `run_on_loihi.py` | runs the model on the board (teacher-forced prompt, then greedy tokens) and compares |
| `slurm_job.sh` | `sbatch` script: the partition (or board) in `#SBATCH` lines, then the run script |
| `README.md` | the steps on the INRC host and how to read the result |
| `plan.json` | `spike2loihi.hardware.planner`'s resource plan on the chosen hardware profile |
| `expected.npz` | the emulator's outputs for the fixed prompt: prompt and generated token ids, logits, spikes |
| `requirements.txt` | what the toolchain needs besides Lava |
| `toolchain/` | this spike2loihi's source (`spike2loihi`, `converters`, `hw_profiles`): the run script imports it |
| `manifest.json` | the run settings (host, LIF placement, prompt) and sha256 + size of every other file |
| `SHA256SUMS` | the same checksums for `sha256sum -c`, and the manifest's |

The expected outputs and their comparison with a board run are in
spike2loihi.deploy.expected; the run script's work and exit codes in
spike2loihi.deploy.check.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from spike2loihi.convert.artifact import sha256_file
from spike2loihi.deploy.expected import Outputs
from spike2loihi.errors import BundleError
from spike2loihi.fileio import SPECIAL_FILESYSTEMS, filesystem_type, folder_in_use, json_default

BUNDLE_KIND = "spike2loihi-inrc-bundle"
BUNDLE_VERSION = 1
MODEL_FILE = "model.s2l"
RUN_SCRIPT = "run_on_loihi.py"
JOB_SCRIPT = "slurm_job.sh"
README_FILE = "README.md"
PLAN_FILE = "plan.json"
PROCESSES_FILE = "processes.json"
EXPECTED_FILE = "expected.npz"
REQUIREMENTS_FILE = "requirements.txt"
TOOLCHAIN_DIR = "toolchain"
MANIFEST_FILE = "manifest.json"
SUMS_FILE = "SHA256SUMS"
RESULT_FILE = "result.json"
BOARD_OUTPUTS_FILE = "board_outputs.npz"
ERROR_FILE = "error_traceback.txt"
TOOLCHAIN_SUFFIXES = (".py", ".yaml")


# ---------------------------------------------------------------------------
# Writing a bundle
# ---------------------------------------------------------------------------
def toolchain_sources() -> List[Tuple[Path, str]]:
    """(source file, path in the bundle) of this spike2loihi's packages."""
    import converters
    import hw_profiles

    import spike2loihi

    out = []
    for pkg in (spike2loihi, converters, hw_profiles):
        root = Path(pkg.__file__).resolve().parent
        for p in sorted(root.rglob("*")):
            if p.is_file() and p.suffix in TOOLCHAIN_SUFFIXES and "__pycache__" not in p.parts:
                out.append((p, f"{TOOLCHAIN_DIR}/{root.name}/{p.relative_to(root).as_posix()}"))
    return out


def _installed(dist: str) -> Optional[str]:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def requirements_text() -> str:
    verified = ", ".join(f"{d} {v}" for d in ("numpy", "scipy", "torch", "click", "PyYAML", "lava-nc")
                         for v in [_installed(d)] if v)
    return ("# What the bundled spike2loihi toolchain needs besides Lava. lava-nc 0.10.0 and Intel's lava-loihi\n"
            "# come from INRC's Lava environment (see README.md); do not let pip replace them.\n"
            f"# Versions this bundle was written with: {verified or 'unknown'}.\n"
            "numpy>=1.24.4,<2\nscipy>=1.10.1,<2\ntorch>=2.3.1\nclick>=8\npyyaml\n")


RUN_SCRIPT_TEXT = '''#!/usr/bin/env python3
"""Run this bundle's model on a Loihi 2 board and compare it with the emulator's expected outputs.

Written by `spike2loihi deploy`; README.md beside it has the steps. It imports the
spike2loihi toolchain copied into toolchain/, runs the model through the loihi2
backend (lava-nc 0.10.0 + Intel's lava-loihi), and reports the first divergence
from expected.npz, or "identical". Options (--partition, --board, --ethernet-host,
--loihi-gen, --lif-placement, --out): `python3 run_on_loihi.py --help`.

Exit codes: 0 identical, 1 diverged, 2 error, 3 lava-nc or lava-loihi missing, 130 interrupted.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "toolchain"))


def main(argv=None):
    try:
        import click, numpy, scipy, torch  # noqa: F401,E401  (requirements.txt)
        from spike2loihi.deploy.check import run_check
    except Exception as exc:  # the toolchain's own dependencies are missing
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"error: cannot load the bundled spike2loihi toolchain ({type(exc).__name__}: {first}); "
              "install requirements.txt into the Python that has lava-nc and lava-loihi (README.md)",
              file=sys.stderr)
        return 2
    return run_check(HERE, argv)


if __name__ == "__main__":
    sys.exit(main())
'''


def job_script_text(host, job_name: str) -> str:
    """The sbatch script: the host in #SBATCH lines, then the run script (its exit code is the job's)."""
    if host.partition:   # inside the job, the partition SLURM gave it (one place to edit: the #SBATCH line)
        where = f"#SBATCH --partition={host.partition}"
        args = f'--partition "${{SLURM_JOB_PARTITION:-{host.partition}}}"'
    elif host.board:
        where, args = f"#SBATCH --nodelist={host.board}", f'--board "${{SLURMD_NODENAME:-{host.board}}}"'
    else:
        where = f"# (Ethernet host {host.ethernet_host}: no SLURM; run `python3 {RUN_SCRIPT}` directly)"
        args = f"--ethernet-host {host.ethernet_host}"
    return f"""#!/bin/bash
# Written by `spike2loihi deploy`: runs this bundle's check on a Loihi 2 board (README.md).
# Submit from this folder: sbatch {JOB_SCRIPT}
#SBATCH --job-name={job_name}
{where}
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --time=01:00:00
#SBATCH --output=slurm-%j.out
set -eu
cd "${{SLURM_SUBMIT_DIR:-$(dirname "$0")}}"
# The Python environment with lava-nc 0.10.0, lava-loihi and requirements.txt: S2L_VENV=/path/to/venv
if [ -n "${{S2L_VENV:-}}" ]; then . "$S2L_VENV/bin/activate"; fi
exec "${{PYTHON:-python3}}" {RUN_SCRIPT} {args} --loihi-gen {host.loihi_gen} "$@"
"""


def readme_text(info: dict) -> str:
    host = info["loihi2"]["host"]
    where = (f"SLURM partition `{host['partition']}`" if host["partition"] else
             f"SLURM board `{host['board']}`" if host["board"] else f"Ethernet host `{host['ethernet_host']}`")
    check = info["check"]
    plan = info["plan_summary"]
    return f"""# Loihi 2 check of `{info['model']['name']}` (spike2loihi INRC bundle)

Written by `spike2loihi deploy` (toolchain {info['toolchain_version']}) for {info['system']}
(`--hw {info['hardware_profile']}`), {where}, chip generation {host['loihi_gen']}.

**Nothing in spike2loihi has run on a Loihi board yet.** This bundle is how to find out.

{info['notes']['token_lif']}. This bundle runs the LIF populations on the
**{info['loihi2']['lif_placement']}** (`--lif-placement`; on the host they are Python processes with
Lava's bit-accurate LIF arithmetic, and every Dense/Sparse layer runs on the chip).

## What it checks

`{RUN_SCRIPT}` runs `{MODEL_FILE}` on the board through spike2loihi's `loihi2` backend
(the Lava graph of `--backend lava-sim` with lava-loihi's `PyToNxAdapter` /
`NxToPyAdapter` on every host/chip edge, run with `Loihi2HwCfg`): {check['prompt_len']}
prompt tokens teacher forced, then {check['max_new_tokens']} greedy tokens. It compares
every logit, every att/ffn spike of every layer and every generated token id with
`{EXPECTED_FILE}`, which the bit-exact emulator computed when the bundle was written,
and prints `identical` or the first divergence (token row, layer, population,
channel, expected, got).

Resource plan (`{PLAN_FILE}`, estimates): {plan}.

Process inventory (`{PROCESSES_FILE}`): every Lava process type of the graph the board runs, its
count, chip or host, and whether a Loihi 2 neurocore model is publicly known (`lava-loihi`), needs
a microcoded neuron (`microcode`) or is `unknown`, with the public source. What each mapping needs:
LIFs on the host (`--lif-placement host`) need only Dense/Sparse/readout GradedVec neurocore models
and the adapters, but the spiking layers then do not spike on Loihi; LIFs on the chip need a
neurocore model of the token-gated LIF, which no release ships.

## Steps on the INRC host

1. Copy this folder to the INRC host (e.g. `scp -r {shlex.quote(info['bundle_name'])} <you>@<inrc-host>:`),
   then check it there: `sha256sum -c {SUMS_FILE}`.
2. Use the Python environment INRC provides with lava-nc 0.10.0 and lava-loihi (CPython 3.10;
   lava-loihi is distributed to INRC members only, see INRC's page "Get started with the
   Lava extension for Loihi"), and add what the toolchain needs:
   `pip install -r {REQUIREMENTS_FILE}` (numpy, scipy, torch, click, pyyaml; the
   toolchain itself is in `{TOOLCHAIN_DIR}/`, nothing else to install).
3. Run it, either queued: `S2L_VENV=/path/to/that/venv sbatch {JOB_SCRIPT}` (its
   `#SBATCH` lines name the {where}), or from the login host: `python3 {RUN_SCRIPT}`
   (Lava then reaches the board itself through `lava.utils.loihi.use_slurm_host`).
   Which of the two INRC's systems expect is not verified here; `python3 {RUN_SCRIPT} --help`
   lists the options (another `--partition`, `--board` or `--ethernet-host`).

## Reading the result

- The last line (stdout; in `slurm-<job>.out` for sbatch) is `identical: ...` or
  `DIVERGED: first at token row t (...), spikes, layer l, population att|ffn, channel c:
  expected x, got y`. Row t is the t-th token fed in: the prompt, then the generated tokens.
- The exit code: 0 identical, 1 diverged, 2 error (one line on stderr), 3 lava-nc or
  lava-loihi missing, 130 interrupted.
- `{RESULT_FILE}` (the verdict, the first divergence, mismatch counts, timings) and
  `{BOARD_OUTPUTS_FILE}` (the board's token ids, logits and spikes, in `{EXPECTED_FILE}`'s
  layout) are written beside this README (or in `--out DIR`); if Lava itself fails, its
  traceback goes to `{ERROR_FILE}`.

## What is unverified until this runs

Whether lava-loihi compiles this graph; whether the embedded-IO adapters add time steps
(the schedule assumes they add none: a divergence in the first rows would show it); the
adapters' message widths (graded payloads at the artifact's bit widths, spikes and gates
as binary events); the speed and the energy (see `{PLAN_FILE}` and `spike2loihi profile`).
"""


def plan_summary(plan) -> str:
    return (f"{plan.cores_realistic} neurocores realistic / {plan.cores_ceiling} at the dense-packing ceiling, "
            f"{plan.chips_needed_realistic} chip(s) realistic of {plan.chips_available} on {plan.system}, "
            f"{plan.steps_per_token} time steps per token, {plan.crossings} host<->chip crossings per token")


def write_bundle(tmp: Path, model_path: Path, model, prof, plan, options, prompt: List[int], max_new_tokens: int,
                 expected: Outputs) -> dict:
    """Write every file of a bundle into the (empty) folder `tmp`; returns the manifest."""
    from spike2loihi import __version__
    from spike2loihi.backends.loihi2 import NOT_RUN_NOTE, TOKEN_LIF_NOTE
    from spike2loihi.convert.artifact import K_SCHEDULE

    name = Path(model_path).name
    job = "s2l-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(name).stem)[:40]
    info = {"kind": BUNDLE_KIND, "bundle_version": BUNDLE_VERSION, "toolchain_version": __version__,
            "bundle_name": None,
            "model": {"file": MODEL_FILE, "name": name, "sha256": None,
                      "config": model.config, "schedule": model.manifest.get(K_SCHEDULE)},
            "hardware_profile": prof.name, "system": plan.system, "plan_summary": plan_summary(plan),
            "loihi2": options.to_dict(),
            "check": {"prompt_tokens": [int(t) for t in prompt], "prompt_len": len(prompt),
                      "max_new_tokens": int(max_new_tokens), "greedy": True, "rows": int(len(expected.logits))},
            "notes": {"not_run": NOT_RUN_NOTE, "token_lif": TOKEN_LIF_NOTE},
            "files": {}}
    shutil.copyfile(model_path, tmp / MODEL_FILE)
    with open(tmp / EXPECTED_FILE, "wb") as f:
        expected.save(f)
    (tmp / PLAN_FILE).write_text(json.dumps({"hardware_profile": prof.name, **plan.to_dict()}, indent=1,
                                            default=json_default) + "\n")
    (tmp / PROCESSES_FILE).write_text(json.dumps([r.to_dict() for r in processes(model, options)], indent=1) + "\n")
    (tmp / REQUIREMENTS_FILE).write_text(requirements_text())
    (tmp / RUN_SCRIPT).write_text(RUN_SCRIPT_TEXT)
    (tmp / JOB_SCRIPT).write_text(job_script_text(options.host, job))
    for p in (tmp / RUN_SCRIPT, tmp / JOB_SCRIPT):
        p.chmod(0o755)
    for src, rel in toolchain_sources():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, tmp / rel)
    return info


def processes(model, options) -> list:
    """The process inventory of the graph this bundle runs on the board (`spike2loihi.lava.inventory`)."""
    from spike2loihi.lava.inventory import inventory

    return inventory(model, lif_where=options.lif_placement, board=True)


def not_ready(model, options) -> list:
    """Chip processes of the bundle's graph that are not known to have a Loihi 2 neurocore model."""
    from spike2loihi.lava.inventory import not_board_ready

    return not_board_ready(processes(model, options))


def finish_bundle(tmp: Path, info: dict, bundle_name: str) -> dict:
    """README, then the checksums of every file (manifest.json, SHA256SUMS)."""
    info["bundle_name"] = bundle_name
    info["model"]["sha256"] = sha256_file(tmp / MODEL_FILE)
    (tmp / README_FILE).write_text(readme_text(info))
    files = sorted(p for p in tmp.rglob("*") if p.is_file())
    info["files"] = {p.relative_to(tmp).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                     for p in files}
    (tmp / MANIFEST_FILE).write_text(json.dumps(info, indent=1) + "\n")
    sums = dict(info["files"])
    sums[MANIFEST_FILE] = {"sha256": sha256_file(tmp / MANIFEST_FILE)}
    (tmp / SUMS_FILE).write_text("".join(f"{v['sha256']}  {k}\n" for k, v in sorted(sums.items())))
    return info


# ---------------------------------------------------------------------------
# The output folder: checked before work, replaced all or nothing
# ---------------------------------------------------------------------------
def is_bundle(path: Path) -> bool:
    try:
        return json.loads((Path(path) / MANIFEST_FILE).read_text()).get("kind") == BUNDLE_KIND
    except (OSError, ValueError, AttributeError):
        return False


def check_output_dir(raw: str, force: bool, inputs: Dict[str, Optional[Path]]) -> Path:
    """`-o DIR` checked before any work: DIR is new, empty, or (with --force) an earlier bundle; its
    folder is writable on an ordinary file system; it holds none of the inputs nor the current folder."""
    if not raw:
        raise BundleError("--output: empty path, expected a folder")
    path = Path(raw).expanduser()
    where = f"--output {raw}"
    real = Path(os.path.realpath(path))
    if folder_in_use(path, where, "the bundle", BundleError):
        if not force:
            raise BundleError(f"{where}: exists and is not empty; give --force to replace an earlier "
                              "bundle, or choose a new folder")
        if not is_bundle(path):
            raise BundleError(f"{where}: exists and is not a spike2loihi bundle (no {MANIFEST_FILE} of one); "
                              "--force replaces earlier bundles only: choose a new folder")
    cwd = Path(os.path.realpath(os.getcwd()))
    if real == cwd or real in cwd.parents:
        raise BundleError(f"{where}: is the current folder or holds it; choose another folder")
    for name, p in inputs.items():
        if p is not None and real in Path(os.path.realpath(p)).parents:
            raise BundleError(f"{where}: holds the input {name} {p}; choose a folder outside it")
    anchor = real.parent
    while not anchor.exists() and anchor.parent != anchor:
        anchor = anchor.parent
    if not anchor.is_dir():
        raise BundleError(f"{where}: {anchor} is a file, not a folder")
    fs = filesystem_type(anchor)
    if fs in SPECIAL_FILESYSTEMS:
        raise BundleError(f"{where}: {anchor} is on a kernel file system ({fs}), not a place for a bundle")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise BundleError(f"{where}: cannot write in folder {anchor}")
    return real


class BundleWriter:
    """A temporary folder beside DIR (`.NAME.<random>.tmp`) that becomes DIR at `commit()`; on an
    exception or Ctrl-C it is removed and DIR is untouched. An earlier bundle at DIR (--force) is moved
    aside first and put back if the rename fails."""

    def __init__(self, dest: Path):
        self.dest = Path(dest)
        self.made: List[Path] = []
        self.tmp: Optional[Path] = None

    def __enter__(self) -> Path:
        import tempfile

        p = self.dest.parent
        missing = []
        while not p.exists():
            missing.append(p)
            p = p.parent
        try:
            for d in reversed(missing):
                d.mkdir()
                self.made.append(d)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.dest.name[:64]}.", suffix=".tmp",
                                             dir=self.dest.parent))
        except OSError as exc:
            self._cleanup()
            raise BundleError(f"--output {self.dest}: cannot write ({exc.strerror or exc})") from None
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.commit()
                return
            except BaseException:
                self._cleanup()
                raise
        self._cleanup()
        if isinstance(exc, OSError):
            raise BundleError(f"--output {self.dest}: cannot write ({exc.strerror or exc}); no bundle was "
                              "written") from None

    def commit(self) -> None:
        import tempfile

        os.chmod(self.tmp, 0o777 & ~_umask())
        old = None
        if self.dest.exists():
            if any(self.dest.iterdir()):
                old = Path(tempfile.mkdtemp(prefix=f".{self.dest.name[:64]}.old.", suffix=".tmp",
                                            dir=self.dest.parent))
                os.rmdir(old)
                os.rename(self.dest, old)
            else:
                os.rmdir(self.dest)
        try:
            os.rename(self.tmp, self.dest)
        except BaseException:
            if old is not None:
                os.rename(old, self.dest)
            raise
        self.tmp = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def _cleanup(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        for d in reversed(self.made):
            try:
                d.rmdir()
            except OSError:
                pass
        self.made = []


def _umask() -> int:
    from spike2loihi.fileio import current_umask

    return current_umask()
