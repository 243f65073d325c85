"""The Loihi 2 host a run or a bundle targets, and the loihi2 backend's options (Lava-free).

Checked before any work (no Lava needed): exactly one host, given as a SLURM partition
(`--partition`), a SLURM board, i.e. node name (`--board`), or an Ethernet host
(`--ethernet-host`, Kapoho Point without SLURM); names as SLURM and DNS spell them; the
chip generation (`--loihi-gen`, Lava's `ChipGeneration` without Loihi 1's N2A2); the LIF
placement. `spike2loihi.backends.loihi2` (the backend) and `spike2loihi.lava.hw` (the
Lava side) both read these; neither imports the other for them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional

from spike2loihi.errors import HostSelectionError, Loihi2Error, Loihi2SoftwareMissing

__all__ = ["LOIHI_GENS", "DEFAULT_LOIHI_GEN", "LIF_PLACEMENTS", "DEFAULT_LIF_PLACEMENT", "HostSelection",
           "Loihi2Options", "host_selection", "missing_lava_loihi_error", "notes", "HostSelectionError",
           "Loihi2Error", "Loihi2SoftwareMissing"]

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


def missing_lava_loihi_error(modules: List[str]) -> Loihi2SoftwareMissing:
    return Loihi2SoftwareMissing(
        "the loihi2 backend needs Intel's lava-loihi extension (Lava's Loihi 2 compiler, runtime and "
        f"embedded-IO adapters), which is not installed here (cannot find {', '.join(modules)}); {INRC_HOWTO}")


def _lif_placement_note(lif_placement: str) -> str:
    if lif_placement == "host":
        return (f"{TOKEN_LIF_NOTE}, so the LIF populations run as Python processes on the host and every "
                "Dense/Sparse layer on the chip")
    return f"{TOKEN_LIF_NOTE}; --lif-placement chip needs one registered as spike2loihi.lava.hw.TOKEN_LIF_NC_MODEL"


STOCK_LIF_NOTE = ("the LIF populations are Lava's own LIF (converted with --lif stock) and run on the chip with "
                  "every Dense/Sparse layer; --lif-placement does not apply")


def notes(lif_placement: str, stock: bool = False) -> str:
    """The caveats every loihi2 run prints (stderr) and every bundle repeats."""
    return f"loihi2: {NOT_RUN_NOTE}; {STOCK_LIF_NOTE if stock else _lif_placement_note(lif_placement)}"


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
