"""Ground truth recorded outside this project, replayed through the process emulator (Lava-free).

The data in tests/data/peer/ are copied unchanged from lava-dl's netx tests and from NIR's paper
(BSD-3-Clause; the LICENSE files lie beside them; provenance in tests/data/peer/README.md):

* lava-dl `dense`: binary input -> Dense 200->256 -> CUBA LIF (vth 6, du 4095, dv 415), 2,000 steps;
* lava-dl `tinynet` input block: a bias-driven LIF 16x16x3 (vth 25, dv 1024), 15 steps;
* lava-dl `pilotnet_lif` fc-0..fc-2: the dense part of a netx HDF5 network, read by our netx reader
  (weights re-optimised as netx does), with netx's staggered LIFReset, 24 steps;
* NIR's one-neuron LIF recorded on **Loihi 2 silicon** and in Lava's CPU simulator, 1,000 steps.

Each comparison is exact. On a spike step the silicon reports v = 128 where Lava's CPU model holds 0
(the reset value): v is compared on non-spike steps, spikes everywhere. The mutation tests show that
each replay fails when the LIF arithmetic is off by one in u, in v or in the threshold.
"""
import itertools
from pathlib import Path

import numpy as np
import pytest

from converters.netx import process_graph, read_netx
from spike2loihi.convert.fixed_point import VTH_SHIFT
from spike2loihi.execute import kernels, process_emulator
from spike2loihi.execute.process_emulator import DenseProc, LIFProc, ProcessEmulator, ProcessGraph, SourceProc

PEER = Path(__file__).resolve().parent.parent / "data" / "peer"
DL = PEER / "lava-dl"
NIR = PEER / "nir-01_lif"
#: The hardware's v on a spike step (Lava's CPU model: 0, the reset).
LOIHI2_SPIKE_STEP_V = 128


def _run(g: ProcessGraph, steps: int):
    return ProcessEmulator(g).run(steps)


def replay_dense():
    """(spikes mismatched, spikes in the truth, u/64 mismatched)."""
    x = np.load(DL / "dense" / "in.npy").astype(np.int64)
    g = ProcessGraph()
    g.add("src", SourceProc(x))
    g.add("dense", DenseProc(np.load(DL / "dense" / "weight.npy")))
    g.add("lif", LIFProc(256, du=4095, dv=415, vth=6, bias_exp=6))
    g.connect("src", "dense")
    g.connect("dense", "lif")
    r = _run(g, x.shape[1])
    s, u = r["lif"]["s"][:, 0].T, r["lif"]["u"][:, 0].T
    truth = np.load(DL / "dense" / "out.npy")
    current = np.load(DL / "dense" / "current.npy")
    return int(np.count_nonzero(s != truth)), int(truth.sum()), int(np.count_nonzero(u != current * 64))


def replay_tinynet_input():
    bias = np.load(DL / "tinynet" / "input_bias.npy")
    # lava-dl's test: axes (W, H, C, T) and the recording one step ahead of Lava's sink
    truth = np.load(DL / "tinynet" / "input.npy")[0].transpose([2, 1, 0, 3])[..., 1:]
    g = ProcessGraph()
    g.add("lif", LIFProc(bias.size, du=4095, dv=1024, vth=25, bias_mant=bias.reshape(-1).astype(np.int64),
                         bias_exp=6))
    s = _run(g, truth.shape[-1])["lif"]["s"][:, 0].T.reshape(truth.shape)
    return int(np.count_nonzero(s != truth)), int(truth.sum())


#: netx's Network(reset_interval=17): the file's 11 layers build input, five convs, then dense blocks
#: 7, 8, 9 at reset offsets 7, 8, 9 (one more per built block, from 1).
PILOTNET_RESET_INTERVAL = 17
PILOTNET_FIRST_DENSE = 7


def replay_pilotnet():
    """Per dense layer k: (spikes mismatched, spikes in the truth, u mismatched, u size, v mismatched on
    non-spike steps, set of v values on spike steps)."""
    net = read_netx(DL / "pilotnet_lif" / "network.net", skip_layers=PILOTNET_FIRST_DENSE)
    c4 = np.load(DL / "pilotnet_lif" / "conv-4.npy")          # (W, H, C, T): the last conv layer's spikes
    x = c4.transpose(2, 1, 0, 3).reshape(-1, c4.shape[-1]).astype(np.int64)   # netx flattens (C, H, W)
    g, lifs = process_graph(net, x, reset_interval=PILOTNET_RESET_INTERVAL,
                            reset_offset=PILOTNET_FIRST_DENSE - 1)
    r = _run(g, x.shape[1])
    out = []
    for k, name in enumerate(lifs[:3]):
        s, u, v = (r[name][var][:, 0].T for var in ("s", "u", "v"))
        ts = np.load(DL / "pilotnet_lif" / f"fc-{k}.npy")
        tu = np.load(DL / "pilotnet_lif" / f"fc-{k}-u.npy")
        tv = np.load(DL / "pilotnet_lif" / f"fc-{k}-v.npy")
        out.append((int(np.count_nonzero(s.astype(bool) != ts)), int(ts.sum()), int(np.count_nonzero(u != tu)),
                    int(tu.size), int(np.count_nonzero((v != tv)[~ts])), set(np.unique(tv[ts]).tolist())))
    return out


