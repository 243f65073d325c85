"""onnxruntime sessions across `fork()` (Lava's runtime forks one process per Lava process).

A session holds a thread pool. In a child forked while a session lives, the pool's worker
threads do not exist, but the pool's condition variables still count them as waiters, so the
session's destructor (`pthread_cond_destroy`) and any `run` wait forever. A garbage collection
in a Lava child that frees an inherited session is enough (seen as an intermittent hang of the
test suite: the runtime service stuck freeing the emulator's integer kernels).

So every session the project makes is registered here. In a forked child each inherited session
is kept alive, never freed and never run, and the objects that own one are told to build a new
session before their next run (`on_fork_in_child`).
"""
from __future__ import annotations

import os
import weakref
from typing import Callable, List

_SESSIONS: "weakref.WeakSet" = weakref.WeakSet()   # sessions made by this process
_OWNERS: "weakref.WeakSet" = weakref.WeakSet()     # objects with an `on_fork_in_child()` method
_INHERITED: List[object] = []                       # in a child: the parent's sessions, kept alive
_HOOK = {"registered": False}


def _after_fork_in_child() -> None:
    _INHERITED.extend(list(_SESSIONS))
    for owner in list(_OWNERS):
        owner.on_fork_in_child()


def _register_hook() -> None:
    if not _HOOK["registered"]:
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _HOOK["registered"] = True


def session(make: Callable[[], object]):
    """`make()` (an `onnxruntime.InferenceSession`), registered so that a forked child never frees it."""
    _register_hook()
    s = make()
    _SESSIONS.add(s)
    return s


def rebuild_after_fork(owner) -> None:
    """`owner.on_fork_in_child()` runs in every forked child (it drops its session for a new one)."""
    _register_hook()
    _OWNERS.add(owner)


def inherited() -> int:
    """How many of the parent's sessions this (forked) process keeps alive unused."""
    return len(_INHERITED)
