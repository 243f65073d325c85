"""Fuzz the emulator against Lava 0.10.0 (fixed_pt) on as many random cases as asked.

    .venv/bin/python tests/fuzz_emulator_vs_lava.py --cases 10000 --seed 0

Cases are packed into Lava networks (`--groups` random sub-networks x
`--per-group` independent cases each, see _lava_helpers.random_packed_graph);
run k uses seed `--seed + k`, so `--seed <run seed> --cases <cases per run>`
replays one run. Prints progress, and on the first mismatch the case seed,
case, process, variable, step, index and both values, then exits 1. Ends with
a JSON summary on stdout. Not collected by pytest (no test_ prefix).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _lava_helpers as H  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=1000, help="number of random cases (default 1000)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the first Lava run")
    ap.add_argument("--groups", type=int, default=6, help="sub-networks per Lava run")
    ap.add_argument("--per-group", type=int, default=24, help="independent cases per sub-network")
    ap.add_argument("--steps", type=int, default=16, help="time steps per run")
    args = ap.parse_args(argv)
    per_run = args.groups * args.per_group
    runs = max(1, math.ceil(args.cases / per_run))
    t0 = time.time()
    done = values = 0
    events: dict = {}
    for k in range(runs):
        seed = args.seed + k
        packed = H.random_packed_graph(seed, n_groups=args.groups, cases_per_group=args.per_group, steps=args.steps)
        mismatch, emu, n = H.compare_packed(packed)
        if mismatch is not None:
            print("MISMATCH " + json.dumps(mismatch), flush=True)
            print(json.dumps(dict(status="mismatch", cases_checked_before=done, run_seed=seed, **mismatch)))
            return 1
        done += packed.n_cases
        values += n
        for per_node in emu.events.values():
            for key, v in per_node.items():
                events[key] = events.get(key, 0) + v
        print(f"run {k + 1}/{runs} seed {seed}: {packed.n_cases} cases, {len(packed.graph.nodes)} graph nodes, "
              f"{n} values equal; {done} cases in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    print(json.dumps(dict(status="ok", cases=done, lava_runs=runs, values_compared=values, mismatches=0,
                          steps_per_run=args.steps, first_seed=args.seed, seconds=round(time.time() - t0, 1),
                          events=events)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
