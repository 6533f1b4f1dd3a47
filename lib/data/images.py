"""Reading and writing image files with errors that name the file.

Every reader forces a full decode, so a truncated or corrupt file fails here (as a
``ValueError`` naming it) and not later inside a training loop.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from lib.io import atomic_path

__all__ = ["read_image", "read_label", "describe_mode", "write_image", "image_size", "list_images", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")  # what a folder of images may hold

_LABEL_MODES = ("P", "L", "I;16", "I;16B", "I;16L", "I", "1")  # single-channel index images


def list_images(folder: str | os.PathLike, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """The image files directly in ``folder`` (by suffix, any case), sorted by name.

    Raises:
        FileNotFoundError: ``folder`` is not a folder, or holds no image (folder named).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    wanted = {x.lower() for x in suffixes}
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in wanted)
    if not paths:
        raise FileNotFoundError(f"no image files ({', '.join(sorted(wanted))}) in {folder}")
    return paths


def _open(path: str | os.PathLike) -> Image.Image:
    """Opens and fully decodes ``path``; raises naming the file on any failure."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        img = Image.open(path)
        img.load()  # full decode: catches truncated and corrupt data now
    except Image.DecompressionBombError as e:
        raise ValueError(f"{path}: image too large to decode safely ({e})") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{path}: unreadable or corrupt image file ({e})") from e
    return img


def read_image(path: str | os.PathLike, mode: str = "RGB") -> np.ndarray:
    """Reads an image as ``uint8``.

    Args:
        path: the image file.
        mode: ``"L"`` (grayscale, returns ``(H, W)``) or ``"RGB"`` (returns ``(H, W, 3)``).
            Other stored modes are converted with Pillow (RGB -> L uses ITU-R 601 luma).

    Returns:
        The pixels, ``uint8``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable image, or ``mode`` is not ``"L"``/``"RGB"``.
    """
    if mode not in ("L", "RGB"):
        raise ValueError(f"read_image: mode must be 'L' or 'RGB', got {mode!r} (file {path})")
    img = _open(path)
    if img.mode != mode:
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            raise ValueError(f"{path}: a {img.mode} (16/32-bit) image is not a photo; read it with read_label")
        img = img.convert(mode)
    return np.asarray(img, dtype=np.uint8).copy()


def describe_mode(mode: str) -> str:
    """A Pillow image mode in words: ``"P"`` -> ``"a palette image (mode P)"``."""
    kinds = {"RGB": "an RGB colour image", "RGBA": "an RGBA colour image", "P": "a palette image",
             "L": "an 8-bit gray image", "LA": "a gray image with alpha", "1": "a 1-bit image",
             "I": "a 32-bit integer image", "F": "a floating-point image", "CMYK": "a CMYK image"}
    kind = "a 16-bit image" if mode.startswith("I;16") else kinds.get(mode, "an image")
    return f"{kind} (mode {mode})"


def read_label(path: str | os.PathLike, modes: tuple[str, ...] | None = None, what: str = "label map",
               hint: Callable[[str], str] | None = None) -> np.ndarray:
    """Reads a single-channel label/index map as ``int64``, keeping 8- and 16-bit values.

    Palette (``P``) images give their palette indices, not colours; 16-bit images keep
    values such as Cityscapes instance ids (``26001`` = class 26, instance 1).

    Args:
        path: the label file (PNG).
        modes: the Pillow modes accepted (default: any single-channel index mode).
        what: what the file is, for the message (``"label map"``).
        hint: the found mode -> what was expected and what to do, in words, for the message
            (default: the accepted modes).

    Returns:
        ``(H, W)`` ``int64`` array.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is unreadable or of another mode (what was found is named).
    """
    img = _open(path)
    accepted = _LABEL_MODES if modes is None else modes
    if img.mode not in accepted:
        expected = hint(img.mode) if hint else "a single-channel index image, mode " + " / ".join(accepted)
        raise ValueError(f"{path}: {what} is {describe_mode(img.mode)}; expected {expected}")
    return np.asarray(img).astype(np.int64)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(H, W)`` of an image file, read from its header only."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            w, h = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{path}: unreadable or corrupt image file ({e})") from e
    return h, w


def write_image(path: str | os.PathLike, array: np.ndarray, overwrite: bool = True) -> Path:
    """Writes a ``uint8`` image atomically; the format follows the file suffix.

    Args:
        path: destination (``.png``, ``.jpg``, ...).
        array: ``(H, W)`` or ``(H, W, 3)`` ``uint8``.
        overwrite: replace an existing file; ``False`` raises :class:`FileExistsError` instead.

    Returns:
        ``path``.

    Raises:
        ValueError: wrong dtype/shape or a suffix Pillow cannot write.
    """
    path = Path(path)
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"{path}: write_image expects uint8, got {array.dtype}")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"{path}: write_image expects (H, W) or (H, W, 3), got {array.shape}")
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image suffix {path.suffix!r}")
    img = Image.fromarray(np.ascontiguousarray(array))
    with atomic_path(path, overwrite) as tmp:  # temp name ends in .tmp: pass the format explicitly
        img.save(tmp, format=fmt)
    return path
