"""Rules that every `spike2loihi` command follows, built once.

A user meets every command the same way: bad input is one line and a non-zero
exit, never a traceback; output paths are checked before any work starts and
written all or nothing; numbers out of range are refused up front, naming the
option and its range; long work shows progress on stderr; Ctrl-C is one line and
exit code 130, at any moment. A new command gets all of this as follows::

    from spike2loihi.cli import rules as cliutil

    @main.command()                      # `main` is a cliutil.CommandGroup: usage
    @click.argument("checkpoint", ...)   # errors, Spike2LoihiError and Ctrl-C
    @click.option("--out", type=cliutil.OUTPUT_PATH)             # become one line
    @click.option("--report", type=cliutil.OUTPUT_PATH)
    @click.option("--bits", type=cliutil.Int(min=2, max=16), default=8)
    @click.option("--threads", type=cliutil.Int(min=1))
    def convert(checkpoint, out, report, bits, threads):
        # 1. before any work: every output path (and the inputs it must not clobber)
        paths = cliutil.check_output_paths({"--out": out, "--report": report},
                                           inputs={"CHECKPOINT": checkpoint})
        threads = cliutil.cap_threads(threads)          # warns, caps at the cores
        import torch                                    # 2. heavy imports inside the command
        ...                                             #    (start-up: Ctrl-C exits at once)
        with cliutil.Progress("calibrate", total=n, unit="batches") as progress:
            for i in range(n):                          # 3. long work reports (done, total)
                ...
                progress(i + 1)
        with cliutil.OutputSet(paths) as outs:          # 4. all outputs, all or nothing
            with outs.open("--out") as f:
                f.write(blob)
            outs.write_text("--report", text)
        click.echo(summary)                             # 5. print only once written

The pieces:

- `CommandGroup`: the click Group class of `spike2loihi`; its `main` turns a click
  usage error into `error: <message> (see 'spike2loihi CMD --help')`, a
  Spike2LoihiError into `error: <message>` (exit `exc.exit_code`, 2), Ctrl-C into
  `interrupted` (exit 130), a closed stdout pipe into a quiet exit.
- `check_output_paths(outputs, inputs=None) -> {option: Path}`: preflight.
- `OutputSet(paths)`: all-or-nothing writer; files get 0666 & ~umask (an existing
  target keeps its mode).
- `Int(min, max)`, `Float(min, max, min_open, max_open)`, `SEED`: click types that
  refuse inf/nan and out-of-range values; `parse_int_list` for lists of ids.
- `Progress(label, total, unit)`: progress on stderr, callable as `(done, total)`.
- `warn(message)`: a `warning: ...` line on stderr; `show_examples(items)` for the
  first few of them; `cap_threads(n)`: more threads than cores is capped, with a warning.
- Interrupts: `CommandGroup.main` installs a start-up SIGINT handler that prints
  `interrupted` and exits 130 at once (nothing has been written yet, and importing
  torch must not end in a traceback); `begin_work()` switches to KeyboardInterrupt
  so that `finally` blocks run (OutputSet and Progress call it on entry; call it
  yourself before work that must clean up or report partial results).

Progress, chosen policy: nothing for work that finishes within `DELAY_S` (1 s);
after that, on a terminal, one line redrawn in place at most 10 times a second and
erased when the work ends; when stderr is a file or pipe (logs, CI), a plain line at
most every `LOG_INTERVAL_S` (5 s) and a closing line. Never on stdout, so text and
`--json` output stay clean. `SPIKE2LOIHI_PROGRESS=always|never|auto` (default auto)
overrides: always shows from the first step, never shows nothing.

Conventions the rules rely on (see `run` in spike2loihi/cli/app.py for all of them):

- Keep cli.py's top level light (no torch, numpy or model modules): run as a program
  it installs the start-up Ctrl-C handler before `import click`, and every import it
  makes at the top delays that, and `--help`.
- Check everything that needs no model before loading it (exclusive options,
  outputs, idle options: `warn` when an option cannot act), then load, then
  `begin_work()` and work.
- Print results only after OutputSet has committed: a failed write is one error
  line, never a success report followed by a traceback.
- Ctrl-C during the work: catch KeyboardInterrupt only to say what was done (with
  `--json`, one object with `"interrupted": true`), then re-raise; end a streamed
  text line with a newline first, so that `interrupted` has a line of its own.
  A Lava run stops its runtime in `finally` (see DESIGN.md, Lava runtime facts).
- While text streams to a terminal on stdout, do not draw progress there (a
  redrawn stderr line would overwrite it): show progress for phases that print
  nothing (prefill, --json runs), and echo text once that phase is done.
"""
from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import signal
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Union

