"""A picture of one block of an exported step graph (`spike2loihi.export.onnx`), read back from the
file's node metadata only (`s2l.ir_node`, `s2l.role`, `s2l.placement`, ...), so it shows the
partition a Netron user sees: `block_groups` groups the ONNX nodes of a block by IR op and
crossing, `draw_block` draws them (matplotlib, imported when drawing).
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np
import onnx

from spike2loihi.convert import ir


def block_groups(proto: onnx.ModelProto, layer: int):
    """The ONNX nodes of block `layer` grouped by (IR node, role), and the data edges between groups.

    Read from the nodes' metadata only, so this is the partition a Netron user sees.
    Returns (groups: {key: {"ir_node", "op", "role", "placement", "onnx_nodes", "op_types"}},
    edges: set of (src key, dst key)); producers outside the block appear as key "x".
    """
    groups, producer = {}, {}
    for inp in proto.graph.input:          # a state input belongs to the op that carries the state
        if "/" in inp.name:
            producer[inp.name] = f"{inp.name.rsplit('/', 1)[0]}|op"
    for n in proto.graph.node:
        md = {p.key: p.value for p in n.metadata_props}
        key = f"{md.get('s2l.ir_node', '')}|{md.get('s2l.role', '')}"
        for out in n.output:
            producer[out] = key
        if md.get("s2l.layer") != str(layer) or md.get("s2l.role") == "state":
            continue
        gr = groups.setdefault(key, {"ir_node": md["s2l.ir_node"], "op": md["s2l.ir_op"], "role": md["s2l.role"],
                                     "placement": md["s2l.placement"], "onnx_nodes": 0, "op_types": {}})
        gr["onnx_nodes"] += 1
        gr["op_types"][n.op_type] = gr["op_types"].get(n.op_type, 0) + 1
    edges = set()
    for n in proto.graph.node:
        md = {p.key: p.value for p in n.metadata_props}
        dst = f"{md.get('s2l.ir_node', '')}|{md.get('s2l.role', '')}"
        if dst not in groups:
            continue
        for t in n.input:
            src = producer.get(t)
            if src is None or src == dst:
                continue
            edges.add((src if src in groups else "x", dst))
    return groups, edges


def draw_block(proto: onnx.ModelProto, layer: int, out, title: str = "") -> None:
    """A PNG of block `layer`: one box per IR op (and per crossing), colored by placement,
    with its ONNX node count; host->chip and chip->host edges drawn bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    groups, edges = block_groups(proto, layer)
    halves = [("time mix (att)", lambda k: ".att." in k or ".ln1" in k),
              ("channel mix (ffn)", lambda k: ".ffn." in k or ".ln2" in k)]
    colors = {ir.CHIP: "#f4a259", ir.HOST: "#9cc5e8", "x": "#d9d9d9"}
    fig, axes = plt.subplots(2, 1, figsize=(20, 11.5))
    for ax, (label, member) in zip(axes, halves):
        keys = [k for k in groups if member(k)]
        preds = {k: [s for s, d in edges if d == k] for k in keys}
        depth = {}

        def dep(k):
            if k not in depth:
                ps = [p for p in preds.get(k, []) if p in keys]
                depth[k] = 1 + max((dep(p) for p in ps), default=0)
            return depth[k]

        for k in keys:
            dep(k)
        cols: Dict[int, List[str]] = {}
        for k in sorted(keys, key=lambda k: list(groups).index(k)):
            cols.setdefault(depth[k], []).append(k)
        pos = {"x": (0.0, 0.0)}
        for c in sorted(cols):       # rows ordered by where their inputs sit (fewer crossing lines)
            ks = cols[c]
            ys = {k: np.mean([pos[p][1] for p in preds[k] if p in pos] or [0.0]) for k in ks}
            ks = sorted(ks, key=lambda k: -ys[k])
            for r, k in enumerate(ks):
                pos[k] = (float(c), (len(ks) - 1) / 2.0 - r)
        W, H = 0.84, 0.62
        for s, d in edges:
            if d not in keys or (s not in keys and s != "x"):
                continue
            cross = s != "x" and groups[s]["placement"] != groups[d]["placement"]
            (x0, y0), (x1, y1) = pos[s], pos[d]
            ax.annotate("", xy=(x1 - W / 2, y1), xytext=(x0 + W / 2, y0),
                        arrowprops=dict(arrowstyle="-|>", lw=2.4 if cross else 0.9,
                                        color="#c0392b" if cross else "#555555", shrinkA=0, shrinkB=0))
        ax.add_patch(FancyBboxPatch((-W / 2, -H / 2), W, H, boxstyle="round,pad=0.02", fc=colors["x"], ec="#444"))
        ax.text(0, 0, "x\n(previous\nblock)", ha="center", va="center", fontsize=7.5)
        for k in keys:
            gr = groups[k]
            x, y = pos[k]
            short = gr["ir_node"].split(f"blocks.{layer}.", 1)[-1]
            role = {"encode": "encode ->chip", "decode": "decode ->host"}.get(gr["role"], gr["op"])
            ax.add_patch(FancyBboxPatch((x - W / 2, y - H / 2), W, H, boxstyle="round,pad=0.02",
                                        fc=colors[gr["placement"]], ec="#333",
                                        ls="--" if gr["role"] in ("encode", "decode") else "-"))
            ax.text(x, y + 0.12, short, ha="center", va="center", fontsize=7.2, weight="bold")
            ax.text(x, y - 0.13, f"{role}\n{gr['onnx_nodes']} ONNX nodes", ha="center", va="center", fontsize=6.6)
        xs = [p[0] for p in pos.values()]
        ys = [p[1] for p in pos.values()]
        ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
        ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
        ax.set_title(label, loc="left", fontsize=11)
        ax.axis("off")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(fc=colors[ir.CHIP], ec="#333", label="chip (Loihi 2: Dense, LIF): Lava's integers"),
               Patch(fc=colors[ir.HOST], ec="#333", label="host (float32 as host_ops.py)"),
               Patch(fc="white", ec="#333", ls="--", label="crossing (encode / decode), on the host"),
               Line2D([0], [0], color="#c0392b", lw=2.4, label="host<->chip edge")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=9, frameon=False)
    fig.suptitle(title or f"block {layer}", fontsize=12)
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    fig.savefig(out, dpi=110)
    plt.close(fig)
