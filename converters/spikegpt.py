"""SpikeGPT checkpoint reader: file -> validated ModelSpec.

One explicit table (spike2loihi.model.spec.expected_tensors) says which tensors a
checkpoint of a given size holds; every problem found against it is reported at
once, naming the key, the expected and the found shape or dtype. Files are read
with `torch.load(weights_only=True)`, so a pickle that needs code is refused
without running it.
"""
from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import Dict, List, Optional

import torch

from spike2loihi.errors import CheckpointError
from spike2loihi.model.spec import ModelConfig, ModelSpec, expected_tensors

ALLOWED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
WRAPPER_KEYS = ("state_dict", "model", "module")
STRIP_PREFIXES = ("module.", "_orig_mod.", "model.")
MAX_WRAPPER_DEPTH = 8  # {"state_dict": {"model": ...}} and the like
# Keys that other RWKV-family checkpoints carry and SpikeGPT's inference ignores
# or cannot use: named here so that the error says why.
UNSUPPORTED = {
    "pos_emb_x": "positional embedding (RWKV-LM my_pos_emb) is not part of SpikeGPT",
    "pos_emb_y": "positional embedding (RWKV-LM my_pos_emb) is not part of SpikeGPT",
    "head_q.weight": "head_qk copy attention (RWKV_HEAD_QK_DIM > 0) is not used by SpikeGPT",
    "head_k.weight": "head_qk copy attention (RWKV_HEAD_QK_DIM > 0) is not used by SpikeGPT",
    "copy_mask": "head_qk copy attention (RWKV_HEAD_QK_DIM > 0) is not used by SpikeGPT",
}
MAX_PROBLEMS_SHOWN = 12


