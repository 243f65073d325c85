"""SpikeGPT checkpoint reader: file -> validated ModelSpec.

One explicit table (spike2loihi.model.spec.expected_tensors) says which tensors a
checkpoint of a given size holds; every problem found against it is reported at
once, naming the key, the expected and the found shape or dtype. Files are read
with `torch.load(weights_only=True)`, so a pickle that needs code is refused
without running it.

A checkpoint is read as hostile: only a regular file is opened (a named pipe, a device
or a directory is refused unread, see `spike2loihi.inputs`), and before any tensor value
is touched every tensor must be backed by its own bytes (no zero stride, no storage
shared with another tensor or smaller than the tensor, a plain contiguous layout), the
sizes the file claims must fit in a memory budget (`memory_budget`), and the model size
inferred from the shapes must be within `MAX_N_LAYER`, `MAX_N_EMBD`, `MAX_VOCAB`. A
safetensors header is checked (shapes, offsets, claimed sizes) before its data is read.
Values must be finite and at most `MAX_ABS_VALUE` in magnitude.
"""
from __future__ import annotations

import json
import math
import os
import re
import stat
import struct
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from spike2loihi.errors import CheckpointError, InputFileError
from spike2loihi.inputs import check_input_file
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
#: Largest magnitude a weight may have. Finite but larger weights (1e30) would overflow the fp32
#: reference into NaN membranes without a word; with |w| <= 1e4 and n_embd <= MAX_N_EMBD its
#: intermediates stay finite. Trained SpikeGPT weights stay below 10.
MAX_ABS_VALUE = 1e4
#: Bounds on the model size inferred from shapes, checked before anything is built from it
#: (SpikeGPT 216M: 18 layers, n_embd 768, vocabulary 50,277).
MAX_N_LAYER = 1024
MAX_N_EMBD = 16384
MAX_VOCAB = 1 << 21
#: Bytes per parameter of the fp32 copies the float reference makes of the weights.
FP32_COPY_BYTES = 4
_VALUE_CHUNK = 1 << 22  # elements examined at once by `validate` (bounds its temporary memory)
_FALLBACK_MEMORY = 8 << 30  # when the machine's memory cannot be read


def _machine_memory() -> int:
    """Bytes of memory this process may use: physical memory, or a smaller cgroup limit."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 0
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit_file, "rb") as f:
                text = f.read(64).strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < (total or int(text) + 1):
            total = int(text)
    return total if total > 0 else _FALLBACK_MEMORY


def memory_budget() -> int:
    """Bytes a checkpoint's tensors (as stored plus their fp32 copies) may claim: half the memory."""
    return _machine_memory() // 2


