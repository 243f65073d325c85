"""`spike2loihi run`: a checkpoint, a converted .s2l model or an exported .onnx on a prompt,
teacher-forced prefill then generation, on one backend (torch, emulator, lava-sim,
onnxruntime, loihi2); optionally checked against the emulator, logits and spikes dumped.

Every rule of spike2loihi.cli.rules is used here: checks before any work, start-up
imports, `begin_work`, progress, Ctrl-C reports, outputs all or nothing.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from spike2loihi.cli.inputs import _encode_prompt, _explicit, _read_token_file
from spike2loihi.cli.interrupts import begin_work
from spike2loihi.cli.loihi2 import loihi2_options, loihi2_preflight
from spike2loihi.cli.options import BACKENDS, DEFAULT_MAX_NEW_TOKENS, SEMANTICS_CHOICES
from spike2loihi.cli.netx import is_netx, netx_options, refuse_options, run_netx_cli
from spike2loihi.cli.params import SEED, SEED_MAX, Float, Int, cap_threads, parse_int_list
from spike2loihi.cli.progress import Progress
from spike2loihi.cli.rules import OUTPUT_PATH, OutputSet, check_output_paths, warn
from spike2loihi.errors import Spike2LoihiError
from spike2loihi.inputs import check_input_file

MIN_TEMPERATURE = 1e-6  # below ~1e-300 logits / T overflows float64; 1e-6 already is the argmax in practice


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


@click.command("run")
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
@click.option("--max-new-tokens", type=Int(min=0), default=DEFAULT_MAX_NEW_TOKENS, show_default=True,
              help="Tokens to generate after the prompt (0: only run the prompt).")
@click.option("--greedy", is_flag=True, help="Take the most likely token (argmax).")
@click.option("--temperature", type=Float(min=MIN_TEMPERATURE, below_hint="--greedy takes the argmax"),
              help=f"Sampling temperature, finite, >= {MIN_TEMPERATURE:g}.  [default: 1.0]")
@click.option("--top-p", type=Float(min=0, max=1, min_open=True),
              help="Nucleus sampling mass in (0, 1].  [default: 1.0]")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help=f"Sampling seed, 0..{SEED_MAX}: same seed, same output.")
@click.option("--semantics", type=click.Choice(SEMANTICS_CHOICES), default="run", show_default=True,
              help="run = official inference code (model_run.py); train = training graph (model.py).")
@click.option("--tokenizer", "tokenizer_path", type=click.Path(path_type=Path),
              help="Tokenizer file. Default: vocab.json beside CHECKPOINT.")
@click.option("--dump-logits", type=OUTPUT_PATH,
              help="Write float32 logits [T, V] of the prompt tokens (teacher forced) to this .npy file.")
@click.option("--dump-spikes", type=OUTPUT_PATH,
              help="Write uint8 att_spikes/ffn_spikes [T, n_layer, n_embd] of the prompt to this .npz file.")
@click.option("--threads", type=Int(min=1),
              help="torch CPU threads (default: torch's choice; more than the cores is capped, with a warning).")
@click.option("--compare-emulator", is_flag=True,
              help="With --backend lava-sim or loihi2: run the same request on the emulator too and check that the "
                   "prompt's logits and spikes and the generated tokens are identical (a difference is an error).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of streaming text.")
@click.option("--input", "netx_input", type=click.Path(path_type=Path),
              help="netx NET.net: the spike input, a .npy of (n_in, T) integers (one column per step).")
@click.option("--compare-lava", is_flag=True,
              help="netx NET.net: run netx's own Lava network too (fixed_pt) and report the first divergence.")
@netx_options
@loihi2_options
@click.pass_context
def run(ctx, checkpoint, backend, source_checkpoint, prompt, tokens_csv, tokens_file, max_new_tokens, greedy,
        temperature, top_p, seed, semantics, tokenizer_path, dump_logits, dump_spikes, threads, compare_emulator,
        as_json, netx_input, compare_lava, skip_layers, reset_interval, reset_offset, input_message_bits, partition, board, ethernet_host,
        loihi_gen, lif_placement):
    """Run a checkpoint or a converted .s2l model on a prompt: teacher-forced prefill, then generation.

    Outputs (--dump-logits, --dump-spikes) are checked before any work and written
    all or nothing at the end. Long prompts show progress on stderr.

    A lava-dl netx network (NET.net) runs on --input spikes in the bit-exact emulator
    (--compare-lava: against netx's own Lava network).
    """
    if is_netx(checkpoint):
        refuse_options(ctx, ("backend", "source_checkpoint", "prompt", "tokens_csv", "tokens_file", "dump_logits",
                             "dump_spikes", "compare_emulator"))
        return run_netx_cli(checkpoint, netx_input, skip_layers, reset_interval, reset_offset, compare_lava, as_json,
                            input_message_bits)
    if netx_input is not None or compare_lava:
        raise Spike2LoihiError("--input and --compare-lava are for netx networks (NET.net)")
    # 1. Everything that can be checked without the model, before any work.
    _check_request(prompt, tokens_csv, tokens_file, greedy, temperature, top_p)
    paths = check_output_paths(
        {"--dump-logits": dump_logits, "--dump-spikes": dump_spikes},
        inputs={"MODEL": checkpoint, "--tokenizer": tokenizer_path, "--tokens-file": tokens_file,
                "--checkpoint": source_checkpoint})
    _warn_idle_options(ctx, max_new_tokens, greedy, temperature, top_p)
    temperature = 1.0 if temperature is None else temperature
    top_p = 1.0 if top_p is None else top_p
    threads = cap_threads(threads)
    loihi2 = loihi2_preflight(ctx, backend == "loihi2", partition, board, ethernet_host, loihi_gen, lif_placement)

    # 2. Start-up: imports and the model (Ctrl-C here exits at once).
    model, tok, backend = _open_model(ctx, checkpoint, backend, source_checkpoint, semantics, tokenizer_path,
                                      threads, loihi2)
    ids = _input_tokens(tok, checkpoint, prompt, tokens_csv, tokens_file, model.config.vocab_size)

    # 3. The work: prefill (progress on stderr when long), then generation.
    begin_work()
    res = _generate(model, tok, ids, backend, max_new_tokens, greedy, temperature, top_p, seed, as_json,
                    keep_logits="--dump-logits" in paths or compare_emulator,
                    keep_spikes="--dump-spikes" in paths or compare_emulator)

    comparison = _compare_with_emulator(model, ids, res, max_new_tokens, greedy, temperature, top_p, seed) \
        if compare_emulator else None

    # 4. Outputs, all or nothing, before anything reports success.
    _write_dumps(paths, res)
    summary = _summary(model, backend, res, ids, seed, tok, comparison)
    _report(summary, res, ids, backend, as_json)


def _check_request(prompt, tokens_csv, tokens_file, greedy, temperature, top_p) -> None:
    """The input and sampling options that cannot go together, refused before any work."""
    given = [x is not None for x in (prompt, tokens_csv, tokens_file)]
    if sum(given) != 1:
        raise Spike2LoihiError("give exactly one of --prompt, --tokens, --tokens-file")
    if greedy and (temperature is not None or top_p is not None):
        raise Spike2LoihiError("--greedy takes the argmax; do not combine it with --temperature/--top-p")
    if prompt == "":
        raise Spike2LoihiError("--prompt is empty: at least one token is needed")


def _warn_idle_options(ctx, max_new_tokens, greedy, temperature, top_p) -> None:
    """A warning for each sampling option given that cannot act."""
    if max_new_tokens == 0:
        idle = [opt for opt, on in (("--greedy", greedy), ("--temperature", temperature is not None),
                                    ("--top-p", top_p is not None), ("--seed", _explicit(ctx, "seed"))) if on]
        if idle:
            warn(f"{', '.join(idle)} {'has' if len(idle) == 1 else 'have'} no effect with "
                 "--max-new-tokens 0 (nothing is generated)")
    elif greedy and _explicit(ctx, "seed"):
        warn("--seed has no effect with --greedy (the argmax does not sample)")


def _open_model(ctx, checkpoint, backend, source_checkpoint, semantics, tokenizer_path, threads, loihi2):
    """Start-up: the heavy imports (all of them here, before any work), then the model through its
    backend: `(model, tokenizer or None, backend name)`; the default backend follows the file."""
    import numpy as np  # noqa: F401  (the work below uses it)
    import torch

    from spike2loihi.convert import artifact
    from spike2loihi.backends import generate  # noqa: F401  (the work below uses it)
    from spike2loihi.backends import open_backend

    if threads:
        torch.set_num_threads(threads)
        from spike2loihi.execute import kernels
        kernels.set_threads(threads)   # the integer kernels' onnxruntime sessions
    check_input_file(checkpoint)   # a named pipe or a device is refused unread
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
    return model, tok, backend


def _input_tokens(tok, checkpoint, prompt, tokens_csv, tokens_file, V: int) -> list:
    """Token ids of the one prompt given: --prompt (with the tokenizer), --tokens or --tokens-file."""
    if prompt is not None:
        if tok is None:
            raise Spike2LoihiError(f"--prompt needs a tokenizer: give --tokenizer FILE or put vocab.json beside "
                                   f"{checkpoint} (or pass token ids with --tokens)")
        ids = _encode_prompt(tok, prompt)
    elif tokens_csv is not None:
        ids = parse_int_list(tokens_csv, "--tokens", 0, V - 1)
    else:
        ids = _read_token_file(tokens_file, V)
    return ids


def _runner(model):
    """How the request runs: lava-sim and loihi2 run their whole Lava graph (`model.generate`); every
    other backend is stepped token by token (`generate.run`)."""
    from spike2loihi.backends import generate

    return model.generate if hasattr(model, "generate") else functools.partial(generate.run, model)


def _generate(model, tok, ids, backend, max_new_tokens, greedy, temperature, top_p, seed, as_json,
              keep_logits: bool, keep_spikes: bool):
    """Prefill, then generation: text streamed on stdout (with --json, recorded only), progress on
    stderr. On Ctrl-C, says what was done (with --json, one object) and re-raises."""
    streamer = _Streamer(tok, quiet=as_json)
    done = {"phase": "prefill", "prefill": 0}
    prefill_bar = Progress("prefill", total=len(ids), unit="tokens")
    # Streamed text is its own sign of life; with --json, generation shows progress too.
    gen_bar = Progress("generate", total=max_new_tokens, unit="tokens") if as_json else None

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
        runner = _runner(model)
        res = runner(ids, max_new_tokens=max_new_tokens, greedy=greedy, temperature=temperature,
                     top_p=top_p, seed=seed, keep_logits=keep_logits, keep_spikes=keep_spikes, on_token=streamer,
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
    return res


def _write_dumps(paths, res) -> None:
    """--dump-logits and --dump-spikes, all or nothing."""
    import io

    import numpy as np

    if paths:
        with OutputSet(paths) as outs:
            if "--dump-logits" in paths:
                with outs.open("--dump-logits") as f:
                    np.save(f, res.prompt_logits.astype(np.float32))
            if "--dump-spikes" in paths:
                with outs.open("--dump-spikes") as f:   # the zip is built in memory: a full disk fails a
                    buf = io.BytesIO()                   # plain write, not a ZipFile's __del__
                    np.savez(buf, att_spikes=res.att_spikes, ffn_spikes=res.ffn_spikes)
                    f.write(buf.getvalue())


def _graph_key(backend: str) -> str:
    return backend.replace("-", "_")   # lava_sim, loihi2


def _summary(model, backend, res, ids, seed, tok, comparison) -> dict:
    """What was run and generated, spike rates and speed: the --json object."""
    import torch

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
    graph = _lava_graph_summary(model)
    if graph is not None:
        summary[_graph_key(backend)] = graph
    if comparison is not None:
        summary["compare_emulator"] = comparison
    if tok is not None:
        summary["prompt"] = tok.decode(res.prompt_tokens)
        summary["text"] = tok.decode(res.generated_tokens)
    return summary


def _lava_graph_summary(model):
    """lava-sim, loihi2: the Lava graph and its schedule (processes, steps, timings); else None."""
    if getattr(model, "last", None) is None:
        return None
    last = model.last
    sched = model.model.schedule   # the artifact's schedule (its LIF mode included)
    return {"processes": last.processes, "steps": last.steps, "lif": sched.lif,
            "token_period_steps": sched.token_period, "steps_per_prompt_token": sched.steps_per_prefill_token,
            **{k: round(v, 3) for k, v in last.timings.items()}}


def _report(summary: dict, res, ids, backend: str, as_json: bool) -> None:
    """One JSON object on stdout with --json; else the summary in brackets on stderr."""
    n_gen = len(res.generated_tokens)
    graph_key = _graph_key(backend)
    comparison = summary.get("compare_emulator")
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
                       f"({ls['steps_per_s']:.1f} steps/s), {ls['lif']} LIFs, prefill "
                       + ("1 token per step, " if ls['steps_per_prompt_token'] == 1 else
                          f"{ls['steps_per_prompt_token']} steps per token, ") +
                       f"{ls['token_period_steps']} steps per generated token, compile {ls['compile_s']:.1f} s]",
                       err=True)
        if comparison is not None:
            click.echo(f"[agreement with the emulator: {comparison['summary']}]", err=True)
