"""Input paths are read as hostile: a named pipe, a device, a directory or an oversized file given to any
command ends in one `error:` line within seconds, nothing written; a path recorded inside an artifact is
never opened unless it is a regular file whose sha256 the artifact records."""
import dataclasses
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import convert_spec, converted_random, deadline, DEMO, DEMO_CKPT, one_line_error
from spike2loihi import inputs
from spike2loihi.cli.app import main
from spike2loihi.convert import artifact


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def specials(tmp_path_factory):
    folder = tmp_path_factory.mktemp("specials")
    fifo = folder / "pipe"
    os.mkfifo(fifo)
    return {"fifo": fifo, "device": Path("/dev/zero"), "directory": folder}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, demo_spec):
    """The bundled model converted (with its tokenizer) on a few calibration tokens."""
    model = convert_spec(demo_spec, demo_spec.tokenizer.encode("The for statement is a loop."))[0]
    path = tmp_path_factory.mktemp("m") / "m.s2l"
    artifact.save(model, path)
    return model, path


WHAT = {"fifo": "named pipe", "device": "is a device", "directory": "is a directory"}


@pytest.mark.parametrize("kind", list(WHAT))
def test_special_files_as_inputs_are_one_line(kind, specials, model_path, tmp_path):
    bad = specials[kind]
    _, model = model_path
    cases = [
        ("run", model, "--tokens-file", bad),
        ("run", DEMO_CKPT, "--tokens-file", bad),
        ("convert", DEMO_CKPT, "-o", tmp_path / "x.s2l", "--calib", bad),
        ("convert", DEMO_CKPT, "-o", tmp_path / "x.s2l", "--calib-tokens-file", bad),
        ("eval", model, "--tokens-file", bad),
        ("profile", model, "--hw", "simulator", "--tokens-file", bad),
        ("profile", model, "--hw", "simulator", "--text", bad),
        ("run", bad, "--tokens", "1", "--backend", "emulator"),
        ("inspect", bad),
    ]
    for args in cases:
        with deadline(20):
            res = invoke(*args)
        one_line_error(res, WHAT[kind])
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_oversized_text_is_refused_before_it_is_read(tmp_path, monkeypatch):
    big = tmp_path / "big.txt"
    big.write_text("x" * 5000)
    monkeypatch.setattr(inputs, "MAX_TEXT_BYTES", 1000)
    with pytest.raises(inputs.InputFileError, match="5,000 bytes, more than the 1,000"):
        inputs.read_input_text(big, "--calib", inputs.MAX_TEXT_BYTES)


def test_a_source_path_inside_the_artifact_is_never_opened_unless_regular_and_hashed(specials, tmp_path):
    model = converted_random(2, 16, 40)
    for kind in ("fifo", "device"):
        m = dataclasses.replace(model, manifest={**model.manifest, artifact.K_SOURCE: {"path": str(specials[kind]),
                                                                                        "sha256": ""}})
        path = tmp_path / f"{kind}.s2l"
        artifact.save(m, path)
        with deadline(20):
            res = invoke("run", path, "--backend", "torch", "--tokens", "1,2", "--max-new-tokens", "0")
        one_line_error(res, "not a regular file")
    # a regular file, but no sha256 recorded: the reference cannot be verified
    m = dataclasses.replace(model, manifest={**model.manifest, artifact.K_SOURCE: {"path": str(DEMO_CKPT)}})
    path = tmp_path / "nohash.s2l"
    artifact.save(m, path)
    one_line_error(invoke("run", path, "--backend", "torch", "--tokens", "1,2"), "records no sha256")


def test_is_artifact_never_opens_a_pipe(specials):
    with deadline(5):
        assert not artifact.is_artifact(specials["fifo"])
    assert not artifact.is_artifact(DEMO / "vocab.json")
