"""PSNR/SSIM, mIoU and timing: closed forms, scikit-image equality, protocol properties."""
from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lib.metrics import miou, timing
from lib.metrics.psnr_ssim import denoise_scores, psnr, ssim, summarize, to_uint8
from lib.provenance import environment_info


# ---------------------------------------------------------------- PSNR / SSIM


def test_psnr_constant_offset_of_one_grey_level():
    clean = np.full((16, 16), 100, np.uint8)
    # MSE = 1  ->  PSNR = 10 log10(255^2 / 1) = 20 log10(255)
    assert psnr(clean, clean + 1) == pytest.approx(20 * math.log10(255), abs=1e-12)


def test_psnr_closed_form_offset_k():
    clean = np.full((8, 9, 3), 50, np.uint8)
    assert psnr(clean, clean + 5) == pytest.approx(20 * math.log10(255 / 5), abs=1e-12)


def test_identical_images():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    assert psnr(img, img) == math.inf
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    color = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert ssim(color, color) == pytest.approx(1.0, abs=1e-12)


def test_equals_skimage_random_pair():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (40, 33), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    assert psnr(a, b) == peak_signal_noise_ratio(a, b, data_range=255)
    assert ssim(a, b) == structural_similarity(a, b, data_range=255)
    ac = rng.integers(0, 256, (30, 31, 3), dtype=np.uint8)
    bc = np.clip(ac.astype(int) + rng.integers(-20, 21, ac.shape), 0, 255).astype(np.uint8)
    assert psnr(ac, bc) == peak_signal_noise_ratio(ac, bc, data_range=255)
    assert ssim(ac, bc) == structural_similarity(ac, bc, data_range=255, channel_axis=-1)
    # colour SSIM is the mean of the per-channel SSIMs
    per_channel = [structural_similarity(ac[..., c], bc[..., c], data_range=255) for c in range(3)]
    assert ssim(ac, bc) == pytest.approx(np.mean(per_channel), abs=1e-12)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(8, 8\).*\(8, 9\)"):
        psnr(np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8))
    with pytest.raises(ValueError, match=r"\(8, 8, 3\).*\(8, 8\)"):
        ssim(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8))


def test_non_uint8_rejected():
    with pytest.raises(TypeError, match="uint8"):
        psnr(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.float32))


def test_to_uint8_rounding_and_clipping():
    x = np.array([-0.5, 0.0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 0.4 / 255, 0.6 / 255, 1.0, 7.0])
    # clip to [0, 1]; 255x; round half to even (0.5 -> 0, 1.5 -> 2, 2.5 -> 2)
    np.testing.assert_array_equal(to_uint8(x), np.array([0, 0, 0, 2, 2, 0, 1, 255, 255], np.uint8))
    assert to_uint8(np.zeros((2, 3), np.float32)).dtype == np.uint8
    with pytest.raises(ValueError, match="NaN"):
        to_uint8(np.array([np.nan]))


def test_denoise_scores_clips_and_rounds():
    clean = np.full((16, 16), 255, np.uint8)
    out = np.full((16, 16), 1.3, np.float32)  # clipped to 1.0 -> 255: perfect
    assert denoise_scores(clean, out)["psnr"] == math.inf
    out = np.full((16, 16), 254.4 / 255, np.float64)  # rounds to 254: MSE 1
    s = denoise_scores(clean, out)
    assert s["psnr"] == pytest.approx(20 * math.log10(255), abs=1e-12)
    assert set(s) == {"psnr", "ssim"}


def test_summarize_means_per_group_in_order_of_appearance():
    per_image = pd.DataFrame([
        {"set": st, "sigma": sg, "name": n, "psnr": p, "ssim": 0.1 * p, "psnr_noisy": 20.0 - sg / 10, "seconds": 1.0 + p}
        for st, sg, n, p in [("b", 25, "x", 1.0), ("b", 25, "y", 3.0), ("a", 15, "x", 5.0), ("b", 15, "x", 7.0)]
    ])
    by_sigma = summarize(per_image)
    assert list(by_sigma.columns) == ["sigma", "n_images", "psnr", "ssim", "psnr_noisy", "seconds_per_image"]
    assert list(by_sigma.sigma) == [25, 15] and list(by_sigma.n_images) == [2, 1]  # x counted once per group
    assert list(by_sigma.psnr) == [2.0, 6.0] and by_sigma.seconds_per_image.iloc[0] == 3.0
    by_set = summarize(per_image, by=("set", "sigma"))
    assert list(zip(by_set.set, by_set.sigma, by_set.psnr)) == [("b", 25, 2.0), ("a", 15, 5.0), ("b", 15, 7.0)]
    assert by_set.ssim.iloc[0] == pytest.approx(0.2)
    assert summarize(per_image.iloc[:0]).empty
    with pytest.raises(KeyError, match="seconds"):
        summarize(per_image.drop(columns="seconds"))


# ---------------------------------------------------------------- mIoU


