"""One RNN step of a SpikeGPT as an ONNX graph: the float model, or the converted one.

    proto = export_checkpoint(spec, spec.semantics("run"))    # the float model (= reference.py)
    proto = export_artifact(artifact.load("model.s2l"))        # the converted model (= execute.py)
    data = to_bytes(proto)                                     # onnx.checker full check, then bytes

The exporter walks the IR (`spike2loihi.convert.ir`) in execution order and asks,
for the ONNX nodes of each op, the `spike2loihi.registry` stage of the arithmetic it
is exported in (handlers registered per IR op type, found along the type's MRO).
Three arithmetics: FLOAT (the float reference's torch ops, reference.py; stage
`onnx.float`), HOST (host_ops.py's numpy float32 formulas; `onnx.host`) and
INTEGER (Lava's fixed point, the emulator; `onnx.integer`), each with a stage of
state variables beside it (`onnx.float.state`, ...). The float export uses FLOAT
for every op; the converted export uses HOST for host ops and INTEGER for chip
ops, with the encodings and decodings of execute.py at every host<->chip crossing.

The modules: this one holds the public API, the constants and metadata keys and
the export driver (`_Export`: the walk, the state inputs and outputs, the crossings,
the probes); `onnx_builder` the generic ONNX graph builder (`_OnnxGraph`, numpy's
pairwise sum in ONNX); `onnx_emitters` the per-op emitters, state variables,
encoders and decoders, and the arithmetic of each (float, host float32, Lava's
integers) and why it is exact; `onnx_draw` the picture of a block
(`block_groups`, `draw_block`).

Every ONNX node carries a doc string and metadata (`s2l.ir_node`, `s2l.ir_op`,
`s2l.layer`, `s2l.placement`, `s2l.reason`, `s2l.role` = op, encode, decode or
output) naming the IR op it belongs to and where the converter places that op
(chip or host, and why), so that Netron shows the partition node by node
(`block_groups` / `draw_block` read it back). The model's metadata
(`spike2loihi.*`, the `M_*` keys) carries the kind of export, config,
semantics, the state layout, the source's sha256, the artifact's sha256,
format version and bit widths, and the tokenizer (so `spike2loihi run
OUT.onnx --prompt` works).

Graph interface (batch is a symbolic dimension):

* inputs: `token` int64 [batch]; one tensor per state variable of an IR node,
  named `<node>/<var>` as `spike2loihi.execute.model_emulator.flatten_state` names them:
  `blocks.i.att.shift/prev`, `blocks.i.ffn.shift/prev` (token shift),
  `blocks.i.att.wkv/aa`, `/bb`, `/pp` (WKV numerator, denominator, max) as
  float32 [batch, C]; the LIF membranes `blocks.i.{att,ffn}.lif/v` float32 in
  the float export, and `.../u`, `.../v` **int64** in the converted export
  (exact integers on Lava's grid, carried as int64 so that every integer op
  is an integer op).
* outputs: `logits` float32 [batch, V], `att_spikes` and `ffn_spikes` float32
  0/1 [batch, L, C], and `<node>/<var>.next` for every state input.
  The `spike2loihi.state` metadata lists the state tensors with their dtype,
  width and initial value (`pp` starts at -1e30, everything else at 0).

How each op is computed (float export against the float reference, converted
export against the emulator, op for op, and what is bit-identical): see
`spike2loihi.export.onnx_emitters`.
"""
from __future__ import annotations

import json
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import onnx
from onnx import TensorProto, helper

from spike2loihi import __version__
from spike2loihi.convert import ir
# Re-exported: part of this module's API (`OX.ExportError`, `OX.Payload`, the arithmetics FLOAT, HOST and
# INTEGER and their stages, ...).
from spike2loihi.export.onnx_builder import _ONNX_DTYPE, ExportError, _OnnxGraph, numpy_pairwise_mean  # noqa: F401
from spike2loihi.export.onnx_draw import block_groups, draw_block  # noqa: F401
from spike2loihi.export.onnx_emitters import (ENCODERS, FLOAT, HOST, INTEGER, ONNX_FLOAT,  # noqa: F401
                                              ONNX_FLOAT_STATE, ONNX_HOST, ONNX_HOST_STATE, ONNX_INTEGER,
                                              ONNX_INTEGER_STATE, Arithmetic, Payload, _ConvertedParams,
                                              _FloatParams, decoder)

