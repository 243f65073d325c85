"""The demo model's text: CPython's own documentation, available offline, PSF-licensed.

pydoc_data.topics (the language reference topics behind `help()`) plus the long
docstrings of the top-level standard-library modules, in a fixed order. The text
is cut into 2,000-character chunks; every 20th chunk is held out for evaluation.
Characters outside the 77 most frequent are replaced by ' ', so the vocabulary
has exactly 77 symbols: the size at which SpikeGPT's official inference code
applies the binary embedding the model was trained with.
"""
import ast
import collections
import sysconfig
from pathlib import Path

VOCAB_SIZE = 77
CHUNK = 2000
HOLDOUT_EVERY = 20
FALLBACK = " "


def raw_text() -> str:
    import pydoc_data.topics as topics

    parts = [topics.topics[k] for k in sorted(topics.topics)]
    lib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(lib.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 200:
                    parts.append(doc)
    return "\n\n".join(parts)


def normalise(text: str, size: int = VOCAB_SIZE) -> str:
    keep = {c for c, _ in collections.Counter(text).most_common(size)}
    assert FALLBACK in keep
    return "".join(c if c in keep else FALLBACK for c in text)


def corpus():
    """Return (train_text, heldout_text), normalised to 77 symbols."""
    text = normalise(raw_text())
    chunks = [text[i:i + CHUNK] for i in range(0, len(text), CHUNK)]
    train = "".join(c for i, c in enumerate(chunks) if i % HOLDOUT_EVERY != HOLDOUT_EVERY - 1)
    held = "".join(c for i, c in enumerate(chunks) if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1)
    assert len(set(text)) == VOCAB_SIZE, len(set(text))
    return train, held
