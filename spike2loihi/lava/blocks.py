"""The host blocks' runtime: what each Lava host block does at every time step, and the record files.

This runs inside the Lava host ProcessModels (`spike2loihi.lava.procs.processes.HostBlock`,
forked by Lava's runtime), so it imports no Lava: a runner is handed the Lava model's
ports (`pm`) and only calls `send`/`recv` on them. Its arithmetic is the whole-model
emulator's handlers (`spike2loihi.execute.handlers`), so the graph computes what the
emulator computes.

* `Records`: memory-mapped outputs shared by the blocks (writers) and the runner in
  `spike2loihi.lava.runtime` (reader): logits, spikes, generated tokens, counters,
  per-node activity counts, and error files.
* `BlockRunner`: the per-step frame every block shares (errors caught and reported, every
  port touched once per step).
* `HostRunner` (host placement) and `ChipHostRunner` (`--placement chip`): the work.
"""
from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from spike2loihi.convert import ir
from spike2loihi.convert.artifact import ConvertedModel
from spike2loihi.lava.plans import (IO_PLAN, HostPlan, PortSpec, _safe, chip_groups, chip_host_plans, encoder_of,
                                    host_plans)


# ---------------------------------------------------------------------------
# Records: what host blocks write for the runner (memory-mapped files)
# ---------------------------------------------------------------------------
@dataclass
class Records:
    """Memory-mapped outputs of a run, shared by the host blocks (writers) and the runner (reader)."""

    folder: Path
    max_tokens: int
    vocab: int
    n_lif: int
    width: int
    n_plans: int
    n_nodes: int = 0

    def _map(self, name, dtype, shape, mode):
        return np.memmap(self.folder / name, dtype=dtype, mode=mode, shape=shape)

    def create(self) -> "Records":
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "layout.json").write_text(json.dumps(self.layout()))
        for name, dtype, shape in self._files():
            self._map(name, dtype, shape, "w+").flush()
        return self

    def layout(self) -> dict:
        return {"max_tokens": self.max_tokens, "vocab": self.vocab, "n_lif": self.n_lif, "width": self.width,
                "n_plans": self.n_plans, "n_nodes": self.n_nodes}

    @classmethod
    def open(cls, folder) -> "Records":
        folder = Path(folder)
        return cls(folder, **json.loads((folder / "layout.json").read_text()))

    def _files(self):
        return [("logits.f32", np.float32, (self.max_tokens, self.vocab)),
                ("spikes.u8", np.uint8, (self.max_tokens, self.n_lif, self.width)),
                ("tokens.i64", np.int64, (self.max_tokens,)),
                ("counters.i64", np.int64, (self.n_plans + 1, 4)),
                # per IR node: executions, out elements, out nonzero, in elements, in nonzero
                ("nodecounts.i64", np.int64, (max(self.n_nodes, 1), 5))]

    def maps(self, mode="r+"):
        return {name.split(".")[0]: self._map(name, dtype, shape, mode) for name, dtype, shape in self._files()}

    def errors(self) -> List[str]:
        return sorted(p.read_text().strip() for p in self.folder.glob("error_*.txt"))


# counters columns
C_STEPS, C_LOGITS, C_GENERATED, C_ERROR = range(4)


