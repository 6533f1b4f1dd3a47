"""Denoiser trainer: config checks, budget and schedule, patch sides, precision, batch-norm
re-estimation, learning, checkpoint contents and refused resumes. The shared loop (exact resume,
NaN stop, DDP) is tested over every trainer in tests/test_train_loop.py."""
from __future__ import annotations

import pytest
import torch
from conftest import TINY_DNCNN as TINY
from conftest import tiny_gray_images as _images

from lib.checkpoint import load_checkpoint
from lib.config import ConfigError
from lib.device import autocast_dtype_name
from lib.models import build, load_model
from lib.train.common import read_losses
from lib.train.denoise import (
    LOSS_COLUMNS,
    DenoiseTrainConfig,
    budget_steps,
    lr_milestones,
    pixel_samples,
    recalibrate_batch_norm,
    train_denoiser,
)


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


# ----------------------------------------------------------------------------- budget, schedule, sizes


def test_budget_sets_the_steps_and_the_lr_drop_is_a_fraction_of_them():
    cfg = _cfg(budget_pixels=8 * 16**2 * 50, lr_drop_at=(0.8,))
    assert cfg.planned_steps == cfg.total_steps == 50  # budget / (batch x P^2)
    assert budget_steps(8 * 16**2 * 50 + 1, 8, [16]) == 51  # a started step counts
    assert lr_milestones(cfg) == [40]
    capped = _cfg(budget_pixels=8 * 16**2 * 50, lr_drop_at=(0.8,), max_steps=10)
    assert capped.total_steps == 10 and lr_milestones(capped) == [40]  # the cap keeps the planned schedule
    assert pixel_samples(cfg, 50) == 8 * 16**2 * 50
    mixed = _cfg(patch_sizes=(8, 16, 24), budget_pixels=100_000, seed=3)
    steps = mixed.total_steps
    assert pixel_samples(mixed, steps) >= 100_000 > pixel_samples(mixed, steps - 1)  # the budget, to one step
    for bad in ((0.0,), (1.0,), (0.8, 0.5)):
        with pytest.raises(ValueError, match="lr_drop_at"):
            _cfg(lr_drop_at=bad)
    with pytest.raises(ConfigError, match="precision"):
        train_denoiser("dncnn", TINY, {"precision": "fp16"}, _images(), "unused")


def test_lr_holds_then_drops_and_precision_is_recorded(tmp_path):
    summary = train_denoiser("dncnn", TINY, _cfg(budget_pixels=8 * 16**2 * 10, lr_drop_at=(0.5,), lr=1e-3,
                                                  precision="auto"), _images(), tmp_path, progress=False)
    lrs = [r["lr"] for r in read_losses(tmp_path / "losses.csv")]  # the lr each logged step used
    assert lrs == pytest.approx([1e-3] * 5 + [1e-4] * 5)
    assert summary["precision"] == autocast_dtype_name("auto", "cpu") and summary["pixel_samples"] == 8 * 16**2 * 10
    assert load_checkpoint(tmp_path / "checkpoint.pt")["extra"]["precision"] == summary["precision"]


def test_bf16_autocast_trains_on_the_cpu(tmp_path):
    summary = train_denoiser("dncnn", TINY, _cfg(max_steps=3, precision="bf16"), _images(), tmp_path, progress=False)
    assert summary["precision"] == "bf16" and summary["steps"] == 3 and summary["final_loss"] > 0


def test_patch_side_is_drawn_per_step_and_shared_by_the_batch():
    from lib.data.denoise import PatchDataset, step_patch_size

    data = PatchDataset(_images(), (8, 16, 24), patches_per_epoch=12, sigma=25.0, seed=2, batch_size=4)
    sides = []
    for epoch in range(3):
        data.set_epoch(epoch)
        for step in range(3):  # 3 steps per epoch
            batch = {data[i]["clean"].shape[-1] for i in range(4 * step, 4 * step + 4)}
            assert len(batch) == 1  # one side per batch
            assert batch == {step_patch_size((8, 16, 24), 2, 3 * epoch + step)}  # that of the global step
            sides += batch
    assert set(sides) == {8, 16, 24}


def test_batch_norm_statistics_are_re_estimated_at_the_end(tmp_path):
    cfg = _cfg(max_steps=6, bn_recalibration_batches=3)
    train_denoiser("dncnn", TINY, cfg, _images(), tmp_path, progress=False)
    bn_key = "body.3.running_var"  # the BN of the middle conv of TINY (depth 3)
    trained = load_checkpoint(tmp_path / "checkpoint.pt")["state_dict"]
    assert int(trained["body.3.num_batches_tracked"]) == 3  # the re-estimation's batches, not the 6 steps
    # the same statistics as a plain average over those batches, recomputed from the saved weights
    model = load_model(tmp_path / "checkpoint.pt")
    from lib.train.denoise import _calibration_batches

    batches = list(_calibration_batches(_images(), cfg, 25.0, torch.device("cpu")))
    feats = []
    model.body[3].register_forward_hook(lambda m, i, o: feats.append(i[0]))
    model.train()
    with torch.no_grad():
        for x in batches:
            model(x)
    var = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in feats]).mean(0)
    torch.testing.assert_close(trained[bn_key], var, rtol=1e-4, atol=1e-6)
    off = train_denoiser("dncnn", TINY, _cfg(max_steps=6, bn_recalibration_batches=0), _images(), tmp_path / "off",
                         progress=False)
    assert int(load_checkpoint(off["checkpoint"])["state_dict"]["body.3.num_batches_tracked"]) == 6


def test_recalibrate_batch_norm_restores_mode_and_momentum():
    model = build("dncnn", {"depth": 4, "channels": 4}).eval()
    assert recalibrate_batch_norm(model, [torch.rand(2, 1, 8, 8)]) == 1
    assert not model.training and all(m.momentum == 0.1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert recalibrate_batch_norm(build("dncnn", {"depth": 3, "channels": 4, "batch_norm": False}), [torch.rand(1, 1, 8, 8)]) == 0


@pytest.mark.slow
def test_a_few_hundred_steps_beat_the_noisy_input_on_a_real_image(tmp_path, data_mirror):
    """The init, schedule and BN re-estimation together: a narrow DnCNN trained for 300 steps on
    Train400 denoises a BSD68 crop it has never seen (the old He init sat at output = input)."""
    from lib.data.denoise import load_named_set
    from lib.denoise.protocol import denoise, denoise_psnr, noise_fn

    train = [im for _, im in load_named_set(data_mirror, "train400")[:100]]
    cfg = dict(patch_size=40, batch_size=16, budget_pixels=16 * 40**2 * 300, lr_drop_at=(0.8,), sigma_range=(15.0, 35.0),
               threads=2, device="cpu", log_every=50, checkpoint_every=0, precision="fp32")
    train_denoiser("dncnn", {"depth": 6, "channels": 16}, cfg, train, tmp_path, progress=False)
    model = load_model(tmp_path / "checkpoint.pt")
    name, clean = load_named_set(data_mirror, "bsd68")[0]
    clean = clean[:128, :128]
    noisy = noise_fn(0)(clean, 25.0, name)
    gain = denoise_psnr(clean, denoise(model, noisy)) - denoise_psnr(clean, noisy)
    assert gain > 4.0, gain
