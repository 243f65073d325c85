"""The loihi2 backend up to the lava-loihi boundary (nothing here runs on a board).

- options: exactly one host (SLURM partition, SLURM board or Ethernet host), names,
  Loihi 2 chip generations, the LIF placement (TokenLIF has no neurocore model);
- lava-loihi detected as Lava detects it, and its absence one line, exit 3;
- the host selected through `lava.utils.loihi`: which calls are made and which
  environment variables Lava's own functions set for each option (their `sinfo` /
  `ping` faked), and why we set PARTITION/BOARD ourselves (lava-nc issue #753);
- the hardware graph built with stand-in adapter classes (a fake
  `lava.proc.embedded_io`): every host->chip edge through exactly one PyToNxAdapter,
  every chip->host edge through exactly one NxToPyAdapter, nothing else crossing;
  with pass-through stand-ins the graph runs in Lava's CPU runtime under
  `Loihi2HwCfg` and equals the emulator;
- every CLI error path of `run`/`eval --backend loihi2`: exit code, one line, no file written,
  and no model loaded.
"""
import importlib
import importlib.machinery
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import ROOT, one_line_error, saved_random

pytest.importorskip("lava")

from spike2loihi.convert import artifact, ir  # noqa: E402
from _lava_helpers import FAKE_EIO  # noqa: E402
from spike2loihi.backends import loihi2 as L2  # noqa: E402
from spike2loihi.cli.app import main  # noqa: E402
from spike2loihi.lava import hw  # noqa: E402

LAVA_ENV = ("SLURM", "NOSLURM", "PARTITION", "BOARD", "LOIHI_GEN", "NXSDKHOST", "HOST_BINARY")

# sinfo as a SLURM host prints it: a header, rows, and a final newline (an empty last line)
SINFO = ["PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST",
         "oheogulch*   up   infinite      1   down ncl-og-01",
         "oheogulch*   up   infinite      1   idle ncl-og-02",
         "kp           up   infinite      1   idle ncl-kp-01",
         "gone         up   infinite      1   down ncl-x-01", ""]
SINFO_N = ["NODELIST   NODES PARTITION STATE", "ncl-og-01      1 oheogulch* down", "ncl-og-02      1 oheogulch* idle",
           "ncl-kp-01      1        kp idle", ""]


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A converted 2-layer model (n_embd 16, vocabulary 40) and its .s2l path."""
    return saved_random(tmp_path_factory, "small.s2l", seed=3)


@pytest.fixture(scope="module")
def fake_eio_module(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fake_lava_loihi")   # alone in its folder: Lava's compiler imports the folder
    (folder / "fake_embedded_io.py").write_text(FAKE_EIO)
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("fake_embedded_io")
    finally:
        sys.path.remove(str(folder))


@pytest.fixture
def fake_eio(monkeypatch, fake_eio_module):
    """`lava.proc.embedded_io` (lava-loihi) replaced by the stand-ins."""
    monkeypatch.setitem(sys.modules, "lava.proc.embedded_io", fake_eio_module)
    return fake_eio_module


@pytest.fixture
def clean_env(monkeypatch):
    """Lava's host variables unset (and restored after), lava.utils.loihi.host reset."""
    from lava.utils import loihi

    for k in LAVA_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(loihi, "host", None)
    monkeypatch.setattr(L2, "_prepared", [])


@pytest.fixture
def fake_slurm(monkeypatch, clean_env):
    """lava-loihi 'installed' for lava.utils.loihi.is_installed(), and sinfo/ping faked; returns the commands run."""
    from lava.utils import loihi, slurm

    ran = []

    def run(cmd):
        ran.append(list(cmd))
        if cmd[0] == "sinfo":
            return list(SINFO_N if "-N" in cmd else SINFO)
        if cmd[0] == "ping":
            return ["PING ok", ""] if cmd[1] != "10.9.9.9" else []
        return []

    monkeypatch.setattr(loihi, "is_installed", lambda *a, **k: True)
    monkeypatch.setattr(slurm, "try_run_command", run)
    return ran


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# ---------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------
def test_loihi_gens_are_lavas_loihi2_generations():
    from lava.utils.loihi import ChipGeneration

    assert set(L2.LOIHI_GENS) == {g.value for g in ChipGeneration} - {"N2A2"}   # N2A2: Loihi 1
    assert L2.DEFAULT_LOIHI_GEN == "N3B3" and L2.DEFAULT_LIF_PLACEMENT == "host"