def _size(n: int) -> str:
    """`n` bytes, readable: '16.0 GiB (17,179,869,184 bytes)'."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit} ({n:,} bytes)"
    return f"{n:,} bytes"


def _read_head(path: Path, n: int) -> bytes:
    """The first `n` bytes of a regular file; opened without blocking, so that a file swapped for
    a named pipe after `check_input_file` is refused instead of waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CheckpointError(f"{path}: not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(n)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)


def _sniff(path: Path) -> str:
    head = _read_head(path, 16)
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
        # torch's legacy reader prints its format string unformatted ("expected %ld got %ld<digits>")
        detail = re.sub(r"storage has wrong byte size: expected %ld got %ld.*",
                        "a storage's recorded byte size does not match its data", detail)
        if re.search(r"out of bounds for storage|resize storage that is not resizable", detail):
            raise CheckpointError(f"{path}: refused: a tensor claims more data than its storage holds "
                                  f"({detail})") from None
        if fmt == "torch-zip":
            raise CheckpointError(f"{path}: truncated or corrupt PyTorch zip archive "
                                  f"({detail or type(exc).__name__})") from None
        raise CheckpointError(f"{path}: unreadable PyTorch pickle, truncated or corrupt "
                              f"({detail or type(exc).__name__})") from None


_SAFETENSORS_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2,
                            "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
_SAFETENSORS_FLOATS = ("F16", "BF16", "F32", "F64", "F8_E5M2", "F8_E4M3")


def _refuse(source: str, what: str, problems: List[str]) -> None:
    """Raise one CheckpointError line listing `problems` (the first MAX_PROBLEMS_SHOWN of them)."""
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = f"; and {len(problems) - MAX_PROBLEMS_SHOWN} more" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        raise CheckpointError(f"{source}: refused: {len(problems)} {what}: {shown}{more}")


def _check_budget(source: str, sizes) -> None:
    """Refuse when the tensors' claimed bytes, as stored plus the fp32 copies the float reference
    makes of them, exceed the memory budget. `sizes`: (numel, element size, is floating point)."""
    stored = fp32 = 0
    for numel, elsize, floating in sizes:
        stored += numel * elsize
        fp32 += numel * FP32_COPY_BYTES if floating else 0
    budget = memory_budget()
    if stored + fp32 > budget:
        raise CheckpointError(f"{source}: refused: its tensors claim {_size(stored + fp32)} ({_size(stored)} "
                              f"as stored and {_size(fp32)} for their fp32 copies), more than the memory budget "
                              f"of {_size(budget)} (half of this machine's memory)")


def _safetensors_header(path: Path, file_size: int) -> None:
    """Check a safetensors header before its data is read: every tensor's dtype, shape and
    data_offsets, each tensor backed by exactly its own bytes inside the file, and the claimed
    sizes within the memory budget. One CheckpointError line otherwise."""
    head = _read_head(path, 8)
    (n,) = struct.unpack("<Q", head)
    if 8 + n > file_size:
        raise CheckpointError(f"{path}: truncated safetensors file: its header claims {n:,} bytes but the file "
                              f"has {file_size:,}")
    raw = _read_head(path, 8 + n)[8:]
    if len(raw) != n:
        raise CheckpointError(f"{path}: truncated safetensors file (the header ends early)")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable safetensors file (header is not JSON: "
                              f"{_first_line(exc)})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: unreadable safetensors file (header JSON nested too deeply)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: unreadable safetensors file (header is a JSON "
                              f"{type(header).__name__}, not an object)")
    data_len = file_size - 8 - n
    problems: List[str] = []
    spans: List[Tuple[int, int, str]] = []
    sizes = []
    for key, info in header.items():
        if key == "__metadata__":
            continue
        dtype = info.get("dtype") if isinstance(info, dict) else None
        shape = info.get("shape") if isinstance(info, dict) else None
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if dtype not in _SAFETENSORS_DTYPE_BYTES:
            problems.append(f"key {key!r}: unknown dtype {dtype!r}")
            continue
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            problems.append(f"key {key!r}: shape {shape!r} is not a list of sizes")
            continue
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            problems.append(f"key {key!r}: data_offsets {offsets!r} are not [begin, end]")
            continue
        numel = math.prod(shape)
        elsize = _SAFETENSORS_DTYPE_BYTES[dtype]
        shown = "x".join(map(str, shape)) or "scalar"
        begin, end = offsets
        if end - begin != numel * elsize:
            problems.append(f"key {key!r} ({shown} {dtype}): claims {numel * elsize:,} bytes but its "
                            f"data_offsets hold {end - begin:,}")
        else:
            spans.append((begin, end, key))
        sizes.append((numel, elsize, dtype in _SAFETENSORS_FLOATS))
    past = max(spans, default=None, key=lambda span: span[1])
    if past is not None and past[1] > data_len:
        raise CheckpointError(f"{path}: truncated safetensors file: its header places key {past[2]!r} up to "
                              f"byte {past[1]:,} of the data, but the file holds {data_len:,} bytes of data")
    last_end, last_key = 0, None
    for begin, end, key in sorted(spans):
        if begin < last_end and end > begin:
            problems.append(f"key {key!r}: its bytes overlap those of key {last_key!r}")
        if end > last_end:
            last_end, last_key = end, key
    _refuse(str(path), "tensor(s) in the safetensors header not backed by their own bytes", problems)
    _check_budget(str(path), sizes)


def _check_backing(sd: Dict[str, object], source: str) -> None:
    """Refuse, before any value is read, a tensor that is not plain data of its own: a zero stride
    (one stored value repeated, as `expand` makes), a storage smaller than the tensor, a storage
    shared with another tensor, a non-contiguous or non-dense layout. Then the memory budget."""
    problems: List[str] = []
    owner: Dict[int, str] = {}
    sizes = []
    for key, t in sd.items():
        if not isinstance(t, torch.Tensor):
            continue
        shown = _shape(t)
        if t.layout != torch.strided:
            problems.append(f"key {key!r} ({shown}): layout {str(t.layout).replace('torch.', '')}, "
                            "not a plain dense tensor")
            continue
        try:
            storage = t.untyped_storage()
            nbytes, ptr = storage.nbytes(), storage.data_ptr()
        except (RuntimeError, NotImplementedError, TypeError) as exc:
            problems.append(f"key {key!r} ({shown}): no readable storage ({_first_line(exc)})")
            continue
        numel, elsize = t.numel(), t.element_size()
        strides = "x".join(str(x) for x in t.stride())
        need = (t.storage_offset() + numel) * elsize if numel else 0
        if any(st == 0 and n > 1 for n, st in zip(t.shape, t.stride())):
            problems.append(f"key {key!r} ({shown}, strides {strides}): a zero stride repeats "
                            f"{nbytes // max(elsize, 1):,} stored value(s) as {numel:,}")
        elif nbytes < need:
            problems.append(f"key {key!r} ({shown}): claims {need:,} bytes but its storage holds {nbytes:,}")
        elif not t.is_contiguous():
            problems.append(f"key {key!r} ({shown}, strides {strides}): not a contiguous tensor")
        elif nbytes and ptr in owner:
            problems.append(f"key {key!r} ({shown}): shares its storage with key {owner[ptr]!r}")
        if nbytes:
            owner.setdefault(ptr, key)
        sizes.append((numel, elsize, t.is_floating_point()))
    _refuse(source, "tensor(s) not backed by their own storage (a checkpoint holds plain contiguous tensors)",
            problems)
    _check_budget(source, sizes)


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
    too_big = [f"{what} {n:,} (at most {bound:,})" for what, n, bound in
               (("n_layer", n_layer, MAX_N_LAYER), ("n_embd", int(n_embd), MAX_N_EMBD),
                ("vocabulary", int(vocab), MAX_VOCAB)) if n > bound]
    if too_big:
        raise CheckpointError(f"{source}: refused: the shapes claim a model larger than this tool reads: "
                              + ", ".join(too_big))
    return ModelConfig(n_layer=n_layer, n_embd=int(n_embd), vocab_size=int(vocab))


def _shape(t) -> str:
    if isinstance(t, torch.Tensor):
        return "x".join(str(d) for d in t.shape) or "scalar"
    return type(t).__name__


def _value_problem(key: str, t: torch.Tensor) -> Optional[str]:
    """What is wrong with the values of `t` (non-finite, or beyond MAX_ABS_VALUE in magnitude), or None.

    Examined a chunk at a time, so the temporaries stay small whatever the tensor's size."""
    flat = t.detach().reshape(-1)
    n_bad = n_nan = n_big = 0
    largest = 0.0
    for i in range(0, flat.numel(), _VALUE_CHUNK):
        chunk = flat[i:i + _VALUE_CHUNK]
        finite = torch.isfinite(chunk)
        n_finite = int(finite.sum())
        if n_finite != chunk.numel():
            n_bad += chunk.numel() - n_finite
            n_nan += int(torch.isnan(chunk).sum())
        mag = torch.where(finite, chunk.abs(), torch.zeros((), dtype=chunk.dtype))
        big = int((mag > MAX_ABS_VALUE).sum())
        if big:
            n_big += big
            largest = max(largest, float(mag.max()))
    found = []
    if n_bad:
        kind = " and ".join(w for w, n in (("NaN", n_nan), ("Inf", n_bad - n_nan)) if n)
        found.append(f"{n_bad} non-finite value(s) ({kind})")
    if n_big:
        found.append(f"{n_big} value(s) beyond +-{MAX_ABS_VALUE:g} (largest magnitude {largest:.3g}; "
                     "the fp32 reference would overflow)")
    return f"key {key!r}: " + " and ".join(found) if found else None


def validate(sd: Dict[str, object], cfg: ModelConfig, source: str) -> List[str]:
    """All problems of a state dict against the table, one string each: keys missing or unknown,
    shapes, dtypes, and values (NaN, Inf, or beyond +-MAX_ABS_VALUE)."""
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
        elif any(st == 0 and n > 1 for n, st in zip(t.shape, t.stride())):  # never materialised
            problems.append(f"key {key!r}: a zero stride repeats stored values ({_shape(t)}, strides "
                            f"{'x'.join(map(str, t.stride()))}); expected a plain tensor")
        else:
            problem = _value_problem(key, t)
            if problem:
                problems.append(problem)
    for key in sd:
        if key not in table:
            why = UNSUPPORTED.get(key)
            problems.append(f"unknown key {key!r}" + (f": {why}" if why else "")
                            + (f" (shape {_shape(sd[key])})" if isinstance(sd[key], torch.Tensor) else ""))
    return problems


def spec_from_state_dict(sd, source="memory", source_format="memory", tokenizer=None) -> ModelSpec:
    """Validate a state dict (file contents or an in-memory model) into a ModelSpec."""
    return _spec(_unwrap(sd, source), source, source_format, tokenizer)


def _spec(sd: Dict[str, object], source: str, source_format: str, tokenizer=None) -> ModelSpec:
    """A ModelSpec of an unwrapped state dict: config inferred (and bounded), every tensor validated."""
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
    budget = memory_budget()
    try:
        # a regular file only: a named pipe would block, a device (/dev/zero) never end
        st = check_input_file(path, "")
    except InputFileError as exc:
        hint = ", expected a checkpoint file" if os.path.isdir(path) else ""
        raise CheckpointError(f"{exc}{hint}") from None
    if st.st_size > budget:
        raise CheckpointError(f"{path}: refused: a file of {_size(st.st_size)}, more than the memory budget of "
                              f"{_size(budget)} (half of this machine's memory)")
    fmt = _sniff(path)
    if fmt == "safetensors":
        _safetensors_header(path, st.st_size)
    raw = _load_raw(path, fmt)
    sd = _unwrap(raw, str(path))
    _check_backing(sd, str(path))  # before any value is read
    spec = _spec(sd, str(path), fmt)
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
