"""Hostile checkpoints and tokenizer files: each is refused in one line, fast, before any value is read.

A checkpoint is read as hostile: a tensor that is not backed by its own bytes (a zero stride,
a storage shared with another tensor or smaller than the tensor, a non-contiguous layout), a
claimed size beyond the memory budget, a model size beyond the reader's bounds, a named pipe,
a device or a directory, and finite but huge weights are all refused with one `CheckpointError`
(or `TokenizerError`) line: never a traceback, a hang or a 16 GiB allocation.
"""
from __future__ import annotations

import json
import os
import resource
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

import converters.spikegpt as S
from _factories import char_vocab, random_state_dict, write_char_vocab
from conftest import convert_spec, deadline, DEMO_CKPT, one_line_error as cli_one_line_error, one_line_message, ROOT, spiking_state_dict
from converters.spikegpt import load_checkpoint, spec_from_state_dict
from converters.tokenizer import CharTokenizer, artifact_tokenizer, load_tokenizer, tokenizer_from_bytes
from spike2loihi.errors import CheckpointError, TokenizerError
from spike2loihi.model.spec import ModelConfig, expected_tensors

L, C, V = 2, 8, 11
WIDE = 65536  # what the attacker's checkpoint claims
SHARED_12x192 = ROOT.parent / "shared" / "models" / "spikegpt-12x192" / "spikegpt-12x192.pth"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def refused(path, err_type=CheckpointError, *fragments, **kwargs) -> str:
    """load_checkpoint(path) raises exactly `err_type`, in one line naming `path` and every fragment,
    within 10 s; returns the message with the path replaced by <path>."""
    t0 = time.perf_counter()
    with deadline(20), pytest.raises(err_type) as excinfo:
        load_checkpoint(path, **kwargs)
    assert time.perf_counter() - t0 < 10
    return one_line_message(excinfo, err_type, path, *fragments)


@pytest.fixture
def no_values_read(monkeypatch):
    """Fail the test if validation (which reads every value) is reached."""
    def touched(*args, **kwargs):
        raise AssertionError("a tensor value was read before the checkpoint was refused")

    monkeypatch.setattr(S, "validate", touched)
    monkeypatch.setattr(S, "_value_problem", touched)


def expanded_state_dict(width=WIDE, dtype=torch.float32):
    """A SpikeGPT-shaped state dict (the keys of `random_state_dict`) whose every tensor is one stored
    zero expanded (zero strides) to the shape of a `width`-wide model: 16 GiB claimed by emb.weight
    alone, a few KB on disk."""
    big = expected_tensors(ModelConfig(n_layer=L, n_embd=width, vocab_size=width))
    return {k: torch.zeros(1, dtype=dtype).expand(*big[k][0]) for k in random_state_dict(L, C, V)}


# --------------------------------------------------------------------------- tensors not backed by their own bytes


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_expanded_tensors_are_refused_before_any_value_is_read(tmp_path, fmt, no_values_read):
    path = tmp_path / "wide.pth"
    torch.save(expanded_state_dict(), path, _use_new_zipfile_serialization=(fmt == "zip"))
    assert path.stat().st_size < 64 * 1024  # a few KB claiming a 65,536-wide model
    before = peak_rss_mib()
    msg = refused(path, CheckpointError, "'emb.weight'", "65536x65536", "zero stride")
    assert peak_rss_mib() - before < 256, "the expanded tensors were materialised"
    assert "not backed by their own storage" in msg


def test_one_expanded_tensor_of_the_right_shape_is_refused(tmp_path, no_values_read):
    sd = random_state_dict(L, C, V, seed=1)
    sd["blocks.1.att.time_mix_k"] = torch.zeros(1, 1, 1).expand(1, 1, C)
    path = tmp_path / "one.pth"
    torch.save(sd, path)
    msg = refused(path, CheckpointError, "'blocks.1.att.time_mix_k'", "1x1x8", "zero stride")
    assert msg.count("key '") == 1


