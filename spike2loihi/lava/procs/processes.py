"""Our Lava Processes and their fixed_pt ProcessModels.

* `TokenLIF`: Lava's LIF with one more input, `gate`. Where the gate is 1 the
  model is exactly Lava's `PyLifModelBitAcc` step (it calls it); where it is 0
  the neuron holds u and v and sends no spike. So a LIF advances once per
  *token*, not per time step: in generation, where the next token exists only
  a token period later, the membrane does not leak in the steps between
  (DESIGN.md "Tokens and time steps"). On a Loihi 2 board this needs a
  microcoded neuron (a LIF whose update is enabled by a second dendrite):
  unverified.

* `HostBlock`: a group of host IR nodes run once per time step on the host
  (see `spike2loihi.lava.plans.HostPlan`) by its runner (`spike2loihi.lava.blocks`),
  whose arithmetic is the whole-model emulator's handlers (`run_host_node`,
  `encode_input`, `decode_output`, which call `spike2loihi.execute.host_ops`), and
  nothing else, so it computes what the whole-model emulator computes. Its ports
  depend on the group, so each block gets its own Process/ProcessModel subclass
  (`host_block_classes`); the builder names the model per process instance in the
  run config.

Nothing may escape a ProcessModel (Lava then hangs or loses the traceback):
errors are caught, written to the run's record folder, and the block keeps
sending zeros so that the run ends and the runner reports the error.
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import PyLifModelBitAcc
from lava.proc.lif.process import LIF


class TokenLIF(LIF):
    """Lava's LIF (same Vars and ports) plus `gate` (shape (1,)): update only where gate is 1.

    Equations, per time step with gate g and input a (PyLifModelBitAcc when g = 1):
        g = 1:  u <- T(u (4096 - du - 1)) + a << 6   (24-bit wrap)
                v <- clip(T(v (4096 - dv)) + u + bias, +-(2^23 - 1));  s = v > vth << 6;  v <- 0 where s
        g = 0:  u, v unchanged;  s = 0
    with T rounding toward zero after >> 12.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.gate = InPort(shape=(1,))


@implements(proc=TokenLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyTokenLifModel(PyLifModelBitAcc):
    """`PyLifModelBitAcc` when the gate is 1; hold the state when it is 0."""

    implements_process = None   # inherited from PyLifModelBitAcc; the decorator sets ours
    implements_protocol = None
    required_resources = []
    tags = []
    gate: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=1)

    def run_spk(self):
        if int(self.gate.recv()[0]):
            super().run_spk()
        else:
            self.a_in.recv()
            self.s_out.send(np.zeros(self.s_out.shape, dtype=np.int32))


class HostBlock(AbstractProcess):
    """A group of host IR nodes (one block of the model, or the input/output stage).

    `plan` is a `spike2loihi.lava.plans.HostPlan`: the nodes and the ports (name, width,
    kind); `model` the ConvertedModel; `records` the folder where outputs and errors are
    written; `runner` the class that does the block's work every step
    (`spike2loihi.lava.blocks.HostRunner` or `ChipHostRunner`).
    """

    def __init__(self, plan, model, records: str, run_args: dict, runner: type, **kwargs):
        super().__init__(plan=plan, model=model, records=records, run_args=run_args, runner=runner,
                         name=kwargs.pop("name", plan.name), **kwargs)
        for port in plan.in_ports:
            setattr(self, port.name, InPort(shape=(port.width,)))
        for port in plan.out_ports:
            setattr(self, port.name, OutPort(shape=(port.width,)))


class PyHostBlockModel(PyLoihiProcessModel):
    """Runs its runner once per time step (SPK phase)."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.runner = proc_params["runner"](proc_params["plan"], proc_params["model"], proc_params["records"],
                                            proc_params["run_args"])

    def run_spk(self):
        self.runner.step(self.time_step - 1, self)


_DTYPES = {"int": np.int32, "float": np.float32}


def host_block_classes(plan):
    """A Process subclass and its ProcessModel with one Lava port per plan port."""
    proc_cls = type(f"HostBlock_{plan.safe_name}", (HostBlock,), {"__module__": __name__})
    attrs = {"__module__": __name__}
    for port in plan.in_ports:
        attrs[port.name] = LavaPyType(PyInPort.VEC_DENSE, _DTYPES[port.dtype], precision=24)
    for port in plan.out_ports:
        attrs[port.name] = LavaPyType(PyOutPort.VEC_DENSE, _DTYPES[port.dtype], precision=24)
    model_cls = type(f"PyHostBlockModel_{plan.safe_name}", (PyHostBlockModel,), attrs)
    model_cls = tag("fixed_pt")(requires(CPU)(implements(proc=proc_cls, protocol=LoihiProtocol)(model_cls)))
    return proc_cls, model_cls
