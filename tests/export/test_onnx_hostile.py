"""A `.onnx` given to `--backend onnxruntime` is hostile input: one `BackendError` line, never a traceback.

What an attacker tried against `OnnxRuntimeBackend`, each now refused in one line, fast:

* external data outside the model's folder (an absolute path, `../`, a symlink that leaves
  the folder), past the end of its file, missing, a named pipe; in initializers, in node
  attributes and in subgraphs; and a model given as bytes that names external data;
* tampered metadata: a key missing, garbage JSON, a non-numeric version, a state of 10**12
  elements, wrong types, names the graph does not have;
* a named pipe, a directory or a device given as the model;
* onnxruntime's own coloured log line before ours (checked in a subprocess, where stderr is
  the process's file descriptor, not click's capture).

A legitimate model with its external data inside its own folder still runs, and computes
what the same model with its weights inline computes.
"""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from conftest import deadline, one_line_error, random_spec, ROOT
from spike2loihi.backends.onnx_metadata import MAX_STATE_DIM
from spike2loihi.backends.onnxruntime import OnnxRuntimeBackend
from spike2loihi.errors import BackendError
from spike2loihi.export import onnx as OX

LIMIT_S = 10    # every refusal is well under this; a blocked read or a huge allocation is not


def refused(model, *needles):
    """The one-line BackendError that opening `model` raises, checked to contain every needle."""
    with deadline(LIMIT_S):
        with pytest.raises(BackendError) as exc:
            OnnxRuntimeBackend(model)
    msg = str(exc.value)
    assert "\n" not in msg and "\r" not in msg, msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


def invoke(*args):
    from spike2loihi.cli.app import main

    return CliRunner().invoke(main, [str(a) for a in args])


def cli_refuses(path, needle):
    with deadline(LIMIT_S):
        res = invoke("run", path, "--backend", "onnxruntime", "--tokens", "1")
    return one_line_error(res, needle)


@pytest.fixture(scope="module")
def tiny():
    """A valid spike2loihi step graph of a seeded random 1-layer checkpoint (n_embd 8, vocabulary 10)."""
    spec = random_spec(n_layer=1, n_embd=8, vocab=10, seed=3)
    return OX.export_checkpoint(spec, spec.semantics("run"))


def copy(proto):
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    return out


def save(proto, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(proto.SerializeToString())
    return path


def make_external(tensor, location, offset=None, length=None):
    """Turn `tensor` into a reference to external data, the entries set by hand."""
    for f in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
        tensor.ClearField(f)
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        if value is not None:
            e = tensor.external_data.add()
            e.key, e.value = key, str(value)


def tiny_external(tiny, location, offset=0, length=None, name="emb.weight"):
    """`tiny` with initializer `name` (emb.weight is 10x8 float32: 320 bytes) stored at `location`."""
    proto = copy(tiny)
    t = next(t for t in proto.graph.initializer if t.name == name)
    make_external(t, location, offset, 4 * int(np.prod(t.dims)) if length is None else length)
    return proto


def with_meta(proto, **changes):
    """A copy of `proto` with metadata keys (`M_CONFIG=...`, the OX constant names) set, or deleted (None)."""
    meta = OX.metadata(proto)
    for name, value in changes.items():
        key = getattr(OX, name)
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value if isinstance(value, str) else json.dumps(value)
    out = copy(proto)
    del out.metadata_props[:]
    helper.set_model_props(out, meta)
    return out


# ---------------------------------------------------------------------------
# External data: inside the model's folder only
# ---------------------------------------------------------------------------
def test_external_data_at_an_absolute_path_is_refused(tiny, tmp_path):
    path = save(tiny_external(tiny, "/etc/passwd", 0, 320), tmp_path / "m" / "abs.onnx")
    refused(path, str(path), "initializer emb.weight", "'/etc/passwd'", "absolute path")
    cli_refuses(path, "'/etc/passwd'")       # it used to run, exit 0, with /etc/passwd as the embedding


@pytest.mark.parametrize("location", ["../../../../etc/passwd", "../secret.bin", "sub/../../secret.bin"])
def test_external_data_up_and_out_of_the_folder_is_refused(tiny, tmp_path, location):
    (tmp_path / "secret.bin").write_bytes(bytes(320))    # it exists: only where it is is wrong
    (tmp_path / "m" / "sub").mkdir(parents=True)
    path = save(tiny_external(tiny, location), tmp_path / "m" / "up.onnx")
    refused(path, "initializer emb.weight", repr(location), "outside the model's folder")


def test_external_data_through_a_symlink_out_of_the_folder_is_refused(tiny, tmp_path):
    (tmp_path / "secret.bin").write_bytes(bytes(320))
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "w.bin").symlink_to(tmp_path / "secret.bin")
    (folder / "etc").symlink_to("/etc")
    path = save(tiny_external(tiny, "w.bin"), folder / "link.onnx")
    refused(path, "initializer emb.weight", "'w.bin'", "outside the model's folder")
    path = save(tiny_external(tiny, "etc/passwd", 0, 320), folder / "dirlink.onnx")
    refused(path, "'etc/passwd'", "outside the model's folder")


