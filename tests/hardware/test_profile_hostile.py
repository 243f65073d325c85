"""Hostile hardware profiles (`--hw NAME|FILE`): an alias bomb, deep nesting, absurd or non-finite numbers,
a named pipe, a directory, a device, an oversized file. Each is refused as one `HardwareProfileError` line,
quickly: never a hang, never memory exhaustion, never a traceback, never an absurd value accepted."""
import dataclasses
import os
import subprocess
import sys
import time

import pytest
import yaml
from click.testing import CliRunner

from conftest import deadline, one_line_error, ROOT, saved_random
from spike2loihi.hardware import profile_yaml as Y, profiles as H

LIMIT_S = 5.0
BASE = (H.profile_dir() / "oheo_gulch.yaml").read_text()


def refused(path_or_text, needle, tmp_path=None, max_len=400) -> str:
    """The one-line HardwareProfileError that loading a file (or parsing a text) gives, within the time limit."""
    with deadline(LIMIT_S, hard=2 * LIMIT_S):
        with pytest.raises(H.HardwareProfileError) as exc:
            if tmp_path is None:
                H.load_profile(path_or_text)
            else:
                path = tmp_path / "hostile.yaml"
                path.write_text(path_or_text)
                H.load_profile(path)
    msg = str(exc.value)
    assert "\n" not in msg and "\r" not in msg, msg
    assert len(msg) < max_len, msg
    assert needle in msg, msg
    return msg


def edit(old, new, text=BASE):
    assert text.count(old) == 1, old
    return text.replace(old, new)


