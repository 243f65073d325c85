"""Shared by the emulator-vs-Lava test and fuzz script: build, run, compare.

`build_lava` turns an emulator `Graph` into Lava 0.10.0 processes with the
public Lava API; `run_lava` steps it under `Loihi2SimCfg(select_tag="fixed_pt")`
and returns recordings in the emulator's layout; `random_packed_graph` packs
many independent random cases into one Lava network (one OS process per Lava
process makes start-up the dominant cost, so cases share processes).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from spike2loihi.execute.process_emulator import LIFProc, PROBES, DenseProc, ProcessEmulator, ProcessGraph, SourceProc, SparseProc  # noqa: E402
from spike2loihi.convert.fixed_point import SignMode  # noqa: E402


# ---------------------------------------------------------------------------
# Lava side
# ---------------------------------------------------------------------------
def build_lava(graph: ProcessGraph, num_steps: int, sinks: bool = True):
    """Lava processes for `graph` (batch 1), plus sinks recording spikes and Dense outputs.

    Returns (procs, sinks): sinks[name] is a fixed-point sink RingBuffer on the
    node's output port (LIF s_out or Dense/Sparse a_out); none if `sinks=False`.
    """
    want_sinks = sinks
    from scipy.sparse import csr_matrix
    from lava.proc.dense.process import Dense as LDense
    from lava.proc.io.sink import RingBuffer as LSink
    from lava.proc.io.source import RingBuffer as LSource
    from lava.proc.lif.process import LIF as LLIF
    from lava.proc.sparse.process import Sparse as LSparse
    from lava.utils.weightutils import SignMode as LSignMode

    procs, sinks = {}, {}
    for name, node in graph.nodes.items():
        if isinstance(node, SourceProc):
            data = np.asarray(node.data)
            if data.ndim == 3:
                if data.shape[0] != 1:
                    raise ValueError("Lava runs batch 1 only")
                data = data[0]
            procs[name] = LSource(data=data.astype(np.int32))
        elif isinstance(node, DenseProc):
            kw = dict(weight_exp=int(node.weight_exp), num_weight_bits=int(node.num_weight_bits),
                      num_message_bits=int(node.num_message_bits), name=name)
            if node.sign_mode is not None:
                kw["sign_mode"] = LSignMode(SignMode(node.sign_mode).value)
            w = np.asarray(node.weights)
            if isinstance(node, SparseProc):
                procs[name] = LSparse(weights=csr_matrix(w), **kw)
            else:
                procs[name] = LDense(weights=w.copy(), **kw)
        elif isinstance(node, LIFProc):
            procs[name] = LLIF(shape=(node.n_out,), du=int(node.du), dv=int(node.dv), vth=int(node.vth),
                               bias_mant=np.asarray(node.bias_mant), bias_exp=np.asarray(node.bias_exp),
                               u=np.asarray(node.u), v=np.asarray(node.v), name=name)
        else:
            raise TypeError(type(node))
        if want_sinks and isinstance(node, (DenseProc, LIFProc)):
            sinks[name] = LSink(shape=(node.n_out,), buffer=num_steps)
            _out(procs[name]).connect(sinks[name].a_in)
    for s, d in graph.edges:
        _out(procs[s]).connect(procs[d].s_in if isinstance(graph.nodes[d], DenseProc) else procs[d].a_in)
    _check_connected(graph)
    return procs, sinks


def _out(proc):
    return proc.a_out if hasattr(proc, "a_out") else proc.s_out


def _check_connected(graph: ProcessGraph) -> None:
    """Lava compiles only what is connected to the process run() is called on."""
    names = list(graph.nodes)
    adj: Dict[str, set] = {n: set() for n in names}
    for s, d in graph.edges:
        adj[s].add(d)
        adj[d].add(s)
    seen, todo = {names[0]}, [names[0]]
    while todo:
        for m in adj[todo.pop()] - seen:
            seen.add(m)
            todo.append(m)
    if len(seen) != len(names):
        raise ValueError(f"graph is not connected: {sorted(set(names) - seen)} would not run")


def run_lava(graph: ProcessGraph, num_steps: int, sets: Optional[Dict[int, List[tuple]]] = None
             ) -> Dict[str, Dict[str, np.ndarray]]:
    """Run in Lava step by step; recordings as the emulator's (steps, 1, n) int64.

    u, v and a_buff are read with Var.get() after every step; spikes and Dense
    outputs come from sinks. `sets[t]` lists (node, var, value) applied with
    Var.set() before step t+1 (t >= 1). The runtime is always stopped.
    """
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    sets = sets or {}
    procs, sinks = build_lava(graph, num_steps)
    anchor = next(iter(procs.values()))
    cfg = Loihi2SimCfg(select_tag="fixed_pt")
    rec = {name: {var: np.zeros((num_steps, 1, graph.nodes[name].n_out), dtype=np.int64)
                  for var in PROBES[type(node)]} for name, node in graph.nodes.items()}
    try:
        for t in range(num_steps):
            for name, var, value in sets.get(t, []):
                getattr(procs[name], var).set(np.asarray(value))
            anchor.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
            for name, node in graph.nodes.items():
                if isinstance(node, LIFProc):
                    rec[name]["u"][t, 0] = _exact(procs[name].u.get())
                    rec[name]["v"][t, 0] = _exact(procs[name].v.get())
                elif isinstance(node, DenseProc):
                    rec[name]["a_buff"][t, 0] = _exact(procs[name].a_buff.get())
        for name, node in graph.nodes.items():
            if name in sinks:
                data = _exact(sinks[name].data.get())  # (n, steps)
                rec[name]["s" if isinstance(node, LIFProc) else "a_out"][:, 0, :] = data.T
            elif isinstance(node, SourceProc):
                d = np.asarray(node.data).reshape(-1, node.n_out, np.shape(node.data)[-1])[0]
                rec[name]["s_out"][:, 0, :] = d[:, np.arange(num_steps) % d.shape[-1]].T
    finally:
        anchor.stop()
    return rec


def _exact(x) -> np.ndarray:
    """Var.get() returns float64; every value here is an integer below 2**53."""
    a = np.asarray(x, dtype=np.float64)
    r = np.rint(a)
    assert np.array_equal(r, a), "Lava returned a non-integer"
    return r.astype(np.int64)


# ---------------------------------------------------------------------------
# Random packed cases
# ---------------------------------------------------------------------------
@dataclass
class Packed:
    """A Lava-sized network holding many independent random cases."""

    graph: ProcessGraph
    steps: int
    seed: int
    case_of: Dict[str, np.ndarray] = field(default_factory=dict)   # node -> case id per element
    labels: List[str] = field(default_factory=list)                # case id -> description

    @property
    def n_cases(self) -> int:
        return len(self.labels)


def _weights(rng, M, b_out, b_in, n_cols, col0, sparse):
    """Block-diagonal random weights: case c maps its b_in inputs to its b_out outputs."""
    style = rng.choice(["mixed", "mixed", "pos", "neg"])
    wmax = int(rng.choice([3, 40, 255, 256, 400]))
    W = np.zeros((M * b_out, n_cols), dtype=np.float64)
    for c in range(M):
        blk = rng.integers(-wmax, wmax + 1, (b_out, b_in)).astype(np.float64)
        if style == "pos":
            blk = np.abs(blk)
        elif style == "neg":
            blk = -np.abs(blk)
        if sparse:
            blk *= rng.random((b_out, b_in)) < rng.uniform(0.3, 1.0)
        W[c * b_out:(c + 1) * b_out, col0 + c * b_in:col0 + (c + 1) * b_in] = blk
    if rng.random() < 0.25:   # fractional weights: Lava truncates them (and Sparse infers sign first)
        nz = W != 0
        W[nz] += rng.uniform(-0.95, 0.95, int(nz.sum()))
        if rng.random() < 0.5:   # a lone small negative fraction among positives
            W[0, col0] = -0.5
        return W
    return W.astype(np.int64)


def _conn(rng, M, b_out, b_in, n_cols, col0, graded=None):
    sparse = bool(rng.random() < 0.5)
    cls = SparseProc if sparse else DenseProc
    sign_mode = None if rng.random() < 0.65 else SignMode(int(rng.integers(0, 4)))
    graded = bool(rng.random() < 0.5) if graded is None else graded
    exp_choice = int(rng.integers(-8, 8)) if rng.random() < 0.6 else int(rng.choice([-8, 0, 7]))
    return cls(weights=_weights(rng, M, b_out, b_in, n_cols, col0, sparse),
               weight_exp=exp_choice, num_weight_bits=int(rng.integers(1, 9)),
               sign_mode=sign_mode, num_message_bits=int(rng.choice([8, 16, 24])) if graded else 0)


def _lif(rng, n):
    def pick(opts):
        return int(opts[int(rng.integers(0, len(opts)))])
    du = pick([0, 1, 2048, 4094, 4095, int(rng.integers(0, 4096))])
    dv = pick([0, 1, 2048, 4095, int(rng.integers(0, 4096))])
    vth = int(min((1 << 17) - 1, int(2 ** rng.uniform(0, 17.01)) - 1)) if rng.random() < 0.9 else pick([0, (1 << 17) - 1])
    bias_mant = rng.integers(-4096, 4096, n) if rng.random() < 0.6 else 0
    bias_exp = rng.integers(0, 8, n) if rng.random() < 0.6 else int(rng.integers(0, 8))
    kind = rng.random()
    if kind < 0.4:
        u = v = 0
    elif kind < 0.75:
        u = rng.integers(-(1 << 23), 1 << 23, n)
        v = rng.integers(-(1 << 23), 1 << 23, n)
    else:  # near the 24-bit edges
        u = rng.choice([-1, 1], n) * ((1 << 23) - rng.integers(0, 200, n))
        v = rng.choice([-1, 1], n) * ((1 << 23) - 1 - rng.integers(0, 200, n))
        u = np.clip(u, -(1 << 23), (1 << 23) - 1)
    return LIFProc(shape=(n,), du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp, u=u, v=v)


TEMPLATES = ("chain", "fanin", "recurrent", "sin_fanin")


def random_packed_graph(seed: int, n_groups: int = 4, cases_per_group: int = 16, steps: int = 16,
                        templates: Sequence[str] = TEMPLATES) -> Packed:
    """`n_groups` random sub-networks (templates) x `cases_per_group` independent cases.

    Inside a group every process is wide and its weights block-diagonal, so
    each case owns its block of neurons, weights, biases, initial states and
    input columns, while Lava-shared scalars (du, dv, vth, weight_exp, nwb,
    sign mode, message bits) vary between groups and layers. All groups read
    one shared source (zero weights outside a case's columns), which keeps the
    network connected: Lava only runs what is connected.
    """
    rng = np.random.default_rng(seed)
    M = cases_per_group
    g = ProcessGraph()
    packed = Packed(graph=g, steps=steps, seed=seed)
    plans = []
    n_src = 0
    for gi in range(n_groups):
        b0 = int(rng.integers(1, 5))
        graded_src = bool(rng.random() < 0.5)
        plans.append((gi, str(rng.choice(list(templates))), b0, graded_src, n_src))
        n_src += M * b0
    data = np.zeros((n_src, steps), dtype=np.int64)
    for gi, tmpl, b0, graded_src, col0 in plans:
        cols = slice(col0, col0 + M * b0)
        if graded_src:
            mag = 1 << int(rng.integers(1, 24))
            data[cols] = np.clip(rng.integers(-mag, mag + 1, (M * b0, steps)), -(1 << 23), (1 << 23) - 1)
            data[cols] *= rng.random((M * b0, steps)) < rng.uniform(0.3, 1.0)
        else:
            data[cols] = rng.random((M * b0, steps)) < rng.uniform(0.05, 0.9)
    src = g.add("src", SourceProc(data=data))
    packed.case_of[src] = np.full(n_src, -1)
    for gi, tmpl, b0, graded_src, col0 in plans:
        for c in range(M):
            packed.labels.append(f"group {gi} ({tmpl}) case {c}")
        packed.case_of[src][col0:col0 + M * b0] = gi * M + np.repeat(np.arange(M), b0)
        _add_template(rng, g, packed, gi, tmpl, M, b0, graded_src, col0, n_src, src)
    return packed


def _add_template(rng, g, packed, gi, tmpl, M, b0, graded_src, col0, n_src, src):
    def block(name, node, b):
        g.add(name, node)
        packed.case_of[name] = gi * M + np.repeat(np.arange(M), b)
        return name

    def from_src(name, b):
        return block(name, _conn(rng, M, b, b0, n_src, col0, graded=graded_src if rng.random() < 0.7 else None), b)

    def layer(name, b_out, b_in):
        return block(name, _conn(rng, M, b_out, b_in, M * b_in, 0), b_out)

    p = f"g{gi}_"
    b1 = int(rng.integers(1, 5))
    if tmpl == "chain":
        depth = int(rng.integers(1, 4))
        c = from_src(p + "c1", b1)
        l_prev = block(p + "l1", _lif(rng, M * b1), b1)
        g.connect(src, c), g.connect(c, l_prev)
        b_prev = b1
        for k in range(2, depth + 1):
            if rng.random() < 0.15:   # LIF -> LIF directly: seen in the same step
                lk = block(p + f"l{k}", _lif(rng, M * b_prev), b_prev)
                g.connect(l_prev, lk)
            else:
                bk = int(rng.integers(1, 5))
                ck = layer(p + f"c{k}", bk, b_prev)
                lk = block(p + f"l{k}", _lif(rng, M * bk), bk)
                g.connect(l_prev, ck), g.connect(ck, lk)
                b_prev = bk
            l_prev = lk
    elif tmpl == "fanin":
        ca, cb = from_src(p + "ca", b1), from_src(p + "cb", b1)
        l1 = block(p + "l1", _lif(rng, M * b1), b1)
        for c in (ca, cb):
            g.connect(src, c), g.connect(c, l1)
        b2 = int(rng.integers(1, 5))
        c2, cskip = layer(p + "c2", b2, b1), from_src(p + "cskip", b2)
        l2 = block(p + "l2", _lif(rng, M * b2), b2)
        g.connect(l1, c2), g.connect(c2, l2), g.connect(src, cskip), g.connect(cskip, l2)
    elif tmpl == "recurrent":
        c1 = from_src(p + "c1", b1)
        l1 = block(p + "l1", _lif(rng, M * b1), b1)
        cr = layer(p + "crec", b1, b1)
        g.connect(src, c1), g.connect(c1, l1), g.connect(l1, cr), g.connect(cr, l1)
    elif tmpl == "sin_fanin":   # two LIFs summed at one Dense input
        ca, cb = from_src(p + "ca", b1), from_src(p + "cb", b1)
        la, lb = block(p + "la", _lif(rng, M * b1), b1), block(p + "lb", _lif(rng, M * b1), b1)
        b2 = int(rng.integers(1, 5))
        c2 = layer(p + "c2", b2, b1)
        l2 = block(p + "l2", _lif(rng, M * b2), b2)
        for c, lif in ((ca, la), (cb, lb)):
            g.connect(src, c), g.connect(c, lif), g.connect(lif, c2)
        g.connect(c2, l2)
    else:
        raise ValueError(tmpl)


# ---------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------
def first_mismatch(lava: Dict[str, Dict[str, np.ndarray]], emu: Dict[str, Dict[str, np.ndarray]],
                   packed: Optional[Packed] = None) -> Optional[dict]:
    """The earliest (by step) differing probed value, or None if all are equal."""
    best = None
    for name in sorted(lava):
        for var in sorted(lava[name]):
            a, b = lava[name][var], emu[name][var]
            if a.shape != b.shape:
                return dict(process=name, variable=var, step=0, index=-1, lava=str(a.shape), emulator=str(b.shape))
            bad = np.argwhere(a != b)
            if bad.size:
                t, _, i = bad[0]
                if best is None or t + 1 < best["step"]:
                    best = dict(process=name, variable=var, step=int(t) + 1, index=int(i),
                                lava=int(a[t, 0, i]), emulator=int(b[t, 0, i]))
                    if packed is not None and name in packed.case_of:
                        cid = int(packed.case_of[name][i])
                        best["case"] = packed.labels[cid] if cid >= 0 else "shared"
                        best["case_seed"] = packed.seed
    return best


def count_probed(rec: Dict[str, Dict[str, np.ndarray]]) -> int:
    return int(sum(a.size for vars_ in rec.values() for a in vars_.values()))


def compare_packed(packed: Packed) -> Tuple[Optional[dict], ProcessEmulator, int]:
    """Run one packed network in Lava and in the emulator; (mismatch, emulator, values compared)."""
    lava = run_lava(packed.graph, packed.steps)
    emu = ProcessEmulator(packed.graph, count_events=True)
    rec = emu.run(packed.steps)
    return first_mismatch(lava, rec, packed), emu, count_probed(lava)


#: Stand-ins for lava-loihi's embedded-IO adapters, written to a module file by the hardware-graph tests.
FAKE_EIO = '''"""Stand-ins for lava-loihi's embedded-IO adapters (same constructor and ports); pass-through
CPU models so that the graph can also run in Lava's CPU runtime."""
import types

import numpy as np
from lava.magma.core.decorator import implements, requires
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class PyToNxAdapter(AbstractProcess):
    def __init__(self, shape, num_message_bits=24, **kwargs):
        super().__init__(shape=shape, num_message_bits=num_message_bits, **kwargs)
        self.inp = InPort(shape=shape)
        self.out = OutPort(shape=shape)


class NxToPyAdapter(PyToNxAdapter):
    pass


class _PassThrough(PyLoihiProcessModel):
    inp: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def run_spk(self):
        self.out.send(self.inp.recv())


@implements(proc=PyToNxAdapter, protocol=LoihiProtocol)
@requires(CPU)
class PyToNxModel(_PassThrough):
    pass


@implements(proc=NxToPyAdapter, protocol=LoihiProtocol)
@requires(CPU)
class NxToPyModel(_PassThrough):
    pass


spike = types.SimpleNamespace(PyToNxAdapter=PyToNxAdapter, NxToPyAdapter=NxToPyAdapter)
'''
