"""Write outputs atomically: a temporary file beside the target, then rename.

A crash or Ctrl-C mid-write leaves the previous file (or none), never half of one.
"""
import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target):
    """Yield a temporary path in the target's directory; rename it over `target` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(target, text: str, encoding="utf-8"):
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding=encoding)
