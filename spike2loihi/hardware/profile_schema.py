"""The hardware-profile schema: the frozen dataclasses a profile loads into, and the bounds of every quantity.

Each field's metadata (`_fact`) says its value type, the quantity it is (a key of `LIMITS`:
its lower and upper bounds, stated once in that table) and who needs it (`plan`: every
profile; `hardware`: every profile of kind `hardware`). `spike2loihi.hardware.profiles`
checks a YAML document against it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

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


@dataclass(frozen=True)
class Limit:
    """The bounds of one kind of quantity: `lo <= value <= hi` (`lo < value` when `open_lo`)."""

    lo: float
    hi: float
    what: str                  # what the bound caps, for the error: "cores per chip"
    open_lo: bool = False


#: Every physical quantity a profile states and its bounds, in one place. The upper bounds are generous
#: physical limits (the packaged profiles sit far below each: Hala Point's 1,152 chips, 128 cores a chip,
#: 8,192 neurons a core, 153 us steps, 81 pJ events, 2,600 W); they exist so that an absurd value (1e308,
#: a 400-digit count) is refused by name instead of printing `inf mJ`.
LIMITS: Dict[str, Limit] = {
    # counts
    "chips":             Limit(1, 1e6, "chips in a system"),
    "cores_per_chip":    Limit(1, 1e4, "cores or CPUs per chip"),
    "neurons_per_core":  Limit(1, 1e6, "neurons or axons per core"),
    "neurons_per_chip":  Limit(1, 1e10, "neurons per chip"),
    "synapses_per_chip": Limit(1, 1e13, "synapses per chip"),
    "cores":             Limit(1, 1e10, "cores or CPUs in a system"),
    "neurons":           Limit(1, 1e16, "neurons in a system"),
    "synapses":          Limit(1, 1e19, "synapses in a system"),
    "words_per_core":    Limit(1, 1e9, "memory words per core"),
    "synmem_units":      Limit(0, 1e9, "SynMem units per core", open_lo=True),
    "synmem_per_syn":    Limit(0, 1e4, "SynMem units per synapse"),
    # bits and steps
    "word_bits":         Limit(1, 1024, "bits per memory word"),
    "bits":              Limit(1, 64, "bits"),
    "bit_field":         Limit(0, 64, "bits or bit positions"),
    "exponent":          Limit(-64, 64, "weight exponent"),
    "delay_steps":       Limit(0, 1e6, "time steps of delay"),
    "steps":             Limit(1, 1e6, "time steps"),
    # physical sizes, times, rates, energies, power
    "area_mm2":          Limit(0, 1e5, "mm2 of die area", open_lo=True),
    "step_us":           Limit(0, 1e6, "us per time step: 1 s", open_lo=True),
    "sync_us":           Limit(0, 1e6, "us of synchronisation per step: 1 s"),
    "roundtrip_ms":      Limit(0, 1e4, "ms per host round trip"),
    "rate_per_core":     Limit(0, 1e13, "operations per second per core", open_lo=True),
    "rate":              Limit(0, 1e20, "operations per second", open_lo=True),
    "bytes_per_s":       Limit(0, 1e18, "bytes per second", open_lo=True),
    "energy_pj":         Limit(0, 1e12, "pJ per event: 1 J"),
    "power_w":           Limit(0, 1e6, "W: 1 MW"),
    "tops_per_w":        Limit(0, 1e6, "TOPS per W", open_lo=True),
}
#: Bounds on text: names (a value of kind `str`, the profile's name, a source key) and free text
#: (`src`, `description`, a source's description), and on the items of a list of names.
MAX_NAME_CHARS = 200
MAX_TEXT_CHARS = 4000
MAX_LIST_ITEMS = 64


def _fact(kind: str, need: Optional[str] = None, limit: Optional[str] = None, optional: bool = False,
          keys: tuple = ()):
    """A schema field: value kind, the quantity (a key of `LIMITS`), who needs a value, whether it may be absent."""
    assert limit is None or limit in LIMITS, limit
    return field(metadata={"kind": kind, "need": need, "limit": limit, "optional": optional, "keys": keys})


@dataclass(frozen=True)
class CoreMemory:
    words: Fact = _fact("int", PLAN, "words_per_core")
    word_bits: Fact = _fact("int", PLAN, "word_bits")
    synmem_units_budget: Fact = _fact("num", PLAN, "synmem_units")
    synmem_units_per_dense_synapse: Fact = _fact("num", PLAN, "synmem_per_syn")


@dataclass(frozen=True)
class Chip:
    name: Fact = _fact("str")
    generation: Fact = _fact("str")
    process_node: Fact = _fact("str")
    die_area_mm2: Fact = _fact("num", None, "area_mm2")
    neurocores_physical: Fact = _fact("int", PLAN, "cores_per_chip")
    neurocores_usable: Fact = _fact("int", PLAN, "cores_per_chip")
    embedded_cpus_physical: Fact = _fact("int", None, "cores_per_chip")
    embedded_cpus_usable: Fact = _fact("int", None, "cores_per_chip")
    neurons_per_core_max: Fact = _fact("int", PLAN, "neurons_per_core")
    neurons_per_core_plan: Fact = _fact("int", PLAN, "neurons_per_core")
    neurons_per_chip_max: Fact = _fact("int", PLAN, "neurons_per_chip")
    synapses_per_chip_max: Fact = _fact("int", PLAN, "synapses_per_chip")
    core_memory: CoreMemory = field(metadata={"nested": True})
    axons_in_per_core_max: Fact = _fact("int", PLAN, "neurons_per_core")
    axons_out_per_core_max: Fact = _fact("int", PLAN, "neurons_per_core")


LIF_KEYS = ("uv_bits", "decay_bits", "ds_offset", "dm_offset", "act_shift", "vth_bits", "vth_shift",
            "bias_mant_bits", "bias_exp_bits")


@dataclass(frozen=True)
class Numerics:
    weight_bits_max: Fact = _fact("int", PLAN, "bits")
    weight_sign_modes: Fact = _fact("str_list")
    weight_exp_range: Fact = _fact("int_pair", None, "exponent")
    graded_payload_bits: Fact = _fact("int", PLAN, "bits")
    binary_spike_bits: Fact = _fact("int", PLAN, "bits")
    lif: Fact = _fact("int_map", PLAN, "bit_field", keys=LIF_KEYS)
    delay_steps_max: Fact = _fact("int", None, "delay_steps")
    dense_delay_steps: Fact = _fact("int", PLAN, "steps")


@dataclass(frozen=True)
class Timing:
    timestep_us_typical: Fact = _fact("num", PLAN, "step_us")
    sync_us_per_step: Fact = _fact("num", HARDWARE, "sync_us")
    sync_us_per_step_multichip: Fact = _fact("num", HARDWARE, "sync_us")
    synops_per_s_per_core: Fact = _fact("num", HARDWARE, "rate_per_core")
    neuron_updates_per_s_per_core: Fact = _fact("num", HARDWARE, "rate_per_core")


@dataclass(frozen=True)
class Energy:
    e_synop_pj: Fact = _fact("num", HARDWARE, "energy_pj")
    e_neuron_update_pj: Fact = _fact("num", HARDWARE, "energy_pj")
    e_spike_pj: Fact = _fact("num", HARDWARE, "energy_pj")
    e_hop_pj: Fact = _fact("num", HARDWARE, "energy_pj")
    static_w_per_chip: Fact = _fact("num", HARDWARE, "power_w")
    max_w_per_chip: Fact = _fact("num", None, "power_w")


@dataclass(frozen=True)
class Host:
    e_fp32_add_pj: Fact = _fact("num", PLAN, "energy_pj")
    e_fp32_mult_pj: Fact = _fact("num", PLAN, "energy_pj")
    e_mac_pj: Fact = _fact("num", PLAN, "energy_pj")
    e_ac_pj: Fact = _fact("num", PLAN, "energy_pj")
    e_fp32_div_pj: Fact = _fact("num", PLAN, "energy_pj")
    e_fp32_exp_pj: Fact = _fact("num", PLAN, "energy_pj")
    e_fp32_sqrt_pj: Fact = _fact("num", PLAN, "energy_pj")
    e_fp32_sigmoid_pj: Fact = _fact("num", PLAN, "energy_pj")
    e_fp32_compare_pj: Fact = _fact("num", PLAN, "energy_pj")
    e_convert_pj: Fact = _fact("num", PLAN, "energy_pj")
    e_sram64_8kb_pj: Fact = _fact("num", None, "energy_pj")


@dataclass(frozen=True)
class System:
    name: Fact = _fact("str", PLAN)
    chips: Fact = _fact("int", HARDWARE, "chips")
    cores_total: Fact = _fact("int", HARDWARE, "cores")
    neurons_max: Fact = _fact("int", None, "neurons")
    synapses_max: Fact = _fact("int", None, "synapses")
    host_link: Fact = _fact("str")
    host_io_bytes_per_s: Fact = _fact("num", HARDWARE, "bytes_per_s")
    host_roundtrip_ms: Fact = _fact("num", PLAN, "roundtrip_ms")
    e_host_io_pj_per_byte: Fact = _fact("num", HARDWARE, "energy_pj")
    inter_chip_bytes_per_s_per_chip: Fact = _fact("num", None, "bytes_per_s")
    max_power_w: Fact = _fact("num", None, "power_w")
    lava_loihi_gen: Fact = _fact("str")
    lava_partition: Fact = _fact("str")
    static_power_w: Optional[Fact] = _fact("num", None, "power_w", optional=True)
    embedded_x86: Optional[Fact] = _fact("int", None, "cores", optional=True)
    memory_bw_bytes_per_s: Optional[Fact] = _fact("num", None, "bytes_per_s", optional=True)
    inter_core_bytes_per_s: Optional[Fact] = _fact("num", None, "bytes_per_s", optional=True)
    inter_chip_bytes_per_s: Optional[Fact] = _fact("num", None, "bytes_per_s", optional=True)
    synops_per_s: Optional[Fact] = _fact("num", None, "rate", optional=True)
    neuron_ops_per_s: Optional[Fact] = _fact("num", None, "rate", optional=True)
    tops_per_w_8bit: Optional[Fact] = _fact("num", None, "tops_per_w", optional=True)
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
