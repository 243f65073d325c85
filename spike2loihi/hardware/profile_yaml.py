"""Hardware-profile YAML read as hostile input: a bounded document, bounded error messages.

`loader_class()` is a safe YAML loader that stops building the document at `MAX_DEPTH`
levels of nesting and `MAX_NODES` values (and refuses merge keys, non-scalar keys and
integers of more than `MAX_INT_CHARS` characters); `check_size` walks the result with the
same budgets, every use of an alias counted, so that a "billion laughs" document is refused
without being expanded; `show`/`clip` quote a value or a YAML error in at most
`SHOW_CHARS`/160 characters without walking more of it than that. Used by
`spike2loihi.hardware.profiles`.
"""
from __future__ import annotations

import datetime
import difflib
import functools
import itertools
from typing import List

from spike2loihi.errors import HardwareProfileError, one_line

MAX_DEPTH = 20            # levels of nesting (the top mapping is level 1)
MAX_NODES = 10_000        # values, keys included, every use of an alias counted
MAX_INT_CHARS = 1_000     # characters of one integer as written
SHOW_CHARS = 60           # characters of a value quoted in an error


class _Refused(Exception):
    """The document is over a budget (nesting, values): refused before it is looked at."""


def _over_depth(where: str) -> str:
    return f"nested more than {MAX_DEPTH} levels deep{where}, the limit for a hardware profile (a packaged one " \
           "nests 6)"


def _over_nodes(where: str) -> str:
    return f"more than {MAX_NODES:,} values{where}, the limit for a hardware profile (a packaged one has " \
           "about 1,000; every use of an alias counts)"


@functools.lru_cache(maxsize=None)
def _loader_class():
    """yaml.SafeLoader that stops at `MAX_DEPTH` levels and `MAX_NODES` nodes while composing, refuses a key
    given twice in one mapping (PyYAML keeps the last silently), a key that is a list or a mapping, merge
    keys (`<<`, which PyYAML expands by copying) and integers of more than `MAX_INT_CHARS` characters
    (sexagesimal `1:2:3:...` costs quadratic time), and turns a constructor's own exception (a date
    `2001-13-45`, `!!bool x`) into a YAML error with the line."""
    import yaml
    from yaml.constructor import ConstructorError

    class Loader(yaml.SafeLoader):
        def __init__(self, stream):
            super().__init__(stream)
            self.s2l_depth = 0
            self.s2l_nodes = 0

        def compose_node(self, parent, index):
            self.s2l_nodes += 1
            if self.s2l_nodes > MAX_NODES or self.s2l_depth >= MAX_DEPTH:
                line = f" (line {self.peek_event().start_mark.line + 1})"
                raise _Refused(_over_nodes(line) if self.s2l_nodes > MAX_NODES else _over_depth(line))
            self.s2l_depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.s2l_depth -= 1

        def construct_object(self, node, deep=False):
            try:
                return super().construct_object(node, deep)
            except (ValueError, TypeError, KeyError, IndexError, OverflowError, UnicodeError) as exc:
                raise ConstructorError(None, None, f"cannot read this value ({type(exc).__name__}: "
                                                   f"{_clip(str(exc), SHOW_CHARS)})", node.start_mark) from None

    def construct_mapping(loader, node, deep=False):
        if not isinstance(node, yaml.MappingNode):
            return yaml.SafeLoader.construct_mapping(loader, node, deep)   # its own ConstructorError
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConstructorError("while constructing a mapping", node.start_mark,
                                       "merge keys (<<) are not read in a hardware profile: write the fields out",
                                       key_node.start_mark)
            key = loader.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise ConstructorError("while constructing a mapping", node.start_mark,
                                       f"a key is a {type(key).__name__}, expected a name",
                                       key_node.start_mark) from None
            if key in seen:
                raise _Refused(f"key {_show(key)} appears twice (lines {seen[key] + 1} and "
                               f"{key_node.start_mark.line + 1})")
            seen[key] = key_node.start_mark.line
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    def construct_int(loader, node):
        if isinstance(node, yaml.ScalarNode) and len(node.value) > MAX_INT_CHARS:
            raise ConstructorError(None, None, f"an integer written with {len(node.value):,} characters (at "
                                               f"most {MAX_INT_CHARS:,} are read)", node.start_mark)
        return yaml.SafeLoader.construct_yaml_int(loader, node)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    Loader.add_constructor("tag:yaml.org,2002:int", construct_int)
    return Loader