def replay_nir(which: str):
    """NIR's LIF (dt 0.1 ms, tau 2.5 ms) as NIR's Lava path quantizes it: the input spikes through a
    Dense [[int(0.04 * 256)]] into LIF(du 4095, dv int(0.04 * 4095), vth int(0.1 * 131071) >> 9).
    Returns (spikes mismatched, spikes in the truth, v mismatched on non-spike steps, non-spike steps,
    set of v values on spike steps)."""
    tr = np.loadtxt(NIR / f"lif_lava_{which}_fixed.csv", delimiter=",")   # columns: input spike, v, spike
    x = tr[:, 0].astype(np.int64)[None, :]
    g = ProcessGraph()
    g.add("src", SourceProc(x))
    g.add("dense", DenseProc(np.array([[int(0.04 * 256)]])))
    g.add("lif", LIFProc(1, du=4095, dv=int(0.04 * 4095), vth=int(0.1 * 131071) >> 9))
    g.connect("src", "dense")
    g.connect("dense", "lif")
    r = _run(g, x.shape[1])
    s, v = r["lif"]["s"][:, 0, 0], r["lif"]["v"][:, 0, 0]
    ts = tr[:, 2] != 0
    return (int(np.count_nonzero(s.astype(bool) != ts)), int(ts.sum()), int(np.count_nonzero((v != tr[:, 1])[~ts])),
            int((~ts).sum()), set(tr[ts, 1].astype(int).tolist()))


def test_lava_dl_dense_block_spikes_and_current_are_exact():
    mismatched, spikes, u_mismatched = replay_dense()
    assert (mismatched, spikes, u_mismatched) == (0, 1826, 0)


def test_lava_dl_tinynet_input_block_is_exact():
    assert replay_tinynet_input() == (0, 6783)


def test_lava_dl_pilotnet_dense_layers_with_lif_reset_are_exact():
    layers = replay_pilotnet()
    assert [(m, sp, um, vm) for m, sp, um, _, vm, _ in layers] == [(0, 226, 0, 0), (0, 49, 0, 0), (0, 8, 0, 0)]
    assert layers[0][3] == 2400
    assert all(vs == {LOIHI2_SPIKE_STEP_V} for *_, vs in layers)   # recorded as the chip reports it


@pytest.mark.parametrize("which", ["loihi", "cpu"])
def test_nir_lif_trace_recorded_on_loihi2_is_exact(which):
    mismatched, spikes, v_mismatched, non_spike, spike_step_v = replay_nir(which)
    assert (mismatched, spikes, v_mismatched, non_spike) == (0, 4, 0, 996)
    assert spike_step_v == ({LOIHI2_SPIKE_STEP_V} if which == "loihi" else {0})


def test_without_the_reset_pilotnet_diverges():
    """The LIFReset is load-bearing: without it (or one step off) fc-0 is no longer reproduced."""
    net = read_netx(DL / "pilotnet_lif" / "network.net", skip_layers=PILOTNET_FIRST_DENSE)
    c4 = np.load(DL / "pilotnet_lif" / "conv-4.npy")
    x = c4.transpose(2, 1, 0, 3).reshape(-1, c4.shape[-1]).astype(np.int64)
    ts, tv = np.load(DL / "pilotnet_lif" / "fc-0.npy"), np.load(DL / "pilotnet_lif" / "fc-0-v.npy")
    for interval, offset in ((0, 0), (PILOTNET_RESET_INTERVAL, PILOTNET_FIRST_DENSE)):
        g, lifs = process_graph(net, x, reset_interval=interval, reset_offset=offset)
        r = _run(g, x.shape[1])[lifs[0]]
        s, v = r["s"][:, 0].T.astype(bool), r["v"][:, 0].T   # (u has no memory here: du 4095)
        assert np.count_nonzero(s != ts) + np.count_nonzero((v != tv)[~ts]) > 0, (interval, offset)


# ---------------------------------------------------------------------------
# Mutations: each replay fails when the LIF arithmetic is off by one
# ---------------------------------------------------------------------------
def _mutated_lif(kind: str):
    """`lif_update` with one off-by-one: in the new u, in the new v, or in the threshold (vth +- 1)."""
    orig_update, orig_decay = kernels.lif_update, kernels._decay

    def update(u, v, a, du, dv, eff_vth, bias=0, counter=None):
        if kind in ("vth+1", "vth-1"):
            step = (1 << VTH_SHIFT) * (1 if kind == "vth+1" else -1)
            return orig_update(u, v, a, du, dv, eff_vth + step, bias, counter)
        calls = itertools.count()
        target = 0 if kind == "u+1" else 1      # lif_update decays u first, then v

        def decay(x, factor):
            out = orig_decay(x, factor)
            return out + 1 if next(calls) == target else out

        kernels._decay = decay
        try:
            return orig_update(u, v, a, du, dv, eff_vth, bias, counter)
        finally:
            kernels._decay = orig_decay

    return update


REPLAYS = {
    "dense": lambda: replay_dense()[::2] != (0, 0),
    "tinynet": lambda: replay_tinynet_input()[0] != 0,
    "pilotnet": lambda: any(m or um or vm for m, _, um, _, vm, _ in replay_pilotnet()),
    "nir-loihi2": lambda: replay_nir("loihi")[::2] != (0, 0),
}


@pytest.mark.parametrize("kind", ["u+1", "v+1", "vth+1", "vth-1"])
@pytest.mark.parametrize("replay", sorted(REPLAYS))
def test_an_off_by_one_in_the_lif_fails_every_replay(monkeypatch, kind, replay):
    monkeypatch.setattr(process_emulator, "lif_update", _mutated_lif(kind))
    assert REPLAYS[replay](), f"{replay} did not notice the LIF off by one ({kind})"