@pytest.mark.parametrize("kw, via, option", [
    (dict(partition="oheogulch"), "slurm", "--partition oheogulch"),
    (dict(partition="kp_stack", loihi_gen="N3C1"), "slurm", "--partition kp_stack"),
    (dict(board="ncl-ext-og-01"), "slurm", "--board ncl-ext-og-01"),
    (dict(ethernet_host="10.54.73.12"), "ethernet", "--ethernet-host 10.54.73.12"),
    (dict(ethernet_host="kp-host.example.org"), "ethernet", "--ethernet-host kp-host.example.org"),
])
def test_host_selection(kw, via, option):
    h = L2.host_selection(**kw)
    assert (h.via, h.option, h.loihi_gen) == (via, option, kw.get("loihi_gen", "N3B3"))
    assert L2.HostSelection.from_dict(h.to_dict()) == h


@pytest.mark.parametrize("kw, needle", [
    ({}, "no Loihi 2 host given: pass --partition P or --board B"),
    (dict(partition="kp", board="ncl-kp-01"), "give one of --partition and --board: Lava selects a board or a"),
    (dict(partition="kp", ethernet_host="10.0.0.1"), "an Ethernet host is used without SLURM"),
    (dict(partition="kp; rm -rf ~"), "--partition 'kp; rm -rf ~': not a valid SLURM partition name"),
    (dict(partition="-kp"), "--partition '-kp': not a valid SLURM partition name"),
    (dict(partition=""), "--partition '': not a valid"),
    (dict(board="a b"), "--board 'a b': not a valid SLURM board"),
    (dict(ethernet_host="my host"), "--ethernet-host 'my host': not a valid host name or IP address"),
    (dict(partition="kp", loihi_gen="N2A2"), "--loihi-gen 'N2A2': expected one of N3B2, N3B3, N3C1, N3D1"),
])
def test_host_selection_errors_are_one_line(kw, needle):
    with pytest.raises(L2.HostSelectionError) as e:
        L2.host_selection(**kw)
    assert needle in str(e.value) and "\n" not in str(e.value) and e.value.exit_code == 2


def test_chip_placement_needs_a_neurocore_token_lif(monkeypatch):
    with pytest.raises(L2.Loihi2Error) as e:
        L2.check_lif_placement("chip")
    msg = str(e.value)
    assert "TokenLIF" in msg and "no neurocore model" in msg and "microcoded" in msg
    assert "--lif-placement host" in msg
    L2.check_lif_placement("host")
    monkeypatch.setattr(hw, "TOKEN_LIF_NC_MODEL", type("SomeoneElsesMicrocode", (), {}))
    L2.check_lif_placement("chip")


# ---------------------------------------------------------------------------
# lava-loihi detection
# ---------------------------------------------------------------------------
def test_lava_loihi_is_detected_as_lava_does(monkeypatch):
    from lava.utils import loihi

    modules = [m for m, _ in hw.LAVA_LOIHI_MODULES]
    assert hw.lava_loihi_missing() == modules and not loihi.is_installed()   # here: no lava-loihi
    for m in modules:   # "install" it: modules that import
        fake = types.ModuleType(m)
        fake.__spec__ = importlib.machinery.ModuleSpec(m, None)
        monkeypatch.setitem(sys.modules, m, fake)
    assert hw.lava_loihi_missing() == [] and loihi.is_installed()
    L2.require_software()


def test_missing_lava_loihi_is_one_line_with_how_to_get_it():
    with pytest.raises(L2.Loihi2SoftwareMissing) as e:
        L2.require_software()
    msg = str(e.value)
    assert e.value.exit_code == 3 and "\n" not in msg
    assert msg.startswith("the loihi2 backend needs Intel's lava-loihi extension")
    for m, _ in hw.LAVA_LOIHI_MODULES:
        assert m in msg
    assert "INRC members only" in msg and "http://neuromorphic.intel.com" in msg and "inrc_interest@intel.com" in msg


