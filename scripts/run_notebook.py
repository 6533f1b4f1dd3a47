"""Runs one pipeline notebook with papermill and publishes the executed copy only on success.

DVC stages call this instead of papermill directly, so that a stage that fails leaves the
committed executed notebook in ``reports/runs/`` untouched: the notebook runs into a
temporary file beside the destination; on success that file is renamed into place, on failure
it is kept as ``reports/runs/failed/<name>`` (git-ignored) and the error is printed with its path.

Usage (the arguments after the output path are papermill's, e.g. ``-p key value``)::

    python scripts/run_notebook.py notebooks/NN-x.ipynb reports/runs/NN-x.ipynb -p params_file params.yaml
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PAPERMILL_OPTIONS = ["--cwd", ".", "--log-level", "WARNING", "--progress-bar", "--stderr-file", "/dev/stderr"]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    src, dest, rest = Path(argv[0]), Path(argv[1]), argv[2:]
    if not src.is_file():
        print(f"error: notebook not found: {src}", file=sys.stderr)
        return 2
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp.ipynb")
    papermill = [sys.executable, "-m", "papermill", *PAPERMILL_OPTIONS, str(src), str(tmp), *rest]
    code = subprocess.call(papermill)
    if code == 0:
        os.replace(tmp, dest)
        return 0
    failed = dest.parent / "failed" / dest.name
    if tmp.exists():
        failed.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, failed)
        print(f"error: {src} failed (exit {code}); the executed notebook is in {failed}; "
              f"{dest} was left as it was", file=sys.stderr)
    else:
        print(f"error: {src} failed (exit {code}) before it ran; {dest} was left as it was", file=sys.stderr)
    return code or 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
