"""The Lava side of spike2loihi: the only package that imports Lava (inside functions and `procs/`).

* `procs/`: our Processes and ProcessModels (TokenLIF, HostBlock, FxpLayerNorm, FxpSigmoid,
  TokenShiftCat), alone in their folder because Lava's compiler imports every module there;
* `lowering`: the Lava process(es) of each chip op type (the `lava.chip` stage);
* `plans`: which host IR nodes each host block runs, and its ports (Lava-free data);
* `blocks`: the host blocks' per-step runtime and the memory-mapped records (no Lava import);
* `build`: IR + artifact -> the Lava process graph, for both placements;
* `runtime`: `run_graph`, which always stops the runtime (success, error, Ctrl-C, SIGTERM);
* `hw`: the `Loihi2HwCfg` graph with embedded-IO adapters, host selection;
* `available`: whether Lava and lava-loihi can run here, without importing them.
"""
