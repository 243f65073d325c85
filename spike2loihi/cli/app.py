"""The `spike2loihi` command line: the group `main` and the registration of every command.

Every user-facing failure is one line on stderr and a non-zero exit code, never a
traceback: the group class (spike2loihi.cli.group.CommandGroup) renders click usage
errors, Spike2LoihiError and Ctrl-C for every command. Each command is a module of
its own (`inspect_`, `run`, `convert`, `eval`, `profile`, `export`, `deploy`) that
follows the rules of spike2loihi.cli.rules: the output-path preflight, the
all-or-nothing writer, the numeric option types (`params`) and the progress reporter
(`progress`). Heavy modules (torch, numpy, the model) are imported inside the
commands, so `--help` is quick and Ctrl-C during start-up is one line.
"""
from __future__ import annotations

import os
import signal
import sys


def _startup_interrupt(signum, frame):  # pragma: no cover - exercised in a subprocess
    os.write(2, b"interrupted\n")
    os._exit(130)


_startup_interrupt._s2l_startup = True  # begin_work() (spike2loihi.cli.interrupts) replaces it
# Run as the program (console script or `python -m spike2loihi.cli`): Ctrl-C during the
# imports below is one line too. (Imported as a library, the SIGINT handler is left alone.)
if ((__name__ == "__main__" or os.path.basename(sys.argv[0]) == "spike2loihi" or sys.argv[0] == "-m"
     or sys.argv[0].endswith(os.path.join("spike2loihi", "cli", "__main__.py")))
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
    signal.signal(signal.SIGINT, _startup_interrupt)

import click  # noqa: E402

from spike2loihi import __version__  # noqa: E402
from spike2loihi.cli.convert import convert  # noqa: E402
from spike2loihi.cli.deploy import deploy  # noqa: E402
from spike2loihi.cli.eval import eval_  # noqa: E402
from spike2loihi.cli.export import export  # noqa: E402
from spike2loihi.cli.group import CommandGroup  # noqa: E402
from spike2loihi.cli.inspect_ import inspect  # noqa: E402
from spike2loihi.cli.profile import profile  # noqa: E402
from spike2loihi.cli.run import run  # noqa: E402


@click.group(name="spike2loihi", cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spike2loihi")
def main():
    """Take SpikeGPT checkpoints to Intel Loihi 2: inspect, run, convert, evaluate, export, profile, deploy."""


main.add_command(inspect)
main.add_command(run)
main.add_command(convert)
main.add_command(eval_)
main.add_command(profile)
main.add_command(export)
main.add_command(deploy)

if __name__ == "__main__":
    main()
