"""Train the bundled demo SpikeGPT (char level, 77 symbols) on this CPU.

    python examples/train_demo.py --out-dir examples/demo        # the committed run

Seeded; prints progress with an ETA, logs every step group to train_log.csv,
plots training_curve.png, writes the checkpoint in SpikeGPT's own format
(torch.save of the state dict) with vocab.json in the official UTF-16 format,
and measures held-out bits per character with the float reference in `run`
semantics (what `spike2loihi run` computes) next to smoothed bigram/unigram
baselines on the same split.
"""
import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import demo_corpus  # noqa: E402
from converters.spikegpt import save_checkpoint, spec_from_state_dict  # noqa: E402
from converters.tokenizer import CharTokenizer  # noqa: E402
from spike2loihi.reports.evaluate import bigram_baseline, heldout_bpc  # noqa: E402
from spike2loihi.fileio import atomic_path, write_text_atomic  # noqa: E402
from spike2loihi.model.spec import ModelConfig, Semantics  # noqa: E402
from spike2loihi.model.sequence import L2Wrap, SequenceModel  # noqa: E402

LN2 = math.log(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default="examples/demo")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--embd", type=int, default=192)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-final", type=float, default=5e-5)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--dropout", type=float, default=0.03)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-mb", type=float, default=10.0, help="store fp16 if fp32 would exceed this")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    train_text, held_text = demo_corpus.corpus()
    tok = CharTokenizer.from_text(train_text + held_text)
    assert tok.vocab_size == demo_corpus.VOCAB_SIZE
    train = np.array(tok.encode(train_text), dtype=np.int64)
    held = np.array(tok.encode(held_text), dtype=np.int64)
    print(f"corpus: {len(train)} train / {len(held)} held-out chars, vocabulary {tok.vocab_size}", flush=True)

    cfg = ModelConfig(n_layer=args.layers, n_embd=args.embd, vocab_size=tok.vocab_size)
    model = SequenceModel(cfg, Semantics.named("train", cfg.vocab_size), dropout=args.dropout)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {cfg.n_layer} layers x {cfg.n_embd}, {n_params} parameters", flush=True)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99), eps=1e-8)

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        frac = (step - args.warmup) / max(args.steps - args.warmup, 1)
        return args.lr_final + 0.5 * (args.lr - args.lr_final) * (1 + math.cos(math.pi * frac))

    # Fixed held-out windows for the running estimate (sequence mode, fresh state per window).
    starts = np.linspace(0, len(held) - args.ctx - 2, 16).astype(int)
    hx = torch.tensor(np.stack([held[s:s + args.ctx] for s in starts]))
    hy = torch.tensor(np.stack([held[s + 1:s + args.ctx + 1] for s in starts]))

    def quick_heldout():
        model.eval()
        with torch.no_grad():
            loss = F.cross_entropy(model(hx).reshape(-1, cfg.vocab_size), hy.reshape(-1))
        model.train()
        return float(loss) / LN2

    log_rows = []
    t0 = time.time()
    run_loss, run_n = 0.0, 0
    model.train()
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        ix = rng.integers(0, len(train) - args.ctx - 1, size=args.batch)
        x = torch.tensor(np.stack([train[i:i + args.ctx] for i in ix]))
        y = torch.tensor(np.stack([train[i + 1:i + args.ctx + 1] for i in ix]))
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        L2Wrap.apply(loss, logits).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        run_loss += float(loss)
        run_n += 1
        last = step == args.steps - 1
        if (step + 1) % 25 == 0 or last:
            el = time.time() - t0
            row = {"step": step + 1, "elapsed_s": round(el, 1), "train_bpc": round(run_loss / run_n / LN2, 4),
                   "lr": lr_at(step), "heldout_bpc": ""}
            if (step + 1) % args.eval_every == 0 or last:
                row["heldout_bpc"] = round(quick_heldout(), 4)
            log_rows.append(row)
            eta = el / (step + 1) * (args.steps - step - 1)
            print(f"step {step + 1}/{args.steps}  train {row['train_bpc']:.3f} bpc  "
                  f"held-out {row['heldout_bpc'] or '-'}  lr {row['lr']:.2e}  "
                  f"{(step + 1) * args.batch * args.ctx / el:.0f} tok/s  "
                  f"elapsed {el / 60:.1f} min  ETA {eta / 60:.1f} min", flush=True)
            run_loss, run_n = 0.0, 0
            with atomic_path(out / "train_log.csv") as tmp, open(tmp, "w", newline="") as f:
                wr = csv.DictWriter(f, fieldnames=list(row))
                wr.writeheader()
                wr.writerows(log_rows)
    train_time = time.time() - t0

    sd = model.state_dict()
    fp32_mb = sum(v.numel() * 4 for v in sd.values()) / 2**20
    dtype = torch.float32 if fp32_mb <= args.max_mb else torch.float16
    ckpt = out / "spikegpt-demo.pth"
    save_checkpoint(sd, ckpt, dtype=dtype)
    tok.save(out / "vocab.json")
    print(f"wrote {ckpt} ({ckpt.stat().st_size / 2**20:.2f} MB, {str(dtype).replace('torch.', '')})", flush=True)

    # Held-out bits per character of the saved checkpoint, as `spike2loihi run` computes it.
    spec = spec_from_state_dict(torch.load(ckpt, weights_only=True), source=str(ckpt))
    model_bpc = heldout_bpc(spec, held.tolist(), semantics="run", progress=True)
    base = bigram_baseline(train.tolist(), held.tolist(), cfg.vocab_size)
    metrics = {
        "config": cfg.to_dict(), "parameters": n_params, "checkpoint_dtype": str(dtype).replace("torch.", ""),
        "train_chars": int(len(train)), "heldout_chars": int(len(held)),
        "steps": args.steps, "batch": args.batch, "ctx": args.ctx, "seed": args.seed, "threads": args.threads,
        "train_time_s": round(train_time, 1),
        "heldout_bpc_reference_run_semantics": round(model_bpc, 4),
        "baselines": base,
        "command": "python examples/train_demo.py " + " ".join(sys.argv[1:]),
    }
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    plot_curve(log_rows, metrics, out / "training_curve.png")
    print(json.dumps(metrics, indent=2))


def plot_curve(rows, metrics, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [r["train_bpc"] for r in rows], label="train (running mean)", lw=1)
    ev = [(r["step"], r["heldout_bpc"]) for r in rows if r["heldout_bpc"] != ""]
    ax.plot([e[0] for e in ev], [e[1] for e in ev], "o-", label="held-out (16 windows)")
    ax.axhline(metrics["baselines"]["bigram_bpc"], color="gray", ls="--", label="smoothed bigram baseline")
    ax.axhline(metrics["heldout_bpc_reference_run_semantics"], color="green", ls=":",
               label="final, float reference (run)")
    ax.set_xlabel("step")
    ax.set_ylabel("bits per character")
    ax.set_ylim(0, max(5.0, metrics["baselines"]["bigram_bpc"] + 0.5))
    ax.set_title(f"demo SpikeGPT {metrics['config']['n_layer']}x{metrics['config']['n_embd']}, "
                 f"{metrics['train_time_s'] / 60:.0f} min on {metrics['threads']} CPU threads")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


if __name__ == "__main__":
    main()
