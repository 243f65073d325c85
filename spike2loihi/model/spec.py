"""The loaded model: configuration, semantics, tensors and tokenizer.

These types are the contract between the checkpoint reader and every backend
(float reference, quantizer, emulator, Lava graph). Tensor names are SpikeGPT's
own state-dict keys, so a reader of SPIKEGPT.md can find every weight.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, Optional, Protocol

import torch

SEMANTICS_CHOICES = ("run", "train")
#: The official inference code halves x after every RESCALE_LAYER-th block.
OFFICIAL_RESCALE_LAYER = 6
#: The official inference code applies the binary embedding only at this vocabulary size.
OFFICIAL_BINARY_EMBEDDING_VOCAB = 77


@dataclass(frozen=True)
class ModelConfig:
    """Sizes that follow from the checkpoint's shapes."""

    n_layer: int
    n_embd: int
    vocab_size: int

    @property
    def ffn_dim(self) -> int:
        return 4 * self.n_embd

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Semantics:
    """Which of SpikeGPT's two graphs a checkpoint is executed with.

    `run` is the official inference script (`src/model_run.py`): binary embedding
    only at vocabulary 77; `att.output` and `ffn.value` of block i divided by
    2**(i // 6) and x halved after every sixth block. `train` is the training graph
    (`src/model.py`): binary embedding always, no rescaling.
    """

    name: str
    binary_embedding: bool
    rescale_layer: int  # 0: never rescale

    @classmethod
    def named(cls, name: str, vocab_size: int) -> "Semantics":
        if name == "run":
            return cls("run", vocab_size == OFFICIAL_BINARY_EMBEDDING_VOCAB, OFFICIAL_RESCALE_LAYER)
        if name == "train":
            return cls("train", True, 0)
        raise ValueError(f"semantics must be one of {SEMANTICS_CHOICES}, not {name!r}")

    def weight_divisor(self, layer: int) -> int:
        """Divisor of att.output/ffn.value of `layer` (the official RESCALE quirk)."""
        return 2 ** (layer // self.rescale_layer) if self.rescale_layer else 1

    def halves_after(self, layer: int) -> bool:
        return bool(self.rescale_layer) and (layer + 1) % self.rescale_layer == 0

    def to_dict(self):
        return dataclasses.asdict(self)


class Tokenizer(Protocol):
    """What the toolchain needs of a tokenizer; converters/tokenizer.py implements it."""

    kind: str
    path: str

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list: ...

    def decode(self, ids) -> str: ...


# Roles group tensors for reports ("parameter counts by role") and for the
# partitioner later (which projections go on chip).
ROLE_EMBEDDING = "embedding"
ROLE_HEAD = "head"
ROLE_LAYERNORM = "layernorm"
ROLE_TIME = "time (decay, first, mix)"
ROLE_ATT = "attention projections"
ROLE_FFN = "ffn projections"


def expected_tensors(cfg: ModelConfig) -> Dict[str, tuple]:
    """Every key a SpikeGPT checkpoint of this size holds: name -> (shape, role)."""
    C, V, F = cfg.n_embd, cfg.vocab_size, cfg.ffn_dim
    table = {"emb.weight": ((V, C), ROLE_EMBEDDING)}
    for i in range(cfg.n_layer):
        p = f"blocks.{i}."
        lns = ["ln1", "ln2"] + (["ln0"] if i == 0 else [])
        for ln in lns:
            table[p + ln + ".weight"] = ((C,), ROLE_LAYERNORM)
            table[p + ln + ".bias"] = ((C,), ROLE_LAYERNORM)
        table[p + "att.time_decay"] = ((C,), ROLE_TIME)
        table[p + "att.time_first"] = ((C,), ROLE_TIME)
        for m in "kvr":
            table[p + f"att.time_mix_{m}"] = ((1, 1, C), ROLE_TIME)
        for proj in ("key", "value", "receptance", "output"):
            table[p + f"att.{proj}.weight"] = ((C, C), ROLE_ATT)
        for m in "kr":
            table[p + f"ffn.time_mix_{m}"] = ((1, 1, C), ROLE_TIME)
        table[p + "ffn.key.weight"] = ((F, C), ROLE_FFN)
        table[p + "ffn.receptance.weight"] = ((C, C), ROLE_FFN)
        table[p + "ffn.value.weight"] = ((C, F), ROLE_FFN)
    table["ln_out.weight"] = ((C,), ROLE_LAYERNORM)
    table["ln_out.bias"] = ((C,), ROLE_LAYERNORM)
    table["head.weight"] = ((V, C), ROLE_HEAD)
    return table


@dataclass
class ModelSpec:
    """A validated SpikeGPT checkpoint: config, tensors as stored, and its tokenizer."""

    config: ModelConfig
    tensors: Dict[str, torch.Tensor]
    source: str = ""
    source_format: str = ""  # "torch-zip", "torch-legacy", "safetensors", "memory"
    tokenizer: Optional[Tokenizer] = None

    @property
    def dtypes(self) -> Dict[str, int]:
        """How many tensors are stored in each dtype."""
        out: Dict[str, int] = {}
        for t in self.tensors.values():
            name = str(t.dtype).replace("torch.", "")
            out[name] = out.get(name, 0) + 1
        return out

    def parameter_counts(self) -> Dict[str, int]:
        roles = expected_tensors(self.config)
        counts: Dict[str, int] = {}
        for name, t in self.tensors.items():
            role = roles[name][1]
            counts[role] = counts.get(role, 0) + t.numel()
        return counts

    def semantics(self, name: str = "run") -> Semantics:
        return Semantics.named(name, self.config.vocab_size)
