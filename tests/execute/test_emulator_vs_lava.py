"""The emulator equals Lava 0.10.0's fixed_pt simulator, value for value.

Random networks pack many independent cases into one Lava run (Lava starts an
OS process per process, so packing is what makes >= 200 cases fast); the
deterministic tests pin each Lava quirk to hand-computed numbers so that a
wrong emulator and a wrong Lava reading cannot agree by accident.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import os

import numpy as np
import pytest

import _lava_helpers as H  # noqa: E402
from spike2loihi.execute.process_emulator import LIFProc, DenseProc, ProcessEmulator, ProcessGraph, SourceProc, SparseProc  # noqa: E402
from spike2loihi.convert.fixed_point import SignMode  # noqa: E402

pytestmark = pytest.mark.lava   # every test here runs Lava's simulator


RANDOM_SEEDS = (0, 1, 2, 3)
CASES_PER_GROUP, GROUPS, STEPS = 16, 4, 16


def _children() -> list:
    """Live child processes of this test process (Lava forks one per process).

    Python's own multiprocessing resource tracker is left out: it is one
    helper per interpreter (shared memory bookkeeping) that exits with it.
    """
    me, kids = os.getpid(), []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z" and "multiprocessing.resource_tracker" not in cmd:
            kids.append((int(pid), cmd))
    return kids


@functools.lru_cache(maxsize=None)
def _random_run(seed: int):
    packed = H.random_packed_graph(seed, n_groups=GROUPS, cases_per_group=CASES_PER_GROUP, steps=STEPS)
    mismatch, emu, n_values = H.compare_packed(packed)
    return packed, mismatch, emu.events, n_values


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_random_packed_cases_equal_lava(seed):
    packed, mismatch, _, n_values = _random_run(seed)
    assert packed.n_cases == GROUPS * CASES_PER_GROUP
    assert n_values > 10_000
    assert mismatch is None, f"emulator differs from Lava: {mismatch}"


def test_random_suite_covers_the_quirks():
    """The random cases must actually reach the wrap/saturation code paths."""
    events, n_cases, kinds = {}, 0, set()
    for seed in RANDOM_SEEDS:
        packed, _, ev, _ = _random_run(seed)
        n_cases += packed.n_cases
        for per_node in ev.values():
            for k, v in per_node.items():
                events[k] = events.get(k, 0) + v
        for node in packed.graph.nodes.values():
            if isinstance(node, DenseProc):
                kinds.add((type(node).__name__, "graded" if node.num_message_bits else "binary"))
                if np.issubdtype(np.asarray(node.weights).dtype, np.floating):
                    kinds.add("float weights")
        kinds.update(lbl.split("(")[1].split(")")[0] for lbl in packed.labels)
    assert n_cases >= 200
    for key in ("u_wrap_pos", "u_wrap_neg", "u_beyond_24bit", "v_sat_pos", "v_sat_neg",
                "a_shift_wrap32", "acc_wrap32", "spikes"):
        assert events.get(key, 0) > 0, f"random cases never hit {key}: {events}"
    assert {("DenseProc", "binary"), ("DenseProc", "graded"), ("SparseProc", "binary"), ("SparseProc", "graded"),
            "float weights", *H.TEMPLATES} <= kinds


# ---------------------------------------------------------------------------
# Hand-computed edges
# ---------------------------------------------------------------------------
E = 1 << 23


def _edge_graph() -> ProcessGraph:
    data = np.array([[1 << 17], [-(1 << 17)], [(1 << 17) + 1], [-((1 << 17) + 1)], [E - 1], [-E]])
    g = ProcessGraph()
    g.add("src", SourceProc(data=np.repeat(data, 2, axis=1)))
    g.add("lif", LIFProc(shape=(6,), du=4095, dv=0, vth=(1 << 17) - 1))
    w = np.zeros((1, 6), dtype=np.int64)
    w[0, [0, 4]] = 254
    g.add("dg", DenseProc(weights=w, num_message_bits=24))            # int32 dot overflow
    g.add("dshift", DenseProc(weights=w // 127, weight_exp=7, num_message_bits=24))  # int32 << overflow
    g.add("lsum", LIFProc(shape=(1,), du=4095, dv=4095, vth=0))
    for s, d in (("src", "lif"), ("src", "dg"), ("src", "dshift"), ("dg", "lsum"), ("dshift", "lsum")):
        g.connect(s, d)
    return g


@functools.lru_cache(maxsize=None)
def _edge_lava():
    return H.run_lava(_edge_graph(), 3)


def test_24bit_wrap_edges_and_int32_overflow_match_lava_and_hand_values():
    lava = _edge_lava()
    emu = ProcessEmulator(_edge_graph(), count_events=True)
    rec = emu.run(3)
    assert H.first_mismatch(lava, rec) is None
    u = lava["lif"]["u"][0, 0]
    # +2**23 is left unwrapped, -2**23 becomes +2**23, one +-2**24 correction only.
    assert u.tolist() == [E, E, -E + 64, E - 64, ((E - 1) << 6) - 2 * E, -(E << 6) + 2 * E]
    v = lava["lif"]["v"][0, 0]
    s = lava["lif"]["s"][0, 0]
    # v saturates at +-(2**23 - 1); v == vth << 6 = 2**23 - 64 does not fire (strict >).
    assert s.tolist() == [1, 1, 0, 0, 1, 0]
    assert v.tolist() == [0, 0, -E + 64, E - 64, 0, -(E - 1)]
    acc = 254 * ((1 << 17) + E - 1)
    wrapped = (acc + 2 ** 31) % 2 ** 32 - 2 ** 31
    assert lava["dg"]["a_buff"][0, 0, 0] == wrapped != acc
    shifted = (2 * ((1 << 17) + E - 1)) << 7
    assert lava["dshift"]["a_buff"][0, 0, 0] == (shifted + 2 ** 31) % 2 ** 32 - 2 ** 31 != shifted
    assert lava["dg"]["a_out"][1, 0, 0] == wrapped       # one step of delay
    assert lava["dg"]["a_out"][0, 0, 0] == 0
    assert emu.events["lif"]["u_edge_pos"] > 0 and emu.events["lif"]["u_edge_neg"] > 0
    assert emu.events["dg"]["acc_wrap32"] > 0 and emu.events["dshift"]["shift_wrap32"] > 0


def test_a_detuned_emulator_is_caught():
    """The comparison can fail: a threshold one off is reported at its first step."""
    g = _edge_graph()
    g.nodes["lif"] = dataclasses.replace(g.nodes["lif"], vth=(1 << 17) - 2)   # now v = 2**23 - 64 fires
    mm = H.first_mismatch(_edge_lava(), ProcessEmulator(g).run(3))
    assert mm is not None and (mm["process"], mm["step"], mm["index"]) == ("lif", 1, 3), mm
    assert mm["variable"] in ("s", "v")


def test_first_step_weight_processing_matches_lava():
    """Sign mode inference, clipping, truncation and the floor shift, by hand."""
    g = ProcessGraph()
    g.add("src", SourceProc(data=np.ones((2, 1), dtype=np.int64)))
    cases = {
        "d_float": (DenseProc(weights=np.array([[3.7, -0.5]])), 3),          # int32 cast first: EXCITATORY
        "s_float": (SparseProc(weights=np.array([[3.7, -0.5]])), 2),         # sign from floats: MIXED, 3 -> 2
        "d_mixed": (DenseProc(weights=np.array([[-5, 3]])), -6 + 2),         # floor to even
        "d_inh": (DenseProc(weights=np.array([[-5, -3]]), num_weight_bits=7), -4 - 2),  # magnitudes
        "d_null": (DenseProc(weights=np.array([[-5, 300]]), sign_mode=SignMode.NULL), 0 + 255),
        "d_clip": (DenseProc(weights=np.array([[-300, 300]])), -256 + 254),
        "d_exp_pos": (DenseProc(weights=np.array([[7, 0]]), weight_exp=-1), 3),
        "d_exp_neg": (DenseProc(weights=np.array([[-7, 0]]), weight_exp=-1), -4),   # floor, not toward 0
        "s_exp_up": (SparseProc(weights=np.array([[100, 0]]), weight_exp=3), 800),
    }
    for name, (node, _) in cases.items():
        g.add(name, node)
        g.connect("src", name)
    lava = H.run_lava(g, 2)
    rec = ProcessEmulator(g).run(2)
    assert H.first_mismatch(lava, rec) is None
    for name, (_, want) in cases.items():
        assert lava[name]["a_buff"][0, 0, 0] == want, name
        assert lava[name]["a_out"][:, 0, 0].tolist() == [0, want], name


def test_set_between_steps_matches_lava():
    """vth is scaled once (later sets are ignored), bias every step, weights raw after step 1."""
    g = ProcessGraph()
    g.add("src", SourceProc(data=np.array([[1], [1]])))
    g.add("d", DenseProc(weights=np.array([[3, 0], [0, -3]])))     # MIXED: 3 -> 2, -3 -> -4
    g.add("l", LIFProc(shape=(2,), du=4095, dv=2048, vth=100, bias_mant=0, bias_exp=0))
    g.connect("src", "d")
    g.connect("d", "l")
    steps, at = 8, 4
    new_w = np.array([[255, 0], [0, -255]])                     # would be truncated on step 1
    sets = {at: [("l", "vth", [1]), ("l", "bias_mant", [1000, -4096]), ("l", "bias_exp", [1, 1]),
                 ("d", "weights", new_w), ("l", "v", [100, -100])]}
    lava = H.run_lava(g, steps, sets=sets)
    emu = ProcessEmulator(g)
    parts = [emu.run(at)]
    for name, var, value in sets[at]:
        emu.set(name, var, np.asarray(value))
    parts.append(emu.run(steps - at))
    rec = {n: {v: np.concatenate([p[n][v] for p in parts]) for v in parts[0][n]} for n in parts[0]}
    assert H.first_mismatch(lava, rec) is None
    assert lava["d"]["a_buff"][at, 0].tolist() == [255, -255]     # raw weights used
    v = lava["l"]["v"][:, 0, 0]
    # Step at+1 still receives the old accumulation (2); the new bias counts at once.
    assert v[at] == 100 // 2 + (2 << 6) + (1000 << 1)
    assert lava["l"]["s"][at, 0, 0] == 0 and v[at] > 64          # vth=1 ignored: 100 << 6 still rules
    assert lava["l"]["s"][:, 0, 0].sum() > 0                     # and it does fire above 6400 later


def test_lava_runs_leave_no_processes_even_on_error():
    assert _children() == []
    g = ProcessGraph()
    g.add("src", SourceProc(data=np.ones((1, 1), dtype=np.int64)))
    g.add("l", LIFProc(shape=(1,)))
    g.connect("src", "l")
    with pytest.raises(AttributeError):
        H.run_lava(g, 3, sets={1: [("l", "no_such_var", [0])]})
    assert _children() == []


@pytest.mark.subprocess
def test_batch_rows_equal_independent_runs():
    """Batch entries do not interact: each equals a batch-1 run with its own data."""
    packed = H.random_packed_graph(7, n_groups=2, cases_per_group=4, steps=10)
    base = packed.graph.nodes["src"].data
    rng = np.random.default_rng(1)
    datas = [base, np.where(base != 0, base // 2, 1), rng.permutation(base, axis=1)]
    batched = copy.deepcopy(packed.graph)
    batched.nodes["src"] = SourceProc(data=np.stack(datas))
    rec_b = ProcessEmulator(batched, batch_size=3).run(10)
    for b, d in enumerate(datas):
        single = copy.deepcopy(packed.graph)
        single.nodes["src"] = SourceProc(data=d)
        rec_1 = ProcessEmulator(single).run(10)
        for name in rec_1:
            for var in rec_1[name]:
                np.testing.assert_array_equal(rec_b[name][var][:, b], rec_1[name][var][:, 0], err_msg=f"{b} {name}.{var}")
    assert not np.array_equal(rec_b["src"]["s_out"][:, 0], rec_b["src"]["s_out"][:, 1])
