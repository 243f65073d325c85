"""`inspect`, `profile` and `run` on a lava-dl netx HDF5 network (`NET.net`): the commands keep their
SpikeGPT options and hand a netx file to these functions first (`is_netx`).

* inspect: the layer table (weight bits and exponents as netx gives them to Lava), and every Loihi
  constraint violation at once (exit 1 when there is one);
* profile: cores and chips on every packaged hardware profile (exit 1 when it does not fit `--hw`);
* run: the bit-exact emulator on a spike-input `.npy` ((n_in, T)); with `--compare-lava`, netx's own
  Lava network too, and the first divergence (step, layer, neuron, both values; exit 1 on one).

Layers the emulator does not have are refused in one line naming the layer (exit 2).
"""
from __future__ import annotations

import json

import click

from spike2loihi.cli.params import Int
from spike2loihi.errors import NetxError, Spike2LoihiError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def is_netx(path) -> bool:
    """An HDF5 file (netx's format) rather than a checkpoint or an .s2l model (only a regular file is
    opened: a named pipe never blocks here)."""
    import os
    import stat

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as f:
            return f.read(8) == HDF5_MAGIC
    except OSError:
        return False


def netx_options(f):
    """The options of a netx network file (ignored for SpikeGPT models)."""
    f = click.option("--reset-offset", type=Int(min=0), default=0, show_default=True,
                     help="netx NET.net: netx's reset_offset (block k resets at offset + 1 + k).")(f)
    f = click.option("--reset-interval", type=Int(min=0), default=0, show_default=True,
                     help="netx NET.net: netx's reset_interval (LIFReset: u = v = 0 every so many steps; 0: none).")(f)
    f = click.option("--input-message-bits", type=Int(min=0, max=24), default=0, show_default=True,
                     help="netx NET.net: netx's input_message_bits (0: binary spikes in; > 0: graded payloads, "
                          "as in the files `export --format netx` writes: see its report).")(f)
    f = click.option("--skip-layers", type=Int(min=0), default=0, show_default=True,
                     help="netx NET.net: build from this file layer on, as netx's skip_layers (e.g. the dense "
                          "part of a network that starts with convolutions).")(f)
    return f


def _read(path, skip_layers, input_message_bits=0):
    from converters.netx import read_netx

    return read_netx(path, skip_layers=skip_layers, input_message_bits=input_message_bits)


def inspect_netx(path, skip_layers: int, as_json: bool) -> None:
    from spike2loihi.reports.netx import layer_rows, render_rows, violations

    net = _read(path, skip_layers)
    rows = layer_rows(net)
    bad = violations(net)
    if as_json:
        click.echo(json.dumps({"network": str(path), "format": "netx HDF5", "skipped_layers": net.skipped,
                               "layer_types": list(net.layer_types), "inputs": net.n_in,
                               "layers": [r.to_dict() for r in rows], "violations": bad}, indent=1))
    else:
        click.echo(f"network      {path} (netx HDF5, {len(net.layer_types)} layers: "
                   f"{', '.join(net.layer_types)})")
        click.echo(f"built        {len(rows)} dense block{'s' if len(rows) != 1 else ''} from layer {net.skipped}, "
                   f"{net.n_in} inputs; weights as netx re-optimises them on load")
        click.echo(render_rows(rows))
        click.echo("violations   " + ("none (every Loihi fixed-point range holds)" if not bad else f"{len(bad)}:"))
        for line in bad:
            click.echo(f"  {line}")
    if bad:
        raise _Exit1(f"{path}: {len(bad)} Loihi constraint violation{'s' if len(bad) != 1 else ''} (listed above)")


def profile_netx(path, hw: str, skip_layers: int, as_json: bool) -> None:
    from spike2loihi.hardware import planner
    from spike2loihi.hardware import profiles as hardware
    from spike2loihi.reports.netx import plans, violations

    prof = hardware.load_profile(hw)
    net = _read(path, skip_layers)
    systems = [prof] + [p for p in planner.packaged_profiles() if p.name != prof.name]
    rows = plans(net, systems)
    bad = violations(net)
    if as_json:
        click.echo(json.dumps({"network": str(path), "profile": prof.name, "plans": rows, "violations": bad},
                              indent=1))
    else:
        click.echo(f"network      {path}: {len(net.blocks)} dense blocks, {rows[0]['neurons']:,} neurons, "
                   f"{rows[0]['synapses']:,} synapses (one core group per Dense -> LIF block)")
        click.echo(f"{'profile':<14} {'system':<34} {'cores (ceiling / realistic)':>28} {'chips needed':>13} "
                   f"{'chips':>6}")
        for r in rows:
            mark = " <- --hw" if r["profile"] == prof.name else ""
            chips = "-" if r["chips_available"] is None else str(r["chips_available"])
            click.echo(f"{r['profile']:<14} {r['system'][:34]:<34} "
                       f"{r['cores_ceiling']:>12} / {r['cores_realistic']:<13} {r['chips_needed_realistic']:>13} "
                       f"{chips:>6}{mark}")
        for line in bad:
            click.echo(f"violation    {line}")
    if bad or rows[0]["fits_realistic"] is False:
        why = f"{len(bad)} violation(s)" if bad else f"needs {rows[0]['chips_needed_realistic']} chips"
        raise _Exit1(f"{path} does not fit {prof.title}: {why}")


