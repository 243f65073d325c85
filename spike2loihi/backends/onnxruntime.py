"""The `onnxruntime` backend: an exported step graph (`spike2loihi export --format onnx`) on the CPU.

The file says everything the runner needs in its metadata (`spike2loihi.export.onnx.M_*`):
config, semantics, the state tensors with their dtype, width and initial value, and the
tokenizer. The state is a dict of numpy arrays named like the graph's state inputs
(`blocks.0.att.wkv/aa`, ...); `step` feeds it with the token and replaces each entry by
its `.next` output, in place, as the other backends update theirs.

Sessions run with onnxruntime's default graph optimizations (constant folding turns the
int8 weight mantissas into the MatMul's dtype once) and one intra-op thread: a step is a
chain of small ops, which more threads only slow down.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, Sequence, Union

import numpy as np

from spike2loihi.errors import BackendError

SUFFIX = ".onnx"


def is_onnx(path) -> bool:
    """ONNX files are recognised by their suffix (protobuf has no magic number)."""
    return str(path).lower().endswith(SUFFIX)


def _ort_message(exc: Exception) -> str:
    """onnxruntime's message without its error-code prefix and C++ source location."""
    text = str(exc).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    m = re.search(r"\S+\.(?:cc|h|cpp):\d+ (?:\S+\(.*?\) )?(.*)$", text)
    return m.group(1) if m and m.group(1) else text


class OnnxRuntimeBackend:
    """`initial_state()` / `step(token, state)` over an exported .onnx step graph."""

    name = "onnxruntime"

    def __init__(self, model: Union[str, Path, bytes], threads: int = 1):
        import onnxruntime as ort

        from spike2loihi.export import onnx as OX

        where = "the ONNX model" if isinstance(model, (bytes, bytearray)) else str(model)
        if not isinstance(model, (bytes, bytearray)):
            path = Path(model)
            if not path.exists():
                raise BackendError(f"{path}: no such file")
            if path.is_dir():
                raise BackendError(f"{path}: is a directory, expected an .onnx model file")
            model = str(path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own pybind classes (Fail, InvalidProtobuf, ...)
            raise BackendError(f"{where}: onnxruntime cannot load it ({_ort_message(exc)})") from None
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        if meta.get(OX.M_FORMAT) != OX.FORMAT:
            raise BackendError(f"{where}: an ONNX model, but not a spike2loihi step graph (no {OX.M_FORMAT} "
                               "metadata); export one with `spike2loihi export MODEL --format onnx -o OUT.onnx`")
        version = int(meta.get(OX.M_FORMAT_VERSION, "0") or 0)
        if version > OX.FORMAT_VERSION:
            raise BackendError(f"{where}: step-graph format {version} is newer than this spike2loihi reads "
                               f"({OX.FORMAT_VERSION}); upgrade spike2loihi")
        from spike2loihi.model.spec import ModelConfig, Semantics

        self.metadata = meta
        self.kind = meta.get(OX.M_KIND, "")
        self.config = ModelConfig(**json.loads(meta[OX.M_CONFIG]))
        self.semantics = Semantics(**json.loads(meta[OX.M_SEMANTICS]))
        self.state_spec = json.loads(meta[OX.M_STATE])
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._ox = OX

    def tokenizer(self):
        """The tokenizer stored in the file, or None."""
        OX = self._ox
        text = self.metadata.get(OX.M_TOKENIZER)
        if not text:
            return None
        from converters.tokenizer import tokenizer_from_bytes

        return tokenizer_from_bytes(text.encode("utf-8"), name=self.metadata.get(OX.M_TOKENIZER_NAME, ""))

    def initial_state(self, batch: int = 1) -> Dict[str, np.ndarray]:
        return {s["name"]: np.full((batch, s["dim"]), s["init"], dtype=np.dtype(s["dtype"])) for s in self.state_spec}

    def run(self, tokens: Sequence[int], state: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """One step for a batch of tokens; updates `state` in place; returns every output by name."""
        feeds = {self._ox.TOKEN: np.asarray(tokens, dtype=np.int64).reshape(-1)}
        feeds.update({s["name"]: state[s["name"]] for s in self.state_spec})
        outs = dict(zip(self.output_names, self.session.run(None, feeds)))
        for s in self.state_spec:
            state[s["name"]] = outs[s["next"]]
        return outs

    def step(self, token: int, state: Dict[str, np.ndarray]):
        import torch

        from spike2loihi.model.reference import StepOutput

        OX = self._ox
        outs = self.run([int(token)], state)
        return StepOutput(torch.from_numpy(outs[OX.LOGITS][0].copy()), torch.from_numpy(outs[OX.ATT_SPIKES][0].copy()),
                          torch.from_numpy(outs[OX.FFN_SPIKES][0].copy()))