def test_missing_lava_nc_is_one_line(monkeypatch):
    monkeypatch.setattr(hw, "lava_nc_problem", lambda: "No module named 'lava'")
    with pytest.raises(L2.Loihi2SoftwareMissing) as e:
        L2.require_software()
    assert "needs lava-nc 0.10.0 on CPython 3.10" in str(e.value) and "No module named 'lava'" in str(e.value)


@pytest.mark.subprocess
def test_backend_modules_are_light():
    """The checks before any work import neither Lava nor torch."""
    code = ("import sys; import spike2loihi.backends.loihi2, spike2loihi.cli.deploy, spike2loihi.lava.hw; "
            "print(sorted(m for m in ('lava', 'torch', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------
# host selection through lava.utils.loihi
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kw, call, env", [
    (dict(partition="kp"), ("slurm", None, None, "N3B3"), {"PARTITION": "kp"}),
    (dict(partition="oheogulch", loihi_gen="N3C1"), ("slurm", None, None, "N3C1"), {"PARTITION": "oheogulch"}),
    (dict(board="ncl-og-02"), ("slurm", None, None, "N3B3"), {"BOARD": "ncl-og-02"}),
    (dict(ethernet_host="10.1.2.3", loihi_gen="N3B2"), ("ethernet", "10.1.2.3", "N3B2"), {}),
])
def test_select_host_calls_lava_utils_loihi(monkeypatch, clean_env, kw, call, env):
    """Which lava.utils.loihi function is called, with what; PARTITION/BOARD as lava.utils.slurm sets them."""
    from lava.utils import loihi

    calls = []
    monkeypatch.setattr(loihi, "use_slurm_host", lambda partition=None, board=None, loihi_gen=None:
                        calls.append(("slurm", partition, board, loihi_gen.value)))
    monkeypatch.setattr(loihi, "use_ethernet_host", lambda host_address, host_binary_path=None, loihi_gen=None:
                        calls.append(("ethernet", host_address, loihi_gen.value)))
    monkeypatch.setattr(hw, "_sinfo_rows", lambda args: [r.split() for r in (SINFO_N if args else SINFO)[1:] if r])
    hw.select_host(L2.host_selection(**kw))
    assert calls == [call]
    assert {k: os.environ[k] for k in ("PARTITION", "BOARD") if k in os.environ} == env


@pytest.mark.parametrize("kw, env, commands", [
    (dict(partition="kp", loihi_gen="N3C1"),
     {"SLURM": "1", "LOIHI_GEN": "N3C1", "PARTITION": "kp"}, [["sinfo"], ["sinfo"]]),
    (dict(partition="oheogulch"),   # the default partition (sinfo's '*'), one of its two nodes down: accepted
     {"SLURM": "1", "LOIHI_GEN": "N3B3", "PARTITION": "oheogulch"}, [["sinfo"], ["sinfo"]]),
    (dict(board="ncl-og-02"), {"SLURM": "1", "LOIHI_GEN": "N3B3", "BOARD": "ncl-og-02"}, [["sinfo"], ["sinfo", "-N"]]),
    (dict(ethernet_host="10.1.2.3"), {"NOSLURM": "1", "NXSDKHOST": "10.1.2.3", "LOIHI_GEN": "N3B3",
                                      "HOST_BINARY": "nxcore/bin/nx_driver_server"}, [["ping", "10.1.2.3", "-c 1"]]),
])
def test_select_host_sets_lavas_environment(fake_slurm, kw, env, commands):
    """Lava's own functions run (sinfo and ping faked): the variables lava-loihi reads are set."""
    from lava.utils import loihi

    hw.select_host(L2.host_selection(**kw))
    assert {k: os.environ[k] for k in LAVA_ENV if k in os.environ} == env
    assert fake_slurm == commands
    assert loihi.host == ("ETHERNET" if "ethernet_host" in kw else "SLURM")


def test_lava_0_10s_own_partition_check_breaks_on_sinfo_output(fake_slurm):
    """Why select_host checks PARTITION/BOARD itself: lava-nc 0.10.0 parses sinfo's empty last line
    (lava-nc/lava issue #753). If this starts passing, Lava fixed it."""
    from lava.utils import loihi

    with pytest.raises(IndexError):
        loihi.use_slurm_host(partition="kp")
    with pytest.raises(IndexError):
        loihi.use_slurm_host(board="ncl-kp-01")


