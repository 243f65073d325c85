"""Option values that several commands (and the tests) share, defined once.

Plain constants only: importing this module costs nothing at start-up.
"""
from __future__ import annotations

BACKENDS = ("torch", "emulator", "lava-sim", "onnxruntime", "loihi2")
SEMANTICS_CHOICES = ("run", "train")  # = spike2loihi.model.spec.SEMANTICS_CHOICES (a test keeps them equal)
DEFAULT_MAX_NEW_TOKENS = 200
