"""IR + artifact -> a Lava process graph, with its schedule.

Chip side, from `lava.proc`: one `Dense` per chip projection (the artifact's
integer weights `mantissa << truncate_bits`, `weight_exp`, MIXED sign mode,
`num_message_bits` = the input encoding's bits) and one `TokenLIF` per LIF
population (Lava's bit-accurate LIF with a token gate, `du`, `dv`, `vth`).
Host side: one `HostBlock` per model block plus one for the input/output
stage (embedding, ln0, ln_out, sampler): coarse, because every Lava process is
an OS process in the simulator.

Schedule (DESIGN.md "Tokens and time steps"): token t enters the embedding at
step t. A Dense delivers one step after it receives; host blocks and LIFs pass
values on within the step. So each IR node n handles token t at step
t + offset(n), with offset(n) = max over its inputs of offset(src) + latency(src)
(latency 1 for a Dense, else 0): where inputs arrive at different offsets the
host keeps the earlier one in a FIFO (balanced paths: residual, token shift and
gates meet the same token). Teacher-forced prefill pipelines one token per step.
Generation runs inside the graph: the sampler's token enters the embedding one
step later, so a generated token costs `token_period = offset(sampler) + 1`
steps; in the steps between, every LIF is gated off and keeps its membrane.

Every value a host block handles carries a `valid` flag (is there a token at
this node in this step?): stateful host ops (token shift, WKV) advance only on
valid steps, LIF gates are the flags of their inputs, and chip processes are
sent zeros otherwise.
"""
from __future__ import annotations

import collections
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from spike2loihi.convert import ir
from spike2loihi.convert.artifact import ConvertedModel
from spike2loihi.convert.schedule import Schedule, latency, schedule

IO_PLAN = "io"


# ---------------------------------------------------------------------------
# Host plans: which host nodes a HostBlock runs, and its ports
# ---------------------------------------------------------------------------
def _safe(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z_]", "_", name)


@dataclass(frozen=True)
class PortSpec:
    name: str
    width: int
    dtype: str          # "int" (payloads, spikes, gates) or "float" (host values + valid flag)
    kind: str           # "to_chip", "gate", "from_chip", "host_out", "host_in"
    node: str           # the chip process (a chip node, or a group of side-by-side Dense), or host source node
    members: Tuple[Tuple[str, int, int], ...] = ()   # chip ports: (IR chip node, start, stop) in the vector


@dataclass(frozen=True)
class HostPlan:
    name: str
    nodes: Tuple[str, ...]
    in_ports: Tuple[PortSpec, ...]
    out_ports: Tuple[PortSpec, ...]

    @property
    def safe_name(self) -> str:
        return _safe(self.name)


def _plan_of(node: ir.Op) -> str:
    return IO_PLAN if node.layer is None else f"block{node.layer}"


def encoder_of(graph: ir.Graph, chip: str) -> str:
    """The host node whose value a chip node's input carries (through chip-to-chip edges)."""
    src = next(iter(graph.inputs(chip).values()))
    while graph.nodes[src].placement.where == ir.CHIP:
        src = next(iter(graph.inputs(src).values()))
    return src


def chip_groups(model: ConvertedModel) -> Dict[str, List[str]]:
    """Chip process name -> its IR chip nodes: Dense layers the conversion grouped (same block,
    same step, shared weight_exp and input bits) become one block-diagonal Sparse process."""
    out: Dict[str, List[str]] = collections.OrderedDict()
    for n in model.graph.nodes.values():
        if n.placement.where == ir.CHIP:
            out.setdefault(model.nodes[n.name].get("group") or n.name, []).append(n.name)
    return out


