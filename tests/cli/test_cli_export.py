"""`spike2loihi export` and `spike2loihi run OUT.onnx`, as users meet them.

The cliutil rules: outputs checked before any work and written all or nothing, one-line
errors with a non-zero exit and nothing left behind, a run of the exported file that
generates what the float reference (a checkpoint's export) or the emulator (a .s2l's
export) generates.
"""
import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from conftest import DEMO, DEMO_CKPT, one_line_error, spiking_state_dict
from spike2loihi.export import onnx as OX
from converters.spikegpt import save_checkpoint
from spike2loihi.convert import artifact, quantize
from spike2loihi.cli.app import main


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def tree(folder):
    folder = Path(folder)
    return sorted((str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def demo_s2l(demo_spec, tmp_path_factory):
    """The bundled model converted on a short calibration text, saved as .s2l."""
    sem = demo_spec.semantics("run")
    text = "def main(argv):\n    return sum(x * x for x in argv if x is not None)\n" * 3
    cal = quantize.calibrate(demo_spec, sem, demo_spec.tokenizer.encode(text), {"source": "text"})
    source = {"path": str(DEMO_CKPT), "sha256": artifact.sha256_file(DEMO_CKPT), "format": demo_spec.source_format}
    model, _ = quantize.convert(demo_spec, sem, cal, quantize.QuantOptions(), source=source)
    path = tmp_path_factory.mktemp("s2l") / "demo.s2l"
    artifact.save(model, path)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The bundled checkpoint exported with default options."""
    out = tmp_path_factory.mktemp("onnx") / "demo.onnx"
    res = invoke("export", DEMO_CKPT, "-o", out)
    assert res.exit_code == 0, res.stderr
    return out, res


def run_json(*args):
    res = invoke("run", *args, "--json")
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def test_export_checkpoint_and_generate(exported):
    out, res = exported
    assert res.stdout.startswith(f"wrote {out}: float step graph (run semantics), opset {OX.DEFAULT_OPSET}")
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    meta = OX.metadata(proto)
    assert meta[OX.M_SOURCE_SHA256] == artifact.sha256_file(DEMO_CKPT) and meta[OX.M_KIND] == "float"
    args = ("--prompt", "def ", "--greedy", "--max-new-tokens", "24")
    got, want = run_json(out, *args), run_json(DEMO_CKPT, *args)
    assert got["backend"] == "onnxruntime" and want["backend"] == "torch"
    assert got["generated_tokens"] == want["generated_tokens"] and got["text"] == want["text"]
    assert got["semantics"] == want["semantics"]


def test_export_artifact_runs_like_the_emulator(demo_s2l, tmp_path):
    out = tmp_path / "conv.onnx"
    res = invoke("export", demo_s2l, "-o", out, "--json")
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["kind"] == "converted" and info["onnx_nodes_by_placement"]["chip"] > 0
    meta = OX.metadata(onnx.load(str(out)))
    assert meta[OX.M_ARTIFACT_SHA256] == artifact.sha256_file(demo_s2l)
    assert meta[OX.M_SOURCE_SHA256] == artifact.sha256_file(DEMO_CKPT)
    args = ("--prompt", "import os\nclass ", "--temperature", "0.8", "--seed", "3", "--max-new-tokens", "40")
    a = run_json(out, *args, "--dump-logits", tmp_path / "a.npy")
    b = run_json(demo_s2l, *args, "--dump-logits", tmp_path / "b.npy")
    assert a["backend"] == "onnxruntime" and b["backend"] == "emulator"
    assert a["generated_tokens"] == b["generated_tokens"]
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_tokenizer_option_and_token_ids(tmp_path):
    ckpt = tmp_path / "rand.pth"                        # no vocab.json beside it
    save_checkpoint(spiking_state_dict(2, 16, 77, seed=1), ckpt)
    out = tmp_path / "rand.onnx"
    res = invoke("export", ckpt, "-o", out)
    assert res.exit_code == 0 and "no tokenizer (token ids only)" in res.stdout
    one_line_error(invoke("run", out, "--prompt", "hi"), "--prompt needs a tokenizer")
    assert len(run_json(out, "--tokens", "1,2,3", "--max-new-tokens", "5")["generated_tokens"]) == 5
    got = run_json(out, "--prompt", "hi", "--tokenizer", DEMO / "vocab.json", "--max-new-tokens", "3")
    assert got["prompt"] == "hi"
    out2 = tmp_path / "rand-tok.onnx"
    assert invoke("export", ckpt, "-o", out2, "--tokenizer", DEMO / "vocab.json").exit_code == 0
    assert run_json(out2, "--prompt", "hi", "--max-new-tokens", "3")["prompt"] == "hi"


def test_semantics_is_fixed_at_export(tmp_path, demo_s2l):
    out = tmp_path / "train.onnx"
    assert invoke("export", DEMO_CKPT, "-o", out, "--semantics", "train").exit_code == 0
    assert json.loads(OX.metadata(onnx.load(str(out)))[OX.M_SEMANTICS])["name"] == "train"
    assert run_json(out, "--tokens", "5,6", "--max-new-tokens", "2")["semantics"]["name"] == "train"
    one_line_error(invoke("run", out, "--tokens", "5", "--semantics", "run"), "exported with --semantics train")
    before = tree(tmp_path)
    one_line_error(invoke("export", demo_s2l, "-o", tmp_path / "x.onnx", "--semantics", "train"),
                   "was converted with --semantics run")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("case", ["opset_low", "opset_high", "folder_is_file", "kernel_fs", "directory",
                                  "missing_model", "overwrite_input"])
def test_usage_errors_are_one_line_and_write_nothing(tmp_path, case):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "out.onnx"
    args, needle = {
        "opset_low": (("-o", out, "--opset", "12"), "--opset: 12 is out of range"),
        "opset_high": (("-o", out, "--opset", str(OX.MAX_OPSET + 1)), "expected an integer in 13..23"),
        "folder_is_file": (("-o", tmp_path / "afile" / "out.onnx"), "is a file, not a folder"),
        "kernel_fs": (("-o", "/proc/self/out.onnx"), "kernel file system"),
        "directory": (("-o", tmp_path), "is a directory"),
        "missing_model": (("-o", out), "no such file"),
        "overwrite_input": (("-o", DEMO_CKPT), "is also the input"),
    }[case]
    model = tmp_path / "nope.pth" if case == "missing_model" else DEMO_CKPT
    before = tree(tmp_path)
    one_line_error(invoke("export", model, *args), needle)
    assert tree(tmp_path) == before


def test_missing_output_folder_is_created(tmp_path):
    out = tmp_path / "new" / "sub" / "demo.onnx"
    assert invoke("export", DEMO_CKPT, "-o", out).exit_code == 0 and out.is_file()


def test_suffix_warning(tmp_path):
    res = invoke("export", DEMO_CKPT, "-o", tmp_path / "demo.bin")
    assert res.exit_code == 0 and "warning: --output" in res.stderr and "does not end in .onnx" in res.stderr
    one_line_error(invoke("run", tmp_path / "demo.bin", "--tokens", "1", "--backend", "onnxruntime"),
                   "runs exported .onnx step graphs")


def test_what_onnx_cannot_express_is_one_line_naming_the_op(demo_s2l, tmp_path):
    model = artifact.load(demo_s2l)
    nodes = dict(model.nodes)
    rec = nodes["blocks.1.att.value"]                         # Lava's int32 accumulator could wrap:
    nodes["blocks.1.att.value"] = dataclasses.replace(rec, input=dataclasses.replace(rec.input, bits=24))
    bad = tmp_path / "bad.s2l"
    artifact.save(dataclasses.replace(model, nodes=nodes), bad)
    before = tree(tmp_path)
    line = one_line_error(invoke("export", bad, "-o", tmp_path / "bad.onnx"), "cannot export blocks.1.att.value")
    assert "int32" in line
    assert tree(tmp_path) == before


def test_run_picks_and_checks_the_backend(exported, tmp_path):
    out, _ = exported
    one_line_error(invoke("run", out, "--tokens", "1", "--backend", "torch"),
                   "is an ONNX model: run it with --backend onnxruntime")
    one_line_error(invoke("run", DEMO_CKPT, "--tokens", "1", "--backend", "onnxruntime"),
                   "runs exported .onnx step graphs")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf at all" * 10)
    one_line_error(invoke("run", garbage, "--tokens", "1"), "onnxruntime cannot load it")
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    foreign = tmp_path / "foreign.onnx"
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = OX.MIN_IR_VERSION
    onnx.save(proto, str(foreign))
    one_line_error(invoke("run", foreign, "--tokens", "1"), "not a spike2loihi step graph")
    one_line_error(invoke("run", tmp_path / "gone.onnx", "--tokens", "1"), "no such file")
