"""Resource planner: core groups, splits and chip counts on known shapes (hand-computed), the
216M shapes on every system without converting anything, every violation at once, and the
`profile` command's plan output and exit codes."""
import dataclasses
import json
import math

import pytest
import yaml
from click.testing import CliRunner

from conftest import converted_random
from spike2loihi.convert import artifact, ir
from spike2loihi.cli import group as cliutil
from spike2loihi.hardware import plan_report as PR, planner as P, profiles as H
from spike2loihi.cli.profile import profile as profile_command

# Per-core synapse capacity of the packaged chip (8-bit weights):
CEIL = 16384 * 64 // 8          # 131,072: the whole 128 KiB core memory at 8 bits a weight
REAL = math.floor(12000 / 0.315)  # 38,095: SynMem budget / units per dense 8-bit synapse


@pytest.fixture(scope="module")
def oheo():
    return H.load_profile("oheo_gulch")


@pytest.fixture(scope="module")
def systems():
    return P.packaged_profiles()


def small_converted(n_layer=1, n_embd=16, vocab=40, seed=3, n_tokens=24):
    return converted_random(n_layer, n_embd, vocab, seed=seed, n_tokens=n_tokens)


def profile_with(tmp_path, changes, name="custom.yaml", base="oheo_gulch"):
    data = yaml.safe_load((H.profile_dir() / f"{base}.yaml").read_text())
    for dotted, value in changes.items():
        d = data
        keys = dotted.split(".")
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return H.load_profile(path)


def test_core_capacities(oheo):
    assert P.syn_capacity(oheo, 8, P.CEILING) == CEIL == 131072
    assert P.syn_capacity(oheo, 8, P.REALISTIC) == REAL == 38095
    assert P.syn_capacity(oheo, 4, P.CEILING) == 2 * CEIL
    assert P.syn_capacity(oheo, 4, P.REALISTIC) == math.floor(12000 / (0.315 / 2))


def test_bundled_shapes_split_by_hand(oheo, systems):
    """4 x 256, vocabulary 77 (the bundled model's shapes), by hand.

    Realistic rows per core = REAL // synapses per row: 148 at 256, 37 at 1024; ceiling: 512 and 128.
    Per block: key+value+receptance (one block-diagonal process, 768 rows of 256): ceil(768/148) = 6
    cores (ceil(768/512) = 2 at the ceiling); Wo -> att LIF (256 x 256): 2 (1); ffn key+receptance
    (1280 rows of 256): ceil(1280/148) = 9 (ceil(1280/512) = 3); ffn value (256 x 1024):
    ceil(256/37) = 7 (ceil(256/128) = 2); ffn LIF (identity synapses): 1 (1). Head 77 x 256: 1 (1).
    """
    p = P.plan_shapes(4, 256, 77, oheo, systems)
    by = {g.name: g for g in p.groups}
    assert len(p.groups) == 5 * 4 + 1
    kvr = "blocks.{i}.att.key+blocks.{i}.att.value+blocks.{i}.att.receptance"
    fkr = "blocks.{i}.ffn.key+blocks.{i}.ffn.receptance"
    expect = {kvr: (6, 2), "blocks.{i}.att.lif": (2, 1), fkr: (9, 3), "blocks.{i}.ffn.value": (7, 2),
              "blocks.{i}.ffn.lif": (1, 1)}
    for i in range(4):
        for name, (real, ceil) in expect.items():
            g = by[name.format(i=i)]
            assert (g.realistic.cores, g.ceiling.cores) == (real, ceil), g.name
    g = by[kvr.format(i=0)]
    assert g.members == ("blocks.0.att.key", "blocks.0.att.value", "blocks.0.att.receptance")
    assert (g.neurons, g.synapses, g.fan_in) == (768, 3 * 256 * 256, 768) and g.role.startswith("block-diagonal")
    assert by["blocks.0.att.lif"].members == ("blocks.0.att.output", "blocks.0.att.lif")
    assert by["blocks.0.att.lif"].synapses == 256 * 256 and by["blocks.0.att.lif"].neurons == 256
    assert by["blocks.0.ffn.lif"].synapses == 256 and by["blocks.0.ffn.lif"].fan_in == 256
    fk = by[fkr.format(i=0)]
    assert (fk.realistic.neurons_per_core, fk.realistic.limit) == (143, "synaptic memory")  # 1280 in 9 cores
    assert fk.ceiling.neurons_per_core == 427 and fk.weight_bytes == 1280 * 256
    assert (by["head"].realistic.cores, by["head"].realistic.limit) == (1, "whole group in one core")
    assert (p.cores_realistic, p.cores_ceiling) == (25 * 4 + 1, 9 * 4 + 1) == (101, 37)
    assert p.neurons == 4 * 11 * 256 + 77
    assert p.synapses == 4 * (13 * 256 * 256 + 256) + 77 * 256
    assert (p.chips_needed_realistic, p.chips_needed_ceiling) == (1, 1) and p.fits
    # every chip node sits in exactly one group
    members = [m for g in p.groups for m in g.members]
    chip = [n.name for n in P.graph_for_shapes(4, 256, 77).nodes.values() if n.placement.where == ir.CHIP]
    assert sorted(members) == sorted(chip)


