"""Ctrl-C (and SIGTERM, treated the same) for every `spike2loihi` command: one line, `interrupted`,
and exit code 130, whatever the backend.

During start-up (imports, argument checks, loading) a SIGINT handler prints
`interrupted` and exits at once: nothing has been written yet, and importing torch
must not end in a traceback (`install_startup_interrupt_handler`, installed by
spike2loihi.cli.group.CommandGroup.main). `begin_work()` switches to
KeyboardInterrupt, so that `finally` blocks run (spike2loihi.cli.rules.OutputSet
and spike2loihi.cli.progress.Progress call it on entry; a command calls it itself
before work that must clean up or report partial results). Also the line start
that puts such a message at column 0 on a terminal.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Callable

__all__ = ["INTERRUPTED_EXIT", "install_startup_interrupt_handler", "begin_work"]

INTERRUPTED_EXIT = 130  # 128 + SIGINT, what shells report for Ctrl-C


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _line_start() -> str:
    """On a terminal, start at column 0 over anything left there (a '^C' echo, a progress line)."""
    return "\r\x1b[K" if _stderr_is_tty() else ""


# --------------------------------------------------------------------------- interrupts

def _exit_interrupted_now(signum, frame):  # pragma: no cover - exercised in a subprocess
    with contextlib.suppress(OSError):
        os.write(2, (_line_start() + "interrupted\n").encode())
    os._exit(INTERRUPTED_EXIT)


_exit_interrupted_now._s2l_startup = True  # a program's own early handler may carry the mark too


def _is_startup_handler(handler) -> bool:
    return bool(getattr(handler, "_s2l_startup", False))


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _sigterm_as_interrupt(signum, frame):
    """SIGTERM while working: as Ctrl-C (cleanup runs, `interrupted`, exit 130)."""
    raise KeyboardInterrupt


_sigterm_as_interrupt._s2l_work = True


def install_startup_interrupt_handler() -> Callable[[], None]:
    """Make Ctrl-C and SIGTERM print `interrupted` and exit 130 at once; return a function that undoes it.

    For start-up (imports, argument checks, loading): nothing exists yet that needs
    cleaning up, and an exit straight from the signal handler cannot end in a
    traceback from the middle of `import torch`. A SIGINT that is ignored (nohup,
    background jobs) or handled by someone else is left alone; so is a SIGTERM that is
    not the default.
    """
    if not _in_main_thread():
        return lambda: None
    current = signal.getsignal(signal.SIGINT)
    if current is not signal.default_int_handler and not _is_startup_handler(current):
        return lambda: None
    signal.signal(signal.SIGINT, _exit_interrupted_now)
    term = signal.getsignal(signal.SIGTERM)
    own_term = term is signal.SIG_DFL
    if own_term:
        signal.signal(signal.SIGTERM, _exit_interrupted_now)

    def restore() -> None:
        if not _in_main_thread():
            return
        now = signal.getsignal(signal.SIGINT)
        if now is signal.default_int_handler or _is_startup_handler(now):
            signal.signal(signal.SIGINT, signal.default_int_handler)
        now = signal.getsignal(signal.SIGTERM)
        if own_term and (_is_startup_handler(now) or getattr(now, "_s2l_work", False)):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    return restore


def begin_work() -> None:
    """From here on Ctrl-C and SIGTERM raise KeyboardInterrupt, so that cleanup and partial reports run."""
    if not _in_main_thread():
        return
    if _is_startup_handler(signal.getsignal(signal.SIGINT)):
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if _is_startup_handler(signal.getsignal(signal.SIGTERM)):
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
