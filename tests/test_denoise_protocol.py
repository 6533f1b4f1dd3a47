"""The denoising test protocol: the evaluation loop, published values, the official-weights summary."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from lib.denoise import official
from lib.denoise.protocol import evaluate_denoiser, noise_fn, published_psnr
from lib.metrics.psnr_ssim import psnr, to_uint8


def _noisy(clean_u8, sigma, name):
    rng = np.random.default_rng([int(sigma), len(name)])
    return (clean_u8 / 255.0 + sigma / 255.0 * rng.standard_normal(clean_u8.shape)).astype(np.float32)


def _images():
    rng = np.random.default_rng(2)
    return [("a", rng.integers(0, 256, (24, 24), dtype=np.uint8)), ("bb", rng.integers(0, 256, (24, 20), dtype=np.uint8))]


def test_evaluate_denoiser_scores_identity_and_oracle():
    images = _images()
    df = evaluate_denoiser(lambda x: x, images, [15, 25], 0, _noisy, progress=False)
    assert list(df.columns) == ["name", "sigma", "psnr", "ssim", "psnr_noisy", "seconds"]
    assert len(df) == 4 and df.attrs["seed"] == 0
    # the identity "denoiser" scores exactly like the noisy input
    np.testing.assert_allclose(df["psnr"], df["psnr_noisy"], rtol=0, atol=1e-12)
    assert (df["seconds"] >= 0).all()
    row = df[(df.name == "a") & (df.sigma == 25)].iloc[0]
    assert row.psnr == psnr(images[0][1], to_uint8(_noisy(images[0][1], 25, "a")))
    # an oracle denoiser (returns the clean image) is perfect
    perfect = evaluate_denoiser(lambda x: images[0][1] / 255.0, images[:1], [50], None, _noisy, progress=False)
    assert perfect.psnr.iloc[0] == math.inf and perfect.ssim.iloc[0] == pytest.approx(1.0, abs=1e-12)


def test_evaluate_denoiser_shape_error_names_image():
    img = [("x1", np.zeros((10, 10), np.uint8))]
    with pytest.raises(ValueError, match="x1"):
        evaluate_denoiser(lambda x: x[:5], img, [15], 0, _noisy, progress=False)


def test_evaluate_denoiser_accepts_torch_output():
    img = [("t", np.full((12, 12), 128, np.uint8))]
    df = evaluate_denoiser(lambda x: torch.from_numpy(x), img, [10], 0, _noisy, progress=False)
    assert isinstance(df, pd.DataFrame) and np.isfinite(df.psnr.iloc[0])


def test_test_noise_is_fixed_per_image_and_sigma():
    clean = np.full((16, 16), 128, np.uint8)
    a = noise_fn(0)(clean, 25.0, "x.png")
    np.testing.assert_array_equal(a, noise_fn(0)(clean, 25.0, "x.png"))
    assert not np.array_equal(a, noise_fn(0)(clean, 25.0, "y.png"))
    assert not np.array_equal(a, noise_fn(1)(clean, 25.0, "x.png"))
    assert a.dtype == np.float32 and (a.min() < 0.5 - 0.05 and a.max() > 0.5 + 0.05)  # not clipped to the clean value


def test_published_values_of_the_dncnn_paper():
    assert published_psnr("bsd68", "dncnn_b_gray", 25) == 29.16  # DnCNN-B, Table II
    assert published_psnr("bsd68", "dncnn_s", 15.0) == 31.73  # DnCNN-S, Table II
    assert published_psnr("cbsd68", "cdncnn_b_color", 50) == 27.92
    assert published_psnr("bsd68", "bm3d", 50) == 25.62 and published_psnr("cbsd68", "bm3d", 50) == 27.38  # BM3D, CBM3D
    assert published_psnr("set12", "dncnn_b_gray", 25) is None  # the paper's Set12 table is per image
    assert published_psnr("bsd68", "dncnn_gray", 25) is None  # one of our runs
    assert published_psnr("bsd68", "dncnn_b_gray", 35) is None  # a sigma the paper does not report


def test_official_weights_per_sigma():
    assert official.official_weights_for("dncnn_s", 25) == "dncnn_s25"
    assert official.official_weights_for("dncnn_b_gray", 37.0) == "dncnn_b_gray"  # blind: one file
    with pytest.raises(KeyError, match="sigma 35"):
        official.official_weights_for("dncnn_s", 35)
    with pytest.raises(KeyError, match="unknown official model"):
        official.official_weights_for("dncnn_x", 25)


def test_official_summary_means_and_published_column():
    per_image = pd.DataFrame([
        {"set": s, "model": m, "weights": m, "name": n, "sigma": 25.0, "psnr": p, "ssim": 0.5, "psnr_noisy": 20.0,
         "seconds": 2.0}
        for s, m in [("bsd68", "dncnn_b_gray"), ("set12", "dncnn_b_gray")] for n, p in [("a", 29.0), ("b", 30.0)]
    ])
    rows = official.official_summary(per_image)
    assert [(r["set"], r["n_images"], r["psnr"], r["published_psnr"]) for r in rows] == [
        ("bsd68", 2, 29.5, 29.16), ("set12", 2, 29.5, None)]
    assert set(rows[0]) == {"set", "model", "sigma", "n_images", "psnr", "ssim", "psnr_noisy", "seconds_per_image",
                            "published_psnr"}
    assert isinstance(rows[0]["sigma"], float) and isinstance(rows[0]["n_images"], int)