def test_time_per_token_from_the_graph(oheo):
    for L in (1, 3):
        p = P.plan_shapes(L, 16, 30, oheo)
        # per block: k|v|r, Wo, ffn key, ffn value on the longest chain; + the head
        assert p.dense_depth == p.steps_per_token == 4 * L + 1
        # per block: enter the chip for k|v|r, Wo, ffn key, ffn value, ffn LIF; + the head
        assert p.host_round_trips == 5 * L + 1
        assert p.crossings == 16 * L + 2 and p.crossings_to_chip == 8 * L + 1
    g = P.graph_for_shapes(2, 16, 30)
    p = P.plan(g, {}, oheo, schedule={"critical_path_steps": 12, "token_period_steps": 13},
               defaults=P.PlanDefaults(groups=P.default_groups(g)))
    assert (p.steps_per_token, p.steps_source, p.dense_depth, p.token_period) == (12, "schedule", 9, 13)


def test_neuron_limit_splits_and_names_itself(tmp_path):
    prof = profile_with(tmp_path, {"chip.neurons_per_core_plan.value": 100})
    p = P.plan_shapes(1, 256, 77, prof)
    g = {g.name: g for g in p.groups}["blocks.0.att.lif"]   # Wo -> LIF: 256 rows of 256 synapses
    assert (g.realistic.cores, g.realistic.neurons_per_core, g.realistic.limit) == (3, 86, "neurons per core")
    assert g.ceiling.cores == 1   # the ceiling uses neurons_per_core_max (8192)


def test_216m_shapes_on_every_system_without_converting(systems):
    """18 x 768, vocabulary 50277, by hand: realistic rows per core 38095 // 768 = 49, // 3072 = 12;
    ceiling 131072 // 768 = 170, // 3072 = 42. Per block, realistic: key+value+receptance
    ceil(2304/49) = 48, Wo -> LIF ceil(768/49) = 16, ffn key+receptance ceil(3840/49) = 79, ffn value
    ceil(768/12) = 64, ffn LIF 1 -> 208; ceiling: ceil(2304/170) = 14, ceil(768/170) = 5,
    ceil(3840/170) = 23, ceil(768/42) = 19, 1 -> 62. Head: ceil(50277/49) = 1027 realistic,
    ceil(50277/170) = 296 ceiling."""
    by_name = {p.name: p for p in systems}
    plans = {n: P.plan_shapes(18, 768, 50277, prof, systems) for n, prof in by_name.items()}
    p = plans["kapoho_point"]
    assert p.cores_realistic == 18 * 208 + 1027 == 4771
    assert p.cores_ceiling == 18 * 62 + 296 == 1412
    assert (p.chips_needed_realistic, p.chips_needed_ceiling) == (40, 12)
    assert p.synapses == 18 * (13 * 768 * 768 + 768) + 50277 * 768
    assert p.neurons == 18 * 11 * 768 + 50277
    fits = {s.profile: (s.chips_needed_realistic, s.fits_realistic, s.fits_ceiling) for s in p.systems}
    assert fits == {"oheo_gulch": (40, False, False), "kapoho_point": (40, False, False),
                    "hala_point": (40, True, True)}
    assert plans["hala_point"].fits and not plans["oheo_gulch"].fits
    (v,) = p.violations
    assert v.what == "neurocores" and "4,771 cores = 40 chips" in v.value and "960 usable cores" in v.limit
    assert "Hala Point (1,152 chips) fits it" in v.hint and "head on the host would free 1,027 cores" in v.hint
    sim = P.plan_shapes(18, 768, 50277, H.load_profile("simulator"))
    assert sim.fits and sim.chips_available is None and sim.cores_realistic == 4771


