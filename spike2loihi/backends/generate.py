"""Teacher-forced prefill and autoregressive generation, for any step-wise backend.

A backend offers `initial_state()` and `step(token, state) -> StepOutput` (see
spike2loihi.model.reference); the emulator and the Lava graph will offer the same.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np
import torch

from spike2loihi.model.sampling import choose


@dataclass
class RunResult:
    prompt_tokens: List[int]
    generated_tokens: List[int] = field(default_factory=list)
    prompt_logits: Optional[np.ndarray] = None  # [T, V] float32, teacher forced
    att_spikes: Optional[np.ndarray] = None  # [T, L, C] uint8 over the prompt
    ffn_spikes: Optional[np.ndarray] = None
    att_rate: Optional[np.ndarray] = None  # [L] mean firing rate over every step run
    ffn_rate: Optional[np.ndarray] = None
    prefill_s: float = 0.0
    generate_s: float = 0.0


def run(backend, prompt: List[int], max_new_tokens: int = 0, greedy: bool = False, temperature: float = 1.0,
        top_p: float = 1.0, seed: int = 0, keep_logits: bool = False, keep_spikes: bool = False,
        on_token: Optional[Callable[[int], None]] = None,
        on_progress: Optional[Callable[[str, int, int], None]] = None) -> RunResult:
    """Feed `prompt` token by token (teacher forced), then generate `max_new_tokens`.

    `on_token(token)` is called with each generated token as soon as it is chosen.
    `on_progress(phase, done, total)` is called with phase "prefill" (done = prompt
    tokens run so far, from 0 to len(prompt)) and then "generate" (done = tokens
    generated so far, from 0 to max_new_tokens); it observes and changes no result.
    """
    res = RunResult(prompt_tokens=list(prompt))
    report = on_progress if on_progress is not None else (lambda phase, done, total: None)
    state = backend.initial_state()
    logits_rows, att_rows, ffn_rows = [], [], []
    att_sum = ffn_sum = None
    steps = 0

    def account(out):
        nonlocal att_sum, ffn_sum, steps
        att_sum = out.att_spikes.clone() if att_sum is None else att_sum + out.att_spikes
        ffn_sum = out.ffn_spikes.clone() if ffn_sum is None else ffn_sum + out.ffn_spikes
        steps += 1

    t0 = time.perf_counter()
    out = None
    report("prefill", 0, len(prompt))
    for i, tok in enumerate(prompt):
        out = backend.step(tok, state)
        account(out)
        if keep_logits:
            logits_rows.append(out.logits.numpy().astype(np.float32))
        if keep_spikes:
            att_rows.append(out.att_spikes.numpy().astype(np.uint8))
            ffn_rows.append(out.ffn_spikes.numpy().astype(np.uint8))
        report("prefill", i + 1, len(prompt))
    res.prefill_s = time.perf_counter() - t0

    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    if max_new_tokens:
        report("generate", 0, max_new_tokens)
    for n in range(max_new_tokens):
        tok = choose(out.logits, greedy, temperature, top_p, gen)
        res.generated_tokens.append(tok)
        if on_token is not None:
            on_token(tok)
        if n + 1 < max_new_tokens:  # the last token's successor is never needed
            out = backend.step(tok, state)
            account(out)
        report("generate", n + 1, max_new_tokens)
    res.generate_s = time.perf_counter() - t0

    if keep_logits:
        res.prompt_logits = np.stack(logits_rows)
    if keep_spikes:
        res.att_spikes = np.stack(att_rows)
        res.ffn_spikes = np.stack(ffn_rows)
    res.att_rate = (att_sum.mean(dim=1) / steps).numpy()
    res.ffn_rate = (ffn_sum.mean(dim=1) / steps).numpy()
    return res
