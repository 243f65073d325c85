"""Hardware profiles: Loihi 2 systems (and Lava's CPU simulator) as checked, frozen data.

A profile is a YAML file (`hw_profiles/*.yaml`, shipped as package data, or any
file a user writes). Every leaf is a fact with its provenance::

    neurons_per_core_plan: {value: 4096, status: estimate, src: "Intel's estimator default ..."}

`status` is `published` (src names the source: a key of the file's `sources:`
block, a URL or a code path) or `estimate` (src gives the reasoning, e.g.
`derived: 2600 W / 380e12`). Unknown values are `value: null, status: estimate`.
Optional extra keys of a leaf: `range: [lo, hi]`, `pessimistic` (a worse but
defensible value, e.g. Loihi 1's energy) and `max_claimed`.

The schema is the dataclasses below: each field's metadata says its value type,
the quantity it is (a key of `LIMITS`: its lower and upper bounds, stated once in
that table) and who needs it (`plan`: every profile, since the planner and the
report read it; `hardware`: every profile of kind `hardware`). Loading checks every
field, refuses unknown and duplicate keys, non-finite numbers and values outside
their bounds, and reports the first problem as one line naming the file, the field
and the bound (`HardwareProfileError`), e.g.::

    my.yaml: chip.neurons_per_core_plan.value: expected an integer >= 1, got -4
    my.yaml: system.chips.value: expected an integer <= 1e6 (chips in a system), got 100000000000...

A profile file is read as hostile input: a regular file of at most
`MAX_PROFILE_BYTES` (a named pipe, a device or a directory is one line, never
read), parsed by a safe loader that stops at `MAX_DEPTH` levels of nesting and
`MAX_NODES` values (an alias counted every time it is used, so that a "billion
laughs" document is refused without being expanded), and every value quoted in
an error is cut to `SHOW_CHARS` characters without walking more than that much of it.

The planner (`spike2loihi.hardware.planner`) and the activity report
(`spike2loihi.hardware.activity`) consume `Profile`; nothing here imports Lava.
"""
from __future__ import annotations

import dataclasses
import datetime
import difflib
import functools
import itertools
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from spike2loihi.errors import HardwareProfileError, InputFileError
from spike2loihi.hardware.profile_yaml import (MAX_DEPTH, MAX_INT_CHARS, MAX_NODES, SHOW_CHARS,  # noqa: F401
                                               _check_size, _clip, _key, _loader_class, _Refused, _show,
                                               _unknown)
from spike2loihi.hardware.profile_schema import (HARDWARE, KINDS, LEAF_KEYS, LIF_KEYS, LIMITS,  # noqa: F401
                                                 MAX_LIST_ITEMS, MAX_NAME_CHARS, MAX_TEXT_CHARS, NESTED, PLAN,
                                                 SCHEMA_VERSION, SECTIONS, STATUSES, SUFFIXES, TOP_KEYS, Chip,
                                                 CoreMemory, Energy, Fact, Host, Limit, Numerics, Profile, System,
                                                 Timing, _FrozenMap)
from spike2loihi.inputs import MAX_PROFILE_BYTES, read_input_text

# ---------------------------------------------------------------------------
# Finding and loading
# ---------------------------------------------------------------------------
def profile_dir() -> Path:
    """The folder of the packaged profiles (package `hw_profiles`)."""
    import hw_profiles

    return Path(hw_profiles.__file__).resolve().parent


def available_profiles() -> List[str]:
    """Names of the packaged profiles, sorted."""
    return sorted(p.stem for p in profile_dir().glob("*.yaml"))


