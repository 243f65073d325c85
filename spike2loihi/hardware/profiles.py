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
its lower bound and who needs it (`plan`: every profile, since the planner and the
report read it; `hardware`: every profile of kind `hardware`). Loading checks every
field, refuses unknown and duplicate keys, and reports the first problem as one
line naming the file and the field (`HardwareProfileError`), e.g.::

    my.yaml: chip.neurons_per_core_plan.value: expected an integer >= 1, got -4

The planner (`spike2loihi.hardware.planner`) and the activity report
(`spike2loihi.hardware.activity`) consume `Profile`; nothing here imports Lava.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from spike2loihi.errors import HardwareProfileError

SCHEMA_VERSION = 1
STATUSES = ("published", "estimate")
KINDS = ("hardware", "simulator")
LEAF_KEYS = ("value", "status", "src", "range", "pessimistic", "max_claimed")
SUFFIXES = (".yaml", ".yml")


# ---------------------------------------------------------------------------
# Facts and the schema
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Fact:
    """One value with its provenance."""

    value: Any
    status: str                                    # published | estimate
    src: str
    range: Optional[Tuple[float, float]] = None
    pessimistic: Optional[float] = None
    max_claimed: Optional[float] = None

    @property
    def known(self) -> bool:
        return self.value is not None

    def to_dict(self) -> dict:
        out = {"value": list(self.value) if isinstance(self.value, tuple) else
               (dict(self.value) if isinstance(self.value, _FrozenMap) else self.value),
               "status": self.status, "src": self.src}
        for k in ("range", "pessimistic", "max_claimed"):
            v = getattr(self, k)
            if v is not None:
                out[k] = list(v) if isinstance(v, tuple) else v
        return out


class _FrozenMap(tuple):
    """An immutable mapping (tuple of pairs) for dict-valued facts such as `numerics.lif`."""

    def __getitem__(self, key):
        if isinstance(key, str):
            for k, v in self:
                if k == key:
                    return v
            raise KeyError(key)
        return tuple.__getitem__(self, key)

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def keys(self):
        return [k for k, _ in self]

    def items(self):
        return list(self)


# Value kinds: int, num (int or float), str, str_list, int_pair, int_map.
PLAN, HARDWARE = "plan", "hardware"


def _fact(kind: str, need: Optional[str] = None, min: float = 1, optional: bool = False, keys: tuple = ()):
    """A schema field: value kind, lower bound, who needs a value, and whether it may be absent."""
    return field(metadata={"kind": kind, "need": need, "min": min, "optional": optional, "keys": keys})


@dataclass(frozen=True)
class CoreMemory:
    words: Fact = _fact("int", PLAN)
    word_bits: Fact = _fact("int", PLAN)
    synmem_units_budget: Fact = _fact("num", PLAN)
    synmem_units_per_dense_synapse: Fact = _fact("num", PLAN, min=0)


@dataclass(frozen=True)
class Chip:
    name: Fact = _fact("str")
    generation: Fact = _fact("str")
    process_node: Fact = _fact("str")
    die_area_mm2: Fact = _fact("num")
    neurocores_physical: Fact = _fact("int", PLAN)
    neurocores_usable: Fact = _fact("int", PLAN)
    embedded_cpus_physical: Fact = _fact("int")
    embedded_cpus_usable: Fact = _fact("int")
    neurons_per_core_max: Fact = _fact("int", PLAN)
    neurons_per_core_plan: Fact = _fact("int", PLAN)
    neurons_per_chip_max: Fact = _fact("int", PLAN)
    synapses_per_chip_max: Fact = _fact("int", PLAN)
    core_memory: CoreMemory = field(metadata={"nested": True})
    axons_in_per_core_max: Fact = _fact("int", PLAN)
    axons_out_per_core_max: Fact = _fact("int", PLAN)


LIF_KEYS = ("uv_bits", "decay_bits", "ds_offset", "dm_offset", "act_shift", "vth_bits", "vth_shift",
            "bias_mant_bits", "bias_exp_bits")


@dataclass(frozen=True)
class Numerics:
    weight_bits_max: Fact = _fact("int", PLAN)
    weight_sign_modes: Fact = _fact("str_list")
    weight_exp_range: Fact = _fact("int_pair")
    graded_payload_bits: Fact = _fact("int", PLAN)
    binary_spike_bits: Fact = _fact("int", PLAN)
    lif: Fact = _fact("int_map", PLAN, min=0, keys=LIF_KEYS)
    delay_steps_max: Fact = _fact("int", min=0)
    dense_delay_steps: Fact = _fact("int", PLAN)