def test_external_data_past_the_end_of_its_file_is_refused(tiny, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "w.bin").write_bytes(bytes(100))
    refused(save(tiny_external(tiny, "w.bin", 0, 320), folder / "long.onnx"), "'w.bin'", "past the end",
            "100 bytes")
    refused(save(tiny_external(tiny, "w.bin", 96, 8), folder / "off.onnx"), "offset 96", "past the end")
    refused(save(tiny_external(tiny, "w.bin", 10 ** 18, 0), folder / "far.onnx"), "past the end")
    refused(save(tiny_external(tiny, "w.bin", "-4", 8), folder / "neg.onnx"), "offset '-4'",
            "not a non-negative integer")


def test_external_data_missing_or_not_a_regular_file_is_refused(tiny, tmp_path):
    folder = tmp_path / "m"
    (folder / "adir").mkdir(parents=True)
    os.mkfifo(folder / "pipe.bin")
    refused(save(tiny_external(tiny, "gone.bin"), folder / "gone.onnx"), "'gone.bin'", "No such file")
    refused(save(tiny_external(tiny, "pipe.bin"), folder / "pipe.onnx"), "'pipe.bin'", "not a regular file")
    refused(save(tiny_external(tiny, "adir"), folder / "dir.onnx"), "'adir'", "not a regular file")
    refused(save(tiny_external(tiny, ""), folder / "empty.onnx"), "without a location")


def test_external_data_in_attributes_and_subgraphs_is_found(tmp_path):
    """A foreign model (no spike2loihi metadata): the external data is refused before anything else."""
    def const(name, location):
        t = numpy_helper.from_array(np.zeros(4, np.float32), name)
        make_external(t, location, 0, 16)
        return helper.make_node("Constant", [], [name], value=t, name=name + "_node")

    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    then_g = helper.make_graph([const("deep", "/etc/passwd")], "then", [], [out])
    else_g = helper.make_graph([helper.make_node("Constant", [], ["y"], value=numpy_helper.from_array(
        np.ones(4, np.float32), "ok"))], "else", [], [out])
    cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    g = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g,
                                            name="branch")], "g", [cond], [out])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    msg = refused(save(proto, tmp_path / "sub.onnx"), "subgraph then_branch of node branch", "'/etc/passwd'")
    assert "attribute value of node" in msg
    g = helper.make_graph([const("y", "../x.bin")], "g", [], [out])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    refused(save(proto, tmp_path / "m" / "attr.onnx"), "attribute value of node y_node", "'../x.bin'", "outside")


def test_names_from_the_file_cannot_break_the_line(tiny, tmp_path):
    proto = tiny_external(tiny, "../x\n\x1b[31mred")
    proto.graph.initializer[0].name = "emb\nweight\r"
    msg = refused(save(proto, tmp_path / "m" / "names.onnx"), "initializer 'emb\\nweight\\r'",
                  "'../x\\n\\x1b[31mred'")
    assert "\x1b" not in msg


