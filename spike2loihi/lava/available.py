"""Whether Lava can run here, asked without importing Lava at module level.

* `lava_problem()`: None when lava-nc imports, else the first line of why not (lava-nc
  0.10.0 runs on CPython 3.10 only; on 3.11 its dataclasses fail at import).
* `lava_loihi_missing()`: the modules of Intel's lava-loihi (INRC only) that cannot be
  found, tested as Lava does: `lava.utils.loihi.is_installed()` looks for
  `lava.utils.loihi2_profiler`; Lava's compiler and run configs import
  `lava.magma.core.model.nc.model` (neurocore ProcessModels) inside try/except;
  `lava.networks.gradedvecnetwork` takes the adapters from `lava.proc.embedded_io`.
  Nothing is imported.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import List, Optional, Tuple

#: What the simulator needs; the hardware path adds `lava.utils.loihi` (host selection).
SIMULATOR_MODULES = ("lava.magma.core.run_configs", "lava.proc.dense.process")
HARDWARE_MODULES = SIMULATOR_MODULES + ("lava.utils.loihi",)

# (module, why): found only where lava-loihi is installed
LAVA_LOIHI_MODULES: Tuple[Tuple[str, str], ...] = (
    ("lava.utils.loihi2_profiler", "lava.utils.loihi.is_installed() looks for it"),
    ("lava.magma.core.model.nc.model", "neurocore ProcessModels, which Lava's compiler imports if present"),
    ("lava.proc.embedded_io", "the PyToNxAdapter / NxToPyAdapter host<->chip adapters"),
)


def lava_problem(modules=SIMULATOR_MODULES) -> Optional[str]:
    """None when `modules` import, else the first line of why not."""
    try:
        for m in modules:
            importlib.import_module(m)
    except Exception as exc:  # ImportError, or 3.11's dataclass error inside Lava
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return None


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError, AttributeError):   # a parent package is missing or not a package
        return False


def lava_loihi_missing() -> List[str]:
    """The lava-loihi modules that cannot be found (empty when lava-loihi is installed)."""
    return [m for m, _ in LAVA_LOIHI_MODULES if not _found(m)]