def run_netx_cli(path, inputs_path, skip_layers: int, reset_interval: int, reset_offset: int, compare_lava: bool,
                 as_json: bool, input_message_bits: int = 0) -> None:
    from converters.netx import load_inputs
    from spike2loihi.cli.interrupts import begin_work
    from spike2loihi.cli.progress import Progress
    from spike2loihi.reports.netx import emulate, first_divergence, spike_counts

    if inputs_path is None:
        raise Spike2LoihiError("a netx network runs on spike input: give --input X.npy ((n_in, T) integers)")
    net = _read(path, skip_layers, input_message_bits)
    x = load_inputs(inputs_path, net.n_in)
    if compare_lava:
        from spike2loihi.backends.lava_sim import require_lava

        require_lava()
    begin_work()
    ours = emulate(net, x, reset_interval, reset_offset)
    out = {"network": str(path), "input": str(inputs_path), "steps": int(x.shape[1]),
           "reset_interval": reset_interval, "reset_offset": reset_offset,
           "spikes": spike_counts(ours), "lava": None}
    if compare_lava:
        from spike2loihi.lava.netx import run_netx

        with Progress("netx in Lava (fixed_pt)", total=int(x.shape[1]), unit="steps") as bar:
            theirs = run_netx(net, x, reset_interval, reset_offset, progress=lambda d, t: bar(d, t))
        div = first_divergence(ours, theirs)
        out["lava"] = {"spikes": spike_counts(theirs), "first_divergence": div,
                       "identical": div is None}
    if as_json:
        click.echo(json.dumps(out, indent=1))
    else:
        click.echo(f"network      {path}, {len(net.blocks)} dense blocks, {x.shape[1]} steps of {inputs_path}")
        for block, n in out["spikes"].items():
            lava = "" if out["lava"] is None else f"   Lava {out['lava']['spikes'][block]:,}"
            click.echo(f"  {block:<10} spikes: emulator {n:,}{lava}")
        if out["lava"] is not None:
            div = out["lava"]["first_divergence"]
            click.echo("Lava         identical: every spike, u and v of every block at every step" if div is None else
                       f"Lava         first divergence at step {div['step']}, {div['layer']}, neuron {div['neuron']}: "
                       f"{div['var']} emulator {div['emulator']}, Lava {div['lava']} "
                       f"({div['differing_neurons']} neurons differ there)")
    if out["lava"] is not None and not out["lava"]["identical"]:
        raise _Exit1(f"{path}: the emulator and netx's Lava network differ (first divergence above)")


class _Exit1(Spike2LoihiError):
    """A finding, not bad input: the report is printed, the exit code is 1."""

    exit_code = 1


def refuse_options(ctx, names) -> None:
    """SpikeGPT options given with a netx file: one line naming them."""
    given = [n for n in names if ctx.get_parameter_source(n) is not None
             and ctx.get_parameter_source(n).name == "COMMANDLINE"]
    if given:
        raise NetxError(f"{', '.join('--' + g.replace('_', '-') for g in given)}: not for a netx network")


def _check_new_dir(raw) -> "Path":
    """`-o DIR` for the netx export: a new or empty folder (the files are written all or nothing)."""
    from pathlib import Path

    from spike2loihi.fileio import folder_in_use

    path = Path(str(raw)).expanduser()
    if folder_in_use(path, f"--output {raw}", "the netx files"):
        raise Spike2LoihiError(f"--output {raw}: exists and is not empty; choose a new folder")
    return Path(path.absolute())