import click

from spike2loihi.errors import Spike2LoihiError

__all__ = [
    "CommandGroup", "check_output_paths", "OUTPUT_PATH", "OutputSet", "Int", "Float", "SEED", "SEED_MAX",
    "parse_int_list", "Progress", "warn", "show_examples", "cap_threads", "available_cores", "begin_work",
    "install_startup_interrupt_handler", "one_line", "INTERRUPTED_EXIT",
]

INTERRUPTED_EXIT = 130  # 128 + SIGINT, what shells report for Ctrl-C
PathLike = Union[str, os.PathLike]


# --------------------------------------------------------------------------- messages

def one_line(text: str) -> str:
    """`text` with line breaks folded into spaces: errors and warnings are one line."""
    return re.sub(r"\s*[\r\n]+\s*", " ", str(text).strip())


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _line_start() -> str:
    """On a terminal, start at column 0 over anything left there (a '^C' echo, a progress line)."""
    return "\r\x1b[K" if _stderr_is_tty() else ""


def _emit(line: str) -> None:
    Progress.clear_all()
    click.echo(_line_start() + one_line(line), err=True)


def warn(message: str) -> None:
    """Print `warning: message` on stderr, one line."""
    _emit(f"warning: {message}")


def show_examples(items: Iterable[str], limit: int = 5) -> str:
    """The first `limit` distinct items, repr'd: "'é', '🙂', '\\t'" (", ..." when there are more)."""
    seen: Dict[str, None] = {}  # ordered, and stops early: a prompt may hold thousands of them
    for it in items:
        seen.setdefault(it)
        if len(seen) > limit:
            break
    seen = list(seen)
    shown = ", ".join(repr(s) for s in seen[:limit])
    return shown + (", ..." if len(seen) > limit else "")


# --------------------------------------------------------------------------- output paths

# File systems that hold kernel state or devices, never output files.
SPECIAL_FILESYSTEMS = frozenset({
    "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs", "pstore",
    "bpf", "configfs", "efivarfs", "fusectl", "mqueue", "binfmt_misc", "autofs", "hugetlbfs", "rpc_pipefs",
    "nsfs", "selinuxfs",
})
_SPECIAL_PREFIXES = {"/proc": "proc", "/sys": "sysfs", "/dev": "devtmpfs"}  # when /proc/mounts is unreadable


def _mounts() -> List[tuple]:
    """(mount point, fs type) pairs, longest mount point first."""
    try:
        with open("/proc/self/mounts") as f:
            rows = [line.split()[1:3] for line in f if len(line.split()) >= 3]
    except OSError:
        return []
    rows = [(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), mp), fs) for mp, fs in rows]  # \040 etc.
    return sorted(rows, key=lambda r: len(r[0]), reverse=True)


def _under(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root.rstrip("/") + "/")


def filesystem_type(path: PathLike) -> Optional[str]:
    """The type of the file system holding `path` (an existing path), or None if unknown."""
    real = os.path.realpath(path)
    mounts = _mounts()
    for mp, fs in mounts:
        if _under(real, mp):
            return fs
    if not mounts:
        for root, fs in _SPECIAL_PREFIXES.items():
            if _under(real, root) and not _under(real, "/dev/shm"):
                return fs
    return None


def _nearest_existing(path: Path) -> Path:
    p = path
    while not os.path.lexists(p):
        parent = p.parent
        if parent == p:
            break
        p = parent
    return p


