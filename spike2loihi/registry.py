"""One lookup for per-op behaviour, stage by stage.

Each stage of the toolchain that does something different per op type keeps a
`Stage`: its handlers are registered against IR op types (`@STAGE.register(ir.LayerNorm)`)
and found along the type's MRO (a `Head` is handled as a `Projection` unless it has its
own). A stage also states which op types need a handler: `needs(op_type, mapping, where)`,
with `mapping` the `--placement` the graph was built with and `where` the op's placement
under it. `missing()` lists every op type x mapping a stage needs and lacks, which the
completeness test asserts is empty, so a new op cannot be half-registered.

The stages and the modules that register them (`STAGE_MODULES`):

| stage | module | handles |
|---|---|---|
| `execute.host`, `execute.chip`, `execute.state` | `execute.handlers` | the whole-model emulator, per op |
| `records` | `convert.records` | the typed quantization record of a chip node |
| `quantize.host`, `quantize.chip` | `convert.quantize_host`, `convert.quantize_chip` | integer formats per mapping |
| `lava.chip` | `lava.lowering` | the Lava process(es) of a chip node |
| `lava.processes` | `lava.lowering` | their process types by name, Lava-free (the process inventory) |
| `plan.chip` | `hardware.populations` | neurocore populations |
| `activity.chip` | `hardware.activity` | synaptic events and neuron updates |
| `onnx.float`, `onnx.host`, `onnx.integer` (and their `.state` stages) | `export.onnx_emitters` | ONNX emission |

Host ops need no Lava or activity registration of their own: the Lava host blocks run their
`execute.host` handler, and their cost is the op's `host_cost` fact.
"""
from __future__ import annotations

import importlib
from typing import Callable, Dict, List, Optional

from spike2loihi.errors import RegistryError

STAGE_MODULES = (
    "spike2loihi.execute.handlers",
    "spike2loihi.convert.records",
    "spike2loihi.convert.quantize_host",
    "spike2loihi.convert.quantize_chip",
    "spike2loihi.lava.lowering",
    "spike2loihi.hardware.populations",
    "spike2loihi.hardware.activity",
    "spike2loihi.export.onnx_emitters",
)


class Stage:
    """Handlers of one stage, keyed by IR op type, found along the MRO."""

    def __init__(self, name: str, needs: Callable[[type, str, str], bool], what: str):
        self.name = name
        self.needs = needs
        self.what = what
        self.handlers: Dict[type, object] = {}

    def register(self, *op_types: type):
        """Decorator: the handler of these op types (each registered once per stage)."""
        def deco(handler):
            for t in op_types:
                if t in self.handlers:
                    raise RegistryError(f"{self.name}: {t.__name__} is registered twice")
                self.handlers[t] = handler
            return handler
        return deco

    def find(self, op_type: type) -> Optional[object]:
        for cls in op_type.__mro__:
            if cls in self.handlers:
                return self.handlers[cls]
        return None

    def lookup(self, node) -> object:
        """The handler of `node`'s type, or one RegistryError line."""
        handler = self.find(type(node))
        if handler is None:
            raise RegistryError(f"{self.name}: no handler for {type(node).__name__} ({node.name}, placed on the "
                                f"{node.placement.where}); register one with @{self.name}.register")
        return handler

    def __repr__(self) -> str:
        return f"Stage({self.name!r}, {len(self.handlers)} op types)"


STAGES: Dict[str, Stage] = {}


def stage(name: str, needs: Callable[[type, str, str], bool], what: str) -> Stage:
    """Create and record a stage (once per name)."""
    if name in STAGES:
        raise RegistryError(f"stage {name!r} exists already")
    STAGES[name] = Stage(name, needs, what)
    return STAGES[name]


def load_all() -> Dict[str, Stage]:
    """Import every registering module (none imports Lava at import time)."""
    for mod in STAGE_MODULES:
        importlib.import_module(mod)
    return STAGES


def missing() -> List[str]:
    """Every (stage, op type, mapping) that needs a handler and has none."""
    from spike2loihi.convert import ir

    load_all()
    out = []
    for st in STAGES.values():
        for op_type in ir.OP_TYPES.values():
            for mapping in ir.MAPPINGS:
                where = op_type.mapping[mapping].where
                if st.needs(op_type, mapping, where) and st.find(op_type) is None:
                    out.append(f"{st.name}: {op_type.__name__} under --placement {mapping} (on the {where}): "
                               f"{st.what}")
    return out