@dataclass(frozen=True)
class Timing:
    timestep_us_typical: Fact = _fact("num", PLAN, min=0)
    sync_us_per_step: Fact = _fact("num", HARDWARE, min=0)
    sync_us_per_step_multichip: Fact = _fact("num", HARDWARE, min=0)
    synops_per_s_per_core: Fact = _fact("num", HARDWARE)
    neuron_updates_per_s_per_core: Fact = _fact("num", HARDWARE)


@dataclass(frozen=True)
class Energy:
    e_synop_pj: Fact = _fact("num", HARDWARE, min=0)
    e_neuron_update_pj: Fact = _fact("num", HARDWARE, min=0)
    e_spike_pj: Fact = _fact("num", HARDWARE, min=0)
    e_hop_pj: Fact = _fact("num", HARDWARE, min=0)
    static_w_per_chip: Fact = _fact("num", HARDWARE, min=0)
    max_w_per_chip: Fact = _fact("num", min=0)


@dataclass(frozen=True)
class Host:
    e_fp32_add_pj: Fact = _fact("num", PLAN, min=0)
    e_fp32_mult_pj: Fact = _fact("num", PLAN, min=0)
    e_mac_pj: Fact = _fact("num", PLAN, min=0)
    e_ac_pj: Fact = _fact("num", PLAN, min=0)
    e_fp32_div_pj: Fact = _fact("num", PLAN, min=0)
    e_fp32_exp_pj: Fact = _fact("num", PLAN, min=0)
    e_fp32_sqrt_pj: Fact = _fact("num", PLAN, min=0)
    e_fp32_sigmoid_pj: Fact = _fact("num", PLAN, min=0)
    e_fp32_compare_pj: Fact = _fact("num", PLAN, min=0)
    e_convert_pj: Fact = _fact("num", PLAN, min=0)
    e_sram64_8kb_pj: Fact = _fact("num", min=0)


@dataclass(frozen=True)
class System:
    name: Fact = _fact("str", PLAN)
    chips: Fact = _fact("int", HARDWARE)
    cores_total: Fact = _fact("int", HARDWARE)
    neurons_max: Fact = _fact("int")
    synapses_max: Fact = _fact("int")
    host_link: Fact = _fact("str")
    host_io_bytes_per_s: Fact = _fact("num", HARDWARE)
    host_roundtrip_ms: Fact = _fact("num", PLAN, min=0)
    e_host_io_pj_per_byte: Fact = _fact("num", HARDWARE, min=0)
    inter_chip_bytes_per_s_per_chip: Fact = _fact("num")
    max_power_w: Fact = _fact("num", min=0)
    lava_loihi_gen: Fact = _fact("str")
    lava_partition: Fact = _fact("str")
    static_power_w: Optional[Fact] = _fact("num", min=0, optional=True)
    embedded_x86: Optional[Fact] = _fact("int", optional=True)
    memory_bw_bytes_per_s: Optional[Fact] = _fact("num", optional=True)
    inter_core_bytes_per_s: Optional[Fact] = _fact("num", optional=True)
    inter_chip_bytes_per_s: Optional[Fact] = _fact("num", optional=True)
    synops_per_s: Optional[Fact] = _fact("num", optional=True)
    neuron_ops_per_s: Optional[Fact] = _fact("num", optional=True)
    tops_per_w_8bit: Optional[Fact] = _fact("num", optional=True)
    form_factor: Optional[Fact] = _fact("str", optional=True)


SECTIONS = {"chip": Chip, "numerics": Numerics, "timing": Timing, "energy": Energy, "host": Host, "system": System}
NESTED = {(Chip, "core_memory"): CoreMemory}
TOP_KEYS = ("schema_version", "profile", "kind", "description", "sources") + tuple(SECTIONS)


