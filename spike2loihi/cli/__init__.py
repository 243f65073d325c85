"""The command line: the group `main` and its registrations in `app`; one module per command
(`inspect_`, `run`, `convert`, `eval`, `profile`, `export`, `deploy`); what several commands
share: `options` (constants), `inputs` (prompts, text and token files), `loihi2` (the
`--backend loihi2` options); the rules every command follows: `rules` (output paths,
all-or-nothing writes, warnings), `params` (numbers), `progress`, `interrupts` (Ctrl-C) and
`group` (one-line errors)."""
from spike2loihi.cli.app import main

__all__ = ["main"]
