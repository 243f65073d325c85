"""`spike2loihi profile`: does a converted model fit a Loihi 2 system, and what does a token cost there?

Registered on the `spike2loihi` group by one line at the end of spike2loihi/cli/app.py.
Follows the rules of spike2loihi.cli.rules: outputs checked before any work and
written all or nothing, one-line errors, progress on stderr, heavy imports
inside the command.

Exit codes: 0 when the model fits (or the profile is the simulator); 1 when it
does not fit the system (the plan and every violation are printed first, no
file is written); 2 for bad input.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from spike2loihi.cli.inputs import _explicit, read_model_tokens
from spike2loihi.cli.interrupts import begin_work
from spike2loihi.cli.netx import is_netx, netx_options, profile_netx, refuse_options
from spike2loihi.backends.loihi2 import DEFAULT_LIF_PLACEMENT
from spike2loihi.cli.params import Int
from spike2loihi.cli.progress import Progress
from spike2loihi.cli.rules import OUTPUT_PATH, OutputSet, check_output_paths, warn
from spike2loihi.errors import DoesNotFit, Spike2LoihiError
from spike2loihi.fileio import json_default
from spike2loihi.inputs import check_input_file

ACTIVITY_BACKENDS = ("emulator", "lava-sim")


@click.command("profile")
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option("--hw", "hw", required=True, metavar="NAME|FILE",
              help="Hardware profile: oheo_gulch, kapoho_point, hala_point, simulator, or a profile .yaml file.")
@click.option("--text", type=click.Path(path_type=Path),
              help="Run this text (model's tokenizer) through the model and report measured activity, traffic, "
                   "tokens/s and energy per token.")
@click.option("--tokens-file", type=click.Path(path_type=Path),
              help="As --text, with token ids separated by whitespace or commas.")
@click.option("--backend", type=click.Choice(ACTIVITY_BACKENDS), default="emulator", show_default=True,
              help="Where the activity run counts: the bit-exact emulator, or the Lava process graph in Lava's "
                   "CPU simulator (slower; its counts are identical, tested).")
@click.option("--max-tokens", type=Int(min=1), help="Use at most this many tokens of --text/--tokens-file.")
@click.option("--compare", "compare_paths", type=click.Path(path_type=Path), metavar="OTHER.s2l", multiple=True,
              help="Another converted model of the same checkpoint (typically another --placement; repeat it for "
                   "more): print them side by side (round trips, bytes and steps per token, cores; with --text, "
                   "tokens/s and energy per token on each system), beside the published Loihi 2 LM figures.")
@click.option("--plot", type=OUTPUT_PATH,
              help="Write a PNG: cores per group (and with --text: firing rates and energy breakdowns).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (plan, profile, activity report).")
@netx_options
@click.pass_context
def profile(ctx, model_path, hw, text, tokens_file, backend, max_tokens, compare_paths, plot, as_json, skip_layers,
            reset_interval, reset_offset, input_message_bits):
    """Map a converted model (.s2l) onto a Loihi 2 system: neurocores per layer under the
    dense-packing ceiling and the realistic SynMem bound, chips per system, every violation
    when it does not fit (exit 1). With --text or --tokens-file, also run it and report per
    token: measured firing rates, synaptic ops, neuron updates, host float ops by kind,
    host<->chip crossings, messages and bytes, time steps; estimated tokens/s and energy per
    token on each system; the dense float and SpikeGPT-method baselines. Figures are
    marked [P] published, [M] measured here or [E] estimate. A lava-dl netx network (NET.net):
    its cores and chips on every packaged system."""
    check_input_file(model_path)
    if is_netx(model_path):
        refuse_options(ctx, ("text", "tokens_file", "max_tokens", "compare_paths", "plot"))
        return profile_netx(model_path, hw, skip_layers, as_json)
    if text is not None and tokens_file is not None:
        raise Spike2LoihiError("give at most one of --text and --tokens-file")
    paths = check_output_paths({"--plot": plot}, inputs={"MODEL": model_path, "--text": text,
                                                         "--tokens-file": tokens_file,
                                                         **{f"--compare {c}": c for c in compare_paths}})
    running = text is not None or tokens_file is not None
    if not running:
        for name, opt in (("backend", "--backend"), ("max_tokens", "--max-tokens")):
            if _explicit(ctx, name):
                warn(f"{opt} has no effect without --text or --tokens-file (no activity run)")
    from spike2loihi.hardware import activity, activity_report, energy, plan_report, profiles as hardware, planner
    from spike2loihi.convert import artifact, ir

    if running:
        activity.check_backend(backend)  # before any work
    prof = hardware.load_profile(hw)
    systems = planner.packaged_profiles()
    check_input_file(model_path)   # a named pipe or a device is refused unread
    if not artifact.is_artifact(model_path):
        if not Path(model_path).exists():
            raise Spike2LoihiError(f"{model_path}: no such file")
        raise Spike2LoihiError(f"{model_path}: not a converted .s2l model; profile maps a converted model: run "
                               f"`spike2loihi convert {model_path} -o MODEL.s2l` first")
    model = artifact.load(model_path)
    if running and backend == "lava-sim":
        activity.check_lava_counts(model)   # before any work
    name = Path(model_path).name
    plan = planner.plan_model(model, prof, systems, name)
    others = []
    for compare_path in compare_paths:
        check_input_file(compare_path, "--compare")
        if not artifact.is_artifact(compare_path):
            raise Spike2LoihiError(f"--compare {compare_path}: not a converted .s2l model")
        other = artifact.load(compare_path)
        others.append((compare_path, other))
        if other.config != model.config:
            raise Spike2LoihiError(f"--compare {compare_path}: a different model shape than {model_path} "
                                   f"({other.config.get('n_layer')} x {other.config.get('n_embd')} vs "
                                   f"{model.config.get('n_layer')} x {model.config.get('n_embd')})")
    ids = read_model_tokens(model, model_path, text, tokens_file, max_tokens) if running and plan.fits else None
    out = {"plan": plan.to_dict(), "hardware_profile": prof.to_dict(), "activity": None,
           "placement": ir.placement_of(model.graph), "host_round_trips_per_token": plan.host_round_trips}
    if not plan.fits:
        _print(as_json, out, plan_report.render_text(plan), None)
        if running:
            warn("no activity run: the model does not fit this system")
        if paths:
            warn("--plot not written: the model does not fit this system")
        n = len(plan.violations)
        raise DoesNotFit(f"{name} does not fit {plan.system}: {n} violation{'s' if n != 1 else ''} (listed above)")
    report = None
    if running:
        begin_work()
        with Progress(f"activity ({backend})", total=len(ids), unit="tokens") as bar:
            counts = activity.count_activity(model, ids, backend, progress=bar)
        profs = {prof.name: prof}
        for p in systems:
            profs.setdefault(p.name, p)
        plans = {n_: (plan if n_ == prof.name else planner.plan_model(model, p)) for n_, p in profs.items()}
        src = f"{text or tokens_file}"
        report = energy.build_report(model, counts, plans, profs, name, src, plan)
        out["activity"] = report.to_dict()
    comparison = compare_cols = None
    if others:
        cols = [activity_report.placement_column(model, name, plan, report)]
        for compare_path, other in others:
            oname = Path(compare_path).name
            oplan = planner.plan_model(other, prof, systems, oname)
            oreport = None
            if running:
                with Progress(f"activity ({backend}, --compare {oname})", total=len(ids), unit="tokens") as bar:
                    ocounts = activity.count_activity(other, ids, backend, progress=bar)
                oplans = {n_: planner.plan_model(other, p) for n_, p in profs.items()}
                oreport = energy.build_report(other, ocounts, oplans, profs, oname, src, oplan)
            cols.append(activity_report.placement_column(other, oname, oplan, oreport))
        comparison = activity_report.render_comparison(cols, plan.system)
        compare_cols = cols
        out["comparison"] = [c.to_dict() for c in cols]
        out["published_lm"] = energy.PUBLISHED_LM
    if paths:
        with OutputSet(paths) as outs:
            with outs.open("--plot") as f:
                activity_report.render_png(f, report, plan, title=f"{name} on {plan.system}", comparison=compare_cols)
    rows = _inventory(model)
    out["processes"] = [r.to_dict() for r in rows] if rows is not None else None
    _print(as_json, out, plan_report.render_text(plan),
           activity_report.render_text(report) if report is not None else None)
    if rows is not None and not as_json:
        from spike2loihi.lava.inventory import render

        click.echo("")
        board = ir.placement_of(model.graph) == ir.HOST
        click.echo((f"Lava processes on a board (LIFs on the {DEFAULT_LIF_PLACEMENT}, as `deploy` builds it by default)"
                    if board else "Lava processes of the graph (the simulator's; a board graph is built for "
                    "--placement host models)") + ": neurocore model publicly known (lava-loihi), microcode or "
                   "unknown; every source: --json, docs/PROCESS_SOURCES.md")
        click.echo(render(rows))
    if comparison is not None and not as_json:
        click.echo("")
        click.echo(comparison)
    if paths:
        click.echo(f"wrote {paths['--plot']}", err=True)


def _inventory(model):
    """The board graph's process inventory (the placements the Lava builder supports on a board), or None."""
    from spike2loihi.convert import ir
    from spike2loihi.lava.inventory import inventory

    board = ir.placement_of(model.graph) == ir.HOST   # the Loihi 2 graph is built for host-placement models
    return inventory(model, lif_where=DEFAULT_LIF_PLACEMENT, board=board)


def _print(as_json: bool, out: dict, plan_text: str, activity_text) -> None:
    if as_json:
        click.echo(json.dumps(out, indent=1, default=json_default))
        return
    click.echo(plan_text)
    if activity_text:
        click.echo("")
        click.echo(activity_text)


