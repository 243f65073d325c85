"""A netx HDF5 network seen through spike2loihi: its layer table, every Loihi constraint violation at
once, its cores and chips on each hardware profile, a bit-exact emulator run, and the first
divergence from another run (netx's own Lava network). Lava-free; the Lava run is
`spike2loihi.lava.netx`.

One frozen `LayerRow` per dense block; text and JSON render from the same rows.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from converters.netx import NetxNetwork, process_graph
from spike2loihi.convert.fixed_point import find_violations

#: What a run records per dense block (the LIF's spikes, current and voltage, every step).
RUN_VARS = ("s", "u", "v")


@dataclass(frozen=True)
class LayerRow:
    """One netx dense block as Lava receives it."""

    index: int
    block: str
    n_in: int
    n_out: int
    input_message_bits: int
    file_weight_min: int
    file_weight_max: int
    weight_bits: int            # num_weight_bits netx chose
    weight_exp: int             # netx's weight_exp (-shift: the product is exactly W . x)
    sign_mode: str
    clipped: int
    du: int
    dv: int
    vth: int
    bias_min: Optional[int]
    bias_max: Optional[int]
    bias_exp: int

    def to_dict(self) -> dict:
        return asdict(self)


def layer_rows(net: NetxNetwork) -> List[LayerRow]:
    rows = []
    for b in net.blocks:
        bias = b.neuron.bias_mant
        rows.append(LayerRow(index=b.index, block=f"dense{b.index}", n_in=b.n_in, n_out=b.n_out,
                             input_message_bits=b.input_message_bits, file_weight_min=int(b.file_weight.min()),
                             file_weight_max=int(b.file_weight.max()), weight_bits=b.num_weight_bits,
                             weight_exp=b.weight_exp, sign_mode=b.sign_mode, clipped=b.clipped,
                             du=b.neuron.du, dv=b.neuron.dv, vth=b.neuron.vth,
                             bias_min=None if bias is None else int(bias.min()),
                             bias_max=None if bias is None else int(bias.max()), bias_exp=b.neuron.bias_exp))
    return rows


def render_rows(rows: Sequence[LayerRow]) -> str:
    head = (f"{'layer':>5}  {'shape':>11}  {'in bits':>7}  {'file weights':>13}  {'wbits':>5}  {'wexp':>4}  "
            f"{'sign':<11}  {'du':>5}  {'dv':>5}  {'vth':>6}  bias (x 2^6)")
    lines = [head]
    for r in rows:
        bias = "none" if r.bias_min is None else f"{r.bias_min}..{r.bias_max}"
        lines.append(f"{r.index:>5}  {f'{r.n_out}x{r.n_in}':>11}  {r.input_message_bits or 'spike':>7}  "
                     f"{f'{r.file_weight_min}..{r.file_weight_max}':>13}  {r.weight_bits:>5}  {r.weight_exp:>4}  "
                     f"{r.sign_mode:<11}  {r.du:>5}  {r.dv:>5}  {r.vth:>6}  {bias}")
    return "\n".join(lines)


def violations(net: NetxNetwork) -> List[str]:
    """Every Loihi constraint a block breaks, as one line each (all at once)."""
    out: List[str] = []
    for b in net.blocks:
        name = f"layer {b.index}"
        found = (find_violations(f"{name}.weights", b.weights, "weights")
                 + find_violations(f"{name}.weight_exp", b.weight_exp, "weight_exp")
                 + find_violations(f"{name}.num_weight_bits", b.num_weight_bits, "num_weight_bits")
                 + find_violations(f"{name}.num_message_bits", b.input_message_bits, "num_message_bits"))
        for key in ("du", "dv", "vth", "bias_exp"):
            found += find_violations(f"{name}.{key}", getattr(b.neuron, key), key)
        if b.neuron.bias_mant is not None:
            found += find_violations(f"{name}.bias_mant", b.neuron.bias_mant, "bias_mant")
        out += [v.describe() for v in found]
        if b.clipped:
            out.append(f"{name}.weights: {b.clipped} file weights beyond [-256, 254] in a mixed-sign matrix "
                       "(netx clips them on load)")
    return out


def plans(net: NetxNetwork, profiles) -> List[dict]:
    """Cores (dense-packing ceiling and realistic SynMem bound) and chips on each profile: one core
    group per block (the Dense's synapses live in its LIF's cores), the last block read out."""
    from spike2loihi.convert import ir
    from spike2loihi.hardware.planner import plan_units
    from spike2loihi.hardware.populations import ChipNode

    units = []
    for k, b in enumerate(net.blocks):
        last = k == len(net.blocks) - 1
        dense = ChipNode(name=f"dense{b.index}", kind="dense", layer=k, n_out=b.n_out, n_in=b.n_in,
                         weight_bits=b.num_weight_bits, input_bits=b.input_message_bits or None,
                         input_from=ir.HOST if k == 0 else ir.CHIP, output_to=ir.CHIP, output_bits=None, dense=True)
        lif = ChipNode(name=f"lif{b.index}", kind="lif", layer=k, n_out=b.n_out, n_in=1, weight_bits=None,
                       input_bits=None, input_from=ir.CHIP, output_to=ir.HOST if last else ir.CHIP, output_bits=None,
                       du=b.neuron.du, dv=b.neuron.dv, vth=b.neuron.vth, spiking=True)
        units.append((lif.name, [dense, lif]))
    out = []
    for prof in profiles:
        groups, fit = plan_units(units, prof)
        out.append({"profile": prof.name, "system": prof.title, "chips_available": fit.chips,
                    "cores_ceiling": sum(g.ceiling.cores for g in groups),
                    "cores_realistic": sum(g.realistic.cores for g in groups),
                    "chips_needed_ceiling": fit.chips_needed_ceiling,
                    "chips_needed_realistic": fit.chips_needed_realistic,
                    "fits_realistic": fit.fits_realistic,
                    "neurons": sum(g.neurons for g in groups), "synapses": sum(g.synapses for g in groups)})
    return out


def emulate(net: NetxNetwork, inputs: np.ndarray, reset_interval: int = 0, reset_offset: int = 0
            ) -> Dict[str, Dict[str, np.ndarray]]:
    """The bit-exact emulator's run: {block: {"s", "u", "v": (T, n_out) int64}}."""
    from spike2loihi.execute.process_emulator import ProcessEmulator

    g, lifs = process_graph(net, inputs, reset_interval, reset_offset)
    rec = ProcessEmulator(g, probes={name: RUN_VARS for name in lifs}).run(int(np.shape(inputs)[1]))
    return {f"dense{b.index}": {var: rec[name][var][:, 0] for var in RUN_VARS}
            for b, name in zip(net.blocks, lifs)}


def first_divergence(ours: Dict[str, Dict[str, np.ndarray]], theirs: Dict[str, Dict[str, np.ndarray]],
                     variables: Sequence[str] = RUN_VARS) -> Optional[dict]:
    """The earliest (step, then layer in order, then s/u/v, then neuron) where two runs differ, or None."""
    steps = min(min(v.shape[0] for v in d.values()) for d in (*ours.values(), *theirs.values()))
    for t in range(steps):
        for block in ours:
            for var in variables:
                if var not in theirs.get(block, {}):
                    continue
                a, b = ours[block][var][t], theirs[block][var][t]
                diff = np.flatnonzero(a != b)
                if diff.size:
                    i = int(diff[0])
                    return {"step": t + 1, "layer": block, "var": var, "neuron": i,
                            "emulator": int(a[i]), "lava": int(b[i]), "differing_neurons": int(diff.size)}
    return None


def spike_counts(run: Dict[str, Dict[str, np.ndarray]]) -> Dict[str, int]:
    return {block: int(np.count_nonzero(d["s"])) for block, d in run.items()}
