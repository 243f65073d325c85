"""One error type for every user-facing failure.

The CLI prints `str(err)` as a single line and exits non-zero; anything else
escaping is a bug in spike2loihi, not bad input.
"""
import re


class Spike2LoihiError(Exception):
    """A problem with the user's input or environment, stated in one line."""

    exit_code = 2


class CheckpointError(Spike2LoihiError):
    """The checkpoint file cannot be read or does not describe a SpikeGPT model."""


class TokenizerError(Spike2LoihiError):
    """The tokenizer file cannot be read or does not fit the checkpoint."""


class QuantizationError(Spike2LoihiError):
    """The requested conversion is not possible (bit widths, calibration data)."""


def one_line(text: str) -> str:
    """`text` with line breaks folded into spaces: errors and warnings are one line."""
    return re.sub(r"\s*[\r\n]+\s*", " ", str(text).strip())