def _probe_writable(folder: Path) -> Optional[str]:
    """None if a file can be created in `folder`, else the reason (strerror)."""
    name = os.path.join(folder, f".spike2loihi-probe-{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None  # a probe of ours left by a killed run: creation works
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return None


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


# The click type for output options: keeps the text as typed (a str), so that
# check_output_paths sees a trailing '/' (pathlib drops it).
OUTPUT_PATH = click.Path()


def check_output_paths(outputs: Mapping[str, Optional[PathLike]],
                       inputs: Optional[Mapping[str, Optional[PathLike]]] = None) -> Dict[str, Path]:
    """Check every output path of a command before any work; return {option: Path} of those given.

    `outputs` maps each output option's name (as the user typed it, e.g. "--dump-logits")
    to its value (None when not given: skipped); declare the options with
    `type=OUTPUT_PATH` so that the value arrives as typed. `inputs` names the command's input files
    (e.g. {"CHECKPOINT": ckpt}), which no output may overwrite. Each output must be a
    file path (not an existing directory, not ending in '/', no special file such as
    /dev/null), whose folder exists or can be created, is a folder (not a file) and is
    writable (a file is created and removed there to know), on an ordinary file system
    (not /proc, /sys, /dev, ...). No two outputs may name the same file. The first
    problem raises Spike2LoihiError, one line naming the option and the path.
    """
    checked: Dict[str, Path] = {}
    seen: Dict[str, str] = {}
    input_real = {os.path.realpath(p): name for name, p in (inputs or {}).items() if p is not None and str(p)}
    for option, value in outputs.items():
        if value is None:
            continue
        raw = os.fspath(value)
        if not raw:
            raise Spike2LoihiError(f"{option}: empty path, expected a file name")
        where = f"{option} {raw}"
        if raw.endswith(("/", os.sep)) or os.path.basename(raw) in ("", ".", ".."):
            raise Spike2LoihiError(f"{where}: names a directory, expected a file name")
        path = Path(raw).expanduser()
        if os.path.islink(path):  # write through a symbolic link, as `>` does, and keep the link
            path = Path(os.path.realpath(path))
        if os.path.isdir(path):
            raise Spike2LoihiError(f"{where}: is a directory, expected a file name (e.g. {path / 'out'})")
        if os.path.lexists(path):
            if not stat.S_ISREG(os.lstat(path).st_mode):
                raise Spike2LoihiError(f"{where}: is a special file (device, pipe or socket), "
                                       "expected a regular file name")
        anchor = _nearest_existing(path.absolute().parent)
        if not os.path.isdir(anchor):
            raise Spike2LoihiError(f"{where}: {anchor} is a file, not a folder")
        fs = filesystem_type(anchor)
        if fs in SPECIAL_FILESYSTEMS:
            raise Spike2LoihiError(f"{where}: {anchor} is on a kernel file system ({fs}), "
                                   "not a place for output files")
        if len(os.fsencode(path.name)) > _name_max(anchor):
            raise Spike2LoihiError(f"{where}: file name is too long ({len(os.fsencode(path.name))} bytes, "
                                   f"the limit is {_name_max(anchor)})")
        why = _probe_writable(anchor)
        if why is not None:
            raise Spike2LoihiError(f"{where}: cannot write in folder {anchor} ({why})")
        real = os.path.realpath(path)
        if real in input_real:
            raise Spike2LoihiError(f"{where}: is also the input {input_real[real]}; refusing to overwrite it")
        if real in seen:
            raise Spike2LoihiError(f"{seen[real]} and {option} name the same file {raw}; give each its own")
        seen[real] = option
        checked[option] = path
    return checked


class OutputSet:
    """Write a command's output files all or nothing.

    Each output is written to a dot-named temporary file beside its target
    (`.NAME.<random>.tmp`); leaving the `with` block normally renames them all into
    place; an exception (or Ctrl-C) removes every temporary file and every folder the
    set created, and no target is touched. If a rename itself fails half-way, the
    targets already replaced are restored (an old file comes back from a hard-link
    backup) or removed. OSError while writing becomes a one-line Spike2LoihiError.

        paths = check_output_paths({"--out": out})
        ...
        with OutputSet(paths) as outs:
            with outs.open("--out", "wb") as f:
                np.save(f, array)
            outs.write_text(Path("notes.txt"), "...")   # a Path works too
    """

    def __init__(self, paths: Optional[Mapping[str, Path]] = None):
        self.paths: Dict[str, Path] = dict(paths or {})
        self._staged: List[tuple] = []  # (label, tmp, target)
        self._made_dirs: List[Path] = []
        self._done = False

    # -- staging
    def _target(self, key: Union[str, PathLike]) -> tuple:
        if isinstance(key, str) and key in self.paths:
            return key, Path(self.paths[key])
        return os.fspath(key), Path(key)

    def _mkdirs(self, folder: Path) -> None:
        missing = []
        p = folder.absolute()
        while not p.exists() and p.parent != p:
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            d.mkdir()
            self._made_dirs.append(d)

    @contextlib.contextmanager
    def path(self, key: Union[str, PathLike]):
        """Yield a temporary path to write the output `key` (an option of `paths`, or a path) to."""
        from spike2loihi.fileio import temp_path_beside

        if self._done:
            raise RuntimeError("OutputSet: already committed or discarded")
        label, target = self._target(key)
        try:
            self._mkdirs(target.parent)
            tmp = temp_path_beside(target)
        except OSError as exc:
            raise Spike2LoihiError(f"{label}: cannot write {target} ({exc.strerror or exc})") from None
        self._staged.append((label, tmp, target))  # staged first: removed on failure, whatever happens
        try:
            yield tmp
        except OSError as exc:
            raise Spike2LoihiError(f"{label}: cannot write {target} ({exc.strerror or exc})") from None

    @contextlib.contextmanager
    def open(self, key: Union[str, PathLike], mode: str = "wb", **kwargs):
        """Yield an open file (default binary) whose content becomes output `key`."""
        with self.path(key) as tmp:
            with open(tmp, mode, **kwargs) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())

    def write_bytes(self, key, data: bytes) -> None:
        with self.open(key, "wb") as f:
            f.write(data)

    def write_text(self, key, text: str, encoding: str = "utf-8") -> None:
        with self.open(key, "w", encoding=encoding, newline="") as f:
            f.write(text)

    # -- the end
    def commit(self) -> None:
        """Rename every staged file into place (all or, on failure, none)."""
        from spike2loihi.fileio import new_file_mode, temp_path_beside

        self._done = True
        placed: List[tuple] = []  # (target, backup or None)
        backups: List[Path] = []
        label = ""
        try:
            for label, tmp, target in self._staged:
                os.chmod(tmp, new_file_mode(target))
                backup = None
                if os.path.isfile(target) and not os.path.islink(target):
                    backup = temp_path_beside(target, tag="old.")
                    os.unlink(backup)
                    try:
                        os.link(target, backup)
                        backups.append(backup)
                    except OSError:
                        backup = None
                os.replace(tmp, target)
                placed.append((target, backup))
        except BaseException as exc:
            for target, backup in reversed(placed):
                with contextlib.suppress(OSError):
                    if backup is not None:
                        os.replace(backup, target)
                    else:
                        os.unlink(target)
            self._cleanup()
            if isinstance(exc, OSError):
                raise Spike2LoihiError(f"{label}: cannot write ({exc.strerror or exc}); "
                                       "no output file was written") from None
            raise
        finally:
            for b in backups:
                with contextlib.suppress(OSError):
                    os.unlink(b)
        self._staged = []

    def discard(self) -> None:
        """Remove every temporary file and every folder this set created."""
        self._done = True
        self._cleanup()

    def _cleanup(self) -> None:
        for _label, tmp, _target in self._staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self._staged = []
        for d in reversed(self._made_dirs):
            with contextlib.suppress(OSError):
                d.rmdir()  # only if empty
        self._made_dirs = []

    def __enter__(self) -> "OutputSet":
        begin_work()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


