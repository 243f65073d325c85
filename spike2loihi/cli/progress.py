"""Progress of long work on stderr: `Progress(label, total, unit)`, callable as `(done, total)`.

Policy: nothing for work that finishes within `DELAY_S` (1 s); after that, on a
terminal, one line redrawn in place at most 10 times a second and erased when the
work ends; when stderr is a file or pipe (logs, CI), a plain line at most every
`LOG_INTERVAL_S` (5 s) and a closing line. Never on stdout, so text and `--json`
output stay clean. `SPIKE2LOIHI_PROGRESS=always|never|auto` (default auto)
overrides: always shows from the first step, never shows nothing.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import List, Optional

from spike2loihi.cli.interrupts import begin_work

__all__ = ["Progress", "PROGRESS_ENV", "DELAY_S", "TTY_INTERVAL_S", "LOG_INTERVAL_S"]

DELAY_S = 1.0  # show nothing for work that finishes sooner
TTY_INTERVAL_S = 0.1
LOG_INTERVAL_S = 5.0
PROGRESS_ENV = "SPIKE2LOIHI_PROGRESS"


def _duration(s: float) -> str:
    s = max(0, int(round(s)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    """Progress of long work on stderr, rate-limited; call it with (done[, total]).

        with Progress("prefill", total=len(ids), unit="tokens") as progress:
            for i, tok in enumerate(ids):
                step(tok)
                progress(i + 1)

    See the module docstring for when and how it shows. Leaving the `with` block (or
    `close()`) erases the terminal line, or on a log writes a closing line, if
    anything was shown.
    """

    _active: List["Progress"] = []

    def __init__(self, label: str, total: Optional[int] = None, unit: str = "steps", stream=None,
                 mode: Optional[str] = None, delay: float = DELAY_S):
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.mode = (mode or os.environ.get(PROGRESS_ENV, "auto")).strip().lower()
        if self.mode not in ("auto", "always", "never"):
            self.mode = "auto"
        try:
            self.tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self.tty = False
        self.t0 = time.monotonic()
        self.next_t = self.t0 + (0.0 if self.mode == "always" else delay)
        self.done = 0
        self.shown = False
        self.closed = False
        begin_work()
        Progress._active.append(self)

    def __call__(self, done: int, total: Optional[int] = None) -> None:
        if total is not None:
            self.total = total
        self.done = done
        if self.mode == "never" or self.closed:
            return
        now = time.monotonic()
        if now < self.next_t:
            return
        self.next_t = now + (TTY_INTERVAL_S if self.tty else LOG_INTERVAL_S)
        self._write(self.line(now), final=False)

    def line(self, now: Optional[float] = None) -> str:
        elapsed = (now or time.monotonic()) - self.t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        text = f"{self.label} {self.done:,}"
        if self.total:
            text += f"/{self.total:,} {self.unit} ({100 * self.done // self.total}%)"
        else:
            text += f" {self.unit}"
        if rate > 0:
            text += f", {rate:,.0f} {self.unit}/s" if rate >= 10 else f", {rate:.2f} {self.unit}/s"
            if self.total and self.done < self.total:
                text += f", {_duration((self.total - self.done) / rate)} left"
        return text

    def _write(self, text: str, final: bool) -> None:
        try:
            if self.tty:
                self.stream.write("\r" + text + "\x1b[K")
            else:
                self.stream.write(text + "\n")
            self.stream.flush()
            self.shown = True
        except (OSError, ValueError):
            self.mode = "never"  # stderr gone: work on silently

    def clear(self) -> None:
        """Erase the terminal line (before another message is printed there)."""
        if self.tty and self.shown:
            with contextlib.suppress(OSError, ValueError):
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            self.next_t = time.monotonic()  # redraw at the next step

    @classmethod
    def clear_all(cls) -> None:
        for p in cls._active:
            p.clear()

    def close(self, ok: bool = True) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(ValueError):
            Progress._active.remove(self)
        if not self.shown:
            return
        if self.tty:
            self.clear()
        elif ok:
            elapsed = time.monotonic() - self.t0
            with contextlib.suppress(OSError, ValueError):
                self.stream.write(f"{self.label} done: {self.done:,} {self.unit} in {elapsed:.1f} s\n")
                self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)
