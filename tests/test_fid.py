"""FID/KID: closed forms, weights resolution, and equality with the pytorch-fid CLI."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.linalg import hadamard

from lib.metrics import bootstrap, fid
from lib.paths import ROOT, WEIGHTS_ENV

# ---------------------------------------------------------------- closed forms


def test_fid_identical_statistics_is_zero():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((200, 6)) @ rng.standard_normal((6, 6))
    assert abs(fid.fid_from_features(f, f)) < 1e-8
    # only mean and covariance matter: a row permutation changes nothing
    assert abs(fid.fid_from_features(f, f[::-1])) < 1e-8


def _diag_features(mu: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """8 rows whose sample mean is mu and sample covariance is exactly diag(scales^2 * 8/7)."""
    h = hadamard(8)[:, 1 : 1 + len(mu)].astype(np.float64)  # (8, d): orthogonal, zero-mean columns
    return mu + h * scales  # (8, d)


def test_fid_closed_form_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, -1.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 0.5, 0.5])
    f1, f2 = _diag_features(mu1, s1), _diag_features(mu2, s2)
    np.testing.assert_allclose(np.cov(f1, rowvar=False), np.diag(s1**2 * 8 / 7), atol=1e-12)
    var1, var2 = s1**2 * 8 / 7, s2**2 * 8 / 7
    # ||mu1 - mu2||^2 + sum_i (v1_i + v2_i - 2 sqrt(v1_i v2_i))
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    assert fid.fid_from_features(f1, f2) == pytest.approx(expected, rel=1e-9)
    # = (0.25 + 4 + 4) + (8/7) ((1 - 3)^2 + (2 - 0.5)^2 + 0)
    assert expected == pytest.approx(8.25 + 8 / 7 * 6.25, rel=1e-12)


@pytest.mark.parametrize("n", [5, 40])  # N < D (singular covariances) and N > D
def test_fid_svd_method_equals_sqrtm(n):
    rng = np.random.default_rng(n)
    mix = rng.standard_normal((12, 12))
    f1 = rng.standard_normal((n, 12)) @ mix
    f2 = rng.standard_normal((n + 3, 12)) @ mix * 1.3 + 0.2
    ref = fid.fid_from_features(f1, f2)
    assert fid.fid_from_features(f1, f2, method="svd") == pytest.approx(ref, rel=1e-6, abs=1e-8)
    assert abs(fid.fid_from_features(f1, f1, method="svd")) < 1e-9
    with pytest.raises(ValueError, match="nope"):
        fid.fid_from_features(f1, f2, method="nope")


def test_kid_hand_case():
    # d = 1, k(x, y) = (x y + 1)^3; X = {0, 1}, Y = {1, 2}:
    # k_xx off-diagonal mean = 1, k_yy = 27, k_xy mean = (1 + 1 + 8 + 27) / 4 = 9.25
    # MMD^2_u = 1 + 27 - 2 * 9.25 = 9.5 for every subset (subset = whole set)
    x, y = np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]])
    mean, std = fid.kid_from_features(x, y, subsets=5, subset_size=10)
    assert mean == pytest.approx(9.5, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_kid_identical_sets_about_zero():
    rng = np.random.default_rng(1)
    f = rng.standard_normal((40, 8))
    n = len(f)
    k = (f @ f.T / 8 + 1) ** 3
    # X = Y as whole sets: 2 [(S - tr) / (n(n-1)) - S / n^2], O(1/n)
    expected = 2 * ((k.sum() - np.trace(k)) / (n * (n - 1)) - k.sum() / n**2)
    mean, std = fid.kid_from_features(f, f, subsets=3, subset_size=1000)
    assert mean == pytest.approx(expected, rel=1e-10) and std < 1e-10
    shifted, _ = fid.kid_from_features(f, f + 2.0, subsets=3, subset_size=1000)
    assert abs(mean) < 0.01 * shifted
    # subsets: same distribution stays near 0 relative to a shift
    g = rng.standard_normal((40, 8))
    same, _ = fid.kid_from_features(f, g, subsets=20, subset_size=20, seed=3)
    assert abs(same) < 0.01 * shifted


def test_bootstrap_fid_spread():
    rng = np.random.default_rng(2)
    real, fake = rng.standard_normal((60, 4)), rng.standard_normal((50, 4)) + 0.5
    b = bootstrap.bootstrap_fid(real, fake, n_boot=30, seed=0)
    assert set(b) >= {"low", "high", "std", "mean"} and b["n_boot"] == 30
    assert b["low"] <= b["mean"] <= b["high"] and b["std"] > 0
    assert bootstrap.bootstrap_fid(real, fake, n_boot=30, seed=0) == b
    assert b["low"] < fid.fid_from_features(real, fake) < b["high"]


@pytest.mark.parametrize("stat", ["fid", "kid"])
def test_bootstrap_over_both_sets_contains_the_estimate_and_is_wider(stat):
    rng = np.random.default_rng(5)
    real, fake = rng.standard_normal((80, 3)), rng.standard_normal((80, 3)) * 1.2 + 0.4
    boot = bootstrap.bootstrap_fid if stat == "fid" else bootstrap.bootstrap_kid
    point = fid.fid_from_features(real, fake) if stat == "fid" else fid.mmd2_unbiased(real, fake, np.arange(80), np.arange(80))
    both = boot(real, fake, n_boot=300, seed=1)
    fake_only = boot(real, fake, n_boot=300, seed=1, resample_real=False)
    assert both["low"] < point < both["high"]
    # two independent sources of spread instead of one: about sqrt(2) wider here (equal N, similar spread)
    assert both["high"] - both["low"] > 1.15 * (fake_only["high"] - fake_only["low"])
    assert both["std"] > 1.15 * fake_only["std"]


def test_mmd2_unbiased_leaves_out_copies_of_a_row():
    # d = 1, k(x, y) = (x y + 1)^3; X rows [0, 1], Y rows [1, 2]
    x, y = np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]])
    # whole sets: 1 + 27 - 2 * 9.25 = 9.5 (test_kid_hand_case)
    assert fid.mmd2_unbiased(x, y, np.array([0, 1]), np.array([0, 1])) == pytest.approx(9.5, abs=1e-12)
    # X resampled as [0, 0, 1]: the pairs (0, 0') are copies and left out; the rest are k(0, 1) = 1
    # cross term: mean of k(x_i, y_j) over the 3 x 2 pairs = (2 * (1 + 1) + (8 + 27)) / 6 = 39 / 6
    assert fid.mmd2_unbiased(x, y, np.array([0, 0, 1]), np.array([0, 1])) == pytest.approx(1 + 27 - 2 * 39 / 6, abs=1e-12)
    assert np.isnan(fid.mmd2_unbiased(x, y, np.array([1, 1]), np.array([0, 1])))  # one distinct row: undefined


def test_bootstrap_kid_replicates_centre_on_the_whole_set_estimate():
    rng = np.random.default_rng(7)
    real, fake = rng.standard_normal((15, 2)), rng.standard_normal((12, 2)) + 0.3
    whole = fid.mmd2_unbiased(real, fake, np.arange(15), np.arange(12))
    b = bootstrap.bootstrap_kid(real, fake, n_boot=4000, seed=0)
    # E[replicate] = the whole-set U-statistic: duplicates do not shift it
    assert abs(b["mean"] - whole) < 4 * b["std"] / np.sqrt(4000)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap.bootstrap_kid(real, fake, n_boot=1)


def test_percentile_summary_skips_nan_replicates():
    out = bootstrap.percentile_summary(np.array([1.0, np.nan, 3.0, 2.0]))
    assert out["n_boot"] == 4 and out["n_finite"] == 3 and out["mean"] == 2.0 and out["std"] == 1.0
    assert out["low"] == pytest.approx(np.percentile([1, 2, 3], 2.5)) and out["high"] == pytest.approx(np.percentile([1, 2, 3], 97.5))
    few = bootstrap.percentile_summary(np.array([1.0, np.nan]))
    assert few["n_finite"] == 1 and np.isnan(few["low"]) and np.isnan(few["std"])


# ---------------------------------------------------------------- weights


def test_missing_weights_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(fid, "raw_dir", lambda: tmp_path / "raw")
    with pytest.raises(FileNotFoundError) as e:
        fid.ensure_inception_weights()
    msg = str(e.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / fid.HUB_WEIGHTS_NAME) in msg
    assert fid.LOCAL_WEIGHTS_NAME in msg
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        fid.ensure_inception_weights(tmp_path / "nope.pth")


def _real_weights() -> Path:
    src = Path(os.environ.get(WEIGHTS_ENV, "/nonexistent")) / fid.LOCAL_WEIGHTS_NAME
    if not src.is_file():
        pytest.skip(f"needs ${WEIGHTS_ENV}/{fid.LOCAL_WEIGHTS_NAME} (the weights mirror)")
    return src


def test_weights_linked_or_reused(tmp_path, monkeypatch):
    real = _real_weights()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    src = tmp_path / "w.pth"
    src.symlink_to(real)
    hub = fid.ensure_inception_weights(src)
    assert hub == tmp_path / "torch" / "hub" / "checkpoints" / fid.HUB_WEIGHTS_NAME
    assert hub.is_symlink() and hub.resolve() == real.resolve()
    # the existing hub file wins over anything else
    assert fid.ensure_inception_weights(tmp_path / "missing.pth") == hub
    # $ASAPNET_WEIGHTS is searched for the reconstructed file
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch2"))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / fid.LOCAL_WEIGHTS_NAME).symlink_to(real)
    monkeypatch.setenv(WEIGHTS_ENV, str(mirror))
    assert fid.ensure_inception_weights().resolve() == real.resolve()


def test_corrupt_weights_named_and_dangling_link_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(fid, "raw_dir", lambda: tmp_path / "raw")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(b"\x80\x02not the weights")
    with pytest.raises(ValueError, match="truncated.pth.*sha256.*6726825d0af5f729"):
        fid.ensure_inception_weights(truncated)
    hub = tmp_path / "torch" / "hub" / "checkpoints" / fid.HUB_WEIGHTS_NAME
    assert not hub.exists() and not hub.is_symlink()  # nothing linked to a bad file
    # a hub link whose target is gone is removed, and the message names what to provide
    hub.parent.mkdir(parents=True)
    hub.symlink_to(tmp_path / "moved-away.pth")
    with pytest.raises(FileNotFoundError, match=fid.LOCAL_WEIGHTS_NAME):
        fid.ensure_inception_weights()
    assert not hub.is_symlink()
    # a bad file already in the hub cache is named too
    hub.write_bytes(b"junk")
    with pytest.raises(ValueError, match=str(hub)):
        fid.ensure_inception_weights()


# ---------------------------------------------------------------- folders


def _write_images(folder: Path, n: int, seed: int, size: int = 64, tilt: float = 0.0) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)  # (H, W)
    for i in range(n):
        base = np.stack([xx, yy, (1 - tilt) * xx * yy + tilt * (1 - xx)], axis=-1)  # (H, W, 3)
        img = np.clip(base * rng.uniform(0.5, 1.0, 3) + rng.normal(0, 0.08, (size, size, 3)), 0, 1)
        Image.fromarray((img * 255).round().astype(np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def test_folder_errors_name_the_path(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    with pytest.raises(FileNotFoundError, match=re.escape(str(empty))):
        fid.activations(empty, model=None)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=re.escape(str(bad / "broken.png"))):
        fid.activations(bad, model=torch.nn.Identity())
    with pytest.raises(FileNotFoundError, match="absent"):
        fid.fid_kid_dirs(tmp_path / "absent", bad)


@pytest.fixture
def torch_home(tmp_path, weights_mirror, monkeypatch) -> Path:
    """A TORCH_HOME holding a link to the mirror's FID weights."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    fid.ensure_inception_weights(weights_mirror / fid.LOCAL_WEIGHTS_NAME)
    return home


