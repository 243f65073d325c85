"""Numbers on the command line: click types that refuse inf, nan and values out of range
(naming the option and its range), lists of token ids, and the thread count capped at
the cores.
"""
from __future__ import annotations

import math
import os
import re
from typing import List, Optional

import click

from spike2loihi.cli.rules import warn
from spike2loihi.errors import Spike2LoihiError

__all__ = ["Int", "Float", "SEED", "SEED_MAX", "parse_int_list", "cap_threads", "available_cores"]

SEED_MAX = 2 ** 64 - 1  # torch.Generator.manual_seed takes 0..2**64-1 (negatives wrap modulo 2**64)
_INT_RE = re.compile(r"[+-]?[0-9]+")


class Int(click.ParamType):
    """An integer option in [min, max]; the error names the option and the range."""

    name = "integer"

    def __init__(self, min: Optional[int] = None, max: Optional[int] = None):
        self.min, self.max = min, max

    def expected(self) -> str:
        if self.min is not None and self.max is not None:
            return f"an integer in {self.min}..{self.max}"
        if self.min is not None:
            return f"an integer >= {self.min}"
        if self.max is not None:
            return f"an integer <= {self.max}"
        return "an integer"

    def convert(self, value, param, ctx):
        if isinstance(value, bool):
            self.fail(f"{value!r} is not {self.expected()}", param, ctx)
        if isinstance(value, int):
            v = value
        else:
            text = str(value).strip()
            if not _INT_RE.fullmatch(text):
                self.fail(f"{str(value)!r} is not {self.expected()}", param, ctx)
            v = int(text)
        if (self.min is not None and v < self.min) or (self.max is not None and v > self.max):
            self.fail(f"{v} is out of range: expected {self.expected()}", param, ctx)
        return v

    def __repr__(self):
        return f"Int({self.min}, {self.max})"


class Float(click.ParamType):
    """A finite number option in a range (inf and nan refused); the error names the option and the range."""

    name = "number"

    def __init__(self, min: Optional[float] = None, max: Optional[float] = None, min_open: bool = False,
                 max_open: bool = False, below_hint: str = ""):
        """`below_hint` is added to the message for values below the range (e.g. "--greedy takes the argmax")."""
        self.min, self.max, self.min_open, self.max_open = min, max, min_open, max_open
        self.below_hint = below_hint

    def expected(self) -> str:
        lo, hi = self.min, self.max
        if lo is not None and hi is not None:
            return f"a number in {'(' if self.min_open else '['}{lo:g}, {hi:g}{')' if self.max_open else ']'}"
        if lo is not None:
            return f"a finite number {'>' if self.min_open else '>='} {lo:g}"
        if hi is not None:
            return f"a finite number {'<' if self.max_open else '<='} {hi:g}"
        return "a finite number"

    def convert(self, value, param, ctx):
        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail(f"{str(value)!r} is not {self.expected()}", param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value} is not finite: expected {self.expected()}", param, ctx)
        lo, hi = self.min, self.max
        low = lo is not None and (v < lo or (self.min_open and v == lo))
        if low or (hi is not None and (v > hi or (self.max_open and v == hi))):
            hint = f" ({self.below_hint})" if low and self.below_hint else ""
            self.fail(f"{value} is out of range: expected {self.expected()}{hint}", param, ctx)
        return v

    def __repr__(self):
        return f"Float({self.min}, {self.max})"


SEED = Int(0, SEED_MAX)


def parse_int_list(text: str, source: str, lo: int, hi: int, what: str = "token id") -> List[int]:
    """Integers separated by commas and/or whitespace, each in lo..hi.

    An empty item between commas ('1,,2', a leading or trailing comma) is refused,
    as is anything but ASCII digits with an optional sign.
    """
    if not text.strip():
        raise Spike2LoihiError(f"{source}: no {what}s given")
    ids: List[int] = []
    for pos, item in enumerate(text.split(","), start=1):
        parts = item.split()
        if not parts:
            raise Spike2LoihiError(f"{source}: empty item at position {pos} (two commas in a row, or a comma "
                                   f"at the start or end); separate {what}s with single commas")
        for p in parts:
            if not _INT_RE.fullmatch(p):
                raise Spike2LoihiError(f"{source}: {p!r} is not an integer {what}")
            v = int(p)
            if not lo <= v <= hi:
                raise Spike2LoihiError(f"{source}: {what} {v} is outside the vocabulary {lo}..{hi}")
            ids.append(v)
    return ids


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask, which containers restrict)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cap_threads(threads: Optional[int], option: str = "--threads") -> Optional[int]:
    """`threads`, capped at the available cores with a warning (more threads than cores only slows torch)."""
    if threads is None:
        return None
    cores = available_cores()
    if threads > cores:
        warn(f"{option} {threads} is more than the {cores} available CPU core{'s' if cores != 1 else ''}; "
             f"using {cores}")
        return cores
    return threads
