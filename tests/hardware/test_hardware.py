"""Hardware profiles: the packaged systems load, agree with each other, carry provenance, and a
bad profile is one line that names the file and the field."""
import copy
import dataclasses
from pathlib import Path

import pytest
import yaml

from spike2loihi.hardware import profiles as H

HARDWARE = ("oheo_gulch", "kapoho_point", "hala_point")


def raw(name="oheo_gulch"):
    return yaml.safe_load((H.profile_dir() / f"{name}.yaml").read_text())


def write(tmp_path, data, name="custom.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load_error(path) -> str:
    with pytest.raises(H.HardwareProfileError) as exc:
        H.load_profile(path)
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


def test_packaged_profiles_load_with_the_published_system_sizes():
    assert H.available_profiles() == ["hala_point", "kapoho_point", "oheo_gulch", "simulator"]
    chips = {n: H.load_profile(n).system.chips.value for n in HARDWARE}
    assert chips == {"oheo_gulch": 1, "kapoho_point": 8, "hala_point": 1152}
    p = H.load_profile("kapoho_point")
    assert p.is_hardware and p.title == "Kapoho Point"
    assert p.chip.neurocores_usable.value == 120 and p.chip.neurocores_physical.value == 128
    assert p.chip.core_memory.synmem_units_budget.value == 12000
    assert p.chip.core_memory.synmem_units_per_dense_synapse.range == (0.26, 0.35)
    assert p.numerics.lif.value["vth_bits"] == 17 and p.numerics.graded_payload_bits.value == 24
    assert p.timing.synops_per_s_per_core.value == 2.7e9          # written 2.7e9: YAML 1.1 reads a string
    assert p.energy.e_synop_pj.pessimistic == 23.6
    sim = H.load_profile("simulator")
    assert sim.kind == "simulator" and sim.system.chips.value is None and sim.energy.e_synop_pj.value is None


def test_hardware_profiles_share_one_chip_description():
    blocks = [H.load_profile(n).to_dict() for n in HARDWARE]
    for sec in ("chip", "numerics", "timing", "energy", "host"):
        assert blocks[0][sec] == blocks[1][sec] == blocks[2][sec], sec
    sim = H.load_profile("simulator").to_dict()
    assert sim["chip"] == blocks[0]["chip"] and sim["numerics"] == blocks[0]["numerics"]
    assert sim["host"] == blocks[0]["host"]


@pytest.mark.parametrize("name", H.available_profiles())
def test_every_value_says_published_or_estimate_with_its_source(name):
    p = H.load_profile(name)
    facts = p.facts()
    assert len(facts) >= 60
    for path, f in facts.items():
        assert f.status in ("published", "estimate"), path
        assert f.src.strip(), path
        if f.value is None:
            assert f.status == "estimate", path
    keys = dict(p.sources)
    for must in ("WC2", "EEN", "D18", "H14", "TUT-SNN"):
        assert must in keys


def test_names_files_and_frozen_results(tmp_path):
    assert H.load_profile("Kapoho-Point").name == "kapoho_point"
    assert H.load_profile("HALA POINT").name == "hala_point"
    mine = write(tmp_path, raw("kapoho_point"), "mine.yaml")
    p = H.load_profile(str(mine))
    assert p.path == str(mine) and p.system.chips.value == 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.kind = "simulator"
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.chip.neurons_per_core_plan.value = 1
    assert H.load_profile("oheo_gulch").fact("chip.core_memory.words").value == 16384


def test_unknown_names_and_missing_files_are_one_line(tmp_path):
    msg = load_error("kapoho")
    assert "unknown hardware profile 'kapoho'" in msg and "did you mean kapoho_point" in msg
    msg = load_error(str(tmp_path / "nope.yaml"))
    assert "no such file" in msg and "nope.yaml" in msg
    msg = load_error(str(tmp_path))
    assert "is a directory" in msg


def _set(d, dotted, value):
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d[k]
    d[keys[-1]] = value


def _del(d, dotted):
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d[k]
    del d[keys[-1]]


def _rename(d, dotted, new):
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d[k]
    d[new] = d.pop(keys[-1])


MUTATIONS = {
    "missing field": (lambda d: _del(d, "chip.neurons_per_core_plan"),
                      "chip.neurons_per_core_plan: missing"),
    "typo in a field": (lambda d: _rename(d, "chip.neurons_per_core_plan", "neurons_per_cor_plan"),
                        "chip.neurons_per_cor_plan: unknown field (did you mean neurons_per_core_plan?)"),
    "bad status": (lambda d: _set(d, "energy.e_synop_pj.status", "guess"),
                   "energy.e_synop_pj.status: 'guess' is not published or estimate"),
    "no source": (lambda d: _set(d, "energy.e_synop_pj.src", ""),
                  "energy.e_synop_pj.src: missing: an estimate gives its reasoning"),
    "negative count": (lambda d: _set(d, "chip.neurons_per_core_plan.value", -4),
                       "chip.neurons_per_core_plan.value: expected an integer >= 1, got -4"),
    "string for a number": (lambda d: _set(d, "system.host_roundtrip_ms.value", "fast"),
                            "system.host_roundtrip_ms.value: expected a finite number >= 0, got 'fast'"),
    "published null": (lambda d: _set(d, "system.chips", {"value": None, "status": "published", "src": "x"}),
                       "system.chips.value: null but marked published"),
    "needed null": (lambda d: _set(d, "chip.core_memory.words", {"value": None, "status": "estimate", "src": "?"}),
                    "chip.core_memory.words.value: null, but every profile needs it"),
    "hardware needs energy": (lambda d: _set(d, "energy.e_synop_pj.value", None),
                              "energy.e_synop_pj.value: null, but a hardware profile needs it"),
    "lif key missing": (lambda d: d["numerics"]["lif"]["value"].pop("vth_bits"),
                        "numerics.lif.value.vth_bits: missing"),
    "value outside its range": (lambda d: _set(d, "energy.static_w_per_chip.value", 0.5),
                                "energy.static_w_per_chip.range: value 0.5 lies outside its range"),
    "unknown leaf key": (lambda d: _set(d, "chip.die_area_mm2.units", "mm2"),
                         "chip.die_area_mm2.units: unknown field"),
    "leaf not a mapping": (lambda d: _set(d, "chip.die_area_mm2", 31),
                           "chip.die_area_mm2: expected {value: ..., status: published|estimate, src: ...}"),
    "bad kind": (lambda d: _set(d, "kind", "fpga"), "kind: 'fpga' is not one of hardware, simulator"),
    "newer schema": (lambda d: _set(d, "schema_version", 2), "schema_version: 2 is not supported"),
    "unknown section": (lambda d: _set(d, "chips", {}), "chips: unknown field"),
    "plan above the maximum": (lambda d: _set(d, "chip.neurons_per_core_plan.value", 9000),
                               "chip.neurons_per_core_plan.value: 9000 exceeds chip.neurons_per_core_max (8192)"),
    "bad pair": (lambda d: _set(d, "numerics.weight_exp_range.value", [7, -8]),
                 "numerics.weight_exp_range.value: expected [low, high] integers"),
}


@pytest.mark.parametrize("case", list(MUTATIONS))
def test_schema_errors_name_the_file_and_the_field(tmp_path, case):
    mutate, needle = MUTATIONS[case]
    data = copy.deepcopy(raw())
    mutate(data)
    path = write(tmp_path, data)
    msg = load_error(path)
    assert msg.startswith(f"{path}: "), msg
    assert needle in msg, msg


def test_simulator_may_leave_chips_and_energy_unknown(tmp_path):
    data = raw()
    data["kind"] = "simulator"
    _set(data, "system.chips", {"value": None, "status": "estimate", "src": "no chips"})
    _set(data, "energy.e_synop_pj", {"value": None, "status": "estimate", "src": "cpu"})
    p = H.load_profile(write(tmp_path, data))
    assert p.kind == "simulator" and p.system.chips.value is None


def test_yaml_problems_are_one_line_with_the_line_number(tmp_path):
    text = (H.profile_dir() / "oheo_gulch.yaml").read_text()
    dup = tmp_path / "dup.yaml"
    dup.write_text(text.replace("chip:\n", "chip:\n  name: {value: X, status: published, src: y}\n", 1))
    msg = load_error(dup)
    assert "key 'name' appears twice" in msg and str(dup) in msg
    broken = tmp_path / "broken.yaml"
    broken.write_text("chip: {value: [1, 2\n")
    msg = load_error(broken)
    assert "not valid YAML (line" in msg
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    assert "expected a mapping of fields at the top" in load_error(top)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert "not UTF-8" in load_error(binary)


def test_cli_bad_profile_is_one_line_and_writes_nothing(tmp_path):
    from click.testing import CliRunner

    from spike2loihi.cli import group as cliutil
    from spike2loihi.cli.profile import profile

    main = cliutil.CommandGroup(name="spike2loihi")
    main.add_command(profile)
    data = raw()
    _set(data, "chip.axons_in_per_core_max.value", 0)
    bad = write(tmp_path, data, "bad.yaml")
    model = tmp_path / "m.s2l"
    model.write_bytes(b"")  # never read: the profile is checked first
    out = tmp_path / "plot.png"
    res = CliRunner().invoke(main, ["profile", str(model), "--hw", str(bad), "--plot", str(out)])
    assert res.exit_code == 2
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "chip.axons_in_per_core_max.value: expected an integer >= 1, got 0" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "m.s2l"]
    assert Path(H.profile_dir() / "oheo_gulch.yaml").exists()
