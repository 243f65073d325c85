"""`spike2loihi eval`: bits per character (or perplexity) of a converted model per backend, its
agreement with the float reference, spike flips per layer, and the noise floor of spike chaos.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from spike2loihi.cli.inputs import _encode_file, _read_text_file, _read_token_file
from spike2loihi.cli.interrupts import begin_work
from spike2loihi.cli.loihi2 import loihi2_options, loihi2_preflight
from spike2loihi.cli.options import BACKENDS
from spike2loihi.cli.params import SEED, Int, cap_threads
from spike2loihi.cli.progress import Progress
from spike2loihi.cli.rules import OUTPUT_PATH, OutputSet, check_output_paths
from spike2loihi.errors import Spike2LoihiError
from spike2loihi.inputs import check_input_file


@click.command(name="eval")
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option("--text", type=click.Path(path_type=Path), help="Text to evaluate on (encoded with the model's tokenizer).")
@click.option("--tokens-file", type=click.Path(path_type=Path), help="Token ids to evaluate on.")
@click.option("--backends", default="torch,emulator", show_default=True,
              help="Comma-separated: torch (the float reference), emulator, lava-sim, loihi2 (a Loihi 2 board: "
                   "needs lava-loihi and a host, see `run --help`). Agreement and flips are against torch; with "
                   "emulator and lava-sim (or loihi2), their first divergence (if any) is reported.")
@click.option("--max-tokens", type=Int(min=2), help="Use at most this many tokens of the text.")
@click.option("--noise-floor/--no-noise-floor", default=True, show_default=True,
              help="Also run the float model with weights moved by +-1/2 LSB of the conversion grid (needs torch).")
@click.option("--noise-seed", type=SEED, default=0, show_default=True)
@click.option("--checkpoint", "source_checkpoint", type=click.Path(path_type=Path),
              help="The source checkpoint, if it moved (its sha256 is checked).")
@click.option("--plot", type=OUTPUT_PATH, help="Draw bits per character and flip rates per layer as a PNG.")
@click.option("--threads", type=Int(min=1), help="torch CPU threads (capped at the cores).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@loihi2_options
@click.pass_context
def eval_(ctx, model_path, text, tokens_file, backends, max_tokens, noise_floor, noise_seed, source_checkpoint, plot,
          threads, as_json, partition, board, ethernet_host, loihi_gen, lif_placement):
    """Bits per character (or perplexity) of a converted model per backend, its agreement with the
    float reference, spike flips per layer, and the noise floor of spike chaos."""
    if (text is None) == (tokens_file is None):
        raise Spike2LoihiError("give exactly one of --text and --tokens-file")
    names = [b.strip() for b in backends.split(",") if b.strip()]
    bad = [b for b in names if b not in BACKENDS]
    if bad or not names or len(set(names)) != len(names):
        raise Spike2LoihiError(f"--backends {backends!r}: give distinct names from {', '.join(BACKENDS)}")
    paths = check_output_paths({"--plot": plot}, inputs={"MODEL": model_path, "--text": text,
                                                         "--tokens-file": tokens_file})
    threads = cap_threads(threads)
    loihi2 = loihi2_preflight(ctx, "loihi2" in names, partition, board, ethernet_host, loihi_gen, lif_placement)
    import torch

    from spike2loihi.convert import artifact
    from spike2loihi.reports import evaluate
    from spike2loihi.backends import open_backend, source_checkpoint as load_source
    from spike2loihi.backends.emulator import EmulatorBackend

    if threads:
        torch.set_num_threads(threads)
        from spike2loihi.execute import kernels
        kernels.set_threads(threads)   # the integer kernels' onnxruntime sessions
    check_input_file(model_path)   # a named pipe or a device is refused unread
    if not artifact.is_artifact(model_path):
        raise Spike2LoihiError(f"{model_path}: not a converted .s2l model; eval compares a converted model with "
                               f"its float source: run `spike2loihi convert {model_path} -o MODEL.s2l` first")
    model = artifact.load(model_path)
    for name in set(names) & {"loihi2"}:
        artifact.require_host_placement(model, model_path, f"--backends {name}")
    from converters.tokenizer import artifact_tokenizer
    tok = artifact_tokenizer(model)
    V = model.config["vocab_size"]
    if text is not None:
        if tok is None:
            raise Spike2LoihiError(f"{model_path} has no tokenizer: give token ids with --tokens-file")
        ids = _encode_file(tok, _read_text_file(text, "--text"), "--text", text)
    else:
        ids = _read_token_file(tokens_file, V)
        if len(ids) < 2:
            raise Spike2LoihiError(f"--tokens-file {tokens_file}: at least 2 token ids are needed")
    ids = ids[:max_tokens] if max_tokens else ids
    sem = model.semantics
    runners = {}
    spec = None
    if "torch" in names or noise_floor:
        if "torch" not in names:
            raise Spike2LoihiError("the noise floor is measured against the float reference: add torch to "
                                   "--backends, or pass --no-noise-floor")
        spec = load_source(model, source_checkpoint)
    for name in names:
        if name == "torch":
            from spike2loihi.model.reference import ReferenceModel

            runners["torch"] = ReferenceModel(spec, sem)
        elif name == "emulator":
            runners["emulator"] = EmulatorBackend(model)
        elif name == "lava-sim":
            from spike2loihi.backends.lava_sim import LavaSimBackend

            runners["lava-sim"] = LavaSimBackend(model)
        elif name == "loihi2":
            from spike2loihi.backends import loihi2 as L2

            runners["loihi2"] = L2.Loihi2Backend(model, loihi2)
        else:  # pragma: no cover - BACKENDS and this list grow together
            runners[name] = open_backend(name, model_path)[0]
    if noise_floor:
        runners["noise floor"] = evaluate.perturbed_reference(spec, sem, model, seed=noise_seed)
    begin_work()
    bars = {}

    def progress(label, done, total):
        if label not in bars:
            bars[label] = Progress(f"eval {label}", total=total, unit="tokens")
        bars[label](done, total)
        if done == total:
            bars[label].close()

    char_level = tok is not None and tok.kind == "char"
    compare = next((("emulator", b) for b in ("lava-sim", "loihi2") if {"emulator", b} <= set(names)), None)
    res = evaluate.evaluate_backends(runners, ids, reference="torch", char_level=char_level, progress=progress,
                                     compare=compare)
    for b in ("lava-sim", "loihi2"):
        if b in runners and runners[b].last is not None:
            last = runners[b].last
            res[b.replace("-", "_")] = {"processes": last.processes, "steps": last.steps,
                                        **{k: round(v, 3) for k, v in last.timings.items()}}
    res["model"] = str(model_path)
    res["noise_seed"] = noise_seed if noise_floor else None
    if "--plot" in paths:
        with OutputSet(paths) as outs:
            with outs.open("--plot") as f:
                evaluate.plot_eval(res, f, title=f"{Path(model_path).name} on {len(ids)} tokens")
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    click.echo(evaluate.render_eval(res))
