"""The `loihi2` backend: a converted model's Lava graph on a Loihi 2 board, through Intel's lava-loihi.

NOTHING IN SPIKE2LOIHI HAS RUN ON A LOIHI BOARD. No board is reachable from this
project, and lava-loihi (Lava's Loihi compiler, runtime and embedded-IO adapters)
is distributed to INRC members only. The graph is `spike2loihi.lava.hw.build_hw`:
the lava-sim graph with an embedded-IO adapter on every host/chip edge, run with
`Loihi2HwCfg`. `TokenLIF` (the token-gated LIF) has no neurocore model: on a board
it needs a microcoded neuron, so by default the LIF populations run as Python
processes on the host (`--lif-placement host`, exact) and the Dense/Sparse
layers on the chip; `--lif-placement chip` is the planned all-chip graph and
needs a neurocore TokenLIF model (`spike2loihi.lava.hw.TOKEN_LIF_NC_MODEL`).

This module imports no Lava (spike2loihi.lava.hw does the Lava work), so that
`prepare(options)` can refuse before anything is loaded, in this order:

1. the options (`host_selection`): exactly one host, given as a SLURM partition
   (`--partition`), a SLURM board, i.e. node name (`--board`), or an Ethernet
   host (`--ethernet-host`, Kapoho Point without SLURM); names as SLURM and DNS
   spell them; the chip generation (`--loihi-gen`, Lava's `ChipGeneration`
   without Loihi 1's N2A2); the LIF placement;
2. lava-nc imports (CPython 3.10);
3. lava-loihi is installed (`spike2loihi.lava.hw.lava_loihi_missing`);
4. the host, selected through `lava.utils.loihi` (`use_slurm_host` /
   `use_ethernet_host`, which check the partition or board against `sinfo`, or
   ping the host).

Exit codes of its errors: 2 for bad options or a host Lava refuses, 3 when
lava-nc or lava-loihi is missing (`Loihi2SoftwareMissing`), so that a batch job
tells "not set up" from "bad input".
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, List, Optional

from spike2loihi.backends import BackendError

LOIHI_GENS = ("N3B2", "N3B3", "N3C1", "N3D1")   # lava.utils.loihi.ChipGeneration, Loihi 2 only
DEFAULT_LOIHI_GEN = "N3B3"                      # Lava's default: "most Loihi 2 systems available to the INRC"
LIF_PLACEMENTS = ("host", "chip")
DEFAULT_LIF_PLACEMENT = "host"
VIA_SLURM, VIA_ETHERNET = "slurm", "ethernet"

# SLURM partition and node names as INRC's systems spell them (e.g. oheogulch, kp, kp_stack, ncl-ext-og-01):
# letters, digits, '_', '-', '.', starting with a letter or digit. Strict, because the names also go
# into the deploy bundle's batch script.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# A DNS name or an IPv4 / IPv6 address.
HOST_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?|[0-9A-Fa-f:.]{2,45}")

TOKEN_LIF_NOTE = ("TokenLIF, the token-gated LIF, has no neurocore model: on a board it needs a microcoded "
                  "neuron, which neither lava-nc nor spike2loihi provides")
NOT_RUN_NOTE = "nothing in spike2loihi has run on a Loihi board yet"
INRC_HOWTO = ("lava-loihi is distributed to INRC members only: join the INRC (http://neuromorphic.intel.com, "
              "inrc_interest@intel.com), then install it as INRC's page 'Get started with the Lava extension for "
              "Loihi' says")


class Loihi2Error(BackendError):
    """The loihi2 backend cannot run (bad options, or a host Lava refuses)."""


class HostSelectionError(Loihi2Error):
    """The host options are missing, conflicting or malformed, or Lava refused the host."""


class Loihi2SoftwareMissing(Loihi2Error):
    """lava-nc or lava-loihi is not installed."""

    exit_code = 3


def missing_lava_loihi_error(modules: List[str]) -> Loihi2SoftwareMissing:
    return Loihi2SoftwareMissing(
        "the loihi2 backend needs Intel's lava-loihi extension (Lava's Loihi 2 compiler, runtime and "
        f"embedded-IO adapters), which is not installed here (cannot find {', '.join(modules)}); {INRC_HOWTO}")


def _lif_placement_note(lif_placement: str) -> str:
    if lif_placement == "host":
        return (f"{TOKEN_LIF_NOTE}, so the LIF populations run as Python processes on the host and every "
                "Dense/Sparse layer on the chip")
    return f"{TOKEN_LIF_NOTE}; --lif-placement chip needs one registered as spike2loihi.lava.hw.TOKEN_LIF_NC_MODEL"


def notes(lif_placement: str) -> str:
    """The caveats every loihi2 run prints (stderr) and every bundle repeats."""
    return f"loihi2: {NOT_RUN_NOTE}; {_lif_placement_note(lif_placement)}"


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class HostSelection:
    """Where Lava runs the graph: a SLURM partition or board (INRC), or an Ethernet host."""

    via: str                               # VIA_SLURM | VIA_ETHERNET
    partition: Optional[str] = None
    board: Optional[str] = None
    ethernet_host: Optional[str] = None
    loihi_gen: str = DEFAULT_LOIHI_GEN

    @property
    def option(self) -> str:
        """The option that chose the host, as typed: `--partition kp`."""
        if self.via == VIA_ETHERNET:
            return f"--ethernet-host {self.ethernet_host}"
        return f"--board {self.board}" if self.board else f"--partition {self.partition}"

    def describe(self) -> str:
        if self.via == VIA_ETHERNET:
            return f"Ethernet host {self.ethernet_host} ({self.loihi_gen})"
        where = f"board {self.board}" if self.board else f"partition {self.partition}"
        return f"SLURM {where} ({self.loihi_gen})"

    def to_dict(self) -> dict:
        return {"via": self.via, "partition": self.partition, "board": self.board,
                "ethernet_host": self.ethernet_host, "loihi_gen": self.loihi_gen}

    @classmethod
    def from_dict(cls, d: dict) -> "HostSelection":
        return host_selection(d.get("partition"), d.get("board"), d.get("ethernet_host"),
                              d.get("loihi_gen") or DEFAULT_LOIHI_GEN)


def _check_name(option: str, value: str, pattern: re.Pattern, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise HostSelectionError(f"{option} {value!r}: not a valid {what}")
    return value


def host_selection(partition: Optional[str] = None, board: Optional[str] = None,
                   ethernet_host: Optional[str] = None, loihi_gen: str = DEFAULT_LOIHI_GEN) -> HostSelection:
    """The host options checked (no Lava needed): exactly one of partition, board, Ethernet host."""
    given = [f"--{n}" for n, v in (("partition", partition), ("board", board), ("ethernet-host", ethernet_host))
             if v is not None]
    if not given:
        raise HostSelectionError("no Loihi 2 host given: pass --partition P or --board B (an INRC SLURM "
                                 "partition or board; `sinfo` lists them) or --ethernet-host H")
    if len(given) > 1:
        why = ("Lava selects a board or a partition, not both" if "--ethernet-host" not in given
               else "an Ethernet host is used without SLURM")
        raise HostSelectionError(f"give one of {' and '.join(given)}: {why}")
    if loihi_gen not in LOIHI_GENS:
        raise HostSelectionError(f"--loihi-gen {loihi_gen!r}: expected one of {', '.join(LOIHI_GENS)} "
                                 "(Lava's Loihi 2 chip generations)")
    if ethernet_host is not None:
        return HostSelection(VIA_ETHERNET, ethernet_host=_check_name(
            "--ethernet-host", ethernet_host, HOST_RE, "host name or IP address"), loihi_gen=loihi_gen)
    if partition is not None:
        return HostSelection(VIA_SLURM, partition=_check_name(
            "--partition", partition, NAME_RE, "SLURM partition name (letters, digits, '_', '-', '.')"),
            loihi_gen=loihi_gen)
    return HostSelection(VIA_SLURM, board=_check_name(
        "--board", board, NAME_RE, "SLURM board (node) name (letters, digits, '_', '-', '.')"), loihi_gen=loihi_gen)


@dataclass(frozen=True)
class Loihi2Options:
    host: HostSelection
    lif_placement: str = DEFAULT_LIF_PLACEMENT

    def to_dict(self) -> dict:
        return {"host": self.host.to_dict(), "lif_placement": self.lif_placement}

    @classmethod
    def from_dict(cls, d: dict) -> "Loihi2Options":
        return cls(HostSelection.from_dict(d["host"]), d.get("lif_placement", DEFAULT_LIF_PLACEMENT))


def check_lif_placement(lif_placement: str) -> None:
    from spike2loihi.lava import hw

    if lif_placement not in LIF_PLACEMENTS:
        raise Loihi2Error(f"--lif-placement {lif_placement!r}: expected one of {', '.join(LIF_PLACEMENTS)}")
    if lif_placement == "chip" and hw.TOKEN_LIF_NC_MODEL is None:
        raise Loihi2Error(f"--lif-placement chip: {TOKEN_LIF_NOTE} (none is registered as "
                          "spike2loihi.lava.hw.TOKEN_LIF_NC_MODEL); use --lif-placement host, which runs the LIFs "
                          "as Python processes on the host and every Dense/Sparse on the chip")


# ---------------------------------------------------------------------------
# Before any work
# ---------------------------------------------------------------------------
def require_software() -> None:
    """lava-nc and lava-loihi, or one line saying what is missing and how INRC members get it."""
    import sys

    from spike2loihi.lava import hw

    problem = hw.lava_nc_problem()
    if problem is not None:
        raise Loihi2SoftwareMissing(
            f"the loihi2 backend needs lava-nc 0.10.0 on CPython 3.10 (this is Python {sys.version_info.major}."
            f"{sys.version_info.minor}) and Intel's lava-loihi: cannot import Lava ({problem}); {INRC_HOWTO}")
    missing = hw.lava_loihi_missing()
    if missing:
        raise missing_lava_loihi_error(missing)


_prepared: List[Loihi2Options] = []   # the options prepare() accepted in this process


def prepare(options: Loihi2Options) -> None:
    """Everything that can refuse a loihi2 run, before the model is loaded (see the module docstring)."""
    from spike2loihi.lava import hw

    check_lif_placement(options.lif_placement)
    require_software()
    hw.select_host(options.host)
    _prepared[:] = [options]


def ensure_prepared(options: Loihi2Options) -> None:
    if _prepared != [options]:
        prepare(options)


# ---------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------
def _backend_class():
    from spike2loihi.backends.lava_sim import LavaSimBackend

    class Loihi2Backend(LavaSimBackend):
        """`teacher_forced` / `generate` as the lava-sim backend, on a Loihi 2 board (`prepare` first)."""

        name = "loihi2"

        def __init__(self, model, options: Loihi2Options):
            from spike2loihi.lava.hw import Loihi2Target
            from spike2loihi.model.spec import ModelConfig, Semantics

            ensure_prepared(options)
            self.model = model
            self.options = options
            self.config = ModelConfig(**model.manifest["config"])
            self.semantics = Semantics(**model.manifest["semantics"])
            self.target = Loihi2Target(options.lif_placement)
            self.last = None

        def run(self, prompt: List[int], max_new_tokens: int = 0,
                progress: Optional[Callable[[str, int, int], None]] = None):
            """Greedy: the prompt teacher forced, then `max_new_tokens`; every row of logits and spikes
            (a `spike2loihi.lava.runtime.LavaResult`)."""
            from spike2loihi.lava.runtime import run_graph

            self.last = run_graph(self.model, list(prompt), max_new_tokens, True, progress=progress,
                                  target=self.target)
            return self.last

    Loihi2Backend.__module__ = __name__
    Loihi2Backend.__qualname__ = "Loihi2Backend"
    return Loihi2Backend


def __getattr__(name: str):
    """`Loihi2Backend` is built on first use: it extends LavaSimBackend, whose module imports torch,
    and this module must stay light for the checks that run before any work."""
    if name == "Loihi2Backend":
        cls = globals()["Loihi2Backend"] = _backend_class()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
