"""One error type for every user-facing failure.

The CLI prints `str(err)` as a single line and exits non-zero; anything else
escaping is a bug in spike2loihi, not bad input. Every error class of the package is
defined here, so the hierarchy reads in one place; the modules that raise them
import them from here.
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


class RecordError(Spike2LoihiError):
    """A quantization record is malformed (a field missing, unknown or of the wrong type)."""


class ArtifactError(Spike2LoihiError):
    """The .s2l file cannot be read (corrupt, truncated, foreign, newer) or written."""


class PlacementError(Spike2LoihiError):
    """A tool that supports only the host placement was given a `--placement chip` model."""


class FixedPointError(Spike2LoihiError):
    """A float quantity has no exact fixed-point counterpart as requested."""


class FixedPointRangeError(FixedPointError):
    """One or more values exceed Lava's bit widths; all are named in one line."""

    def __init__(self, violations):
        """`violations`: `spike2loihi.convert.fixed_point.RangeViolation`s (each with `describe()`)."""
        self.violations = list(violations)
        super().__init__(
            "fixed-point values out of Lava's ranges: "
            + "; ".join(v.describe() for v in self.violations)
        )


class GraphError(FixedPointError):
    """The graph cannot be run: bad node, edge, width, or a cycle without a Dense."""


class HostNumericsError(Spike2LoihiError):
    """A host value became NaN or infinite: it cannot be sent to the chip."""


class RegistryError(Spike2LoihiError):
    """An op reached a stage that has no handler for its type (a bug, or a new op half-registered)."""


class LavaRunError(Spike2LoihiError):
    """The Lava simulation failed (a host block raised, or the runtime broke)."""


class ActivityError(Spike2LoihiError):
    """The activity run cannot be made (backend, tokens)."""


class HardwareProfileError(Spike2LoihiError):
    """A hardware profile cannot be found or breaks the schema (one line: file and field)."""


class BundleError(Spike2LoihiError):
    """A bundle cannot be written, or a bundle on disk is incomplete or changed."""


class DoesNotFit(Spike2LoihiError):
    """The model does not fit the chosen system (the plan lists every violation)."""

    exit_code = 1


class ExportError(Spike2LoihiError):
    """The model cannot be exported (an op ONNX cannot express exactly, a bad opset, a size limit)."""


class NetxError(Spike2LoihiError):
    """A netx HDF5 network cannot be read, holds a layer the emulator does not have, or its inputs are wrong."""


class InputFileError(Spike2LoihiError):
    """An input path is missing, not a regular file (a directory, a named pipe, a device), unreadable or
    larger than that input may be."""
