"""converters/spikegpt.py: reading SpikeGPT checkpoints, and refusing bad ones in one line.

Every failure test checks the exact error type, that the message is one line, that
it names the file, and that it names the key / expected shape / found shape.
"""
from __future__ import annotations

import os
import pickle
import random
import re
import time
import zipfile

import pytest
import torch

from conftest import one_line_message
from safetensors.torch import save_file

from _factories import char_vocab, random_state_dict, train_hf_tokenizer, write_char_vocab
from converters.spikegpt import load_checkpoint, save_checkpoint, spec_from_state_dict
from converters.tokenizer import CharTokenizer, HFTokenizer, load_tokenizer
from spike2loihi.errors import CheckpointError, TokenizerError
from spike2loihi.model.spec import ModelConfig, expected_tensors

L, C, V = 2, 8, 11  # the small model most tests use
CFG = ModelConfig(n_layer=L, n_embd=C, vocab_size=V)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
FORMATS = {"zip": "torch-zip", "legacy": "torch-legacy", "safetensors": "safetensors"}


def save(sd, path, fmt="zip"):
    if fmt == "zip":
        torch.save(sd, path)
    elif fmt == "legacy":
        torch.save(sd, path, _use_new_zipfile_serialization=False)
    elif fmt == "safetensors":
        save_file(sd, str(path))
    else:
        raise ValueError(fmt)
    return path


def problem_about(msg, key):
    """The '; '-separated part of a validation message that is about `key`."""
    parts = [p for p in msg.split("; ") if f"'{key}'" in p]
    assert len(parts) == 1, f"expected one problem about {key!r} in: {msg}"
    return parts[0]


def without_paths(msg, *paths):
    for p in paths:
        msg = msg.replace(str(p), "<path>")
    return msg


def load_error(path, err_type=CheckpointError, **kwargs):
    with pytest.raises(err_type) as excinfo:
        load_checkpoint(path, **kwargs)
    return excinfo


# --------------------------------------------------------------------------- factory


@pytest.mark.parametrize("sizes", [(1, 4, 3), (2, 8, 11), (3, 12, 77)])
def test_factory_has_exactly_the_table_keys_and_shapes(sizes):
    n_layer, n_embd, vocab = sizes
    sd = random_state_dict(n_layer, n_embd, vocab, seed=0)
    table = expected_tensors(ModelConfig(n_layer, n_embd, vocab))
    assert list(sd) == list(table)
    for key, (shape, _role) in table.items():
        assert tuple(sd[key].shape) == shape, key
        assert sd[key].dtype == torch.float32
    # and the reader accepts it as a valid checkpoint of that size
    assert spec_from_state_dict(sd).config == ModelConfig(n_layer, n_embd, vocab)


def test_factory_is_deterministic_and_seeded():
    a = random_state_dict(L, C, V, seed=3)
    b = random_state_dict(L, C, V, seed=3)
    c = random_state_dict(L, C, V, seed=4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["head.weight"], c["head.weight"])
    half = random_state_dict(L, C, V, seed=3, dtype=torch.float16)
    assert all(half[k].dtype == torch.float16 for k in half)
    assert all(torch.equal(half[k], a[k].half()) for k in a)


def test_factory_values_are_realistic():
    sd = random_state_dict(2, 64, 11, seed=0)
    decay = torch.cat([sd[f"blocks.{i}.att.time_decay"] for i in range(2)])
    assert decay.min() >= -6 and decay.max() < 1 and decay.std() > 1  # spread over the range
    for i in range(2):
        for key in (f"blocks.{i}.att.time_mix_k", f"blocks.{i}.att.time_mix_v", f"blocks.{i}.att.time_mix_r",
                    f"blocks.{i}.ffn.time_mix_k", f"blocks.{i}.ffn.time_mix_r"):
            assert sd[key].shape == (1, 1, 64)
            assert sd[key].min() >= 0 and sd[key].max() <= 1
    w = sd["blocks.0.att.key.weight"]
    assert abs(w.std().item() - 64 ** -0.5) < 0.03
    assert abs(sd["blocks.0.ffn.value.weight"].std().item() - 256 ** -0.5) < 0.02
    assert (sd["blocks.0.ln1.weight"] - 1).abs().max() <= 0.2