@dataclass(frozen=True)
class Profile:
    """A checked hardware profile: frozen, with every fact's provenance."""

    name: str                  # the profile's id (`profile:`), e.g. kapoho_point
    kind: str                  # hardware | simulator
    description: str
    path: str                  # the file it was read from
    chip: Chip
    numerics: Numerics
    timing: Timing
    energy: Energy
    host: Host
    system: System
    sources: Tuple[Tuple[str, str], ...] = ()

    @property
    def is_hardware(self) -> bool:
        return self.kind == "hardware"

    @property
    def title(self) -> str:
        return str(self.system.name.value)

    def fact(self, dotted: str) -> Fact:
        """A fact by its dotted path, e.g. `chip.core_memory.words`."""
        obj: Any = self
        for part in dotted.split("."):
            obj = getattr(obj, part)
        if not isinstance(obj, Fact):
            raise KeyError(f"{dotted} is not a fact")
        return obj

    def facts(self) -> Dict[str, Fact]:
        """Every fact by dotted path, in schema order."""
        out: Dict[str, Fact] = {}
        for sec in SECTIONS:
            _collect(getattr(self, sec), sec, out)
        return out

    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, "profile": self.name, "kind": self.kind,
                "description": self.description, "path": self.path,
                **{sec: _section_dict(getattr(self, sec)) for sec in SECTIONS},
                "sources": dict(self.sources)}


def _collect(obj, prefix: str, out: Dict[str, Fact]) -> None:
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, Fact):
            out[f"{prefix}.{f.name}"] = v
        elif dataclasses.is_dataclass(v):
            _collect(v, f"{prefix}.{f.name}", out)


