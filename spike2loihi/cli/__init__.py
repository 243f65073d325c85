"""The command line: one module per command (`inspect`/`run`/`convert`/`eval` in `app`, `export`,
`profile`, `deploy`) over the shared rules of `rules` (outputs, numbers, progress, interrupts)."""
from spike2loihi.cli.app import main

__all__ = ["main"]
