"""The `spike2loihi` command line.

Every user-facing failure is a Spike2LoihiError: printed as one line on stderr
with a non-zero exit code, never a traceback.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click
import numpy as np

from spike2loihi import __version__
from spike2loihi.errors import Spike2LoihiError
from spike2loihi.model import SEMANTICS_CHOICES

BACKENDS = ("torch",)


def _friendly(fn):
    """Turn Spike2LoihiError and Ctrl-C into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except Spike2LoihiError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spike2loihi")
def main():
    """Take SpikeGPT checkpoints to Intel Loihi 2: inspect, run, and (next) convert."""


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=True, path_type=Path))
@click.option("--tokenizer", "tokenizer_path", type=click.Path(path_type=Path),
              help="Tokenizer file (char vocab.json or tokenizers JSON). Default: vocab.json beside CHECKPOINT.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@_friendly
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
               f"rescale every {sem['rescale_layer']} layers")
    tok = info["tokenizer"]
    click.echo("tokenizer    " + ("none found (token ids only)" if tok is None
                                  else f"{tok['kind']}, {tok['vocab_size']} tokens, {tok['path']}"))


def _parse_token_list(text: str, source: str, vocab: int):
    parts = text.replace(",", " ").split()
    if not parts:
        raise Spike2LoihiError(f"{source}: no token ids given")
    ids = []
    for p in parts:
        try:
            ids.append(int(p))
        except ValueError:
            raise Spike2LoihiError(f"{source}: {p!r} is not an integer token id") from None
    bad = [i for i in ids if not 0 <= i < vocab]
    if bad:
        raise Spike2LoihiError(f"{source}: token id {bad[0]} is outside the vocabulary 0..{vocab - 1}")
    return ids


def _save_npy(path: Path, arr):
    from spike2loihi.fileio import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, arr)


def _save_npz(path: Path, **arrays):
    from spike2loihi.fileio import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


class _Streamer:
    """Print generated text as it is produced (incremental decoding for BPE)."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.ids = []
        self.shown = 0

    def __call__(self, token):
        self.ids.append(token)
        if self.tok is None:
            click.echo(f"{token} ", nl=False)
            sys.stdout.flush()
            return
        text = self.tok.decode(self.ids)
        if "\ufffd" in text[self.shown:]:
            return  # an incomplete UTF-8 sequence: wait for the next token
        click.echo(text[self.shown:], nl=False)
        sys.stdout.flush()
        self.shown = len(text)


@main.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--backend", type=click.Choice(BACKENDS), default="torch", show_default=True,
              help="Where to execute: torch = float reference (emulator and lava-sim come with conversion).")
@click.option("--prompt", help="Prompt text (needs a tokenizer).")
@click.option("--tokens", "tokens_csv", help="Prompt as token ids, e.g. 1,2,3.")
@click.option("--tokens-file", type=click.Path(path_type=Path), help="File of whitespace-separated token ids.")
@click.option("--max-new-tokens", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--greedy", is_flag=True, help="Take the most likely token (argmax).")
@click.option("--temperature", type=float, help="Sampling temperature (> 0).  [default: 1.0]")
@click.option("--top-p", type=float, help="Nucleus sampling mass in (0, 1].  [default: 1.0]")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed: same seed, same output.")
@click.option("--semantics", type=click.Choice(SEMANTICS_CHOICES), default="run", show_default=True,
              help="run = official inference code (model_run.py); train = training graph (model.py).")
@click.option("--tokenizer", "tokenizer_path", type=click.Path(path_type=Path),
              help="Tokenizer file. Default: vocab.json beside CHECKPOINT.")
@click.option("--dump-logits", type=click.Path(path_type=Path),
              help="Write float32 logits [T, V] of the prompt tokens (teacher forced) to this .npy file.")
@click.option("--dump-spikes", type=click.Path(path_type=Path),
              help="Write uint8 att_spikes/ffn_spikes [T, n_layer, n_embd] of the prompt to this .npz file.")
@click.option("--threads", type=click.IntRange(min=1), help="torch CPU threads (default: torch's choice).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of streaming text.")
@_friendly
def run(checkpoint, backend, prompt, tokens_csv, tokens_file, max_new_tokens, greedy, temperature, top_p, seed,
        semantics, tokenizer_path, dump_logits, dump_spikes, threads, as_json):
    """Run a checkpoint on a prompt: teacher-forced prefill, then generation."""
    import torch

    from converters.spikegpt import load_checkpoint
    from spike2loihi import generate
    from spike2loihi.reference import ReferenceModel

    given = [x is not None for x in (prompt, tokens_csv, tokens_file)]
    if sum(given) != 1:
        raise Spike2LoihiError("give exactly one of --prompt, --tokens, --tokens-file")
    if greedy and (temperature is not None or top_p is not None):
        raise Spike2LoihiError("--greedy takes the argmax; do not combine it with --temperature/--top-p")
    temperature = 1.0 if temperature is None else temperature
    top_p = 1.0 if top_p is None else top_p
    if not temperature > 0:
        raise Spike2LoihiError(f"--temperature must be > 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise Spike2LoihiError(f"--top-p must be in (0, 1], got {top_p}")
    if threads:
        torch.set_num_threads(threads)

    spec = load_checkpoint(checkpoint, tokenizer_path=str(tokenizer_path) if tokenizer_path else None)
    tok = spec.tokenizer
    V = spec.config.vocab_size
    if prompt is not None:
        if tok is None:
            raise Spike2LoihiError(f"--prompt needs a tokenizer: give --tokenizer FILE or put vocab.json beside "
                                   f"{checkpoint} (or pass token ids with --tokens)")
        ids = tok.encode(prompt)
        if not ids:
            raise Spike2LoihiError("--prompt is empty: at least one token is needed")
    elif tokens_csv is not None:
        ids = _parse_token_list(tokens_csv, "--tokens", V)
    else:
        try:
            text = Path(tokens_file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise Spike2LoihiError(f"{tokens_file}: cannot read token file ({exc})") from None
        ids = _parse_token_list(text, str(tokens_file), V)

    model = ReferenceModel(spec, spec.semantics(semantics))
    streamer = None
    if not as_json:
        if tok is not None:
            click.echo(tok.decode(ids), nl=False)
        streamer = _Streamer(tok)
    res = generate.run(model, ids, max_new_tokens=max_new_tokens, greedy=greedy, temperature=temperature,
                       top_p=top_p, seed=seed, keep_logits=dump_logits is not None,
                       keep_spikes=dump_spikes is not None, on_token=streamer)
    if dump_logits is not None:
        _save_npy(dump_logits, res.prompt_logits.astype(np.float32))
    if dump_spikes is not None:
        _save_npz(dump_spikes, att_spikes=res.att_spikes, ffn_spikes=res.ffn_spikes)

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
    }
    if tok is not None:
        summary["prompt"] = tok.decode(res.prompt_tokens)
        summary["text"] = tok.decode(res.generated_tokens)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo("")
        att = " ".join(f"{r:.3f}" for r in res.att_rate)
        ffn = " ".join(f"{r:.3f}" for r in res.ffn_rate)
        rate = f"{summary['tokens_per_s']} tokens/s" if summary["tokens_per_s"] else "no tokens generated"
        click.echo(f"[{len(ids)} prompt + {n_gen} generated tokens, {rate}, "
                   f"spike rates att [{att}] ffn [{ffn}]]", err=True)


if __name__ == "__main__":
    main()
