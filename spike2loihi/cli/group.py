"""`CommandGroup`, the click group class of `spike2loihi`: every failure of every command
is one line on stderr and an exit code, never a traceback.
"""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import warnings

import click

from spike2loihi.cli.interrupts import INTERRUPTED_EXIT, install_startup_interrupt_handler
from spike2loihi.cli.rules import _emit
from spike2loihi.errors import Spike2LoihiError, one_line

__all__ = ["CommandGroup"]


class _Interrupted(Exception):
    """KeyboardInterrupt, carried past click's own handling (which prints a blank line)."""


class _BrokenPipe(Exception):
    pass


def _option_name(param) -> str:
    opts = getattr(param, "opts", None) or []
    longs = [o for o in opts if o.startswith("--")]
    if longs:
        return longs[0]
    if opts and isinstance(param, click.Option):
        return opts[0]
    return param.human_readable_name


def _usage_message(exc: click.UsageError) -> str:
    if isinstance(exc, click.BadParameter) and not isinstance(exc, click.MissingParameter) \
            and exc.param is not None and exc.param_hint is None:
        msg = f"{_option_name(exc.param)}: {exc.message}"
    else:
        msg = exc.format_message()
    msg = one_line(msg).rstrip(".")
    if len(msg) > 1 and msg[0].isupper() and msg[1].islower():
        msg = msg[0].lower() + msg[1:]
    return msg


class CommandGroup(click.Group):
    """The `spike2loihi` group: every failure of every command is one line on stderr.

    - click usage errors: `error: <message> (see 'spike2loihi CMD --help')`, exit 2;
    - Spike2LoihiError: `error: <message>`, exit `exc.exit_code`;
    - Ctrl-C: `interrupted`, exit 130 (see `install_startup_interrupt_handler`);
    - stdout closed early (`| head`): exit 141 quietly.
    Anything else escaping is a bug and keeps its traceback.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted() from None
        except BrokenPipeError:
            raise _BrokenPipe() from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        # numpy's RuntimeWarnings (an exp that overflows to the right answer, 1 / (1 + inf) = 0) are not
        # messages for the user: where a value matters, the code checks it is finite and says so in one line
        warnings.simplefilter("ignore", RuntimeWarning)
        restore = install_startup_interrupt_handler()
        try:
            code = self._main(args, prog_name or self.name, complete_var, **extra)
        finally:
            restore()
        if standalone_mode:
            sys.exit(code)
        return code

    def _main(self, args, prog_name, complete_var, **extra) -> int:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
        except click.exceptions.NoArgsIsHelpError as exc:  # `spike2loihi` alone: the help text
            exc.show()
            return exc.exit_code
        except click.UsageError as exc:
            if exc.ctx is not None:
                path = exc.ctx.command_path
            else:  # some parser errors carry no context: the command is the first of its names given
                argv = sys.argv[1:] if args is None else [str(a) for a in args]
                sub = next((a for a in argv if a in self.commands), None)
                path = f"{prog_name} {sub}" if sub else prog_name
            _emit(f"error: {_usage_message(exc)} (see '{path} --help')")
            return exc.exit_code
        except click.ClickException as exc:
            _emit(f"error: {exc.format_message()}")
            return exc.exit_code
        except Spike2LoihiError as exc:
            _emit(f"error: {exc}")
            return exc.exit_code
        except (_Interrupted, KeyboardInterrupt, click.Abort):
            _emit("interrupted")
            return INTERRUPTED_EXIT
        except _BrokenPipe:
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            return 128 + signal.SIGPIPE
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            return 128 + signal.SIGPIPE
