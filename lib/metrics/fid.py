"""FID and KID from pytorch-fid's InceptionV3 pool3 features (docs/design.md#translation-protocol).

Features: ``pytorch_fid.inception.InceptionV3([BLOCK_INDEX_BY_DIM[2048]])`` (the TF-2015 FID
Inception; it resizes its input bilinearly to 299x299 and scales [0, 1] to [-1, 1]
internally). Images from a folder are read exactly as pytorch-fid reads them: the files
with an extension in ``pytorch_fid.fid_score.IMAGE_EXTENSIONS`` (sorted), ``PIL.Image.open(p)
.convert("RGB")``, ``torchvision.transforms.ToTensor()``. FID values therefore equal
``python -m pytorch_fid`` on the same folders and batch size.

Weights: pytorch-fid loads ``$TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth``
when that file exists and downloads it otherwise. :func:`ensure_inception_weights` makes
sure it exists (linking a local copy) before the model is built, so no download happens.

CLI::

    python -m lib.metrics.fid REAL_DIR FAKE_DIR [--batch-size 50] [--device cpu] [--weights FILE]
        [--method sqrtm|svd] [--dims 2048] [--kid-subsets 100] [--kid-subset-size 1000] [--seed 0]

prints ``{"fid", "kid", "kid_std", "n_real", "n_fake"}`` as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lib.data import images
from lib.data.fetch import CHECKSUM_DIR, read_checksums, sha256_file
from lib.device import resolve_device
from lib.paths import WEIGHTS_ENV, raw_dir

__all__ = [
    "ensure_inception_weights",
    "inception_model",
    "list_images",
    "activations",
    "fid_from_features",
    "kid_from_features",
    "mmd2_unbiased",
    "fid_kid_dirs",
    "HUB_WEIGHTS_NAME",
    "LOCAL_WEIGHTS_NAME",
    "FEATURE_DIM",
]

HUB_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid FID_WEIGHTS_URL file name
# Local copy: the original file with the (unused) 1008-way logits layer zero-filled; pool3
# features, hence FID and KID, are identical to the original's.
LOCAL_WEIGHTS_NAME = "pt_inception-2015-12-05-reconstructed-fc-zeroed.pth"
FEATURE_DIM = 2048  # pool3 of InceptionV3 (pytorch-fid default dims)
KID_DEGREE = 3  # Binkowski et al. 2018: k(x, y) = (x.y / d + 1)^3


def _hub_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / HUB_WEIGHTS_NAME


def ensure_inception_weights(weights_file: str | os.PathLike | None = None) -> Path:
    """Makes pytorch-fid's Inception weights available without a download.

    Order: the hub-cache file ``<torch.hub.get_dir()>/checkpoints/pt_inception-2015-12-05-6726825d.pth``
    if it exists; else ``weights_file``; else ``$ASAPNET_WEIGHTS/<LOCAL_WEIGHTS_NAME>``; else
    ``data/raw/weights/<LOCAL_WEIGHTS_NAME>`` under the project root. The first local file
    found is symlinked to the hub-cache path (folders created).

    Args:
        weights_file: a local copy of the FID Inception weights (original or fc-zeroed).

    Returns:
        The hub-cache path pytorch-fid will load.

    Raises:
        FileNotFoundError: ``weights_file`` is given but missing, or no copy was found; names
            the hub-cache path and the file to provide.
    """
    hub = _hub_weights_path()
    if hub.exists():
        _check_weights(hub)
        return hub
    if hub.is_symlink():  # a dangling link (its target was moved or deleted)
        hub.unlink()
    if weights_file is not None:
        source = Path(weights_file).expanduser()
        if not source.is_file():
            raise FileNotFoundError(f"FID Inception weights file not found: {source}")
    else:
        candidates = []
        if os.environ.get(WEIGHTS_ENV):
            candidates.append(Path(os.environ[WEIGHTS_ENV]).expanduser() / LOCAL_WEIGHTS_NAME)
        candidates.append(raw_dir() / "weights" / LOCAL_WEIGHTS_NAME)
        source = next((c for c in candidates if c.is_file()), None)
        if source is None:
            raise FileNotFoundError(
                f"FID Inception weights not found: pytorch-fid needs {hub}. Provide it, or pass "
                f"weights_file / put {LOCAL_WEIGHTS_NAME} in ${WEIGHTS_ENV} or {candidates[-1].parent} "
                f"(that reconstructed file, with the logits layer zeroed, gives the same pool3 "
                f"features as the original). Looked in: {', '.join(str(c) for c in candidates)}"
            )
    _check_weights(source)
    hub.parent.mkdir(parents=True, exist_ok=True)
    tmp = hub.with_name(f".{hub.name}.{os.getpid()}.tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(source.resolve())
    os.replace(tmp, hub)  # atomic: also replaces a dangling link left at ``hub``
    return hub


def _check_weights(path: Path) -> None:
    """Checks a FID Inception weights file against the committed sha256 sums
    (``lib/data/checksums/fid_inception.sha256``: the original and the fc-zeroed copy).

    Raises:
        ValueError: the file's sha256 is neither, naming the file and the expected sums.
    """
    expected = read_checksums(CHECKSUM_DIR / "fid_inception.sha256")
    digest = sha256_file(path)
    if digest not in expected.values():
        sums = ", ".join(f"{name}: {d}" for name, d in expected.items())
        raise ValueError(
            f"{path}{' -> ' + str(path.resolve()) if path.is_symlink() else ''}: sha256 {digest} is not that "
            f"of the FID Inception weights ({sums}); the file is truncated or another file: replace it"
        )


def inception_model(
    device="cpu", weights_file: str | os.PathLike | None = None, dims: int = FEATURE_DIM
) -> torch.nn.Module:
    """pytorch-fid's InceptionV3 returning pool3 (2048-d) features, in eval mode on ``device``.

    Args:
        device: where to run it.
        weights_file: see :func:`ensure_inception_weights`.
        dims: feature block as in pytorch-fid's ``--dims`` (64, 192, 768 or 2048 = pool3, the
            FID standard; the smaller ones exist for quick checks only).

    Returns:
        The model; ``model(x)[0]`` is (B, 2048, 1, 1) for x (B, 3, H, W) in [0, 1]
        ((B, dims, h, w) for a smaller block).
    """
    from pytorch_fid.inception import InceptionV3

    if dims not in InceptionV3.BLOCK_INDEX_BY_DIM:
        raise ValueError(f"dims must be one of {sorted(InceptionV3.BLOCK_INDEX_BY_DIM)}, got {dims}")
    ensure_inception_weights(weights_file)
    model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]])
    model.requires_grad_(False)
    return model.to(device).eval()


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files of ``folder`` with pytorch-fid's extensions, sorted by name.

    Raises:
        FileNotFoundError: ``folder`` is not a folder, or holds no image (names it).
    """
    from pytorch_fid.fid_score import IMAGE_EXTENSIONS

    return images.list_images(folder, tuple(f".{ext}" for ext in IMAGE_EXTENSIONS))