def _normalise(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def resolve(name_or_path) -> Path:
    """The file a `--hw` value names: an existing path, else a packaged profile's name.

    An existing path that is not a regular file (a named pipe, a device) is returned unopened, for
    `load_profile` to name what it is (it never reads one); a directory is refused here."""
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    try:
        st: Optional[os.stat_result] = os.stat(path)   # stat never opens: a named pipe cannot block it
        problem: Optional[BaseException] = None
    except (OSError, ValueError) as exc:               # ValueError: an embedded NUL character
        st, problem = None, exc
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise HardwareProfileError(f"{text}: is a directory, expected a hardware profile (.yaml) or one of "
                                       f"{', '.join(available_profiles())}")
        return path
    looks_like_path = os.sep in text or text.endswith(SUFFIXES)
    key = _normalise(text)
    if not looks_like_path and key in available_profiles():
        return profile_dir() / f"{key}.yaml"
    if looks_like_path:
        if isinstance(problem, OSError) and not isinstance(problem, (FileNotFoundError, NotADirectoryError)):
            raise HardwareProfileError(f"{text}: cannot read ({problem.strerror or problem})")
        raise HardwareProfileError(f"{text}: no such file (a hardware profile .yaml, or a name: "
                                   f"{', '.join(available_profiles())})")
    close = difflib.get_close_matches(key, available_profiles(), n=1) if len(key) <= 100 else []
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise HardwareProfileError(f"unknown hardware profile {_show(text)}{hint}: choose one of "
                               f"{', '.join(available_profiles())}, or give a .yaml file")


def load_profile(name_or_path) -> Profile:
    """Load and check a profile by name (packaged) or file path (read as hostile input: a regular file of
    at most `MAX_PROFILE_BYTES`, UTF-8)."""
    path = resolve(name_or_path)
    try:
        text = read_input_text(path, "--hw", MAX_PROFILE_BYTES)
    except InputFileError as exc:
        raise HardwareProfileError(str(exc)) from None
    return parse_profile(text, str(path))


def parse_profile(text: str, source: str = "<profile>") -> Profile:
    """Check the YAML text of a profile against the schema; `source` names it in errors."""
    import yaml

    loader = None
    try:
        loader = _loader_class()(text)          # the reader refuses control characters here
        data = loader.get_single_data()
    except _Refused as exc:
        raise HardwareProfileError(f"{source}: {exc}") from None
    except RecursionError:
        raise HardwareProfileError(f"{source}: nested too deeply for the YAML reader (a hardware profile may "
                                   f"nest at most {MAX_DEPTH} levels)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise HardwareProfileError(f"{source}: not valid YAML{where}: {_clip(problem)}") from None
    finally:
        if loader is not None:
            loader.dispose()
    _check_size(data, source)
    return _Checker(source).profile(data)


def _bound(x: float) -> str:
    """A bound as an error states it: 64, 0.5, 1e6."""
    if float(x).is_integer() and abs(x) < 1e4:
        return str(int(x))
    mantissa, exponent = f"{x:.6e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


_NUMBER_RE = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    """An int (any size: it is finite) or a finite float; not a bool."""
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (isinstance(v, float) and math.isfinite(v))


class _Checker:
    def __init__(self, source: str):
        self.source = source
        self.kind = "hardware"

    def fail(self, where: str, message: str):
        raise HardwareProfileError(f"{self.source}: {where}: {message}" if where else f"{self.source}: {message}")

    def text(self, v, where: str, limit: int, what: str, noun: str) -> str:
        """A non-empty string (`what`, for the error) of at most `limit` characters (`noun`: what it is)."""
        if not isinstance(v, str) or not v.strip():
            self.fail(where, f"expected {what}, got {_show(v)}")
        if len(v) > limit:
            self.fail(where, f"{len(v):,} characters, more than the {limit:,} {noun} may have")
        return v.strip()

    def number(self, v, limit: Limit, integer: bool, where: str):
        """`v` checked against `limit` (named in the error): an int, or a finite number (a string such as
        `2.7e9`, which YAML 1.1 reads as a string, is read as one)."""
        shown = v
        if not integer and isinstance(v, str) and len(v) <= 400 and _NUMBER_RE.fullmatch(v.strip()):
            v = float(v)
            shown = v if math.isfinite(v) else shown
        noun = "an integer" if integer else "a finite number"
        low = f"> {_bound(limit.lo)}" if limit.open_lo else f">= {_bound(limit.lo)}"
        if not (_is_int(v) if integer else _is_num(v)) or v < limit.lo or (limit.open_lo and v <= limit.lo):
            self.fail(where, f"expected {noun} {low}, got {_show(shown)}")
        if v > limit.hi:
            self.fail(where, f"expected {noun} <= {_bound(limit.hi)} ({limit.what}), got {_show(shown)}")
        return v

    def profile(self, data) -> Profile:
        if not isinstance(data, dict):
            self.fail("", f"expected a mapping of fields at the top, found {type(data).__name__}")
        for key in data:
            if key not in TOP_KEYS:
                self.fail(_key(key), _unknown(key, TOP_KEYS))
        for key in ("schema_version", "profile", "kind") + tuple(SECTIONS):
            if key not in data:
                self.fail(key, "missing (required)")
        if not (_is_int(data["schema_version"]) and data["schema_version"] == SCHEMA_VERSION):
            self.fail("schema_version", f"{_show(data['schema_version'])} is not supported (this spike2loihi "
                                        f"reads version {SCHEMA_VERSION})")
        name = self.text(data["profile"], "profile", MAX_NAME_CHARS, "the profile's name (a non-empty string)",
                         "a name")
        if data["kind"] not in KINDS:
            self.fail("kind", f"{_show(data['kind'])} is not one of {', '.join(KINDS)}")
        self.kind = data["kind"]
        desc = data.get("description", "")
        if not isinstance(desc, str):
            self.fail("description", "expected a string")
        if len(desc) > MAX_TEXT_CHARS:
            self.fail("description", f"{len(desc):,} characters, more than the {MAX_TEXT_CHARS:,} a description "
                                     "may have")
        sources = data.get("sources") or {}
        if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
            self.fail("sources", "expected a mapping of source keys to descriptions or URLs")
        for k, v in sources.items():
            if len(str(k)) > MAX_NAME_CHARS or len(v) > MAX_TEXT_CHARS:
                self.fail(f"sources.{_key(k)}", f"more than the {MAX_NAME_CHARS:,} characters a source key or the "
                                                f"{MAX_TEXT_CHARS:,} a source's description may have")
        sections = {name: self.section(data[name], cls, name) for name, cls in SECTIONS.items()}
        prof = Profile(name=name, kind=self.kind, description=desc.strip(), path=self.source,
                       sources=tuple((str(k), v) for k, v in sources.items()), **sections)
        self.cross_checks(prof)
        return prof

    def section(self, data, cls, where: str):
        if not isinstance(data, dict):
            self.fail(where, f"expected a mapping of fields, found {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in data:
            if key not in fields:
                self.fail(f"{where}.{_key(key)}", _unknown(key, fields))
        values = {}
        for name, f in fields.items():
            path = f"{where}.{name}"
            sub = NESTED.get((cls, name))
            if sub is not None:
                if name not in data:
                    self.fail(path, "missing (required)")
                values[name] = self.section(data[name], sub, path)
                continue
            if name not in data:
                if f.metadata["optional"]:
                    values[name] = None
                    continue
                self.fail(path, "missing (required; unknown values are {value: null, status: estimate, src: why})")
            values[name] = self.leaf(data[name], f.metadata, path)
        return cls(**values)

    def leaf(self, data, meta: dict, path: str) -> Fact:
        if not isinstance(data, dict) or "status" not in data and "value" not in data:
            self.fail(path, "expected {value: ..., status: published|estimate, src: ...}")
        for key in data:
            if key not in LEAF_KEYS:
                self.fail(f"{path}.{_key(key)}", _unknown(key, LEAF_KEYS))
        for key in ("value", "status", "src"):
            if key not in data:
                self.fail(f"{path}.{key}", "missing (every value carries value, status and src)")
        status = data["status"]
        if status not in STATUSES:
            self.fail(f"{path}.status", f"{_show(status)} is not published or estimate")
        src = data["src"]
        if not isinstance(src, str) or not src.strip():
            what = "a published value names its source" if status == "published" else \
                "an estimate gives its reasoning"
            self.fail(f"{path}.src", f"missing: {what}")
        src = self.text(src, f"{path}.src", MAX_TEXT_CHARS, "a source or a reasoning", "a src")
        value = data["value"]
        need = meta["need"]
        needed = need == PLAN or (need == HARDWARE and self.kind == "hardware")
        if value is None:
            if status == "published":
                self.fail(f"{path}.value", "null but marked published: an unknown value is an estimate")
            if needed and not (path == "system.chips" and self.kind == "simulator"):
                who = "every profile" if need == PLAN else "a hardware profile"
                self.fail(f"{path}.value", f"null, but {who} needs it (the planner and the report use it)")
        else:
            value = self.value(value, meta, f"{path}.value")
        limit = LIMITS[meta["limit"]] if meta["kind"] in ("int", "num") else None
        extras = {}
        if "range" in data and data["range"] is not None:
            r = data["range"]
            if not (isinstance(r, list) and len(r) == 2 and all(_is_num(x) or limit and isinstance(x, str)
                                                                for x in r)):
                self.fail(f"{path}.range", f"expected [low, high] numbers with low <= high, got {_show(r)}")
            if limit is not None:
                r = [self.number(x, limit, False, f"{path}.range") for x in r]
            if not r[0] <= r[1]:
                self.fail(f"{path}.range", f"expected [low, high] numbers with low <= high, got {_show(r)}")
            if _is_num(value) and not r[0] <= value <= r[1]:
                self.fail(f"{path}.range", f"value {_show(value)} lies outside its range {_show(r)}")
            extras["range"] = (r[0], r[1])
        for key in ("pessimistic", "max_claimed"):
            if key in data and data[key] is not None:
                if limit is not None:
                    extras[key] = self.number(data[key], limit, False, f"{path}.{key}")
                    continue
                if not _is_num(data[key]) or data[key] < 0:
                    self.fail(f"{path}.{key}", f"expected a number >= 0, got {_show(data[key])}")
                extras[key] = data[key]
        return Fact(value=value, status=status, src=src, **extras)

    def value(self, v, meta: dict, path: str):
        kind = meta["kind"]
        limit = LIMITS[meta["limit"]] if meta["limit"] else None
        if kind == "int":
            return self.number(v, limit, True, path)
        if kind == "num":
            v = self.number(v, limit, False, path)
            return float(v) if isinstance(v, float) else v
        if kind == "str":
            return self.text(v, path, MAX_NAME_CHARS, "a non-empty string", "a name")
        if kind == "str_list":
            if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
                self.fail(path, f"expected a list of names, got {_show(v)}")
            if len(v) > MAX_LIST_ITEMS or any(len(x) > MAX_NAME_CHARS for x in v):
                self.fail(path, f"expected at most {MAX_LIST_ITEMS} names of at most {MAX_NAME_CHARS} characters, "
                                f"got {_show(v)}")
            return tuple(v)
        if kind == "int_pair":
            if not (isinstance(v, list) and len(v) == 2 and all(_is_int(x) for x in v) and v[0] <= v[1]):
                self.fail(path, f"expected [low, high] integers with low <= high, got {_show(v)}")
            return tuple(self.number(x, limit, True, path) for x in v)
        if kind == "int_map":
            if not isinstance(v, dict):
                self.fail(path, f"expected a mapping of names to integers, got {_show(v)}")
            for key in v:
                if key not in meta["keys"]:
                    self.fail(f"{path}.{_key(key)}", _unknown(key, meta["keys"]))
            for key in meta["keys"]:
                if key not in v:
                    self.fail(f"{path}.{key}", "missing (required)")
                self.number(v[key], limit, True, f"{path}.{key}")
            return _FrozenMap((k, v[k]) for k in meta["keys"])
        raise AssertionError(kind)  # pragma: no cover - the schema uses only the kinds above

    def cross_checks(self, p: Profile) -> None:
        c = p.chip
        pairs = [("chip.neurons_per_core_plan", c.neurons_per_core_plan, "chip.neurons_per_core_max",
                  c.neurons_per_core_max),
                 ("chip.neurocores_usable", c.neurocores_usable, "chip.neurocores_physical", c.neurocores_physical),
                 ("chip.embedded_cpus_usable", c.embedded_cpus_usable, "chip.embedded_cpus_physical",
                  c.embedded_cpus_physical)]
        for a_name, a, b_name, b in pairs:
            if a.known and b.known and a.value > b.value:
                self.fail(f"{a_name}.value", f"{a.value} exceeds {b_name} ({b.value})")
        if p.numerics.graded_payload_bits.value > 32:
            self.fail("numerics.graded_payload_bits.value", f"{p.numerics.graded_payload_bits.value} exceeds the "
                                                            "32-bit message of a Loihi spike")
        s = p.system
        if p.is_hardware and s.cores_total.value > s.chips.value * c.neurocores_physical.value:
            self.fail("system.cores_total.value", f"{s.cores_total.value} exceeds chips x "
                                                  f"chip.neurocores_physical ({s.chips.value} x "
                                                  f"{c.neurocores_physical.value})")
