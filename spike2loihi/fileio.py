"""Write outputs atomically: a temporary file beside the target, then rename.

A crash or Ctrl-C mid-write leaves the previous file (or none), never half of one.
The file that appears has the mode any other tool would give it: an existing
target keeps its permission bits; a new one gets 0666 & ~umask (0644 under the
usual umask 022), not the 0600 of the temporary file.

For a command's output files, spike2loihi.cli.rules.OutputSet builds on these:
several outputs written all or nothing, after a preflight check of every path.
"""
import contextlib
import os
import stat
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"
_NAME_IN_TEMP = 64  # characters of the target's name kept in the temporary name (NAME_MAX is 255 bytes)


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (thread-safe)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no way to read it without setting it
    os.umask(mask)
    return mask


def new_file_mode(target) -> int:
    """Permission bits for a file about to replace `target`.

    An existing regular file keeps its bits; a new file gets 0666 & ~umask, as
    open(..., "w") would give it.
    """
    try:
        st = os.stat(target)
        if stat.S_ISREG(st.st_mode):
            return stat.S_IMODE(st.st_mode)
    except OSError:
        pass
    return 0o666 & ~current_umask()


def temp_path_beside(target, tag: str = "") -> Path:
    """Create (empty, mode 0600) and return a dot-named temporary file in `target`'s folder.

    The name is `.NAME.<tag><random>.tmp`, with NAME cut short so that the temporary
    name never exceeds the file system's name limit when the target's does not.
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:_NAME_IN_TEMP]}.{tag}", suffix=TEMP_SUFFIX,
                               dir=target.parent)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(target):
    """Yield a temporary path in the target's directory; rename it over `target` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_beside(target)
    try:
        yield tmp
        os.chmod(tmp, new_file_mode(target))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(target, text: str, encoding="utf-8"):
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding=encoding)


def json_default(o):
    """`json.dumps(..., default=json_default)`: numpy scalars as Python numbers, tuples as lists."""
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
