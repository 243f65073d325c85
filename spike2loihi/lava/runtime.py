"""Run a converted model's Lava graph in the CPU simulator, and always stop it.

What exits cleanly (DESIGN.md "Lava runtime facts", measured on lava-nc 0.10.0):

* SIGINT and SIGTERM are only remembered while the runtime forks its processes: the
  children inherit that (Ctrl-C to the terminal's process group never stops them), and a
  signal that comes during start-up acts once the runtime exists (KeyboardInterrupt:
  the runtime is stopped, `interrupted`, exit 130). SIGTERM is KeyboardInterrupt
  throughout.
* Every process forked while a runtime is alive dies with its parent, also when the
  parent is SIGKILLed (`PR_SET_PDEATHSIG`, set in each child at fork), so a Lava run
  never leaves orphans.
* `stop()` runs in `finally`; if it does not return in time (a child that failed),
  every process the runtime forked is killed by PID.
* Record folders are temporary folders named with this process's PID; one left by a
  process that was killed is removed by the next run.
* The records are bounded (`MAX_RECORD_BYTES`, `MAX_NEW_TOKENS`): a request beyond them is
  refused in one line before anything starts.

Host blocks never raise: they write their error to the record folder, which is checked
after every chunk of steps and turned into one clear line.
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
RECORDS_PREFIX = "s2l-lava-"
#: Bounds on what a run records (logits, spikes and tokens of every token, memory-mapped).
MAX_NEW_TOKENS = 1_000_000
MAX_RECORD_BYTES = 16 << 30


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
    import multiprocessing
    import multiprocessing.process

    ours = {p.pid: p for p in list(multiprocessing.process._children)}   # multiprocessing's own children
    for pid in killed:   # reap our own children, so that no zombie stays either
        if pid in ours:   # through multiprocessing, so that it knows (else its atexit join fails)
            with contextlib.suppress(Exception):
                multiprocessing.Process.join(ours[pid], 5)
            continue
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


def _quiet_stop(anchor) -> None:
    """Lava's stop(), whose failures (a runtime interrupted while it started, a child that died) are not
    the user's: whatever it leaves, `_force_stop` and `kill_descendants` end."""
    with contextlib.suppress(BaseException):
        anchor.stop()


def _force_stop(anchor) -> None:
    """After a failed or hung stop(): kill Lava's worker processes through multiprocessing, then shut its
    shared-memory manager down (which unlinks every segment, so that none leaks)."""
    mi = getattr(getattr(anchor, "runtime", None), "_messaging_infrastructure", None)
    for actor in list(getattr(mi, "actors", None) or []):
        with contextlib.suppress(Exception):
            if actor.is_alive():
                actor.kill()
        with contextlib.suppress(Exception):
            actor.join()
    smm = getattr(mi, "smm", None)
    if smm is not None:
        with contextlib.suppress(Exception):
            smm.shutdown()


def _stop(anchor, before: set) -> None:
    done = threading.Event()

    def stop():
        _quiet_stop(anchor)
        done.set()

    t = threading.Thread(target=stop, daemon=True)
    t.start()
    t.join(STOP_TIMEOUT_S)
    if not done.is_set() or set(_descendants(os.getpid())) - before:
        _force_stop(anchor)
    # anything the runtime forked and left behind (a hung stop, a failed child)
    kill_descendants(before)


# ---------------------------------------------------------------------------
# Lifetime: children die with their parent; signals during start-up are kept
# ---------------------------------------------------------------------------
_FORK = {"on": False, "parent": 0, "registered": False}
PR_SET_PDEATHSIG = 1


def _before_fork() -> None:
    _FORK["parent"] = os.getpid()


def _after_fork_in_child() -> None:
    """In each child forked while a runtime lives: SIGKILL when the parent dies. (The kernel ties this to
    the *thread* that forked; Lava 0.10 forks from the main thread, so the child lives as long as the
    parent process. A Lava that forked from a short-lived worker thread would need another tie.)"""
    if not _FORK["on"]:
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):   # not Linux: the parent's stop() still ends its children
        return
    if os.getppid() != _FORK["parent"]:   # the parent died before the line above
        os._exit(1)