FORMAT = "spike2loihi-onnx-step"
FORMAT_VERSION = 1
MIN_OPSET = 13          # Split/Squeeze/Unsqueeze take their sizes and axes as inputs
MAX_OPSET = 23          # the newest opset this onnxruntime (1.23) runs
DEFAULT_OPSET = 17      # widely supported by runtimes and converters
MIN_IR_VERSION = 10     # node metadata_props (the placement shown in Netron)
KIND_FLOAT, KIND_CONVERTED = "float", "converted"

TOKEN, LOGITS, ATT_SPIKES, FFN_SPIKES = "token", "logits", "att_spikes", "ffn_spikes"
PROBE_PREFIX = "probe:"

# Model metadata keys.
M_FORMAT = "spike2loihi.format"
M_FORMAT_VERSION = "spike2loihi.format_version"
M_KIND = "spike2loihi.kind"                      # float | converted
M_TOOLCHAIN = "spike2loihi.toolchain_version"
M_CONFIG = "spike2loihi.config"                  # JSON: n_layer, n_embd, vocab_size
M_SEMANTICS = "spike2loihi.semantics"            # JSON: name, binary_embedding, rescale_layer
M_STATE = "spike2loihi.state"                    # JSON list: name, node, var, dtype, dim, init
M_PLACEMENT = "spike2loihi.placement"            # JSON: IR ops on chip / host, crossings per token
M_SOURCE_PATH = "spike2loihi.source_path"
M_SOURCE_SHA256 = "spike2loihi.source_sha256"    # the checkpoint's
M_SOURCE_FORMAT = "spike2loihi.source_format"
M_ARTIFACT_PATH = "spike2loihi.artifact_path"
M_ARTIFACT_SHA256 = "spike2loihi.artifact_sha256"
M_ARTIFACT_FORMAT_VERSION = "spike2loihi.artifact_format_version"
M_WEIGHT_BITS = "spike2loihi.weight_bits"
M_ACT_BITS = "spike2loihi.act_bits"
M_LIF_INPUT_BITS = "spike2loihi.lif_input_bits"
M_QUANTIZATION = "spike2loihi.quantization"      # JSON: the manifest's quantization options
M_TOKENIZER = "spike2loihi.tokenizer"            # the tokenizer file's text (char vocab or tokenizers JSON)
M_TOKENIZER_KIND = "spike2loihi.tokenizer_kind"
M_TOKENIZER_NAME = "spike2loihi.tokenizer_name"

_PROTOBUF_LIMIT = 2 ** 31 - 1


def state_input(node: str, var: str) -> str:
    return f"{node}/{var}"


def state_output(node: str, var: str) -> str:
    return f"{node}/{var}.next"


# ---------------------------------------------------------------------------
# The walk
# ---------------------------------------------------------------------------
def _meta(node: ir.Op, role: str, where: Optional[str] = None, reason: Optional[str] = None) -> Dict[str, str]:
    layer = "" if node.layer is None else str(node.layer)
    return {"s2l.ir_node": node.name, "s2l.ir_op": node.kind, "s2l.layer": layer,
            "s2l.placement": where or node.placement.where, "s2l.reason": reason or node.placement.reason,
            "s2l.role": role}


def _doc(meta: Dict[str, str], arith: str) -> str:
    what = {"op": f"IR op {meta['s2l.ir_node']} ({meta['s2l.ir_op']})",
            "encode": f"host->chip crossing into {meta['s2l.ir_node']} ({meta['s2l.ir_op']})",
            "decode": f"chip->host crossing out of {meta['s2l.ir_node']} ({meta['s2l.ir_op']})",
            "state": f"state of {meta['s2l.ir_node']} ({meta['s2l.ir_op']})",
            "output": "step outputs"}[meta["s2l.role"]]
    return f"{what}; placement: {meta['s2l.placement']} ({meta['s2l.reason']}); arithmetic: {arith}"