def export_netx_cli(model_path, output, text, tokens_file, max_tokens, as_json) -> None:
    """`export MODEL.s2l --format netx -o DIR`: the representable Dense -> LIF layers as netx files, each
    checked in netx's own Lava network against the emulator on the text's tokens."""
    import numpy as np

    from converters.netx import read_netx
    from spike2loihi.backends.lava_sim import require_lava
    from spike2loihi.cli.interrupts import begin_work
    from spike2loihi.cli.inputs import read_model_tokens
    from spike2loihi.cli.progress import Progress
    from spike2loihi.convert import artifact, ir
    from spike2loihi.deploy.bundle import BundleWriter
    from spike2loihi.export import netx as NX
    from spike2loihi.fileio import json_default
    from spike2loihi.inputs import check_input_file
    from spike2loihi.lava.netx import run_netx
    from spike2loihi.reports.netx import first_divergence

    if (text is None) == (tokens_file is None):
        raise Spike2LoihiError("--format netx records each layer's inputs on a text: give --text or --tokens-file")
    dest = _check_new_dir(output)
    check_input_file(model_path)
    if not artifact.is_artifact(model_path):
        raise Spike2LoihiError(f"{model_path}: not a converted .s2l model; --format netx writes a converted model's "
                               f"layers: run `spike2loihi convert {model_path} -o MODEL.s2l` first")
    model = artifact.load(model_path)
    ids = read_model_tokens(model, model_path, text, tokens_file, max_tokens)
    require_lava()
    layers = []
    pairs = {}
    for lif in ir.lif_nodes(model.graph):
        dense, weights, reason, facts = NX.plan_layer(model, lif)
        layers.append((lif, dense, weights, reason, facts))
        if not reason:
            pairs[lif.name] = dense
    begin_work()
    rec = {}
    if pairs:
        with Progress("record layer inputs (emulator)", total=len(ids), unit="tokens") as bar:
            rec = NX.record_layers(model, ids, pairs, progress=bar)
    rows = []
    with BundleWriter(dest) as tmp:
        for lif, dense, weights, reason, facts in layers:
            if reason:
                rows.append(NX.NetxLayer(lif=lif.name, dense=dense, written=False, reason=reason, **facts))
                continue
            lrec = model.nodes[lif.name]
            bias = (int(lrec.bias_mant) << int(lrec.bias_exp)) >> NX.NETX_BIAS_EXP
            fname = NX.layer_file_name(lif.name)
            NX.write_netx_file(tmp / fname, weights, lrec.du, lrec.dv, lrec.vth, bias)
            x, s = rec[lif.name]["x"], rec[lif.name]["s"]
            feed = np.concatenate([x.T, np.zeros((x.shape[1], 1), np.int64)], axis=1)   # a Dense delays one step
            np.save(tmp / f"{lif.name}.inputs.npy", feed)
            np.save(tmp / f"{lif.name}.spikes.npy", s.T.astype(np.int8))
            net = read_netx(tmp / fname, input_message_bits=facts["input_bits"])
            with Progress(f"{lif.name} in netx's Lava network", total=feed.shape[1], unit="steps") as bar:
                theirs = run_netx(net, feed, progress=lambda d, t: bar(d, t), state=False)
            lava_s = next(iter(theirs.values()))["s"][1:]
            div = first_divergence({"lif": {"s": s}}, {"lif": {"s": lava_s}}, ("s",))
            rows.append(NX.NetxLayer(lif=lif.name, dense=dense, written=True, reason="", file=fname,
                                     tokens=len(ids), spikes_emulator=int(s.sum()), spikes_lava=int(lava_s.sum()),
                                     spikes_equal=div is None, first_divergence=div, **facts))
        report = {"model": str(model_path), "tokens": len(ids), "source": str(text or tokens_file),
                  "written": sum(r.written for r in rows), "layers": [r.to_dict() for r in rows],
                  "files": {"<lif>.net": "netx HDF5: one dense block (Dense -> CUBA LIF)",
                            "<lif>.inputs.npy": "(n_in, T+1) the Dense's input per token as the emulator recorded "
                                                "it, one Lava step per token, a zero step last (the Dense's delay)",
                            "<lif>.spikes.npy": "(n_out, T) the emulator's spikes of that LIF per token "
                                                "(Lava's spikes at steps 2..T+1)"}}
        (tmp / "netx_report.json").write_text(json.dumps(report, indent=1, default=json_default) + "\n")
    if as_json:
        click.echo(json.dumps({"output": str(dest), **report}, indent=1, default=json_default))
    else:
        click.echo(f"wrote {dest}: {report['written']} of {len(rows)} LIF layers as netx files, "
                   f"checked in Lava on {len(ids)} tokens of {report['source']}")
        for r in rows:
            if r.written:
                verdict = "spikes equal" if r.spikes_equal else f"spikes DIFFER: {r.first_divergence}"
                click.echo(f"  {r.lif:<24} written   {r.file}: {verdict} ({r.spikes_emulator:,} spikes)")
            else:
                click.echo(f"  {r.lif:<24} not written: {r.reason}")
    bad = [r.lif for r in rows if r.written and not r.spikes_equal]
    if bad:
        raise _Exit1(f"netx's Lava spikes differ from the emulator's in {', '.join(bad)} (report above)")