def host_plans(graph: ir.Graph, groups: Optional[Dict[str, List[str]]] = None,
               probes: bool = False) -> List[HostPlan]:
    """The host blocks and their ports. With `probes`, the output of every chip process that
    feeds only chip processes (Wo -> LIF) is also sent to its encoder's block, which counts it
    (the activity report's counts from the simulator)."""
    nodes = graph.nodes
    if groups is None:
        groups = {n.name: [n.name] for n in nodes.values() if n.placement.where == ir.CHIP}
    plans: Dict[str, List[str]] = collections.OrderedDict()
    plans[IO_PLAN] = []
    for n in nodes.values():
        if n.placement.where == ir.HOST:
            plans.setdefault(_plan_of(n), []).append(n.name)
    owner = {name: g for g, names in plans.items() for name in names}
    ins: Dict[str, Dict[str, PortSpec]] = {g: {} for g in plans}
    outs: Dict[str, Dict[str, PortSpec]] = {g: {} for g in plans}

    def slices(members, width_of):
        out, start = [], 0
        for m in members:
            out.append((m, start, start + width_of(m)))
            start += width_of(m)
        return tuple(out), start

    for proc, members in groups.items():
        enc = {owner[encoder_of(graph, m)] for m in members}
        if len(enc) != 1:
            raise ValueError(f"{proc}: its members are encoded in different host blocks")
        enc = enc.pop()
        first = nodes[members[0]]
        src = next(iter(graph.inputs(first.name).values()))
        if nodes[src].placement.where == ir.HOST:
            mem, width = slices(members, lambda m: nodes[next(iter(graph.inputs(m).values()))].dim)
            outs[enc][f"to_{_safe(proc)}"] = PortSpec(f"to_{_safe(proc)}", width, "int", "to_chip", proc, mem)
        if isinstance(first, ir.LIF):
            outs[enc][f"gate_{_safe(proc)}"] = PortSpec(f"gate_{_safe(proc)}", 1, "int", "gate", proc,
                                                      ((first.name, 0, 1),))
        consumers = {owner[e.dst] for m in members for e in graph.consumers(m)
                     if nodes[e.dst].placement.where == ir.HOST}
        if probes and not consumers and isinstance(first, ir.Projection):
            mem, width = slices(members, lambda m: nodes[m].dim)
            ins[enc][f"probe_{_safe(proc)}"] = PortSpec(f"probe_{_safe(proc)}", width, "int", "probe", proc, mem)
        for g in consumers:
            if g != enc:
                raise ValueError(f"{proc}: its encoder and its consumers are in different host blocks")
            mem, width = slices(members, lambda m: nodes[m].dim)
            ins[g][f"from_{_safe(proc)}"] = PortSpec(f"from_{_safe(proc)}", width, "int", "from_chip", proc, mem)
    for e in graph.edges:
        s, d = nodes[e.src], nodes[e.dst]
        if s.placement.where == ir.HOST and d.placement.where == ir.HOST and owner[e.src] != owner[e.dst]:
            p = f"h_{_safe(e.src)}"
            outs[owner[e.src]][p] = PortSpec(p, s.dim + 1, "float", "host_out", e.src)
            ins[owner[e.dst]][p] = PortSpec(p, s.dim + 1, "float", "host_in", e.src)
    return [HostPlan(g, tuple(names), tuple(ins[g].values()), tuple(outs[g].values()))
            for g, names in plans.items()]


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
        from spike2loihi.execute import model_emulator as execute

        self.ex = execute
        self.plan = plan
        self.model = model
        self.graph = model.graph
        self.params = execute.Params(model)
        self.sched = schedule(self.graph)
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
            if isinstance(n, ir.Embedding):
                tok, valid = self._token(s)
                ins["token"] = np.array([tok])
            if isinstance(n, ir.Sampler):
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
        delay = self.off[n.name] - self.off[src] - latency(node)
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
            if isinstance(mnode, ir.LIF):
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
        if s < len(self.prompt):
            return self.prompt[s], True
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


# ---------------------------------------------------------------------------
# The graph
# ---------------------------------------------------------------------------
@dataclass
class LavaGraph:
    schedule: Schedule
    plans: List[HostPlan]
    procs: Dict[str, object]                 # IR chip node / host plan name -> Lava process
    model_map: Dict[object, type] = field(default_factory=dict)   # process instance -> ProcessModel class
    records: Optional[Records] = None
    boundaries: Tuple = ()                   # hardware graphs: the host/chip crossings (spike2loihi.lava.hw.Boundary)

    @property
    def anchor(self):
        return self.procs[IO_PLAN]

    def process_count(self) -> int:
        return len(self.procs)