def test_external_data_in_a_model_given_as_bytes_is_refused(tiny):
    refused(tiny_external(tiny, "w.bin").SerializeToString(), "the ONNX model", "'w.bin'", "give the .onnx file")


def test_external_data_inside_the_folder_still_runs(tiny, tmp_path):
    from onnx.external_data_helper import convert_model_to_external_data

    want_be = OnnxRuntimeBackend(tiny.SerializeToString())
    for folder, location, link in ((tmp_path / "flat", "weights.bin", False),
                                   (tmp_path / "nested", "data/weights.bin", False),
                                   (tmp_path / "linked", "alias.bin", True)):
        proto = copy(tiny)
        convert_model_to_external_data(proto, all_tensors_to_one_file=True, location=location, size_threshold=0)
        folder.mkdir()
        (folder / os.path.dirname(location)).mkdir(exist_ok=True)
        path = folder / "m.onnx"
        onnx.save_model(proto, str(path))
        if link:      # a symlink that stays inside the folder is fine
            os.replace(folder / location, folder / "real.bin")
            (folder / location).symlink_to("real.bin")
        stored = onnx.load(str(path), load_external_data=False).graph.initializer
        assert all(t.data_location == TensorProto.EXTERNAL and not t.raw_data for t in stored)
        assert (folder / location).stat().st_size >= sum(len(t.raw_data) for t in tiny.graph.initializer)
        with deadline(LIMIT_S):
            be = OnnxRuntimeBackend(path)
        st, want_st = be.initial_state(), want_be.initial_state()
        for tok in (1, 5, 9, 0):
            got, want = be.step(tok, st), want_be.step(tok, want_st)
            assert np.array_equal(got.logits.numpy(), want.logits.numpy())
            assert np.array_equal(got.att_spikes.numpy(), want.att_spikes.numpy())
    res = invoke("run", path, "--backend", "onnxruntime", "--tokens", "1,2,3")
    assert res.exit_code == 0, res.stderr


# ---------------------------------------------------------------------------
# Tampered metadata: one line naming the file and every key that is wrong
# ---------------------------------------------------------------------------
BAD_STATE_TYPES = [{"name": 5, "next": None, "dtype": "complex64", "dim": 8.5, "init": "zero"}]