def _children(v):
    """An iterator over the values inside `v` (a mapping's keys and values), or None for a scalar."""
    if isinstance(v, dict):
        return itertools.chain.from_iterable(v.items())
    if isinstance(v, (list, tuple, set, frozenset)):
        return iter(v)
    return None


def _check_size(data, source: str) -> None:
    """Refuse a document over `MAX_DEPTH` levels or `MAX_NODES` values, counting a shared object (an alias)
    every time it is used: a bounded walk, which stops at the first value over either budget, so that an
    alias bomb or a recursive alias is refused without being expanded."""
    count = 1
    stack = [it for it in (_children(data),) if it is not None]
    while stack:
        child = next(stack[-1], _END)
        if child is _END:
            stack.pop()
            continue
        count += 1
        if count > MAX_NODES:
            raise HardwareProfileError(f"{source}: {_over_nodes(' once its aliases are expanded')}")
        if len(stack) + 1 > MAX_DEPTH:        # `child` is at depth len(stack) + 1 (the top is at 1)
            raise HardwareProfileError(f"{source}: {_over_depth(' once its aliases are expanded')}")
        it = _children(child)
        if it is not None:
            stack.append(it)


_END = object()


@functools.singledispatch
def _pieces(v):
    """The repr of `v` in pieces, lazily: a consumer that stops early never walks the rest. One registration
    per value type (found along its MRO); anything else is shown by its type name."""
    yield f"<{type(v).__name__}>"


@_pieces.register(type(None))
@_pieces.register(bool)
@_pieces.register(float)
@_pieces.register(datetime.date)          # (and datetime.datetime)
def _(v):
    yield repr(v)


@_pieces.register(int)
def _(v):
    if v.bit_length() > 10_000:                       # str() refuses > 4,300 digits, and is quadratic
        yield f"<an integer of about {int(v.bit_length() * 0.30103):,} digits>"
    else:
        s = str(v)
        yield s if len(s) <= 24 else f"{s[:12]}...({len(s) - (s[0] == '-')} digits)"


@_pieces.register(str)
@_pieces.register(bytes)
def _(v):
    yield repr(v[:SHOW_CHARS + 1])


def _sequence(opening: str, closing: str):
    def pieces(v):
        yield opening
        for i, x in enumerate(v):
            if i:
                yield ", "
            yield from _pieces(x)
        yield closing
    return pieces


_pieces.register(list, _sequence("[", "]"))
_pieces.register(tuple, _sequence("(", ")"))
_pieces.register(set, _sequence("{", "}"))
_pieces.register(frozenset, _sequence("{", "}"))


@_pieces.register(dict)
def _(v):
    yield "{"
    for i, (k, x) in enumerate(v.items()):
        if i:
            yield ", "
        yield from _pieces(k)
        yield ": "
        yield from _pieces(x)
    yield "}"


def _show(v, limit: int = SHOW_CHARS) -> str:
    """`v` as an error message quotes it: its repr cut to `limit` characters, built piece by piece so that
    no more than that is ever rendered (an alias bomb's value is never expanded)."""
    out: List[str] = []
    size = 0
    for piece in _pieces(v):
        out.append(piece)
        size += len(piece)
        if size > limit:
            return "".join(out)[:limit - 3] + "..."
    return "".join(out)


def _clip(text: str, limit: int = 160) -> str:
    """`text` (e.g. a YAML error, which may quote the document) on one line, cut to `limit` characters."""
    text = one_line(str(text)[:limit * 4])
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _key(k) -> str:
    """A mapping key as an error names a field: the name itself when it is a short printable string."""
    return k if isinstance(k, str) and 0 < len(k) <= SHOW_CHARS and k.isprintable() else _show(k)


def _unknown(key, allowed) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1) if isinstance(key, str) and len(key) <= 100 else []
    return f"unknown field{' (did you mean ' + close[0] + '?)' if close else ''}"