@pytest.mark.parametrize("kw, needle", [
    (dict(partition="nope"), "--partition nope: no such partition in `sinfo`, or all its nodes are down (not listed)"),
    (dict(partition="gone"), "--partition gone: no such partition in `sinfo`, or all its nodes are down (states down)"),
    (dict(board="ncl-og-01"), "--board ncl-og-01: no such board in `sinfo -N`, or it is down (state down)"),
    (dict(board="nobody"), "--board nobody: no such board in `sinfo -N`, or it is down (not listed)"),
    (dict(ethernet_host="10.9.9.9"), "--ethernet-host 10.9.9.9: Lava cannot select this host: Attempting to use "
                                     "ethernet host for Loihi2 but `ping 10.9.9.9` failed"),
])
def test_select_host_refusals_are_one_line(fake_slurm, kw, needle):
    with pytest.raises(L2.HostSelectionError) as e:
        hw.select_host(L2.host_selection(**kw))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_select_host_without_sinfo_or_lava_loihi(monkeypatch, clean_env):
    from lava.utils import loihi, slurm

    with pytest.raises(L2.Loihi2SoftwareMissing):   # lava.utils.loihi's own lava-loihi check (ImportError)
        hw.select_host(L2.host_selection(partition="kp"))

    def no_sinfo(cmd):
        raise FileNotFoundError(2, "No such file or directory", cmd[0])

    monkeypatch.setattr(loihi, "is_installed", lambda *a, **k: True)
    monkeypatch.setattr(slurm, "try_run_command", no_sinfo)
    with pytest.raises(L2.HostSelectionError) as e:
        hw.select_host(L2.host_selection(partition="kp"))
    assert "--partition kp: Lava cannot select this host: `sinfo` is not installed here" in str(e.value)


# ---------------------------------------------------------------------------
# the hardware graph
# ---------------------------------------------------------------------------
def _records(model, tmp_path):
    from spike2loihi.lava.blocks import Records

    cfg = model.manifest["config"]
    return Records(tmp_path, max_tokens=4, vocab=cfg["vocab_size"], n_lif=len(ir.lif_nodes(model.graph)),
                   width=cfg["n_embd"], n_plans=cfg["n_layer"] + 1).create()


RUN_ARGS = {"prompt": [1, 2], "max_new_tokens": 0, "greedy": True, "temperature": 1.0, "top_p": 1.0, "seed": 0}


def _expected_crossings(model, placement):
    """(host->chip, chip->host) Lava port edges that cross, from the host plans and the IR alone."""
    from spike2loihi.lava.plans import chip_groups, host_plans

    g = model.graph
    plans = host_plans(g, chip_groups(model))

    def on_chip(proc):
        return isinstance(g.nodes[chip_groups(model)[proc][0]], ir.Projection) or placement == "chip"

    to_chip = [(p.name, port.name) for p in plans for port in p.out_ports
               if port.kind in ("to_chip", "gate") and on_chip(port.node)]
    to_host = [(p.name, port.name) for p in plans for port in p.in_ports
               if port.kind == "from_chip" and on_chip(port.node)]
    chip_chip = [(e.src, e.dst) for e in g.edges
                 if g.nodes[e.src].placement.where == ir.CHIP and g.nodes[e.dst].placement.where == ir.CHIP]
    if placement == "host":   # Wo (chip) -> att LIF (host)
        to_host += chip_chip
    return to_chip, to_host


