"""Atomic file output: a stage either leaves a complete file or none; one writer per folder.

DVC treats an existing output as done, so every metrics, CSV, image and checkpoint write
goes to a temporary file in the same folder (``.<name>.<pid>.<random>.tmp``), is flushed to disk
and renamed into place. A process killed inside a write leaves only such a temporary file;
the next write to the same path removes it (see :func:`remove_stale_temps`). With
``overwrite=False`` the temporary file is linked into place instead, which fails when the
target exists (no check-then-write race).

A run that writes a folder of outputs (training, evaluation, batch translation) holds that
folder's :class:`FolderLock`: an exclusive ``flock`` on ``<folder>/.writer.lock``. The kernel
releases it when the process ends, however it ends (``kill -9`` included), so a lock is never
stale; a second writer fails at once, naming the folder and the pid that holds it. The lock
file is removed on release (a killed holder leaves it; the next writer takes it over).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_path", "remove_stale_temps", "write_json", "write_text", "write_csv", "read_json", "read_text",
           "files_digest", "FolderLock", "FolderBusyError", "LOCK_NAME"]

LOCK_NAME = ".writer.lock"  # the lock file of a folder's writer (FolderLock)

STALE_TEMP_S = 60.0  # a temporary file untouched this long belongs to a killed writer


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it to ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.

    Args:
        path: the destination.
        overwrite: replace an existing ``path`` (default); ``False`` raises
            :class:`FileExistsError` naming it instead, and leaves it as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual mode
        _fsync(tmp)
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
        _fsync(path.parent)  # the rename itself reaches the disk
    finally:
        if tmp.exists():
            tmp.unlink()


def _link_new(tmp: Path, path: Path) -> None:
    """Puts ``tmp`` in place as ``path`` only if ``path`` does not exist (a hard link, atomic)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path}: exists already (not written by this run)") from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        # a file system without hard links: check, then rename (a small window remains)
        if os.path.lexists(path):
            raise FileExistsError(f"{path}: exists already (not written by this run)") from None
        os.replace(tmp, path)


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a folder
        pass
    finally:
        os.close(fd)


def _writer_alive(tmp: Path, name: str) -> bool | None:
    """Whether the process that created ``tmp`` (its pid is in the name) still runs; None if unknown."""
    pid = tmp.name[len(name) + 2 :].split(".", 1)[0]
    if not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return int(pid) != os.getpid() or None


def remove_stale_temps(path: str | os.PathLike, older_than_s: float = STALE_TEMP_S) -> list[Path]:
    """Removes the temporary files that killed writers of ``path`` left beside it: those whose
    writer process is gone, and those of unknown writer untouched for ``older_than_s`` seconds
    (a live concurrent writer's file is kept). Returns the removed paths."""
    path = Path(path)
    removed = []
    now = time.time()
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            alive = _writer_alive(tmp, path.name)
            if alive is False or (alive is None and now - tmp.stat().st_mtime >= older_than_s):
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:
            continue
    return removed


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Writes ``obj`` as indented JSON atomically (NaN/inf are written as strings)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            return str(v)
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if hasattr(v, "item") and callable(v.item):  # numpy / torch scalars
            return clean(v.item())
        return v

    return write_text(path, json.dumps(clean(obj), indent=2, sort_keys=False) + "\n")


def read_text(path: str | os.PathLike) -> str:
    """The text of a UTF-8 file (lists, checksums, parameters).

    Raises:
        ValueError: the file is not UTF-8 text (names it and the first bad byte's offset).
    """
    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
                         "save it as UTF-8") from None


def read_json(path: str | os.PathLike) -> Any:
    """Reads JSON, naming the file on a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: {path}")
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from e


def write_csv(path: str | os.PathLike, frame) -> Path:
    """Writes a pandas DataFrame to CSV atomically (no index)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)


def files_digest(paths: "list[str | os.PathLike]") -> str:
    """The SHA-256 of an ordered list of files: each file's path relative to their common
    folder, its size and its contents (so the same files elsewhere give the same digest, and
    other contents under the same names a different one).

    Raises:
        FileNotFoundError: a file is missing (names it).
    """
    files = [Path(os.path.abspath(p)) for p in paths]
    root = os.path.commonpath([str(f.parent) for f in files]) if files else "."
    total = hashlib.sha256()
    for f in files:
        content = hashlib.sha256()
        try:
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    content.update(block)
        except FileNotFoundError:
            raise FileNotFoundError(f"training data file not found: {f}") from None
        total.update(f"{os.path.relpath(f, root)}\0{f.stat().st_size}\0{content.hexdigest()}\n".encode())
    return total.hexdigest()


class FolderBusyError(RuntimeError):
    """Another process holds the folder's :class:`FolderLock`."""


class FolderLock:
    """The exclusive writer lock of a folder: ``flock`` on ``<folder>/.writer.lock``.

    Use as a context manager (``with FolderLock(out): ...``) or :meth:`acquire` /
    :meth:`release`. The lock file holds the pid of the holder (for the message of a second
    writer); the lock itself is the kernel's, released when the holder closes it or dies.
    :meth:`release` removes the file while still holding the lock, and :meth:`acquire` checks
    that the file it locked is still the one at the path (else it retries), so removing it
    never lets two writers in. Acquiring a lock this process already holds (e.g. a training
    loop inside a notebook that holds the same folder) is a no-op.
    """

    def __init__(self, folder: str | os.PathLike, what: str = "run") -> None:
        self.folder, self.what = Path(folder), what
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "FolderLock":
        """Takes the lock (creating the folder), or raises at once.

        Raises:
            FolderBusyError: another process holds it (names the folder and its pid).
            ValueError: the folder cannot be created or the lock file opened (names it).
        """
        if self._fd is not None:
            return self
        while True:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            except OSError as e:
                raise ValueError(f"{self.folder}: cannot lock the output folder ({e.strerror or e})") from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = _read_pid(fd)
                os.close(fd)
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise ValueError(f"{self.folder}: cannot lock the output folder ({e.strerror or e})") from e
                if holder == os.getpid():
                    return self  # held by this process already: nested use
                who = f"pid {holder}" if holder else "another process"
                raise FolderBusyError(f"{self.folder}: another {self.what} ({who}) is writing to this folder; "
                                      "wait for it to finish or stop it") from None
            try:
                mine, now = os.fstat(fd), os.stat(self.path)
                if (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino):
                    break
            except FileNotFoundError:
                pass
            os.close(fd)  # locked a file its releasing holder had just removed: lock the new one
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Removes the lock file and releases the lock."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                self.path.unlink()  # still locked: a writer that opened it retries on the new file
            except OSError:
                pass
            os.close(fd)  # closing the only descriptor releases the flock

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
