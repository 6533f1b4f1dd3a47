"""Denoiser trainer: config checks, learning, checkpoint contents and refused resumes. The shared
loop (exact resume, NaN stop, DDP) is tested over every trainer in tests/test_train_loop.py."""
from __future__ import annotations

import pytest
import torch
from conftest import TINY_DNCNN as TINY
from conftest import tiny_gray_images as _images

from lib.checkpoint import load_checkpoint
from lib.config import ConfigError
from lib.models import load_model
from lib.train.common import read_losses
from lib.train.denoise import LOSS_COLUMNS, DenoiseTrainConfig, train_denoiser


def _cfg(**kw) -> DenoiseTrainConfig:
    base = dict(patch_size=16, batch_size=8, patches_per_epoch=32, epochs=100, sigma_fixed=25.0,
                checkpoint_every=2, log_every=1, threads=1, device="cpu")
    return DenoiseTrainConfig(**{**base, **kw})


def test_config_schedule_and_strictness():
    cfg = DenoiseTrainConfig(batch_size=8, patches_per_epoch=30, epochs=5)
    assert cfg.steps_per_epoch == 3 and cfg.total_steps == 15
    assert DenoiseTrainConfig(max_steps=7).total_steps == 7
    with pytest.raises(ValueError, match="patches_per_epoch"):
        DenoiseTrainConfig(batch_size=16, patches_per_epoch=8)
    with pytest.raises(ConfigError, match="learning_rate"):
        train_denoiser("dncnn", TINY, {"learning_rate": 1.0}, _images(), "unused")


def test_loss_decreases_and_outputs(tmp_path):
    out = tmp_path / "run"
    summary = train_denoiser("dncnn", TINY, _cfg(max_steps=30, log_every=5, checkpoint_every=10), _images(), out,
                             progress=False)
    assert summary["steps"] == 30 and summary["steps_run"] == 30 and summary["world_size"] == 1
    rows = read_losses(out / "losses.csv")
    assert list(rows[0]) == list(LOSS_COLUMNS)
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 6, 7]  # 4 steps per epoch; epoch of the logged step
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"], [r["loss"] for r in rows]
    # the returned model denoises like the trained one and takes the shared interface
    model = load_model(out / "checkpoint.pt")
    assert not model.training
    noisy = torch.rand(2, 1, 16, 16)
    assert model(noisy, sigma=torch.full((2,), 25.0)).shape == (2, 1, 16, 16)


def test_checkpoint_contents_weights_only(tmp_path):
    cfg = _cfg(max_steps=2, sigma_fixed=None, sigma_range=(5.0, 30.0))
    train_denoiser("dncnn", TINY, cfg, _images(), tmp_path, progress=False)
    raw = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert raw["model"] == "dncnn" and raw["step"] == 2 and raw["epoch"] == 0
    assert raw["config"] == {"depth": 3, "channels": 8, "in_channels": 1, "batch_norm": True, "residual": True}
    assert raw["params"]["sigma_range"] == [5.0, 30.0] and raw["params"]["seed"] == 0
    assert raw["torch_version"] == torch.__version__ and raw["git_revision"]
    assert raw["optimizers"]["adam"]["state"][0]["step"] == 2
    assert raw["schedulers"]["lr"]["last_epoch"] == 2
    assert {"python", "numpy", "torch", "cuda"} <= set(raw["rng"][0])
    assert raw["state_dict"]["body.0.weight"].shape == (8, 1, 3, 3)
    load_checkpoint(tmp_path / "checkpoint.pt")  # the project's own loader accepts it


def test_other_model_or_settings_start_afresh(tmp_path, capsys):
    train_denoiser("dncnn", TINY, _cfg(max_steps=2), _images(), tmp_path, progress=False)
    capsys.readouterr()
    other = train_denoiser("dncnn", {"depth": 3, "channels": 4}, _cfg(max_steps=4), _images(), tmp_path, progress=False)
    assert other["start_step"] == 0 and "config changed" in capsys.readouterr().err
    lr = train_denoiser("dncnn", {"depth": 3, "channels": 4}, _cfg(max_steps=4, lr=1e-2), _images(), tmp_path, progress=False)
    assert lr["start_step"] == 0 and "lr: checkpoint 0.001 vs requested 0.01" in capsys.readouterr().err
    # resume=False starts afresh
    assert train_denoiser("dncnn", {"depth": 3, "channels": 4}, _cfg(max_steps=2), _images(), tmp_path,
                          resume=False, progress=False)["start_step"] == 0
