"""The `emulator` backend: a converted artifact stepped by `spike2loihi.execute.model_emulator`, batch 1."""
from __future__ import annotations

import torch

from spike2loihi.convert.artifact import ConvertedModel
from spike2loihi.execute.model_emulator import ModelEmulator, spikes_by_population
from spike2loihi.model.spec import ModelConfig
from spike2loihi.model.reference import StepOutput


class EmulatorBackend:
    """`initial_state()` / `step(token, state)` over the whole-model emulator."""

    name = "emulator"

    def __init__(self, model: ConvertedModel):
        self.model = model
        self.config = ModelConfig(**model.config)
        self.semantics = model.semantics
        self.executor = ModelEmulator(model, batch_size=1)

    def initial_state(self):
        return self.executor.initial_state()

    def step(self, token: int, state) -> StepOutput:
        self.executor.state = state       # handlers update it in place
        out = self.executor.step([int(token)])
        att, ffn = spikes_by_population(self.model.graph, out.spikes)
        return StepOutput(torch.from_numpy(out.logits[0].copy()),
                          torch.from_numpy(att.astype("float32")), torch.from_numpy(ffn.astype("float32")))
