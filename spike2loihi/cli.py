"""The `spike2loihi` command line.

Every user-facing failure is one line on stderr and a non-zero exit code, never a
traceback: the group class (spike2loihi.cliutil.CommandGroup) renders click usage
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
if ((__name__ == "__main__" or os.path.basename(sys.argv[0]) == "spike2loihi")
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
    signal.signal(signal.SIGINT, _startup_interrupt)

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402
from click.core import ParameterSource  # noqa: E402

from spike2loihi import __version__, cliutil  # noqa: E402
from spike2loihi.errors import Spike2LoihiError  # noqa: E402

BACKENDS = ("torch",)
SEMANTICS_CHOICES = ("run", "train")  # = spike2loihi.model.SEMANTICS_CHOICES (a test keeps them equal)
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
@click.argument("checkpoint", type=click.Path(dir_okay=True, path_type=Path))
@click.option("--tokenizer", "tokenizer_path", type=click.Path(path_type=Path),
              help="Tokenizer file (char vocab.json or tokenizers JSON). Default: vocab.json beside CHECKPOINT.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def inspect(checkpoint, tokenizer_path, as_json):
    """Show a checkpoint's configuration, parameter counts by role, dtypes, validation and tokenizer."""
    from converters.spikegpt import describe_json, load_checkpoint

    spec = load_checkpoint(checkpoint, tokenizer_path=str(tokenizer_path) if tokenizer_path else None)
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


def _explicit(ctx, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


@main.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--backend", type=click.Choice(BACKENDS), default="torch", show_default=True,
              help="Where to execute: torch = float reference (emulator and lava-sim come with conversion).")
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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of streaming text.")
@click.pass_context
def run(ctx, checkpoint, backend, prompt, tokens_csv, tokens_file, max_new_tokens, greedy, temperature, top_p,
        seed, semantics, tokenizer_path, dump_logits, dump_spikes, threads, as_json):
    """Run a checkpoint on a prompt: teacher-forced prefill, then generation.

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
        inputs={"CHECKPOINT": checkpoint, "--tokenizer": tokenizer_path, "--tokens-file": tokens_file})
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

    # 2. Start-up: imports and the checkpoint (Ctrl-C here exits at once).
    import numpy as np
    import torch

    from converters.spikegpt import load_checkpoint
    from spike2loihi import generate
    from spike2loihi.reference import ReferenceModel

    if threads:
        torch.set_num_threads(threads)
    spec = load_checkpoint(checkpoint, tokenizer_path=str(tokenizer_path) if tokenizer_path else None)
    tok = spec.tokenizer
    V = spec.config.vocab_size
    if prompt is not None:
        if tok is None:
            raise Spike2LoihiError(f"--prompt needs a tokenizer: give --tokenizer FILE or put vocab.json beside "
                                   f"{checkpoint} (or pass token ids with --tokens)")
        ids = _encode_prompt(tok, prompt)
    elif tokens_csv is not None:
        ids = cliutil.parse_int_list(tokens_csv, "--tokens", 0, V - 1)
    else:
        try:
            text = Path(tokens_file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise Spike2LoihiError(f"{tokens_file}: cannot read token file ({exc})") from None
        ids = cliutil.parse_int_list(text, str(tokens_file), 0, V - 1)
    model = ReferenceModel(spec, spec.semantics(semantics))

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
        res = generate.run(model, ids, max_new_tokens=max_new_tokens, greedy=greedy, temperature=temperature,
                           top_p=top_p, seed=seed, keep_logits="--dump-logits" in paths,
                           keep_spikes="--dump-spikes" in paths, on_token=streamer, on_progress=on_progress)
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


if __name__ == "__main__":
    main()