def _load(path: Path) -> torch.Tensor:
    from PIL import Image
    import torchvision.transforms as TF

    try:
        with Image.open(path) as im:
            img = im.convert("RGB")
    except Exception as e:  # PIL raises several types for unreadable files
        raise ValueError(f"cannot read image {path}: {e}") from e
    return TF.ToTensor()(img)  # (3, H, W) in [0, 1]


def _batches(images_or_paths, batch_size: int):
    """Yields (B, 3, H, W) float tensors in [0, 1]."""
    if isinstance(images_or_paths, torch.Tensor):
        x = images_or_paths
        if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
            raise ValueError(f"expected a float tensor (B, 3, H, W), got {x.dtype} {tuple(x.shape)}")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"image tensor must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]")
        for i in range(0, x.shape[0], batch_size):
            yield x[i : i + batch_size]
        return
    if isinstance(images_or_paths, (str, os.PathLike)):
        files = list_images(images_or_paths)
    else:
        files = [Path(p) for p in images_or_paths]
        if not files:
            raise ValueError("empty list of image paths")
    for i in range(0, len(files), batch_size):
        chunk = files[i : i + batch_size]
        tensors = [_load(p) for p in chunk]
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) > 1:
            raise ValueError(f"images of one batch differ in size {sorted(shapes)}: {chunk[0].parent}")
        yield torch.stack(tensors)  # (B, 3, H, W)


def _count(images_or_paths) -> int:
    if isinstance(images_or_paths, torch.Tensor):
        return int(images_or_paths.shape[0])
    if isinstance(images_or_paths, (str, os.PathLike)):
        return len(list_images(images_or_paths))
    return len(images_or_paths)