def test_shared_storage_is_refused(tmp_path, no_values_read):
    sd = random_state_dict(L, C, V, seed=2)
    base = torch.randn(4 * C, C)
    sd["blocks.0.ffn.key.weight"] = base                      # the storage's first user
    sd["blocks.0.att.key.weight"] = base[:C]                  # a contiguous view of it
    sd["blocks.1.att.value.weight"] = sd["blocks.1.att.key.weight"]  # the same tensor twice
    path = tmp_path / "shared.pth"
    torch.save(sd, path)
    msg = refused(path, CheckpointError, "shares its storage", "'blocks.0.att.key.weight'",
                  "'blocks.1.att.value.weight'")
    assert "2 tensor(s)" in msg


def test_tied_embedding_and_head_are_refused(tmp_path):
    sd = random_state_dict(L, C, V, seed=3)
    sd["head.weight"] = sd["emb.weight"]
    path = tmp_path / "tied.pth"
    torch.save(sd, path)
    refused(path, CheckpointError, "'head.weight'", "shares its storage with key 'emb.weight'")


def test_non_contiguous_tensor_is_refused(tmp_path, no_values_read):
    sd = random_state_dict(L, C, V, seed=4)
    sd["blocks.0.att.output.weight"] = torch.randn(C, C).t()
    path = tmp_path / "transposed.pth"
    torch.save(sd, path)
    refused(path, CheckpointError, "'blocks.0.att.output.weight'", "8x8", "not a contiguous tensor")


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_tensor_larger_than_its_storage_is_refused(tmp_path, fmt):
    sd = random_state_dict(L, C, V, seed=5)
    t = torch.zeros(C)
    t.untyped_storage().resize_(4)  # the tensor claims 32 bytes, its storage holds 4
    sd["ln_out.bias"] = t
    path = tmp_path / "short.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=(fmt == "zip"))
    msg = refused(path, CheckpointError, "storage")
    assert "%ld" not in msg


def test_storage_check_names_a_tensor_larger_than_its_storage():
    """The check after loading, for a loader that would let such a tensor through."""
    t = torch.zeros(C)
    t.untyped_storage().resize_(4)
    with pytest.raises(CheckpointError) as excinfo:
        S._check_backing({"ln_out.bias": t}, "memory")
    one_line_message(excinfo, CheckpointError, "memory", "'ln_out.bias'", "claims 32 bytes but its storage holds 4")


def test_expanded_tensor_in_memory_is_not_materialised():
    sd = random_state_dict(L, C, V, seed=6)
    sd["emb.weight"] = torch.zeros(1).expand(V, C)
    with pytest.raises(CheckpointError) as excinfo:
        spec_from_state_dict(sd, source="mem")
    one_line_message(excinfo, CheckpointError, "mem", "'emb.weight'", "zero stride")


# --------------------------------------------------------------------------- safetensors headers


def write_safetensors(path, header: dict, data: bytes) -> Path:
    raw = json.dumps(header).encode()
    Path(path).write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return Path(path)


def test_safetensors_header_claiming_more_than_its_bytes(tmp_path, monkeypatch):
    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "load_file", lambda *a, **k: pytest.fail("data read before the header"))
    path = write_safetensors(tmp_path / "wide.safetensors",
                             {"emb.weight": {"dtype": "F32", "shape": [WIDE, WIDE], "data_offsets": [0, 4]}},
                             b"\x00" * 4)
    refused(path, CheckpointError, "'emb.weight'", "65536x65536", "17,179,869,184 bytes", "hold 4")


