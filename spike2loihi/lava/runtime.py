"""Run a converted model's Lava graph in the CPU simulator, and always stop it.

What exits cleanly (DESIGN.md "Lava runtime facts", measured on lava-nc 0.10.0):
SIGINT is ignored while the runtime forks its processes (so the children never
see Ctrl-C) and restored after; SIGTERM becomes KeyboardInterrupt; `stop()`
runs in `finally`; and if `stop()` does not return in time (a child that
failed), every process the runtime forked is killed by PID. Host blocks never
raise: they write their error to the record folder, which is checked after
every chunk of steps and turned into one clear line.
"""
from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

from spike2loihi.convert import ir
from spike2loihi.convert.artifact import ConvertedModel
from spike2loihi.errors import LavaRunError
from spike2loihi.lava.blocks import C_ERROR, C_GENERATED, C_LOGITS, C_STEPS, Records
from spike2loihi.lava.build import build
from spike2loihi.lava.plans import IO_PLAN

STOP_TIMEOUT_S = 20.0


@dataclass
class LavaResult:
    logits: np.ndarray                 # [T, V] float32: one row per token whose logits were produced
    att_spikes: np.ndarray             # [T, L, C] uint8
    ffn_spikes: np.ndarray             # [T, L, C] uint8
    generated: List[int]
    steps: int
    processes: int
    timings: dict = field(default_factory=dict)   # compile_s, prefill_s, generate_s, ...
    node_counts: Optional[dict] = None  # with count=True: IR node -> [executions, out elements, out nonzero,
                                        #                              in elements, in nonzero]


