"""When each op of the converted model handles a token, as time steps (Lava-free).

Token t enters the embedding at step t. A chip Dense delivers one step after it
receives; host ops and LIFs pass values on within the step. So IR node n
handles token t at step t + offset(n), offset(n) = max over its inputs of
offset(src) + latency(src). Prefill pipelines one token per step; a generated
token needs the whole path from the embedding to the sampler, then one step
for the sampled token to enter the embedding: `token_period = critical_path + 1`.

It is computed once, at conversion, and stored in the artifact (manifest
"schedule", offsets included); everything after reads `ConvertedModel.schedule`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

from spike2loihi.convert import ir


def latency(node: ir.Op) -> int:
    """Steps between a node receiving a token and its consumers seeing the result (`Op.latency`)."""
    return node.latency()


def edge_latency(src: ir.Op, dst: ir.Op) -> int:
    """Steps from `src` handling a token to `dst` seeing it: `src.latency()`, plus one where on-chip
    spikes reach an on-chip op (the residual) through a Dense (`--placement chip`)."""
    extra = int(src.spiking and src.placement.where == ir.CHIP and dst.placement.where == ir.CHIP)
    return src.latency() + extra


LIF_GATED, LIF_STOCK = "gated", "stock"
LIF_MODES = (LIF_GATED, LIF_STOCK)


@dataclass(frozen=True)
class Schedule:
    offsets: Dict[str, int]      # IR node -> step at which it handles token 0
    critical_path: int           # steps from a token at the embedding to its logits at the sampler
    token_period: int            # steps per generated token (critical_path + 1)
    lif: str = LIF_GATED         # gated: each LIF advances once per token; stock: every step (P per token)

    @property
    def steps_per_prefill_token(self) -> int:
        """Gated LIFs let the prompt pipeline one token per step; stock LIFs leak every step, so every token,
        prompt included, takes the token period."""
        return 1 if self.lif == LIF_GATED else self.token_period

    def to_dict(self) -> dict:
        d = {"critical_path_steps": self.critical_path, "token_period_steps": self.token_period,
             "prefill_tokens_per_step": 1, "offsets": dict(self.offsets)}
        if self.lif != LIF_GATED:   # (a gated model's manifest is unchanged)
            d.update(lif=self.lif, prefill_tokens_per_step=1.0 / self.token_period)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Schedule":
        lif = d.get("lif", LIF_GATED)
        if lif not in LIF_MODES:
            raise ValueError(f"schedule: unknown LIF mode {lif!r} (this toolchain knows {', '.join(LIF_MODES)})")
        return cls({str(k): int(v) for k, v in d["offsets"].items()}, int(d["critical_path_steps"]),
                   int(d["token_period_steps"]), lif)

    def steps_for(self, n_prompt: int, n_new: int) -> int:
        """Time steps to run for a prompt of n_prompt tokens and n_new generated tokens."""
        return ((n_prompt - 1) * self.steps_per_prefill_token + 1 + self.critical_path
                + max(0, n_new - 1) * self.token_period)


def schedule(graph: ir.Graph, lif: str = None) -> Schedule:
    off: Dict[str, int] = {}
    for n in graph.nodes.values():
        srcs = graph.inputs(n.name)
        off[n.name] = max((off[s] + edge_latency(graph.nodes[s], n) for s in srcs.values()), default=0)
    crit = off[next(n.name for n in graph.nodes.values() if not n.per_token)]
    return Schedule(off, crit, crit + 1, lif or LIF_GATED)
