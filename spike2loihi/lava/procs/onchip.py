"""Our chip Processes of `--placement chip`, where Lava has none, with bit-accurate `fixed_pt` models.

Their arithmetic is `spike2loihi.execute.onchip_ops`, called once per `run_spk`, so they compute
what the whole-model emulator computes. Lava's own processes cover the rest of the
placement (`Dense`, `DelayDense`, `GradedVec`, `GradedReluVec`, `ProdNeuron`).

On a Loihi 2 board each of these needs a microcoded neuron model: unverified.

* `FxpLayerNorm` (C neurons in, C out): `onchip_ops.layernorm`. On a board it is a
  sum Dense (C -> 1), a centring population, a square population, a second sum, an
  InvSqrt neuron (Lava's algorithm), a broadcast and a scaling population; the
  simulator runs it as one process (0 steps of latency, like every non-Dense
  process here), which keeps the process count down.
* `FxpSigmoid` (a slice [lo, hi) of its input): `onchip_ops.sigmoid`, a 33-entry
  piecewise-linear table.
* `FxpWKV` (k and v in, C out, plus a 1-bit `gate`): `onchip_ops.wkv_step`, the block-exponent
  WKV of `--wkv chip`; its state (two 24-bit mantissas and an exponent per channel) advances
  only where the gate is 1.
* `TokenShiftCat` (C in, 2C out, plus a 1-bit `gate`): where the gate is 1, sends
  [x ; previous token's x] and keeps x; where it is 0, sends zeros and keeps its
  state, so the shift is one *token* in prefill and in generation alike. The
  projections after it hold the mixes folded into their weights.
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from spike2loihi.execute import onchip_ops


class FxpLayerNorm(AbstractProcess):
    """out = onchip_ops.layernorm(a_in, params, gamma_q, beta_q): see its docstring for the datapath."""

    def __init__(self, shape, params: dict, gamma_q, beta_q, **kwargs):
        super().__init__(shape=shape, params=dict(params), **kwargs)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.gamma_q = Var(shape=shape, init=np.asarray(gamma_q, np.int32))
        self.beta_q = Var(shape=shape, init=np.asarray(beta_q, np.int32))


class FxpSigmoid(AbstractProcess):
    """out = onchip_ops.sigmoid(a_in[lo:hi], in_frac): the 2^-15 grid."""

    def __init__(self, n_in: int, lo: int, hi: int, in_frac: int, **kwargs):
        super().__init__(lo=int(lo), hi=int(hi), in_frac=int(in_frac), **kwargs)
        self.a_in = InPort(shape=(n_in,))
        self.s_out = OutPort(shape=(hi - lo,))


class TokenShiftCat(AbstractProcess):
    """gate 1: out = [x ; prev], prev <- x.  gate 0: out = 0, prev kept."""

    def __init__(self, shape, **kwargs):
        super().__init__(**kwargs)
        n = shape[0]
        self.a_in = InPort(shape=(n,))
        self.gate = InPort(shape=(1,))
        self.s_out = OutPort(shape=(2 * n,))
        self.prev = Var(shape=(n,), init=0)


class FxpWKV(AbstractProcess):
    """The integer WKV (`--wkv chip`): where the gate is 1,
    out, (aa, bb, pp) = onchip_ops.wkv_step(k, v, aa, bb, pp, params, u_q, w_q);
    where it is 0, out = 0 and the state is kept (one WKV step per *token*). aa, bb are the 24-bit
    mantissas, pp the per-channel exponent (see `onchip_ops.wkv_step` for every width)."""

    def __init__(self, shape, params: dict, u_q, w_q, **kwargs):
        super().__init__(shape=shape, params=dict(params), **kwargs)
        from spike2loihi.execute import onchip_ops as oc

        self.k_in = InPort(shape=shape)
        self.v_in = InPort(shape=shape)
        self.gate = InPort(shape=(1,))
        self.s_out = OutPort(shape=shape)
        self.u_q = Var(shape=shape, init=np.asarray(u_q, np.int32))
        self.w_q = Var(shape=shape, init=np.asarray(w_q, np.int32))
        self.aa = Var(shape=shape, init=0)
        self.bb = Var(shape=shape, init=0)
        self.pp = Var(shape=shape, init=oc.WKV_E_EMPTY)


@implements(proc=FxpLayerNorm, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFxpLayerNormModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    gamma_q: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    beta_q: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)

    def run_spk(self):
        x = self.a_in.recv().astype(np.int64)[None, :]
        out = onchip_ops.layernorm(x, self.proc_params["params"], self.gamma_q.astype(np.int64),
                                   self.beta_q.astype(np.int64))
        self.s_out.send(out[0].astype(np.int32))


@implements(proc=FxpSigmoid, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFxpSigmoidModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def run_spk(self):
        p = self.proc_params
        x = self.a_in.recv().astype(np.int64)[p["lo"]:p["hi"]]
        self.s_out.send(onchip_ops.sigmoid(x, p["in_frac"]).astype(np.int32))


@implements(proc=TokenShiftCat, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyTokenShiftCatModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    gate: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=1)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    prev: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def run_spk(self):
        x = self.a_in.recv()
        if int(self.gate.recv()[0]):
            out = np.concatenate([x, self.prev]).astype(np.int32)
            self.prev = x.astype(np.int32).copy()
        else:
            out = np.zeros(self.s_out.shape, dtype=np.int32)
        self.s_out.send(out)


@implements(proc=FxpWKV, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFxpWKVModel(PyLoihiProcessModel):
    k_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    v_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    gate: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=1)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    u_q: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    w_q: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    aa: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    bb: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    pp: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def run_spk(self):
        k = self.k_in.recv().astype(np.int64)[None, :]
        v = self.v_in.recv().astype(np.int64)[None, :]
        if int(self.gate.recv()[0]):
            state = [x.astype(np.int64)[None, :] for x in (self.aa, self.bb, self.pp)]
            out, a, b, e = onchip_ops.wkv_step(k, v, *state, self.proc_params["params"], self.u_q.astype(np.int64),
                                               self.w_q.astype(np.int64))
            self.aa, self.bb, self.pp = (x[0].astype(np.int32) for x in (a, b, e))
            self.s_out.send(out[0].astype(np.int32))
        else:
            self.s_out.send(np.zeros(self.s_out.shape, dtype=np.int32))