@pytest.mark.parametrize("placement", ["host", "chip"])
def test_every_crossing_goes_through_exactly_one_adapter(small, fake_eio, tmp_path, placement):
    from lava.proc.dense.process import Dense
    from lava.proc.graded.process import GradedVec
    from lava.proc.sparse.process import Sparse

    from spike2loihi.lava.procs.processes import HostBlock, TokenLIF

    model, _ = small
    graph = hw.build_hw(model, _records(model, tmp_path), RUN_ARGS, placement)
    py_to_nx, nx_to_py = fake_eio.spike.PyToNxAdapter, fake_eio.spike.NxToPyAdapter

    def side(proc):
        if isinstance(proc, py_to_nx):
            return "adapter"
        if isinstance(proc, (Dense, Sparse, GradedVec)) or (isinstance(proc, TokenLIF) and placement == "chip"):
            return "chip"
        assert isinstance(proc, (HostBlock, TokenLIF)), type(proc)
        return "host"

    edges = []   # (src process, src port, dst process, dst port)
    for proc in graph.procs.values():
        for port in proc.out_ports:
            for dst in port.out_connections:
                edges.append((proc, port.name, dst.process, dst.name))
    adapters = [p for p in graph.procs.values() if isinstance(p, py_to_nx)]
    # nothing crosses without an adapter
    assert not [e for e in edges if {side(e[0]), side(e[2])} == {"host", "chip"}]
    # every adapter: one edge in from one side, one edge out to the other, its kind by direction
    for a in adapters:
        ins = [e for e in edges if e[2] is a]
        outs = [e for e in edges if e[0] is a]
        assert len(ins) == 1 and len(outs) == 1 and ins[0][3] == "inp" and outs[0][1] == "out"
        src, dst = side(ins[0][0]), side(outs[0][2])
        assert (src, dst, type(a)) in (("host", "chip", py_to_nx), ("chip", "host", nx_to_py))
        assert tuple(a.proc_params["shape"]) == getattr(ins[0][0], ins[0][1]).shape == getattr(outs[0][2],
                                                                                                outs[0][3]).shape
    # and as many as the plans and the IR say cross, one adapter each
    to_chip, to_host = _expected_crossings(model, placement)
    b = graph.boundaries
    assert len([x for x in b if x.direction == hw.TO_CHIP]) == len(to_chip) == \
        sum(isinstance(a, py_to_nx) and not isinstance(a, nx_to_py) for a in adapters)
    assert len([x for x in b if x.direction == hw.TO_HOST]) == len(to_host) == \
        sum(isinstance(a, nx_to_py) for a in adapters)
    assert len(adapters) == len(b) and len({x.adapter_process for x in b}) == len(b)
    gates = [x for x in b if x.dst.endswith(".gate")]
    assert len(gates) == (2 * model.config["n_layer"] if placement == "chip" else 0)
    # message widths: graded payloads at the artifact's bits, spikes and gates as binary events
    for x in b:
        spikes = x.src.endswith(".s_out") and not x.src.endswith(".readout.s_out")   # a LIF's, not a readout's
        if x.dst.endswith(".gate") or (x.direction == hw.TO_HOST and spikes):
            assert x.num_message_bits == 0, x
        elif x.direction == hw.TO_HOST:
            assert x.num_message_bits == 24, x
        else:
            assert x.num_message_bits in (8, 16), x
    if placement == "chip":
        assert {x.num_message_bits for x in b if x.dst.endswith(".a_in")} == {16}   # the ffn LIF's graded input


def test_run_config_is_loihi2hwcfg_with_the_host_models(small, fake_eio, tmp_path, monkeypatch):
    from lava.magma.core.run_configs import Loihi2HwCfg

    from spike2loihi.lava.procs.processes import HostBlock, PyTokenLifModel, TokenLIF

    model, _ = small
    for placement, nc in (("host", None), ("chip", None), ("chip", "NcTokenLif")):
        monkeypatch.setattr(hw, "TOKEN_LIF_NC_MODEL", nc and type(nc, (), {}))
        t = hw.Loihi2Target(placement)
        graph = t.build(model, _records(model, tmp_path / f"{placement}{nc}"), RUN_ARGS)
        cfg = t.run_config(graph)
        assert isinstance(cfg, Loihi2HwCfg) and cfg.select_tag is None
        mapped = cfg.exception_proc_model_map
        assert all(p in mapped for p in graph.procs.values() if isinstance(p, HostBlock))
        lifs = [p for p in graph.procs.values() if isinstance(p, TokenLIF)]
        want = PyTokenLifModel if placement == "host" else (hw.TOKEN_LIF_NC_MODEL if nc else None)
        assert [mapped.get(p) for p in lifs] == [want] * len(lifs)