# --------------------------------------------------------------------------- good checkpoints


@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_loads_each_format_and_dtype(tmp_path, fmt, dtype_name):
    dtype = DTYPES[dtype_name]
    sd = random_state_dict(L, C, V, seed=1, dtype=dtype)
    path = save(sd, tmp_path / ("model.safetensors" if fmt == "safetensors" else "model.pth"), fmt)
    spec = load_checkpoint(path)
    assert spec.config == CFG
    assert spec.source == str(path)
    assert spec.source_format == FORMATS[fmt]
    assert spec.tokenizer is None
    assert set(spec.tensors) == set(expected_tensors(CFG))
    for key, t in spec.tensors.items():
        assert t.dtype == dtype, key
        assert torch.equal(t, sd[key]), key
    assert spec.dtypes == {str(dtype).replace("torch.", ""): len(sd)}


@pytest.mark.parametrize("sizes", [(1, 4, 3), (3, 8, 11), (2, 16, 77), (4, 4, 256)])
def test_config_is_inferred_from_shapes(tmp_path, sizes):
    n_layer, n_embd, vocab = sizes
    path = save(random_state_dict(n_layer, n_embd, vocab, seed=2), tmp_path / "m.pth")
    cfg = load_checkpoint(path).config
    assert (cfg.n_layer, cfg.n_embd, cfg.vocab_size) == sizes
    assert cfg.ffn_dim == 4 * n_embd


WRAPPERS = {
    "state_dict": lambda sd: {"state_dict": sd, "epoch": 3},
    "model": lambda sd: {"model": sd},
    "module_prefix": lambda sd: {"module." + k: v for k, v in sd.items()},
    "state_dict_and_module_prefix": lambda sd: {"state_dict": {"module." + k: v for k, v in sd.items()},
                                                "optimizer": {"lr": 0.001}},
}


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
def test_wrapped_state_dicts(tmp_path, wrapper):
    sd = random_state_dict(L, C, V, seed=5, dtype=torch.float16)
    path = save(WRAPPERS[wrapper](sd), tmp_path / "wrapped.pth")
    spec = load_checkpoint(path)
    assert spec.config == CFG
    assert set(spec.tensors) == set(sd)
    assert all(torch.equal(spec.tensors[k], sd[k]) for k in sd)


def test_module_prefix_in_safetensors(tmp_path):
    sd = random_state_dict(L, C, V, seed=6, dtype=torch.bfloat16)
    path = save({"module." + k: v for k, v in sd.items()}, tmp_path / "m.safetensors", "safetensors")
    spec = load_checkpoint(path)
    assert spec.config == CFG and spec.source_format == "safetensors"
    assert all(torch.equal(spec.tensors[k], sd[k]) for k in sd)


def test_save_checkpoint_round_trip(tmp_path):
    sd = random_state_dict(L, C, V, seed=7)
    path = tmp_path / "out" / "saved.pth"
    save_checkpoint(sd, path, dtype=torch.bfloat16)
    spec = load_checkpoint(path)
    assert spec.source_format == "torch-zip"
    assert all(torch.equal(spec.tensors[k], sd[k].to(torch.bfloat16)) for k in sd)
    assert sorted(p.name for p in path.parent.iterdir()) == ["saved.pth"]  # no temporary file left


# --------------------------------------------------------------------------- invalid state dicts


def test_all_problems_reported_at_once(tmp_path):
    sd = random_state_dict(L, C, V, seed=8)
    sd["blocks.1.att.key.weight"] = torch.zeros(C, C + 1)
    sd["blocks.0.ffn.value.weight"] = torch.zeros(C, 4 * C - 1)
    del sd["ln_out.bias"]
    path = save(sd, tmp_path / "three.pth")
    msg = one_line_message(load_error(path), CheckpointError, path, "3 problem")
    seg = problem_about(msg, "blocks.1.att.key.weight")
    assert re.search(r"expected\D*8x8\b.*found\D*8x9\b", seg), seg
    seg = problem_about(msg, "blocks.0.ffn.value.weight")
    assert re.search(r"expected\D*8x32\b.*found\D*8x31\b", seg), seg
    seg = problem_about(msg, "ln_out.bias")
    assert "missing" in seg and re.search(r"\b8\b", seg), seg


