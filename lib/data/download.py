"""Downloading a catalogue entry (:mod:`lib.data.sources`) from its pinned public locations into a staging folder.

Used by :mod:`lib.data.fetch`, which verifies every file against its sha256 before anything is
moved into ``data/raw/``. Files the project derives (CamVid's 2x smaller copy) are made from
originals that are checked against their own committed hashes first, with the recorded recipe
(:func:`downscale_png`).
"""
from __future__ import annotations

import hashlib
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from PIL import Image

from lib.data.images import describe_mode
from lib.data.sources import Downscaled, Entry, IdList, RemoteFiles, RemoteZip, RewrittenList, TextFile
from lib.io import read_text

__all__ = ["DownloadError", "plan_sources", "stage_download", "downscale_png", "RECIPE_PILLOW"]

RECIPE_PILLOW = "13.0.0"  # the Pillow that made the recorded CamVid copy (its PNG bytes depend on Pillow / zlib)


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
        if isinstance(src, (IdList, TextFile, RewrittenList)):
            rels = [src.path]
        elif isinstance(src, RemoteFiles) and src.names is not None:
            rels = [f"{src.local_dir}/{n}" if src.local_dir else n for n in src.names]
        elif isinstance(src, Downscaled):
            rels = [r for r in expected if r not in claimed]
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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def downscale_png(src: str | Path, dst: str | Path, factor: int, label: bool) -> Path:
    """The recorded downscaling recipe of the CamVid copy (data MANIFEST): Pillow resize to
    ``(W / factor, H / factor)``; a photo bicubic and saved as RGB, a label map nearest and kept
    8-bit gray (mode L); written as PNG with ``optimize=True``.

    Raises:
        ValueError: a side that ``factor`` does not divide, or a label map that is not mode L
            (the file and what was found are named).
    """
    src, dst = Path(src), Path(dst)
    with Image.open(src) as img:
        w, h = img.size
        if w % factor or h % factor:
            raise ValueError(f"{src}: {w}x{h} (W x H) is not divisible by the factor {factor}")
        size = (w // factor, h // factor)
        if label:
            if img.mode != "L":
                raise ValueError(f"{src}: label map is {describe_mode(img.mode)}; expected 8-bit gray ids (mode L)")
            out = img.resize(size, Image.Resampling.NEAREST)
        else:
            out = img.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    dst.parent.mkdir(parents=True, exist_ok=True)
    out.save(dst, format="PNG", optimize=True)
    return dst


def _stage_downscaled(entry: Entry, src: Downscaled, todo: list[str], expected: dict[str, str], stage: Path,
                      prefix: str, checksum_dir: Path, base_url: str | None, timeout: float, progress: bool) -> None:
    """Downloads each original, checks it, downscales it into ``stage/prefix`` and checks the result."""
    from lib.data.fetch import read_checksums  # the one parser of sha256sum files

    listing = checksum_dir / src.originals
    originals = read_checksums(listing)
    work = stage / ".originals"
    for rel in todo:
        if rel not in originals:
            raise RuntimeError(f"registry entry {entry.name!r}: {rel} has no original in {listing}")
        url = _rebase(f"{src.url_dir}/{urllib.parse.quote(rel)}", base_url)
        original = work / rel
        _download(url, original, timeout, progress)
        found = _sha256(original)
        if found != originals[rel]:
            raise ValueError(f"{entry.name}: original {rel} from {url} has sha256 {found}, expected {originals[rel]} "
                             f"({listing.name}); refusing to derive from it")
        target = stage / prefix / rel
        downscale_png(original, target, src.factor, Path(rel).parts[0] in src.label_dirs)
        original.unlink()
        made = _sha256(target)
        if made != expected[rel]:
            import PIL

            raise ValueError(f"{entry.name}: {rel} made from its checked original has sha256 {made}, expected "
                             f"{expected[rel]}: the recipe's PNG bytes depend on Pillow and zlib (recorded with Pillow "
                             f"{RECIPE_PILLOW}, here {PIL.__version__}); use a local copy of the recorded files instead")
    shutil.rmtree(work, ignore_errors=True)


def stage_download(entry: Entry, expected: dict[str, str], stage: Path, prefix: str,
                   have: set[str], base_url: str | None, timeout: float, progress: bool, local_copy_hint: str = "",
                   checksum_dir: Path | None = None) -> None:
    """Downloads the files of ``entry`` not yet in ``stage`` (``have``) into ``stage/prefix``.

    ``checksum_dir`` holds the hashes of the originals a :class:`lib.data.sources.Downscaled`
    source derives from (default: ``lib/data/checksums``).

    Raises:
        RuntimeError: the entry has no download (the message includes ``local_copy_hint``), an
            archive is broken or lacks a listed file.
        DownloadError: a download failed (names the URL).
        ValueError: an original or a file derived from it has another hash (named).
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
        elif isinstance(src, TextFile):
            (stage / prefix / src.path).parent.mkdir(parents=True, exist_ok=True)
            (stage / prefix / src.path).write_text(src.text, encoding="utf-8")
        elif isinstance(src, RewrittenList):
            url = _rebase(src.url, base_url)
            target = stage / prefix / src.path
            _download(url, target, timeout, progress)
            pattern = re.compile(rf"(?<!\S){re.escape(src.strip)}")  # the prefix of every path
            target.write_text(pattern.sub("", read_text(target)), encoding="utf-8")
        elif isinstance(src, Downscaled):
            folder = Path(checksum_dir) if checksum_dir is not None else Path(__file__).resolve().parent / "checksums"
            _stage_downscaled(entry, src, todo, expected, stage, prefix, folder, base_url, timeout, progress)
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