def test_every_violation_at_once(tmp_path):
    """A profile that breaks numerics, fan-in, per-core memory and capacity: all are reported together."""
    model = small_converted(n_layer=1, n_embd=16, vocab=40)
    prof = profile_with(tmp_path, {
        "numerics.weight_bits_max.value": 4,            # every Dense has 8-bit weights
        "numerics.graded_payload_bits.value": 6,        # 8-bit inputs, 24-bit outputs, 16-bit LIF input
        "numerics.lif.value.vth_bits": 4,               # vth is in the hundreds
        "chip.axons_in_per_core_max.value": 32,         # ffn value has 64 inputs
        "chip.core_memory.synmem_units_budget.value": 10,  # 31 synapses a core: a 64-input row cannot fit
        "chip.neurocores_usable.value": 1, "system.cores_total.value": 1,
    })
    p = P.plan_model(model, prof)
    assert not p.fits
    kinds = {}
    for v in p.violations:
        kinds.setdefault(v.what, []).append(v.where)
    dense = [n.name for n in model.graph.of_type(ir.Projection)]
    assert sorted(kinds["weight mantissa bits"]) == sorted(dense)
    assert "blocks.0.att.key" in kinds["input payload bits"] and "blocks.0.ffn.lif" in kinds["input payload bits"]
    assert "head" in kinds["output payload bits"]
    assert sorted(kinds["LIF vth"]) == ["blocks.0.att.lif", "blocks.0.ffn.lif"]
    # fan-in 48 (key+value+receptance side by side) and 64 (ffn value) exceed 32; 32 (ffn key+receptance) does not
    assert kinds["input axons per core"] == ["blocks.0.att.key+blocks.0.att.value+blocks.0.att.receptance",
                                             "blocks.0.ffn.value"]
    assert "blocks.0.ffn.value" in kinds["one neuron's synapses exceed a core (realistic bound)"]
    assert kinds["neurocores"] == ["model"]
    for v in p.violations:
        assert v.limit and v.hint and "\n" not in v.line()
    text = PR.render_text(p)
    assert f"DOES NOT FIT {p.system}: {len(p.violations)} violations" in text
    assert text.count("\n  - ") == len(p.violations)


def test_plan_is_frozen_data_and_deterministic(oheo, systems):
    a = P.plan_shapes(2, 32, 50, oheo, systems)
    b = P.plan_shapes(2, 32, 50, oheo, systems)
    assert a == b and hash(a.groups) == hash(b.groups)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.groups[0].neurons = 1
    d = json.loads(json.dumps(a.to_dict()))
    assert d["totals"]["cores"] == {"ceiling": a.cores_ceiling, "realistic": a.cores_realistic}
    assert d["time"]["steps_source"] == "dense depth" and len(d["groups"]) == len(a.groups)
    assert d["assumptions"] and d["status"] == "estimate"


def test_plan_of_a_converted_model_uses_its_quantization(oheo):
    model = small_converted(n_layer=2, n_embd=16, vocab=40)
    p = P.plan_model(model, oheo, name="small")
    q = P.plan_shapes(2, 16, 40, oheo)
    assert [g.name for g in p.groups] == [g.name for g in q.groups]
    assert (p.cores_realistic, p.synapses, p.neurons) == (q.cores_realistic, q.synapses, q.neurons)
    nodes = {n.name: n for n in P.chip_nodes(model.graph, model.nodes)}
    assert nodes["blocks.0.ffn.lif"].input_bits == 16 and nodes["blocks.0.att.key"].output_bits == 24
    assert nodes["blocks.0.att.lif"].vth == model.nodes["blocks.0.att.lif"].vth
    # convert records the Lava graph's schedule; it agrees with the Dense depth
    assert (p.steps_source, p.steps_per_token, p.token_period) == ("schedule", q.steps_per_token, q.steps_per_token + 1)