def _section_dict(obj) -> dict:
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, Fact):
            out[f.name] = v.to_dict()
        elif dataclasses.is_dataclass(v):
            out[f.name] = _section_dict(v)
    return out


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
    """The file a `--hw` value names: an existing file, else a packaged profile's name."""
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise HardwareProfileError(f"{text}: is a directory, expected a hardware profile (.yaml) or one of "
                                   f"{', '.join(available_profiles())}")
    looks_like_path = os.sep in text or text.endswith(SUFFIXES)
    key = _normalise(text)
    if not looks_like_path and key in available_profiles():
        return profile_dir() / f"{key}.yaml"
    if looks_like_path:
        raise HardwareProfileError(f"{text}: no such file (a hardware profile .yaml, or a name: "
                                   f"{', '.join(available_profiles())})")
    close = difflib.get_close_matches(key, available_profiles(), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise HardwareProfileError(f"unknown hardware profile {text!r}{hint}: choose one of "
                               f"{', '.join(available_profiles())}, or give a .yaml file")


def load_profile(name_or_path) -> Profile:
    """Load and check a profile by name (packaged) or file path."""
    path = resolve(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise HardwareProfileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise HardwareProfileError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_profile(text, str(path))


def parse_profile(text: str, source: str = "<profile>") -> Profile:
    """Check the YAML text of a profile against the schema; `source` names it in errors."""
    import yaml

    try:
        data = yaml.load(text, Loader=_loader_class())  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as exc:
        raise HardwareProfileError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise HardwareProfileError(f"{source}: not valid YAML{where}: {problem}") from None
    return _Checker(source).profile(data)


class _DuplicateKey(Exception):
    pass


@functools.lru_cache(maxsize=None)
def _loader_class():
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise _DuplicateKey(f"key {key!r} appears twice (lines {seen[key] + 1} and "
                                    f"{key_node.start_mark.line + 1})")
            seen[key] = key_node.start_mark.line
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return Loader


def _unknown(key, allowed) -> str:
    close = difflib.get_close_matches(str(key), list(allowed), n=1)
    return f"unknown field{' (did you mean ' + close[0] + '?)' if close else ''}"


_NUMBER_RE = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


class _Checker:
    def __init__(self, source: str):
        self.source = source
        self.kind = "hardware"

    def fail(self, where: str, message: str):
        raise HardwareProfileError(f"{self.source}: {where}: {message}" if where else f"{self.source}: {message}")

    def profile(self, data) -> Profile:
        if not isinstance(data, dict):
            self.fail("", f"expected a mapping of fields at the top, found {type(data).__name__}")
        for key in data:
            if key not in TOP_KEYS:
                self.fail(str(key), _unknown(key, TOP_KEYS))
        for key in ("schema_version", "profile", "kind") + tuple(SECTIONS):
            if key not in data:
                self.fail(key, "missing (required)")
        if data["schema_version"] != SCHEMA_VERSION:
            self.fail("schema_version", f"{data['schema_version']!r} is not supported (this spike2loihi reads "
                                        f"version {SCHEMA_VERSION})")
        if not isinstance(data["profile"], str) or not data["profile"].strip():
            self.fail("profile", "expected the profile's name (a non-empty string)")
        if data["kind"] not in KINDS:
            self.fail("kind", f"{data['kind']!r} is not one of {', '.join(KINDS)}")
        self.kind = data["kind"]
        desc = data.get("description", "")
        if not isinstance(desc, str):
            self.fail("description", "expected a string")
        sources = data.get("sources") or {}
        if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
            self.fail("sources", "expected a mapping of source keys to descriptions or URLs")
        sections = {name: self.section(data[name], cls, name) for name, cls in SECTIONS.items()}
        prof = Profile(name=data["profile"].strip(), kind=self.kind, description=desc.strip(), path=self.source,
                       sources=tuple((str(k), v) for k, v in sources.items()), **sections)
        self.cross_checks(prof)
        return prof

    def section(self, data, cls, where: str):
        if not isinstance(data, dict):
            self.fail(where, f"expected a mapping of fields, found {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in data:
            if key not in fields:
                self.fail(f"{where}.{key}", _unknown(key, fields))
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
                self.fail(f"{path}.{key}", _unknown(key, LEAF_KEYS))
        for key in ("value", "status", "src"):
            if key not in data:
                self.fail(f"{path}.{key}", "missing (every value carries value, status and src)")
        status = data["status"]
        if status not in STATUSES:
            self.fail(f"{path}.status", f"{status!r} is not published or estimate")
        src = data["src"]
        if not isinstance(src, str) or not src.strip():
            what = "a published value names its source" if status == "published" else \
                "an estimate gives its reasoning"
            self.fail(f"{path}.src", f"missing: {what}")
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
        extras = {}
        if "range" in data and data["range"] is not None:
            r = data["range"]
            if not (isinstance(r, list) and len(r) == 2 and all(_is_num(x) for x in r) and r[0] <= r[1]):
                self.fail(f"{path}.range", f"expected [low, high] numbers with low <= high, got {r!r}")
            if _is_num(value) and not r[0] <= value <= r[1]:
                self.fail(f"{path}.range", f"value {value} lies outside its range {r}")
            extras["range"] = (r[0], r[1])
        for key in ("pessimistic", "max_claimed"):
            if key in data and data[key] is not None:
                if not _is_num(data[key]) or data[key] < 0:
                    self.fail(f"{path}.{key}", f"expected a number >= 0, got {data[key]!r}")
                extras[key] = data[key]
        return Fact(value=value, status=status, src=src.strip(), **extras)

    def value(self, v, meta: dict, path: str):
        kind, lo = meta["kind"], meta["min"]
        if kind == "int":
            if not _is_int(v) or v < lo:
                self.fail(path, f"expected an integer >= {lo:g}, got {v!r}")
            return v
        if kind == "num":
            if isinstance(v, str) and _NUMBER_RE.fullmatch(v.strip()):
                v = float(v)  # PyYAML (YAML 1.1) reads 2.7e9 as a string: it needs 2.7e+9
            if not _is_num(v) or v < lo or (lo == 1 and v <= 0):
                bound = "> 0" if lo == 1 else f">= {lo:g}"
                self.fail(path, f"expected a finite number {bound}, got {v!r}")
            return float(v) if isinstance(v, float) else v
        if kind == "str":
            if not isinstance(v, str) or not v.strip():
                self.fail(path, f"expected a non-empty string, got {v!r}")
            return v.strip()
        if kind == "str_list":
            if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
                self.fail(path, f"expected a list of names, got {v!r}")
            return tuple(v)
        if kind == "int_pair":
            if not (isinstance(v, list) and len(v) == 2 and all(_is_int(x) for x in v) and v[0] <= v[1]):
                self.fail(path, f"expected [low, high] integers with low <= high, got {v!r}")
            return (v[0], v[1])
        if kind == "int_map":
            if not isinstance(v, dict):
                self.fail(path, f"expected a mapping of names to integers, got {v!r}")
            for key in v:
                if key not in meta["keys"]:
                    self.fail(f"{path}.{key}", _unknown(key, meta["keys"]))
            for key in meta["keys"]:
                if key not in v:
                    self.fail(f"{path}.{key}", "missing (required)")
                if not _is_int(v[key]) or v[key] < lo:
                    self.fail(f"{path}.{key}", f"expected an integer >= {lo:g}, got {v[key]!r}")
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