def alias_bomb(levels=10, width=10) -> str:
    """A flow list: `&l0 [x, ...]`, then `&l1 [*l0, ...]` ... `&l{levels-1}`: width**levels values once expanded."""
    lists = ["&l0 [" + ", ".join(["x"] * width) + "]"]
    for i in range(1, levels):
        lists.append(f"&l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "[" + ", ".join(lists) + "]"


DIE = "die_area_mm2:    {value: 31,"
BOMB = edit(DIE, f"die_area_mm2:    {{value: {alias_bomb()},")


# ---------------------------------------------------------------------------
# Structure: aliases, nesting, YAML the constructors choke on
# ---------------------------------------------------------------------------
def test_alias_bomb_in_a_field_value_is_refused_by_the_value_budget(tmp_path):
    msg = refused(BOMB, f"more than {H.MAX_NODES:,} values once its aliases are expanded", tmp_path)
    assert msg.startswith(f"{tmp_path / 'hostile.yaml'}: ")


def test_alias_bomb_past_the_budget_is_quoted_without_expanding_it(tmp_path, monkeypatch):
    """The original hang: the schema error quoted the value with repr. With the budget lifted, the message
    still comes at once and quotes the value cut to SHOW_CHARS."""
    monkeypatch.setattr(H, "_check_size", lambda data, source: None)
    msg = refused(BOMB, "chip.die_area_mm2.value: expected a finite number > 0, got [['x', 'x'", tmp_path)
    assert msg.endswith("...")


def test_show_cuts_a_value_without_walking_it():
    data = yaml.safe_load(alias_bomb(10, 10))     # cheap: the 10**10 leaves share ten lists
    with deadline(1, hard=2 * (1)):
        shown = H._show(data)
    assert len(shown) <= H.SHOW_CHARS and shown.startswith("[['x', 'x'") and shown.endswith("...")
    loop = []
    loop.append(loop)
    mapping = {"k": loop}
    assert H._show(mapping).startswith("{'k': [[[[") and len(H._show(mapping)) == H.SHOW_CHARS
    assert H._show(1 << 100_000) == "<an integer of about 30,103 digits>"   # str() would refuse it
    assert H._show(10 ** 399) == "100000000000...(400 digits)"
    assert H._show("x" * 10 ** 6) == "'" + "x" * (H.SHOW_CHARS - 4) + "..."
    assert H._show({"a": [1, 2.5, None, True]}) == "{'a': [1, 2.5, None, True]}"


def test_recursive_aliases_are_refused(tmp_path):
    refused(edit(DIE, "die_area_mm2:    {value: &r [*r],"), "nested more than 20 levels deep", tmp_path)
    refused(edit(DIE, "die_area_mm2:    {value: &r {a: *r},"), "found unconstructable recursive node", tmp_path)


def test_fifty_thousand_open_brackets(tmp_path):
    msg = refused(edit(DIE, "die_area_mm2:    {value: " + "[" * 50_000 + ","), "nested more than 20 levels deep",
                  tmp_path)
    assert "(line 16)" in msg


def test_the_yaml_readers_recursion_error_is_one_line(tmp_path, monkeypatch):
    """If the depth budget ever lets a document past, the parser's RecursionError is still one line."""
    monkeypatch.setattr(Y, "MAX_DEPTH", 10 ** 6)
    refused("a: " + "[" * 50_000, "nested too deeply for the YAML reader", tmp_path)


def test_a_mapping_nested_a_hundred_deep(tmp_path):
    deep = "".join("  " * i + f"k{i}:\n" for i in range(100)) + "  " * 100 + "leaf: 1\n"
    refused(deep, "nested more than 20 levels deep (line 20)", tmp_path)
    refused(edit("sources:\n", "sources:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(100))
                 + "  " * 101 + "leaf: 1\n"), "nested more than 20 levels deep", tmp_path)


def test_too_many_values(tmp_path):
    msg = refused("sources: [" + "1, " * 300_000 + "1]\n", f"more than {H.MAX_NODES:,} values (line 1)", tmp_path)
    assert "the limit for a hardware profile" in msg


@pytest.mark.parametrize("yaml_text, needle", [
    ("a: 1" + ":1" * 200_000 + "\n", "an integer written with 400,001 characters (at most 1,000 are read)"),
    ("a: 0x" + "f" * 100_000 + "\n", "an integer written with 100,002 characters"),
    ("a: 2001-13-45\n", "(line 1, column 4): cannot read this value (ValueError: month must be in 1..12)"),
    ("a: !!bool maybe\n", "cannot read this value"),
    ("? [1, 2]\n: 3\n", "a key is a list, expected a name"),
    ("a: &m {x: 1}\nb: {<<: *m}\n", "merge keys (<<) are not read in a hardware profile"),
    ("a: \x00\n", "not valid YAML: unacceptable character #x0000"),
    ("a: *" + "z" * 10_000 + "\n", "found undefined alias 'zzzz"),
])
def test_yaml_that_pyyaml_chokes_on_is_one_line(tmp_path, yaml_text, needle):
    refused(yaml_text, needle, tmp_path)


def test_long_keys_and_names_are_cut(tmp_path):
    msg = refused(edit("chip:\n", "chip:\n  " + "q" * 500 + ": 1\n"), "chip.'qqqq", tmp_path)
    assert "...: unknown field" in msg
    refused(edit("{value: Oheo Gulch,", "{value: " + "O" * 500 + ","),
            "system.name.value: 500 characters, more than the 200 a name may have", tmp_path)


# ---------------------------------------------------------------------------
# Numbers: finite, and inside the bounds of LIMITS (named in the error)
# ---------------------------------------------------------------------------
TIMESTEP = "timestep_us_typical: {value: 153,"
CORES = "neurocores_physical:    {value: 128,"
SYNOP = "e_synop_pj:         {value: 6.8,"


@pytest.mark.parametrize("old, new, needle", [
    (TIMESTEP, "timestep_us_typical: {value: 1.0e+308,",
     "timing.timestep_us_typical.value: expected a finite number <= 1e6 (us per time step: 1 s), got 1e+308"),
    (TIMESTEP, "timestep_us_typical: {value: 1e308,",                  # YAML 1.1 reads this as a string
     "timing.timestep_us_typical.value: expected a finite number <= 1e6 (us per time step: 1 s), got 1e+308"),
    (TIMESTEP, "timestep_us_typical: {value: 0,", "timing.timestep_us_typical.value: expected a finite number > 0"),
    (CORES, "neurocores_physical:    {value: " + "7" * 400 + ",",
     "chip.neurocores_physical.value: expected an integer <= 1e4 (cores or CPUs per chip), "
     "got 777777777777...(400 digits)"),
    ("chips:       {value: 1,", "chips:       {value: 1000001,",
     "system.chips.value: expected an integer <= 1e6 (chips in a system), got 1000001"),
    ("word_bits: {value: 64,", "word_bits: {value: 4096,", "expected an integer <= 1024 (bits per memory word)"),
    ("weight_bits_max:     {value: 8,", "weight_bits_max:     {value: 65,", "expected an integer <= 64 (bits)"),
    ("vth_bits: 17,", "vth_bits: 99,", "numerics.lif.value.vth_bits: expected an integer <= 64"),
    ("weight_exp_range:    {value: [-8, 7],", "weight_exp_range:    {value: [-800, 7],",
     "numerics.weight_exp_range.value: expected an integer >= -64, got -800"),
    (SYNOP, "e_synop_pj:         {value: 2.0e+12,", "expected a finite number <= 1e12 (pJ per event: 1 J)"),
    ("max_power_w: {value: 0.68,", "max_power_w: {value: 1.0e+7,", "expected a finite number <= 1e6 (W: 1 MW)"),
    ("host_roundtrip_ms:   {value: 59, range: [1, 59],", "host_roundtrip_ms:   {value: 59, range: [1, 1.0e+5],",
     "system.host_roundtrip_ms.range: expected a finite number <= 1e4 (ms per host round trip)"),
    ("e_synop_pj:         {value: 6.8, pessimistic: 23.6,", "e_synop_pj:         {value: 6.8, pessimistic: .inf,",
     "energy.e_synop_pj.pessimistic: expected a finite number >= 0, got inf"),
    ("synops_per_s_per_core:         {value: 2.7e9,", "synops_per_s_per_core:         {value: 2.7e+99,",
     "expected a finite number <= 1e13 (operations per second per core)"),
])
def test_absurd_values_are_refused_naming_the_bound(tmp_path, old, new, needle):
    refused(edit(old, new), needle, tmp_path)


@pytest.mark.parametrize("written, needle", [
    (".nan", "expected a finite number >= 0, got nan"),
    (".inf", "expected a finite number >= 0, got inf"),
    ("-.inf", "expected a finite number >= 0, got -inf"),
    (".NaN", "expected a finite number >= 0, got nan"),
])
def test_non_finite_numbers(tmp_path, written, needle):
    refused(edit(SYNOP, f"e_synop_pj:         {{value: {written},"), f"energy.e_synop_pj.value: {needle}", tmp_path)
    refused(edit(CORES, f"neurocores_physical:    {{value: {written},"), "chip.neurocores_physical.value: "
            "expected an integer >= 1", tmp_path)


@pytest.mark.parametrize("old, new, needle", [
    (SYNOP, "e_synop_pj:         {value: -1.5,", "energy.e_synop_pj.value: expected a finite number >= 0, got -1.5"),
    ("chips:       {value: 1,", "chips:       {value: -3,", "system.chips.value: expected an integer >= 1, got -3"),
    ("host_roundtrip_ms:   {value: 59, range: [1, 59],", "host_roundtrip_ms:   {value: 59, range: [-1, 59],",
     "system.host_roundtrip_ms.range: expected a finite number >= 0, got -1"),
    ("die_area_mm2:    {value: 31,", "die_area_mm2:    {value: -31,", "expected a finite number > 0, got -31"),
    ("delay_steps_max:     {value: 63,", "delay_steps_max:     {value: -63,", "expected an integer >= 0, got -63"),
])
def test_negative_values(tmp_path, old, new, needle):
    refused(edit(old, new), needle, tmp_path)


def test_every_number_in_the_schema_has_bounds_and_the_packaged_profiles_sit_well_inside():
    used = set()
    for cls in (H.Chip, H.CoreMemory, H.Numerics, H.Timing, H.Energy, H.Host, H.System):
        for f in dataclasses.fields(cls):
            if f.metadata.get("kind") in ("int", "num", "int_pair", "int_map"):
                assert f.metadata["limit"] in H.LIMITS, (cls.__name__, f.name)
                used.add(f.metadata["limit"])
    assert used == set(H.LIMITS)
    for name in H.available_profiles():
        p = H.load_profile(name)
        for path, fact in p.facts().items():
            meta = _meta(path)
            if not meta.get("limit"):
                continue
            lim = H.LIMITS[meta["limit"]]
            values = [] if fact.value is None else \
                [v for _, v in fact.value] if isinstance(fact.value, H._FrozenMap) else \
                list(fact.value) if isinstance(fact.value, tuple) else [fact.value]
            values += list(fact.range or ()) + [x for x in (fact.pessimistic, fact.max_claimed) if x is not None]
            bits = meta["limit"] in ("bits", "bit_field", "exponent", "word_bits")
            for v in values:                        # >= 2x below the bound for bit widths, >= 50x for quantities
                assert lim.lo <= v and abs(v) * (2 if bits else 50) <= lim.hi, (name, path, v, lim)


def _meta(dotted):
    *secs, leaf = dotted.split(".")
    cls = H.SECTIONS[secs[0]]
    for s in secs[1:]:
        cls = H.NESTED[(cls, s)]
    return {f.name: f.metadata for f in dataclasses.fields(cls)}[leaf]


# ---------------------------------------------------------------------------
# Files: a named pipe, a directory, a device, an oversized file
# ---------------------------------------------------------------------------
def test_a_named_pipe_is_refused_unread(tmp_path):
    fifo = tmp_path / "hw.yaml"
    os.mkfifo(fifo)
    refused(str(fifo), f"--hw {fifo}: is a named pipe (FIFO), not a regular file")
    link = tmp_path / "link.yaml"
    link.symlink_to(fifo)
    refused(str(link), "is a named pipe (FIFO)")


def test_a_directory_a_device_and_a_big_file(tmp_path):
    refused(str(tmp_path), f"{tmp_path}: is a directory, expected a hardware profile")
    if os.path.exists("/dev/zero"):
        refused("/dev/zero", "--hw /dev/zero: is a device, not a regular file")
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (2 * 1024 * 1024) + "\n")
    refused(str(big), f"--hw {big}: 2,097,155 bytes, more than the {H.MAX_PROFILE_BYTES:,} this input may have")