# ---------------------------------------------------------------------------
# The command (plan only; the activity run is tested in test_activity.py)
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_s2l(tmp_path_factory):
    path = tmp_path_factory.mktemp("plan") / "small.s2l"
    artifact.save(small_converted(n_layer=2, n_embd=16, vocab=40), path)
    return path


def invoke(*args):
    """`spike2loihi profile ARGS` through the same group class as the program (cli.py registers it)."""
    group = cliutil.CommandGroup(name="spike2loihi")
    group.add_command(profile_command)
    return CliRunner().invoke(group, ["profile", *[str(a) for a in args]])


@pytest.mark.subprocess
def test_profile_is_registered_on_the_program():
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "spike2loihi.cli", "profile", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "--hw NAME|FILE" in res.stdout and "dense-packing ceiling" in res.stdout


def test_cli_prints_the_plan_and_chips_per_system(small_s2l, tmp_path):
    res = invoke(small_s2l, "--hw", "kapoho_point")
    assert res.exit_code == 0, res.stderr
    assert "Resource plan on Kapoho Point (kapoho_point): small.s2l" in res.stdout
    assert "per system:" in res.stdout and "Hala Point" in res.stdout and "fits Kapoho Point" in res.stdout
    assert res.stderr == ""
    res = invoke(small_s2l, "--hw", "oheo_gulch", "--json")
    d = json.loads(res.stdout)
    assert d["plan"]["fits"] and d["activity"] is None and d["hardware_profile"]["profile"] == "oheo_gulch"
    out = tmp_path / "cores.png"
    res = invoke(small_s2l, "--hw", "simulator", "--plot", out)
    assert res.exit_code == 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "no chip limit applies" in res.stdout


def test_cli_does_not_fit_lists_everything_exits_1_writes_nothing(small_s2l, tmp_path):
    prof = profile_with(tmp_path, {"chip.neurocores_usable.value": 2, "system.cores_total.value": 2,
                                   "numerics.weight_bits_max.value": 6}, name="tiny.yaml")
    out = tmp_path / "plot.png"
    res = invoke(small_s2l, "--hw", prof.path, "--plot", out, "--text", small_s2l)
    assert res.exit_code == 1
    assert "DOES NOT FIT" in res.stdout and "neurocores" in res.stdout and "weight mantissa bits" in res.stdout
    err = res.stderr.splitlines()
    assert err[-1].startswith("error: small.s2l does not fit ") and "violations (listed above)" in err[-1]
    assert any("no activity run" in line for line in err) and any("--plot not written" in line for line in err)
    assert not out.exists() and not list(tmp_path.glob(".plot*"))
    res = invoke(small_s2l, "--hw", prof.path, "--json")
    assert res.exit_code == 1 and json.loads(res.stdout)["plan"]["fits"] is False


def test_cli_input_errors_are_one_line(small_s2l, tmp_path):
    for args, needle in [
        ((tmp_path / "none.s2l", "--hw", "oheo_gulch"), "no such file"),
        ((small_s2l.parent, "--hw", "oheo_gulch"), "is a directory"),
        ((small_s2l, "--hw", "kapohopoint"), "did you mean kapoho_point"),
        ((small_s2l, "--hw", "oheo_gulch", "--text", small_s2l, "--tokens-file", small_s2l),
         "give at most one of --text and --tokens-file"),
        ((small_s2l, "--hw", "oheo_gulch", "--plot", tmp_path), "is a directory"),
        ((small_s2l, "--hw", "oheo_gulch", "--plot", small_s2l), "is also the input MODEL"),
        ((small_s2l, "--hw", "oheo_gulch", "--max-tokens", "0", "--tokens-file", small_s2l), "--max-tokens"),
    ]:
        res = invoke(*args)
        lines = res.stderr.splitlines()
        assert res.exit_code == 2, (args, res.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], (args, lines)
    res = invoke(small_s2l, "--hw", "oheo_gulch", "--max-tokens", "5")
    assert res.exit_code == 0 and "warning: --max-tokens has no effect without --text" in res.stderr
