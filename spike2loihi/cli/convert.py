"""`spike2loihi convert`: a SpikeGPT checkpoint to a Loihi fixed-point model (.s2l), with the
calibration tokens it needs (text, token ids, or sampled from the float model).
"""
from __future__ import annotations

from pathlib import Path

import click

from spike2loihi.cli.inputs import _encode_file, _read_text_file, _read_token_file
from spike2loihi.cli.interrupts import begin_work
from spike2loihi.cli.options import SEMANTICS_CHOICES
from spike2loihi.cli.params import SEED, Int, cap_threads
from spike2loihi.cli.progress import Progress
from spike2loihi.cli.rules import OUTPUT_PATH, OutputSet, check_output_paths, warn
from spike2loihi.errors import Spike2LoihiError

DEFAULT_CALIB_LEN = 256


def _source_info(path: Path, spec) -> dict:
    from spike2loihi.convert.artifact import sha256_file

    return {"path": str(Path(path).resolve()), "sha256": sha256_file(path), "format": spec.source_format,
            "dtypes": spec.dtypes}


def _calibration_tokens(spec, sem, calib, calib_tokens_file, calib_len, seed):
    """(tokens, info) from --calib text, --calib-tokens-file, or sampled from the float model."""
    from spike2loihi.convert.artifact import sha256_file

    V = spec.config.vocab_size
    if calib is not None:
        if spec.tokenizer is None:
            raise Spike2LoihiError(f"--calib {calib}: text needs a tokenizer: give --tokenizer FILE, put vocab.json "
                                   "beside the checkpoint, or give token ids with --calib-tokens-file")
        ids = _encode_file(spec.tokenizer, _read_text_file(calib, "--calib"), "--calib", calib)
        return ids[:calib_len], {"source": "text", "path": str(Path(calib).resolve()), "sha256": sha256_file(calib)}
    if calib_tokens_file is not None:
        ids = _read_token_file(calib_tokens_file, V, "--calib-tokens-file")
        return ids[:calib_len], {"source": "tokens", "path": str(Path(calib_tokens_file).resolve()),
                                 "sha256": sha256_file(calib_tokens_file)}
    import torch

    from spike2loihi.model.reference import ReferenceModel
    from spike2loihi.model.sampling import choose

    warn(f"no calibration data given: calibrating on {calib_len} tokens sampled from the float model "
         f"itself (seed {seed}); pass --calib TEXTFILE (or --calib-tokens-file) with text like yours")
    ref = ReferenceModel(spec, sem)
    state = ref.initial_state()
    gen = torch.Generator().manual_seed(seed)
    ids, tok = [], 0
    bar = Progress("sample calibration text", total=calib_len, unit="tokens")
    for n in range(calib_len):
        ids.append(tok)
        tok = choose(ref.step(tok, state).logits, False, 1.0, 1.0, gen)
        bar(n + 1)
    bar.close()
    return ids, {"source": "sampled", "seed": seed, "start_token": 0}


@click.command("convert")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("-o", "--output", "output", type=OUTPUT_PATH, required=True, help="The converted model (.s2l).")
@click.option("--calib", type=click.Path(path_type=Path), help="Calibration text (encoded with the tokenizer).")
@click.option("--calib-tokens-file", type=click.Path(path_type=Path),
              help="Calibration token ids, separated by whitespace or commas (models without a tokenizer).")
@click.option("--calib-len", type=Int(min=1, max=1_000_000), default=DEFAULT_CALIB_LEN, show_default=True,
              help="How many calibration tokens to use.")
@click.option("--weight-bits", type=Int(min=2, max=8), default=8, show_default=True,
              help="Weight mantissa bits of every chip Dense (Loihi: <= 8).")
@click.option("--lif-weight-bits", type=Int(min=2, max=8),
              help="Weight mantissa bits of the Dense feeding a LIF (Wo -> att LIF) only; default: --weight-bits. "
                   "At 5 or fewer, lava-dl netx holds those layers exactly (see `export --format netx`).")
@click.option("--lif", "lif_mode", type=click.Choice(["gated", "stock"]), default="gated", show_default=True,
              help="gated: the token-gated LIF (exact, one LIF step per token; needs a microcoded neuron on a board); "
                   "stock: Lava's own LIF, every token a token period P of steps apart (prefill too), dv chosen so "
                   "that P steps leak as one tau-2 step (emulator; bits per character: `eval`).")
@click.option("--act-bits", type=Int(min=2, max=24), default=8, show_default=True,
              help="Graded payload bits of activations into chip Dense layers (Loihi: <= 24).")
@click.option("--lif-input-bits", type=Int(min=2, max=17), default=16, show_default=True,
              help="Graded payload bits of the ffn LIF's input from the host (<= 17: u = a<<6 fits 24 bits).")
