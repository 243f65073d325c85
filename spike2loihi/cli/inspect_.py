"""`spike2loihi inspect`: a checkpoint (config, parameters, dtypes, validation, tokenizer) or a
converted .s2l model (its manifest); with --graph, the op graph with its chip/host placement.

(The module is `inspect_`, not `inspect`: run as a script, spike2loihi/cli/ is the first
entry of sys.path, and a module `inspect` there would hide the standard library's.)
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from spike2loihi.cli.netx import inspect_netx, is_netx, netx_options
from spike2loihi.cli.options import SEMANTICS_CHOICES
from spike2loihi.inputs import check_input_file


def _rescale_text(sem: dict, n_layer: int) -> str:
    every = sem["rescale_layer"]
    if not every:
        return "no rescale"
    if n_layer < every:
        return f"no rescale (n_layer {n_layer} < {every})"
    if n_layer == every:
        return f"no weight rescale; x halved once after the last block (n_layer {n_layer})"
    return f"rescale every {every} layers"


@click.command("inspect")
@click.argument("checkpoint", metavar="MODEL", type=click.Path(dir_okay=True, path_type=Path))
@click.option("--tokenizer", "tokenizer_path", type=click.Path(path_type=Path),
              help="Tokenizer file (char vocab.json or tokenizers JSON). Default: vocab.json beside CHECKPOINT.")
@click.option("--graph", is_flag=True, help="Print the model's op graph: ops, widths, chip/host placement and why.")
@click.option("--semantics", type=click.Choice(SEMANTICS_CHOICES), default="run", show_default=True,
              help="For --graph of a checkpoint: run = official inference code; train = training graph.")
@click.option("--placement", type=click.Choice(["host", "chip", "chip-wkv"]), default="host", show_default=True,
              help="For --graph of a checkpoint: the mapping to show (see `convert --help`; chip-wkv is "
                   "`--placement chip --wkv chip`).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@netx_options
def inspect(checkpoint, tokenizer_path, graph, semantics, placement, as_json, skip_layers, reset_interval,
            reset_offset, input_message_bits):
    """Show a checkpoint (config, parameters, dtypes, validation, tokenizer) or a converted
    .s2l model (its manifest); with --graph, the op graph with its chip/host placement.
    A lava-dl netx network (NET.net): its layer table and every Loihi constraint violation."""
    from spike2loihi.convert import artifact

    check_input_file(checkpoint)   # a named pipe or a device is refused unread
    if is_netx(checkpoint):
        return inspect_netx(checkpoint, skip_layers, as_json)
    if artifact.is_artifact(checkpoint):
        model = artifact.load(checkpoint)
        if graph:
            return _show_graph(model.graph, as_json)
        return _show_manifest(checkpoint, model, as_json)
    from converters.spikegpt import describe_json, load_checkpoint

    spec = load_checkpoint(checkpoint, tokenizer_path=str(tokenizer_path) if tokenizer_path else None)
    if graph:
        from spike2loihi.convert import ir

        return _show_graph(ir.build_graph(spec.config, spec.semantics(semantics), placement), as_json)
    info = describe_json(spec)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    c = info["config"]
    click.echo(f"checkpoint   {info['source']} ({info['format']})")
    click.echo(f"model        SpikeGPT, {c['n_layer']} layers, n_embd {c['n_embd']}, ffn {c['ffn_dim']}, "
               f"vocabulary {c['vocab_size']}")
    click.echo(f"parameters   {info['parameters']['total']:,}")
    for role, n in info["parameters"]["by_role"].items():
        click.echo(f"  {role:<26} {n:>12,}")
    click.echo("dtypes       " + ", ".join(f"{k} x{v}" for k, v in info["dtypes"].items()))
    click.echo(f"validation   {info['validation']} (every key, shape, dtype and value checked)")
    sem = info["semantics_default"]
    click.echo(f"semantics    run (default): binary embedding {'on' if sem['binary_embedding'] else 'off'}, "
               + _rescale_text(sem, c["n_layer"]))
    tok = info["tokenizer"]
    click.echo("tokenizer    " + ("none found (token ids only)" if tok is None
                                  else f"{tok['kind']}, {tok['vocab_size']} tokens, {tok['path']}"))


def _show_graph(g, as_json: bool) -> None:
    from spike2loihi.convert import ir

    if as_json:
        click.echo(json.dumps(g.to_dict(), indent=1))
    else:
        click.echo("\n".join(ir.describe(g)))


def _show_manifest(path, model, as_json: bool) -> None:
    from spike2loihi.convert import artifact as A, ir
    from spike2loihi.convert.records import nodes_to_dict

    m = model.manifest
    if as_json:
        out = {k: v for k, v in m.items()}
        out["tensors"] = {k: {"dtype": v.dtype.name, "shape": list(v.shape)} for k, v in model.tensors.items()}
        out["nodes"] = nodes_to_dict(model.nodes)
        click.echo(json.dumps(out, indent=1))
        return
    c, sem, q, cal, rep = m[A.K_CONFIG], m[A.K_SEMANTICS], m[A.K_QUANT_CONFIG], m[A.K_CALIBRATION], m[A.K_REPORT]
    src = m.get(A.K_SOURCE) or {}
    counts = model.graph.placement_counts()
    nbytes = sum(t.nbytes for t in model.tensors.values())
    tok = m.get(A.K_TOKENIZER)
    click.echo(f"model        {path} (spike2loihi format {m[A.K_FORMAT]}, toolchain {m[A.K_TOOLCHAIN]})")
    click.echo(f"source       {src.get('path', '?')} (sha256 {str(src.get('sha256', '?'))[:16]}...)")
    click.echo(f"config       {c['n_layer']} layers, n_embd {c['n_embd']}, vocabulary {c['vocab_size']}")
    click.echo(f"semantics    {sem['name']}: binary embedding {'on' if sem['binary_embedding'] else 'off'}, "
               + _rescale_text(sem, c["n_layer"]))
    lifw = f" (Wo -> LIF: {q['lif_weight_bits']} bits)" if q.get("lif_weight_bits") is not None else ""
    click.echo(f"quantization weights {q['weight_bits']} bits{lifw}, activations {q['act_bits']} bits, "
               f"ffn LIF input {q['lif_input_bits']} bits")
    click.echo(f"calibration  {cal['tokens']} tokens from {cal.get('source')}"
               + (f" {cal['path']}" if cal.get("path") else "")
               + (f" (seed {cal['seed']})" if cal.get("seed") is not None else ""))
    click.echo(f"graph        {len(model.graph.nodes)} ops ({counts['chip']} chip, {counts['host']} host), "
               f"{len(model.graph.crossings())} host<->chip crossings per token, "
               f"{ir.host_round_trips(model.graph)} host round trips")
    placement = ir.placement_of(model.graph)
    micro = sorted({n.kind for n in model.graph.nodes.values() if n.microcoded and n.placement.where == ir.CHIP})
    click.echo(f"placement    {placement}" + (f" ({', '.join(micro)} need a microcoded neuron on a board: unverified)"
                                                if micro else " (the graded mapping)"))
    click.echo(f"report       top-1 agreement with float {rep['top1_agreement']:.4f} and mean spike flip rate "
               f"{100 * (rep['mean_flip_rate'] or 0):.2f}% over the calibration tokens; "
               f"{rep['total_wraps']} wraps")
    click.echo(f"tensors      {len(model.tensors)}, {nbytes / 2**20:.1f} MiB")
    click.echo("tokenizer    " + (f"{tok['kind']} (stored in the model)" if tok else "none (token ids only)"))
    v = m.get(A.K_VERSIONS, {})
    click.echo("versions     " + ", ".join(f"{k} {val}" for k, val in v.items() if val))
