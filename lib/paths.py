"""Project roots and the configurable locations of external inputs.

Every other path comes from ``params.yaml`` or a function argument. External inputs (the
datasets and pretrained weights) are looked up in this order: an explicit argument or params
key, then an environment variable, then (only when a download was asked for) the official
download location.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "ROOT",
    "DATA_ENV",
    "WEIGHTS_ENV",
    "GOLDEN_ENV",
    "project_path",
    "raw_dir",
    "processed_dir",
    "reports_dir",
    "mirror_root",
    "git_revision",
]

ROOT = Path(__file__).resolve().parent.parent
DATA_ENV = "ASAPNET_DATA"  # a folder with the layout of the data mirror (bsd68/, facades/, ...)
WEIGHTS_ENV = "ASAPNET_WEIGHTS"  # a folder with the layout of the weights mirror (dncnn/, ...)
GOLDEN_ENV = "ASAPNET_GOLDEN"  # a folder of official generators' outputs (tests/test_golden.py, tests/golden.sha256)


def project_path(path: str | os.PathLike) -> Path:
    """A params path as the stages read it: ``~`` expanded, absolute as given, relative ones
    against the project root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else ROOT / path


def raw_dir(root: Path | None = None) -> Path:
    """``data/raw``: immutable inputs, filled by the fetch stage."""
    return (root or ROOT) / "data" / "raw"


def processed_dir(root: Path | None = None) -> Path:
    """``data/processed``: stage outputs that are not committed (checkpoints, generated images)."""
    return (root or ROOT) / "data" / "processed"


def reports_dir(root: Path | None = None) -> Path:
    """``reports``: committed metrics, figures and the HTML report."""
    return (root or ROOT) / "reports"


def mirror_root(explicit: str | os.PathLike | None, env: str) -> Path | None:
    """Resolves a local mirror: the explicit value (a params key) wins over ``$env``.

    Args:
        explicit: a path from params or the command line, or ``None``/empty.
        env: the environment variable consulted when ``explicit`` is not set.

    Returns:
        The mirror folder, or ``None`` when neither is set.

    Raises:
        FileNotFoundError: the configured folder does not exist (names where it came from).
    """
    if explicit:
        path, origin = Path(explicit).expanduser(), "params"
    elif os.environ.get(env):
        path, origin = Path(os.environ[env]).expanduser(), f"${env}"
    else:
        return None
    if not path.is_absolute():
        path = (ROOT / path).resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"local mirror {path} (from {origin}) is not a folder")
    return path


CODE_PATHS = ("lib", "notebooks", "scripts", "params.yaml", "dvc.yaml", "scales", "requirements.txt")


def git_revision(root: Path | None = None) -> str:
    """The current git commit, or ``unknown``.

    ``-dirty`` is appended when the code (``CODE_PATHS``: library, notebooks, params,
    pipeline) differs from that commit; regenerated outputs do not count.
    """
    import subprocess

    root = root or ROOT
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