def _descendants(root: int) -> List[int]:
    """PIDs of every live descendant of `root` (not zombies, not Python's multiprocessing
    resource tracker, a helper that lives as long as this process), from /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            state, ppid = fields[0], int(fields[1])
            if state == "Z":
                continue
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if b"multiprocessing.resource_tracker" in f.read():
                    continue
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def kill_descendants(before: Optional[set] = None) -> int:
    """SIGKILL the descendants of this process not in `before`; returns how many."""
    killed = []
    for pid in _descendants(os.getpid()):
        if before is not None and pid in before:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    for pid in killed:   # reap our own children, so that no zombie stays either
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, 0)
    return len(killed)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.getsignal(signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, old)


def _stop(anchor, before: set) -> None:
    t = threading.Thread(target=anchor.stop, daemon=True)
    t.start()
    t.join(STOP_TIMEOUT_S)
    # anything the runtime forked and left behind (a hung stop, a failed child)
    kill_descendants(before)


def run_graph(model: ConvertedModel, prompt: List[int], max_new_tokens: int = 0, greedy: bool = True,
              temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
              progress: Optional[Callable[[str, int, int], None]] = None,
              on_token: Optional[Callable[[int], None]] = None, chunk: int = 32, target=None,
              count: bool = False) -> LavaResult:
    """Teacher-forced `prompt`, then `max_new_tokens` generated inside the graph.

    `progress(phase, done, total)` gets "prefill" (tokens) and "generate" (tokens);
    `on_token(token)` is called for every generated token as soon as it exists.
    `target`: None for Lava's CPU simulator (`Loihi2SimCfg(select_tag="fixed_pt")`), or an
    object with `build(model, records, run_args) -> LavaGraph` and `run_config(graph)`
    (`spike2loihi.lava.hw.Loihi2Target`: the graph for a Loihi 2 board).
    """
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    cfg = model.config
    lifs = ir.lif_nodes(model.graph)
    T, N = len(prompt), int(max_new_tokens)
    bad = [t for t in prompt if not 0 <= int(t) < cfg["vocab_size"]]
    if bad or T == 0:
        raise LavaRunError(f"token id {bad[0]} is outside the vocabulary 0..{cfg['vocab_size'] - 1}" if bad
                           else "no tokens to run")
    run_args = {"prompt": [int(t) for t in prompt], "max_new_tokens": N, "greedy": bool(greedy),
                "temperature": float(temperature), "top_p": float(top_p), "seed": int(seed), "probes": bool(count)}
    with tempfile.TemporaryDirectory(prefix="s2l-lava-") as tmp:
        records = Records(Path(tmp), max_tokens=T + N, vocab=cfg["vocab_size"], n_lif=len(lifs),
                          width=cfg["n_embd"], n_plans=cfg["n_layer"] + 1,
                          n_nodes=len(model.graph.nodes)).create()
        t0 = time.perf_counter()
        graph = (target.build if target is not None else build)(model, records, run_args)
        sched = graph.schedule
        total_steps = sched.steps_for(T, N)
        cfg_run = (target.run_config(graph) if target is not None else
                   Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=graph.model_map))
        anchor = graph.anchor
        before = set(_descendants(os.getpid()))
        counters = records.maps("r")["counters"]
        io_row = [p.name for p in graph.plans].index(IO_PLAN)
        timings = {}
        shown = 0
        reported = {"prefill": -1 if T else T, "generate": 0}
        # The runtime forks its processes with SIGINT ignored (Ctrl-C reaches only us) and the
        # default SIGTERM; afterwards SIGTERM here becomes KeyboardInterrupt, so `finally` stops them.
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
        old_term = signal.signal(signal.SIGTERM, signal.SIG_DFL) if _main_thread() else None
        try:
            anchor.create_runtime(run_cfg=cfg_run)
        except BaseException:
            _stop(anchor, before)
            raise
        finally:
            if old_int is not None:
                signal.signal(signal.SIGINT, old_int)
                signal.signal(signal.SIGTERM, old_term)
        with _sigterm_as_interrupt():
            try:
                timings["compile_s"] = time.perf_counter() - t0
                t1 = time.perf_counter()
                done = 0
                t_prefill_end = None
                while done < total_steps:
                    n = min(chunk if done < T else sched.token_period, total_steps - done)
                    anchor.run(condition=RunSteps(num_steps=n))
                    done += n
                    if int(counters[:, C_ERROR].max()):
                        raise LavaRunError("; ".join(e.splitlines()[0] for e in records.errors())
                                           or "a host block failed")
                    n_logits = int(counters[io_row, C_LOGITS])
                    n_gen = int(counters[io_row, C_GENERATED])
                    if progress is not None:
                        if reported["prefill"] < T:
                            reported["prefill"] = min(n_logits, T)
                            progress("prefill", reported["prefill"], T)
                        if N and n_gen > reported["generate"]:
                            reported["generate"] = n_gen
                            progress("generate", n_gen, N)
                    if t_prefill_end is None and n_logits >= T:
                        t_prefill_end = time.perf_counter()
                    if on_token is not None:
                        toks = records.maps("r")["tokens"]
                        while shown < n_gen:
                            on_token(int(toks[T + shown]))
                            shown += 1
                t2 = time.perf_counter()
                timings["prefill_s"] = (t_prefill_end or t2) - t1
                timings["generate_s"] = t2 - (t_prefill_end or t2)
                timings["run_s"] = t2 - t1
                timings["steps_per_s"] = total_steps / max(t2 - t1, 1e-9)
            finally:
                _stop(anchor, before)
        steps_done = int(counters[:len(graph.plans), C_STEPS].min())
        maps = records.maps("r")
        n_logits = int(counters[io_row, C_LOGITS])
        n_gen = int(counters[io_row, C_GENERATED])
        spikes = np.array(maps["spikes"][:n_logits])
        att = spikes[:, [i for i, n in enumerate(lifs) if n.population == "att"]]
        ffn = spikes[:, [i for i, n in enumerate(lifs) if n.population == "ffn"]]
        result = LavaResult(np.array(maps["logits"][:n_logits]), att, ffn,
                            [int(t) for t in maps["tokens"][T:T + n_gen]], steps_done, graph.process_count(),
                            timings)
        if count:
            rows = np.array(maps["nodecounts"])
            result.node_counts = {name: [int(x) for x in rows[i]] for i, name in enumerate(model.graph.nodes)}
        del maps, counters
    return result


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
