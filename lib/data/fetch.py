"""Fills ``data/raw/`` with the datasets and pretrained weights, every file checked by sha256.

Sources, in order: the files already in place (kept when their hash is right), a local
mirror (a folder laid out like ``<mirror>/<name>/...`` for data, ``<mirror>/<relative path>``
for weights; from the argument/params key ``fetch.data_mirror`` / ``fetch.weights_mirror`` or
``$ASAPNET_DATA`` / ``$ASAPNET_WEIGHTS``), then the official download locations (pinned GitHub
commits, the CMP archive, the pytorch-fid release) when ``download`` is true, or when it is
``"auto"`` (the ``fetch.download`` default) and no local copy of that kind is configured. CamVid
is kept 2x smaller than published: its download checks every original against
``checksums/camvid_originals.sha256`` and then downscales it with the recorded recipe.

The expected hashes are committed in ``lib/data/checksums/<name>.sha256`` (``sha256sum``
format, paths relative to the dataset folder, or to the weights folder for weight entries).
Files are assembled in a temporary folder beside the destination and renamed into place only
when every file has been verified, so an interrupted run never leaves a half-filled dataset.

Command line::

    python -m lib.data.fetch --out data/raw [--data-mirror D] [--weights-mirror W] [--download | --offline] NAME...
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from lib.data.download import DownloadError, stage_download
from lib.data.sources import DATASETS, Entry
from lib.io import read_text
from lib.paths import DATA_ENV, WEIGHTS_ENV, mirror_root

__all__ = ["outputs",
    "fetch",
    "fetch_all",
    "verify",
    "dataset_dir",
    "present_files",
    "read_checksums",
    "sha256_file",
    "FetchConfig",
    "CHECKSUM_DIR",
    "DEFAULT_TIMEOUT_S",
    "DownloadError",
    "wants_download",
    "main",
]

CHECKSUM_DIR = Path(__file__).resolve().parent / "checksums"
DEFAULT_TIMEOUT_S = 60.0  # seconds per network read (urllib timeout)
WEIGHTS_SUBDIR = "weights"  # weights go to <dest_root>/weights/<path as in the weights mirror>


@dataclass(frozen=True)
class FetchConfig:
    """``fetch`` params section: where raw data and weights come from (never the network unless asked)."""

    data_mirror: str | None = None  # folder laid out like the data mirror; None -> $ASAPNET_DATA
    weights_mirror: str | None = None  # None -> $ASAPNET_WEIGHTS
    # True: fetch missing files from the official locations; "auto": only when no local copy
    # (mirror key or environment variable) of that kind is configured; False: never touch the network
    download: bool | Literal["auto"] = "auto"
    # cityscapes_subset (no public download: a login) and camvid (research use, ~50 MB) are fetched only when listed
    datasets: tuple[str, ...] = ("bsd68", "set12", "cbsd68", "train400", "cbsd432", "facades")
    weights: tuple[str, ...] = ("fid_inception", "dncnn_official")

    def __post_init__(self) -> None:
        if not self.datasets and not self.weights:
            raise ValueError("datasets and weights are both empty: nothing to fetch")
        unknown = [n for n in (*self.datasets, *self.weights) if n not in DATASETS]
        if unknown:
            raise ValueError(f"unknown dataset/weights {unknown}; known: {', '.join(DATASETS)}")


def wants_download(download: bool | str, kind: str, mirror: str | os.PathLike | None = None) -> bool:
    """Whether the official locations may be used: ``download`` itself when a bool; for
    ``"auto"``, True exactly when no local copy of ``kind`` (``"data"`` or ``"weights"``) is
    configured, neither by ``mirror`` nor by ``$ASAPNET_DATA`` / ``$ASAPNET_WEIGHTS``."""
    if isinstance(download, bool):
        return download
    if download != "auto":
        raise ValueError(f"fetch.download={download!r}: expected true, false or auto")
    return not (mirror or os.environ.get(DATA_ENV if kind == "data" else WEIGHTS_ENV))


# ----------------------------------------------------------------------------- public API


def fetch(
    name: str,
    dest_root: str | os.PathLike,
    mirror: str | os.PathLike | None = None,
    weights_mirror: str | os.PathLike | None = None,
    download: bool | str = False,
    *,
    checksum_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    progress: bool = True,
) -> Path:
    """Makes ``name`` present and verified under ``dest_root``.

    Args:
        name: a :data:`DATASETS` key.
        dest_root: ``data/raw``.
        mirror: local data mirror (else ``$ASAPNET_DATA``).
        weights_mirror: local weights mirror (else ``$ASAPNET_WEIGHTS``).
        download: allow downloading from the official locations (``"auto"``: only when no
            local copy of this kind is configured, :func:`wants_download`).
        checksum_dir: folder of ``<name>.sha256`` files (default :data:`CHECKSUM_DIR`).
        base_url: replaces scheme and host of every download URL (e.g. a ``file://`` folder
            laid out as ``<base>/<URL path>``), for testing or a site proxy.
        timeout: network timeout in seconds.
        progress: show tqdm progress bars for downloads.

    Returns:
        The dataset folder (``<dest_root>/<name>``; ``<dest_root>/weights`` for weights).

    Raises:
        KeyError: unknown name (the known names are listed).
        FileNotFoundError: no source has the files (names both ways to provide them), or a
            mirror lacks a listed file.
        ValueError: a file's sha256 differs from the committed one (file and hash named).
        RuntimeError: a download failed (:class:`DownloadError`: names the dataset, the URL and
            both ways to provide a local copy), or the dataset has no download (what to do instead).
    """
    return _fetch(
        name, Path(dest_root), mirror, weights_mirror, download,
        checksum_dir=checksum_dir, base_url=base_url, timeout=timeout, progress=progress,
    )["path"]


def fetch_all(
    names: Sequence[str],
    dest_root: str | os.PathLike,
    mirror: str | os.PathLike | None = None,
    weights_mirror: str | os.PathLike | None = None,
    download: bool | str = False,
    **kwargs,
) -> list[dict]:
    """Fetches several entries (see :func:`fetch`; same keyword arguments).

    Returns:
        One row per name: ``name``, ``files`` (count), ``bytes``, ``source`` (``"present"``,
        ``"mirror"`` or ``"download"``), ``copied`` (files copied/downloaded now), ``path``.
    """
    return [_fetch(n, Path(dest_root), mirror, weights_mirror, download, **kwargs) for n in names]


def verify(name: str, dest_root: str | os.PathLike, checksum_dir: str | os.PathLike | None = None) -> Path:
    """Checks an already fetched entry against its committed hashes.

    Returns:
        The dataset folder.

    Raises:
        FileNotFoundError: a listed file is missing (file and expected hash named).
        ValueError: a file's hash differs (file, found and expected hash named).
    """
    entry = _entry(name)
    expected = _expected(entry, checksum_dir)
    folder = dataset_dir(name, dest_root)
    _verify_tree(folder, expected, entry.one_of)
    return folder


def dataset_dir(name: str, dest_root: str | os.PathLike) -> Path:
    """Where :func:`fetch` puts ``name``: ``<dest_root>/<name>`` or ``<dest_root>/weights``."""
    entry = _entry(name)
    return Path(dest_root) / (WEIGHTS_SUBDIR if entry.kind == "weights" else entry.name)


def present_files(name: str, dest_root: str | os.PathLike, checksum_dir: str | os.PathLike | None = None) -> list[Path]:
    """The listed files of ``name`` that exist under ``dest_root`` (no hashing), in list order.

    For ``fid_inception`` this gives whichever of the accepted files is present.
    """
    folder = dataset_dir(name, dest_root)
    return [folder / rel for rel in _expected(_entry(name), checksum_dir) if (folder / rel).is_file()]


def read_checksums(path: str | os.PathLike) -> dict[str, str]:
    """Parses a ``sha256sum`` file: ``<64 hex>  <relative path>`` per line (``*path`` accepted).

    Returns:
        ``{relative path: hex digest}`` in file order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a malformed line (file and line number named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checksum file not found: {path}")
    out: dict[str, str] = {}
    for no, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        digest, _, rel = line.partition(" ")
        rel = rel[1:] if rel.startswith((" ", "*")) else rel
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()) or not rel:
            raise ValueError(f"{path}:{no}: not a sha256sum line: {line!r}")
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise ValueError(f"{path}:{no}: path must be relative and inside the folder: {rel!r}")
        out[rel] = digest.lower()
    if not out:
        raise ValueError(f"{path}: no entries")
    return out


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- internals