def test_nonfinite_values_are_reported_with_the_other_problems(tmp_path):
    sd = random_state_dict(L, C, V, seed=9)
    sd["blocks.0.att.key.weight"] = torch.zeros(C, C + 1)
    sd["head.weight"][3, 4] = float("nan")
    path = save(sd, tmp_path / "two.pth")
    msg = one_line_message(load_error(path), CheckpointError, path, "2 problem")
    assert "9" in problem_about(msg, "blocks.0.att.key.weight")
    assert "NaN" in problem_about(msg, "head.weight")


def _nan(sd):
    sd["blocks.0.att.value.weight"][2, 5] = float("nan")


def _inf(sd):
    sd["head.weight"][0, 0] = float("inf")
    sd["head.weight"][1, 1] = float("-inf")


def _nan_and_inf(sd):
    sd["blocks.1.ffn.key.weight"][0, 0] = float("nan")
    sd["blocks.1.ffn.key.weight"][0, 1] = float("inf")


# name: (change to the state dict, key the error must name, other fragments of that problem)
SINGLE_PROBLEMS = {
    "unknown_key": (lambda sd: sd.__setitem__("blocks.0.att.extra", torch.zeros(C)),
                    "blocks.0.att.extra", ["unknown"]),
    "pos_emb_x": (lambda sd: sd.__setitem__("pos_emb_x", torch.zeros(1, 16, C)),
                  "pos_emb_x", ["unknown", "positional"]),
    "int32": (lambda sd: sd.__setitem__("blocks.1.att.time_first", torch.zeros(C, dtype=torch.int32)),
              "blocks.1.att.time_first", ["int32"]),
    "float64": (lambda sd: sd.__setitem__("ln_out.weight", torch.ones(C, dtype=torch.float64)),
                "ln_out.weight", ["float64"]),
    "int_embedding": (lambda sd: sd.__setitem__("emb.weight", torch.zeros(V, C, dtype=torch.int32)),
                      "emb.weight", ["int32"]),
    "nan": (_nan, "blocks.0.att.value.weight", ["NaN", "1 "]),
    "inf": (_inf, "head.weight", ["Inf", "2 "]),
    "nan_and_inf": (_nan_and_inf, "blocks.1.ffn.key.weight", ["NaN", "Inf", "2 "]),
    "list_value": (lambda sd: sd.__setitem__("blocks.0.ln2.bias", [0.0] * C),
                   "blocks.0.ln2.bias", ["list", "tensor"]),
    "int_value": (lambda sd: sd.__setitem__("blocks.1.att.time_decay", 3),
                  "blocks.1.att.time_decay", ["int", "tensor"]),
    "missing_key": (lambda sd: sd.pop("blocks.1.ffn.time_mix_r"), "blocks.1.ffn.time_mix_r", ["missing", "1x1x8"]),
    "flat_time_mix": (lambda sd: sd.__setitem__("blocks.0.att.time_mix_k", torch.zeros(C)),
                      "blocks.0.att.time_mix_k", ["1x1x8", "found 8"]),
    "transposed_ffn_key": (lambda sd: sd.__setitem__("blocks.0.ffn.key.weight", torch.zeros(C, 4 * C)),
                           "blocks.0.ffn.key.weight", ["32x8", "8x32"]),
    "wrong_vocab_head": (lambda sd: sd.__setitem__("head.weight", torch.zeros(V + 1, C)),
                         "head.weight", ["11x8", "12x8"]),
}


@pytest.mark.parametrize("case", list(SINGLE_PROBLEMS))
def test_single_problem_names_the_key(tmp_path, case):
    change, key, fragments = SINGLE_PROBLEMS[case]
    sd = random_state_dict(L, C, V, seed=10)
    change(sd)
    path = save(sd, tmp_path / f"{case}.pth")
    msg = one_line_message(load_error(path), CheckpointError, path, "1 problem")
    seg = problem_about(msg, key)
    for frag in fragments:
        assert frag in seg, f"{frag!r} not in {seg!r}"


