"""Tampered artifacts with a recomputed checksum: every one is refused at load in one line naming what is
wrong (the manifest's schema, Lava's ranges, the graph its config builds), never a traceback deep in the
emulator, never a run to the end on nonsense."""
import hashlib
import json
import struct

import pytest
from click.testing import CliRunner

from conftest import converted_random, one_line_error
from spike2loihi.cli.app import main
from spike2loihi.convert import artifact

_HEADER = struct.Struct("<8sIIQ")


def rewrite(data: bytes, edit) -> bytes:
    """The artifact `data` with its manifest changed by `edit(manifest)` (or replaced by its return value,
    if bytes), the data section kept, and a valid checksum."""
    _, version, _, mlen = _HEADER.unpack_from(data)
    manifest = json.loads(data[_HEADER.size:_HEADER.size + mlen])
    start = _HEADER.size + mlen
    start += (-start) % 64
    section = data[start:-32]
    out = edit(manifest)
    mbytes = out if isinstance(out, bytes) else json.dumps(manifest, sort_keys=True).encode()
    head = _HEADER.pack(artifact.MAGIC, version, 0, len(mbytes)) + mbytes
    body = head + b"\0" * ((-len(head)) % 64) + section
    return body + hashlib.sha256(body).digest()


def _tensor(m, name):
    return next(e for e in m["tensors"] if e["name"] == name)


def _set(path, value):
    def edit(m):
        *keys, last = path
        d = m
        for k in keys:
            d = d[k]
        d[last] = value
    return edit


def _del(path):
    def edit(m):
        *keys, last = path
        d = m
        for k in keys:
            d = d[k]
        del d[last]
    return edit


W = "blocks.0.att.output"        # Wo: a Dense feeding the att LIF
L = "blocks.0.att.lif"
K = "blocks.1.att.key"           # a host-bound Dense
CASES = {
    "negative shape": (lambda m: _tensor(m, W + ".mantissa").update(shape=[-16, 16]), "shape"),
    "overflowing shape": (lambda m: _tensor(m, W + ".mantissa").update(shape=[1 << 40, 1 << 40]), "shape"),
    "dtype as a list": (lambda m: _tensor(m, W + ".mantissa").update(dtype=["int8"]), "dtype"),
    "missing offset": (lambda m: _tensor(m, W + ".mantissa").pop("offset"), "offset"),
    "negative offset": (lambda m: _tensor(m, W + ".mantissa").update(offset=-64), "offset"),
    "offset past the end": (lambda m: _tensor(m, W + ".mantissa").update(offset=1 << 30), "outside the data"),
    "shape not its size": (lambda m: _tensor(m, W + ".mantissa").update(shape=[16, 8]), "do not hold"),
    "missing config": (_del(["config"]), "config"),
    "missing semantics": (_del(["semantics"]), "semantics"),
    "missing node record": (_del(["nodes", W]), "no quantization record"),
    "missing tensor": (lambda m: m.__setitem__("tensors", [e for e in m["tensors"] if e["name"] != K + ".row_scale"]),
                       "missing"),
    "mantissa of another shape": (lambda m: _tensor(m, W + ".mantissa").update(shape=[8, 32]), "expected"),
    "input bits 0": (_set(["nodes", K, "input", "bits"], 0), "input.bits"),
    "weight_exp 10^6": (_set(["nodes", W, "weight_exp"], 10 ** 6), "weight_exp"),
    "vth 2^40": (_set(["nodes", L, "vth"], 1 << 40), "vth"),
    "du -7": (_set(["nodes", L, "du"], -7), "du"),
    "dv 99999": (_set(["nodes", L, "dv"], 99999), "dv"),
    "weight bits 99": (_set(["nodes", W, "num_weight_bits"], 99), "num_weight_bits"),
    "v_scale NaN-like": (_set(["nodes", L, "v_scale"], -1.0), "v_scale"),
    "n_layer 1000 against the graph": (_set(["config", "n_layer"], 1000), "not the one its config"),
    "vocabulary 0": (_set(["config", "vocab_size"], 0), "config"),
    "unknown record field": (_set(["nodes", L, "teleport"], 1), "unknown field"),
    "record of the wrong type": (_set(["nodes", L, "du"], "4095"), "du"),
    "a schedule that is not the graph's": (_set(["schedule", "critical_path_steps"], 1), "schedule"),
    "nested 200,000 deep": (lambda m: b'{"a":' * 200000 + b"1" + b"}" * 200000, "nested too deep"),
    "not an object": (lambda m: b"[1, 2, 3]", "not an object"),
}


@pytest.fixture(scope="module")
def good():
    return artifact.to_bytes(converted_random(2, 16, 40))


@pytest.mark.parametrize("case", list(CASES))
def test_tampered_manifest_is_refused_in_one_line(case, good):
    edit, needle = CASES[case]
    with pytest.raises(artifact.ArtifactError) as exc:
        artifact.from_bytes(rewrite(good, edit), "bad.s2l")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("bad.s2l: ") and needle in msg, msg


def test_the_untampered_artifact_loads(good):
    assert artifact.from_bytes(rewrite(good, lambda m: None)).nodes


@pytest.mark.parametrize("case", ["weight_exp 10^6", "n_layer 1000 against the graph", "nested 200,000 deep"])
def test_every_command_refuses_a_tampered_model_in_one_line(case, good, tmp_path):
    bad = tmp_path / "bad.s2l"
    bad.write_bytes(rewrite(good, CASES[case][0]))
    for args in (["run", bad, "--tokens", "1,2", "--backend", "emulator"], ["inspect", bad],
                 ["profile", bad, "--hw", "simulator"], ["eval", bad, "--tokens-file", bad]):
        res = CliRunner().invoke(main, [str(a) for a in args])
        one_line_error(res, CASES[case][1])


@pytest.mark.parametrize("placement", ["host", "chip"])
def test_a_conversion_error_names_its_layer(placement):
    from conftest import convert_spec, spiking_state_dict
    from converters.spikegpt import spec_from_state_dict
    from spike2loihi.errors import QuantizationError

    sd = spiking_state_dict(2, 16, 40, seed=0)
    for k, t in sd.items():
        if k.endswith(".weight") and t.dim() == 2:
            sd[k] = t / t.abs().max() * 9000          # finite and within the reader's bound, beyond Lava's
    with pytest.raises(QuantizationError) as exc:
        convert_spec(spec_from_state_dict(sd), list(range(1, 13)), placement=placement)
    msg = str(exc.value)
    assert msg.startswith("blocks.") and "\n" not in msg, msg