def _entry(name: str) -> Entry:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def _expected(entry: Entry, checksum_dir: str | os.PathLike | None) -> dict[str, str]:
    return read_checksums(Path(checksum_dir or CHECKSUM_DIR) / f"{entry.name}.sha256")


def _file_ok(path: Path, digest: str) -> bool:
    return path.is_file() and sha256_file(path) == digest


def _verify_tree(base: Path, expected: dict[str, str], one_of: bool) -> None:
    """Raises naming the first missing/mismatching file (``one_of``: missing ones are fine
    as long as one is present)."""
    present = 0
    for rel, digest in expected.items():
        path = base / rel
        if not path.is_file():
            if one_of:
                continue
            raise FileNotFoundError(f"missing file {path} (expected sha256 {digest})")
        found = sha256_file(path)
        if found != digest:
            raise ValueError(f"sha256 mismatch for {path}: found {found}, expected {digest}")
        present += 1
    if one_of and not present:
        raise FileNotFoundError(
            f"none of the accepted files is in {base}: "
            + "; ".join(f"{rel} (sha256 {d})" for rel, d in expected.items())
        )


def _local_copy_hint(entry: Entry) -> str:
    """The two ways to point the fetch stage at a local copy of ``entry``."""
    env, key = (DATA_ENV, "fetch.data_mirror") if entry.kind == "data" else (WEIGHTS_ENV, "fetch.weights_mirror")
    layout = f"a folder containing {entry.name}/" if entry.kind == "data" else "a folder laid out like the weights mirror"
    return f"set ${env} or the params key {key} to a local copy ({layout})"


