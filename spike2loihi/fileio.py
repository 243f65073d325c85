"""Write outputs atomically: a temporary file beside the target, then rename; check output
paths before any work; write several outputs all or nothing.

A crash or Ctrl-C mid-write leaves the previous file (or none), never half of one.
The file that appears has the mode any other tool would give it: an existing
target keeps its permission bits; a new one gets 0666 & ~umask (0644 under the
usual umask 022), not the 0600 of the temporary file.

For a command's output files, `check_output_paths` (the preflight of every path:
folder, file system, name length, writability, no clobbered input) and `OutputSet`
(several outputs written all or nothing) build on these. They live here, below
the CLI, for the commands (spike2loihi.cli.rules adds the Ctrl-C switch to
OutputSet) and for the deploy bundle's board-side checker alike; `filesystem_type`
and `SPECIAL_FILESYSTEMS` also serve the bundle's folder check.
"""
import contextlib
import os
import re
import stat
import tempfile
import threading
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Union

from spike2loihi.errors import Spike2LoihiError

TEMP_SUFFIX = ".tmp"
_NAME_IN_TEMP = 64  # characters of the target's name kept in the temporary name (NAME_MAX is 255 bytes)
PathLike = Union[str, os.PathLike]


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


def folder_in_use(path: Path, where: str, what: str, error=Spike2LoihiError) -> bool:
    """Whether an `-o DIR` folder exists and holds files; `error` (naming `where`) when it is a file, not a
    folder for `what`."""
    if not (path.exists() or path.is_symlink()):
        return False
    if not path.is_dir():
        raise error(f"{where}: is a file, expected a folder for {what}")
    return any(path.iterdir())


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


def check_output_paths(outputs: Mapping[str, Optional[PathLike]],
                       inputs: Optional[Mapping[str, Optional[PathLike]]] = None) -> Dict[str, Path]:
    """Check every output path of a command before any work; return {option: Path} of those given.

    `outputs` maps each output option's name (as the user typed it, e.g. "--dump-logits")
    to its value (None when not given: skipped); declare the options with
    `type=OUTPUT_PATH` (spike2loihi.cli.rules) so that the value arrives as typed.
    `inputs` names the command's input files (e.g. {"CHECKPOINT": ckpt}), which no
    output may overwrite. Each output must be a
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
    (spike2loihi.cli.rules.OutputSet is this class for the commands: entering it also
    switches Ctrl-C from the start-up exit to KeyboardInterrupt.)

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
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()