@contextlib.contextmanager
def _children_die_with_parent():
    """While active, every process this one forks (and they fork) gets SIGKILL when its parent dies."""
    if not _FORK["registered"]:
        os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
        _FORK["registered"] = True
    was = _FORK["on"]
    _FORK["on"] = True
    try:
        yield
    finally:
        _FORK["on"] = was


_PENDING: List[int] = []


def _remember(signum, frame) -> None:
    _PENDING.append(signum)


@contextlib.contextmanager
def _signals_remembered():
    """While the runtime forks its processes: SIGINT and SIGTERM are only remembered (the children inherit
    this handler, so a Ctrl-C to the terminal's process group never stops them); once the block is done, a
    remembered signal acts as KeyboardInterrupt. (Blocking the signals instead loses them: one delivered to
    another thread runs Python's handler in the middle of a fork callback, which swallows the exception.)"""
    if not _main_thread():
        yield
        return
    _PENDING.clear()
    old = {s: signal.signal(s, _remember) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if _PENDING:
        _PENDING.clear()
        raise KeyboardInterrupt


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_records(folder: Optional[str] = None) -> int:
    """Remove record folders left by runs whose process no longer exists (killed); returns how many."""
    import shutil

    root = Path(folder or tempfile.gettempdir())
    n = 0
    for p in root.glob(RECORDS_PREFIX + "*"):
        try:
            pid = int(p.name[len(RECORDS_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if p.is_dir() and not _alive(pid):
            shutil.rmtree(p, ignore_errors=True)
            n += 1
    return n


def record_bytes(n_tokens: int, vocab: int, n_lif: int, width: int, n_nodes: int) -> int:
    """Bytes of a run's record files (spike2loihi.lava.blocks.Records) for `n_tokens` tokens."""
    return n_tokens * (4 * vocab + n_lif * width + 8) + 40 * n_nodes


def check_request(model: ConvertedModel, n_prompt: int, max_new_tokens: int) -> None:
    """One line unless the records of this request fit their bounds."""
    cfg = model.config
    n = n_prompt + max_new_tokens
    size = record_bytes(n, cfg["vocab_size"], len(ir.lif_nodes(model.graph)), cfg["n_embd"], len(model.graph.nodes))
    if max_new_tokens > MAX_NEW_TOKENS or size > MAX_RECORD_BYTES:
        raise LavaRunError(f"--max-new-tokens {max_new_tokens:,}: a Lava run records every token's logits and spikes "
                           f"({size / (1 << 30):,.1f} GiB here); at most {MAX_NEW_TOKENS:,} tokens and "
                           f"{MAX_RECORD_BYTES >> 30} GiB of records")


@contextlib.contextmanager
def running(anchor, run_cfg):
    """Create the runtime of `anchor`'s graph, and always stop it: the processes it forks die with this one,
    Ctrl-C and SIGTERM during start-up act once the runtime exists, and a stop that fails or hangs ends
    with every forked process killed."""
    before = set(_descendants(os.getpid()))
    with _children_die_with_parent(), _sigterm_as_interrupt():
        try:
            with _signals_remembered():
                anchor.create_runtime(run_cfg=run_cfg)
            yield anchor
        finally:
            _stop(anchor, before)


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
    if N < 0:
        raise LavaRunError(f"--max-new-tokens {N} is negative")
    check_request(model, T, N)
    run_args = {"prompt": [int(t) for t in prompt], "max_new_tokens": N, "greedy": bool(greedy),
                "temperature": float(temperature), "top_p": float(top_p), "seed": int(seed), "probes": bool(count)}
    remove_stale_records()
    with tempfile.TemporaryDirectory(prefix=f"{RECORDS_PREFIX}{os.getpid()}-") as tmp:
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
        counters = records.maps("r")["counters"]
        io_row = [p.name for p in graph.plans].index(IO_PLAN)
        timings = {}
        shown = 0
        reported = {"prefill": -1 if T else T, "generate": 0}
        with running(anchor, cfg_run):
            timings["compile_s"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            done = 0
            t_prefill_end = None
            while done < total_steps:
                n = min(chunk if done < T else sched.token_period, total_steps - done)
                anchor.run(condition=RunSteps(num_steps=n))
                done += n
                if int(counters[:, C_ERROR].max()):
                    what = "; ".join(e.splitlines()[0] for e in records.errors()) or "a host block failed"
                    raise LavaRunError(f"{model.path}: {what}" if model.path else what)
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