def activations(
    images_or_paths,
    model: torch.nn.Module,
    batch_size: int = 50,
    device="cpu",
    *,
    progress: bool = False,
) -> np.ndarray:
    """Inception pool3 features of images.

    Args:
        images_or_paths: a folder (read like pytorch-fid: see module doc), a list of image
            paths, or a float tensor (B, 3, H, W) in [0, 1].
        model: from :func:`inception_model`.
        batch_size: images per forward pass (pytorch-fid caps it at the number of images).
        device: where ``model`` runs.
        progress: show a tqdm bar (on stderr).

    Returns:
        float64 array (N, 2048) (N, dims for a smaller block).

    Raises:
        FileNotFoundError: the folder is missing or empty (named).
        ValueError: an image cannot be read (named), or a tensor is not (B, 3, H, W) in [0, 1].
    """
    from tqdm import tqdm

    n = _count(images_or_paths)
    batch_size = max(1, min(batch_size, n))  # as pytorch-fid's get_activations
    feats = []
    model.eval()
    bar = tqdm(total=n, desc="inception", disable=not progress, file=sys.stderr)
    for batch in _batches(images_or_paths, batch_size):
        with torch.no_grad():
            pred = model(batch.to(device))[0]  # (B, dims, h, w); h = w = 1 for pool3
            if pred.shape[2:] != (1, 1):  # blocks below pool3: spatial mean, as pytorch-fid
                pred = torch.nn.functional.adaptive_avg_pool2d(pred, output_size=(1, 1))  # (B, dims, 1, 1)
        pred = pred.reshape(pred.shape[0], -1)  # (B, dims)
        feats.append(pred.cpu().numpy().astype(np.float64))
        bar.update(pred.shape[0])
    bar.close()
    return np.concatenate(feats, axis=0)  # (N, 2048)


def _check_features(f: np.ndarray, label: str) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"{label} features must be (N >= 2, D), got {f.shape}")
    return f


def fid_from_features(f1: np.ndarray, f2: np.ndarray, method: str = "sqrtm") -> float:
    """Frechet distance between Gaussians fitted to two feature sets.

    ``FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` with ``mu`` the feature means and
    ``S`` the sample covariances (``np.cov(f, rowvar=False)``, ddof = 1).

    ``method="sqrtm"`` (the reference) calls ``pytorch_fid.fid_score.calculate_frechet_distance``
    (``scipy.linalg.sqrtm`` of the D x D product: about a minute for D = 2048 on a 2-core CPU).
    ``method="svd"`` uses ``Tr (S1 S2)^(1/2) = ||B1 B2^T||_*`` (nuclear norm, the sum of singular
    values) for any factors ``S = B^T B``: the centred features / sqrt(N - 1) when N <= D, else
    the symmetric square root from ``eigh``. It is exact, a few seconds for D = 2048, and agrees
    with ``sqrtm`` up to the latter's round-off (larger when N < D, where sqrtm meets a
    singular matrix).

    Args:
        f1: (N1, D) features.
        f2: (N2, D) features.
        method: ``"sqrtm"`` or ``"svd"``.

    Returns:
        FID (float; about 0 for identical statistics).
    """
    f1, f2 = _check_features(f1, "first"), _check_features(f2, "second")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature sizes differ: {f1.shape} vs {f2.shape}")
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    if method == "sqrtm":
        from pytorch_fid.fid_score import calculate_frechet_distance

        with warnings.catch_warnings():  # pytorch-fid passes sqrtm's deprecated ``disp``
            warnings.filterwarnings("ignore", message=".*disp.*", category=DeprecationWarning)
            return float(calculate_frechet_distance(mu1, np.cov(f1, rowvar=False), mu2, np.cov(f2, rowvar=False)))
    if method == "svd":
        b1, b2 = _cov_factor(f1, mu1), _cov_factor(f2, mu2)
        tr_sqrt = np.linalg.svd(b1 @ b2.T, compute_uv=False).sum()  # sum of singular values
        diff = mu1 - mu2
        # Tr S = Tr B^T B = ||B||_F^2: no D x D covariance is formed when N <= D
        return float(diff @ diff + np.square(b1).sum() + np.square(b2).sum() - 2.0 * tr_sqrt)
    raise ValueError(f"unknown FID method {method!r} (known: 'sqrtm', 'svd')")