def _sniff(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    if head.startswith(b"PK\x03\x04"):
        # A PyTorch checkpoint holds `<name>/data.pkl`; NumPy's .npz holds `<array>.npy` files.
        import zipfile

        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            return "torch-zip"  # unreadable directory: torch.load names the damage
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return "torch-zip"
        if names and all(n.endswith(".npy") for n in names):
            arrays = ", ".join(n[:-4] for n in names[:5]) + (", ..." if len(names) > 5 else "")
            raise CheckpointError(f"{path}: a NumPy .npz archive (arrays {arrays}), not a PyTorch checkpoint")
        shown = ", ".join(repr(n) for n in names[:3]) + (", ..." if len(names) > 3 else "")
        raise CheckpointError(f"{path}: a zip archive without data.pkl ({shown or 'no files'}), "
                              "not a PyTorch checkpoint")
    if head[:1] == b"\x80":
        return "torch-legacy"
    if len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if 2 <= n <= 100_000_000 and head[8:9] == b"{":
            return "safetensors"
    if head.lstrip()[:1] in (b"{", b"["):
        raise CheckpointError(f"{path}: looks like JSON text, not a PyTorch or safetensors checkpoint")
    raise CheckpointError(f"{path}: not a PyTorch (.pth zip or pickle) or safetensors checkpoint "
                          f"(starts with bytes {head[:8].hex()})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _load_raw(path: Path, fmt: str):
    if fmt == "safetensors":
        try:
            from safetensors.torch import load_file
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise CheckpointError(f"{path}: unreadable safetensors file ({_first_line(exc)})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=(fmt == "torch-zip"))
    except Exception as exc:
        msg = str(exc)
        # torch wraps *every* weights-only unpickling error (a truncated file too) in
        # "Weights only load failed ... WeightsUnpickler error: <detail>"; only some
        # details mean that the pickle asks for code.
        detail = _first_line(RuntimeError(msg.split("WeightsUnpickler error:", 1)[-1])) if msg else ""
        if "Weights only load failed" in msg:
            m = re.search(r"[Uu]nsupported class (.+)$|Unsupported global: GLOBAL (\S+)", detail)
            if m:
                what = m.group(1) or m.group(2)
                raise CheckpointError(f"{path}: refused: the pickle needs code to load ({what}); "
                                      "only plain tensors are accepted (torch.load weights_only=True)") from None
            m = re.search(r"Unsupported operand (\S+)", detail)
            if m:
                raise CheckpointError(f"{path}: refused: pickle opcode {m.group(1)} is not allowed by the "
                                      "safe loader; only plain tensors are accepted "
                                      "(torch.load weights_only=True)") from None
        if fmt == "torch-zip":
            raise CheckpointError(f"{path}: truncated or corrupt PyTorch zip archive "
                                  f"({detail or type(exc).__name__})") from None
        raise CheckpointError(f"{path}: unreadable PyTorch pickle, truncated or corrupt "
                              f"({detail or type(exc).__name__})") from None


def _shared_prefix(keys: List[str]) -> Optional[str]:
    """The known wrapper prefix (module., _orig_mod., model.) that every key starts with, if any."""
    return next((p for p in STRIP_PREFIXES if keys and all(k.startswith(p) for k in keys)), None)


def _unwrap(obj, source: str) -> Dict[str, object]:
    """The state dict inside `obj`: wrapper dicts descended, shared prefixes stripped.

    Both nest, in any order (a compiled model inside DDP saves `module._orig_mod.blocks...`),
    so both are repeated until nothing known is left to remove.
    """
    if not isinstance(obj, dict):
        raise CheckpointError(f"{source}: holds a {type(obj).__name__}, not a state dict")
    for _ in range(MAX_WRAPPER_DEPTH):  # bounded: a pickle can hold a dict that contains itself
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None or "emb.weight" in obj:
            break
        obj = inner
    keys = list(obj.keys())
    bad = [k for k in keys if not isinstance(k, str)]
    if bad:
        raise CheckpointError(f"{source}: state dict has non-string key {bad[0]!r}")
    while (prefix := _shared_prefix(keys)) is not None:  # each pass shortens every key: terminates
        obj = {k[len(prefix):]: v for k, v in obj.items()}
        keys = list(obj.keys())
    return obj


def _infer_config(sd: Dict[str, object], source: str) -> ModelConfig:
    emb = sd.get("emb.weight")
    if not isinstance(emb, torch.Tensor) or emb.dim() != 2:
        found = "missing" if emb is None else f"shape {_shape(emb)}"
        raise CheckpointError(f"{source}: key 'emb.weight' must be a V x C matrix, found {found}; "
                              "cannot infer the model size")
    vocab, n_embd = emb.shape
    layers = set()
    for k in sd:
        m = re.match(r"blocks\.([0-9]+)\.", k)
        if m:
            layers.add(int(m.group(1)))
    if not layers:
        raise CheckpointError(f"{source}: no 'blocks.N.' keys: not a SpikeGPT checkpoint")
    n_layer = max(layers) + 1
    if len(layers) != n_layer:
        # Checked before building the table: one key 'blocks.1000000000.x' must not
        # make us enumerate a billion expected blocks.
        absent = []
        i = 0
        while len(absent) < 8 and i < n_layer:  # the first few gaps, without enumerating them all
            if i not in layers:
                absent.append(str(i))
            i += 1
        more = ", ..." if n_layer - len(layers) > len(absent) else ""
        raise CheckpointError(f"{source}: block indices are not contiguous: highest is blocks.{n_layer - 1} "
                              f"but {n_layer - len(layers)} block(s) below it have no keys "
                              f"(blocks {', '.join(absent)}{more})")
    if vocab < 1 or n_embd < 1:
        raise CheckpointError(f"{source}: key 'emb.weight' has empty shape {_shape(emb)}")
    return ModelConfig(n_layer=n_layer, n_embd=int(n_embd), vocab_size=int(vocab))


def _shape(t) -> str:
    if isinstance(t, torch.Tensor):
        return "x".join(str(d) for d in t.shape) or "scalar"
    return type(t).__name__


def validate(sd: Dict[str, object], cfg: ModelConfig, source: str) -> List[str]:
    """All problems of a state dict against the table, one string each."""
    problems: List[str] = []
    table = expected_tensors(cfg)
    # Keys are shown with repr(): a key holding a newline must not break the one-line error.
    for key, (shape, _role) in table.items():
        t = sd.get(key)
        if t is None:
            problems.append(f"missing key {key!r} (expected {'x'.join(map(str, shape))})")
        elif not isinstance(t, torch.Tensor):
            problems.append(f"key {key!r} holds a {type(t).__name__}, expected a tensor")
        elif tuple(t.shape) != shape:
            problems.append(f"key {key!r}: expected shape {'x'.join(map(str, shape))}, found {_shape(t)}")
        elif t.dtype not in ALLOWED_DTYPES:
            problems.append(f"key {key!r}: dtype {str(t.dtype).replace('torch.', '')} "
                            "is not float32, float16 or bfloat16")
        else:
            finite = torch.isfinite(t)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                n_nan = int(torch.isnan(t).sum())
                kind = " and ".join(w for w, n in (("NaN", n_nan), ("Inf", bad - n_nan)) if n)
                problems.append(f"key {key!r}: {bad} non-finite value(s) ({kind})")
    for key in sd:
        if key not in table:
            why = UNSUPPORTED.get(key)
            problems.append(f"unknown key {key!r}" + (f": {why}" if why else "")
                            + (f" (shape {_shape(sd[key])})" if isinstance(sd[key], torch.Tensor) else ""))
    return problems


def spec_from_state_dict(sd, source="memory", source_format="memory", tokenizer=None) -> ModelSpec:
    """Validate a state dict (file contents or an in-memory model) into a ModelSpec."""
    sd = _unwrap(sd, source)
    cfg = _infer_config(sd, source)
    problems = validate(sd, cfg, source)
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = f"; and {len(problems) - MAX_PROBLEMS_SHOWN} more" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        raise CheckpointError(f"{source}: not a valid SpikeGPT checkpoint "
                              f"(n_layer {cfg.n_layer}, n_embd {cfg.n_embd}, vocab {cfg.vocab_size}): "
                              f"{len(problems)} problem(s): {shown}{more}")
    tensors = {k: sd[k] for k in expected_tensors(cfg)}
    spec = ModelSpec(config=cfg, tensors=tensors, source=str(source), source_format=source_format)
    if tokenizer is not None:
        attach_tokenizer(spec, tokenizer)
    return spec


def attach_tokenizer(spec: ModelSpec, tokenizer) -> None:
    from spike2loihi.errors import TokenizerError

    if tokenizer.vocab_size != spec.config.vocab_size:
        raise TokenizerError(f"{tokenizer.path}: tokenizer has {tokenizer.vocab_size} tokens but checkpoint "
                             f"{spec.source} has vocabulary {spec.config.vocab_size}")
    spec.tokenizer = tokenizer


def load_checkpoint(path, tokenizer_path: Optional[str] = None, find_tokenizer: bool = True) -> ModelSpec:
    """Read and validate a SpikeGPT checkpoint (.pth or .safetensors) and its tokenizer.

    Without `tokenizer_path`, a `vocab.json` beside the checkpoint is used if present.
    """
    from converters.tokenizer import load_tokenizer

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file")
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"{path}: not readable (permission denied)")
    fmt = _sniff(path)
    raw = _load_raw(path, fmt)
    spec = spec_from_state_dict(raw, source=str(path), source_format=fmt)
    if tokenizer_path is None and find_tokenizer:
        beside = path.parent / "vocab.json"
        if beside.exists():
            tokenizer_path = str(beside)
    if tokenizer_path is not None:
        attach_tokenizer(spec, load_tokenizer(tokenizer_path))
    return spec


def save_checkpoint(state_dict: Dict[str, torch.Tensor], path, dtype: Optional[torch.dtype] = None) -> None:
    """Write a SpikeGPT state dict the way the official trainer does (torch.save), atomically."""
    from spike2loihi.fileio import atomic_path

    sd = {k: (v.detach().to(dtype) if dtype is not None else v.detach()).contiguous().clone()
          for k, v in state_dict.items()}
    with atomic_path(path) as tmp:
        torch.save(sd, tmp)


def describe_json(spec: ModelSpec) -> dict:
    """The facts `inspect` reports, as plain JSON-able data."""
    cfg = spec.config
    counts = spec.parameter_counts()
    tok = spec.tokenizer
    return {
        "source": spec.source,
        "format": spec.source_format,
        "config": cfg.to_dict() | {"ffn_dim": cfg.ffn_dim},
        "parameters": {"total": sum(counts.values()), "by_role": counts},
        "dtypes": spec.dtypes,
        "validation": "ok",
        "semantics_default": spec.semantics("run").to_dict(),
        "tokenizer": None if tok is None else {"kind": tok.kind, "path": tok.path, "vocab_size": tok.vocab_size},
    }
