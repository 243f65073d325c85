"""The `lava-sim` backend: a converted model as a Lava process graph in Lava's CPU simulator.

Unlike the step-wise backends, the graph runs a whole request at once (the
prompt pipelined one token per step, then generation inside the running graph),
so it offers `teacher_forced(tokens)` and `generate(...)` instead of `step`.
"""
from __future__ import annotations

from typing import Callable, List, Optional

from spike2loihi.convert.artifact import ConvertedModel
from spike2loihi.errors import BackendError
from spike2loihi.model.spec import ModelConfig


def require_lava() -> None:
    """One clear line when Lava is missing or broken (it runs on CPython 3.10 only)."""
    import sys

    from spike2loihi.lava.available import lava_problem

    first = lava_problem()
    if first is not None:
        raise BackendError(
            f"the lava-sim backend needs lava-nc 0.10.0 on CPython 3.10 (this is Python "
            f"{sys.version_info.major}.{sys.version_info.minor}): cannot import Lava ({first}); "
            "`make demo` builds .venv with it") from None


class LavaSimBackend:
    name = "lava-sim"
    target = None   # run_graph's target: None = Lava's CPU simulator (the loihi2 backend sets its own)

    def __init__(self, model: ConvertedModel):
        require_lava()
        self.model = model
        self.config = ModelConfig(**model.config)
        self.semantics = model.semantics
        self.last = None   # the last LavaResult (timings, processes, steps)

    def teacher_forced(self, tokens: List[int], progress: Optional[Callable[[int, int], None]] = None):
        """(logits [T, V] float32, att [T, L, C] bool, ffn [T, L, C] bool) for every token."""
        from spike2loihi.lava.runtime import run_graph

        def prog(phase, done, total):
            if progress is not None and phase == "prefill":
                progress(done, total)

        res = run_graph(self.model, list(tokens), 0, progress=prog, target=self.target)
        self.last = res
        return res.logits, res.att_spikes.astype(bool), res.ffn_spikes.astype(bool)

    def generate(self, prompt: List[int], max_new_tokens: int, greedy: bool, temperature: float, top_p: float,
                 seed: int, on_token=None, on_progress=None, keep_logits: bool = False, keep_spikes: bool = False):
        """Prefill and generation inside the running graph; a `generate.RunResult` like the
        step-wise backends give (same sampling: same seed, same tokens for the same logits)."""
        from spike2loihi.backends.generate import RunResult
        from spike2loihi.lava.runtime import run_graph

        res = run_graph(self.model, list(prompt), max_new_tokens, greedy, temperature, top_p, seed,
                        progress=on_progress, on_token=on_token, target=self.target)
        self.last = res
        T = len(prompt)
        out = RunResult(prompt_tokens=list(prompt), generated_tokens=list(res.generated),
                        prefill_s=res.timings.get("prefill_s", 0.0), generate_s=res.timings.get("generate_s", 0.0))
        if keep_logits:
            out.prompt_logits = res.logits[:T].astype("float32")
        if keep_spikes:
            out.att_spikes = res.att_spikes[:T].astype("uint8")
            out.ffn_spikes = res.ffn_spikes[:T].astype("uint8")
        out.att_rate = res.att_spikes.mean(axis=(0, 2))
        out.ffn_rate = res.ffn_spikes.mean(axis=(0, 2))
        return out


