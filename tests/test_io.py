"""lib.io: atomic writes survive a killed writer and clean up after it."""
from __future__ import annotations

import os
import subprocess
import sys

from lib.io import atomic_path, remove_stale_temps, write_text


def test_atomic_write_removes_temps_of_killed_writers(tmp_path):
    """A write killed before its rename leaves `.<name>.<pid>.*.tmp`; the next write of the
    same file removes it when that pid is gone, and keeps a live writer's file."""
    target = tmp_path / "checkpoint.pt"
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f".checkpoint.pt.{int(proc.stdout)}.abc123.tmp"  # that process has exited
    dead.write_bytes(b"x" * 1024)
    live = tmp_path / f".checkpoint.pt.{os.getppid()}.def456.tmp"  # our parent is alive
    live.write_bytes(b"y")
    write_text(target, "done")
    assert target.read_text() == "done"
    assert not dead.exists() and live.exists()
    with atomic_path(target) as tmp:
        assert tmp.name.startswith(f".checkpoint.pt.{os.getpid()}.")
        tmp.write_text("again")
    assert target.read_text() == "again" and sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, live.name])


def test_stale_temp_of_unknown_writer_removed_only_when_old(tmp_path):
    target = tmp_path / "m.json"
    odd = tmp_path / ".m.json.nopid.tmp"
    odd.write_text("x")
    assert remove_stale_temps(target, older_than_s=3600) == []
    assert remove_stale_temps(target, older_than_s=0) == [odd] and not odd.exists()