# --------------------------------------------------------------------------- numbers

SEED_MAX = 2 ** 64 - 1  # torch.Generator.manual_seed takes 0..2**64-1 (negatives wrap modulo 2**64)
_INT_RE = re.compile(r"[+-]?[0-9]+")


class Int(click.ParamType):
    """An integer option in [min, max]; the error names the option and the range."""

    name = "integer"

    def __init__(self, min: Optional[int] = None, max: Optional[int] = None):
        self.min, self.max = min, max

    def expected(self) -> str:
        if self.min is not None and self.max is not None:
            return f"an integer in {self.min}..{self.max}"
        if self.min is not None:
            return f"an integer >= {self.min}"
        if self.max is not None:
            return f"an integer <= {self.max}"
        return "an integer"

    def convert(self, value, param, ctx):
        if isinstance(value, bool):
            self.fail(f"{value!r} is not {self.expected()}", param, ctx)
        if isinstance(value, int):
            v = value
        else:
            text = str(value).strip()
            if not _INT_RE.fullmatch(text):
                self.fail(f"{str(value)!r} is not {self.expected()}", param, ctx)
            v = int(text)
        if (self.min is not None and v < self.min) or (self.max is not None and v > self.max):
            self.fail(f"{v} is out of range: expected {self.expected()}", param, ctx)
        return v

    def __repr__(self):
        return f"Int({self.min}, {self.max})"


