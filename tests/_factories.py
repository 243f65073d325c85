"""Builders of test inputs: random SpikeGPT state dicts and char vocabularies.

Everything here is deterministic (a seeded torch.Generator), small and free of
file-format decisions, so that any test can reuse it:

    sd = random_state_dict(n_layer=2, n_embd=8, vocab=11, seed=0)
    torch.save(sd, tmp_path / "model.pth")
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List

import torch

from spike2loihi.model.spec import ModelConfig, expected_tensors

# Characters for char vocabularies: '\n' and ' ' first (as in the book vocabulary),
# then printable ASCII, then a few non-ASCII ones (Latin-1, BMP symbol, astral emoji)
# so that encodings are exercised once the vocabulary is large enough.
_CHAR_POOL = "\n " + "".join(chr(c) for c in range(33, 127)) + "éü€—😀"


def random_state_dict(n_layer: int, n_embd: int, vocab: int, seed: int = 0,
                      dtype: torch.dtype = torch.float32) -> Dict[str, torch.Tensor]:
    """A SpikeGPT state dict with exactly the keys and shapes of `expected_tensors`.

    Values resemble a trained RWKV-4/SpikeGPT model: LayerNorm weights near 1 and
    biases near 0; `time_decay` uniform in [-6, 1) (used as -exp(time_decay));
    `time_first` uniform in [-2, 0.5); time_mix factors (1x1xC) uniform in [0, 1);
    embedding N(0, 1); projection and head weights N(0, 1/sqrt(fan_in)).
    Tensors are generated in float32 from `seed` in table order, then cast to
    `dtype`, so the same arguments always give the same tensors (and the same seed
    gives the same values, up to rounding, in every dtype).
    """
    cfg = ModelConfig(n_layer=n_layer, n_embd=n_embd, vocab_size=vocab)
    gen = torch.Generator().manual_seed(seed)

    def normal(shape, std):
        return torch.randn(shape, generator=gen) * std

    def uniform(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=gen)

    sd: Dict[str, torch.Tensor] = {}
    for key, (shape, _role) in expected_tensors(cfg).items():
        leaf = key.rsplit(".", 1)[-1]
        if key == "emb.weight":
            t = normal(shape, 1.0)
        elif ".ln" in key or key.startswith("ln_out."):
            t = uniform(shape, 0.8, 1.2) if leaf == "weight" else normal(shape, 0.1)
        elif leaf == "time_decay":
            t = uniform(shape, -6.0, 1.0)
        elif leaf == "time_first":
            t = uniform(shape, -2.0, 0.5)
        elif leaf.startswith("time_mix_"):
            t = uniform(shape, 0.0, 1.0)
        elif len(shape) == 2:  # nn.Linear weight, out x in
            t = normal(shape, 1.0 / math.sqrt(shape[1]))
        else:  # pragma: no cover - expected_tensors grew a kind of tensor this helper does not know
            raise AssertionError(f"random_state_dict: no recipe for {key} {shape}")
        sd[key] = t.to(dtype).contiguous()
    return sd


def char_vocab(size: int) -> List[str]:
    """`size` distinct characters, sorted like the official trainer's vocabulary."""
    if not 1 <= size <= len(_CHAR_POOL):
        raise ValueError(f"char_vocab: size must be 1..{len(_CHAR_POOL)}, not {size}")
    return sorted(_CHAR_POOL[:size])


def write_char_vocab(path, chars, encoding: str = "utf-16") -> Path:
    """Write {"0": c0, "1": c1, ...} the way SpikeGPT's trainer does.

    The trainer opens the file with `encoding="utf-16"` (Python writes a BOM) and
    dumps with `ensure_ascii=False`; pass encoding="utf-8" for the other variant.
    """
    path = Path(path)
    with open(path, "w", encoding=encoding) as f:
        f.write(json.dumps({str(i): c for i, c in enumerate(chars)}, ensure_ascii=False))
    return path


SAMPLE_SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A spiking neural network emits binary spikes, one per token step.",
    "Loihi 2 runs the spiking blocks; the host keeps the embedding and the head.",
    "the cat sat on the mat and the dog sat on the log",
]


def train_hf_tokenizer(path=None, kind: str = "bpe", texts=None, vocab_size: int = 300):
    """Train a small HuggingFace `tokenizers` model and (if `path`) save it as JSON.

    kind "bpe": byte-level BPE like GPT-NeoX's 20B tokenizer (round-trips any text);
    kind "wordlevel": whitespace-split words plus "[UNK]" (round-trips in-vocabulary
    words joined by single spaces). Returns the `tokenizers.Tokenizer`.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    texts = list(SAMPLE_SENTENCES if texts is None else texts)
    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    elif kind == "wordlevel":
        tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.WordLevelTrainer(special_tokens=["[UNK]"], show_progress=False)
    else:
        raise ValueError(f"train_hf_tokenizer: kind must be 'bpe' or 'wordlevel', not {kind!r}")
    tok.train_from_iterator(texts, trainer)
    if path is not None:
        tok.save(str(path))
    return tok


__all__ = ["random_state_dict", "char_vocab", "write_char_vocab", "train_hf_tokenizer", "SAMPLE_SENTENCES"]
