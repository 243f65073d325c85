"""`spike2loihi deploy`: a self-contained bundle that runs a converted model on an INRC Loihi 2 board
and checks it against the emulator (the `--backend loihi2` options of `run` and `eval` are in
spike2loihi.cli.loihi2).

`deploy` is registered on the `spike2loihi` group by one line in
spike2loihi/cli/app.py. It follows the rules of spike2loihi.cli.rules (one-line errors,
inputs and outputs checked before any work, progress on stderr, heavy imports
inside the command); its output is a folder, handled by spike2loihi.deploy.bundle:
`-o DIR` must be new, empty, or (with `--force`) an earlier bundle, never a folder
holding the model or the current folder; the bundle is written into a temporary
folder beside DIR and renamed into place at the end, so DIR is the whole bundle
or untouched.

Exit codes: 0 written; 1 the model does not fit the system (nothing written);
2 bad input. Nothing in spike2loihi has run on a Loihi board: the bundle is how
an INRC member finds out (see its README.md).
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from spike2loihi.cli.inputs import _encode_prompt
from spike2loihi.cli.interrupts import begin_work
from spike2loihi.cli.params import Int, parse_int_list
from spike2loihi.cli.progress import Progress
from spike2loihi.cli.rules import OUTPUT_PATH, warn
from spike2loihi.backends.loihi2 import DEFAULT_LIF_PLACEMENT, LIF_PLACEMENTS, LOIHI_GENS
from spike2loihi.errors import Spike2LoihiError
from spike2loihi.inputs import check_input_file

MAX_NEW_TOKENS_CAP = 4096


def _prompt_ids(model, prompt, tokens_csv):
    from spike2loihi.deploy import expected as E

    V = model.config["vocab_size"]
    if prompt is not None:
        from converters.tokenizer import artifact_tokenizer
        tok = artifact_tokenizer(model)
        if tok is None:
            raise Spike2LoihiError("--prompt needs the model's tokenizer and this model has none: give --tokens")
        return _encode_prompt(tok, prompt)
    if tokens_csv is not None:
        return parse_int_list(tokens_csv, "--tokens", 0, V - 1)
    return E.default_prompt(V)


@click.command("deploy")
@click.argument("model_path", metavar="MODEL.s2l", type=click.Path(path_type=Path))
@click.option("--hw", "hw", required=True, metavar="NAME|FILE",
              help="Hardware profile of the target system: oheo_gulch, kapoho_point, hala_point, or a profile .yaml.")
@click.option("--partition", metavar="P", help="SLURM partition [default: the profile's, e.g. oheogulch, kp].")
@click.option("--board", metavar="B", help="SLURM board (node name) instead of a partition.")
@click.option("--loihi-gen", type=click.Choice(LOIHI_GENS), help="Chip generation [default: the profile's, else N3B3].")
@click.option("--lif-placement", type=click.Choice(LIF_PLACEMENTS), default=DEFAULT_LIF_PLACEMENT, show_default=True,
              help="Where the token-gated LIFs run on the board (TokenLIF has no neurocore model: see `run --help`).")
@click.option("--prompt", help="Prompt text of the check (model's tokenizer).")
@click.option("--tokens", "tokens_csv", help="Prompt of the check as token ids, e.g. 1,2,3 "
              "[default: 16 fixed pseudo-random ids].")
@click.option("--max-new-tokens", type=Int(min=0, max=MAX_NEW_TOKENS_CAP), default=8, show_default=True,
              help="Greedy tokens generated after the prompt.")
@click.option("-o", "--output", "output", type=OUTPUT_PATH, required=True, help="The bundle folder to write.")
@click.option("--force", is_flag=True, help="Replace an earlier bundle at --output (never any other folder).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the bundle's manifest) instead of text.")
def deploy(model_path, hw, partition, board, loihi_gen, lif_placement, prompt, tokens_csv, max_new_tokens, output,
           force, as_json):
    """Write a bundle folder for an INRC Loihi 2 host: the model, a run script and a SLURM batch
    script, a README with the steps, the resource plan, the emulator's expected outputs for a
    fixed prompt (token ids, logits, spikes) and sha256 checksums of every file.

    On the board, the run script runs the model through the loihi2 backend (teacher-forced
    prompt, then greedy tokens), compares every logit, spike and token with the expected
    outputs and prints "identical" or the first divergence. Nothing in spike2loihi has run on
    a board yet; without lava-loihi (INRC members only) the run script stops with one line.
    """
    from spike2loihi.deploy import bundle as D, expected as E
    from spike2loihi.backends import loihi2 as L2

    # 1. Everything that needs no model.
    if partition is not None and board is not None:
        raise Spike2LoihiError("give one of --partition and --board: Lava selects a board or a partition, not both")
    if prompt is not None and tokens_csv is not None:
        raise Spike2LoihiError("give at most one of --prompt and --tokens")
    if prompt == "":
        raise Spike2LoihiError("--prompt is empty: at least one token is needed")
    dest = D.check_output_dir(output, force, {"MODEL": model_path})
    from spike2loihi.convert import artifact
    from spike2loihi.hardware import plan_report, profiles as hardware, planner
    from spike2loihi.cli.profile import DoesNotFit

    prof = hardware.load_profile(hw)
    if not prof.is_hardware:
        raise Spike2LoihiError(f"--hw {hw}: a {prof.kind} profile; deploy needs a Loihi 2 system: "
                               f"{', '.join(p.name for p in planner.packaged_profiles())} or a hardware .yaml")
    if partition is None and board is None:
        partition = prof.system.lava_partition.value
        if partition is None:
            raise Spike2LoihiError(f"no SLURM partition: the {prof.name} profile names none "
                                   f"({prof.system.lava_partition.src}); give --partition P or --board B")
    host = L2.host_selection(partition, board, None, loihi_gen or prof.system.lava_loihi_gen.value
                             or L2.DEFAULT_LOIHI_GEN)
    options = L2.Loihi2Options(host, lif_placement)
    check_input_file(model_path)   # a named pipe or a device is refused unread
    if not artifact.is_artifact(model_path):
        if not Path(model_path).exists():
            raise Spike2LoihiError(f"{model_path}: no such file")
        raise Spike2LoihiError(f"{model_path}: not a converted .s2l model; run `spike2loihi convert {model_path} "
                               "-o MODEL.s2l` first")

    # 2. The model, its plan and the prompt.
    model = artifact.load(model_path)
    artifact.require_host_placement(model, model_path, "deploy")
    stock = model.schedule.lif == "stock"
    L2.check_lif_placement(lif_placement, stock=stock)   # (a stock model's LIFs are on the chip anyway)
    name = Path(model_path).name
    plan = planner.plan_model(model, prof, planner.packaged_profiles(), name)
    if not plan.fits:
        click.echo(plan_report.render_text(plan), err=True)
        n = len(plan.violations)
        raise DoesNotFit(f"{name} does not fit {plan.system}: {n} violation{'s' if n != 1 else ''} (listed above); "
                         "no bundle written")
    ids = _prompt_ids(model, prompt, tokens_csv)

    # 3. The work: expected outputs, then the bundle, all or nothing.
    begin_work()
    rows = len(ids) + max(max_new_tokens - 1, 0)
    with Progress("expected outputs (emulator)", total=rows, unit="tokens") as bar:
        expected = E.expected_outputs(model, ids, max_new_tokens, progress=bar)
    with D.BundleWriter(dest) as tmp:
        info = D.write_bundle(tmp, Path(model_path), model, prof, plan, options, ids, max_new_tokens, expected)
        info = D.finish_bundle(tmp, info, dest.name)
    if as_json:
        click.echo(json.dumps({"bundle": str(dest), **info}, indent=1))
        return
    size = sum(f["bytes"] for f in info["files"].values())
    click.echo(f"wrote {dest}: {len(info['files']) + 2} files, {size / 2**20:.1f} MiB")
    click.echo(f"  model       {D.MODEL_FILE} ({name}, {plan.system}: {D.plan_summary(plan)})")
    click.echo(f"  check       {D.EXPECTED_FILE}: {len(ids)} prompt tokens teacher forced, {max_new_tokens} greedy "
               f"tokens; {rows} rows of logits and spikes from the emulator")
    lifs = "chip (Lava's LIF, --lif stock)" if stock else lif_placement
    click.echo(f"  host        {host.describe()}, LIFs on the {lifs} ({D.JOB_SCRIPT}, {D.RUN_SCRIPT})")
    click.echo(f"  checksums   {D.MANIFEST_FILE}, {D.SUMS_FILE} (sha256sum -c {D.SUMS_FILE})")
    click.echo(f"next: copy {dest.name}/ to the INRC host and follow {dest.name}/{D.README_FILE} "
               f"(pip install -r {D.REQUIREMENTS_FILE}; sbatch {D.JOB_SCRIPT})")
    click.echo(L2.notes(lif_placement, stock=stock), err=True)
    not_ready = D.not_ready(model, options)
    if not_ready:
        warn(f"{D.PROCESSES_FILE}: chip processes without a publicly known Loihi 2 neurocore model: "
             + ", ".join(f"{r.process} x{r.count} ({r.neurocore_model})" for r in not_ready))
