"""Measured activity: counts checked against independent counts on small converted models
(spikes from the executor vs the rates, synaptic events from a separate trace, host float ops vs
a hand formula for a 1-layer model, bytes vs the encodings), the estimates' formulas, the
baselines, statuses, and the `profile --text` command."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import converted_random
from spike2loihi.hardware import activity as A, activity_report as R, energy as E, planner as P, profiles as H
from spike2loihi.convert import artifact, ir
from spike2loihi.cli import group as cliutil
from spike2loihi.cli.profile import profile as profile_command
from spike2loihi.execute.model_emulator import ModelEmulator


def converted(n_layer, n_embd, vocab, seed=3, n_tokens=32):
    return converted_random(n_layer, n_embd, vocab, seed=seed, n_tokens=n_tokens)


TOKENS = [int(t) for t in np.random.default_rng(11).integers(0, 40, 30)]


@pytest.fixture(scope="module")
def one_layer():
    model = converted(1, 16, 40)
    return model, A.count_activity(model, TOKENS)


@pytest.fixture(scope="module")
def two_layers():
    model = converted(2, 24, 40, seed=5)
    return model, A.count_activity(model, TOKENS)


def test_rates_equal_the_executors_own_spike_counts(two_layers):
    model, counts = two_layers
    act = A.measure(model, counts)
    ex = ModelEmulator(model, batch_size=1, stats=True)
    spikes = {}
    ex.run(np.asarray(TOKENS), lambda t, s: [spikes.setdefault(k, []).append(v[0].copy()) for k, v in s.spikes.items()])
    rates = act.rates()
    assert set(rates) == {n.name for n in ir.lif_nodes(model.graph)}
    for name, rows in spikes.items():
        s = np.stack(rows)
        assert rates[name] == pytest.approx(s.mean(), abs=0)
        assert s.sum() == counts.node(name).out_nonzero
        # (Stats' own "spikes" counter adds each spike twice: lif_update's counter and ModelEmulator.step)
        assert ex.stats.counts[name]["neuron_steps"] == counts.node(name).out_elements
    assert 0 < act.mean_rate() < 1


def test_synaptic_events_from_an_independent_trace(two_layers):
    model, counts = two_layers
    act = A.measure(model, counts)
    g = model.graph
    seen = {}

    def trace(name, value):
        if name.endswith(".in"):
            seen.setdefault(name[:-3], []).append(np.asarray(value.q).copy())

    ModelEmulator(model, batch_size=1, trace=trace).run(np.asarray(TOKENS))
    graded = 0
    for name, payloads in seen.items():
        node = g.nodes[name]
        fan_out = node.dim if isinstance(node, ir.Projection) else 1   # a LIF's identity synapse
        graded += sum(int(np.count_nonzero(p)) for p in payloads) * fan_out
    assert act.graded_macs == pytest.approx(graded / len(TOKENS))
    assert act.binary_acs == 0          # graded mapping: no chip Dense reads spikes
    assert act.graded_macs < act.dense_macs + act.lif_input_events
    dense = [la for la in act.layers if la.kind != "lif"]
    assert act.dense_macs == sum(n.dim * n.n_in for n in g.of_type(ir.Projection))
    assert len(dense) == len(g.of_type(ir.Projection)) and all(la.input_kind == "graded" for la in dense)
    relu_fed = [la for la in dense if la.name.endswith("ffn.value")]
    assert all(la.input_density < 1 for la in relu_fed)   # relu^2 zeros are not sent


def test_host_ops_match_a_hand_formula_for_one_layer(one_layer):
    """1 block, C = 16, F = 64, V = 40 (no binary embedding, no halving), per token."""
    model, counts = one_layer
    act = A.measure(model, counts)
    C, F, V = 16, 64, 40
    ln = dict(add=4 * C - 1, multiply=2 * C, division=C + 2, sqrt=1)     # x4: ln0, ln1, ln2, ln_out
    ops = {k: 4 * v for k, v in ln.items()}
    ops["add"] += 5 * 2 * C + 10 * C + 2 * C          # 5 mixes, WKV, 2 residuals
    ops["multiply"] += 5 * 2 * C + 6 * C + 2 * C + F  # mixes, WKV, rwkv and gate products, relu^2
    ops["exp"] = 4 * C
    ops["division"] += C
    ops["sigmoid"] = 2 * C
    ops["compare"] = 2 * C + F                        # WKV maxima, relu
    # crossings: 7 dynamic encodes (k, v, r, ffn key, ffn receptance, head at C; ffn value at F),
    # 2 static (Wo, ffn LIF), 7 Dense decodes (3C + F + 2C + V) and 2 spike decodes (2C)
    dyn_n, stat_n = 6 * C + F, 2 * C
    ops["compare"] += (4 * dyn_n + 7 * 2) + 4 * stat_n
    ops["multiply"] += dyn_n + stat_n + 2 * (5 * C + F + V)
    ops["division"] += 2 * 7
    ops["convert"] = dyn_n + stat_n + (5 * C + F + V) + 2 * C
    got = act.ops()
    assert {k: v for k, v in got.items() if v} == {k: float(v) for k, v in ops.items()}
    assert act.host_flops == sum(ops.values())


def test_every_host_op_type_has_a_formula():
    host_types = {cls for cls in ir.OP_TYPES.values() for m in ir.MAPPINGS if cls.mapping[m].where == ir.HOST}
    for cls in host_types:
        assert cls.host_cost is not None, cls.__name__
    for formulas in [cls.host_cost for cls in host_types] + list(A.CROSSING_OPS.values()):
        assert set(formulas) <= set(A.OP_KINDS)
    assert A.evaluate_formula("4*n - 1", {"n": 5}) == 19
    with pytest.raises(ValueError):
        A.evaluate_formula("__import__('os')", {})


def test_traffic_and_time_per_token(one_layer):
    model, counts = one_layer
    act = A.measure(model, counts)
    C, F, V = 16, 64, 40
    wo_bits = model.nodes["blocks.0.att.output"].input.bits
    assert act.crossings == 18 and act.crossings_to_chip == 9
    assert (act.time_steps, act.host_round_trips) == (5, 6)
    assert act.elements_to_chip == 6 * C + F + 2 * C
    assert act.bytes_to_chip == (6 * C + F) * 8 / 8 + C * wo_bits / 8 + C * 16 / 8
    assert act.bytes_to_host == (5 * C + F + V) * 24 / 8 + 2 * C / 8
    assert act.elements_to_host == 5 * C + F + V + 2 * C
    spikes = sum(counts.node(n.name).out_nonzero for n in ir.lif_nodes(model.graph)) / len(TOKENS)
    assert act.messages_to_host <= act.elements_to_host and act.messages_to_host >= spikes
    assert act.neuron_updates == 11 * C + V == act.neurons_on_chip


def test_estimates_follow_their_formulas(one_layer):
    model, counts = one_layer
    prof = H.load_profile("oheo_gulch")
    plan = P.plan_model(model, prof)
    act = A.measure(model, counts, plan)
    e = E.estimate(act, plan, prof)
    # convert records the Lava graph's schedule: a token's path is 5 steps, a generated token 6
    assert (plan.steps_source, act.time_steps, act.token_period) == ("schedule", 5, 6)
    link_ms = (act.bytes_to_chip + act.bytes_to_host) / 6.7e5 * 1000
    ms = 6 * 153 / 1000 + 6 * 59 + link_ms
    assert e.tokens_per_s == pytest.approx(1000 / ms)
    assert e.tokens_per_s_best == pytest.approx(1000 / (ms - 6 * 58))
    assert e.tokens_per_s_prefill == pytest.approx(1000 / (0.153 + 59 + link_ms))
    parts = dict(e.energy_uj)
    assert parts["chip synaptic"] == pytest.approx(act.graded_macs * 6.8e-6)
    assert parts["chip neuron"] == pytest.approx(plan.neurons * 6 * 10.8e-6)
    assert parts["static"] == pytest.approx(0.232 * 1 * ms * 1e3)
    assert e.energy_uj_total == pytest.approx(sum(parts.values()))
    assert e.energy_uj_pessimistic > e.energy_uj_total and e.fits and e.status == A.ESTIMATE
    sim = E.estimate(act, P.plan_model(model, H.load_profile("simulator")), H.load_profile("simulator"))
    assert sim.energy_uj_total is None and sim.tokens_per_s == pytest.approx(1000 / (6 * 14.3))


def test_baselines_and_the_papers_ratio(two_layers):
    model, counts = two_layers
    act = A.measure(model, counts)
    b = E.baselines(act, H.load_profile("oheo_gulch").host)
    cols = b["columns"]
    assert cols["dense float"]["synaptic"] == pytest.approx(act.dense_macs * 4.6e-6)
    assert cols["paper, rate 0.15"]["synaptic"] == pytest.approx(act.dense_macs * 0.15 * 0.9e-6)
    assert cols["paper, rate 0.15"]["host float"] == 0 and cols["paper, rate 0.15"]["neuron"] == 0
    assert cols["paper, rate 0.15"]["synaptic_ratio_vs_dense_macs"] == pytest.approx(4.6 / (0.15 * 0.9))
    assert b["paper_formula_ratio"]["value"] == pytest.approx(34.07, abs=0.01)
    assert b["paper_published_ratio"] == {"value": 32.2, "status": "published",
                                          "note": "SpikeGPT (TMLR): fewer operations at rate 0.15"}
    assert cols["measured here"]["synaptic"] == pytest.approx(act.graded_macs * 4.6e-6)
    assert cols["measured here"]["host float"] > cols["dense float"]["host float"] > 0  # crossing work added


def test_report_statuses_and_json(two_layers):
    model, counts = two_layers
    profs = {p.name: p for p in P.packaged_profiles()}
    plans = {n: P.plan_model(model, p) for n, p in profs.items()}
    r = E.build_report(model, counts, plans, profs, "m", "tokens", plans["oheo_gulch"])
    d = json.loads(json.dumps(r.to_dict()))
    for key, fig in d["per_token"].items():
        figs = fig.values() if key == "host_ops" else [fig]
        for f in figs:
            assert f["status"] == "measured here", key
    assert all(e["status"] == "estimate" for e in d["estimates"])
    lm = d["published_lm_on_loihi2"]
    assert lm["status"] == "published" and "different model" in lm["note"]
    assert all(f["status"] == "published" for f in lm["figures"].values())
    assert d["host_op_formulas"]["LayerNorm"]["division"] == "n + 2"
    text = R.render_text(r)
    for needle in ("[M] measured here", "Estimates per system [E]", "32.2x fewer operations at rate 0.15 [P]",
                   "Published, a different model [P]", "host round trips"):
        assert needle in text


def test_backends(one_layer):
    model, _ = one_layer
    with pytest.raises(A.ActivityError) as exc:
        A.count_activity(model, TOKENS, backend="bogus")
    assert "bogus" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(A.ActivityError):
        A.count_activity(model, [], backend="emulator")
    seen = []
    c = A.count_activity(model, TOKENS[:4], progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)] and c.tokens == 4


# ---------------------------------------------------------------------------
# The command with an activity run
# ---------------------------------------------------------------------------
def invoke(*args):
    group = cliutil.CommandGroup(name="spike2loihi")
    group.add_command(profile_command)
    return CliRunner().invoke(group, ["profile", *[str(a) for a in args]])


@pytest.fixture(scope="module")
def saved(tmp_path_factory, one_layer):
    folder = tmp_path_factory.mktemp("activity")
    path = folder / "one.s2l"
    artifact.save(one_layer[0], path)
    toks = folder / "tokens.txt"
    toks.write_text(",".join(str(t) for t in TOKENS))
    return path, toks


def test_cli_activity_report_json_and_plot(saved, tmp_path):
    path, toks = saved
    out = tmp_path / "report.png"
    res = invoke(path, "--hw", "oheo_gulch", "--tokens-file", toks, "--max-tokens", 20, "--plot", out, "--json")
    assert res.exit_code == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["activity"]["tokens"] == 20 and d["activity"]["backend"] == "emulator"
    assert {e["profile"] for e in d["activity"]["estimates"]} == {"oheo_gulch", "kapoho_point", "hala_point"}
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert res.stderr.strip().endswith(f"wrote {out}")
    res = invoke(path, "--hw", "simulator", "--tokens-file", toks)
    assert res.exit_code == 0 and "Firing rate per LIF population [M]" in res.stdout
    assert "Lava CPU simulator" in res.stdout and "Baselines under one 45 nm accounting" in res.stdout


def test_cli_activity_errors_are_one_line_and_write_nothing(saved, tmp_path):
    path, toks = saved
    out = tmp_path / "r.png"
    bad = tmp_path / "bad.txt"
    bad.write_text("1, 2, 99")
    for args, needle in [
        ((path, "--hw", "oheo_gulch", "--tokens-file", bad, "--plot", out), "outside the vocabulary 0..39"),
        ((path, "--hw", "oheo_gulch", "--text", toks, "--plot", out), "has no tokenizer"),
    ]:
        res = invoke(*args)
        lines = res.stderr.splitlines()
        assert res.exit_code == 2 and len(lines) == 1 and needle in lines[0], (args, res.stderr)
        assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob(".r.png*"))


@pytest.mark.lava
def test_lava_simulator_counts_equal_the_emulators(one_layer, saved):
    """Every node's counts (executions, output elements and nonzeros, chip input elements and
    nonzeros) from the Lava process graph in Lava's simulator equal the emulator's, element for
    element; so the activity report is the same from either backend."""
    pytest.importorskip("lava.magma.core.run_configs")
    model, counts = one_layer
    lava = A.count_activity(model, TOKENS, backend="lava-sim")
    assert lava.backend == "lava-sim" and lava.tokens == counts.tokens
    assert [n for n in lava.nodes] == [n for n in counts.nodes]
    assert sum(n.out_nonzero for n in lava.nodes if n.name.endswith(".lif")) > 0
    path, toks = saved
    res = invoke(path, "--hw", "oheo_gulch", "--tokens-file", toks, "--max-tokens", 12, "--backend", "lava-sim",
                 "--json")
    assert res.exit_code == 0, res.stderr
    emu = invoke(path, "--hw", "oheo_gulch", "--tokens-file", toks, "--max-tokens", 12, "--json")
    a, b = json.loads(res.stdout)["activity"], json.loads(emu.stdout)["activity"]
    assert a.pop("backend") == "lava-sim" and b.pop("backend") == "emulator" and a == b