def _no_source_message(entry: Entry) -> str:
    msg = (
        f"dataset {entry.name!r} ({entry.description}) is not in place and no source is configured: "
        f"either {_local_copy_hint(entry)}, "
        "or set fetch.download: true (command line: --download) to fetch it from its official location"
    )
    if not entry.sources:
        msg += f". Note: {entry.no_download}"
    return msg


def _swap_into_place(staged: Path, final: Path) -> None:
    """Renames ``staged`` to ``final``; an existing folder is moved aside first, then removed."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.is_dir() and not final.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
        old.rmdir()
        os.rename(final, old)
        os.rename(staged, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, final)


def _fetch(
    name: str,
    dest_root: Path,
    mirror,
    weights_mirror,
    download: bool | str,
    *,
    checksum_dir=None,
    base_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    progress: bool = True,
) -> dict:
    entry = _entry(name)
    expected = _expected(entry, checksum_dir)
    if entry.kind == "data":
        base, prefix = dest_root, entry.name  # paths inside the dataset folder
        root = mirror_root(mirror, DATA_ENV)
        src_dir = root / entry.name if root is not None else None
    else:
        base, prefix = dest_root / WEIGHTS_SUBDIR, ""
        root = mirror_root(weights_mirror, WEIGHTS_ENV)
        src_dir = root
    final_dir = base / prefix if prefix else base

    def row(source: str, copied: int) -> dict:
        files = [final_dir / r for r in expected if (final_dir / r).is_file()]
        return dict(name=name, files=len(files), bytes=sum(f.stat().st_size for f in files),
                    source=source, copied=copied, path=final_dir)

    # 1. Already complete?
    good = {r for r, d in expected.items() if _file_ok(final_dir / r, d)}
    bad = {r for r in expected if (final_dir / r).exists() and r not in good}
    if (good and not bad and entry.one_of) or len(good) == len(expected):
        return row("present", 0)

    # 2. Choose the source for the rest.
    download = wants_download(download, entry.kind, mirror if entry.kind == "data" else weights_mirror)
    use_mirror = src_dir is not None and (src_dir.is_dir() if entry.kind == "data" else True)
    if not use_mirror and not download:
        if root is not None:  # mirror configured but without this dataset
            raise FileNotFoundError(
                f"dataset {entry.name!r}: the mirror {root} has no folder {entry.name}/; "
                + _no_source_message(entry)
            )
        raise FileNotFoundError(_no_source_message(entry))
    if not use_mirror and not entry.sources:
        raise RuntimeError(f"dataset {entry.name!r} has no download: {_local_copy_hint(entry)}. {entry.no_download}")

    base.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".partial", dir=base))
    try:
        # Files already in place with the right hash are reused (hard link, else copy).
        for rel in good:
            target = stage / prefix / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(final_dir / rel, target)
            except OSError:
                shutil.copy2(final_dir / rel, target)
        copied = 0
        if use_mirror:
            source = "mirror"
            for rel, digest in expected.items():
                if rel in good:
                    continue
                src = src_dir / rel
                if not src.is_file():
                    if entry.one_of:
                        continue
                    raise FileNotFoundError(
                        f"mirror file missing: {src} (expected sha256 {digest}); fix the mirror {root} "
                        "or set fetch.download: true"
                    )
                target = stage / prefix / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
                copied += 1
        else:
            source = "download"
            before = {r for r in expected if (stage / prefix / r).is_file()}
            try:
                stage_download(entry, expected, stage, prefix, before, base_url, timeout, progress, _local_copy_hint(entry),
                               checksum_dir=Path(checksum_dir or CHECKSUM_DIR))
            except DownloadError as e:
                raise DownloadError(
                    f"dataset {entry.name!r} ({entry.description}): {e}. Without network access, "
                    f"{_local_copy_hint(entry)} and run again", e.url,
                ) from e
            copied = sum((stage / prefix / r).is_file() for r in expected) - len(before)
        _verify_tree(stage / prefix if prefix else stage, expected, entry.one_of)
        # Move into place: the whole dataset folder, or each top-level weights item.
        units = [prefix] if prefix else sorted({Path(r).parts[0] for r in expected if (stage / r).exists()})
        for unit in units:
            _swap_into_place(stage / unit, base / unit)
        if entry.one_of:  # a corrupt alternative left over from before is removed
            for rel in bad:
                if (final_dir / rel).is_file() and not _file_ok(final_dir / rel, expected[rel]):
                    (final_dir / rel).unlink()
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return row(source, copied)


# ----------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints one line per dataset. Returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m lib.data.fetch", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="+", metavar="NAME", help=f"'all' or any of: {', '.join(DATASETS)}")
    parser.add_argument("--out", required=True, help="destination root, e.g. data/raw")
    parser.add_argument("--data-mirror", default=None, help=f"local data mirror (default ${DATA_ENV})")
    parser.add_argument("--weights-mirror", default=None, help=f"local weights mirror (default ${WEIGHTS_ENV})")
    net = parser.add_mutually_exclusive_group()
    net.add_argument("--download", dest="download", action="store_const", const=True, default="auto",
                     help="download from the official locations if needed, even with a mirror configured "
                          "(default: download only when no mirror is configured)")
    net.add_argument("--offline", dest="download", action="store_const", const=False,
                     help="never touch the network: mirror or files already in place only")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="network timeout (s)")
    args = parser.parse_args(argv)
    names = list(DATASETS) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        parser.error(f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(DATASETS)}")
    if not args.timeout > 0:
        parser.error(f"--timeout {args.timeout}: must be > 0 seconds")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        parser.error(f"--out {args.out}: exists and is not a folder")
    try:
        for name in names:
            r = _fetch(name, Path(args.out), args.data_mirror, args.weights_mirror, args.download,
                       timeout=args.timeout)
            print(f"{r['name']}: {r['files']} files, {r['bytes'] / 1e6:.1f} MB, {r['source']} "
                  f"({r['copied']} copied) -> {r['path']}", flush=True)
    except (OSError, ValueError, RuntimeError) as e:  # FileNotFoundError, PermissionError, ... name their path
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())


def outputs() -> dict[str, str]:
    """The ``fetch`` stage's outputs (project-relative; ``dvc.yaml`` declares the same paths)."""
    return {"out_dir": "data/raw"}
