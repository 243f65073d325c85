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


# ---------------------------------------------------------------------------
# Evaluating converted models against the float reference
# ---------------------------------------------------------------------------
def _stream(backend, tokens: List[int], progress=None, label: str = ""):
    """Teacher-forced pass: (nll per prediction in nats [T-1], argmax [T], att [T,L,C], ffn [T,L,C])."""
    state = backend.initial_state()
    n = len(tokens)
    nll = np.zeros(max(n - 1, 0))
    argmax = np.zeros(n, dtype=np.int64)
    att, ffn = [], []
    for i, tok in enumerate(tokens):
        out = backend.step(int(tok), state)
        logp = torch.log_softmax(out.logits.double(), -1)
        if i + 1 < n:
            nll[i] = -float(logp[tokens[i + 1]])
        argmax[i] = int(torch.argmax(out.logits))
        att.append(out.att_spikes.numpy().astype(bool))
        ffn.append(out.ffn_spikes.numpy().astype(bool))
        if progress is not None:
            progress(label, i + 1, n)
    return nll, argmax, np.stack(att), np.stack(ffn)


def perturbed_reference(spec: ModelSpec, semantics, model, seed: int = 0) -> ReferenceModel:
    """The float model with every chip weight moved by uniform noise of +-1/2 LSB of its grid.

    The noise floor: spike chaos at the size of the quantization error, with float arithmetic.
    """
    from spike2loihi.quantize import float_weights

    ref = ReferenceModel(spec, semantics)
    gen = torch.Generator().manual_seed(seed)
    for name, w in float_weights(ref).items():
        lsb = torch.as_tensor(weight_lsb(model, name), dtype=torch.float32)
        lsb = lsb[:, None] if lsb.dim() == 1 else lsb
        w.add_((torch.rand(w.shape, generator=gen, dtype=torch.float32) - 0.5) * lsb)
    return ref


def weight_lsb(model, name: str):
    """Float size of one mantissa step of chip node `name`: per row (array) or shared (float)."""
    qn = model.nodes[name]
    if qn.get("row_scale"):
        d, k = -int(qn["weight_exp"]), int(qn["truncate_bits"])
        return np.asarray(model.tensors[qn["row_scale"]], dtype=np.float64) * 2.0 ** (k - d)
    return float(qn["weight_step"])


def evaluate_backends(backends: Dict[str, object], tokens: List[int], reference: str = "torch",
                      char_level: bool = True, progress=None) -> dict:
    """Bits per character (or token, and perplexity) per backend; agreement and flips vs `reference`.

    `backends` maps a label to a backend (initial_state/step). Every backend is run
    teacher-forced over the same tokens from a fresh state.
    """
    runs = {label: _stream(b, tokens, progress, label) for label, b in backends.items()}
    out = {"tokens": len(tokens), "unit": "bits per character" if char_level else "bits per token",
           "backends": {}}
    ref = runs.get(reference)
    for label, (nll, argmax, att, ffn) in runs.items():
        bits = float(nll.mean() / LN2) if nll.size else float("nan")
        row = {"bits": round(bits, 6), "perplexity": round(float(2 ** bits), 4)}
        if ref is not None and label != reference:
            r_nll, r_argmax, r_att, r_ffn = ref
            rb = float(r_nll.mean() / LN2)
            row["bits_change_pct"] = round(100 * (bits - rb) / rb, 4)
            row["top1_agreement"] = round(float((argmax == r_argmax).mean()), 6)
            row["flip_rate_att"] = [round(float(x), 6) for x in (att != r_att).mean(axis=(0, 2))]
            row["flip_rate_ffn"] = [round(float(x), 6) for x in (ffn != r_ffn).mean(axis=(0, 2))]
        row["spike_rate_att"] = [round(float(x), 6) for x in att.mean(axis=(0, 2))]
        row["spike_rate_ffn"] = [round(float(x), 6) for x in ffn.mean(axis=(0, 2))]
        out["backends"][label] = row
    return out


def render_eval(res: dict) -> str:
    unit = res["unit"]
    rows = res["backends"]
    lines = [f"{unit} over {res['tokens']} tokens (teacher forced, from a fresh state)",
             f"  {'backend':<12} {'bits':>8} {'perplexity':>10} {'vs float':>9} {'top-1 agree':>11}  "
             f"flips % per layer, att | ffn"]
    for label, r in rows.items():
        change = f"{r['bits_change_pct']:+.2f}%" if "bits_change_pct" in r else "-"
        agree = f"{r['top1_agreement']:.4f}" if "top1_agreement" in r else "-"
        flips = ""
        if "flip_rate_att" in r:
            flips = (" ".join(f"{100 * x:.2f}" for x in r["flip_rate_att"]) + " | "
                     + " ".join(f"{100 * x:.2f}" for x in r["flip_rate_ffn"]))
        lines.append(f"  {label:<12} {r['bits']:>8.4f} {r['perplexity']:>10.3f} {change:>9} {agree:>11}  {flips}")
    if "noise floor" in rows:
        lines += ["", "noise floor: the float model with every chip weight moved by uniform +-1/2 LSB of its "
                      f"conversion grid (seed {res.get('noise_seed')}). A converted model whose change and "
                      "agreement sit near it costs no more than spike chaos does."]
    return "\n".join(lines)


def plot_eval(res: dict, out, title: str = "") -> None:
    """Bits per character per backend, and spike flip rates per layer vs the float reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["backends"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    labels = list(rows)
    ax.bar(range(len(labels)), [rows[k]["bits"] for k in labels], color="tab:blue")
    ax.set_xticks(range(len(labels)), labels)
    lo = min(rows[k]["bits"] for k in labels)
    ax.set_ylim(lo * 0.97, max(rows[k]["bits"] for k in labels) * 1.01)
    ax.set_ylabel(res["unit"])
    ax.set_title("accuracy per backend")
    ax = axes[1]
    for k in labels:
        if "flip_rate_att" in rows[k]:
            n = len(rows[k]["flip_rate_att"])
            ax.plot(range(n), [100 * x for x in rows[k]["flip_rate_att"]], "o-", label=f"{k}: att")
            ax.plot(range(n), [100 * x for x in rows[k]["flip_rate_ffn"]], "s--", label=f"{k}: ffn")
    n_layer = max((len(r["flip_rate_att"]) for r in rows.values() if "flip_rate_att" in r), default=1)
    ax.set_xticks(range(n_layer))
    ax.set_xlabel("layer")
    ax.set_ylabel("spikes differing from float (%)")
    ax.set_title("spike flips vs the float reference")
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=90)
    plt.close(fig)
