"""The board-side check of a deployment bundle: what the bundle's `run_on_loihi.py` runs on the
INRC host (`run_check`, with its own argparse options).

It reads the manifest, verifies every file's sha256, runs the model on the board through
the `loihi2` backend (spike2loihi.backends.loihi2, which does its own checks), compares
every logit, spike and token with the emulator's expected outputs
(spike2loihi.deploy.expected) and writes result.json and board_outputs.npz all or
nothing (spike2loihi.fileio). Exit codes of the run script:
0 identical, 1 diverged, 2 error, 3 lava-nc or lava-loihi missing, 130 interrupted.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

from spike2loihi.convert.artifact import sha256_file
from spike2loihi.deploy.bundle import (BOARD_OUTPUTS_FILE, BUNDLE_KIND, BUNDLE_VERSION, ERROR_FILE, EXPECTED_FILE,
                                       MANIFEST_FILE, MODEL_FILE, RESULT_FILE, RUN_SCRIPT, BundleError)
from spike2loihi.deploy.expected import Outputs, describe_divergence, first_divergence
from spike2loihi.errors import Spike2LoihiError, one_line
from spike2loihi.fileio import OutputSet, check_output_paths, json_default

EXIT_IDENTICAL, EXIT_DIVERGED, EXIT_ERROR, EXIT_MISSING, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _read_manifest(bundle: Path) -> dict:
    try:
        info = json.loads((bundle / MANIFEST_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{bundle}: cannot read {MANIFEST_FILE} ({exc}); is this a spike2loihi bundle?") from None
    if not isinstance(info, dict) or info.get("kind") != BUNDLE_KIND:
        raise BundleError(f"{bundle / MANIFEST_FILE}: not a spike2loihi bundle manifest")
    if info.get("bundle_version") != BUNDLE_VERSION:
        raise BundleError(f"{bundle / MANIFEST_FILE}: bundle version {info.get('bundle_version')}, this toolchain "
                          f"reads {BUNDLE_VERSION}")
    return info


def verify_files(bundle: Path, info: dict) -> None:
    """Every file the manifest lists is there with its sha256 (one line naming the first that is not)."""
    for rel, want in info["files"].items():
        p = bundle / rel
        if not p.is_file():
            raise BundleError(f"{rel}: missing from the bundle (listed in {MANIFEST_FILE}); copy the whole folder")
        if sha256_file(p) != want["sha256"]:
            raise BundleError(f"{rel}: sha256 differs from {MANIFEST_FILE}: the bundle was changed or damaged "
                              "in transit; copy it again")


def _parser():
    import argparse

    from spike2loihi.backends.loihi2 import LIF_PLACEMENTS, LOIHI_GENS

    p = argparse.ArgumentParser(prog=RUN_SCRIPT, description="Run this bundle's model on a Loihi 2 board and "
                                "compare every logit, spike and token with the emulator's (expected.npz).")
    g = p.add_argument_group("host (default: the one the bundle was written for, manifest.json)")
    g.add_argument("--partition", help="SLURM partition")
    g.add_argument("--board", help="SLURM board (node name)")
    g.add_argument("--ethernet-host", help="Ethernet host (Kapoho Point without SLURM)")
    p.add_argument("--loihi-gen", choices=LOIHI_GENS, help="chip generation (default: the bundle's)")
    p.add_argument("--lif-placement", choices=LIF_PLACEMENTS, help="where the LIFs run (default: the bundle's)")
    p.add_argument("--out", help="folder for result.json and board_outputs.npz (default: the bundle)")
    return p


def run_check(bundle, argv: Optional[List[str]] = None) -> int:
    """The run script: returns its exit code (EXIT_*); errors are one line on stderr."""
    args = _parser().parse_args(argv)
    try:
        return _run_check(Path(bundle), args)
    except Spike2LoihiError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run_check(bundle: Path, args) -> int:
    import time

    import numpy as np

    from spike2loihi.convert import artifact
    from spike2loihi.backends import loihi2 as L2

    info = _read_manifest(bundle)
    saved = L2.Loihi2Options.from_dict(info["loihi2"])
    if any(v is not None for v in (args.partition, args.board, args.ethernet_host)):
        host = L2.host_selection(args.partition, args.board, args.ethernet_host, args.loihi_gen or saved.host.loihi_gen)
    else:
        host = L2.host_selection(saved.host.partition, saved.host.board, saved.host.ethernet_host,
                                 args.loihi_gen or saved.host.loihi_gen)
    options = L2.Loihi2Options(host, args.lif_placement or saved.lif_placement)
    out_dir = Path(args.out) if args.out else bundle
    paths = check_output_paths({"result.json": out_dir / RESULT_FILE,
                                "board_outputs.npz": out_dir / BOARD_OUTPUTS_FILE,
                                "error_traceback.txt": out_dir / ERROR_FILE})
    L2.prepare(options)                    # options, lava-nc, lava-loihi, the host: before any work
    print(L2.notes(options.lif_placement), file=sys.stderr)
    verify_files(bundle, info)
    expected = Outputs.load(bundle / EXPECTED_FILE)
    model = artifact.load(bundle / MODEL_FILE)
    check = info["check"]
    print(f"running {info['model']['name']} on {host.describe()}: {check['prompt_len']} prompt tokens, "
          f"{check['max_new_tokens']} greedy tokens", file=sys.stderr)
    t0 = time.perf_counter()
    try:
        backend = L2.Loihi2Backend(model, options)
        res = backend.run(list(check["prompt_tokens"]), int(check["max_new_tokens"]))
    except Spike2LoihiError:
        raise
    except Exception as exc:   # lava-loihi's compiler or runtime: keep the traceback for whoever debugs it
        import traceback

        from spike2loihi.fileio import write_text_atomic

        write_text_atomic(paths["error_traceback.txt"], traceback.format_exc())
        first = (str(exc).strip().splitlines() or [""])[0]
        raise BundleError(f"the board run failed: {type(exc).__name__}: {first} (full traceback in "
                          f"{paths['error_traceback.txt']})") from None
    got = Outputs(tuple(check["prompt_tokens"]), tuple(res.generated), res.logits, res.att_spikes,
                  res.ffn_spikes)
    d = first_divergence(expected, got)
    line = describe_divergence(d, expected)
    same_rows = len(got.logits) == len(expected.logits)
    result = {"verdict": "identical" if d is None else "diverged", "summary": line, "first_divergence": d,
              "host": host.to_dict(), "lif_placement": options.lif_placement,
              "mismatches": None if not same_rows else {
                  "logits": int((np.asarray(got.logits) != np.asarray(expected.logits)).sum()),
                  "att_spikes": int((np.asarray(got.att_spikes) != np.asarray(expected.att_spikes)).sum()),
                  "ffn_spikes": int((np.asarray(got.ffn_spikes) != np.asarray(expected.ffn_spikes)).sum())},
              "rows": {"expected": len(expected.logits), "got": len(got.logits)},
              "generated": {"expected": list(expected.generated), "got": list(got.generated)},
              "steps": res.steps, "processes": res.processes, "seconds": round(time.perf_counter() - t0, 3),
              "timings": {k: round(v, 4) for k, v in res.timings.items()}}
    del paths["error_traceback.txt"]
    with OutputSet(paths) as outs:
        outs.write_text("result.json", json.dumps(result, indent=1, default=json_default) + "\n")
        with outs.open("board_outputs.npz") as f:
            got.save(f)
    print(line)
    return EXIT_IDENTICAL if d is None else EXIT_DIVERGED
