"""Atomic file output: a stage either leaves a complete file or none.

DVC treats an existing output as done, so every metrics, CSV, image and checkpoint write
goes to a temporary file in the same folder (``.<name>.<pid>.<random>.tmp``), is flushed to disk
and renamed into place. A process killed inside a write leaves only such a temporary file;
the next write to the same path removes it (see :func:`remove_stale_temps`).
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_path", "remove_stale_temps", "write_json", "write_text", "write_csv", "read_json"]

STALE_TEMP_S = 60.0  # a temporary file untouched this long belongs to a killed writer


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it to ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
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
        os.replace(tmp, path)
        _fsync(path.parent)  # the rename itself reaches the disk
    finally:
        if tmp.exists():
            tmp.unlink()


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


def read_json(path: str | os.PathLike) -> Any:
    """Reads JSON, naming the file on a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from e


def write_csv(path: str | os.PathLike, frame) -> Path:
    """Writes a pandas DataFrame to CSV atomically (no index)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)
