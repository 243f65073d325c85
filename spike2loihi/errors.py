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


class BackendError(Spike2LoihiError):
    """A backend cannot run this model (wrong kind of file, missing source checkpoint, ...)."""


class Loihi2Error(BackendError):
    """The loihi2 backend cannot run (bad options, or a host Lava refuses)."""


class HostSelectionError(Loihi2Error):
    """The host options are missing, conflicting or malformed, or Lava refused the host."""


class Loihi2SoftwareMissing(Loihi2Error):
    """lava-nc or lava-loihi is not installed."""

    exit_code = 3
