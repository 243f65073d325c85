"""The `spike2loihi` command line.

Every user-facing failure is one line on stderr and a non-zero exit code, never a
traceback: the group class (spike2loihi.cli.rules.CommandGroup) renders click usage
errors, Spike2LoihiError and Ctrl-C for every command; cliutil also holds the
output-path preflight, the all-or-nothing writer, the numeric option types and the
progress reporter that every command uses. Heavy modules (torch, numpy, the model)
are imported inside the commands, so `--help` is quick and Ctrl-C during start-up is
one line.
"""
from __future__ import annotations

import os
import signal
import sys


def _startup_interrupt(signum, frame):  # pragma: no cover - exercised in a subprocess
    os.write(2, b"interrupted\n")
    os._exit(130)


_startup_interrupt._s2l_startup = True  # cliutil.begin_work() replaces it
# Run as the program (console script or `python -m spike2loihi.cli`): Ctrl-C during the
# imports below is one line too. (Imported as a library, the SIGINT handler is left alone.)
if ((__name__ == "__main__" or os.path.basename(sys.argv[0]) == "spike2loihi" or sys.argv[0] == "-m"
     or sys.argv[0].endswith(os.path.join("spike2loihi", "cli", "__main__.py")))
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
    signal.signal(signal.SIGINT, _startup_interrupt)

import functools  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402
from click.core import ParameterSource  # noqa: E402

from spike2loihi import __version__  # noqa: E402
from spike2loihi.cli import rules as cliutil
from spike2loihi.errors import Spike2LoihiError  # noqa: E402
from spike2loihi.cli.deploy import loihi2_options, loihi2_preflight  # noqa: E402  (light: no Lava, no torch)

BACKENDS = ("torch", "emulator", "lava-sim", "onnxruntime", "loihi2")
SEMANTICS_CHOICES = ("run", "train")  # = spike2loihi.model.spec.SEMANTICS_CHOICES (a test keeps them equal)
DEFAULT_MAX_NEW_TOKENS = 200
MIN_TEMPERATURE = 1e-6  # below ~1e-300 logits / T overflows float64; 1e-6 already is the argmax in practice


@click.group(name="spike2loihi", cls=cliutil.CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spike2loihi")
def main():
    """Take SpikeGPT checkpoints to Intel Loihi 2: inspect, run, and (next) convert."""


def _rescale_text(sem: dict, n_layer: int) -> str:
    every = sem["rescale_layer"]
    if not every:
        return "no rescale"
    if n_layer < every:
        return f"no rescale (n_layer {n_layer} < {every})"
    if n_layer == every:
        return f"no weight rescale; x halved once after the last block (n_layer {n_layer})"
    return f"rescale every {every} layers"


@main.command()
@click.argument("checkpoint", metavar="MODEL", type=click.Path(dir_okay=True, path_type=Path))
@click.option("--tokenizer", "tokenizer_path", type=click.Path(path_type=Path),
              help="Tokenizer file (char vocab.json or tokenizers JSON). Default: vocab.json beside CHECKPOINT.")
@click.option("--graph", is_flag=True, help="Print the model's op graph: ops, widths, chip/host placement and why.")
@click.option("--semantics", type=click.Choice(SEMANTICS_CHOICES), default="run", show_default=True,
              help="For --graph of a checkpoint: run = official inference code; train = training graph.")
@click.option("--placement", type=click.Choice(["host", "chip"]), default="host", show_default=True,
              help="For --graph of a checkpoint: the mapping to show (see `convert --help`).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def inspect(checkpoint, tokenizer_path, graph, semantics, placement, as_json):
    """Show a checkpoint (config, parameters, dtypes, validation, tokenizer) or a converted
    .s2l model (its manifest); with --graph, the op graph with its chip/host placement."""
    from spike2loihi.convert import artifact

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

    m = model.manifest
    if as_json:
        out = {k: v for k, v in m.items()}
        out["tensors"] = {k: {"dtype": v.dtype.name, "shape": list(v.shape)} for k, v in model.tensors.items()}
        out["nodes"] = model.nodes
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
    click.echo(f"quantization weights {q['weight_bits']} bits, activations {q['act_bits']} bits, "
               f"ffn LIF input {q['lif_input_bits']} bits")
    click.echo(f"calibration  {cal['tokens']} tokens from {cal.get('source')}"
               + (f" {cal['path']}" if cal.get("path") else "")
               + (f" (seed {cal['seed']})" if cal.get("seed") is not None else ""))
    click.echo(f"graph        {len(model.graph.nodes)} ops ({counts['chip']} chip, {counts['host']} host), "
               f"{len(model.graph.crossings())} host<->chip crossings per token, "
               f"{ir.host_round_trips(model.graph)} host round trips")
    placement = ir.placement_of(model.graph)
    click.echo(f"placement    {placement}" + (" (LayerNorm, sigmoid and token shift need a microcoded neuron on a "
                                                "board: unverified)" if placement == ir.CHIP else " (the graded mapping)"))
    click.echo(f"report       top-1 agreement with float {rep['top1_agreement']:.4f} and mean spike flip rate "
               f"{100 * (rep['mean_flip_rate'] or 0):.2f}% over the calibration tokens; "
               f"{rep['total_wraps']} wraps")
    click.echo(f"tensors      {len(model.tensors)}, {nbytes / 2**20:.1f} MiB")
    click.echo("tokenizer    " + (f"{tok['kind']} (stored in the model)" if tok else "none (token ids only)"))
    v = m.get(A.K_VERSIONS, {})
    click.echo("versions     " + ", ".join(f"{k} {val}" for k, val in v.items() if val))


class _Streamer:
    """Print generated text as it is produced (incremental decoding for BPE)."""

    def __init__(self, tokenizer, quiet: bool = False):
        self.tok = tokenizer
        self.quiet = quiet  # record the tokens only (--json)
        self.ids = []
        self.shown = 0
        self.line_open = False  # stdout holds text without a final newline

    def echo(self, text: str) -> None:
        if text and not self.quiet:
            click.echo(text, nl=False)
            sys.stdout.flush()
            self.line_open = True

    def __call__(self, token):
        self.ids.append(token)
        if self.quiet:
            return
        if self.tok is None:
            self.echo(f"{token} ")
            return
        text = self.tok.decode(self.ids)
        if "\ufffd" in text[self.shown:]:
            return  # an incomplete UTF-8 sequence: wait for the next token
        self.echo(text[self.shown:])
        self.shown = len(text)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _encode_prompt(tok, prompt: str):
    """Token ids of --prompt; warns about characters replaced or dropped, refuses a prompt with none left."""
    if prompt == "":
        raise Spike2LoihiError("--prompt is empty: at least one token is needed")
    if hasattr(tok, "encode_with_report"):
        ids, replaced, dropped = tok.encode_with_report(prompt)
    else:  # a tokenizer object of another kind
        ids, replaced, dropped = tok.encode(prompt), [], []
    unk = getattr(tok, "unknown_token", None)
    unk_id = getattr(tok, "unknown_id", None)
    what = "characters" if tok.kind == "char" else "pieces"
    if not ids and dropped:
        n = len(dropped)
        every = "its only character is" if n == 1 else f"all {n} characters are"
        raise Spike2LoihiError(f"--prompt encodes to no tokens: {every} outside the tokenizer's vocabulary and "
                               f"the tokenizer has no unknown token, so {'it was' if n == 1 else 'all were'} "
                               f"dropped: {cliutil.show_examples(dropped)}")
    if ids and replaced and all(i == unk_id for i in ids):
        n = len(replaced)
        every = "every character is unknown" if n == len(ids) else f"every character is unknown or {unk!r}"
        raise Spike2LoihiError(f"--prompt has nothing in the vocabulary: {every}, and would run as {unk!r} "
                               f"({_plural(n, what[:-1])} replaced: {cliutil.show_examples(replaced)})")
    if not ids:
        raise Spike2LoihiError(f"--prompt {prompt!r} encodes to no tokens: at least one token is needed")
    if replaced:
        n = len(replaced)
        cliutil.warn(f"--prompt: {_plural(n, what[:-1])} not in the vocabulary {'was' if n == 1 else 'were'} "
                     f"replaced by {unk!r}: {cliutil.show_examples(replaced)}")
    if dropped:
        n = len(dropped)
        cliutil.warn(f"--prompt: {_plural(n, 'character')} not in the vocabulary {'was' if n == 1 else 'were'} "
                     f"dropped (the tokenizer has no unknown token): {cliutil.show_examples(dropped)}")
    return ids


def _read_token_file(path, vocab: int):
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise Spike2LoihiError(f"{path}: cannot read token file ({exc})") from None
    return cliutil.parse_int_list(text, str(path), 0, vocab - 1)


def _read_text_file(path, option: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise Spike2LoihiError(f"{option} {path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise Spike2LoihiError(f"{option} {path}: cannot read ({exc.strerror})") from None


def _encode_file(tok, text: str, option: str, path) -> list:
    """Token ids of a text file; warns (counts and examples) about characters replaced or dropped."""
    if hasattr(tok, "encode_with_report"):
        ids, replaced, dropped = tok.encode_with_report(text)
    else:
        ids, replaced, dropped = tok.encode(text), [], []
    for what, chars in (("replaced by the unknown token", replaced), ("dropped", dropped)):
        if chars:
            cliutil.warn(f"{option} {path}: {_plural(len(chars), 'character')} outside the vocabulary "
                         f"{what}: {cliutil.show_examples(chars)}")
    if len(ids) < 2:
        raise Spike2LoihiError(f"{option} {path}: {len(ids)} token(s) after encoding; at least 2 are needed")
    return ids


def _compare_with_emulator(model, ids, res, max_new_tokens, greedy, temperature, top_p, seed) -> dict:
    """Run the same request on the emulator; every prompt logit and spike and every generated token must agree."""
    import numpy as np

    from spike2loihi.backends import generate
    from spike2loihi.backends.emulator import EmulatorBackend

    emu = generate.run(EmulatorBackend(model.model), ids, max_new_tokens=max_new_tokens, greedy=greedy,
                       temperature=temperature, top_p=top_p, seed=seed, keep_logits=True, keep_spikes=True)
    same_logits = bool(np.array_equal(emu.prompt_logits, res.prompt_logits))
    same_spikes = bool(np.array_equal(emu.att_spikes, res.att_spikes) and np.array_equal(emu.ffn_spikes, res.ffn_spikes))
    same_tokens = emu.generated_tokens == res.generated_tokens
    n = len(res.generated_tokens)
    out = {"prompt_logits_identical": same_logits, "prompt_spikes_identical": same_spikes,
           "generated_tokens_identical": same_tokens, "generated_tokens": n,
           "emulator_tokens_per_s": round(n / emu.generate_s, 2) if n and emu.generate_s > 0 else None}
    if not (same_logits and same_spikes and same_tokens):
        first = next((i for i, (a, b) in enumerate(zip(emu.generated_tokens, res.generated_tokens)) if a != b), None)
        raise Spike2LoihiError(f"{getattr(model, 'name', 'the backend')} and the emulator differ: "
                               f"prompt logits {'equal' if same_logits else 'DIFFER'}, "
                               f"prompt spikes {'equal' if same_spikes else 'DIFFER'}, generated tokens "
                               + ("equal" if same_tokens else f"DIFFER from token {first}"))
    out["summary"] = (f"identical prompt logits ({len(ids)} x {res.prompt_logits.shape[1]}), identical spikes in "
                      f"every population, identical generated tokens ({n}/{n}); the emulator generated "
                      f"{out['emulator_tokens_per_s']} tokens/s")
    return out


def _explicit(ctx, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


@main.command()
@click.argument("checkpoint", metavar="MODEL", type=click.Path(path_type=Path))
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="Where to execute: torch = the float reference (of a checkpoint, or of the checkpoint a .s2l "
                   "was converted from); emulator = the converted .s2l model in Lava's integer arithmetic; "
                   "lava-sim = the .s2l as a Lava process graph in Lava's CPU simulator; "
                   "onnxruntime = an exported .onnx step graph (spike2loihi export) in onnxruntime; "
                   "loihi2 = the .s2l's Lava graph on a Loihi 2 board (Loihi2HwCfg; needs Intel's lava-loihi, "
                   "INRC members only, and --partition, --board or --ethernet-host; never run on a board here).  "
                   "[default: torch for a checkpoint, emulator for a .s2l, onnxruntime for a .onnx]")
@click.option("--checkpoint", "source_checkpoint", type=click.Path(path_type=Path),
              help="With a .s2l and --backend torch: the source checkpoint, if it moved (its sha256 is checked).")
@click.option("--prompt", help="Prompt text (needs a tokenizer).")
@click.option("--tokens", "tokens_csv", help="Prompt as token ids, e.g. 1,2,3.")
@click.option("--tokens-file", type=click.Path(path_type=Path), help="File of token ids separated by whitespace or commas.")
@click.option("--max-new-tokens", type=cliutil.Int(min=0), default=DEFAULT_MAX_NEW_TOKENS, show_default=True,
              help="Tokens to generate after the prompt (0: only run the prompt).")
@click.option("--greedy", is_flag=True, help="Take the most likely token (argmax).")
@click.option("--temperature", type=cliutil.Float(min=MIN_TEMPERATURE, below_hint="--greedy takes the argmax"),
              help=f"Sampling temperature, finite, >= {MIN_TEMPERATURE:g}.  [default: 1.0]")
@click.option("--top-p", type=cliutil.Float(min=0, max=1, min_open=True),
              help="Nucleus sampling mass in (0, 1].  [default: 1.0]")
@click.option("--seed", type=cliutil.SEED, default=0, show_default=True,
              help=f"Sampling seed, 0..{cliutil.SEED_MAX}: same seed, same output.")
@click.option("--semantics", type=click.Choice(SEMANTICS_CHOICES), default="run", show_default=True,
              help="run = official inference code (model_run.py); train = training graph (model.py).")
@click.option("--tokenizer", "tokenizer_path", type=click.Path(path_type=Path),
              help="Tokenizer file. Default: vocab.json beside CHECKPOINT.")
@click.option("--dump-logits", type=cliutil.OUTPUT_PATH,
              help="Write float32 logits [T, V] of the prompt tokens (teacher forced) to this .npy file.")
@click.option("--dump-spikes", type=cliutil.OUTPUT_PATH,
              help="Write uint8 att_spikes/ffn_spikes [T, n_layer, n_embd] of the prompt to this .npz file.")
@click.option("--threads", type=cliutil.Int(min=1),
              help="torch CPU threads (default: torch's choice; more than the cores is capped, with a warning).")
@click.option("--compare-emulator", is_flag=True,
              help="With --backend lava-sim or loihi2: run the same request on the emulator too and check that the "
                   "prompt's logits and spikes and the generated tokens are identical (a difference is an error).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of streaming text.")
@loihi2_options
@click.pass_context
def run(ctx, checkpoint, backend, source_checkpoint, prompt, tokens_csv, tokens_file, max_new_tokens, greedy,
        temperature, top_p, seed, semantics, tokenizer_path, dump_logits, dump_spikes, threads, compare_emulator,
        as_json, partition, board, ethernet_host, loihi_gen, lif_placement):
    """Run a checkpoint or a converted .s2l model on a prompt: teacher-forced prefill, then generation.

    Outputs (--dump-logits, --dump-spikes) are checked before any work and written
    all or nothing at the end. Long prompts show progress on stderr.
    """
    # 1. Everything that can be checked without the model, before any work.
    given = [x is not None for x in (prompt, tokens_csv, tokens_file)]
    if sum(given) != 1:
        raise Spike2LoihiError("give exactly one of --prompt, --tokens, --tokens-file")
    if greedy and (temperature is not None or top_p is not None):
        raise Spike2LoihiError("--greedy takes the argmax; do not combine it with --temperature/--top-p")
    if prompt == "":
        raise Spike2LoihiError("--prompt is empty: at least one token is needed")
    paths = cliutil.check_output_paths(
        {"--dump-logits": dump_logits, "--dump-spikes": dump_spikes},
        inputs={"MODEL": checkpoint, "--tokenizer": tokenizer_path, "--tokens-file": tokens_file,
                "--checkpoint": source_checkpoint})
    if max_new_tokens == 0:
        idle = [opt for opt, on in (("--greedy", greedy), ("--temperature", temperature is not None),
                                    ("--top-p", top_p is not None), ("--seed", _explicit(ctx, "seed"))) if on]
        if idle:
            cliutil.warn(f"{', '.join(idle)} {'has' if len(idle) == 1 else 'have'} no effect with "
                         "--max-new-tokens 0 (nothing is generated)")
    elif greedy and _explicit(ctx, "seed"):
        cliutil.warn("--seed has no effect with --greedy (the argmax does not sample)")
    temperature = 1.0 if temperature is None else temperature
    top_p = 1.0 if top_p is None else top_p
    threads = cliutil.cap_threads(threads)
    loihi2 = loihi2_preflight(ctx, backend == "loihi2", partition, board, ethernet_host, loihi_gen, lif_placement)

    # 2. Start-up: imports and the model (Ctrl-C here exits at once).
    import numpy as np
    import torch

    from spike2loihi.convert import artifact
    from spike2loihi.backends import generate
    from spike2loihi.backends import open_backend

    if threads:
        torch.set_num_threads(threads)
    is_artifact = artifact.is_artifact(checkpoint)
    is_onnx = str(checkpoint).lower().endswith(".onnx")  # an exported step graph: its semantics are fixed
    backend = backend or ("emulator" if is_artifact else "onnxruntime" if is_onnx else "torch")
    if source_checkpoint is not None and not is_artifact:
        raise Spike2LoihiError("--checkpoint is for a converted .s2l model (its source checkpoint); "
                               f"{checkpoint} is itself a checkpoint")
    model, tok = open_backend(backend, checkpoint, checkpoint=source_checkpoint,
                              semantics=(semantics if (_explicit(ctx, "semantics") or not (is_artifact or is_onnx))
                                         else None),
                              tokenizer_path=str(tokenizer_path) if tokenizer_path else None, loihi2=loihi2)
    V = model.config.vocab_size
    if prompt is not None:
        if tok is None:
            raise Spike2LoihiError(f"--prompt needs a tokenizer: give --tokenizer FILE or put vocab.json beside "
                                   f"{checkpoint} (or pass token ids with --tokens)")
        ids = _encode_prompt(tok, prompt)
    elif tokens_csv is not None:
        ids = cliutil.parse_int_list(tokens_csv, "--tokens", 0, V - 1)
    else:
        ids = _read_token_file(tokens_file, V)

    # 3. The work: prefill (progress on stderr when long), then generation.
    cliutil.begin_work()
    streamer = _Streamer(tok, quiet=as_json)
    done = {"phase": "prefill", "prefill": 0}
    prefill_bar = cliutil.Progress("prefill", total=len(ids), unit="tokens")
    # Streamed text is its own sign of life; with --json, generation shows progress too.
    gen_bar = cliutil.Progress("generate", total=max_new_tokens, unit="tokens") if as_json else None

    def on_progress(phase, n, total):
        done["phase"] = phase
        if phase == "prefill":
            done["prefill"] = n
            prefill_bar(n, total)
            if n == total:
                prefill_bar.close()
                if tok is not None:
                    streamer.echo(tok.decode(ids))  # the prompt, once its progress line is gone
        elif gen_bar is not None:
            gen_bar(n, total)

    try:
        runner = model.generate if hasattr(model, "generate") else functools.partial(generate.run, model)
        res = runner(ids, max_new_tokens=max_new_tokens, greedy=greedy, temperature=temperature,
                     top_p=top_p, seed=seed, keep_logits="--dump-logits" in paths or compare_emulator,
                     keep_spikes="--dump-spikes" in paths or compare_emulator, on_token=streamer,
                     on_progress=on_progress)
    except BaseException as exc:
        prefill_bar.close(ok=False)
        if gen_bar is not None:
            gen_bar.close(ok=False)
        if not isinstance(exc, KeyboardInterrupt):
            raise
        if as_json:  # what was done so far; no output file is written
            partial = {"interrupted": True, "phase": done["phase"], "backend": backend,
                       "prompt_tokens": ids, "prefill_tokens_done": done["prefill"],
                       "generated_tokens": list(streamer.ids)}
            if tok is not None:
                partial["prompt"] = tok.decode(ids)
                partial["text"] = tok.decode(streamer.ids)
            click.echo(json.dumps(partial))
        elif streamer.line_open:
            click.echo("")  # end the streamed line; `interrupted` goes on the next
        raise
    if gen_bar is not None:
        gen_bar.close()
    if streamer.line_open:
        click.echo("")

    comparison = _compare_with_emulator(model, ids, res, max_new_tokens, greedy, temperature, top_p, seed) \
        if compare_emulator else None

    # 4. Outputs, all or nothing, before anything reports success.
    if paths:
        with cliutil.OutputSet(paths) as outs:
            if "--dump-logits" in paths:
                with outs.open("--dump-logits") as f:
                    np.save(f, res.prompt_logits.astype(np.float32))
            if "--dump-spikes" in paths:
                with outs.open("--dump-spikes") as f:
                    np.savez(f, att_spikes=res.att_spikes, ffn_spikes=res.ffn_spikes)

    n_gen = len(res.generated_tokens)
    summary = {
        "backend": backend,
        "semantics": model.semantics.to_dict(),
        "prompt_tokens": res.prompt_tokens,
        "generated_tokens": res.generated_tokens,
        "spike_rates": {"att": [round(float(r), 6) for r in res.att_rate],
                        "ffn": [round(float(r), 6) for r in res.ffn_rate]},
        "tokens_per_s": round(n_gen / res.generate_s, 2) if n_gen and res.generate_s > 0 else None,
        "prefill_tokens_per_s": round(len(ids) / res.prefill_s, 2) if res.prefill_s > 0 else None,
        "threads": torch.get_num_threads(),
        "seed": seed,
    }
    graph_key = backend.replace("-", "_")   # lava_sim, loihi2
    if getattr(model, "last", None) is not None:   # lava-sim, loihi2: the graph and its schedule
        from spike2loihi.convert.schedule import schedule

        last = model.last
        summary[graph_key] = {"processes": last.processes, "steps": last.steps,
                               "token_period_steps": schedule(model.model.graph).token_period,
                               **{k: round(v, 3) for k, v in last.timings.items()}}
    if comparison is not None:
        summary["compare_emulator"] = comparison
    if tok is not None:
        summary["prompt"] = tok.decode(res.prompt_tokens)
        summary["text"] = tok.decode(res.generated_tokens)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        att = " ".join(f"{r:.3f}" for r in res.att_rate)
        ffn = " ".join(f"{r:.3f}" for r in res.ffn_rate)
        rate = f"{summary['tokens_per_s']} tokens/s" if summary["tokens_per_s"] else "no tokens generated"
        click.echo(f"[{len(ids)} prompt + {n_gen} generated tokens, {rate}, "
                   f"spike rates att [{att}] ffn [{ffn}]]", err=True)
        if graph_key in summary:
            ls = summary[graph_key]
            click.echo(f"[{backend}: {ls['processes']} Lava processes, {ls['steps']} time steps "
                       f"({ls['steps_per_s']:.1f} steps/s), prefill 1 token per step, "
                       f"{ls['token_period_steps']} steps per generated token, compile {ls['compile_s']:.1f} s]",
                       err=True)
        if comparison is not None:
            click.echo(f"[agreement with the emulator: {comparison['summary']}]", err=True)


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
        ids = _read_token_file(calib_tokens_file, V)
        return ids[:calib_len], {"source": "tokens", "path": str(Path(calib_tokens_file).resolve()),
                                 "sha256": sha256_file(calib_tokens_file)}
    import torch

    from spike2loihi.model.reference import ReferenceModel
    from spike2loihi.model.sampling import choose

    cliutil.warn(f"no calibration data given: calibrating on {calib_len} tokens sampled from the float model "
                 f"itself (seed {seed}); pass --calib TEXTFILE (or --calib-tokens-file) with text like yours")
    ref = ReferenceModel(spec, sem)
    state = ref.initial_state()
    gen = torch.Generator().manual_seed(seed)
    ids, tok = [], 0
    bar = cliutil.Progress("sample calibration text", total=calib_len, unit="tokens")
    for n in range(calib_len):
        ids.append(tok)
        tok = choose(ref.step(tok, state).logits, False, 1.0, 1.0, gen)
        bar(n + 1)
    bar.close()
    return ids, {"source": "sampled", "seed": seed, "start_token": 0}


@main.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("-o", "--output", "output", type=cliutil.OUTPUT_PATH, required=True, help="The converted model (.s2l).")
@click.option("--calib", type=click.Path(path_type=Path), help="Calibration text (encoded with the tokenizer).")
@click.option("--calib-tokens-file", type=click.Path(path_type=Path),
              help="Calibration token ids, separated by whitespace or commas (models without a tokenizer).")
@click.option("--calib-len", type=cliutil.Int(min=1, max=1_000_000), default=DEFAULT_CALIB_LEN, show_default=True,
              help="How many calibration tokens to use.")
@click.option("--weight-bits", type=cliutil.Int(min=2, max=8), default=8, show_default=True,
              help="Weight mantissa bits of every chip Dense (Loihi: <= 8).")
@click.option("--act-bits", type=cliutil.Int(min=2, max=24), default=8, show_default=True,
              help="Graded payload bits of activations into chip Dense layers (Loihi: <= 24).")
@click.option("--lif-input-bits", type=cliutil.Int(min=2, max=17), default=16, show_default=True,
              help="Graded payload bits of the ffn LIF's input from the host (<= 17: u = a<<6 fits 24 bits).")
@click.option("--semantics", type=click.Choice(SEMANTICS_CHOICES), default="run", show_default=True,
              help="run = official inference code (model_run.py); train = training graph (model.py).")
@click.option("--placement", type=click.Choice(["host", "chip"]), default="host", show_default=True,
              help="host = LayerNorm, gates, WKV on the host (verified on Lava's simulator); chip = LayerNorm, "
                   "mixes, sigmoids, relu^2, products, residual on the chip too, WKV on the host "
                   "(emulator and lava-sim; needs microcoded neurons on a board: unverified).")
@click.option("--tokenizer", "tokenizer_path", type=click.Path(path_type=Path),
              help="Tokenizer file. Default: vocab.json beside CHECKPOINT. It is stored in the model.")
@click.option("--seed", type=cliutil.SEED, default=0, show_default=True,
              help="Seed of the calibration text sampled from the float model (when no --calib is given).")
@click.option("--report", type=cliutil.OUTPUT_PATH, help="Write the per-layer report as JSON.")
@click.option("--plot", type=cliutil.OUTPUT_PATH, help="Draw the per-layer report as a PNG.")
@click.option("--threads", type=cliutil.Int(min=1), help="torch CPU threads (capped at the cores).")
def convert(checkpoint, output, calib, calib_tokens_file, calib_len, weight_bits, act_bits, lif_input_bits,
            semantics, placement, tokenizer_path, seed, report, plot, threads):
    """Convert a SpikeGPT checkpoint to a Loihi fixed-point model (.s2l), graded mapping.

    Chip: every Dense (8-bit weights, graded inputs) and both LIF populations; host:
    embedding, LayerNorm, token shift, WKV, sigmoid, relu^2, products, residual,
    sampling. Prints the per-layer report (worst layers first).
    """
    if calib is not None and calib_tokens_file is not None:
        raise Spike2LoihiError("give at most one of --calib and --calib-tokens-file")
    paths = cliutil.check_output_paths({"--output": output, "--report": report, "--plot": plot},
                                       inputs={"CHECKPOINT": checkpoint, "--calib": calib,
                                               "--calib-tokens-file": calib_tokens_file,
                                               "--tokenizer": tokenizer_path})
    threads = cliutil.cap_threads(threads)
    import torch

    from converters.spikegpt import load_checkpoint
    from spike2loihi.convert import artifact, quantize
    from spike2loihi.reports import conversion as rep

    if threads:
        torch.set_num_threads(threads)
    opts = quantize.QuantOptions(weight_bits, act_bits, lif_input_bits, placement)
    opts.check()
    spec = load_checkpoint(checkpoint, tokenizer_path=str(tokenizer_path) if tokenizer_path else None)
    sem = spec.semantics(semantics)
    cliutil.begin_work()
    tokens, info = _calibration_tokens(spec, sem, calib, calib_tokens_file, calib_len, seed)
    bar = cliutil.Progress("calibrate (float reference)", total=len(tokens), unit="tokens")
    cal = quantize.calibrate(spec, sem, tokens, info, progress=bar)
    bar.close()
    bars = {}

    def progress(phase, done, total):
        if phase not in bars:
            bars[phase] = cliutil.Progress({"quantize": "quantize", "measure": "measure (converted model)"}[phase],
                                           total=total, unit="nodes" if phase == "quantize" else "tokens")
        bars[phase](done, total)

    model, records = quantize.convert(spec, sem, cal, opts, source=_source_info(checkpoint, spec), progress=progress)
    for b in bars.values():
        b.close()
    summary = model.manifest[artifact.K_REPORT]
    with cliutil.OutputSet(paths) as outs:
        with outs.open("--output") as f:
            artifact.write(model, f)
        if "--report" in paths:
            outs.write_text("--report", rep.render_json(records, summary, {"source": model.manifest["source"],
                                                                           "quantization": model.manifest["quantization"],
                                                                           "calibration": model.manifest["calibration"]}))
        if "--plot" in paths:
            with outs.open("--plot") as f:
                rep.render_png(records, f, title=f"{Path(checkpoint).name}: conversion report")
    click.echo(rep.render_text(records, summary))
    written = ", ".join(str(p) for p in paths.values())
    click.echo(f"wrote {written}", err=True)


@main.command(name="eval")
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option("--text", type=click.Path(path_type=Path), help="Text to evaluate on (encoded with the model's tokenizer).")
@click.option("--tokens-file", type=click.Path(path_type=Path), help="Token ids to evaluate on.")
@click.option("--backends", default="torch,emulator", show_default=True,
              help="Comma-separated: torch (the float reference), emulator, lava-sim, loihi2 (a Loihi 2 board: "
                   "needs lava-loihi and a host, see `run --help`). Agreement and flips are against torch; with "
                   "emulator and lava-sim (or loihi2), their first divergence (if any) is reported.")
@click.option("--max-tokens", type=cliutil.Int(min=2), help="Use at most this many tokens of the text.")
@click.option("--noise-floor/--no-noise-floor", default=True, show_default=True,
              help="Also run the float model with weights moved by +-1/2 LSB of the conversion grid (needs torch).")
@click.option("--noise-seed", type=cliutil.SEED, default=0, show_default=True)
@click.option("--checkpoint", "source_checkpoint", type=click.Path(path_type=Path),
              help="The source checkpoint, if it moved (its sha256 is checked).")
@click.option("--plot", type=cliutil.OUTPUT_PATH, help="Draw bits per character and flip rates per layer as a PNG.")
@click.option("--threads", type=cliutil.Int(min=1), help="torch CPU threads (capped at the cores).")
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
    paths = cliutil.check_output_paths({"--plot": plot}, inputs={"MODEL": model_path, "--text": text,
                                                                 "--tokens-file": tokens_file})
    threads = cliutil.cap_threads(threads)
    loihi2 = loihi2_preflight(ctx, "loihi2" in names, partition, board, ethernet_host, loihi_gen, lif_placement)
    import torch

    from spike2loihi.convert import artifact
    from spike2loihi.reports import evaluate
    from spike2loihi.backends import open_backend, source_checkpoint as load_source
    from spike2loihi.backends.emulator import EmulatorBackend
    from spike2loihi.model.spec import Semantics

    if threads:
        torch.set_num_threads(threads)
    if not artifact.is_artifact(model_path):
        raise Spike2LoihiError(f"{model_path}: not a converted .s2l model; eval compares a converted model with "
                               f"its float source: run `spike2loihi convert {model_path} -o MODEL.s2l` first")
    model = artifact.load(model_path)
    for name in set(names) & {"loihi2"}:
        artifact.require_host_placement(model, model_path, f"--backends {name}")
    tok = model.tokenizer()
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
    sem = Semantics(**model.manifest["semantics"])
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
    cliutil.begin_work()
    bars = {}

    def progress(label, done, total):
        if label not in bars:
            bars[label] = cliutil.Progress(f"eval {label}", total=total, unit="tokens")
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
        with cliutil.OutputSet(paths) as outs:
            with outs.open("--plot") as f:
                evaluate.plot_eval(res, f, title=f"{Path(model_path).name} on {len(ids)} tokens")
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    click.echo(evaluate.render_eval(res))


from spike2loihi.cli.profile import profile as _profile; main.add_command(_profile)  # noqa: E402,E702
from spike2loihi.cli.export import export as _export; main.add_command(_export)  # noqa: E402,E702
from spike2loihi.cli.deploy import deploy as _deploy; main.add_command(_deploy)  # noqa: E402,E702

if __name__ == "__main__":
    main()
