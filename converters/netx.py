"""lava-dl netx HDF5 network reader: file -> the Lava processes netx would build, as frozen data.

netx (`lava.lib.dl.netx.hdf5.Network`) is the format in which Lava users hand spiking networks
to Loihi 2. This reader builds, without Lava, what netx's loader builds from the same file, so
that spike2loihi's bit-exact process emulator can run it and its planner can size it:

* a `dense` layer becomes a Lava `Dense` (weights as netx re-optimises them on load,
  `netx_weight_bits`) feeding the layer's neuron;
* a `CUBA`/`LOIHI` neuron becomes Lava's `LIF` (`du = iDecay - 1`, `dv = vDecay`,
  `vth = vThMant`, `bias_mant = bias`, `bias_exp = 6`), or `LIFReset` when the network is run
  with a reset interval (netx's `reset_interval`; the k-th built block resets at offset
  `reset_offset + 1 + k`);
* `input` without a neuron only names the input shape; `flatten` changes nothing for dense
  layers (netx flattens in (C, H, W) order: give the input in that order).

What the emulator does not have is refused in one line naming the layer: conv, pool and the
other image layers, Sigma-Delta (`SDNN`) and resonate-and-fire (`RF*`) neurons, recurrent and
complex dense layers, synaptic delays, and an input block with a neuron (netx builds it with
neither bias nor input: it never spikes). `skip_layers` mirrors netx's argument: file layers
below that index are not built (they are not checked either), so the dense part of a network
that starts with convolutions can be taken alone, its input being the last skipped layer's
spikes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from spike2loihi.errors import NetxError
from spike2loihi.inputs import check_input_file

#: What netx hands to Lava for every CUBA neuron (its loader's constant).
NETX_BIAS_EXP = 6
#: Layer types this reader builds; everything else is refused by name.
SUPPORTED_LAYERS = ("input", "dense", "flatten")
SUPPORTED_NEURONS = ("CUBA", "LOIHI")
#: A file's layer count we read at most (a hostile file cannot make us loop for long).
MAX_LAYERS = 4096


@dataclass(frozen=True)
class NetxNeuron:
    """The `LIF` (or `LIFReset`) netx builds for a CUBA neuron description."""

    du: int
    dv: int
    vth: int
    bias_mant: Optional[np.ndarray]   # int, per neuron; None: no bias
    bias_exp: int = NETX_BIAS_EXP


@dataclass(frozen=True)
class NetxDense:
    """One netx dense block: Lava's Dense (after netx's weight re-optimisation) and its neuron."""

    index: int                    # the layer's index in the file
    file_weight: np.ndarray       # (n_out, n_in) int, as the file holds it (truncated to int like netx)
    weights: np.ndarray           # what netx passes to Lava's Dense
    num_weight_bits: int
    weight_exp: int
    sign_mode: str                # what netx's optimiser chose (Lava infers the same from the weights)
    neuron: NetxNeuron
    input_message_bits: int       # 0: binary spikes in; > 0 graded
    clipped: int = 0              # file weights netx clips to [-256, 254] on load

    @property
    def n_out(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_in(self) -> int:
        return int(self.weights.shape[1])


@dataclass(frozen=True)
class NetxNetwork:
    """What netx builds from one file: its dense blocks in order, and the input width."""

    path: str
    n_in: int
    blocks: Tuple[NetxDense, ...]
    skipped: int = 0
    layer_types: Tuple[str, ...] = field(default_factory=tuple)   # every file layer's type

    def reset_offsets(self, reset_offset: int = 0) -> List[int]:
        """netx's staggered LIFReset offsets: block k resets at `reset_offset + 1 + k`."""
        return [reset_offset + 1 + k for k in range(len(self.blocks))]


def netx_weight_bits(weight: np.ndarray) -> Tuple[np.ndarray, int, int, str, int]:
    """What netx's loader does to a dense layer's integer weights before Lava sees them.

    It finds the power-of-two scale s that fills the 8-bit synapse (mixed sign: the larger of
    127/max and 128/|min| rounded down to 2^k, plus one bit; one sign: 255/max or 256/|min|),
    shifts the weights left by s and sets weight_exp = -s, so that Lava's Dense computes
    (W << s) . x >> s = W . x exactly; num_weight_bits = 8 - s - (trailing zero bits shared by
    every weight, less the sign bit). Weights beyond [-256, 254] in a mixed-sign matrix are
    clipped first (netx prints a warning). Returns (weights, num_weight_bits, weight_exp,
    sign mode, clipped count).
    """
    w = np.asarray(weight).astype(np.int64)
    clipped = 0
    hi, lo = int(w.max()), int(w.min())
    if (hi > 254 and lo < 0) or (lo < -256 and hi > 0):
        c = np.clip(w, -256, 254)
        clipped = int(np.count_nonzero(c != w))
        w = c
        hi, lo = int(w.max()), int(w.min())
    if hi < 0:
        mode, signed, scale = "INHIBITORY", 0, -256 / lo
    elif lo >= 0:
        if hi == 0:
            raise NetxError("an all-zero weight matrix: netx's weight optimiser divides by its maximum")
        mode, signed, scale = "EXCITATORY", 0, 255 / hi
    else:
        mode, signed, scale = "MIXED", 1, min(127 / hi, -128 / lo)
    shift = int(math.floor(math.log2(scale))) + signed
    n = 8
    while n > 0 and np.any(w % (1 << n)):
        n -= 1
    n -= signed
    out = w << shift if shift >= 0 else w >> -shift   # netx shifts left; a negative shift would be lossy
    return out, int(8 - shift - n), int(-shift), mode, clipped