def test_confusion_matrix_and_scores_by_hand():
    target = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 255])
    pred = np.array([0, 0, 1, 1, 2, 2, 2, 0, 2, 1])  # last pixel ignored
    cm = miou.confusion_matrix(pred, target, 3)
    expected = np.array([[2, 1, 0], [0, 1, 1], [1, 0, 3]])
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == np.int64
    s = miou.scores_from_confusion(cm)
    # IoU_0 = 2/(2+1+1) ; IoU_1 = 1/(1+1+1) ; IoU_2 = 3/(3+1+1)
    ious = [2 / 4, 1 / 3, 3 / 5]
    np.testing.assert_allclose(s["per_class_iou"], ious, rtol=0, atol=1e-15)
    assert s["miou"] == pytest.approx(np.mean(ious), abs=1e-15)
    assert s["pixel_accuracy"] == pytest.approx(6 / 9, abs=1e-15)
    assert s["mean_class_accuracy"] == pytest.approx(np.mean([2 / 3, 1 / 2, 3 / 4]), abs=1e-15)


def test_confusion_matrix_torch_and_ignore():
    target = torch.tensor([[0, 255], [1, 1]])
    pred = torch.tensor([[0, 7], [1, 0]])  # pred 7 only where ignored: allowed
    cm = miou.confusion_matrix(pred, target, 2)
    np.testing.assert_array_equal(cm, [[1, 0], [1, 1]])
    assert cm.sum() == 3


def test_perfect_prediction_and_absent_class():
    target = np.array([[0, 1], [1, 3]])
    s = miou.scores_from_confusion(miou.confusion_matrix(target, target, 4))
    assert s["miou"] == 1.0 and s["pixel_accuracy"] == 1.0 and s["mean_class_accuracy"] == 1.0
    assert math.isnan(s["per_class_iou"][2])  # class 2 absent from both
    assert s["per_class_iou"][:2] == [1.0, 1.0]


def test_confusion_matrix_errors():
    with pytest.raises(ValueError, match="pred"):
        miou.confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="target"):
        miou.confusion_matrix(np.array([0, 1]), np.array([0, 5]), 3)
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        miou.confusion_matrix(np.array([0, 1]), np.array([0, 1, 1]), 3)


# ---------------------------------------------------------------- timing


def test_time_forward_fields_and_order():
    x = torch.randn(64, 64)
    r = timing.time_forward(lambda: x @ x, device="cpu", warmup=1, runs=7)
    for key in ("median_ms", "p90_ms", "mean_ms", "std_ms", "min_ms", "max_ms"):
        assert isinstance(r[key], float) and r[key] >= 0
    assert r["runs"] == 7 and r["warmup"] == 1 and r["device"] == "cpu" and r["timer"] == "perf_counter"
    assert r["min_ms"] <= r["median_ms"] <= r["p90_ms"] <= r["max_ms"]


def test_time_forward_sleep_and_min_seconds():
    r = timing.time_forward(lambda: time.sleep(0.02), device="cpu", warmup=0, runs=2, min_seconds=0.1)
    assert 15.0 <= r["median_ms"] <= 200.0
    assert r["runs"] >= 5  # 0.1 s at >= 20 ms a run (ceil, <= 100/20)
    assert r["runs"] * r["mean_ms"] >= 100.0


def test_inference_mode_inside_fn():
    seen = []
    timing.time_forward(lambda: seen.append(torch.is_inference_mode_enabled()), device="cpu", warmup=2, runs=3)
    assert seen == [True] * 5
    seen.clear()
    timing.peak_memory(lambda: seen.append(torch.is_inference_mode_enabled()), "cpu")
    assert seen == [True]
    assert not torch.is_inference_mode_enabled()


def test_environment_info():
    info = environment_info("cpu")
    assert info["device"] == "cpu" and info["torch_version"] == torch.__version__
    assert info["threads"] == torch.get_num_threads() and isinstance(info["threads"], int)
    for key in ("cuda_version", "cudnn_version", "tf32_matmul", "tf32_cudnn", "cpu_model", "float32_matmul_precision"):
        assert key in info
    assert isinstance(info["tf32_matmul"], bool)


def test_peak_memory_cpu_sees_a_large_allocation():
    # In a fresh process: in this one, earlier tests may leave freed pages resident that the
    # allocation reuses, which an RSS-based measure rightly does not count.
    import subprocess
    import sys

    code = (
        "import time, torch\n"
        "from lib.metrics import timing\n"
        "def fn():\n"
        "    t = torch.ones(16 * 2**20)  # 64 MiB, touched\n"
        "    time.sleep(0.05)\n"
        "    return float(t[-1])\n"
        "print(timing.peak_memory(fn, 'cpu'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    peak = int(out.strip().splitlines()[-1])
    assert 32 * 2**20 <= peak <= 512 * 2**20


def test_time_model_metadata_and_mode():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4))
    model.train()
    x = torch.randn(2, 3, 16, 16)
    r = timing.time_model(model, (x,), "cpu", warmup=1, runs=3)
    assert model.training  # mode restored
    assert r["batch"] == 2 and r["shape"] == [2, 3, 16, 16] and r["dtype"] == "float32"
    assert r["input_shapes"] == [[2, 3, 16, 16]] and r["params"] == 3 * 4 * 9 + 4 + 8
    assert r["threads"] == torch.get_num_threads() and r["torch_version"] == torch.__version__
    assert r["device"] == "cpu" and r["median_ms"] <= r["p90_ms"] and r["model"] == "Sequential"

    modes = []
    model.register_forward_hook(lambda m, i, o: modes.append(m.training))
    timing.time_model(model, (x,), "cpu", warmup=0, runs=2)
    assert modes == [False, False]


def test_time_model_rejects_inputs_on_other_device():
    with pytest.raises(ValueError, match="input 0"):
        timing.time_model(torch.nn.Identity(), (torch.zeros(1, device="meta"),), "cpu", warmup=0, runs=1)