@pytest.mark.lava
@pytest.mark.parametrize("placement", ["host", "chip"])
def test_hardware_graph_with_pass_through_adapters_runs_and_equals_the_emulator(small, fake_eio, monkeypatch,
                                                                                   placement):
    """The wiring computes the model: with zero-latency CPU stand-ins for the adapters (and, for chip,
    the Python TokenLIF model standing in for a microcoded one) the graph runs under Loihi2HwCfg in
    Lava's CPU runtime and gives the emulator's logits, spikes and tokens. Without lava-loihi,
    Loihi2HwCfg cannot choose among Dense's models (NameError in lava-nc's run_configs), so the
    bit-accurate ones are named."""
    from lava.proc.dense.models import PyDenseModelBitAcc
    from lava.proc.dense.process import Dense
    from lava.proc.graded.models import PyGradedVecModelFixed
    from lava.proc.graded.process import GradedVec
    from lava.proc.sparse.models import PySparseModelBitAcc
    from lava.proc.sparse.process import Sparse

    from spike2loihi.backends import generate
    from spike2loihi.backends.emulator import EmulatorBackend
    from spike2loihi.lava.procs.processes import PyTokenLifModel
    from spike2loihi.lava.runtime import run_graph

    class CpuStandIn(hw.Loihi2Target):
        def run_config(self, graph):
            cfg = super().run_config(graph)
            cfg.exception_proc_model_map.update({Dense: PyDenseModelBitAcc, Sparse: PySparseModelBitAcc,
                                                 GradedVec: PyGradedVecModelFixed})   # the readouts
            return cfg

    model, _ = small
    monkeypatch.setattr(hw, "TOKEN_LIF_NC_MODEL", PyTokenLifModel)
    prompt, n_new = [5, 17, 2, 30], 3
    res = run_graph(model, prompt, n_new, True, target=CpuStandIn(placement))
    emu = generate.run(EmulatorBackend(model), prompt, n_new, greedy=True, keep_logits=True, keep_spikes=True)
    from spike2loihi.deploy.expected import expected_outputs

    exp = expected_outputs(model, prompt, n_new)
    assert res.generated == emu.generated_tokens == list(exp.generated)
    assert np.array_equal(res.logits, exp.logits) and np.array_equal(res.logits[:4], emu.prompt_logits)
    assert np.array_equal(res.att_spikes, exp.att_spikes) and np.array_equal(res.ffn_spikes, exp.ffn_spikes)
    assert res.steps == model.manifest["schedule"]["critical_path_steps"] + len(prompt) + \
        (n_new - 1) * model.manifest["schedule"]["token_period_steps"]