TAMPERED = {
    "missing config": (dict(M_CONFIG=None), ["spike2loihi.config missing"]),
    "garbage config": (dict(M_CONFIG="{n_layer: 1,"), ["spike2loihi.config is not JSON"]),
    "nested config": (dict(M_CONFIG="[" * 100_000), ["spike2loihi.config is JSON nested too deeply"]),
    "config of a huge integer": (dict(M_CONFIG='{"n_layer": 1' + "0" * 5000 + "}"),
                                 ["spike2loihi.config is not usable JSON"]),
    "config a list": (dict(M_CONFIG=[1, 8, 10]), ["spike2loihi.config is a JSON list, not an object"]),
    "config strings": (dict(M_CONFIG={"n_layer": "1", "n_embd": 8, "vocab_size": True}),
                       ["n_layer '\"1\"' is not an integer", "vocab_size 'true' is not an integer"]),
    "config too big": (dict(M_CONFIG={"n_layer": 10 ** 6, "n_embd": 8, "vocab_size": 10}),
                       ["n_layer '1000000' is not an integer in 1..10,000"]),
    "config extra key": (dict(M_CONFIG={"n_layer": 1, "n_embd": 8, "vocab_size": 10, "x": 1}),
                         ["unknown key(s) 'x'"]),
    "non-numeric version": (dict(M_FORMAT_VERSION="one"), ["spike2loihi.format_version 'one' is not a version"]),
    "missing version": (dict(M_FORMAT_VERSION=None), ["spike2loihi.format_version missing"]),
    "newer version": (dict(M_FORMAT_VERSION="99"), ["step-graph format 99 is newer"]),
    "foreign format": (dict(M_FORMAT="something-else"), ["not a spike2loihi step graph"]),
    "unknown kind": (dict(M_KIND="quantum"), ["spike2loihi.kind 'quantum' is not float or converted"]),
    "missing kind": (dict(M_KIND=None), ["spike2loihi.kind missing"]),
    "semantics types": (dict(M_SEMANTICS={"name": "run", "binary_embedding": "yes", "rescale_layer": -1}),
                        ["binary_embedding is not true or false", "rescale_layer '-1'"]),
    "semantics name": (dict(M_SEMANTICS={"name": "walk", "binary_embedding": False, "rescale_layer": 6}),
                       ["name '\"walk\"' is not one of run, train"]),
    "missing state": (dict(M_STATE=None), ["spike2loihi.state missing"]),
    "state a dict": (dict(M_STATE={"name": "x"}), ["spike2loihi.state is a JSON dict, not a list"]),
    "state 10**12 elements": (dict(M_STATE=[{"name": "blocks.0.att.shift/prev", "next": "blocks.0.att.shift/prev.next",
                                             "dtype": "float32", "dim": 10 ** 12, "init": 0.0}]),
                              [f"dim '1000000000000' is not an integer in 1..{MAX_STATE_DIM:,}"]),
    "state 10**12 in all": (dict(M_CONFIG={"n_layer": 4, "n_embd": 1_000_000, "vocab_size": 10},
                                 M_STATE=[{"name": f"s{i}", "next": f"s{i}.next", "dtype": "int64",
                                           "dim": 1_000_000, "init": 0} for i in range(100)]),
                            ["100,000,000 state elements per batch row, more than"]),
    "state of a million tensors": (dict(M_STATE=[{}] * 1_000_000), ["1,000,000 state tensors, more than 32"]),
    "state wrong types": (dict(M_STATE=BAD_STATE_TYPES),
                          ["spike2loihi.state[0]", "name is not a name", "next is not a name",
                           "dtype '\"complex64\"'", "dim '8.5'"]),
    "state init out of range": (dict(M_STATE=[{"name": "blocks.0.att.shift/prev", "next": "x", "dtype": "float32",
                                               "dim": 8, "init": 1e300}]), ["init '1e+300' is not a finite float32"]),
    "state width off the config": (dict(M_STATE=[{"name": "blocks.0.att.shift/prev", "next": "x", "dtype": "float32",
                                                  "dim": 9, "init": 0}]), ["dim 9 is neither n_embd (8)"]),
    "state names not in the graph": (dict(M_STATE=[{"name": "nope", "next": "nope.next", "dtype": "float32",
                                                    "dim": 8, "init": 0}]),
                                     ["'nope' is not an input of the graph", "next 'nope.next' is not an output"]),
    "state dtype off the graph": (dict(M_STATE=[{"name": "blocks.0.att.shift/prev", "next": "x", "dtype": "int64",
                                                 "dim": 8, "init": 0}]),
                                  ["the graph's input 'blocks.0.att.shift/prev' is not int64 [batch, 8]"]),
    "tokenizer name": (dict(M_TOKENIZER_NAME="vocab\n.json"), ["spike2loihi.tokenizer_name is not a file name"]),
    "several at once": (dict(M_CONFIG=None, M_KIND="x", M_STATE="[", M_SEMANTICS=7),
                        ["spike2loihi.config missing", "spike2loihi.kind 'x'", "spike2loihi.state is not JSON",
                         "spike2loihi.semantics is a JSON int, not an object"]),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_metadata_is_one_line(tiny, tmp_path, case):
    changes, needles = TAMPERED[case]
    path = save(with_meta(tiny, **changes), tmp_path / "tampered.onnx")
    msg = refused(path, str(path), *needles)
    assert len(msg) < 2000, msg


def test_a_state_tensor_left_out_is_refused(tiny, tmp_path):
    state = json.loads(OX.metadata(tiny)[OX.M_STATE])
    path = save(with_meta(tiny, M_STATE=[s for s in state if s["name"] != "blocks.0.att.wkv/pp"]),
                tmp_path / "less.onnx")
    refused(path, "the graph has input(s) 'blocks.0.att.wkv/pp' that spike2loihi.state does not list")


def test_duplicated_metadata_key_is_refused(tiny, tmp_path):
    proto = copy(tiny)
    e = proto.metadata_props.add()
    e.key, e.value = OX.M_STATE, "[]"
    refused(save(proto, tmp_path / "dup.onnx"), "spike2loihi.state given twice")


def test_tampered_metadata_through_the_cli(tiny, tmp_path):
    path = save(with_meta(tiny, M_STATE=[{"name": "blocks.0.att.shift/prev", "next": "x", "dtype": "float32",
                                          "dim": 10 ** 12, "init": 0}]), tmp_path / "huge.onnx")
    cli_refuses(path, "spike2loihi.state[0]: dim")
    cli_refuses(save(with_meta(tiny, M_FORMAT_VERSION="1.0"), tmp_path / "v.onnx"), "format_version '1.0'")


# ---------------------------------------------------------------------------
# A graph that loads but computes nonsense: one line too
# ---------------------------------------------------------------------------
def _with_init(tiny, name, fn):
    proto = copy(tiny)
    t = next(t for t in proto.graph.initializer if t.name == name)
    t.CopyFrom(numpy_helper.from_array(fn(numpy_helper.to_array(t)), name))
    return proto


def test_a_step_onnxruntime_refuses_is_one_line(tiny, tmp_path):
    path = save(_with_init(tiny, "emb.weight", lambda a: a[:2]), tmp_path / "short-emb.onnx")
    be = OnnxRuntimeBackend(path)
    with pytest.raises(BackendError, match="onnxruntime cannot run a step .*Gather") as exc:
        be.step(5, be.initial_state())
    assert "\n" not in str(exc.value)


def test_non_finite_logits_are_one_line(tiny, tmp_path):
    path = save(_with_init(tiny, "head.weight.T", lambda a: np.full_like(a, np.nan)), tmp_path / "nan.onnx")
    cli_refuses(path, "logits that are NaN or infinite")      # it used to end in a traceback in the sampler


# ---------------------------------------------------------------------------
# Not a regular file
# ---------------------------------------------------------------------------
def test_fifo_directory_and_device_are_refused_unread(tmp_path):
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    refused(fifo, str(fifo), "named pipe")
    cli_refuses(fifo, "named pipe")
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    refused(folder, str(folder), "is a directory")
    cli_refuses(folder, "is a directory")
    zero = tmp_path / "zero.onnx"
    zero.symlink_to("/dev/zero")
    refused(zero, "is a device")
    refused(tmp_path / "gone.onnx", "no such file")


def test_garbage_is_one_line(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"\x0a\xff\xff\xff\xff\x0f" + os.urandom(64))
    refused(path, str(path), "onnxruntime cannot load it")


# ---------------------------------------------------------------------------
# The process's stderr: our line only, not onnxruntime's coloured log line before it
# ---------------------------------------------------------------------------
@pytest.mark.subprocess
def test_stderr_is_our_line_only(tiny, tmp_path):
    bad_step = save(_with_init(tiny, "emb.weight", lambda a: a[:2]), tmp_path / "bad-step.onnx")
    bad_init = _with_init(tiny, "emb.weight", lambda a: a)
    next(t for t in bad_init.graph.initializer if t.name == "emb.weight").raw_data = b"1234"
    bad_init = save(bad_init, tmp_path / "bad-init.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(tiny.SerializeToString()[:5000])
    for path, tokens, needle in ((bad_step, "5", "cannot run a step"), (bad_init, "1", "cannot load it"),
                                 (corrupt, "1", "cannot load it")):
        proc = subprocess.run([sys.executable, "-m", "spike2loihi.cli", "run", str(path), "--backend", "onnxruntime",
                               "--tokens", tokens], capture_output=True, text=True, cwd=ROOT, timeout=120)
        lines = proc.stderr.splitlines()
        assert proc.returncode == 2, (proc.returncode, proc.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr
        assert "\x1b[" not in proc.stderr and "onnxruntime:" not in proc.stderr
