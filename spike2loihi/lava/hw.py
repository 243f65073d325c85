"""The converted model's Lava graph for a Loihi 2 board (`Loihi2HwCfg`), up to the lava-loihi boundary.

NOTHING HERE HAS RUN ON A BOARD: no Loihi is reachable from this project and
lava-loihi (Lava's Loihi compiler, runtime and embedded-IO adapters) is
distributed to INRC members only. What is tested without it: the detection and
its message, the host-selection calls into `lava.utils.loihi`, and the wiring
(with stand-in adapter classes; the whole graph also runs in Lava's CPU runtime
under `Loihi2HwCfg` with pass-through stand-ins and equals the emulator). Found
on the way: without lava-loihi, `Loihi2HwCfg` cannot choose among several
models of one Process (lava-nc 0.10.0's `run_configs.py` then names
`CLoihiProcessModel`, which only lava-loihi defines: NameError), so the
stand-in run names the bit-accurate Dense/Sparse models explicitly.

* `lava_loihi_missing()`: the lava-loihi modules that cannot be found, tested as
  Lava does: `lava.utils.loihi.is_installed()` looks for
  `lava.utils.loihi2_profiler`; Lava's compiler and run configs import
  `lava.magma.core.model.nc.model` (neurocore ProcessModels) inside
  try/except; `lava.networks.gradedvecnetwork` takes the adapters from
  `lava.proc.embedded_io`. All three ship only in lava-loihi. Nothing is imported.
* `select_host(host)`: an Ethernet host through `lava.utils.loihi.use_ethernet_host(
  host_address, loihi_gen=)` (pings the host; sets NOSLURM=1, NXSDKHOST,
  HOST_BINARY, LOIHI_GEN). SLURM through `use_slurm_host(loihi_gen=)` (checks
  lava-loihi and `sinfo`; sets SLURM=1, LOIHI_GEN), then the partition or board
  as `lava.utils.slurm.set_partition` / `set_board` set it (PARTITION / BOARD),
  after our own check against `sinfo`: lava-nc 0.10.0's check raises IndexError
  on the empty last line of `sinfo`'s output (lava-nc/lava issue #753, open)
  and refuses a partition whose first listed nodes are down although others
  are up (#754, open); ours skips empty lines, accepts the default partition's
  `*` mark, and wants one node of the partition not down. Every refusal is one line.
* `build_hw(...)`: `spike2loihi.lava.build.build` with a `connect` that puts
  one `lava.proc.embedded_io.spike.PyToNxAdapter` on every host->chip edge
  (graded payloads into Dense/Sparse, the ffn LIF's graded input, token gates)
  and one `NxToPyAdapter` on every chip->host edge (Dense accumulations, LIF
  spikes); edges within a side are connected directly. Graded payloads cross
  with the artifact's bit widths (input bits in, `output_bits` = 24 out);
  spikes and gates as binary events (`num_message_bits=0`, Lava's convention
  for unary spikes). Every crossing is recorded as a `Boundary`.
* `TokenLIF` has NO neurocore model: its token gate needs a microcoded Loihi 2
  neuron, which neither lava-nc nor this toolchain provides. So by default
  (`lif_placement="host"`) the LIF populations run as Python processes on the
  host (`PyTokenLifModel`, bit-exact, the emulator's LIF) and every Dense /
  Sparse runs on the chip; `lif_placement="chip"` builds the planned all-chip
  graph and needs a neurocore model registered in `TOKEN_LIF_NC_MODEL`.
* `Loihi2Target`: what `spike2loihi.lava.runtime.run_graph(target=...)`
  needs: `build` and `run_config` (`Loihi2HwCfg` with the host blocks, and the
  LIFs, named in `exception_proc_model_map`; no `select_tag`, so that Lava
  prefers neurocore models, then embedded C, then Python).

Unverified until the bundle (`spike2loihi deploy`) runs on a board: whether
lava-loihi compiles this graph, whether the adapters add time steps of latency
(the schedule assumes they add none; a divergence at the first token would
show it), the adapters' bit widths, and the speed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from spike2loihi.lava.available import (HARDWARE_MODULES, LAVA_LOIHI_MODULES, lava_loihi_missing,  # noqa: F401
                                        lava_problem)

HOST, CHIP = "host", "chip"
TO_CHIP, TO_HOST = "host->chip", "chip->host"
DEFAULT_OUTPUT_BITS = 24   # graded payload Lava uses (LOIHI2.md, section 1)

# A neurocore (microcoded) ProcessModel for spike2loihi.lava.procs.processes.TokenLIF, if someone writes one.
# None exists: with lif_placement="chip" the run stops before any work while this is None.
TOKEN_LIF_NC_MODEL: Optional[type] = None


def lava_nc_problem() -> Optional[str]:
    """None when lava-nc imports (with the host-selection helpers), else the first line of why not."""
    return lava_problem(HARDWARE_MODULES)


# ---------------------------------------------------------------------------
# Host selection
# ---------------------------------------------------------------------------
def select_host(host) -> None:
    """Point Lava at a Loihi 2 host (a `spike2loihi.backends.loihi2.HostSelection`) through
    `lava.utils.loihi`; any refusal is one line naming the option."""
    import subprocess

    from lava.utils import loihi

    from spike2loihi.backends.loihi2_host import HostSelectionError, missing_lava_loihi_error
    from spike2loihi.errors import one_line

    gen = loihi.ChipGeneration[host.loihi_gen]
    try:
        if host.via == "ethernet":
            loihi.use_ethernet_host(host.ethernet_host, loihi_gen=gen)
        else:
            loihi.use_slurm_host(partition=None, board=None, loihi_gen=gen)
            _set_slurm_target(host)
    except ImportError:   # lava.utils.loihi's own lava-loihi check
        raise missing_lava_loihi_error([LAVA_LOIHI_MODULES[0][0]]) from None
    except FileNotFoundError as exc:   # sinfo or ping is not on this machine
        tool = exc.filename or "a tool"
        raise HostSelectionError(f"{host.option}: Lava cannot select this host: `{tool}` is not installed here "
                                 f"({'SLURM' if tool == 'sinfo' else 'ping'} is needed"
                                 f"{'; run on an INRC host' if tool == 'sinfo' else ''})") from None
    except (ValueError, OSError, subprocess.SubprocessError) as exc:
        raise HostSelectionError(f"{host.option}: Lava cannot select this host: {one_line(exc)}") from None


def _sinfo_rows(args: List[str]) -> List[List[str]]:
    """`sinfo` output (through Lava's own runner) as split rows, header and empty lines left out."""
    from lava.utils import slurm

    return [line.split() for line in slurm.try_run_command(["sinfo", *args])[1:] if line.split()]


def _set_slurm_target(host) -> None:
    """PARTITION or BOARD, as lava.utils.slurm.set_partition / set_board set them, checked against
    `sinfo` without lava-nc issues #753 and #754 (see the module docstring)."""
    import os

    from spike2loihi.backends.loihi2_host import HostSelectionError

    if host.board is not None:   # sinfo -N: NODELIST NODES PARTITION STATE
        rows = [r for r in _sinfo_rows(["-N"]) if len(r) >= 4 and r[0] == host.board]
        if not rows or all("down" in r[3] for r in rows):
            raise HostSelectionError(f"{host.option}: no such board in `sinfo -N`, or it is down "
                                     f"({'not listed' if not rows else 'state ' + rows[0][3]}); run sinfo -N to see "
                                     "the boards")
        os.environ["BOARD"] = host.board
    else:                        # sinfo: PARTITION AVAIL TIMELIMIT NODES STATE NODELIST ('*': the default)
        rows = [r for r in _sinfo_rows([]) if r[0].rstrip("*") == host.partition]
        states = sorted({r[4] if len(r) > 4 else "" for r in rows})
        if not rows or all("down" in s for s in states):
            raise HostSelectionError(f"{host.option}: no such partition in `sinfo`, or all its nodes are down "
                                     f"({'not listed' if not rows else 'states ' + ', '.join(states)}); run sinfo "
                                     "to see the partitions")
        os.environ["PARTITION"] = host.partition


# ---------------------------------------------------------------------------
# The hardware graph
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Boundary:
    """One host/chip crossing of the hardware graph, through one embedded-IO adapter."""

    direction: str          # TO_CHIP | TO_HOST
    src: str                # "<Lava process name>.<port>"
    dst: str
    adapter: str            # the adapter's class name (PyToNxAdapter / NxToPyAdapter)
    adapter_process: str    # the adapter's Lava process name
    width: int
    num_message_bits: int   # 0: binary spike events

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def adapter_classes():
    """(PyToNxAdapter, NxToPyAdapter) from lava-loihi, imported the way Lava's own code does."""
    from lava.proc import embedded_io as eio

    return eio.spike.PyToNxAdapter, eio.spike.NxToPyAdapter


def build_hw(model, records, run_args: dict, lif_placement: str = HOST):
    """The converted model's Lava graph for Loihi 2: adapters on every host/chip edge (a LavaGraph
    whose `boundaries` list them and whose `procs` include the adapters as `adapter:<n>`)."""
    from lava.proc.dense.process import Dense
    from lava.proc.graded.process import GradedVec
    from lava.proc.lif.process import LIF
    from lava.proc.sparse.process import Sparse

    from spike2loihi.backends.loihi2_host import LIF_PLACEMENTS
    from spike2loihi.lava.build import build
    from spike2loihi.lava.lowering import READOUT_SUFFIX, readout
    from spike2loihi.lava.plans import chip_groups
    from spike2loihi.lava.procs.processes import TokenLIF

    if lif_placement not in LIF_PLACEMENTS:
        raise ValueError(f"lif_placement {lif_placement!r}: expected one of {LIF_PLACEMENTS}")
    py_to_nx, nx_to_py = adapter_classes()
    members = chip_groups(model)

    def side(proc) -> str:
        if isinstance(proc, (Dense, Sparse, GradedVec)):
            return CHIP
        if isinstance(proc, TokenLIF):
            return lif_placement
        if isinstance(proc, LIF):   # Lava's own LIF (`--lif stock`): a neurocore model exists
            return CHIP
        return HOST

    def bits_into(proc, port) -> int:
        if port.name == "gate":
            return 0
        spec = getattr(model.nodes[members[proc.name][0]], "input", None)
        return int(spec.bits) if spec is not None else DEFAULT_OUTPUT_BITS

    def bits_out_of(proc, port) -> int:
        if isinstance(proc, LIF):
            return 0   # spikes
        unit = proc.name[:-len(READOUT_SUFFIX)] if proc.name.endswith(READOUT_SUFFIX) else proc.name
        return max(int(getattr(model.nodes[m], "output_bits", None) or DEFAULT_OUTPUT_BITS) for m in members[unit])

    boundaries: List[Boundary] = []
    adapters: List[object] = []
    readouts: List[object] = []   # for an accumulation that crosses to a host process (Wo -> a LIF on the host)

    def connect(src, dst) -> None:
        a, b = side(src.process), side(dst.process)
        if a == b:
            src.connect(dst)
            return
        if a == CHIP and isinstance(src.process, (Dense, Sparse)):   # an accumulation leaves through a neuron
            gv = readout(src.process.name, int(src.shape[0]))
            src.connect(gv.a_in)
            readouts.append(gv)
            src = gv.s_out
        width = int(src.shape[0])
        if a == HOST:
            cls, bits, direction = py_to_nx, bits_into(dst.process, dst), TO_CHIP
        else:
            cls, bits, direction = nx_to_py, bits_out_of(src.process, src), TO_HOST
        name = f"adapter{len(adapters)}_{direction.replace('->', '_to_')}"
        adapter = cls(shape=(width,), num_message_bits=bits, name=name)
        src.connect(adapter.inp)
        adapter.out.connect(dst)
        adapters.append(adapter)
        boundaries.append(Boundary(direction, f"{src.process.name}.{src.name}", f"{dst.process.name}.{dst.name}",
                                   cls.__name__, name, width, bits))

    graph = build(model, records, run_args, connect=connect)
    for adapter in adapters:
        graph.procs[f"adapter:{adapter.name}"] = adapter
    for gv in readouts:
        graph.procs[gv.name] = gv
    for proc in list(graph.procs.values()):
        if isinstance(proc, TokenLIF):
            if lif_placement == CHIP:
                graph.model_map.pop(proc, None)
                if TOKEN_LIF_NC_MODEL is not None:
                    graph.model_map[proc] = TOKEN_LIF_NC_MODEL
    graph.boundaries = tuple(boundaries)
    return graph


@dataclass(frozen=True)
class Loihi2Target:
    """`run_graph(target=...)` for a Loihi 2 board: `build_hw`, and `Loihi2HwCfg` with no `select_tag`
    (Lava then prefers neurocore models, then embedded C, then Python) and the host processes named
    in `exception_proc_model_map`."""

    lif_placement: str = HOST

    def build(self, model, records, run_args):
        return build_hw(model, records, run_args, self.lif_placement)

    def run_config(self, graph):
        from lava.magma.core.run_configs import Loihi2HwCfg

        return Loihi2HwCfg(exception_proc_model_map=graph.model_map)
