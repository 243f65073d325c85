"""Rules that every `spike2loihi` command follows, built once; this module holds the
output-path preflight, the all-or-nothing writer and the warnings.

A user meets every command the same way: bad input is one line and a non-zero
exit, never a traceback; output paths are checked before any work starts and
written all or nothing; numbers out of range are refused up front, naming the
option and its range; long work shows progress on stderr; Ctrl-C is one line and
exit code 130, at any moment. A new command gets all of this as follows::

    from spike2loihi.cli import rules
    from spike2loihi.cli.params import Int, cap_threads
    from spike2loihi.cli.progress import Progress

    @click.command("convert")            # registered on `main` (a group.CommandGroup:
    @click.argument("checkpoint", ...)   # usage errors, Spike2LoihiError and Ctrl-C
    @click.option("--out", type=rules.OUTPUT_PATH)               # become one line)
    @click.option("--report", type=rules.OUTPUT_PATH)
    @click.option("--bits", type=Int(min=2, max=16), default=8)
    @click.option("--threads", type=Int(min=1))
    def convert(checkpoint, out, report, bits, threads):
        # 1. before any work: every output path (and the inputs it must not clobber)
        paths = rules.check_output_paths({"--out": out, "--report": report},
                                         inputs={"CHECKPOINT": checkpoint})
        threads = cap_threads(threads)                  # warns, caps at the cores
        import torch                                    # 2. heavy imports inside the command
        ...                                             #    (start-up: Ctrl-C exits at once)
        with Progress("calibrate", total=n, unit="batches") as progress:
            for i in range(n):                          # 3. long work reports (done, total)
                ...
                progress(i + 1)
        with rules.OutputSet(paths) as outs:            # 4. all outputs, all or nothing
            with outs.open("--out") as f:
                f.write(blob)
            outs.write_text("--report", text)
        click.echo(summary)                             # 5. print only once written

    main.add_command(convert)                           # in spike2loihi/cli/app.py

The pieces, one module each:

- `spike2loihi.cli.group.CommandGroup`: the click Group class of `spike2loihi`; its
  `main` turns a click usage error into `error: <message> (see 'spike2loihi CMD --help')`,
  a Spike2LoihiError into `error: <message>` (exit `exc.exit_code`, 2), Ctrl-C into
  `interrupted` (exit 130), a closed stdout pipe into a quiet exit.
- here: `check_output_paths(outputs, inputs=None) -> {option: Path}`: preflight;
  `OutputSet(paths)`: all-or-nothing writer; files get 0666 & ~umask (an existing
  target keeps its mode). Both are built in spike2loihi.fileio, below the CLI.
- `spike2loihi.cli.params`: `Int(min, max)`, `Float(min, max, min_open, max_open)`,
  `SEED`: click types that refuse inf/nan and out-of-range values; `parse_int_list`
  for lists of ids; `cap_threads(n)`: more threads than cores is capped, with a warning.
- `spike2loihi.cli.progress.Progress(label, total, unit)`: progress on stderr,
  callable as `(done, total)`; when and how it shows is in that module's docstring.
- here: `warn(message)`: a `warning: ...` line on stderr; `show_examples(items)` for
  the first few of them. `spike2loihi.errors.one_line(text)`: a message as one line.
- `spike2loihi.cli.interrupts`: `CommandGroup.main` installs a start-up SIGINT handler
  that prints `interrupted` and exits 130 at once (nothing has been written yet, and
  importing torch must not end in a traceback); `begin_work()` switches to
  KeyboardInterrupt so that `finally` blocks run (OutputSet and Progress call it on
  entry; call it yourself before work that must clean up or report partial results).

Conventions the rules rely on (see `run` in spike2loihi/cli/run.py for all of them):

- Keep the top level of app.py and of every command module light (no torch, numpy or
  model modules): run as a program, app.py installs the start-up Ctrl-C handler
  before `import click`, and every import made at the top delays that, and `--help`.
- Check everything that needs no model before loading it (exclusive options,
  outputs, idle options: `warn` when an option cannot act), then load, then
  `begin_work()` and work.
- Print results only after OutputSet has committed: a failed write is one error
  line, never a success report followed by a traceback.
- Ctrl-C during the work: catch KeyboardInterrupt only to say what was done (with
  `--json`, one object with `"interrupted": true`), then re-raise; end a streamed
  text line with a newline first, so that `interrupted` has a line of its own.
  A Lava run stops its runtime in `finally` (see DESIGN.md, Lava runtime facts).
- While text streams to a terminal on stdout, do not draw progress there (a
  redrawn stderr line would overwrite it): show progress for phases that print
  nothing (prefill, --json runs), and echo text once that phase is done.
"""
from __future__ import annotations

from typing import Dict, Iterable

import click

from spike2loihi import fileio
from spike2loihi.cli.interrupts import _line_start, begin_work
from spike2loihi.cli.progress import Progress
from spike2loihi.errors import one_line
from spike2loihi.fileio import check_output_paths

__all__ = ["check_output_paths", "OUTPUT_PATH", "OutputSet", "warn", "show_examples"]


# --------------------------------------------------------------------------- messages

def _emit(line: str) -> None:
    Progress.clear_all()
    click.echo(_line_start() + one_line(line), err=True)


def warn(message: str) -> None:
    """Print `warning: message` on stderr, one line."""
    _emit(f"warning: {message}")


def show_examples(items: Iterable[str], limit: int = 5) -> str:
    """The first `limit` distinct items, repr'd: "'é', '🙂', '\\t'" (", ..." when there are more)."""
    seen: Dict[str, None] = {}  # ordered, and stops early: a prompt may hold thousands of them
    for it in items:
        seen.setdefault(it)
        if len(seen) > limit:
            break
    seen = list(seen)
    shown = ", ".join(repr(s) for s in seen[:limit])
    return shown + (", ..." if len(seen) > limit else "")


# --------------------------------------------------------------------------- output paths

# The click type for output options: keeps the text as typed (a str), so that
# check_output_paths sees a trailing '/' (pathlib drops it).
OUTPUT_PATH = click.Path()


class OutputSet(fileio.OutputSet):
    """spike2loihi.fileio.OutputSet for the commands: all or nothing, and entering it
    switches Ctrl-C to KeyboardInterrupt (`begin_work`), so that an interrupted write
    removes its temporary files."""

    def __enter__(self) -> "OutputSet":
        begin_work()
        return self
