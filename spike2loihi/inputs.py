"""Read input files as hostile: regular files only, read up to a stated size, one clear line otherwise.

Every path a command reads (a checkpoint, a converted model, a text, a token file, a
tokenizer, a hardware profile, an ONNX model, and the paths recorded inside an artifact)
goes through `check_input_file` before it is opened, so that a named pipe never blocks,
a device such as /dev/zero is never read until memory runs out, and a directory is named
as one. Where the size of what is read is implied (texts, token files, YAML, manifests),
`read_input_bytes` / `read_input_text` also bound it, and the bound is named in the error.
"""
from __future__ import annotations

import os
import stat
from typing import Optional, Union

from spike2loihi.errors import InputFileError

PathLike = Union[str, os.PathLike]

MiB = 1 << 20
#: Bounds on what is read whole (the file's size is checked before it is read).
MAX_TEXT_BYTES = 256 * MiB          # --text, --calib, --prompt files
MAX_TOKENS_FILE_BYTES = 256 * MiB   # --tokens-file (whitespace- or comma-separated ids)
MAX_TOKENIZER_BYTES = 64 * MiB      # vocab.json, tokenizers JSON
MAX_PROFILE_BYTES = 1 * MiB         # hardware profile YAML


def _kind(mode: int) -> Optional[str]:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    return "is not a regular file"


def _where(what: str, path: PathLike) -> str:
    return f"{what} {path}" if what else f"{path}"


def check_input_file(path: PathLike, what: str = "", max_bytes: Optional[int] = None) -> os.stat_result:
    """The stat of `path` if it is a readable regular file (symlinks followed) of at most `max_bytes`;
    else one `InputFileError` line naming `what` (an option or a role) and the path."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputFileError(f"{_where(what, path)}: no such file") from None
    except NotADirectoryError:
        raise InputFileError(f"{_where(what, path)}: no such file (a parent is not a directory)") from None
    except OSError as exc:
        raise InputFileError(f"{_where(what, path)}: cannot read ({exc.strerror})") from None
    kind = _kind(st.st_mode)
    if kind is not None:
        raise InputFileError(f"{_where(what, path)}: {kind}")
    if not os.access(path, os.R_OK):
        raise InputFileError(f"{_where(what, path)}: cannot read (permission denied)")
    if max_bytes is not None and st.st_size > max_bytes:
        raise InputFileError(f"{_where(what, path)}: {st.st_size:,} bytes, more than the {max_bytes:,} "
                             "this input may have")
    return st


def read_input_bytes(path: PathLike, what: str = "", max_bytes: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of a regular file of at most `max_bytes` (checked before and while reading)."""
    check_input_file(path, what, max_bytes)
    try:   # opened non-blocking and checked again: a file swapped for a named pipe after the check never blocks
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise InputFileError(f"{_where(what, path)}: cannot read ({exc.strerror})") from None
    try:
        kind = _kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise InputFileError(f"{_where(what, path)}: {kind}")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as f:
            fd = -1
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise InputFileError(f"{_where(what, path)}: cannot read ({exc.strerror})") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > max_bytes:   # it grew after the check
        raise InputFileError(f"{_where(what, path)}: more than the {max_bytes:,} bytes this input may have")
    return data


def read_input_text(path: PathLike, what: str = "", max_bytes: int = MAX_TEXT_BYTES,
                    encoding: str = "utf-8") -> str:
    """The text of a regular file of at most `max_bytes`, decoded; a decoding error is one line."""
    data = read_input_bytes(path, what, max_bytes)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        name = "UTF-8" if encoding.lower().replace("-", "") == "utf8" else encoding
        raise InputFileError(f"{_where(what, path)}: not {name} text (byte {exc.start})") from None


def regular_file(path: PathLike) -> bool:
    """True when `path` is an existing regular file (a quiet test, for optional inputs found nearby)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


__all__ = ["check_input_file", "read_input_bytes", "read_input_text", "regular_file", "MAX_TEXT_BYTES",
           "MAX_TOKENS_FILE_BYTES", "MAX_TOKENIZER_BYTES", "MAX_PROFILE_BYTES"]
