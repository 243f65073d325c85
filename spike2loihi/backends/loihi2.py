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

from typing import Callable, List, Optional

from spike2loihi.backends.loihi2_host import (DEFAULT_LIF_PLACEMENT, DEFAULT_LOIHI_GEN, INRC_HOWTO,  # noqa: F401
                                              LIF_PLACEMENTS, LOIHI_GENS, NOT_RUN_NOTE, TOKEN_LIF_NOTE,
                                              VIA_ETHERNET, VIA_SLURM, HostSelection, Loihi2Options,
                                              host_selection, missing_lava_loihi_error, notes)
from spike2loihi.errors import HostSelectionError, Loihi2Error, Loihi2SoftwareMissing  # noqa: F401


# ---------------------------------------------------------------------------
# Before any work
# ---------------------------------------------------------------------------
def check_lif_placement(lif_placement: str, stock: bool = False) -> None:
    """One line unless `lif_placement` can be built. `stock`: a `--lif stock` model, whose LIFs are Lava's own
    LIF on the chip whatever --lif-placement says (it applies to token-gated LIFs only)."""
    from spike2loihi.lava import hw

    if lif_placement not in LIF_PLACEMENTS:
        raise Loihi2Error(f"--lif-placement {lif_placement!r}: expected one of {', '.join(LIF_PLACEMENTS)}")
    if lif_placement == "chip" and hw.TOKEN_LIF_NC_MODEL is None and not stock:
        raise Loihi2Error(f"--lif-placement chip: {TOKEN_LIF_NOTE} (none is registered as "
                          "spike2loihi.lava.hw.TOKEN_LIF_NC_MODEL); use --lif-placement host, which runs the LIFs "
                          "as Python processes on the host and every Dense/Sparse on the chip")


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
            self.config = ModelConfig(**model.config)
            self.semantics = model.semantics
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