class _Export:
    """One export in progress: the graph, the parameter source, the state and the probes."""

    def __init__(self, graph: ir.Graph, params, kind: str, opset: int, probes: bool):
        if not MIN_OPSET <= int(opset) <= MAX_OPSET:
            raise ExportError(f"opset {opset} is outside {MIN_OPSET}..{MAX_OPSET} (this exporter's ops need "
                              f">= {MIN_OPSET}; onnxruntime here runs up to {MAX_OPSET})")
        self.ir = graph
        self.params = params
        self.kind = kind
        self.g = _OnnxGraph(opset)
        self.probes = probes
        self.state: List[dict] = []
        self.probe_outputs: List[Tuple[str, str, int]] = []

    def arith(self, node: ir.Op) -> Arithmetic:
        return self.params.arith_chip if node.placement.where == ir.CHIP else self.params.arith_host

    def param(self, key: str) -> str:
        return self.g.init(key, self.params.host(key))

    def _probe(self, name: str, value, dtype: int = TensorProto.FLOAT) -> None:
        if not self.probes:
            return
        if isinstance(value, Payload):
            self._probe(name, value.q, TensorProto.INT64)
            if value.scale is not None:
                self._probe(name + ".scale", value.scale)
            return
        out = self.g.identity(value, PROBE_PREFIX + name)
        self.probe_outputs.append((out, name, dtype))

    def _value(self, vals: dict, node: ir.Op, src_name: str):
        """The value of `src_name` as `node` receives it: encoded or decoded at a crossing (converted only)."""
        v = vals[src_name]
        src = self.ir.nodes[src_name]
        if self.kind == KIND_FLOAT or src.placement.where == node.placement.where:
            return v
        if node.placement.where == ir.CHIP:
            enc = self.params.q[node.name].input
            meta = _meta(node, "encode", ir.HOST,
                         f"host_ops.encode_{enc.encoding}: a host value as the {enc.bits}-bit graded payload "
                         f"of chip node {node.name}")
            encoder = ENCODERS.get(enc.encoding)
            if encoder is None:
                raise ExportError(f"cannot export {node.name}: input encoding {enc.encoding!r} has no ONNX form")
            with self.g.scope(node.name + ".in", _doc(meta, FLOAT.name), meta):
                p = encoder(self, node, v, enc)
            self._probe(node.name + ".in", p)
            return p
        with self.g.scope(src.name + ".out", *self._decode_scope(src)):
            return self._decoder(src)(self, src, v)

    def _decoder(self, src: ir.Op) -> Callable:
        fn = decoder(src)
        if fn is None:
            raise ExportError(f"cannot export {src.name}: the output of chip op {src.kind!r} has no host decoding")
        return fn

    def _state_inputs(self, node: ir.Op, arith: Arithmetic) -> Dict[str, str]:
        st = {}
        for var, dtype, init in arith.state_vars(self, node):
            name = state_input(node.name, var)
            et = _ONNX_DTYPE[np.dtype(dtype)]
            self.g.inputs.append(helper.make_tensor_value_info(name, et, ["batch", node.dim]))
            self.state.append({"name": name, "next": state_output(node.name, var), "node": node.name, "var": var,
                               "layer": node.layer, "dtype": np.dtype(dtype).name, "dim": node.dim,
                               "init": float(init) if np.dtype(dtype).kind == "f" else int(init)})
            st[var] = name
        return st

    def run(self, progress: Optional[Callable[[int, int], None]] = None) -> None:
        g, graph = self.g, self.ir
        g.inputs.append(helper.make_tensor_value_info(TOKEN, TensorProto.INT64, ["batch"]))
        order = [n for n in graph.nodes.values() if n.per_token]     # the sampler is outside the step
        vals: Dict[str, object] = {}
        for i, n in enumerate(order):
            arith = self.arith(n)
            fn = arith.emitter(n)
            st = self._state_inputs(n, arith)
            ins = {port: self._value(vals, n, src) for port, src in graph.inputs(n.name).items()}
            if TOKEN in n.ports:          # the embedding reads the graph's token input
                ins[TOKEN] = TOKEN
            meta = _meta(n, "op")
            with g.scope(n.name, _doc(meta, arith.name), meta):
                vals[n.name] = fn(self, n, ins, st)
                for var, name in st.items():
                    g.identity(name, state_output(n.name, var))
            self._probe(n.name, vals[n.name])
            if progress:
                progress(i + 1, len(order))
        head = ir.logits_node(graph)
        lifs = ir.lif_nodes(graph)
        meta = {"s2l.ir_node": "", "s2l.ir_op": "", "s2l.layer": "", "s2l.placement": ir.HOST,
                "s2l.reason": "the step's outputs, as the runner interface returns them", "s2l.role": "output"}
        with g.scope("outputs", _doc(meta, FLOAT.name), meta):
            logits = vals[head.name]
            if isinstance(logits, Payload):
                with g.scope(head.name + ".out", *self._decode_scope(head)):
                    logits = self._decoder(head)(self, head, logits)
            g.identity(logits, LOGITS)
            for out, pop in ((ATT_SPIKES, "att"), (FFN_SPIKES, "ffn")):
                parts = []
                for n in lifs:
                    if n.population != pop:
                        continue
                    s = vals[n.name]
                    if isinstance(s, Payload):
                        with g.scope(n.name + ".out", *self._decode_scope(n)):
                            s = self._decoder(n)(self, n, s)
                    parts.append(g.unsqueeze(s, 1))
                g.identity(g.op("Concat", parts, axis=1) if len(parts) > 1 else parts[0], out)
        L = graph.meta.get("config", {}).get("n_layer", len(lifs) // 2)
        C = lifs[0].dim if lifs else 0
        g.outputs.append(helper.make_tensor_value_info(LOGITS, TensorProto.FLOAT, ["batch", head.dim]))
        g.outputs.append(helper.make_tensor_value_info(ATT_SPIKES, TensorProto.FLOAT, ["batch", L, C]))
        g.outputs.append(helper.make_tensor_value_info(FFN_SPIKES, TensorProto.FLOAT, ["batch", L, C]))
        for s in self.state:
            g.outputs.append(helper.make_tensor_value_info(s["next"], _ONNX_DTYPE[np.dtype(s["dtype"])],
                                                           ["batch", s["dim"]]))
        for out, _, dtype in self.probe_outputs:
            g.outputs.append(helper.make_tensor_value_info(out, dtype, ["batch", None]))

    def _decode_scope(self, src: ir.Op):
        meta = _meta(src, "decode", ir.HOST, f"host_ops decode of chip node {src.name}'s output for the host")
        return _doc(meta, FLOAT.name), meta

    def model(self, doc: str, meta: Dict[str, str]) -> onnx.ModelProto:
        g = self.g
        graph = helper.make_graph(g.nodes, "spikegpt_step", g.inputs, g.outputs, list(g.inits.values()), doc_string=doc)
        opsets = [helper.make_opsetid("", g.opset)]
        proto = helper.make_model(graph, opset_imports=opsets, producer_name="spike2loihi",
                                  producer_version=__version__, doc_string=doc)
        proto.ir_version = max(MIN_IR_VERSION, helper.find_min_ir_version_for(opsets))
        meta = dict(meta)
        meta.update({M_FORMAT: FORMAT, M_FORMAT_VERSION: str(FORMAT_VERSION), M_KIND: self.kind,
                     M_TOOLCHAIN: __version__, M_STATE: json.dumps(self.state),
                     M_PLACEMENT: json.dumps(_placement_summary(self.ir))})
        helper.set_model_props(proto, {k: str(v) for k, v in meta.items() if v is not None})
        return proto


def _placement_summary(graph: ir.Graph) -> dict:
    counts = graph.placement_counts()
    cross = graph.crossings()
    to_chip = sum(1 for e in cross if graph.nodes[e.dst].placement.where == ir.CHIP)
    return {"chip_ops": counts[ir.CHIP], "host_ops": counts[ir.HOST], "crossings_per_token": len(cross),
            "host_to_chip": to_chip, "chip_to_host": len(cross) - to_chip}


def _tokenizer_meta(tok) -> Dict[str, str]:
    if tok is None:
        return {}
    text = tok.to_json_text() if tok.kind == "char" else tok.tok.to_str()
    name = str(getattr(tok, "path", "") or "").replace("\\", "/").rsplit("/", 1)[-1]
    return {M_TOKENIZER: text, M_TOKENIZER_KIND: tok.kind, M_TOKENIZER_NAME: name}


_FLOAT_DOC = ("One RNN step of the float SpikeGPT ({sem} semantics), as spike2loihi's float reference computes it. "
              "Feed token and state, get logits, spikes and the next state (spike2loihi.state lists it). "
              "Every node names its IR op and where the converter places it (chip or host, and why).")
_CONVERTED_DOC = ("One RNN step of the converted SpikeGPT (Loihi 2 graded mapping): chip Dense and LIF in Lava's "
                  "exact integer arithmetic (int64 tensors; Dense products in floating point on exact integers), "
                  "host ops in float32 as spike2loihi.execute.host_ops. Every node names its IR op and its placement "
                  "(chip or host, and why).")


def export_checkpoint(spec, semantics, opset: int = DEFAULT_OPSET, source: Optional[dict] = None,
                      tokenizer=None, probes: bool = False,
                      progress: Optional[Callable[[int, int], None]] = None) -> onnx.ModelProto:
    """The float model of a checkpoint (`ModelSpec`) under `semantics`, one step, as ONNX.

    `source`: {"path", "sha256", "format"} of the checkpoint file (recorded in the metadata);
    `tokenizer` overrides spec.tokenizer; `probes` adds an output per IR node (tests).
    """
    graph = ir.build_graph(spec.config, semantics)
    ex = _Export(graph, _FloatParams(spec, semantics), KIND_FLOAT, opset, probes)
    ex.run(progress)
    src = source or {}
    meta = {M_CONFIG: json.dumps(spec.config.to_dict()), M_SEMANTICS: json.dumps(semantics.to_dict()),
            M_SOURCE_PATH: src.get("path"), M_SOURCE_SHA256: src.get("sha256"),
            M_SOURCE_FORMAT: src.get("format") or spec.source_format}
    meta.update(_tokenizer_meta(tokenizer if tokenizer is not None else spec.tokenizer))
    return ex.model(_FLOAT_DOC.format(sem=semantics.name), meta)


def export_artifact(model, opset: int = DEFAULT_OPSET, artifact_info: Optional[dict] = None, tokenizer=None,
                    probes: bool = False, progress: Optional[Callable[[int, int], None]] = None) -> onnx.ModelProto:
    """The converted model (`artifact.ConvertedModel`), one step, as ONNX: what the emulator computes.

    `artifact_info`: {"path", "sha256"} of the .s2l file; `tokenizer` overrides the stored one.
    """
    from spike2loihi.convert import artifact as A

    ex = _Export(model.graph, _ConvertedParams(model), KIND_CONVERTED, opset, probes)
    ex.run(progress)
    m = model.manifest
    src = m.get(A.K_SOURCE) or {}
    q = m.get(A.K_QUANT_CONFIG) or {}
    info = artifact_info or {}
    from converters.tokenizer import artifact_tokenizer
    tok = tokenizer if tokenizer is not None else artifact_tokenizer(model)
    meta = {M_CONFIG: json.dumps(m[A.K_CONFIG]), M_SEMANTICS: json.dumps(m[A.K_SEMANTICS]),
            M_SOURCE_PATH: src.get("path"), M_SOURCE_SHA256: src.get("sha256"), M_SOURCE_FORMAT: src.get("format"),
            M_ARTIFACT_PATH: info.get("path"), M_ARTIFACT_SHA256: info.get("sha256"),
            M_ARTIFACT_FORMAT_VERSION: str(m.get(A.K_FORMAT, "")),
            M_WEIGHT_BITS: q.get("weight_bits"), M_ACT_BITS: q.get("act_bits"),
            M_LIF_INPUT_BITS: q.get("lif_input_bits"), M_QUANTIZATION: json.dumps(q)}
    meta.update(_tokenizer_meta(tok))
    return ex.model(_CONVERTED_DOC, meta)


def check(proto: onnx.ModelProto) -> None:
    """onnx.checker.check_model with full_check (strict shape inference); one-line ExportError."""
    size = proto.ByteSize()
    if size > _PROTOBUF_LIMIT:
        raise ExportError(f"the ONNX model would be {size / 2**30:.2f} GiB, beyond protobuf's 2 GiB limit "
                          "(external data is not supported by this exporter yet)")
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"the exported graph fails onnx.checker: {first}") from None


def to_bytes(proto: onnx.ModelProto) -> bytes:
    """Checked (full) and serialised."""
    check(proto)
    return proto.SerializeToString()


def save(proto: onnx.ModelProto, path) -> None:
    """Check, then write atomically (a temporary file beside `path`, then rename)."""
    from pathlib import Path

    from spike2loihi.fileio import atomic_path

    data = to_bytes(proto)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def metadata(proto: onnx.ModelProto) -> Dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


def node_counts(proto: onnx.ModelProto) -> Dict[str, int]:
    """ONNX nodes per IR node (crossings under `<chip node>.in` / `<chip node>.out`)."""
    out: Dict[str, int] = {}
    for n in proto.graph.node:
        md = {p.key: p.value for p in n.metadata_props}
        key = md.get("s2l.ir_node") or "outputs"
        role = md.get("s2l.role")
        key = key + (".in" if role == "encode" else ".out" if role == "decode" else "")
        out[key] = out.get(key, 0) + 1
    return out