# ---------------------------------------------------------------------------
# The host block's per-step work (runs inside the Lava ProcessModel)
# ---------------------------------------------------------------------------
class BlockRunner:
    """What every host block does at every time step, whatever the placement: run `_step` (the
    subclass's work); catch any error, write it to the records and keep the ports going; touch
    every port once; count the step. Holds the IO block's prompt and sampler state."""

    def __init__(self, plan: HostPlan, model: ConvertedModel, records: str, run_args: dict, plans: List[HostPlan]):
        from spike2loihi.execute import handlers as execute

        self.ex = execute
        self.plan = plan
        self.model = model
        self.graph = model.graph
        self.params = execute.Params(model)
        self.sched = model.schedule
        self.off = self.sched.offsets
        self.args = run_args
        self.records = Records.open(records)
        self.maps = self.records.maps("r+")
        self.row = [p.name for p in plans].index(plan.name)      # this block's counters row
        self.state = {n: s for n in plan.nodes for s in [execute.init_state(self.params, self.graph.nodes[n], 1)]
                      if s is not None}
        self.lif_index = {n.name: i for i, n in enumerate(ir.lif_nodes(self.graph))}
        self.count = collections.Counter()       # per node: valid tokens handled
        self.failed = False
        if IO_PLAN == plan.name:
            import torch

            self.prompt = list(run_args["prompt"])
            self.max_new = int(run_args["max_new_tokens"])
            self.gen = torch.Generator().manual_seed(int(run_args["seed"]))
            self.next_token: Optional[int] = None

    def step(self, s: int, pm) -> None:
        self._received, self._sent = set(), set()
        try:
            if not self.failed:
                self._step(s, pm)
        except BaseException as exc:  # nothing may escape a ProcessModel
            self.failed = True
            self._report(exc)
        finally:
            self._finish_ports(pm)
            self.maps["counters"][self.row, C_STEPS] = s + 1

    def _step(self, s: int, pm) -> None:
        raise NotImplementedError

    def _report(self, exc: BaseException) -> None:
        import traceback

        msg = f"host block {self.plan.name}: {type(exc).__name__}: {exc}"
        (self.records.folder / f"error_{self.plan.safe_name}.txt").write_text(
            msg + "\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        self.maps["counters"][self.row, C_ERROR] = 1

    def _finish_ports(self, pm) -> None:
        """Every port once per step, also after an error: send zeros where nothing was sent (first:
        a LIF waits for its gate before it sends the spikes we receive), then receive what is left."""
        for p in self.plan.out_ports:
            if p.name not in self._sent:
                getattr(pm, p.name).send(np.zeros(p.width, dtype=np.float32 if p.dtype == "float" else np.int32))
        for p in self.plan.in_ports:
            if p.name not in self._received:
                getattr(pm, p.name).recv()

    def _send(self, pm, port: PortSpec, data) -> None:
        getattr(pm, port.name).send(data)
        self._sent.add(port.name)

    def _recv(self, pm, port: PortSpec):
        self._received.add(port.name)
        return getattr(pm, port.name).recv()

    def _record_spikes(self, lif: str, s: np.ndarray) -> None:
        i = self.count[lif]
        if i < self.records.max_tokens:
            self.maps["spikes"][i, self.lif_index[lif]] = (np.asarray(s) != 0)
        self.count[lif] = i + 1


class HostRunner(BlockRunner):
    """One HostBlock's work at every time step (host placement): receive, run host nodes, encode, send.

    Host nodes run every step in IR order, each for its own token (step - offset);
    a node with no valid token outputs zeros and leaves its state alone.
    """

    def __init__(self, plan: HostPlan, model: ConvertedModel, records: str, run_args: dict):
        super().__init__(plan, model, records, run_args, host_plans(model.graph, chip_groups(model)))
        self.node_row = {name: i for i, name in enumerate(self.graph.nodes)}
        self.nodes = [self.graph.nodes[n] for n in plan.nodes]
        self.inputs = {n.name: self.graph.inputs(n.name) for n in self.nodes}
        self.out_edges = collections.defaultdict(list)   # host node -> [(port, chip node, start, stop)]
        for p in plan.out_ports:
            if p.kind == "host_out":
                self.out_edges[p.node].append((p, None, 0, p.width))
            elif p.kind == "to_chip":
                for m, lo, hi in p.members:
                    self.out_edges[next(iter(self.graph.inputs(m).values()))].append((p, m, lo, hi))
            else:   # gate: sent by the LIF's encoder
                m = p.members[0][0]
                self.out_edges[encoder_of(self.graph, m)].append((p, m, 0, 1))
        self.gate_sent: Dict[str, bool] = {}
        self.in_by_node = {m: p for p in plan.in_ports for m in ([p.node] if p.kind == "host_in"
                                                                  else [m for m, _, _ in p.members])}
        self._pending: Dict[str, np.ndarray] = {}        # grouped payloads being filled this step
        depth = max(self.sched.token_period + 2, 8)
        self.hist = collections.defaultdict(lambda: collections.deque(maxlen=depth))   # node -> (value, valid)
        self.side = collections.defaultdict(lambda: collections.deque(maxlen=depth))   # chip -> (scale, valid)

    # -- the step -----------------------------------------------------------
    def _step(self, s: int, pm) -> None:
        self._ran, self._pending = set(), {}
        # gates that depend on earlier steps go first (the LIF waits for its gate)
        for p in self.plan.out_ports:
            if p.kind == "gate" and self._gate_delay(p.members[0][0]) > 0:
                self._send_gate(pm, p, self._delayed_gate(p.members[0][0]))
        for n in self.nodes:
            ins, valid = {}, None
            for port, src in self.inputs[n.name].items():
                value, ok = self._fetch(pm, n, src)
                ins[port] = value
                valid = ok if valid is None else (valid and ok)
            if "token" in n.ports:
                tok, valid = self._token(s)
                ins["token"] = np.array([tok])
            if not n.per_token:   # the sampler
                self._sample(s, ins["logits"], valid)
                continue
            if valid:
                out = self.ex.run_host_node(self.params, n, ins, self.state.get(n.name))
                self.count[n.name] += 1
                self._tally(n.name, out, 0)
            else:
                out = np.zeros((1, n.dim), dtype=np.float32)
            self.hist[n.name].append((out, bool(valid)))
            self._ran.add(n.name)
            self._emit(pm, n, out, bool(valid))
        for p in self.plan.in_ports:   # probes (counting runs): after every encoder of this step ran
            if p.kind == "probe":
                self._pull(pm, p.members[0][0])

    # -- data movement ------------------------------------------------------
    def _fetch(self, pm, n: ir.Op, src: str):
        """(value, valid) of `src` for the token node `n` handles this step."""
        node = self.graph.nodes[src]
        delay = self.off[n.name] - self.off[src] - node.latency()
        if src not in self.hist or (len(self.hist[src]) == 0 or self._stale(src)):
            self._pull(pm, src)
        h = self.hist[src]
        return h[-1 - delay] if delay < len(h) else (np.zeros((1, node.dim), np.float32), False)

    def _stale(self, src: str) -> bool:
        return src in self.in_by_node and self.in_by_node[src].name not in self._received

    def _pull(self, pm, src: str) -> None:
        """Receive a value produced outside this block (chip node or another block) for this step."""
        p = self.in_by_node.get(src)
        if p is None:
            return  # a local node that has not produced yet (cannot happen in IR order)
        data = self._recv(pm, p)
        if p.kind == "host_in":
            self.hist[src].append((np.asarray(data[:-1], dtype=np.float32)[None, :], bool(data[-1] > 0.5)))
            return
        # from a chip process: split it into its nodes, decode each with its encoder's side information
        for m, lo, hi in p.members:
            mnode = self.graph.nodes[m]
            part = np.asarray(data[lo:hi], np.int64)[None, :]
            if p.kind == "probe":   # counted only: a chip output that stays on the chip
                if self._side_for(m, 1)[1]:
                    self._tally(m, part, 0)
                continue
            if mnode.spiking:
                valid = self.gate_sent[m]          # the gate this LIF got this step
                value = self.ex.decode_output(self.params, mnode, self.ex.Payload(part))
                if valid:
                    self._record_spikes(m, part[0])
            else:   # a Dense: its payload was encoded one step ago (the encoder already ran this step)
                scale, valid = self._side_for(m, 1)
                value = self.ex.decode_output(self.params, mnode, self.ex.Payload(part, scale))
            self.hist[m].append((value if valid else np.zeros_like(value), valid))
            if valid:
                self._tally(m, part, 0)

    def _tally(self, name: str, arr: np.ndarray, col: int) -> None:
        """Count an output (col 0: executions, elements, nonzero) or a chip input (col 3: elements, nonzero)."""
        row = self.maps["nodecounts"][self.node_row[name]]
        if col == 0:
            row[0] += 1
            col = 1
        row[col] += arr.size
        row[col + 1] += int(np.count_nonzero(arr))

    def _side_for(self, chip: str, back: int):
        """(token scale, valid) the encoder recorded for `chip` `back` entries ago."""
        side = self.side[chip]
        if back < len(side):
            return side[-1 - back]
        return np.zeros((1, 1), np.float32), False

    def _gate_delay(self, lif: str) -> int:
        return self.off[lif] - self.off[encoder_of(self.graph, lif)]

    def _send_gate(self, pm, p: PortSpec, valid: bool) -> None:
        self.gate_sent[p.members[0][0]] = bool(valid)
        self._send(pm, p, np.array([int(valid)], dtype=np.int32))

    def _delayed_gate(self, lif: str) -> bool:
        """At the start of a step: the flag the encoder sent `delay` steps ago into the chip
        chain that ends in `lif` (the entries so far end at the previous step)."""
        first = lif
        while self.graph.nodes[next(iter(self.graph.inputs(first).values()))].placement.where == ir.CHIP:
            first = next(iter(self.graph.inputs(first).values()))
        return self._side_for(first, self._gate_delay(lif) - 1)[1]

    def _emit(self, pm, n: ir.Op, out: np.ndarray, valid: bool) -> None:
        for p, chip, lo, hi in self.out_edges.get(n.name, ()):
            if p.kind == "host_out":
                self._send(pm, p, np.concatenate([out[0], [1.0 if valid else 0.0]]).astype(np.float32))
            elif p.kind == "to_chip":
                if valid:
                    pay = self.ex.encode_input(self.params, self.graph.nodes[chip], out)
                    q, scale = pay.q[0], pay.scale
                    self._tally(chip, q, 3)
                else:
                    q, scale = np.zeros(hi - lo, np.int64), np.zeros((1, 1), np.float32)
                self.side[chip].append((scale, valid))
                buf = self._pending.setdefault(p.name, np.zeros(p.width, np.int32))
                buf[lo:hi] = q
                if all(self.graph.nodes[next(iter(self.graph.inputs(m).values()))].name in self._ran
                       for m, _, _ in p.members):   # every member's encoder has run this step
                    self._send(pm, p, buf)
            elif p.kind == "gate" and self._gate_delay(chip) == 0:
                self._send_gate(pm, p, valid)

    # -- tokens in, logits and spikes out -----------------------------------
    def _token(self, s: int):
        every = self.sched.steps_per_prefill_token   # 1; a stock-LIF model's token period
        if s < len(self.prompt) * every:
            return (self.prompt[s // every], True) if s % every == 0 else (0, False)
        if self.next_token is not None:
            tok, self.next_token = self.next_token, None
            return tok, True
        return 0, False

    def _sample(self, s: int, logits: np.ndarray, valid: bool) -> None:
        if valid:
            sample_and_record(self, self.row, logits)

def sample_and_record(runner, row: int, logits: np.ndarray) -> None:
    """The IO block's sampler (both placements): record the logits; after the prompt's last token,
    choose the next token (argmax or temperature / top-p) and set `runner.next_token` to enter."""
    import torch

    from spike2loihi.model.sampling import choose

    c = runner.maps["counters"]
    i = int(c[row, C_LOGITS])
    if i < runner.records.max_tokens:
        runner.maps["logits"][i] = logits[0]
    c[row, C_LOGITS] = i + 1
    if i >= len(runner.prompt) - 1:   # logits of the last prompt token or of a generated one
        g = int(c[row, C_GENERATED])
        if g < runner.max_new:
            tok = choose(torch.from_numpy(logits[0].copy()), bool(runner.args["greedy"]),
                         float(runner.args["temperature"]), float(runner.args["top_p"]), runner.gen)
            runner.maps["tokens"][len(runner.prompt) + g] = tok
            c[row, C_GENERATED] = g + 1
            if g + 1 < runner.max_new:   # the last token's successor is never needed
                runner.next_token = tok


class ChipHostRunner(BlockRunner):
    """One host block's work per step under `--placement chip`; validity comes from entry flags."""

    def __init__(self, plan: HostPlan, model: ConvertedModel, records: str, run_args: dict):
        super().__init__(plan, model, records, run_args, chip_host_plans(model.graph))
        self.g = self.graph
        self.port = {p.name: p for p in plan.in_ports + plan.out_ports}
        self.entries: List[bool] = []
        self.io = plan.name == IO_PLAN
        g = self.graph      # looked up once, not per step
        self.emb = next(n for n in g.nodes.values() if "token" in n.ports)
        self.head = ir.logits_node(g)
        self.sampler = next(n for n in g.nodes.values() if not n.per_token)
        self.inputs = {n: g.inputs(n) for n in plan.nodes}
        self.sends = {n: [(self.port[f"to_{_safe(e.dst)}"], g.nodes[e.dst]) for e in g.consumers(n)]
                      for n in plan.nodes}

    def valid(self, s: int, node: str) -> bool:
        t = s - self.off[node]
        return 0 <= t < len(self.entries) and self.entries[t]

    def _step(self, s: int, pm) -> None:
        (self._io_step if self.io else self._block_step)(s, pm)

    def _io_step(self, s: int, pm) -> None:
        if s < len(self.prompt):
            tok, entered = self.prompt[s], True
        elif self.next_token is not None:
            (tok, entered), self.next_token = (self.next_token, True), None
        else:
            tok, entered = 0, False
        self.entries.append(entered)
        for p in self.plan.out_ports:
            if p.kind == "entered":
                self._send(pm, p, np.array([1.0 if entered else 0.0], np.float32))
            elif p.kind == "gate":
                self._send(pm, p, np.array([int(self.valid(s, p.node))], np.int32))
        for p in self.plan.out_ports:
            if p.kind == "to_chip":
                if entered:
                    x = self.ex.run_host_node(self.params, self.emb, {"token": np.array([tok])}, None)
                    q = self.ex.encode_input(self.params, self.g.nodes[p.node], x).q[0]
                else:
                    q = np.zeros(p.width, np.int64)
                self._send(pm, p, q.astype(np.int32))
        acc = np.asarray(self._recv(pm, self.port["from_head"]), np.int64)[None, :]
        if self.valid(s, self.sampler.name):
            logits = self.ex.decode_output(self.params, self.head, self._payload(self.head, acc))
            sample_and_record(self, self.row, logits)
        self._spikes(s, pm)

    def _spikes(self, s: int, pm) -> None:
        """Record the spikes of the LIFs this block records (its layer's, or with `--wkv chip` every layer's
        in the IO block)."""
        for p in self.plan.in_ports:
            if p.kind == "spikes":
                spk = self._recv(pm, p)
                if self.valid(s, p.node):
                    self._record_spikes(p.node, spk)

    def _payload(self, node: ir.Op, acc: np.ndarray):
        step = self.model.nodes[node.name].in_step
        return self.ex.Payload(acc, np.full((1, 1), step, np.float32))

    def _block_step(self, s: int, pm) -> None:
        entered = self._recv(pm, self.port[f"entered_{self.plan.name}"])
        self.entries.append(bool(entered[0] > 0.5))
        got = {}
        for p in self.plan.in_ports:
            if p.kind == "from_chip":
                acc = np.asarray(self._recv(pm, p), np.int64)[None, :]
                got[p.node] = self.ex.decode_output(self.params, self.g.nodes[p.node],
                                                    self._payload(self.g.nodes[p.node], acc))
        for name in self.plan.nodes:   # WKV
            n = self.g.nodes[name]
            ins = {port: got[src] for port, src in self.inputs[name].items()}
            ok = self.valid(s, name)
            out = self.ex.run_host_node(self.params, n, ins, self.state.get(name)) if ok else None
            for port, dst in self.sends[name]:
                q = self.ex.encode_input(self.params, dst, out).q[0] if ok else np.zeros(dst.dim, np.int64)
                self._send(pm, port, q.astype(np.int32))
        self._spikes(s, pm)