def test_an_unreadable_or_absurd_path(tmp_path):
    refused("x" * 5000, "unknown hardware profile 'xxxx")
    refused(str(tmp_path / ("y" * 5000 + ".yaml")), "cannot read (File name too long)", max_len=6000)


# ---------------------------------------------------------------------------
# Through the command: exit 2 and one `error:` line
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    return saved_random(tmp_path_factory, "small.s2l", n_layer=1, n_embd=16, vocab=40)[1]


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    files = {"bomb": (BOMB, "values once its aliases are expanded"),
             "brackets": ("a: " + "[" * 50_000, "nested more than 20 levels deep"),
             "timestep": (edit(TIMESTEP, "timestep_us_typical: {value: 1.0e+308,"), "<= 1e6 (us per time step"),
             "cores": (edit(CORES, "neurocores_physical:    {value: " + "9" * 400 + ","), "(400 digits)")}
    out = {}
    for name, (text, needle) in files.items():
        (d / f"{name}.yaml").write_text(text)
        out[name] = (d / f"{name}.yaml", needle)
    os.mkfifo(d / "fifo.yaml")
    out["fifo"] = (d / "fifo.yaml", "is a named pipe (FIFO)")
    return out


@pytest.mark.parametrize("case", ["bomb", "brackets", "timestep", "cores", "fifo"])
def test_cli_profile_with_a_hostile_hw_is_one_error_line(small_model, hostile_files, case):
    from spike2loihi.cli import group as cliutil
    from spike2loihi.cli.profile import profile

    main = cliutil.CommandGroup(name="spike2loihi")
    main.add_command(profile)
    path, needle = hostile_files[case]
    with deadline(LIMIT_S, hard=2 * LIMIT_S):
        res = CliRunner().invoke(main, ["profile", str(small_model), "--hw", str(path)])
    one_line_error(res, needle)


@pytest.mark.subprocess
def test_console_profile_with_an_alias_bomb_exits_2_at_once(small_model, hostile_files):
    path, needle = hostile_files["bomb"]
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "spike2loihi.cli", "profile", str(small_model), "--hw", str(path)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert time.perf_counter() - t0 < 60
