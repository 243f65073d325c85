"""The package's shape (docs/ARCHITECTURE.md), checked by reading its source: every op type has every
capability its placements need (one registry), no isinstance ladders, no import cycles, nothing below
the CLI imports the CLI, only `spike2loihi/lava/` imports Lava, modules of a readable size.

Runs with or without Lava: it imports no Lava (the registries load Lava lazily) and scans source."""
import dataclasses
from typing import ClassVar, Dict

import pytest

import arch_scan
from spike2loihi import registry
from spike2loihi.convert import ir

registry.load_all()
CASES = [(st.name, op.__name__, mapping) for st in registry.STAGES.values() for op in ir.OP_TYPES.values()
         for mapping in ir.MAPPINGS if st.needs(op, mapping, op.mapping[mapping].where)]


@pytest.mark.parametrize("stage,op,mapping", CASES, ids=[f"{s}-{o}-{m}" for s, o, m in CASES])
def test_every_op_type_has_every_capability_its_placement_needs(stage, op, mapping):
    op_type = {c.__name__: c for c in ir.OP_TYPES.values()}[op]
    assert registry.STAGES[stage].find(op_type) is not None, f"{stage} has no handler for {op} ({mapping})"


def test_the_registries_cover_every_stage_and_placement():
    assert registry.missing() == []
    names = set(registry.STAGES)
    assert {"execute.host", "execute.chip", "execute.state", "execute.float", "records", "quantize.host",
            "quantize.chip", "lava.chip", "plan.chip", "activity.chip", "onnx.float", "onnx.host",
            "onnx.integer"} <= names
    # both placements are exercised: some op is on the chip under one mapping and on the host under the other
    assert any(op.mapping[ir.HOST].where != op.mapping[ir.CHIP].where for op in ir.OP_TYPES.values())


def test_a_half_registered_op_is_caught(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class Cube(ir.Op):
        kind: ClassVar[str] = "cube"
        mapping: ClassVar[Dict[str, ir.Placement]] = {m: ir.Placement(ir.CHIP, "a new chip op") if ir.on_chip(m)
                                                      else ir.Placement(ir.HOST, "x**3 on the host")
                                                      for m in ir.MAPPINGS}
        host_cost: ClassVar = {"multiply": "2*n"}

    monkeypatch.setitem(ir.OP_TYPES, "cube", Cube)
    stages = {line.split(":")[0] for line in registry.missing()}
    # on the host under --placement host, on the chip under --placement chip
    assert stages == {"execute.host", "execute.chip", "execute.float", "records", "quantize.chip", "lava.chip",
                      "lava.processes", "plan.chip", "activity.chip", "onnx.float", "onnx.host"}
    registry.STAGES["execute.host"].register(Cube)(lambda P, n, ins, st: ins["x"] ** 3)
    try:
        assert not any(line.startswith("execute.host:") for line in registry.missing())
    finally:
        del registry.STAGES["execute.host"].handlers[Cube]


def test_every_op_states_its_facts():
    for op in ir.OP_TYPES.values():
        assert set(op.mapping) == set(ir.MAPPINGS), op.__name__
        for mapping in ir.MAPPINGS:
            if op.mapping[mapping].where == ir.HOST:
                assert op.host_cost is not None, f"{op.__name__} runs on the host and states no host_cost"
        if op.dense or op.spiking:
            assert all(op.mapping[m].where == ir.CHIP for m in ir.MAPPINGS), op.__name__


def test_only_the_lava_package_imports_lava():
    assert arch_scan.lava_outside() == []


def test_no_isinstance_ladders_on_node_types():
    found = arch_scan.scan_isinstance(arch_scan._op_names())
    assert found["ladders"] == []
    assert found["node_type_isinstance_calls"] <= 25, found["by_module"]


def test_no_import_cycles_and_nothing_below_the_cli_imports_it():
    g = arch_scan.imports()
    assert arch_scan.cycles(g) == []
    assert arch_scan.cli_up_arrows(g) == []


def test_modules_stay_readable():
    big = {m: n for m, n in arch_scan.sizes().items() if n > 650}
    assert big == {}


def test_every_backend_offers_one_of_the_two_runner_interfaces(demo_converted):
    from spike2loihi.backends import RequestBackend, StepBackend
    from spike2loihi.backends.emulator import EmulatorBackend
    from spike2loihi.backends.lava_sim import LavaSimBackend
    from spike2loihi.backends.loihi2 import Loihi2Backend
    from spike2loihi.backends.onnxruntime import OnnxRuntimeBackend
    from spike2loihi.model.reference import ReferenceModel

    for cls in (ReferenceModel, EmulatorBackend, OnnxRuntimeBackend):
        assert all(callable(getattr(cls, m, None)) for m in ("initial_state", "step")), cls
    for cls in (LavaSimBackend, Loihi2Backend):
        assert all(callable(getattr(cls, m, None)) for m in ("teacher_forced", "generate")), cls
    assert isinstance(EmulatorBackend(demo_converted[0]), StepBackend)
    assert not isinstance(EmulatorBackend(demo_converted[0]), RequestBackend)
