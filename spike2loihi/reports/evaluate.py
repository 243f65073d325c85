"""Accuracy measures: bits per character (or token) and simple baselines."""
from __future__ import annotations

import copy
import math
import sys
import time
from typing import Dict, List, Optional

import numpy as np
import torch

from spike2loihi.model.spec import ModelSpec
from spike2loihi.model.reference import ReferenceModel

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
def _nll_from_logits(logits: torch.Tensor, tokens: List[int]) -> np.ndarray:
    logp = torch.log_softmax(logits.double(), -1)
    nxt = torch.as_tensor(tokens[1:], dtype=torch.long)
    return -logp[torch.arange(len(tokens) - 1), nxt].numpy()


def _stream(backend, tokens: List[int], progress=None, label: str = "", keep_logits: bool = False):
    """Teacher-forced pass: dict of nll per prediction (nats, [T-1]), argmax [T], att/ffn spikes
    [T, L, C] bool, and logits [T, V] if asked. Step-wise backends are stepped; graph backends
    (lava-sim) run `teacher_forced` once."""
    if hasattr(backend, "teacher_forced"):
        cb = (lambda done, total: progress(label, done, total)) if progress is not None else None
        logits, att, ffn = backend.teacher_forced(tokens, cb)
        lt = torch.from_numpy(np.asarray(logits, dtype=np.float32))
        return {"nll": _nll_from_logits(lt, tokens), "argmax": lt.argmax(-1).numpy(), "att": np.asarray(att),
                "ffn": np.asarray(ffn), "logits": np.asarray(logits) if keep_logits else None}
    state = backend.initial_state()
    n = len(tokens)
    rows = []
    att, ffn = [], []
    for i, tok in enumerate(tokens):
        out = backend.step(int(tok), state)
        rows.append(out.logits.float().clone())
        att.append(out.att_spikes.numpy().astype(bool))
        ffn.append(out.ffn_spikes.numpy().astype(bool))
        if progress is not None:
            progress(label, i + 1, n)
    lt = torch.stack(rows)
    return {"nll": _nll_from_logits(lt, tokens), "argmax": lt.argmax(-1).numpy(), "att": np.stack(att),
            "ffn": np.stack(ffn), "logits": lt.numpy() if keep_logits else None}


def first_divergence(a: dict, b: dict) -> Optional[dict]:
    """The first (token, where, layer, population, channel, a value, b value) at which two runs differ,
    spikes before logits within a token; None when logits and every spike are equal."""
    T = min(len(a["argmax"]), len(b["argmax"]))
    for t in range(T):
        for pop in ("att", "ffn"):
            diff = np.flatnonzero(a[pop][t] != b[pop][t])
            if diff.size:
                layer, ch = divmod(int(diff[0]), a[pop].shape[2])
                return {"token": t, "where": "spikes", "layer": layer, "population": pop, "channel": ch,
                        "a": int(a[pop][t, layer, ch]), "b": int(b[pop][t, layer, ch])}
        if a["logits"] is not None and b["logits"] is not None:
            diff = np.flatnonzero(a["logits"][t] != b["logits"][t])
            if diff.size:
                ch = int(diff[0])
                return {"token": t, "where": "logits", "layer": None, "population": None, "channel": ch,
                        "a": float(a["logits"][t, ch]), "b": float(b["logits"][t, ch])}
    return None


def perturbed_reference(spec: ModelSpec, semantics, model, seed: int = 0) -> ReferenceModel:
    """The float model with every chip weight moved by uniform noise of +-1/2 LSB of its grid.

    The noise floor: spike chaos at the size of the quantization error, with float arithmetic.
    """
    from spike2loihi.convert.quantize import float_weights

    ref = ReferenceModel(spec, semantics)
    # its own copies: fp32 checkpoints' weights are the checkpoint's tensors themselves (.float() of an
    # fp32 tensor is the tensor), which the float reference and the converter share
    ref.w = copy.deepcopy(ref.w)
    gen = torch.Generator().manual_seed(seed)
    for name, w in float_weights(ref).items():
        lsb = torch.as_tensor(weight_lsb(model, name), dtype=torch.float32)
        lsb = lsb[:, None] if lsb.dim() == 1 else lsb
        w.add_((torch.rand(w.shape, generator=gen, dtype=torch.float32) - 0.5) * lsb)
    return ref


