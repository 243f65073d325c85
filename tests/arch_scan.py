"""A small AST scan of the package's shape (issue 20): node-type isinstance ladders and calls,
import cycles, up-arrows into the CLI, module sizes and Lava imports outside `spike2loihi/lava/`.

    python tests/arch_scan.py            # figures as JSON
"""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("spike2loihi", "converters")


def _op_names() -> Set[str]:
    """The IR op class names, read from the IR module's source (no import)."""
    for cand in (ROOT / "spike2loihi" / "convert" / "ir.py",):
        if cand.exists():
            tree = ast.parse(cand.read_text())
            names = {"Op"}
            changed = True
            while changed:
                changed = False
                for n in tree.body:
                    if isinstance(n, ast.ClassDef) and n.name not in names and any(
                            isinstance(b, ast.Name) and b.id in names for b in n.bases):
                        names.add(n.name)
                        changed = True
            return names
    raise FileNotFoundError("no IR module")


def modules() -> Dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            rel = p.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = p
    return out


def _is_node_type(expr: ast.expr, ops: Set[str]) -> bool:
    elts = expr.elts if isinstance(expr, ast.Tuple) else [expr]
    for e in elts:
        name = e.attr if isinstance(e, ast.Attribute) else e.id if isinstance(e, ast.Name) else None
        if name in ops and not (isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name)
                                and e.value.id not in ("ir",)):
            return True
    return False


def _node_isinstance(call: ast.AST, ops: Set[str]) -> bool:
    return (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "isinstance"
            and len(call.args) == 2 and _is_node_type(call.args[1], ops))


def _test_has_node_isinstance(test: ast.expr, ops: Set[str]) -> bool:
    return any(_node_isinstance(n, ops) for n in ast.walk(test))


def scan_isinstance(ops: Set[str]) -> dict:
    calls: Dict[str, int] = {}
    ladders: List[str] = []
    for mod, path in modules().items():
        tree = ast.parse(path.read_text())
        n_calls = sum(1 for n in ast.walk(tree) if _node_isinstance(n, ops))
        if n_calls:
            calls[mod] = n_calls
        seen = set()
        for n in ast.walk(tree):
            if isinstance(n, ast.If) and id(n) not in seen:
                chain, cur = [], n
                while isinstance(cur, ast.If):
                    seen.add(id(cur))
                    chain.append(cur)
                    cur = cur.orelse[0] if len(cur.orelse) == 1 and isinstance(cur.orelse[0], ast.If) else None
                typed = sum(_test_has_node_isinstance(c.test, ops) for c in chain)
                if typed >= 2:
                    ladders.append(f"{mod}:{n.lineno} ({typed} branches)")
    return {"node_type_isinstance_calls": sum(calls.values()), "by_module": calls, "ladders": ladders}


def imports() -> Dict[str, Set[str]]:
    mods = modules()
    graph: Dict[str, Set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for n in ast.walk(tree):
            targets = []
            if isinstance(n, ast.Import):
                targets = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom):
                base = n.module or ""
                if n.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - (n.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in n.names]
            for t in targets:
                while t and t not in mods:
                    t = t.rsplit(".", 1)[0] if "." in t else ""
                if t and t != mod:
                    graph[mod].add(t)
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def cli_up_arrows(graph: Dict[str, Set[str]]) -> List[str]:
    cli = {m for m in graph if m == "spike2loihi.cli" or m.startswith("spike2loihi.cli.")}
    return sorted(f"{m} -> {t}" for m, ts in graph.items() if m not in cli for t in ts if t in cli)


def lava_outside(graph=None) -> List[str]:
    out = []
    for mod, path in modules().items():
        if mod.startswith("spike2loihi.lava"):
            continue
        for n in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in n.names] if isinstance(n, ast.Import) else
                     [n.module or ""] if isinstance(n, ast.ImportFrom) and not n.level else [])
            if any(x == "lava" or x.startswith("lava.") for x in names):
                out.append(f"{mod}:{n.lineno}")
    return out


def sizes() -> Dict[str, int]:
    return {m: len(p.read_text().splitlines()) for m, p in modules().items()}


def scan() -> dict:
    ops = _op_names()
    g = imports()
    sz = sizes()
    return {**scan_isinstance(ops), "import_cycles": cycles(g), "cli_up_arrows": cli_up_arrows(g),
            "lava_imports_outside_lava": lava_outside(), "modules": len(sz),
            "largest_modules": sorted(sz.items(), key=lambda kv: -kv[1])[:8],
            "modules_over_600_lines": {m: n for m, n in sz.items() if n > 600}}


if __name__ == "__main__":
    print(json.dumps(scan(), indent=1))
