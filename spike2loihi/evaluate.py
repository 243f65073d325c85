"""Accuracy measures: bits per character (or token) and simple baselines."""
from __future__ import annotations

import math
import sys
import time
from typing import Dict, List

import numpy as np
import torch

from spike2loihi.model import ModelSpec
from spike2loihi.reference import ReferenceModel

LN2 = math.log(2)


def heldout_bpc(spec: ModelSpec, tokens: List[int], semantics: str = "run", progress: bool = False) -> float:
    """Mean -log2 p(next token) over a stream, RNN mode from a fresh state (teacher forced)."""
    model = ReferenceModel(spec, spec.semantics(semantics))
    state = model.initial_state()
    total, t0 = 0.0, time.time()
    n = len(tokens) - 1
    for i in range(n):
        logits = model.step(tokens[i], state).logits
        total -= float(torch.log_softmax(logits, -1)[tokens[i + 1]])
        if progress and ((i + 1) % 5000 == 0 or i + 1 == n):
            rate = (i + 1) / (time.time() - t0)
            print(f"  held-out {i + 1}/{n} tokens, {total / (i + 1) / LN2:.4f} bpc so far, "
                  f"{rate:.0f} tok/s", file=sys.stderr, flush=True)
    return total / n / LN2


def bigram_baseline(train: List[int], held: List[int], vocab: int) -> Dict[str, float]:
    """Add-k smoothed bigram and unigram models fit on `train`, measured on `held`.

    k is picked on the held-out split from a small grid, which flatters the
    baseline slightly (a conservative comparison for the model).
    """
    tr = np.asarray(train)
    ho = np.asarray(held)
    counts = np.zeros((vocab, vocab))
    np.add.at(counts, (tr[:-1], tr[1:]), 1)
    uni = np.bincount(tr, minlength=vocab).astype(float)
    best = None
    for k in (0.01, 0.03, 0.1, 0.3, 1.0):
        p = (counts + k) / (counts.sum(1, keepdims=True) + k * vocab)
        bpc = float(-np.log2(p[ho[:-1], ho[1:]]).mean())
        if best is None or bpc < best[0]:
            best = (bpc, k)
    pu = (uni + 1) / (uni.sum() + vocab)
    return {"bigram_bpc": round(best[0], 4), "bigram_add_k": best[1],
            "unigram_bpc": round(float(-np.log2(pu[ho[1:]]).mean()), 4)}
