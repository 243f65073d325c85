"""One runner interface for every place a model can execute.

A backend is a `StepBackend` (`config`, `initial_state()` and `step(token, state) ->
StepOutput`: logits [V], att_spikes [L, C], ffn_spikes [L, C], as the float reference
does) or a `RequestBackend` (`teacher_forced`, `generate`: a whole request at once), so
`spike2loihi.backends.generate` and `spike2loihi.reports.evaluate` drive them all the
same way. `open_backend(name, path)` opens one (a new backend: a module here, a row in
the table and a branch of `open_backend`):

| name | runs | module |
|---|---|---|
| `torch` | the float reference of a checkpoint (or of the checkpoint an artifact came from) | `spike2loihi.model.reference` |
| `emulator` | a converted artifact, bit-exact Lava integer arithmetic + host_ops | `backends.emulator` |
| `lava-sim` | a converted artifact as a Lava process graph in Lava's CPU simulator | `backends.lava_sim` |
| `onnxruntime` | an exported `.onnx` step graph (float or converted) in onnxruntime's CPU provider | `backends.onnxruntime` |
| `loihi2` | a converted artifact's Lava graph on a Loihi 2 board (`Loihi2HwCfg`, needs INRC's lava-loihi; never run on a board here) | `backends.loihi2` |

Only the Lava backends import Lava (inside `spike2loihi.lava`). `lava-sim` and `loihi2` run a
whole request at once (`teacher_forced`, `generate`) instead of `step`; `loihi2` needs its
`Loihi2Options` (the host) and checks them, lava-nc and lava-loihi before the model is loaded.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, List, Optional, Protocol, runtime_checkable

from spike2loihi.errors import BackendError

BACKENDS = ("torch", "emulator", "lava-sim", "onnxruntime", "loihi2")


@runtime_checkable
class StepBackend(Protocol):
    """A backend that runs one token at a time (torch, emulator, onnxruntime)."""

    name: str
    config: Any        # spike2loihi.model.spec.ModelConfig

    def initial_state(self) -> Any: ...

    def step(self, token: int, state: Any) -> Any:
        """One token: a `spike2loihi.model.reference.StepOutput` (logits [V], att/ffn spikes [L, C]);
        `state` is updated in place."""


@runtime_checkable
class RequestBackend(Protocol):
    """A backend that runs a whole request at once (lava-sim, loihi2: the graph pipelines the prompt and
    generates inside the running graph)."""

    name: str
    config: Any

    def teacher_forced(self, tokens: List[int], progress: Optional[Callable[[int, int], None]] = None) -> Any:
        """(logits [T, V], att spikes [T, L, C], ffn spikes [T, L, C]) for every token."""

    def generate(self, prompt: List[int], max_new_tokens: int, greedy: bool, temperature: float, top_p: float,
                 seed: int, **kwargs) -> Any:
        """A `spike2loihi.backends.generate.RunResult`, as the step-wise backends give."""


def source_checkpoint(model, checkpoint: Optional[str] = None):
    """The float ModelSpec an artifact was converted from, verified by sha256.

    `checkpoint` overrides the path kept in the manifest.
    """
    from converters.spikegpt import load_checkpoint
    from spike2loihi.convert.artifact import K_SOURCE, sha256_file

    from spike2loihi.inputs import check_input_file, regular_file

    src = model.manifest.get(K_SOURCE) or {}
    if not isinstance(src, dict):
        src = {}
    recorded = src.get("path") if isinstance(src.get("path"), str) else None
    path = Path(checkpoint) if checkpoint else (Path(recorded) if recorded else None)
    if path is None:
        raise BackendError("the artifact records no source checkpoint; give --checkpoint PATH")
    if not checkpoint and not os.path.lexists(path):
        raise BackendError(f"source checkpoint {path} is gone (the artifact was converted from it); "
                           "give --checkpoint PATH to point elsewhere")
    if not checkpoint and not regular_file(path):   # a path from inside the artifact: never opened otherwise
        raise BackendError(f"the artifact's source checkpoint {path} is not a regular file; give --checkpoint "
                           "PATH")
    check_input_file(path, "--checkpoint" if checkpoint else "source checkpoint")
    want = src.get("sha256")
    if not isinstance(want, str) or len(want) != 64:
        raise BackendError("the artifact records no sha256 of its source checkpoint, so the float reference "
                           "cannot be verified to be the model it was converted from; convert again")
    got = sha256_file(path)
    if got != want:
        raise BackendError(f"{path}: sha256 {got[:12]}... differs from the artifact's source "
                           f"{want[:12]}...: not the checkpoint this model was converted from")
    spec = load_checkpoint(path, find_tokenizer=False)
    from converters.tokenizer import artifact_tokenizer
    tok = artifact_tokenizer(model)
    if tok is not None:
        spec.tokenizer = tok
    return spec


def open_backend(name: str, path, checkpoint: Optional[str] = None, semantics: Optional[str] = None,
                 tokenizer_path: Optional[str] = None, loihi2=None):
    """A backend for a checkpoint or a .s2l artifact. Returns (backend, tokenizer or None).

    `loihi2`: the `backends.loihi2.Loihi2Options` of the loihi2 backend (checked before loading).
    """
    from spike2loihi.convert import artifact

    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    from spike2loihi.inputs import check_input_file

    check_input_file(path)   # a named pipe or a device is refused unread
    from spike2loihi.backends.onnxruntime import is_onnx

    if is_onnx(path) or name == "onnxruntime":
        return _open_onnx(name, path, semantics, tokenizer_path)
    if artifact.is_artifact(path):
        if name == "loihi2":
            from spike2loihi.backends.loihi2 import HostSelectionError, ensure_prepared

            if loihi2 is None:
                raise HostSelectionError("the loihi2 backend needs a Loihi 2 host: pass --partition P, --board B "
                                         "or --ethernet-host H")
            ensure_prepared(loihi2)   # options, lava-nc, lava-loihi and the host: before the model is loaded
        model = artifact.load(path)
        if name == "loihi2":
            artifact.require_host_placement(model, path, f"--backend {name}")
        if semantics is not None and semantics != model.semantics.name:
            raise BackendError(f"{path} was converted with --semantics {model.manifest['semantics']['name']}; "
                               f"convert again for {semantics}")
        from converters.tokenizer import artifact_tokenizer
        tok = artifact_tokenizer(model)
        if tokenizer_path:
            from converters.tokenizer import load_tokenizer

            tok = load_tokenizer(tokenizer_path)
        if name == "emulator":
            from spike2loihi.backends.emulator import EmulatorBackend

            return EmulatorBackend(model), tok
        if name == "lava-sim":
            from spike2loihi.backends.lava_sim import LavaSimBackend

            return LavaSimBackend(model), tok
        if name == "loihi2":
            from spike2loihi.backends import loihi2 as L2

            return L2.Loihi2Backend(model, loihi2), tok
        from spike2loihi.model.reference import ReferenceModel

        spec = source_checkpoint(model, checkpoint)
        return ReferenceModel(spec, model.semantics), tok
    if name != "torch":
        raise BackendError(f"{path} is a checkpoint: the {name} backend runs converted models; "
                           f"run `spike2loihi convert {path} -o MODEL.s2l` first")
    from converters.spikegpt import load_checkpoint
    from spike2loihi.model.reference import ReferenceModel

    spec = load_checkpoint(path, tokenizer_path=tokenizer_path)
    return ReferenceModel(spec, spec.semantics(semantics or "run")), spec.tokenizer


def _open_onnx(name: str, path, semantics: Optional[str], tokenizer_path: Optional[str]):
    from spike2loihi.backends.onnxruntime import OnnxRuntimeBackend, is_onnx

    if not is_onnx(path):
        raise BackendError(f"{path}: the onnxruntime backend runs exported .onnx step graphs; make one with "
                           f"`spike2loihi export {path} --format onnx -o MODEL.onnx`")
    if name != "onnxruntime":
        raise BackendError(f"{path} is an ONNX model: run it with --backend onnxruntime")
    backend = OnnxRuntimeBackend(path)
    if semantics is not None and semantics != backend.semantics.name:
        raise BackendError(f"{path} was exported with --semantics {backend.semantics.name}; export again for "
                           f"{semantics}")
    if tokenizer_path:
        from converters.tokenizer import load_tokenizer

        return backend, load_tokenizer(tokenizer_path)
    return backend, backend.tokenizer()