def test_safetensors_tensors_sharing_bytes(tmp_path):
    header = {"emb.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
              "head.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
    path = write_safetensors(tmp_path / "overlap.safetensors", header, b"\x00" * 16)
    refused(path, CheckpointError, "overlap", "'head.weight'", "'emb.weight'")


@pytest.mark.parametrize("header, fragment", [
    ({"emb.weight": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 4]}}, "unknown dtype"),
    ({"emb.weight": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, "shape"),
    ({"emb.weight": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, "data_offsets"),
    ({"emb.weight": {"dtype": "F32", "shape": [1024], "data_offsets": [0, 4096]}}, "truncated"),
    ({"emb.weight": 3}, "unknown dtype"),
])
def test_malformed_safetensors_header(tmp_path, header, fragment):
    path = write_safetensors(tmp_path / "bad.safetensors", header, b"\x00" * 4)
    refused(path, CheckpointError, fragment)


@pytest.mark.parametrize("raw, fragment", [(b'{"emb.weight": ', "not JSON"), (b"{" * 3 + b"[" * 100_000, "JSON")])
def test_safetensors_header_that_is_not_json(tmp_path, raw, fragment):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    refused(path, CheckpointError, "unreadable safetensors file", fragment)


def test_safetensors_checkpoint_still_loads(tmp_path):
    sd = random_state_dict(L, C, V, seed=7, dtype=torch.bfloat16)
    path = tmp_path / "ok.safetensors"
    save_file(sd, str(path))
    spec = load_checkpoint(path)
    assert all(torch.equal(spec.tensors[k], sd[k]) for k in sd)


# --------------------------------------------------------------------------- sizes beyond the machine


@pytest.mark.parametrize("fmt", ["zip", "safetensors"])
def test_claimed_size_over_the_memory_budget(tmp_path, monkeypatch, fmt):
    sd = random_state_dict(L, 32, 64, seed=8, dtype=torch.float16)
    path = tmp_path / ("big.safetensors" if fmt == "safetensors" else "big.pth")
    save_file(sd, str(path)) if fmt == "safetensors" else torch.save(sd, path)
    stored = sum(t.numel() * t.element_size() for t in sd.values())
    claimed = stored + 4 * sum(t.numel() for t in sd.values())  # plus the fp32 copies
    budget = (path.stat().st_size + claimed) // 2  # the file fits, its tensors and their copies do not
    assert path.stat().st_size < budget < claimed
    monkeypatch.setattr(S, "memory_budget", lambda: budget)
    msg = refused(path, CheckpointError, "memory budget", f"{claimed:,} bytes", f"{budget:,} bytes")
    assert "fp32" in msg
    monkeypatch.setattr(S, "memory_budget", lambda: claimed)
    load_checkpoint(path)  # exactly at the budget: accepted


def test_file_larger_than_the_memory_budget(tmp_path, monkeypatch):
    path = tmp_path / "m.pth"
    torch.save(random_state_dict(L, C, V, seed=9), path)
    monkeypatch.setattr(S, "memory_budget", lambda: 1000)
    refused(path, CheckpointError, "memory budget", f"{path.stat().st_size:,} bytes", "1,000 bytes")


def test_memory_budget_is_half_the_machine():
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < S.memory_budget() <= total // 2


@pytest.mark.parametrize("what, make", [
    ("n_embd", lambda: {"emb.weight": torch.zeros(3, S.MAX_N_EMBD + 1, dtype=torch.float16),
                        "blocks.0.ln1.weight": torch.zeros(1)}),
    ("vocabulary", lambda: {"emb.weight": torch.zeros(S.MAX_VOCAB + 1, 1, dtype=torch.float16),
                            "blocks.0.ln1.weight": torch.zeros(1)}),
    ("n_layer", lambda: {"emb.weight": torch.zeros(3, 4),
                         **{f"blocks.{i}.ln1.weight": torch.zeros(1) for i in range(S.MAX_N_LAYER + 1)}}),
])
def test_model_size_from_shapes_is_bounded(tmp_path, what, make, no_values_read):
    path = tmp_path / f"{what}.pth"
    torch.save(make(), path)
    refused(path, CheckpointError, what, "at most")


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_huge_finite_weights_are_refused(tmp_path, dtype):
    sd = random_state_dict(L, C, V, seed=10, dtype=dtype)
    sd["blocks.1.ffn.value.weight"][3, 5] = 1e30
    sd["blocks.1.ffn.value.weight"][4, 6] = -2e4
    path = tmp_path / "huge.pth"
    torch.save(sd, path)
    msg = refused(path, CheckpointError, "1 problem", "'blocks.1.ffn.value.weight'", "2 value(s) beyond +-10000")
    assert "1e+30" in msg


def test_huge_weights_in_memory_are_refused_too():
    sd = spiking_state_dict(L, C, V, seed=11)
    sd["head.weight"].mul_(1e28)
    with pytest.raises(CheckpointError) as excinfo:
        spec_from_state_dict(sd, source="mem")
    one_line_message(excinfo, CheckpointError, "mem", "'head.weight'", "beyond")


def test_weights_at_the_bound_keep_the_reference_finite():
    from spike2loihi.model.reference import ReferenceModel

    gen = torch.Generator().manual_seed(12)
    sd = {k: torch.where(torch.rand(t.shape, generator=gen) < 0.5, -1.0, 1.0) * S.MAX_ABS_VALUE
          for k, t in random_state_dict(3, 32, V, seed=12).items()}
    model = ReferenceModel(spec_from_state_dict(sd))
    state = model.initial_state()
    for tok in range(8):
        out = model.step(tok % V, state)
        assert torch.isfinite(out.logits).all()
    for name in ("v_att", "v_ffn", "aa", "bb", "pp"):
        assert torch.isfinite(getattr(state, name)).all(), name


# --------------------------------------------------------------------------- special files


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.pth"
    os.mkfifo(path)
    return path


def test_named_pipe_is_refused_without_blocking(fifo):
    refused(fifo, CheckpointError, "named pipe")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_device_is_refused_without_reading(device):
    refused(Path(device), CheckpointError, "is a device")


def test_directory_is_refused(tmp_path):
    refused(tmp_path, CheckpointError, "is a directory", "expected a checkpoint file")


def test_tokenizer_special_files_are_refused(tmp_path, fifo):
    for path, what in ((fifo, "named pipe"), (Path("/dev/zero"), "is a device"), (tmp_path, "is a directory")):
        with deadline(20), pytest.raises(TokenizerError) as excinfo:
            load_tokenizer(path)
        one_line_message(excinfo, TokenizerError, path, what, "tokenizer")


def test_pipe_named_vocab_json_beside_the_checkpoint(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(random_state_dict(L, C, V, seed=13), path)
    os.mkfifo(tmp_path / "vocab.json")
    with deadline(20), pytest.raises(TokenizerError) as excinfo:
        load_checkpoint(path)
    one_line_message(excinfo, TokenizerError, tmp_path / "vocab.json", "named pipe")


def test_oversized_tokenizer_is_refused_before_it_is_read(tmp_path, monkeypatch):
    import converters.tokenizer as T

    path = write_char_vocab(tmp_path / "vocab.json", char_vocab(V))
    monkeypatch.setattr(T, "MAX_TOKENIZER_BYTES", 10)
    with pytest.raises(TokenizerError) as excinfo:
        load_tokenizer(path)
    one_line_message(excinfo, TokenizerError, path, "more than the 10")


# --------------------------------------------------------------------------- the official checkpoints still load


@pytest.mark.parametrize("path", [DEMO_CKPT, SHARED_12x192], ids=["demo", "shared-12x192"])
def test_official_checkpoints_still_load(path):
    if not path.exists():
        pytest.skip(f"{path} is not here")
    spec = load_checkpoint(path)
    assert spec.config.vocab_size == 77 and spec.tokenizer is not None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_plain_state_dict_still_loads(tmp_path, dtype):
    sd = random_state_dict(L, C, V, seed=14, dtype=dtype)
    path = tmp_path / "plain.pth"
    torch.save(sd, path)
    spec = load_checkpoint(path)
    assert all(torch.equal(spec.tensors[k], sd[k]) for k in sd)


# --------------------------------------------------------------------------- the model's embedded tokenizer


class _Stored:
    """Stands for a ConvertedModel: only `tokenizer_file()` is used."""

    def __init__(self, raw: bytes, name: str):
        self.raw, self.name = raw, name

    def tokenizer_file(self):
        return self.raw, self.name


@pytest.mark.parametrize("raw, fragment", [
    (b'{"0": "a", "1": ', "not valid JSON"),
    (b'{"0": "ab"}', "single character"),
    (b"\xff\xfe\x00\xd8", "neither UTF-8 nor UTF-16"),
])
def test_corrupt_embedded_tokenizer_names_the_model_not_a_file(tmp_path, monkeypatch, raw, fragment):
    monkeypatch.chdir(tmp_path)  # no vocab.json here
    with pytest.raises(TokenizerError) as excinfo:
        artifact_tokenizer(_Stored(raw, "vocab.json"))
    msg = one_line_message(excinfo, TokenizerError, None, "the model's embedded tokenizer", fragment)
    assert not msg.startswith("vocab.json"), msg
    with pytest.raises(TokenizerError) as excinfo:  # a name that is no file: embedded as well
        tokenizer_from_bytes(raw, name="vocab.json")
    one_line_message(excinfo, TokenizerError, None, "the model's embedded tokenizer (vocab.json)", fragment)


def test_tokenizer_bytes_of_a_real_file_name_the_file(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_bytes(b'{"0": ')
    with pytest.raises(TokenizerError) as excinfo:
        tokenizer_from_bytes(path.read_bytes(), name=str(path))
    msg = one_line_message(excinfo, TokenizerError, path, "not valid JSON")
    assert "embedded" not in msg


def test_embedded_tokenizer_keeps_its_name_and_decode_errors_name_the_model():
    tok = artifact_tokenizer(_Stored(CharTokenizer(dict(enumerate("ab"))).to_json_text().encode(), "vocab.json"))
    assert tok.path == "vocab.json" and tok.vocab_size == 2
    with pytest.raises(TokenizerError) as excinfo:
        tok.decode([5])
    one_line_message(excinfo, TokenizerError, None, "the model's embedded tokenizer", "outside the vocabulary")


@pytest.fixture(scope="module")
def corrupt_tokenizer_artifact(tmp_path_factory):
    """A converted model whose embedded tokenizer bytes are damaged (the artifact itself is intact)."""
    import dataclasses

    from spike2loihi.convert import artifact

    spec = spec_from_state_dict(spiking_state_dict(L, 16, V, seed=15),
                                tokenizer=CharTokenizer(dict(enumerate(char_vocab(V))), path="vocab.json"))
    model = convert_spec(spec, list(range(V)) * 2)[0]
    bad = np.frombuffer(b'{"0": "a", "1": ', dtype=np.uint8).copy()
    model = dataclasses.replace(model, tensors={**model.tensors, artifact.TOKENIZER_TENSOR: bad})
    path = tmp_path_factory.mktemp("bad-tok") / "bad-tok.s2l"
    artifact.save(model, path)
    return path


def test_corrupt_tokenizer_inside_an_artifact(corrupt_tokenizer_artifact):
    from spike2loihi.convert import artifact

    with pytest.raises(TokenizerError) as excinfo:
        artifact_tokenizer(artifact.load(corrupt_tokenizer_artifact))
    one_line_message(excinfo, TokenizerError, None, "the model's embedded tokenizer (vocab.json)", "not valid JSON")


# --------------------------------------------------------------------------- through the CLI


def invoke(*args):
    from spike2loihi.cli.app import main

    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_inspect_of_an_expanded_checkpoint_is_one_line(tmp_path):
    path = tmp_path / "BAD.pth"
    torch.save(expanded_state_dict(), path)
    before = peak_rss_mib()
    with deadline(20):
        res = invoke("inspect", path)
    assert peak_rss_mib() - before < 256
    cli_one_line_error(res, "zero stride")


def test_cli_inspect_of_huge_weights_is_one_line(tmp_path):
    sd = random_state_dict(L, C, V, seed=16)
    sd["emb.weight"][0, 0] = 1e30
    path = tmp_path / "huge.pth"
    torch.save(sd, path)
    cli_one_line_error(invoke("inspect", path), "beyond +-10000")


def test_cli_inspect_of_a_pipe_is_one_line(fifo):
    with deadline(20):
        res = invoke("inspect", fifo)
    cli_one_line_error(res, "named pipe")


def test_cli_run_with_a_corrupt_embedded_tokenizer_is_one_line(corrupt_tokenizer_artifact):
    with deadline(60):
        res = invoke("run", corrupt_tokenizer_artifact, "--backend", "emulator", "--prompt", "ab",
                     "--max-new-tokens", "1")
    cli_one_line_error(res, "the model's embedded tokenizer")
