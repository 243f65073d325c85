"""The `--backend loihi2` options of `run` and `eval` (and `eval --backends loihi2`): the click
options, and their check before any work (lava-nc and lava-loihi found, the host selected).

Light: no Lava, no torch at import (spike2loihi.backends.loihi2 is Lava-free at its top level).
"""
from __future__ import annotations

import click

from spike2loihi.cli.inputs import _explicit
from spike2loihi.cli.rules import warn
from spike2loihi.backends.loihi2 import DEFAULT_LIF_PLACEMENT, LIF_PLACEMENTS, LOIHI_GENS

LOIHI2_PARAMS = (("partition", "--partition"), ("board", "--board"), ("ethernet_host", "--ethernet-host"),
                 ("loihi_gen", "--loihi-gen"), ("lif_placement", "--lif-placement"))


def loihi2_options(f):
    """The click options of `--backend loihi2` (on `run` and `eval`)."""
    opts = [
        click.option("--partition", metavar="P", help="--backend loihi2: the INRC SLURM partition to run on "
                     "(e.g. oheogulch, kp; `sinfo` lists them)."),
        click.option("--board", metavar="B", help="--backend loihi2: the SLURM board (node name) to run on."),
        click.option("--ethernet-host", metavar="H", help="--backend loihi2: a Loihi 2 host reached over Ethernet "
                     "without SLURM (Kapoho Point)."),
        click.option("--loihi-gen", type=click.Choice(LOIHI_GENS), default="N3B3", show_default=True,
                     help="--backend loihi2: the chip generation (Lava's ChipGeneration)."),
        click.option("--lif-placement", type=click.Choice(LIF_PLACEMENTS), default=DEFAULT_LIF_PLACEMENT,
                     show_default=True, help="--backend loihi2: where the token-gated LIFs run. TokenLIF has no "
                     "neurocore model (it needs a microcoded neuron), so 'host' runs them as Python processes on "
                     "the host; 'chip' needs one registered as spike2loihi.lava.hw.TOKEN_LIF_NC_MODEL."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def loihi2_preflight(ctx, wanted: bool, partition, board, ethernet_host, loihi_gen, lif_placement):
    """With `wanted` (--backend loihi2): the options checked, lava-nc and lava-loihi found and the host
    selected through lava.utils.loihi, before any work; returns the `Loihi2Options` and prints the
    caveats (nothing ran on a board; TokenLIF has no neurocore model) on stderr. Otherwise warns
    about loihi2 options given and returns None."""
    if not wanted:
        given = [opt for name, opt in LOIHI2_PARAMS if _explicit(ctx, name)]
        if given:
            warn(f"{', '.join(given)} {'has' if len(given) == 1 else 'have'} no effect without "
                 "--backend loihi2")
        return None
    from spike2loihi.backends import loihi2

    options = loihi2.Loihi2Options(loihi2.host_selection(partition, board, ethernet_host, loihi_gen), lif_placement)
    loihi2.prepare(options)
    click.echo(loihi2.notes(lif_placement), err=True)
    return options