class Float(click.ParamType):
    """A finite number option in a range (inf and nan refused); the error names the option and the range."""

    name = "number"

    def __init__(self, min: Optional[float] = None, max: Optional[float] = None, min_open: bool = False,
                 max_open: bool = False, below_hint: str = ""):
        """`below_hint` is added to the message for values below the range (e.g. "--greedy takes the argmax")."""
        self.min, self.max, self.min_open, self.max_open = min, max, min_open, max_open
        self.below_hint = below_hint

    def expected(self) -> str:
        lo, hi = self.min, self.max
        if lo is not None and hi is not None:
            return f"a number in {'(' if self.min_open else '['}{lo:g}, {hi:g}{')' if self.max_open else ']'}"
        if lo is not None:
            return f"a finite number {'>' if self.min_open else '>='} {lo:g}"
        if hi is not None:
            return f"a finite number {'<' if self.max_open else '<='} {hi:g}"
        return "a finite number"

    def convert(self, value, param, ctx):
        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail(f"{str(value)!r} is not {self.expected()}", param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value} is not finite: expected {self.expected()}", param, ctx)
        lo, hi = self.min, self.max
        low = lo is not None and (v < lo or (self.min_open and v == lo))
        if low or (hi is not None and (v > hi or (self.max_open and v == hi))):
            hint = f" ({self.below_hint})" if low and self.below_hint else ""
            self.fail(f"{value} is out of range: expected {self.expected()}{hint}", param, ctx)
        return v

    def __repr__(self):
        return f"Float({self.min}, {self.max})"


SEED = Int(0, SEED_MAX)


def parse_int_list(text: str, source: str, lo: int, hi: int, what: str = "token id") -> List[int]:
    """Integers separated by commas and/or whitespace, each in lo..hi.

    An empty item between commas ('1,,2', a leading or trailing comma) is refused,
    as is anything but ASCII digits with an optional sign.
    """
    if not text.strip():
        raise Spike2LoihiError(f"{source}: no {what}s given")
    ids: List[int] = []
    for pos, item in enumerate(text.split(","), start=1):
        parts = item.split()
        if not parts:
            raise Spike2LoihiError(f"{source}: empty item at position {pos} (two commas in a row, or a comma "
                                   f"at the start or end); separate {what}s with single commas")
        for p in parts:
            if not _INT_RE.fullmatch(p):
                raise Spike2LoihiError(f"{source}: {p!r} is not an integer {what}")
            v = int(p)
            if not lo <= v <= hi:
                raise Spike2LoihiError(f"{source}: {what} {v} is outside the vocabulary {lo}..{hi}")
            ids.append(v)
    return ids


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask, which containers restrict)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cap_threads(threads: Optional[int], option: str = "--threads") -> Optional[int]:
    """`threads`, capped at the available cores with a warning (more threads than cores only slows torch)."""
    if threads is None:
        return None
    cores = available_cores()
    if threads > cores:
        warn(f"{option} {threads} is more than the {cores} available CPU core{'s' if cores != 1 else ''}; "
             f"using {cores}")
        return cores
    return threads


