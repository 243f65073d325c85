"""netx's own Lava network for a netx HDF5 file, run in Lava's `fixed_pt` CPU simulator.

`lava.lib.dl.netx.hdf5.Network` builds the processes from the file (we do not rebuild them), a
`RingBuffer` source feeds its input, and every dense block's LIF is read each step (spikes, u, v),
so that `spike2loihi.reports.netx.first_divergence` can name the first step, layer and neuron
where the emulator and Lava differ. The runtime is always stopped (`runtime.running`).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

import numpy as np

from converters.netx import NetxNetwork
from spike2loihi.errors import LavaRunError
from spike2loihi.lava.runtime import running
from spike2loihi.reports.netx import RUN_VARS


def run_netx(net: NetxNetwork, inputs: np.ndarray, reset_interval: int = 0, reset_offset: int = 0,
             progress: Optional[Callable[[int, int], None]] = None,
             state: bool = True) -> Dict[str, Dict[str, np.ndarray]]:
    """Run netx's `Network(net.path, skip_layers=net.skipped, ...)` on `inputs` ((n_in, T));
    returns {block: {"s", "u", "v": (T, n_out) int64}} for the blocks of `net`, in order (with
    `state=False` only "s", in one run of T steps instead of T runs of one step)."""
    import io
    from contextlib import redirect_stdout

    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer

    inputs = np.asarray(inputs)
    T = int(inputs.shape[1])
    first_bits = net.blocks[0].input_message_bits
    with redirect_stdout(io.StringIO()):   # lava-dl prints dataset-toolbox notes on import and weight clips on load
        from lava.lib.dl.netx import hdf5

        lava_net = hdf5.Network(net_config=net.path, skip_layers=net.skipped, input_message_bits=first_bits,
                                reset_interval=int(reset_interval) or None, reset_offset=int(reset_offset))
    if len(lava_net.layers) != len(net.blocks):
        raise LavaRunError(f"{net.path}: netx built {len(lava_net.layers)} blocks, the reader {len(net.blocks)}")
    src = RingBuffer(data=inputs.astype(np.int32) if first_bits else inputs.astype(bool).astype(np.int32))
    src.s_out.connect(lava_net.inp)
    out = {f"dense{b.index}": {var: np.zeros((T, b.n_out), np.int64) for var in (RUN_VARS if state else ("s",))}
           for b in net.blocks}
    neurons = [(f"dense{b.index}", layer.neuron) for b, layer in zip(net.blocks, lava_net.layers)]
    sinks = []
    for layer in lava_net.layers:
        sinks.append(Sink(shape=layer.out.shape, buffer=T))
        layer.out.connect(sinks[-1].a_in)
    with running(lava_net, Loihi2SimCfg(select_tag="fixed_pt")):
        for t in range(T if state else 0):
            lava_net.run(condition=RunSteps(num_steps=1))
            for name, nrn in neurons:
                rec = out[name]
                rec["u"][t] = nrn.u.get().astype(np.int64).reshape(-1)
                rec["v"][t] = nrn.v.get().astype(np.int64).reshape(-1)
            if progress is not None:
                progress(t + 1, T)
        if not state:
            lava_net.run(condition=RunSteps(num_steps=T))
            if progress is not None:
                progress(T, T)
        for (name, _), sink in zip(neurons, sinks):
            out[name]["s"][:] = sink.data.get().reshape(-1, T).T.astype(np.int64)
    return out