def _cov_factor(f: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """B with ``B^T B = cov(f)`` (ddof = 1) and min(N, D) rows."""
    n, d = f.shape
    if n <= d:
        return (f - mu) / np.sqrt(n - 1)  # (N, D)
    w, v = np.linalg.eigh(np.cov(f, rowvar=False))  # cov = V diag(w) V^T
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T  # (D, D), symmetric square root


def _poly_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a.shape[1]
    return (a @ b.T / d + 1.0) ** KID_DEGREE  # (m1, m2)


def kid_from_features(
    f1: np.ndarray,
    f2: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD^2 with a cubic polynomial kernel, over subsets.

    ``k(x, y) = (x.y / d + 1)^3`` (Binkowski et al. 2018). For each of ``subsets`` draws of
    ``m = min(subset_size, N1, N2)`` rows from each set (without replacement):
    ``MMD^2_u = sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (m(m-1))
    - 2 sum_{i,j} k(x_i, y_j) / m^2``.

    Args:
        f1: (N1, D) features.
        f2: (N2, D) features.
        subsets: number of subset draws.
        subset_size: rows per subset (clipped to the smaller set).
        seed: seed of the subset draws (``np.random.default_rng``).

    Returns:
        ``(mean, std)`` of MMD^2_u over the subsets (std with ddof = 0).
    """
    f1, f2 = _check_features(f1, "first"), _check_features(f2, "second")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature sizes differ: {f1.shape} vs {f2.shape}")
    m = min(subset_size, f1.shape[0], f2.shape[0])
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for s in range(subsets):
        values[s] = mmd2_unbiased(f1, f2, rng.choice(f1.shape[0], m, replace=False), rng.choice(f2.shape[0], m, replace=False))
    return float(values.mean()), float(values.std())


def _within_mean(k: np.ndarray, idx: np.ndarray) -> float:
    """Mean of ``k[a, b]`` over the pairs whose source rows differ (``idx[a] != idx[b]``).

    Without duplicates in ``idx`` this is the usual off-diagonal mean ``(sum - trace) / (m (m - 1))``.
    With duplicates (a bootstrap resample) the pairs of a row with a copy of itself are left out
    too, as the U-statistic leaves out ``k(x, x)``: every remaining pair is a pair of distinct
    original rows, all equally likely, so the expected value over resamples is the off-diagonal
    mean of the original set (counting the copies would add ``k(x, x)`` terms and push it up).
    NaN when ``idx`` holds fewer than 2 distinct rows.
    """
    distinct = idx[:, None] != idx[None, :]  # (m, m)
    count = distinct.sum()
    return float(k[distinct].sum() / count) if count else float("nan")


def mmd2_unbiased(f1: np.ndarray, f2: np.ndarray, i1: np.ndarray, i2: np.ndarray) -> float:
    """Unbiased MMD^2 with the KID kernel between rows ``i1`` of ``f1`` and rows ``i2`` of ``f2``
    (index arrays; repeated indices allowed, see :func:`_within_mean`)."""
    x, y = f1[i1], f2[i2]  # (m1, D), (m2, D)
    return _within_mean(_poly_kernel(x, x), i1) + _within_mean(_poly_kernel(y, y), i2) - 2.0 * float(_poly_kernel(x, y).mean())


def fid_kid_dirs(
    real_dir: str | os.PathLike,
    fake_dir: str | os.PathLike,
    *,
    batch_size: int = 50,
    device="cpu",
    weights_file: str | os.PathLike | None = None,
    model: torch.nn.Module | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    method: str = "sqrtm",
    dims: int = FEATURE_DIM,
    progress: bool = False,
) -> dict:
    """FID and KID between two image folders.

    Args:
        real_dir: folder of real images.
        fake_dir: folder of generated images.
        batch_size: Inception batch size.
        device: where Inception runs.
        weights_file: see :func:`ensure_inception_weights` (ignored when ``model`` is given).
        model: an Inception from :func:`inception_model` to reuse.
        kid_subsets: see :func:`kid_from_features`.
        kid_subset_size: see :func:`kid_from_features`.
        seed: KID subset seed.
        method: FID computation, see :func:`fid_from_features`.
        dims: Inception block (2048 = pool3; others for quick checks, see :func:`inception_model`).
        progress: show tqdm bars.

    Returns:
        ``{"fid", "kid", "kid_std": float, "n_real", "n_fake": int}``.
    """
    real_files, fake_files = list_images(real_dir), list_images(fake_dir)  # fail early, naming the folder
    if model is None:
        model = inception_model(device, weights_file, dims)
    f_real = activations(real_files, model, batch_size, device, progress=progress)
    f_fake = activations(fake_files, model, batch_size, device, progress=progress)
    kid, kid_std = kid_from_features(f_real, f_fake, kid_subsets, kid_subset_size, seed)
    return {
        "fid": fid_from_features(f_real, f_fake, method),
        "kid": kid,
        "kid_std": kid_std,
        "n_real": int(f_real.shape[0]),
        "n_fake": int(f_fake.shape[0]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: prints the :func:`fid_kid_dirs` dict as JSON on stdout."""
    parser = argparse.ArgumentParser(prog="python -m lib.metrics.fid", description=__doc__.split("\n")[0])
    parser.add_argument("real_dir")
    parser.add_argument("fake_dir")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--weights", default=None, help="local copy of the FID Inception weights")
    parser.add_argument("--kid-subsets", type=int, default=100)
    parser.add_argument("--kid-subset-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", choices=["sqrtm", "svd"], default="sqrtm", help="FID matrix square root")
    parser.add_argument("--dims", type=int, choices=[64, 192, 768, 2048], default=FEATURE_DIM)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        for name in ("batch_size", "kid_subsets", "kid_subset_size"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be >= 1")
        device = resolve_device(args.device or "auto")
        result = fid_kid_dirs(
            args.real_dir,
            args.fake_dir,
            batch_size=args.batch_size,
            device=device,
            weights_file=args.weights,
            kid_subsets=args.kid_subsets,
            kid_subset_size=args.kid_subset_size,
            seed=args.seed,
            method=args.method,
            dims=args.dims,
            progress=args.progress,
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