def _text(v) -> str:
    v = v[()] if hasattr(v, "shape") else v
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)[0] if v.size else b""
    return v.decode("ascii", "replace") if isinstance(v, (bytes, np.bytes_)) else str(v)


def _int(group, key: str, where: str) -> int:
    if key not in group:
        raise NetxError(f"{where}: no {key!r}")
    v = np.asarray(group[key][()])
    if v.size != 1 or not np.isfinite(v.astype(np.float64)).all():
        raise NetxError(f"{where}/{key}: expected one finite number, found shape {v.shape}")
    return int(v.reshape(-1)[0])


def _neuron(layer, where: str) -> NetxNeuron:
    if "neuron" not in layer:   # netx's default: a non-leaky integrator
        return NetxNeuron(du=-1, dv=4096, vth=1 << 17, bias_mant=None)
    nc = layer["neuron"]
    kind = _text(nc["type"]) if "type" in nc else "?"
    if kind not in SUPPORTED_NEURONS:
        raise NetxError(f"{where}: neuron type {kind!r} is not emulated (spike2loihi runs CUBA/LOIHI LIF neurons)")
    return NetxNeuron(du=_int(nc, "iDecay", f"{where}/neuron") - 1, dv=_int(nc, "vDecay", f"{where}/neuron"),
                      vth=_int(nc, "vThMant", f"{where}/neuron"), bias_mant=None)


def _array(layer, key: str, where: str) -> np.ndarray:
    v = np.asarray(layer[key][()])
    if not np.issubdtype(v.dtype, np.number):
        raise NetxError(f"{where}/{key}: not numeric ({v.dtype})")
    f = v.astype(np.float64)
    if not np.isfinite(f).all():
        raise NetxError(f"{where}/{key}: holds NaN or infinity")
    if np.abs(f).max(initial=0) > 2 ** 31:
        raise NetxError(f"{where}/{key}: values beyond 2^31 (largest {np.abs(f).max():.4g})")
    return f.astype(np.int64)   # netx: .astype(int), truncation toward zero


def read_netx(path, skip_layers: int = 0, input_message_bits: int = 0) -> NetxNetwork:
    """Read a netx HDF5 network as netx's `Network(net_config=path, skip_layers=...)` builds it."""
    import h5py

    path = str(path)
    check_input_file(path, "netx network")
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as e:
        raise NetxError(f"{path}: not an HDF5 file ({str(e).splitlines()[0]})") from None
    try:
        with f:
            return _read(f, path, int(skip_layers), int(input_message_bits))
    except NetxError as e:
        msg = str(e)
        raise NetxError(msg if msg.startswith(path) else f"{path}: {msg}") from None
    except (KeyError, TypeError, ValueError, OSError) as e:
        raise NetxError(f"{path}: malformed netx file ({str(e).splitlines()[0]})") from None


