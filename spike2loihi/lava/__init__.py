"""Lava lowering of a converted model: the only package of spike2loihi that imports Lava.

`processes` holds our Process and ProcessModel classes (side-effect free: Lava's
compiler may import every module here), `build` turns an IR + artifact into a
Lava process graph with its schedule, `runtime` runs it safely (the runtime is
always stopped, on success, error and Ctrl-C).
"""
