"""lava-dl netx HDF5 networks in and out, as users meet them.

In: `inspect`/`profile`/`run` on PilotNet's dense part (lava-dl's test network) and on networks written
by lava-dl's own writer (slayer's `export_hdf5`): the layer table, every violation, cores and chips, the
emulator equal to netx's own Lava network (`--compare-lava`), and one-line refusals.
Out: `export --format netx` writes the Dense -> LIF layers netx holds exactly, each checked in Lava.
"""
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import DEMO, DEMO_CKPT, one_line_error
from converters.netx import netx_weight_bits, read_netx
from spike2loihi.cli.app import main
from spike2loihi.errors import NetxError
from spike2loihi.export.netx import write_netx_file
from spike2loihi.reports.netx import emulate, first_divergence

PILOTNET = Path(__file__).resolve().parent.parent / "data" / "peer" / "lava-dl" / "pilotnet_lif" / "network.net"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def pilotnet_input(tmp_path_factory):
    c4 = np.load(PILOTNET.parent / "conv-4.npy")
    path = tmp_path_factory.mktemp("pn") / "conv4.npy"
    np.save(path, c4.transpose(2, 1, 0, 3).reshape(-1, c4.shape[-1]).astype(np.int8))
    return path


def slayer_network(path, seed: int, sizes=(30, 40, 10), gain=4.0):
    """A CUBA dense network written by lava-dl's own writer (slayer blocks' export_hdf5)."""
    import torch
    import lava.lib.dl.slayer as slayer

    torch.manual_seed(seed)
    params = {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03, "requires_grad": False}
    blocks = [slayer.block.cuba.Dense(params, a, b, weight_norm=False) for a, b in zip(sizes, sizes[1:])]
    x = (torch.rand(1, sizes[0], 8) < 0.3).float()
    with torch.no_grad():
        for b in blocks:
            b.synapse.weight.mul_(gain)
            x = b(x)   # slayer knows its neuron shape only after a forward pass
    with h5py.File(path, "w") as f:
        layers = f.create_group("layer")
        for i, b in enumerate(blocks):
            b.export_hdf5(layers.create_group(str(i)))
    return path


def test_netx_weight_optimiser_matches_lava_dl():
    from lava.lib.dl.netx.utils import optimize_weight_bits

    rng = np.random.default_rng(0)
    cases = [rng.integers(-128, 128, (20, 30)), rng.integers(0, 200, (5, 7)), -rng.integers(1, 256, (4, 4)),
             rng.integers(-6, 7, (9, 9)) * 8, np.array([[1, 0], [0, 0]]), rng.integers(-300, 300, (6, 6))]
    for w in cases:
        ours = netx_weight_bits(w)
        theirs = optimize_weight_bits(w.astype(np.int64))
        assert np.array_equal(ours[0], theirs[0]) and ours[1:3] == theirs[1:3], w
        assert ours[3] == theirs[3].name