# ---------------------------------------------------------------------------
# the CLI: every error path one line, before any work, nothing written
# ---------------------------------------------------------------------------
@pytest.fixture
def no_work(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the model was loaded: the check did not come before the work")

    monkeypatch.setattr(artifact, "load", refuse)


@pytest.mark.parametrize("args, needle, code", [
    (["--partition", "kp"], "error: the loihi2 backend needs Intel's lava-loihi extension", 3),
    ([], "no Loihi 2 host given: pass --partition P or --board B", 2),
    (["--partition", "kp", "--board", "b1"], "give one of --partition and --board", 2),
    (["--board", "b1", "--ethernet-host", "10.0.0.1"], "give one of --board and --ethernet-host", 2),
    (["--partition", "kp;reboot"], "--partition 'kp;reboot': not a valid SLURM partition name", 2),
    (["--ethernet-host", "a b"], "--ethernet-host 'a b': not a valid host name", 2),
    (["--partition", "kp", "--lif-placement", "chip"], "--lif-placement chip: TokenLIF", 2),
    (["--partition", "kp", "--loihi-gen", "N2A2"], "--loihi-gen: 'N2A2' is not one of", 2),
])
@pytest.mark.parametrize("command", ["run", "eval"])
def test_cli_errors_are_one_line_before_any_work(small, tmp_path, no_work, clean_env, command, args, needle, code):
    _, path = small
    out = tmp_path / "out"
    out.mkdir()
    if command == "run":
        cmd = ["run", path, "--backend", "loihi2", "--tokens", "1,2", "--dump-logits", out / "l.npy"]
    else:
        cmd = ["eval", path, "--backends", "emulator,loihi2", "--tokens-file", path, "--no-noise-floor",
               "--plot", out / "p.png"]
    res = invoke(*cmd, *args)
    one_line_error(res, needle, code)
    assert list(out.iterdir()) == []


@pytest.mark.subprocess
def test_missing_lava_loihi_in_a_subprocess_names_no_model(tmp_path):
    """As a user meets it: the model is not even opened (the path need not exist)."""
    res = subprocess.run([sys.executable, "-m", "spike2loihi.cli", "run", str(tmp_path / "absent.s2l"), "--backend",
                          "loihi2", "--partition", "oheogulch", "--tokens", "1"], cwd=ROOT, capture_output=True,
                         text=True)
    assert res.returncode == 3, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the loihi2 backend needs Intel's lava-loihi"), res.stderr
    assert "INRC" in lines[0] and "Traceback" not in res.stderr


def test_loihi2_options_without_the_backend_warn(small):
    _, path = small
    res = invoke("run", path, "--tokens", "1,2", "--max-new-tokens", "1", "--partition", "kp", "--json")
    assert res.exit_code == 0, res.stderr
    assert "warning: --partition has no effect without --backend loihi2" in res.stderr
    assert json.loads(res.stdout)["backend"] == "emulator"


def test_cli_with_lava_loihi_present_selects_the_host_then_runs_the_hardware_graph(small, fake_slurm, monkeypatch):
    """lava-loihi faked present, sinfo faked: `run --backend loihi2` selects the host (env set), prints the
    caveats, then calls run_graph with the hardware target (the board run itself replaced)."""
    from spike2loihi.lava import runtime

    for m, _ in hw.LAVA_LOIHI_MODULES:
        fake = types.ModuleType(m)
        fake.__spec__ = importlib.machinery.ModuleSpec(m, None)
        monkeypatch.setitem(sys.modules, m, fake)
    seen = {}

    def fake_run_graph(model, prompt, max_new_tokens=0, *a, target=None, **k):
        seen.update(target=target, prompt=list(prompt), env={k_: os.environ.get(k_) for k_ in LAVA_ENV})
        raise runtime.LavaRunError("stopped here (no board)")

    monkeypatch.setattr(runtime, "run_graph", fake_run_graph)
    _, path = small
    res = invoke("run", path, "--backend", "loihi2", "--partition", "kp", "--loihi-gen", "N3C1", "--tokens", "1,2",
                 "--max-new-tokens", "0")
    assert res.exit_code == 2 and "error: stopped here (no board)" in res.stderr
    assert "loihi2: nothing in spike2loihi has run on a Loihi board yet; TokenLIF" in res.stderr
    assert seen["target"] == hw.Loihi2Target("host") and seen["prompt"] == [1, 2]
    assert seen["env"]["SLURM"] == "1" and seen["env"]["PARTITION"] == "kp" and seen["env"]["LOIHI_GEN"] == "N3C1"


def _edges(graph):
    return [(proc, port.name, dst.process, dst.name) for proc in graph.procs.values() for port in proc.out_ports
            for dst in port.out_connections]


@pytest.mark.parametrize("lif_placement", ["host", "chip"])
def test_simulator_and_board_build_one_graph_and_every_chip_output_leaves_from_a_neuron(small, fake_eio, tmp_path,
                                                                                         lif_placement):
    """lava-sim and loihi2 build the same processes and edges: the board graph is the simulator graph with one
    adapter on each host<->chip edge (and, with the LIFs on the host, Wo's readout neuron before its crossing).
    Nothing leaves a Dense/Sparse for the host: a readout GradedVec (vth 0) is in between."""
    from lava.proc.dense.process import Dense
    from lava.proc.graded.process import GradedVec
    from lava.proc.sparse.process import Sparse

    from spike2loihi.lava.build import build
    from spike2loihi.lava.procs.processes import HostBlock

    model, _ = small
    sim = build(model, _records(model, tmp_path / "sim"), RUN_ARGS)
    board = hw.build_hw(model, _records(model, tmp_path / "hw"), RUN_ARGS, lif_placement)
    py_to_nx = fake_eio.spike.PyToNxAdapter

    def name(p):
        return p.name

    def collapse(graph):
        """Edges by process name, an adapter replaced by the edge it carries."""
        out = set()
        edges = _edges(graph)
        for s, sp, d, dp in edges:
            if isinstance(s, py_to_nx):
                continue
            if isinstance(d, py_to_nx):
                (_, _, d2, dp2), = [e for e in edges if e[0] is d]
                d, dp = d2, dp2
            out.add((name(s), sp, name(d), dp))
        return out

    extra = {p.name for p in board.procs.values() if isinstance(p, GradedVec)} - \
        {p.name for p in sim.procs.values() if isinstance(p, GradedVec)}
    assert extra == (set() if lif_placement == "chip" else
                     {model.graph.inputs(n.name)["x"] + ".readout" for n in ir.lif_nodes(model.graph)
                      if isinstance(model.graph.nodes[model.graph.inputs(n.name)["x"]], ir.Projection)})
    sim_procs = sorted(name(p) for p in sim.procs.values())
    board_procs = sorted(name(p) for p in board.procs.values() if not isinstance(p, py_to_nx) and p.name not in extra)
    assert sim_procs == board_procs
    sim_edges = collapse(sim)
    board_edges = {e for e in collapse(board) if e[0] not in extra and e[2] not in extra}
    wo_direct = {e for e in sim_edges if e[0] + ".readout" in extra}   # Wo -> LIF, through a readout on the board
    assert sim_edges - wo_direct == board_edges - {e for e in board_edges if e[0] + ".readout" in extra}
    for graph in (sim, board):
        for s, sp, d, dp in _edges(graph):
            if isinstance(s, (Dense, Sparse)):
                assert not isinstance(d, (HostBlock, py_to_nx)), (s.name, d.name)
        readouts = [p for p in graph.procs.values() if isinstance(p, GradedVec) and p.name.endswith(".readout")]
        assert readouts and all(int(p.vth.init if hasattr(p.vth, "init") else p.vth) == 0 for p in readouts)


@pytest.fixture(scope="module")
def small_chip():
    """`small` converted with --placement chip."""
    import numpy as np

    from conftest import convert_spec, spiking_state_dict
    from converters.spikegpt import spec_from_state_dict

    spec = spec_from_state_dict(spiking_state_dict(2, 16, 40, seed=3))
    toks = [int(t) for t in np.random.default_rng(3).integers(0, 40, 24)]
    return convert_spec(spec, toks, placement="chip")


@pytest.mark.parametrize("placement", ["host", "chip"])
def test_the_process_inventory_counts_the_built_graphs(small, small_chip, fake_eio, tmp_path, placement):
    """The Lava-free inventory (op types' `lava.processes` registrations, host plans, one adapter per crossing)
    equals the process types of the simulator graph and of the board graph with the LIFs on either side."""
    from collections import Counter

    from spike2loihi.lava import inventory as inv
    from spike2loihi.lava.build import build
    from spike2loihi.lava.procs.processes import HostBlock

    model = (small if placement == "host" else small_chip)[0]   # (the board graph: host placement only so far)

    def kinds(graph):
        return Counter("HostBlock" if isinstance(p, HostBlock) else type(p).__name__ for p in graph.procs.values())

    def counted(rows):
        return Counter({r.process: 0 for r in rows}) + Counter({r.process: r.count for r in rows})

    sim = build(model, _records(model, tmp_path / "sim"), RUN_ARGS)
    assert counted(inv.inventory(model, board=False)) == kinds(sim)
    for lif_where in (("host", "chip") if placement == "host" else ()):
        board = hw.build_hw(model, _records(model, tmp_path / lif_where), RUN_ARGS, lif_where)
        rows = inv.inventory(model, lif_where=lif_where)
        assert counted(rows) == kinds(board), lif_where
        lifs = [r for r in rows if r.process == "TokenLIF"]
        assert [r.where for r in lifs] == [lif_where]
        assert all(r.neurocore_model in ("lava-loihi", "microcode", "unknown", "host") and r.source for r in rows)
        if lif_where == "chip":
            assert any(r.process == "TokenLIF" for r in inv.not_board_ready(rows))