# --------------------------------------------------------------------------- progress

DELAY_S = 1.0  # show nothing for work that finishes sooner
TTY_INTERVAL_S = 0.1
LOG_INTERVAL_S = 5.0
PROGRESS_ENV = "SPIKE2LOIHI_PROGRESS"


def _duration(s: float) -> str:
    s = max(0, int(round(s)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    """Progress of long work on stderr, rate-limited; call it with (done[, total]).

        with Progress("prefill", total=len(ids), unit="tokens") as progress:
            for i, tok in enumerate(ids):
                step(tok)
                progress(i + 1)

    See the module docstring for when and how it shows. Leaving the `with` block (or
    `close()`) erases the terminal line, or on a log writes a closing line, if
    anything was shown.
    """

    _active: List["Progress"] = []

    def __init__(self, label: str, total: Optional[int] = None, unit: str = "steps", stream=None,
                 mode: Optional[str] = None, delay: float = DELAY_S):
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.mode = (mode or os.environ.get(PROGRESS_ENV, "auto")).strip().lower()
        if self.mode not in ("auto", "always", "never"):
            self.mode = "auto"
        try:
            self.tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self.tty = False
        self.t0 = time.monotonic()
        self.next_t = self.t0 + (0.0 if self.mode == "always" else delay)
        self.done = 0
        self.shown = False
        self.closed = False
        begin_work()
        Progress._active.append(self)

    def __call__(self, done: int, total: Optional[int] = None) -> None:
        if total is not None:
            self.total = total
        self.done = done
        if self.mode == "never" or self.closed:
            return
        now = time.monotonic()
        if now < self.next_t:
            return
        self.next_t = now + (TTY_INTERVAL_S if self.tty else LOG_INTERVAL_S)
        self._write(self.line(now), final=False)

    def line(self, now: Optional[float] = None) -> str:
        elapsed = (now or time.monotonic()) - self.t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        text = f"{self.label} {self.done:,}"
        if self.total:
            text += f"/{self.total:,} {self.unit} ({100 * self.done // self.total}%)"
        else:
            text += f" {self.unit}"
        if rate > 0:
            text += f", {rate:,.0f} {self.unit}/s" if rate >= 10 else f", {rate:.2f} {self.unit}/s"
            if self.total and self.done < self.total:
                text += f", {_duration((self.total - self.done) / rate)} left"
        return text

    def _write(self, text: str, final: bool) -> None:
        try:
            if self.tty:
                self.stream.write("\r" + text + "\x1b[K")
            else:
                self.stream.write(text + "\n")
            self.stream.flush()
            self.shown = True
        except (OSError, ValueError):
            self.mode = "never"  # stderr gone: work on silently

    def clear(self) -> None:
        """Erase the terminal line (before another message is printed there)."""
        if self.tty and self.shown:
            with contextlib.suppress(OSError, ValueError):
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            self.next_t = time.monotonic()  # redraw at the next step

    @classmethod
    def clear_all(cls) -> None:
        for p in cls._active:
            p.clear()

    def close(self, ok: bool = True) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(ValueError):
            Progress._active.remove(self)
        if not self.shown:
            return
        if self.tty:
            self.clear()
        elif ok:
            elapsed = time.monotonic() - self.t0
            with contextlib.suppress(OSError, ValueError):
                self.stream.write(f"{self.label} done: {self.done:,} {self.unit} in {elapsed:.1f} s\n")
                self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)


# --------------------------------------------------------------------------- interrupts

def _exit_interrupted_now(signum, frame):  # pragma: no cover - exercised in a subprocess
    with contextlib.suppress(OSError):
        os.write(2, (_line_start() + "interrupted\n").encode())
    os._exit(INTERRUPTED_EXIT)


_exit_interrupted_now._s2l_startup = True  # a program's own early handler may carry the mark too


def _is_startup_handler(handler) -> bool:
    return bool(getattr(handler, "_s2l_startup", False))


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install_startup_interrupt_handler() -> Callable[[], None]:
    """Make Ctrl-C print `interrupted` and exit 130 at once; return a function that undoes it.

    For start-up (imports, argument checks, loading): nothing exists yet that needs
    cleaning up, and an exit straight from the signal handler cannot end in a
    traceback from the middle of `import torch`. A SIGINT that is ignored (nohup,
    background jobs) or handled by someone else is left alone.
    """
    if not _in_main_thread():
        return lambda: None
    current = signal.getsignal(signal.SIGINT)
    if current is not signal.default_int_handler and not _is_startup_handler(current):
        return lambda: None
    signal.signal(signal.SIGINT, _exit_interrupted_now)

    def restore() -> None:
        now = signal.getsignal(signal.SIGINT)
        if _in_main_thread() and (now is signal.default_int_handler or _is_startup_handler(now)):
            signal.signal(signal.SIGINT, signal.default_int_handler)

    return restore


def begin_work() -> None:
    """From here on Ctrl-C raises KeyboardInterrupt, so that cleanup and partial reports run."""
    if _in_main_thread() and _is_startup_handler(signal.getsignal(signal.SIGINT)):
        signal.signal(signal.SIGINT, signal.default_int_handler)


# --------------------------------------------------------------------------- the command group

class _Interrupted(Exception):
    """KeyboardInterrupt, carried past click's own handling (which prints a blank line)."""


class _BrokenPipe(Exception):
    pass


def _option_name(param) -> str:
    opts = getattr(param, "opts", None) or []
    longs = [o for o in opts if o.startswith("--")]
    if longs:
        return longs[0]
    if opts and isinstance(param, click.Option):
        return opts[0]
    return param.human_readable_name


def _usage_message(exc: click.UsageError) -> str:
    if isinstance(exc, click.BadParameter) and not isinstance(exc, click.MissingParameter) \
            and exc.param is not None and exc.param_hint is None:
        msg = f"{_option_name(exc.param)}: {exc.message}"
    else:
        msg = exc.format_message()
    msg = one_line(msg).rstrip(".")
    if len(msg) > 1 and msg[0].isupper() and msg[1].islower():
        msg = msg[0].lower() + msg[1:]
    return msg


class CommandGroup(click.Group):
    """The `spike2loihi` group: every failure of every command is one line on stderr.

    - click usage errors: `error: <message> (see 'spike2loihi CMD --help')`, exit 2;
    - Spike2LoihiError: `error: <message>`, exit `exc.exit_code`;
    - Ctrl-C: `interrupted`, exit 130 (see `install_startup_interrupt_handler`);
    - stdout closed early (`| head`): exit 141 quietly.
    Anything else escaping is a bug and keeps its traceback.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted() from None
        except BrokenPipeError:
            raise _BrokenPipe() from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        restore = install_startup_interrupt_handler()
        try:
            code = self._main(args, prog_name or self.name, complete_var, **extra)
        finally:
            restore()
        if standalone_mode:
            sys.exit(code)
        return code

    def _main(self, args, prog_name, complete_var, **extra) -> int:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
        except click.exceptions.NoArgsIsHelpError as exc:  # `spike2loihi` alone: the help text
            exc.show()
            return exc.exit_code
        except click.UsageError as exc:
            if exc.ctx is not None:
                path = exc.ctx.command_path
            else:  # some parser errors carry no context: the command is the first of its names given
                argv = sys.argv[1:] if args is None else [str(a) for a in args]
                sub = next((a for a in argv if a in self.commands), None)
                path = f"{prog_name} {sub}" if sub else prog_name
            _emit(f"error: {_usage_message(exc)} (see '{path} --help')")
            return exc.exit_code
        except click.ClickException as exc:
            _emit(f"error: {exc.format_message()}")
            return exc.exit_code
        except Spike2LoihiError as exc:
            _emit(f"error: {exc}")
            return exc.exit_code
        except (_Interrupted, KeyboardInterrupt, click.Abort):
            _emit("interrupted")
            return INTERRUPTED_EXIT
        except _BrokenPipe:
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            return 128 + signal.SIGPIPE
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            return 128 + signal.SIGPIPE
