"""The whole-model emulator: a converted model executed token by token, batched.

Chip ops run in Lava's integer arithmetic and host ops in `spike2loihi.execute.host_ops`,
each through its handler in `spike2loihi.execute.handlers` (the same handlers the Lava
host blocks call). So this defines, token by token, what the Lava graph must compute:
every logit and every spike.

Generation on the graph (DESIGN.md "Tokens and time steps"): every op, including each
LIF, advances exactly once per token, as here. The Lava graph keeps that true between
generated tokens with token-gated LIFs (see docs/LAVA.md); `idle` reproduces what a
stock, ungated LIF would compute instead (it keeps leaking for the steps between two tokens); a model
converted with `--lif stock` (Lava's own LIF, dv chosen for the token period P) idles P - 1 steps after
every token, as its Lava graph does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

from spike2loihi.convert import ir
from spike2loihi.convert.artifact import ConvertedModel
from spike2loihi.convert.schedule import LIF_STOCK
from spike2loihi.execute.handlers import (CHIP, HOST, Params, Payload, Stats, decode_output, encode_input,
                                          init_state, lif_idle, run_host_node)

__all__ = ["ModelEmulator", "Step", "Params", "Payload", "Stats", "encode_input", "decode_output", "run_host_node",
           "init_state", "spikes_by_population", "flatten_state", "unflatten_state"]


# ---------------------------------------------------------------------------
# The executor
# ---------------------------------------------------------------------------
@dataclass
class Step:
    logits: np.ndarray                 # float32 (batch, V)
    spikes: Dict[str, np.ndarray]      # LIF node name -> bool (batch, C)


class ModelEmulator:
    """Runs a ConvertedModel on a batch of independent sequences, one token each per `step`."""

    def __init__(self, model: ConvertedModel, batch_size: int = 1, stats: bool = False,
                 params: Optional[Params] = None, trace: Optional[Callable[[str, object], None]] = None):
        self.model = model
        self.trace = trace   # trace(name, value): every node's output, and "<chip node>.in" payloads
        self.graph = model.graph
        self.params = params or Params(model)
        self.batch = int(batch_size)
        self.stats = Stats() if stats else None
        self.order = [n for n in self.graph.nodes.values() if n.per_token]
        # per node, worked out once: its handler, and per input port the source and the crossing on the way
        self.plan = [(n, n.placement.where == ir.HOST, (HOST if n.placement.where == ir.HOST else CHIP).lookup(n),
                      [(port, src, self._crossing(n, src)) for port, src in self.graph.inputs(n.name).items()])
                     for n in self.order]
        self.head = ir.logits_node(self.graph)
        self.lifs = ir.lif_nodes(self.graph)
        # stock LIFs (`convert --lif stock`) leak every step: the P - 1 steps between two tokens, after each
        self.idle_steps = model.schedule.token_period - 1 if model.schedule.lif == LIF_STOCK else 0
        self.state = self.initial_state()

    def initial_state(self) -> Dict[str, Dict[str, np.ndarray]]:
        return {n.name: s for n in self.order for s in [init_state(self.params, n, self.batch)] if s is not None}

    def get_state(self) -> Dict[str, Dict[str, np.ndarray]]:
        """A deep copy, restorable with `set_state` (np.savez-able via `flatten_state`)."""
        return {k: {v: a.copy() for v, a in d.items()} for k, d in self.state.items()}

    def set_state(self, state) -> None:
        self.state = {k: {v: np.array(a) for v, a in d.items()} for k, d in state.items()}

    def _crossing(self, node: ir.Op, src_name: str) -> Optional[str]:
        """None when `src_name` and `node` are on the same side; "encode" into the chip; "decode" out of it."""
        src = self.graph.nodes[src_name]
        if src.placement.where == node.placement.where:
            return None
        return "encode" if node.placement.where == ir.CHIP else "decode"

    def _value(self, vals, node: ir.Op, src_name: str, crossing: Optional[str]):
        v = vals[src_name]
        if crossing is None:
            return v
        if crossing == "encode":
            p = encode_input(self.params, node, v, self.stats)
            if self.trace is not None:
                self.trace(node.name + ".in", p)
            return p
        return decode_output(self.params, self.graph.nodes[src_name], v)

    def step(self, tokens) -> Step:
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
        if tokens.shape[0] != self.batch:
            raise ValueError(f"step: {tokens.shape[0]} tokens for batch size {self.batch}")
        vals: Dict[str, object] = {}
        for n, on_host, handler, sources in self.plan:
            ins = {port: self._value(vals, n, src, crossing) for port, src, crossing in sources}
            st = self.state.get(n.name)
            if on_host:
                if "token" in n.ports:
                    ins["token"] = tokens
                vals[n.name] = handler(self.params, n, ins, st)
            else:
                vals[n.name] = handler(self.params, n, ins, st, self.stats)
            if self.trace is not None:
                self.trace(n.name, vals[n.name])
        logits = decode_output(self.params, self.head, vals[self.head.name])
        spikes = {n.name: vals[n.name].q.astype(bool) for n in self.lifs}
        if self.idle_steps:
            self.idle(self.idle_steps)
        if self.stats is not None:   # (spikes are counted by lif_update's counter)
            for name, s in spikes.items():
                self.stats.add(name, "neuron_steps", s.size)
        return Step(logits, spikes)

    def idle(self, steps: int) -> None:
        """What stock (ungated) LIFs do during `steps` steps without a token: they leak."""
        for n in self.lifs:
            lif_idle(self.params, n, self.state[n.name], steps)

    def run(self, tokens: np.ndarray, on_step: Optional[Callable[[int, Step], None]] = None) -> List[Step]:
        """Teacher-forced over tokens (batch, T) or (T,) for batch 1; returns one Step per token."""
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim == 1:
            tokens = tokens[None, :]
        out = []
        for t in range(tokens.shape[1]):
            s = self.step(tokens[:, t])
            out.append(s)
            if on_step is not None:
                on_step(t, s)
        return out


def spikes_by_population(graph: ir.Graph, spikes: Dict[str, np.ndarray], batch_index: int = 0):
    """(att [L, C], ffn [L, C]) bool arrays of one batch row."""
    lifs = ir.lif_nodes(graph)
    att = np.stack([spikes[n.name][batch_index] for n in lifs if n.population == "att"])
    ffn = np.stack([spikes[n.name][batch_index] for n in lifs if n.population == "ffn"])
    return att, ffn


def flatten_state(state: Dict[str, Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """{'node/var': array}: for np.savez."""
    return {f"{k}/{v}": a for k, d in state.items() for v, a in d.items()}


def unflatten_state(flat) -> Dict[str, Dict[str, np.ndarray]]:
    out: Dict[str, Dict[str, np.ndarray]] = {}
    for key in flat:
        node, var = key.rsplit("/", 1)
        out.setdefault(node, {})[var] = np.array(flat[key])
    return out