def test_pool3_features_equal_pytorch_fid_and_tensor_input(tmp_path, torch_home):
    from pytorch_fid.fid_score import get_activations

    folder = _write_images(tmp_path / "imgs", 3, seed=5)
    model = fid.inception_model("cpu")
    from_folder = fid.activations(folder, model, batch_size=3)
    assert from_folder.shape == (3, 2048) and from_folder.dtype == np.float64
    files = sorted(folder.glob("*.png"))
    reference = get_activations(files, model, batch_size=3, dims=2048, device="cpu", num_workers=0)
    np.testing.assert_array_equal(from_folder, reference)
    batch = torch.stack(
        [torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1) for p in sorted(folder.glob("*.png"))]
    )  # (3, 3, 64, 64) uint8
    from_tensor = fid.activations(batch.float() / 255, model, batch_size=3)
    np.testing.assert_allclose(from_tensor, from_folder, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fid.activations(batch.float(), model)


def test_cli_matches_pytorch_fid(tmp_path, torch_home):
    # Pool3 (2048-d), the FID protocol. scipy's sqrtm of a 2048x2048 matrix takes about a
    # minute per process on one core; the two CLIs run side by side.
    n = 16  # about 0.35 s per image and process on one thread
    real = _write_images(tmp_path / "real", n, seed=0)
    fake = _write_images(tmp_path / "fake", n, seed=1, tilt=0.7)
    env = {**os.environ, "TORCH_HOME": str(torch_home), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop(WEIGHTS_ENV, None)  # only the linked hub file may be used
    ours = subprocess.Popen(
        [sys.executable, "-m", "lib.metrics.fid", str(real), str(fake), "--device", "cpu", "--batch-size", "8"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    ref = subprocess.Popen(
        [sys.executable, "-m", "pytorch_fid", str(real), str(fake), "--device", "cpu", "--batch-size", "8",
         "--num-workers", "0"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # both run at once, one thread each
    out, err = ours.communicate(timeout=300)
    ref_out, ref_err = ref.communicate(timeout=300)
    assert ours.returncode == 0, err
    assert ref.returncode == 0, ref_err
    result = json.loads(out)
    fid_ref = float(re.search(r"FID:\s+(\S+)", ref_out).group(1))
    assert result["n_real"] == n and result["n_fake"] == n
    assert abs(result["fid"] - fid_ref) < 1e-3, (result["fid"], fid_ref)
    assert result["fid"] > 0.1  # the two sets differ
    assert np.isfinite(result["kid"]) and result["kid_std"] >= 0


def test_cli_error_exit_names_folder(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert fid.main([str(empty), str(empty), "--device", "cpu"]) == 2
    assert str(empty) in capsys.readouterr().err
