"""Downloading a catalogue entry (:mod:`lib.data.sources`) from its pinned public locations into a staging folder.

Used by :mod:`lib.data.fetch`, which verifies every file against its sha256 before anything is
moved into ``data/raw/``.
"""
from __future__ import annotations

import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from lib.data.sources import Entry, IdList, RemoteFiles, RemoteZip
from lib.io import read_text

__all__ = ["DownloadError", "plan_sources", "stage_download"]


class DownloadError(RuntimeError):
    """A download failed; ``url`` is the address that was tried."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url


def plan_sources(entry: Entry, expected: dict[str, str]) -> list[tuple[object, list[str]]]:
    """Assigns every listed file to one download source; raises on a registry gap."""
    claimed: set[str] = set()
    plan = []
    for src in entry.sources:
        if isinstance(src, IdList):
            rels = [src.path]
        elif isinstance(src, RemoteFiles) and src.names is not None:
            rels = [f"{src.local_dir}/{n}" if src.local_dir else n for n in src.names]
        else:
            prefix = f"{src.local_dir}/" if src.local_dir else ""
            rels = [r for r in expected if r.startswith(prefix) and r not in claimed]
        for rel in rels:
            if rel not in expected:
                raise RuntimeError(f"registry entry {entry.name!r}: {rel} is not in {entry.name}.sha256")
            if rel in claimed:
                raise RuntimeError(f"registry entry {entry.name!r}: {rel} has two download sources")
        claimed.update(rels)
        plan.append((src, rels))
    missing = [r for r in expected if r not in claimed]
    if (missing and not entry.one_of) or not claimed:
        raise RuntimeError(f"registry entry {entry.name!r}: no download source for {', '.join(missing[:5])}")
    return plan


def _rebase(url: str, base_url: str | None) -> str:
    if not base_url:
        return url
    return base_url.rstrip("/") + urllib.parse.urlsplit(url).path


def _download(url: str, dest: Path, timeout: float, progress: bool) -> None:
    """Streams ``url`` to ``dest`` with a progress bar; raises RuntimeError naming the URL."""
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(url, headers={"User-Agent": "asapnet-repro-fetch"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress, leave=False) as bar:
                while block := response.read(1 << 16):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise DownloadError(f"download failed: {url} -> {dest.name} ({e})", url) from e


def stage_download(entry: Entry, expected: dict[str, str], stage: Path, prefix: str,
                   have: set[str], base_url: str | None, timeout: float, progress: bool, local_copy_hint: str = "") -> None:
    """Downloads the files of ``entry`` not yet in ``stage`` (``have``) into ``stage/prefix``.

    Raises:
        RuntimeError: the entry has no download (the message includes ``local_copy_hint``), an
            archive is broken or lacks a listed file.
        DownloadError: a download failed (names the URL).
    """
    if not entry.sources:
        raise RuntimeError(f"dataset {entry.name!r} has no download: {local_copy_hint}. {entry.no_download}")
    for src, rels in plan_sources(entry, expected):
        todo = [r for r in rels if r not in have]
        if not todo:
            continue
        if isinstance(src, RemoteFiles):
            for rel in todo:
                sub = rel[len(src.local_dir) + 1:] if src.local_dir else rel
                url = _rebase(f"{src.url_dir}/{urllib.parse.quote(sub)}", base_url)
                _download(url, stage / prefix / rel, timeout, progress)
        elif isinstance(src, IdList):
            listing = stage / prefix / src.source
            if not listing.is_file():
                raise RuntimeError(f"{entry.name}: {src.path} is derived from {src.source}, which is missing")
            stems = [Path(line.strip()).stem for line in read_text(listing).splitlines() if line.strip()]
            (stage / prefix / src.path).parent.mkdir(parents=True, exist_ok=True)
            (stage / prefix / src.path).write_text("".join(s + "\n" for s in stems))
        elif isinstance(src, RemoteZip):
            url = _rebase(src.url, base_url)
            archive = stage / f".{Path(urllib.parse.urlsplit(src.url).path).name}"
            _download(url, archive, timeout, progress)
            by_name = {Path(r).name: r for r in todo}
            try:
                with zipfile.ZipFile(archive) as zf:
                    for info in zf.infolist():
                        rel = by_name.pop(Path(info.filename).name, None)
                        if rel is None or info.is_dir():
                            continue
                        target = stage / prefix / rel  # the name comes from our list: no path traversal
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with zf.open(info) as fin, open(target, "wb") as fout:
                            shutil.copyfileobj(fin, fout)
            except zipfile.BadZipFile as e:
                raise RuntimeError(f"{url}: not a valid zip archive ({e})") from e
            finally:
                archive.unlink(missing_ok=True)
            if by_name:
                missing = sorted(by_name.values())
                raise RuntimeError(
                    f"{url}: archive lacks {len(missing)} listed file(s), e.g. {missing[0]} "
                    f"(expected sha256 {expected[missing[0]]})"
                )
