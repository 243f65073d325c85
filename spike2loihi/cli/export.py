"""`spike2loihi export`: one RNN step of a checkpoint or of a converted .s2l model as ONNX.

Registered on the `spike2loihi` group by one line at the end of spike2loihi/cli/app.py.
Follows the rules of spike2loihi.cli.rules: the output path is checked before any
work and written all or nothing (after onnx.checker's full check), one-line
errors, progress on stderr, heavy imports (onnx, torch) inside the command.
The graph itself is built by spike2loihi.export.onnx (see its docstring for what
the file contains and why the converted export is exact).
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from spike2loihi.cli.inputs import _explicit
from spike2loihi.cli.interrupts import begin_work
from spike2loihi.cli.options import SEMANTICS_CHOICES
from spike2loihi.cli.params import Int
from spike2loihi.cli.progress import Progress
from spike2loihi.cli.rules import OUTPUT_PATH, OutputSet, check_output_paths, warn
from spike2loihi.errors import Spike2LoihiError
from spike2loihi.inputs import check_input_file

FORMATS = ("onnx", "netx")
# = spike2loihi.export.onnx.MIN_OPSET / MAX_OPSET / DEFAULT_OPSET (a test keeps them equal; importing
# onnx here would slow every command's start-up)
MIN_OPSET, MAX_OPSET, DEFAULT_OPSET = 13, 23, 17


def _summary(OX, proto, data: bytes, model_path, output, kind: str, semantics: str, opset: int) -> dict:
    by_place = {"chip": 0, "host": 0}
    for n in proto.graph.node:
        where = next((p.value for p in n.metadata_props if p.key == "s2l.placement"), "host")
        by_place[where] = by_place.get(where, 0) + 1
    meta = OX.metadata(proto)
    state = json.loads(meta[OX.M_STATE])
    return {"output": str(output), "model": str(model_path), "kind": kind, "semantics": semantics, "opset": opset,
            "ir_version": proto.ir_version, "onnx_nodes": len(proto.graph.node), "onnx_nodes_by_placement": by_place,
            "state_tensors": len(state), "bytes": len(data), "tokenizer": meta.get(OX.M_TOKENIZER_KIND),
            "source_sha256": meta.get(OX.M_SOURCE_SHA256)}


@click.command("export")
@click.argument("model_path", metavar="CKPT|MODEL.s2l", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="onnx", show_default=True,
              help="Output format.")
@click.option("-o", "--output", "output", type=OUTPUT_PATH, required=True,
              help="The file to write (OUT.onnx; `spike2loihi run` recognises ONNX models by that suffix); "
                   "with --format netx, a new folder for the netx files.")
@click.option("--opset", type=Int(min=MIN_OPSET, max=MAX_OPSET), default=DEFAULT_OPSET, show_default=True,
              help=f"ONNX opset, {MIN_OPSET}..{MAX_OPSET} (the newest that onnxruntime here runs).")
@click.option("--semantics", type=click.Choice(SEMANTICS_CHOICES), default="run", show_default=True,
              help="For a checkpoint: run = official inference code (model_run.py); train = training graph "
                   "(model.py). A .s2l keeps the semantics it was converted with.")
@click.option("--tokenizer", "tokenizer_path", type=click.Path(path_type=Path),
              help="Tokenizer stored in the file. Default: vocab.json beside a checkpoint; the one a .s2l carries.")
@click.option("--text", type=click.Path(path_type=Path),
              help="--format netx: the text whose tokens the emulator runs to record each layer's inputs and spikes.")
@click.option("--tokens-file", type=click.Path(path_type=Path), help="--format netx: as --text, with token ids.")
@click.option("--max-tokens", type=Int(min=1), default=256, show_default=True,
              help="--format netx: use at most this many tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a summary line.")
@click.pass_context
def export(ctx, model_path, fmt, output, opset, semantics, tokenizer_path, text, tokens_file, max_tokens, as_json):
    """Export one RNN step as ONNX: token and state in; logits, spikes and the next state out.

    From a checkpoint: the float model in the chosen --semantics. From a converted .s2l:
    the converted model, chip Dense and LIF in Lava's exact integer arithmetic and host ops
    in float32, as the emulator computes it. Every ONNX node names its IR op and its
    placement (chip or host, and why), shown by Netron; the file passes onnx.checker's
    full check and runs with `spike2loihi run OUT.onnx`.

    --format netx (a converted .s2l): each Dense -> LIF layer that lava-dl's netx HDF5 format holds
    exactly, as one netx file per layer in the folder -o DIR, checked in netx's own Lava network
    against the emulator on --text; every other LIF is listed with the reason.
    """
    if fmt == "netx":
        from spike2loihi.cli.netx import export_netx_cli

        return export_netx_cli(model_path, output, text, tokens_file, max_tokens, as_json)
    if text is not None or tokens_file is not None:
        raise Spike2LoihiError("--text and --tokens-file are for --format netx")
    paths = check_output_paths({"--output": output},
                               inputs={"MODEL": model_path, "--tokenizer": tokenizer_path})
    if not str(output).lower().endswith(".onnx"):
        warn(f"--output {output} does not end in .onnx: `spike2loihi run` picks the onnxruntime backend "
             "by that suffix")
    from spike2loihi.export import onnx as OX
    from spike2loihi.convert import artifact

    semantics_given = _explicit(ctx, "semantics")
    check_input_file(model_path)   # a named pipe or a device is refused unread
    if artifact.is_artifact(model_path):
        model = artifact.load(model_path)
        artifact.require_host_placement(model, model_path, "export")
        if model.schedule.lif != "gated":
            raise Spike2LoihiError(f"{model_path}: converted with --lif {model.schedule.lif}, whose LIFs leak between "
                                   "tokens; the ONNX step graph has one LIF step per token (export a --lif gated "
                                   "model)")
        converted_with = model.semantics.name
        if semantics_given and semantics != converted_with:
            raise Spike2LoihiError(f"{model_path} was converted with --semantics {converted_with}; convert the "
                                   f"checkpoint again for {semantics} (or export the checkpoint itself)")
        tok = None
        if tokenizer_path:
            from converters.tokenizer import load_tokenizer

            tok = load_tokenizer(tokenizer_path)
        info = {"path": str(Path(model_path).resolve()), "sha256": artifact.sha256_file(model_path)}
        begin_work()
        with Progress("export", total=len(model.graph.nodes), unit="ops") as bar:
            proto = OX.export_artifact(model, opset=opset, artifact_info=info, tokenizer=tok, progress=bar)
        kind, sem_name = OX.KIND_CONVERTED, converted_with
    else:
        from converters.spikegpt import load_checkpoint

        spec = load_checkpoint(model_path, tokenizer_path=str(tokenizer_path) if tokenizer_path else None)
        sem = spec.semantics(semantics)
        source = {"path": str(Path(model_path).resolve()), "sha256": artifact.sha256_file(model_path),
                  "format": spec.source_format}
        begin_work()
        with Progress("export", total=26 * spec.config.n_layer + 4, unit="ops") as bar:
            proto = OX.export_checkpoint(spec, sem, opset=opset, source=source, progress=bar)
        kind, sem_name = OX.KIND_FLOAT, sem.name
    data = OX.to_bytes(proto)   # onnx.checker, full check; an ExportError is one line
    with OutputSet(paths) as outs:
        outs.write_bytes("--output", data)
    info = _summary(OX, proto, data, model_path, paths["--output"], kind, sem_name, opset)
    if as_json:
        click.echo(json.dumps(info))
        return
    place = info["onnx_nodes_by_placement"]
    click.echo(f"wrote {info['output']}: {kind} step graph ({sem_name} semantics), opset {opset}, "
               f"{info['onnx_nodes']} ONNX nodes ({place.get('chip', 0)} for chip ops, {place.get('host', 0)} for "
               f"host ops), {info['state_tensors']} state tensors, {len(data) / 2**20:.1f} MiB"
               + ("" if info["tokenizer"] else "; no tokenizer (token ids only)"))