def test_problems_found_in_memory_name_the_source():
    sd = random_state_dict(L, C, V, seed=11)
    sd["blocks.0.att.extra"] = torch.zeros(3)
    with pytest.raises(CheckpointError) as excinfo:
        spec_from_state_dict(sd, source="my-model")
    problem_about(one_line_message(excinfo, CheckpointError, "my-model"), "blocks.0.att.extra")


def test_key_with_a_newline_keeps_the_message_on_one_line(tmp_path):
    sd = random_state_dict(L, C, V, seed=12)
    sd["blocks.0.att.extra\nTraceback: injected"] = torch.zeros(1)
    path = save(sd, tmp_path / "newline.pth")
    one_line_message(load_error(path), CheckpointError, path, "blocks.0.att.extra\\nTraceback")


def test_missing_embedding_is_named(tmp_path):
    sd = random_state_dict(L, C, V, seed=13)
    del sd["emb.weight"]
    path = save(sd, tmp_path / "noemb.pth")
    one_line_message(load_error(path), CheckpointError, path, "'emb.weight'")


def test_missing_block_is_named(tmp_path):
    sd = random_state_dict(3, C, V, seed=14)
    sd = {k: v for k, v in sd.items() if not k.startswith("blocks.1.")}
    path = save(sd, tmp_path / "gap.pth")
    msg = one_line_message(load_error(path), CheckpointError, path, "blocks.2")
    assert re.search(r"blocks?\W+1\b", without_paths(msg, path)), msg


def test_huge_block_index_is_refused_quickly(tmp_path):
    """One key 'blocks.1000000000.x' must not make the reader enumerate a billion blocks."""
    sd = random_state_dict(L, C, V, seed=15)
    sd["blocks.1000000000.att.key.weight"] = torch.zeros(C, C)
    path = save(sd, tmp_path / "huge.pth")
    t0 = time.perf_counter()
    one_line_message(load_error(path), CheckpointError, path, "blocks.1000000000")
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize("obj, what", [([1, 2], "list"), (torch.zeros(3), "Tensor"),
                                       ({"emb.weight": torch.zeros(V, C)}, "blocks")])
def test_not_a_state_dict(tmp_path, obj, what):
    path = save(obj, tmp_path / "odd.pth")
    one_line_message(load_error(path), CheckpointError, path, what)


# --------------------------------------------------------------------------- hostile or malformed files


def _valid_bytes(tmp_path, fmt):
    path = save(random_state_dict(L, C, V, seed=16), tmp_path / f"valid.{fmt}", fmt)
    return path.read_bytes()


def _safetensors_bad_header():
    header = b'{"emb.weight": not json'
    return len(header).to_bytes(8, "little") + header