def weight_lsb(model, name: str):
    """Float size of one mantissa step of chip node `name`: per row (array) or shared (float)."""
    qn = model.nodes[name]
    if qn.row_scale:
        d, k = -qn.weight_exp, qn.truncate_bits
        return np.asarray(model.tensors[qn.row_scale], dtype=np.float64) * 2.0 ** (k - d)
    return float(qn.weight_step)


def evaluate_backends(backends: Dict[str, object], tokens: List[int], reference: str = "torch",
                      char_level: bool = True, progress=None, compare: Optional[tuple] = None) -> dict:
    """Bits per character (or token, and perplexity) per backend; agreement and flips vs `reference`.

    `backends` maps a label to a backend (initial_state/step). Every backend is run
    teacher-forced over the same tokens from a fresh state.
    """
    keep = set(compare or ())
    runs = {label: _stream(b, tokens, progress, label, keep_logits=label in keep) for label, b in backends.items()}
    out = {"tokens": len(tokens), "unit": "bits per character" if char_level else "bits per token",
           "backends": {}}
    ref = runs.get(reference)
    for label, run in runs.items():
        nll, argmax, att, ffn = run["nll"], run["argmax"], run["att"], run["ffn"]
        bits = float(nll.mean() / LN2) if nll.size else float("nan")
        row = {"bits": round(bits, 6), "perplexity": round(float(2 ** bits), 4)}
        if ref is not None and label != reference:
            r_nll, r_argmax, r_att, r_ffn = ref["nll"], ref["argmax"], ref["att"], ref["ffn"]
            rb = float(r_nll.mean() / LN2)
            row["bits_change_pct"] = round(100 * (bits - rb) / rb, 4)
            row["top1_agreement"] = round(float((argmax == r_argmax).mean()), 6)
            row["flip_rate_att"] = [round(float(x), 6) for x in (att != r_att).mean(axis=(0, 2))]
            row["flip_rate_ffn"] = [round(float(x), 6) for x in (ffn != r_ffn).mean(axis=(0, 2))]
        row["spike_rate_att"] = [round(float(x), 6) for x in att.mean(axis=(0, 2))]
        row["spike_rate_ffn"] = [round(float(x), 6) for x in ffn.mean(axis=(0, 2))]
        out["backends"][label] = row
    if compare and all(c in runs for c in compare):
        a, b = compare
        div = first_divergence(runs[a], runs[b])
        out["comparison"] = {"a": a, "b": b, "identical": div is None, "first_divergence": div,
                             "tokens": len(tokens)}
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
    cmp = res.get("comparison")
    if cmp:
        if cmp["identical"]:
            lines += ["", f"{cmp['a']} and {cmp['b']}: identical logits and spikes (every population, every "
                          f"token) over {cmp['tokens']} tokens"]
        else:
            d = cmp["first_divergence"]
            lines += ["", f"{cmp['a']} and {cmp['b']} DIVERGE first at token {d['token']}: {d['where']}"
                          + (f" layer {d['layer']} {d['population']}" if d["layer"] is not None else "")
                          + f" channel {d['channel']}: {cmp['a']} {d['a']}, {cmp['b']} {d['b']}"]
    if "noise floor" in rows:
        lines += ["", "noise floor: the float model with every chip weight moved by uniform +-1/2 LSB of its "
                      f"conversion grid (seed {res.get('noise_seed')}). A converted model whose change and "
                      "agreement sit near it costs no more than spike chaos does."]
    return "\n".join(lines)


def plot_eval(res: dict, out, title: str = "") -> None:
    """Bits per character per backend, and spike flip rates per layer vs the float reference."""
    from spike2loihi import plots

    rows = res["backends"]
    fig, axes = plots.subplots(1, 2, figsize=(11, 4))
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
    plots.finish(fig, out, title)