def build(model: ConvertedModel, records: Records, run_args: dict,
          connect: Optional[Callable[[object, object], None]] = None) -> LavaGraph:
    """The Lava processes and connections of a converted model (nothing runs yet).

    With `run_args["probes"]` chip-to-chip outputs are also sent to the host, which counts them
    (the activity report's counts from the simulator).

    Every connection is made by `connect(out_port, in_port)` (default: `out_port.connect(in_port)`);
    the hardware builder (`spike2loihi.lava.hw`) passes one that puts Lava's embedded-IO adapters
    on the host/chip boundary.
    """
    if ir.placement_of(model.graph) == ir.CHIP:
        from spike2loihi.lava.build_chip import build_chip

        return build_chip(model, records, run_args, connect)
    link = connect or (lambda src, dst: src.connect(dst))
    import scipy.sparse
    from lava.proc.dense.process import Dense
    from lava.proc.sparse.process import Sparse
    from lava.utils.weightutils import SignMode as LavaSignMode

    from spike2loihi.lava.processes import PyTokenLifModel, TokenLIF, host_block_classes

    g = model.graph
    sched = schedule(g)
    groups = chip_groups(model)
    plans = host_plans(g, groups, probes=bool(run_args.get("probes")))
    procs: Dict[str, object] = {}
    model_map: Dict[object, type] = {}
    for plan in plans:
        proc_cls, model_cls = host_block_classes(plan)
        p = proc_cls(plan=plan, model=model, records=str(records.folder), run_args=run_args)
        procs[plan.name] = p
        model_map[p] = model_cls
    for proc, members in groups.items():
        n = g.nodes[members[0]]
        qn = model.nodes[n.name]
        if isinstance(n, ir.Projection):
            ws = [(model.tensors[model.nodes[m]["mantissa"]].astype(np.int64)
                   << int(model.nodes[m]["truncate_bits"])).astype(np.int32) for m in members]
            kw = dict(weight_exp=int(qn["weight_exp"]), num_weight_bits=int(qn["num_weight_bits"]),
                      sign_mode=LavaSignMode[qn["sign_mode"]], num_message_bits=int(qn["input"]["bits"]),
                      name=proc)
            if len(ws) == 1:
                procs[proc] = Dense(weights=ws[0], **kw)
            else:   # side by side: one block-diagonal Sparse (same weight_exp and input bits by conversion)
                procs[proc] = Sparse(weights=scipy.sparse.block_diag(ws, format="csr", dtype=np.int32), **kw)
        elif isinstance(n, ir.LIF):
            lif = TokenLIF(shape=(n.dim,), du=int(qn["du"]), dv=int(qn["dv"]), vth=int(qn["vth"]),
                           bias_mant=int(qn["bias_mant"]), bias_exp=int(qn["bias_exp"]), name=n.name)
            procs[proc] = lif
            model_map[lif] = PyTokenLifModel
    for plan in plans:
        hp = procs[plan.name]
        for port in plan.out_ports:
            out = getattr(hp, port.name)
            first = g.nodes[port.members[0][0]] if port.members else None
            if port.kind == "to_chip":
                chip = procs[port.node]
                link(out, chip.s_in if isinstance(first, ir.Projection) else chip.a_in)
            elif port.kind == "gate":
                link(out, procs[port.node].gate)
            elif port.kind == "host_out":
                for other in plans:
                    if other.name != plan.name and any(p.name == port.name for p in other.in_ports):
                        link(out, getattr(procs[other.name], port.name))
        for port in plan.in_ports:
            if port.kind in ("from_chip", "probe"):
                chip = procs[port.node]
                first = g.nodes[port.members[0][0]]
                link(chip.a_out if isinstance(first, ir.Projection) else chip.s_out, getattr(hp, port.name))
    for e in g.edges:   # chip -> chip (Wo -> LIF)
        if g.nodes[e.src].placement.where == ir.CHIP and g.nodes[e.dst].placement.where == ir.CHIP:
            link(procs[e.src].a_out, procs[e.dst].a_in)
    return LavaGraph(sched, plans, procs, model_map, records)