MALFORMED = {
    "empty": lambda tmp: b"",
    "truncated_zip": lambda tmp: (lambda b: b[: len(b) // 2])(_valid_bytes(tmp, "zip")),
    "truncated_zip_tail": lambda tmp: _valid_bytes(tmp, "zip")[:-1],
    "truncated_legacy": lambda tmp: (lambda b: b[: len(b) // 2])(_valid_bytes(tmp, "legacy")),
    "truncated_legacy_tail": lambda tmp: _valid_bytes(tmp, "legacy")[:-1],
    "truncated_safetensors": lambda tmp: (lambda b: b[: len(b) // 2])(_valid_bytes(tmp, "safetensors")),
    "safetensors_bad_header": lambda tmp: _safetensors_bad_header(),
    "random_bytes": lambda tmp: random.Random(0).randbytes(4096),
    "random_bytes_like_pickle": lambda tmp: b"\x80\x02" + random.Random(1).randbytes(4096),
    "random_bytes_like_zip": lambda tmp: b"PK\x03\x04" + random.Random(2).randbytes(4096),
    "json": lambda tmp: b'{"emb.weight": [[0.0, 1.0]], "blocks.0.ln1.weight": [1.0]}\n',
    "json_list": lambda tmp: b"[1, 2, 3]",
    "utf16_vocab_json": lambda tmp: '{"0": "a", "1": "b"}'.encode("utf-16"),
    "text": lambda tmp: b"This is a README, not a model.\nSecond line.\n",
    "short": lambda tmp: b"\x00",
}


def _plain_zip(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("notes.txt", "not a torch archive")


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_file_is_refused_in_one_line(tmp_path, case):
    path = tmp_path / f"{case}.pth"
    path.write_bytes(MALFORMED[case](tmp_path))
    msg = one_line_message(load_error(path), CheckpointError, path)
    assert "Traceback" not in msg
    if case.startswith("truncated"):
        # a damaged file is reported as damaged, not as a malicious one
        assert re.search(r"truncat|corrupt|unreadable|incomplete", msg), msg
        assert "needs code" not in msg
    if case.startswith("json"):
        assert "JSON" in msg


def test_plain_zip_archive_is_refused(tmp_path):
    path = tmp_path / "archive.pth"
    _plain_zip(path)
    one_line_message(load_error(path), CheckpointError, path)


def test_directory_is_refused(tmp_path):
    path = tmp_path / "ckpt.pth"
    path.mkdir()
    one_line_message(load_error(path), CheckpointError, path, "directory")


def test_missing_path_is_refused(tmp_path):
    path = tmp_path / "nowhere" / "ckpt.pth"
    one_line_message(load_error(path), CheckpointError, path)


# Code-execution payloads. Each test first shows that the payload is live (an unsafe
# load runs it) and then that load_checkpoint refuses the file without running it.

CALLS = []


def record_call(tag):
    CALLS.append(tag)
    return torch.zeros(1)


class SystemPayload:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


class RecordPayload:
    def __reduce__(self):
        return (record_call, ("ran",))


class NotATensor:
    def __init__(self):
        self.value = 1.5


def _payload_file(path, how, payload):
    sd = random_state_dict(L, C, V, seed=17)
    if how == "pickle_p2":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    elif how == "pickle_p0":
        path.write_bytes(pickle.dumps(payload, protocol=0))
    elif how == "pickle_p4":
        path.write_bytes(pickle.dumps({"emb.weight": payload}, protocol=4))
    elif how == "zip":
        torch.save({**sd, "blocks.0.att.key.weight": payload}, path)
    elif how == "legacy":
        torch.save({**sd, "blocks.0.att.key.weight": payload}, path, _use_new_zipfile_serialization=False)
    elif how == "wrapped_zip":
        torch.save({"state_dict": sd, "hook": payload}, path)
    else:
        raise ValueError(how)
    return path


def _unsafe_load(path):
    if path.read_bytes().startswith(b"PK"):
        return torch.load(path, weights_only=False)
    with open(path, "rb") as f:
        try:
            return torch.load(f, weights_only=False)
        except Exception:
            f.seek(0)
            return pickle.load(f)


HOWS = ["pickle_p2", "pickle_p0", "pickle_p4", "zip", "legacy", "wrapped_zip"]


@pytest.mark.parametrize("how", HOWS)
def test_os_system_pickle_is_refused_without_running(tmp_path, how):
    marker = tmp_path / "MARKER"
    path = _payload_file(tmp_path / f"evil_{how}.pth", how, SystemPayload(f"touch '{marker}'"))
    msg = one_line_message(load_error(path), CheckpointError, path)
    assert not marker.exists(), "the payload ran"
    if how in ("pickle_p2", "zip", "legacy", "wrapped_zip"):
        assert "system" in msg and "refused" in msg, msg  # names what the pickle wanted to call
    _unsafe_load(path)  # control: the payload is real
    assert marker.exists()


@pytest.mark.parametrize("how", ["pickle_p2", "zip", "legacy"])
def test_custom_reduce_is_refused_without_running(tmp_path, how):
    CALLS.clear()
    path = _payload_file(tmp_path / f"reduce_{how}.pth", how, RecordPayload())
    msg = one_line_message(load_error(path), CheckpointError, path, "record_call")
    assert CALLS == []
    _unsafe_load(path)  # control: an unsafe load does call it (a raw pickle may be tried twice)
    assert CALLS and set(CALLS) == {"ran"}
    assert "refused" in msg


@pytest.mark.parametrize("how", ["zip", "legacy"])
def test_custom_class_is_refused(tmp_path, how):
    path = _payload_file(tmp_path / f"class_{how}.pth", how, NotATensor())
    one_line_message(load_error(path), CheckpointError, path, "NotATensor", "refused")
    assert isinstance(_unsafe_load(path)["blocks.0.att.key.weight"], NotATensor)


# --------------------------------------------------------------------------- checkpoint + tokenizer


def _ckpt(tmp_path, vocab=V, name="model.pth"):
    return save(random_state_dict(L, C, vocab, seed=18), tmp_path / name)


def test_vocab_json_beside_the_checkpoint_is_used(tmp_path):
    path = _ckpt(tmp_path)
    vocab = write_char_vocab(tmp_path / "vocab.json", char_vocab(V))
    spec = load_checkpoint(path)
    assert isinstance(spec.tokenizer, CharTokenizer)
    assert spec.tokenizer.path == str(vocab)
    assert spec.tokenizer.vocab_size == V
    assert spec.tokenizer.decode(spec.tokenizer.encode("!\"# $")) == "!\"# $"


def test_find_tokenizer_false_ignores_vocab_json(tmp_path):
    path = _ckpt(tmp_path)
    write_char_vocab(tmp_path / "vocab.json", char_vocab(V))
    assert load_checkpoint(path, find_tokenizer=False).tokenizer is None


def test_explicit_tokenizer_overrides_vocab_json(tmp_path):
    path = _ckpt(tmp_path)
    write_char_vocab(tmp_path / "vocab.json", char_vocab(V + 1))  # would not fit
    (tmp_path / "tok").mkdir()
    explicit = write_char_vocab(tmp_path / "tok" / "chars.json", char_vocab(V), encoding="utf-8")
    spec = load_checkpoint(path, tokenizer_path=str(explicit))
    assert spec.tokenizer.path == str(explicit)
    assert spec.tokenizer.vocab_size == V


def test_explicit_wrong_size_tokenizer_is_used_and_refused(tmp_path):
    path = _ckpt(tmp_path)
    write_char_vocab(tmp_path / "vocab.json", char_vocab(V))  # would fit, but is overridden
    explicit = write_char_vocab(tmp_path / "other.json", char_vocab(V + 1))
    msg = one_line_message(load_error(path, TokenizerError, tokenizer_path=str(explicit)),
                         TokenizerError, explicit, str(path))
    rest = without_paths(msg, explicit, path)
    assert re.search(r"\b12\b", rest) and re.search(r"\b11\b", rest), msg


def test_vocab_json_of_wrong_size_names_both_sizes(tmp_path):
    path = _ckpt(tmp_path)
    vocab = write_char_vocab(tmp_path / "vocab.json", char_vocab(V + 2))
    msg = one_line_message(load_error(path, TokenizerError), TokenizerError, vocab, str(path))
    rest = without_paths(msg, vocab, path)
    assert re.search(r"\b13\b", rest) and re.search(r"\b11\b", rest), msg


def test_broken_vocab_json_beside_is_reported(tmp_path):
    path = _ckpt(tmp_path)
    vocab = tmp_path / "vocab.json"
    vocab.write_text('{"0": "a", "1": "bc"}', encoding="utf-8")
    one_line_message(load_error(path, TokenizerError), TokenizerError, vocab, "'bc'")


def test_explicit_huggingface_tokenizer(tmp_path):
    tok_path = tmp_path / "tokenizer.json"
    trained = train_hf_tokenizer(tok_path, "wordlevel")
    n = trained.get_vocab_size(with_added_tokens=True)
    path = _ckpt(tmp_path, vocab=n)
    spec = load_checkpoint(path, tokenizer_path=str(tok_path))
    assert isinstance(spec.tokenizer, HFTokenizer)
    assert spec.config.vocab_size == n == spec.tokenizer.vocab_size
    assert spec.tokenizer.decode(spec.tokenizer.encode("the cat sat on the mat")) == "the cat sat on the mat"


def test_spec_from_state_dict_checks_the_tokenizer(tmp_path):
    tok = load_tokenizer(write_char_vocab(tmp_path / "v.json", char_vocab(V - 1)))
    sd = random_state_dict(L, C, V, seed=19)
    with pytest.raises(TokenizerError) as excinfo:
        spec_from_state_dict(sd, source="mem", tokenizer=tok)
    rest = without_paths(one_line_message(excinfo, TokenizerError, tmp_path / "v.json"), tmp_path / "v.json")
    assert re.search(r"\b10\b", rest) and re.search(r"\b11\b", rest)
    ok = load_tokenizer(write_char_vocab(tmp_path / "w.json", char_vocab(V)))
    assert spec_from_state_dict(sd, tokenizer=ok).tokenizer is ok


# --------------------------------------------------------------------------- issue 15: nested wrappers

# Prefixes nest in any order: DDP adds `module.`, torch.compile `_orig_mod.`, Lightning-style
# wrappers `model.`; a compiled model inside DDP saves `module._orig_mod.blocks.0...`.
NESTED_PREFIXES = ["module._orig_mod.", "_orig_mod.module.", "model.module._orig_mod.", "module.module.",
                   "_orig_mod.model.", "_orig_mod.model.module._orig_mod.model."]


def _prefixed(sd, prefix):
    return {prefix + k: v for k, v in sd.items()}


@pytest.mark.parametrize("prefix", NESTED_PREFIXES)
def test_nested_prefixes_are_all_stripped(tmp_path, prefix):
    sd = random_state_dict(L, C, V, seed=20, dtype=torch.float16)
    for spec in (load_checkpoint(save(_prefixed(sd, prefix), tmp_path / "nested.pth")),
                 spec_from_state_dict(_prefixed(sd, prefix)),
                 spec_from_state_dict({"state_dict": _prefixed(sd, prefix), "epoch": 1})):
        assert spec.config == CFG
        assert set(spec.tensors) == set(sd)
        assert all(torch.equal(spec.tensors[k], sd[k]) for k in sd)


NESTED_WRAPPERS = {
    "state_dict/model": lambda sd: {"state_dict": {"model": sd}, "epoch": 2},
    "model/module/prefixed": lambda sd: {"model": {"module": _prefixed(sd, "_orig_mod.module.")}},
    "module/state_dict": lambda sd: {"module": {"state_dict": sd, "step": 5}, "optimizer": {"lr": 0.1}},
}


@pytest.mark.parametrize("wrapper", list(NESTED_WRAPPERS))
def test_nested_wrapper_dicts_are_descended(tmp_path, wrapper):
    sd = random_state_dict(L, C, V, seed=21)
    spec = load_checkpoint(save(NESTED_WRAPPERS[wrapper](sd), tmp_path / "wrapped.pth"))
    assert spec.config == CFG and set(spec.tensors) == set(sd)
    assert all(torch.equal(spec.tensors[k], sd[k]) for k in sd)


def test_prefix_shared_by_only_some_keys_is_kept_and_reported(tmp_path):
    sd = random_state_dict(L, C, V, seed=22)
    sd = {("module." + k if k.startswith(("head.", "ln_out.")) else k): v for k, v in sd.items()}
    path = save(sd, tmp_path / "partial.pth")
    one_line_message(load_error(path), CheckpointError, path, "unknown key 'module.head.weight'",
                   "missing key 'head.weight'")


def test_dict_that_contains_itself_is_refused_not_looped_on(tmp_path):
    d = {"epoch": 1}
    d["model"] = d  # pickle (and torch.load weights_only) keep the cycle
    path = save(d, tmp_path / "cycle.pth")
    t0 = time.perf_counter()
    one_line_message(load_error(path), CheckpointError, path, "emb.weight")
    assert time.perf_counter() - t0 < 5
