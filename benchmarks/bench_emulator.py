"""Time steps per second: the emulator (batch 1 and 64) vs Lava's fixed_pt simulator.

    .venv/bin/python benchmarks/bench_emulator.py [--lava-steps 300] [--emu-steps 1000]

Same graphs for both (a 768-wide Dense->LIF layer and a 4-layer 768-wide
chain, binary and graded input), measured in the same run; prints one JSON
object. Lava is timed on one `run(RunSteps(n))` after a 1-step warm-up (so
process start-up and compilation are reported separately), without probes;
the emulator without probes. At the end the last LIF's v is read from Lava
and compared with the emulator's, so the figures are for equal results.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from spike2loihi.execute.process_emulator import LIFProc, DenseProc, ProcessEmulator, ProcessGraph, SourceProc  # noqa: E402
from spike2loihi.convert.fixed_point import lif_params, quantize_weights, v_scale_for_threshold  # noqa: E402

WIDTH = 768
BUF = 64   # source ring buffer length


def make_graph(layers: int, graded: bool, batch: int = 1, seed: int = 0) -> ProcessGraph:
    """Source -> (Dense -> LIF) x layers, SpikeGPT-like LIFs (tau 2, theta 1)."""
    rng = np.random.default_rng(seed)
    v_scale = v_scale_for_threshold(1.0, 100)
    lp = lif_params(theta=1.0, v_scale=v_scale, tau_v=2.0)
    g = ProcessGraph()
    shape = (WIDTH, BUF) if batch == 1 else (batch, WIDTH, BUF)
    if graded:
        data = rng.integers(-127, 128, shape) * (rng.random(shape) < 0.5)
    else:
        data = (rng.random(shape) < 0.2).astype(np.int64)
    prev = g.add("x", SourceProc(data=data))
    for k in range(layers):
        # Float weights sized so that x = W s has std ~1.5 (SpikeGPT LIF fires at v >= 1
        # with v = v/2 + x/2): layer 0 sees the source, later layers ~10 % spikes.
        first_graded = graded and k == 0
        in_scale = 1.0 / 64 if first_graded else 1.0          # graded payload 64 == 1.0
        m2 = float(np.mean((data * in_scale) ** 2)) if k == 0 else 0.1
        w = rng.normal(0.0, 1.5 / np.sqrt(WIDTH * m2), (WIDTH, WIDTH))
        q = quantize_weights(w, out_scale=lp["a_in_scale"] * in_scale)
        d = g.add(f"d{k}", DenseProc(**q.lava_kwargs(), num_message_bits=8 if first_graded else 0))
        lif = g.add(f"l{k}", LIFProc(shape=(WIDTH,), du=lp["du"], dv=lp["dv"], vth=lp["vth"]))
        g.connect(prev, d)
        g.connect(d, lif)
        prev = lif
    return g


def time_emulator(graph: ProcessGraph, batch: int, steps: int) -> dict:
    emu = ProcessEmulator(graph, batch_size=batch, probes={})
    emu.run(5)
    t0 = time.perf_counter()
    emu.run(steps)
    dt = time.perf_counter() - t0
    return dict(steps=steps, seconds=round(dt, 3), steps_per_s=round(steps / dt, 1),
                sample_steps_per_s=round(batch * steps / dt, 1))


def time_lava(graph: ProcessGraph, steps: int, emu_check: ProcessEmulator) -> dict:
    from _lava_helpers import build_lava
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    procs, _ = build_lava(graph, steps + 1, sinks=False)
    anchor = procs["x"]
    cfg = Loihi2SimCfg(select_tag="fixed_pt")
    try:
        t0 = time.perf_counter()
        anchor.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
        t1 = time.perf_counter()
        anchor.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
        t2 = time.perf_counter()
        last = sorted(n for n in graph.nodes if n.startswith("l"))[-1]
        v_lava = np.asarray(procs[last].v.get()).astype(np.int64)
    finally:
        anchor.stop()
    emu_check.run(steps + 1)
    equal = bool(np.array_equal(v_lava, emu_check.state[last].v[0]))
    return dict(processes=len(procs),
                startup_and_first_step_s=round(t1 - t0, 2), steps=steps, seconds=round(t2 - t1, 3),
                steps_per_s=round(steps / (t2 - t1), 1), final_v_equal_to_emulator=equal)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lava-steps", type=int, default=300)
    ap.add_argument("--emu-steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    results = []
    for layers, name in ((1, "dense768_lif"), (4, "chain4x768")):
        for graded in (False, True):
            g1 = make_graph(layers, graded)
            e1 = time_emulator(g1, 1, args.emu_steps)
            eb = time_emulator(make_graph(layers, graded, batch=args.batch), args.batch, max(50, args.emu_steps // 5))
            lava = time_lava(g1, args.lava_steps, ProcessEmulator(g1, probes={}))
            results.append(dict(
                graph=name, input="graded" if graded else "binary", lava=lava,
                emulator_batch1=e1, emulator_batch=dict(batch=args.batch, **eb),
                ratio_emulator_batch1_over_lava=round(e1["steps_per_s"] / lava["steps_per_s"], 1),
                ratio_emulator_batch_samples_over_lava=round(eb["sample_steps_per_s"] / lava["steps_per_s"], 1),
            ))
            print(f"{name} {'graded' if graded else 'binary'} done", file=sys.stderr, flush=True)
    print(json.dumps(dict(
        machine=dict(cpus=os.cpu_count(), python=platform.python_version(), numpy=np.__version__,
                     load_avg_1m=round(os.getloadavg()[0], 2)),
        note="steps_per_s: time steps per wall-clock second; sample_steps: batch x steps",
        results=results), indent=1))


if __name__ == "__main__":
    main()
