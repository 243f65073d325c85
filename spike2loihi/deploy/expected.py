"""The expected outputs of a deployment bundle's check, and how a board run is compared with them.

The expected outputs are `spike2loihi.execute.model_emulator.ModelEmulator` steps: row t holds the
logits and spikes of the t-th token fed in (the prompt, then every generated
token but the last), which is what the Lava graph records; greedy choice is
`spike2loihi.model.sampling.choose`, the function the graph's sampler calls. The run
script compares the board's rows with them in graph order (`evaluate.first_divergence`:
per token, att spikes, ffn spikes, logits; then the generated ids) and reports
the first divergence or "identical" (`first_divergence`, `describe_divergence`).
Lava-free; numpy and torch are imported inside the functions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

DEFAULT_PROMPT_TOKENS = 16
DEFAULT_MAX_NEW_TOKENS = 8
PROMPT_SEED = 0


@dataclass(frozen=True, eq=False)
class Outputs:
    """Token ids, logits [R, V] float32 and spikes [R, L, C] uint8 of one greedy run (R rows)."""

    prompt: Tuple[int, ...]
    generated: Tuple[int, ...]
    logits: object
    att_spikes: object
    ffn_spikes: object

    def save(self, f) -> None:
        import numpy as np

        np.savez(f, prompt_tokens=np.asarray(self.prompt, np.int64),
                 generated_tokens=np.asarray(self.generated, np.int64),
                 logits=np.asarray(self.logits, np.float32), att_spikes=np.asarray(self.att_spikes, np.uint8),
                 ffn_spikes=np.asarray(self.ffn_spikes, np.uint8))

    @classmethod
    def load(cls, path) -> "Outputs":
        import numpy as np

        with np.load(path) as z:
            return cls(tuple(int(t) for t in z["prompt_tokens"]), tuple(int(t) for t in z["generated_tokens"]),
                       z["logits"], z["att_spikes"], z["ffn_spikes"])


def default_prompt(vocab: int, n: int = DEFAULT_PROMPT_TOKENS) -> List[int]:
    """The fixed prompt when none is given: `n` token ids drawn with seed PROMPT_SEED (any model)."""
    import numpy as np

    return [int(t) for t in np.random.default_rng(PROMPT_SEED).integers(0, vocab, n)]


def expected_outputs(model, prompt: List[int], max_new_tokens: int,
                     progress: Optional[Callable[[int, int], None]] = None) -> Outputs:
    """The emulator's greedy run: the prompt teacher forced, then `max_new_tokens` tokens."""
    import numpy as np
    import torch

    from spike2loihi.execute.model_emulator import ModelEmulator, spikes_by_population
    from spike2loihi.model.sampling import choose

    ex = ModelEmulator(model, batch_size=1)
    T, N = len(prompt), int(max_new_tokens)
    rows = T + max(N - 1, 0)
    logits, att, ffn, gen = [], [], [], []
    gen_rng = torch.Generator().manual_seed(0)   # unused by greedy choice
    for t in range(rows):
        out = ex.step([prompt[t] if t < T else gen[t - T]])
        a, f = spikes_by_population(model.graph, out.spikes)
        logits.append(out.logits[0].astype(np.float32))
        att.append(a.astype(np.uint8))
        ffn.append(f.astype(np.uint8))
        if t >= T - 1 and len(gen) < N:
            gen.append(choose(torch.from_numpy(out.logits[0].copy()), True, 1.0, 1.0, gen_rng))
        if progress is not None:
            progress(t + 1, rows)
    return Outputs(tuple(int(x) for x in prompt), tuple(gen), np.stack(logits), np.stack(att), np.stack(ffn))


def first_divergence(expected: Outputs, got: Outputs) -> Optional[dict]:
    """The first place `got` differs from `expected` (token row, where, layer, population, channel,
    expected, got, phase), or None when every logit, spike and token id is equal."""
    import numpy as np

    from spike2loihi.reports.evaluate import first_divergence as first

    def run(o: Outputs) -> dict:
        lg = np.asarray(o.logits)
        return {"argmax": lg.argmax(-1) if lg.size else np.zeros(0, np.int64), "logits": lg,
                "att": np.asarray(o.att_spikes), "ffn": np.asarray(o.ffn_spikes)}

    T = len(expected.prompt)

    def phase(t: int) -> str:
        return f"prompt token {t}" if t < T else f"generated token {t - T} fed back"

    d = first(run(expected), run(got))
    if d is not None:
        return {"token": d["token"], "phase": phase(d["token"]), "where": d["where"], "layer": d["layer"],
                "population": d["population"], "channel": d["channel"], "expected": d["a"], "got": d["b"]}
    n_exp, n_got = len(expected.logits), len(got.logits)
    if n_exp != n_got:
        t = min(n_exp, n_got)
        return {"token": t, "phase": phase(t), "where": "rows", "layer": None, "population": None,
                "channel": None, "expected": n_exp, "got": n_got}
    for i in range(max(len(expected.generated), len(got.generated))):
        a = expected.generated[i] if i < len(expected.generated) else None
        b = got.generated[i] if i < len(got.generated) else None
        if a != b:
            return {"token": T + i, "phase": f"generated token {i}", "where": "token id", "layer": None,
                    "population": None, "channel": None, "expected": a, "got": b}
    return None


def describe_divergence(d: Optional[dict], expected: Outputs) -> str:
    rows = len(expected.logits)
    if d is None:
        return (f"identical: logits ({rows} x {expected.logits.shape[1]}), att and ffn spikes of every layer, and "
                f"the {len(expected.generated)} generated token ids equal the emulator's")
    where = {"spikes": "spikes", "logits": "logits", "rows": "number of rows", "token id": "token id"}[d["where"]]
    at = f"token row {d['token']} ({d['phase']}), {where}"
    if d["layer"] is not None:
        at += f", layer {d['layer']}, population {d['population']}"
    if d["channel"] is not None:
        at += f", channel {d['channel']}"
    return f"DIVERGED: first at {at}: expected {d['expected']}, got {d['got']}"