def _read(f, path: str, skip: int, in_bits: int) -> NetxNetwork:
    if "layer" not in f:
        raise NetxError("no 'layer' group: not a netx network file")
    layers = f["layer"]
    n = len(layers)
    if n > MAX_LAYERS:
        raise NetxError(f"{n} layers, more than the {MAX_LAYERS} read")
    missing = [str(i) for i in range(n) if str(i) not in layers]
    if missing:
        raise NetxError(f"layers are not numbered 0..{n - 1} (missing {missing[0]})")
    types = tuple(_text(layers[str(i)]["type"]) if "type" in layers[str(i)] else "?" for i in range(n))
    if skip < 0 or skip >= n:
        raise NetxError(f"--skip-layers {skip}: the file has layers 0..{n - 1}")
    blocks: List[NetxDense] = []
    width: Optional[int] = None
    bits = in_bits
    for i in range(n):
        layer, kind, where = layers[str(i)], types[i], f"layer {i}"
        if i < skip:
            if "shape" in layer:
                width = int(np.prod(np.asarray(layer["shape"][()])))   # the skipped layer's output feeds us
            continue
        if kind not in SUPPORTED_LAYERS:
            raise NetxError(f"{where} is {kind!r}, which the emulator does not have "
                            f"(it runs {', '.join(SUPPORTED_LAYERS)} layers with CUBA/LIF neurons); "
                            f"start after it with --skip-layers {i + 1}" if i + 1 < n else
                            f"{where} is {kind!r}, which the emulator does not have")
        if kind == "input":
            if "neuron" in layer:
                raise NetxError(f"{where} is an input block with a neuron: netx builds it with neither bias nor "
                                f"input, so it never spikes; skip it with --skip-layers {i + 1}")
            width = int(np.prod(np.asarray(layer["shape"][()])))
            continue
        if kind == "flatten":
            continue
        for key in ("delay", "weight_rec", "weight/imag"):
            if key in layer:
                raise NetxError(f"{where} has {key!r}, which the emulator does not have "
                                "(synaptic delays, recurrent and complex dense layers)")
        if "weight" not in layer:
            raise NetxError(f"{where}: dense layer without 'weight'")
        w = _array(layer, "weight", where)
        n_out = int(np.prod(np.asarray(layer["shape"][()]))) if "shape" in layer else int(w.shape[0])
        if w.ndim == 1:
            if w.size % n_out:
                raise NetxError(f"{where}/weight: {w.size} values do not reshape to ({n_out}, n_in)")
            w = w.reshape(n_out, -1)
        if w.ndim != 2 or w.shape[0] != n_out or w.size == 0:
            raise NetxError(f"{where}/weight: shape {tuple(w.shape)}, expected ({n_out}, n_in)")
        if width is not None and w.shape[1] != width:
            raise NetxError(f"{where}/weight: shape {tuple(w.shape)} takes {w.shape[1]} inputs, "
                            f"the layer before gives {width}")
        neuron = _neuron(layer, where)
        if "bias" in layer:
            b = _array(layer, "bias", where).reshape(-1)
            if b.size not in (1, n_out):
                raise NetxError(f"{where}/bias: shape {b.shape} does not match {n_out} neurons")
            neuron = NetxNeuron(neuron.du, neuron.dv, neuron.vth, np.broadcast_to(b, (n_out,)).copy())
        weights, nwb, wexp, mode, clipped = netx_weight_bits(w)
        blocks.append(NetxDense(index=i, file_weight=w, weights=weights, num_weight_bits=nwb, weight_exp=wexp,
                                sign_mode=mode, neuron=neuron, input_message_bits=bits, clipped=clipped))
        msg = layer["neuron"]["messageBits"] if "neuron" in layer and "messageBits" in layer["neuron"] else None
        bits = int(np.asarray(msg[()]).reshape(-1)[0]) if msg is not None else 0
        width = n_out
    if not blocks:
        raise NetxError("no dense layer to run after --skip-layers" if skip else "no dense layer to run")
    return NetxNetwork(path=path, n_in=blocks[0].n_in, blocks=tuple(blocks), skipped=skip, layer_types=types)


def process_graph(net: NetxNetwork, inputs: np.ndarray, reset_interval: int = 0, reset_offset: int = 0):
    """The emulator's process graph of `net` fed by `inputs` ((n_in, T) integers, Lava's RingBuffer
    order): Source -> Dense_k -> LIF_k -> ... Returns (graph, [LIF node names])."""
    from spike2loihi.execute.process_emulator import DenseProc, LIFProc, ProcessGraph, SourceProc

    g = ProcessGraph()
    prev = g.add("input", SourceProc(np.asarray(inputs)))
    names = []
    for blk, offset in zip(net.blocks, net.reset_offsets(reset_offset)):
        d = g.add(f"dense{blk.index}", DenseProc(blk.weights, weight_exp=blk.weight_exp,
                                                 num_weight_bits=blk.num_weight_bits,
                                                 num_message_bits=blk.input_message_bits))
        nrn = blk.neuron
        lif = g.add(f"lif{blk.index}", LIFProc(blk.n_out, du=nrn.du, dv=nrn.dv, vth=nrn.vth,
                                               bias_mant=0 if nrn.bias_mant is None else nrn.bias_mant,
                                               bias_exp=nrn.bias_exp, reset_interval=int(reset_interval),
                                               reset_offset=offset))
        g.connect(prev, d)
        g.connect(d, lif)
        prev = lif
        names.append(lif)
    return g, names


def load_inputs(path, n_in: int) -> np.ndarray:
    """A spike-input `.npy`: (n_in, T) integers (Lava's RingBuffer order), or a bool array."""
    path = str(path)
    check_input_file(path, "input spikes")
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise NetxError(f"{path}: not a .npy array ({str(e).splitlines()[0]})") from None
    if a.ndim != 2 or a.shape[0] != n_in or a.shape[1] == 0:
        raise NetxError(f"{path}: shape {a.shape}, expected ({n_in}, T): one row per network input, one column per step")
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool or np.issubdtype(a.dtype, np.floating)):
        raise NetxError(f"{path}: dtype {a.dtype} is not numeric")
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all() or np.any(a != np.trunc(a)):
            raise NetxError(f"{path}: holds non-integer values (spikes or integer payloads expected)")
    return a.astype(np.int64)