def test_inspect_pilotnet_dense_part_shows_the_layer_table():
    res = invoke("inspect", PILOTNET, "--skip-layers", 7, "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    rows = info["layers"]
    assert [(r["index"], r["n_out"], r["n_in"], r["weight_bits"], r["weight_exp"]) for r in rows] == [
        (7, 100, 2560, 3, -5), (8, 50, 100, 4, -4), (9, 10, 50, 5, -3), (10, 1, 10, 6, -2)]
    assert info["violations"] == []
    text = invoke("inspect", PILOTNET, "--skip-layers", 7).stdout
    assert "violations   none" in text and "100x2560" in text


def test_unsupported_layers_are_one_line_naming_the_layer():
    one_line_error(invoke("inspect", PILOTNET), "layer 0 is an input block with a neuron")
    one_line_error(invoke("inspect", PILOTNET, "--skip-layers", 1), "layer 1 is 'conv'")
    one_line_error(invoke("profile", PILOTNET, "--hw", "kapoho_point", "--skip-layers", 3), "layer 3 is 'conv'")


def test_profile_gives_cores_and_chips_on_every_profile():
    res = invoke("profile", PILOTNET, "--hw", "kapoho_point", "--skip-layers", 7, "--json")
    assert res.exit_code == 0, res.output
    plans = json.loads(res.stdout)["plans"]
    names = [p["profile"] for p in plans]
    assert names[0] == "kapoho_point" and {"oheo_gulch", "hala_point"} <= set(names)
    for p in plans:
        assert p["neurons"] == 161 and p["synapses"] == 100 * 2560 + 50 * 100 + 10 * 50 + 10
        assert 4 <= p["cores_ceiling"] <= p["cores_realistic"] and p["chips_needed_realistic"] == 1


@pytest.mark.lava
def test_run_pilotnet_dense_part_equals_netx_lava(pilotnet_input):
    res = invoke("run", PILOTNET, "--skip-layers", 7, "--input", pilotnet_input, "--reset-interval", 17,
                 "--reset-offset", 6, "--compare-lava", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["spikes"] == {"dense7": 226, "dense8": 49, "dense9": 8, "dense10": 0}
    assert out["lava"]["identical"] and out["lava"]["spikes"] == out["spikes"]


@pytest.mark.lava
@pytest.mark.parametrize("seed,reset", [(0, 0), (1, 16)])
def test_slayer_written_networks_run_equal_to_netx_lava(tmp_path, seed, reset):
    net_path = slayer_network(tmp_path / "net.net", seed)
    x = (np.random.default_rng(seed).random((30, 120)) < 0.3).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    res = invoke("run", net_path, "--input", tmp_path / "x.npy", "--reset-interval", reset, "--compare-lava",
                 "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["lava"]["identical"] and all(n > 0 for n in out["spikes"].values()), out


def test_first_divergence_names_step_layer_neuron_and_values(tmp_path):
    """A changed threshold is found at its first step, layer and neuron (Lava-free: two emulator runs)."""
    path = slayer_network(tmp_path / "net.net", 2)
    net = read_netx(path)
    x = (np.random.default_rng(2).random((30, 60)) < 0.3).astype(np.int64)
    ours = emulate(net, x)
    with h5py.File(path, "r+") as f:
        f["layer/1/neuron/vThMant"][()] = int(f["layer/1/neuron/vThMant"][()]) + 10
    theirs = emulate(read_netx(path), x)
    div = first_divergence(ours, theirs)
    assert div is not None and div["layer"] == "dense1" and div["var"] == "s"
    assert ours["dense1"]["s"][div["step"] - 1, div["neuron"]] == div["emulator"] == 1 and div["lava"] == 0
    assert np.array_equal(ours["dense0"]["s"], theirs["dense0"]["s"])   # the layer before is untouched


@pytest.mark.parametrize("mutate,needle", [
    (lambda f: f["layer/0/weight"].__setitem__((0, 0), np.nan), "layer 0/weight: holds NaN"),
    (lambda f: f["layer/0/neuron/type"].__setitem__((), b"SDNN"), "neuron type 'SDNN' is not emulated"),
    (lambda f: f["layer"].create_group("1").create_dataset("type", data=np.array([b"conv"])), "layer 1 is 'conv'"),
    (lambda f: f["layer/0"].create_dataset("delay", data=np.ones(3)), "'delay'"),
    (lambda f: f.__delitem__("layer"), "no 'layer' group"),
])
def test_hostile_netx_files_are_one_line(tmp_path, mutate, needle):
    path = tmp_path / "w.net"
    write_netx_file(path, np.array([[4, -8, 12], [2, 0, -6]]), du=4095, dv=1024, vth=10)
    with h5py.File(path, "r+") as f:
        mutate(f)
    with pytest.raises(NetxError) as e:
        read_netx(path)
    assert needle in str(e.value) and "\n" not in str(e.value) and str(path) in str(e.value)
    one_line_error(invoke("inspect", path), needle)


def test_not_hdf5_truncated_and_wrong_inputs_are_one_line(tmp_path):
    good = tmp_path / "w.net"
    write_netx_file(good, np.array([[4, -8, 12], [2, 0, -6]]), du=4095, dv=1024, vth=10)
    cut = tmp_path / "cut.net"
    cut.write_bytes(good.read_bytes()[:900])
    one_line_error(invoke("inspect", cut), "cut.net")
    np.save(tmp_path / "bad.npy", np.zeros((4, 5)))
    one_line_error(invoke("run", good, "--input", tmp_path / "bad.npy"), "expected (3, T)")
    one_line_error(invoke("run", good), "give --input")
    one_line_error(invoke("run", good, "--input", tmp_path / "bad.npy", "--prompt", "x"), "--prompt")


@pytest.mark.lava
def test_export_netx_writes_exact_layers_and_lists_the_rest(tmp_path):
    """The bundled model with --lif-weight-bits 5: every Wo -> att LIF is held exactly by netx (and checked
    in netx's Lava network by the command); the ffn LIFs and, at 8 bits, Wo are listed with their reasons."""
    models = {}
    for bits in (8, 5):
        m = tmp_path / f"d{bits}.s2l"
        res = invoke("convert", DEMO_CKPT, "-o", m, "--calib", DEMO / "calib.txt", "--calib-len", 64,
                     "--lif-weight-bits", bits)
        assert res.exit_code == 0, res.output
        models[bits] = m
    text = tmp_path / "t.txt"
    text.write_text((DEMO / "heldout.txt").read_text()[:400])
    res = invoke("export", models[8], "--format", "netx", "-o", tmp_path / "n8", "--text", text, "--json")
    assert res.exit_code == 0, res.output
    r8 = json.loads(res.stdout)
    assert r8["written"] == 0 and all(not row["written"] and row["reason"] for row in r8["layers"])
    assert all("--lif-weight-bits 5" in row["reason"] for row in r8["layers"] if row["lif"].endswith("att.lif"))
    assert sorted(p.name for p in (tmp_path / "n8").iterdir()) == ["netx_report.json"]
    res = invoke("export", models[5], "--format", "netx", "-o", tmp_path / "n5", "--text", text, "--max-tokens", 96,
                 "--json")
    assert res.exit_code == 0, res.output
    r5 = json.loads(res.stdout)
    written = [row for row in r5["layers"] if row["written"]]
    assert [row["lif"] for row in written] == [f"blocks.{i}.att.lif" for i in range(4)]
    assert all(row["spikes_equal"] and row["spikes_emulator"] > 0 for row in written)
    for row in written:
        net = read_netx(tmp_path / "n5" / row["file"], input_message_bits=row["input_bits"])
        feed = np.load(tmp_path / "n5" / f"{row['lif']}.inputs.npy")
        spikes = np.load(tmp_path / "n5" / f"{row['lif']}.spikes.npy")
        ours = emulate(net, feed)["dense0"]["s"][1:].T
        assert np.array_equal(ours, spikes)   # the written file, re-read, reproduces the model's spikes
    assert all("not one chip Dense" in row["reason"] for row in r5["layers"] if not row["written"])
    one_line_error(invoke("export", models[5], "--format", "netx", "-o", tmp_path / "n5", "--text", text),
                   "not empty")


def test_export_netx_output_that_is_a_file_is_one_line(tmp_path):
    out = tmp_path / "taken"
    out.write_text("mine")
    one_line_error(invoke("export", DEMO_CKPT, "--format", "netx", "-o", out, "--text", "The"),
                   f"--output {out}: is a file, expected a folder for the netx files")
    assert out.read_text() == "mine"