@click.option("--semantics", type=click.Choice(SEMANTICS_CHOICES), default="run", show_default=True,
              help="run = official inference code (model_run.py); train = training graph (model.py).")
@click.option("--placement", type=click.Choice(["host", "chip"]), default="host", show_default=True,
              help="host = LayerNorm, gates, WKV on the host (verified on Lava's simulator); chip = LayerNorm, "
                   "mixes, sigmoids, relu^2, products, residual on the chip too, WKV on the host "
                   "(emulator and lava-sim; needs microcoded neurons on a board: unverified).")
@click.option("--wkv", "wkv_where", type=click.Choice(["host", "chip"]), default="host", show_default=True,
              help="With --placement chip: chip = the WKV on the chip too (a block exponent per channel, 2^x table, "
                   "Newton reciprocal: one host round trip per token; needs a microcoded neuron on a board: "
                   "unverified).")
@click.option("--tokenizer", "tokenizer_path", type=click.Path(path_type=Path),
              help="Tokenizer file. Default: vocab.json beside CHECKPOINT. It is stored in the model.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of the calibration text sampled from the float model (when no --calib is given).")
@click.option("--report", type=OUTPUT_PATH, help="Write the per-layer report as JSON.")
@click.option("--plot", type=OUTPUT_PATH, help="Draw the per-layer report as a PNG.")
@click.option("--threads", type=Int(min=1), help="torch CPU threads (capped at the cores).")
def convert(checkpoint, output, calib, calib_tokens_file, calib_len, weight_bits, lif_weight_bits, lif_mode,
            act_bits, lif_input_bits, semantics, placement, wkv_where, tokenizer_path, seed, report, plot, threads):
    """Convert a SpikeGPT checkpoint to a Loihi fixed-point model (.s2l), graded mapping.

    Chip: every Dense (8-bit weights, graded inputs) and both LIF populations; host:
    embedding, LayerNorm, token shift, WKV, sigmoid, relu^2, products, residual,
    sampling. Prints the per-layer report (worst layers first).
    """
    if calib is not None and calib_tokens_file is not None:
        raise Spike2LoihiError("give at most one of --calib and --calib-tokens-file")
    if wkv_where == "chip":
        if placement != "chip":
            raise Spike2LoihiError("--wkv chip needs --placement chip (the WKV's inputs come from chip projections)")
        placement = "chip-wkv"
    paths = check_output_paths({"--output": output, "--report": report, "--plot": plot},
                               inputs={"CHECKPOINT": checkpoint, "--calib": calib,
                                       "--calib-tokens-file": calib_tokens_file,
                                       "--tokenizer": tokenizer_path})
    threads = cap_threads(threads)
    import torch

    from converters.spikegpt import load_checkpoint
    from spike2loihi.convert import artifact, quantize
    from spike2loihi.reports import conversion as rep

    if threads:
        torch.set_num_threads(threads)
        from spike2loihi.execute import kernels
        kernels.set_threads(threads)   # the integer kernels' onnxruntime sessions
    opts = quantize.QuantOptions(weight_bits, act_bits, lif_input_bits, placement, lif_weight_bits=lif_weight_bits,
                                 lif=None if lif_mode == "gated" else lif_mode)
    opts.check()
    spec = load_checkpoint(checkpoint, tokenizer_path=str(tokenizer_path) if tokenizer_path else None)
    sem = spec.semantics(semantics)
    begin_work()
    tokens, info = _calibration_tokens(spec, sem, calib, calib_tokens_file, calib_len, seed)
    bar = Progress("calibrate (float reference)", total=len(tokens), unit="tokens")
    cal = quantize.calibrate(spec, sem, tokens, info, progress=bar)
    bar.close()
    bars = {}

    def progress(phase, done, total):
        if phase not in bars:
            bars[phase] = Progress({"quantize": "quantize", "measure": "measure (converted model)"}[phase],
                                   total=total, unit="nodes" if phase == "quantize" else "tokens")
        bars[phase](done, total)

    model, records = quantize.convert(spec, sem, cal, opts, source=_source_info(checkpoint, spec), progress=progress)
    for b in bars.values():
        b.close()
    summary = model.manifest[artifact.K_REPORT]
    with OutputSet(paths) as outs:
        with outs.open("--output") as f:
            artifact.write(model, f)
        if "--report" in paths:
            outs.write_text("--report", rep.render_json(records, summary, {"source": model.manifest[artifact.K_SOURCE],
                                                                           "quantization": model.manifest[artifact.K_QUANT_CONFIG],
                                                                           "calibration": model.manifest[artifact.K_CALIBRATION]}))
        if "--plot" in paths:
            with outs.open("--plot") as f:
                rep.render_png(records, f, title=f"{Path(checkpoint).name}: conversion report")
    click.echo(rep.render_text(records, summary))
    written = ", ".join(str(p) for p in paths.values())
    click.echo(f"wrote {written}", err=True)
