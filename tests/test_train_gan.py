"""GAN trainer: the recipes (ASAPNet, pix2pixHD by config), its outputs and sample grids,
generation, the training-stage config, and 2 steps on the real Facades. The shared loop
(resume, NaN stop, budget, DDP) is tested over every trainer in tests/test_train_loop.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_ASAPNET as ASAP
from conftest import TINY_LABEL_NC as LABEL_NC
from conftest import TinyPairs as Pairs
from PIL import Image

from lib.config import ConfigError, from_dict
from lib.data import generator_geometry, image_size
from lib.data.labels import label_colormap
from lib.models import build, load_model
from lib.models.generate import generator_overrides
from lib.models.losses import LossConfig, gan_d_loss, vgg19_features
from lib.train.common import read_losses
from lib.train.gan import (
    LOSS_COLUMNS,
    GANTrainConfig,
    TranslationTrainStage,
    d_loss_terms,
    generate,
    lr_factor,
    train_gan,
    translation_size,
)

SIZE = 32
P2P = dict(label_nc=LABEL_NC, use_instance_edge=False, ngf=8, n_blocks=1, n_downsampling=2)
D_TINY = dict(ndf=8)


def _cfg(**kw) -> GANTrainConfig:
    base = dict(generator="asapnet", generator_cfg=ASAP, discriminator_cfg=D_TINY, epochs=1, decay_epochs=2,
                batch_size=2, size=SIZE, checkpoint_every=2, sample_every=3, log_every=1, threads=1, device="cpu")
    return GANTrainConfig(**{**base, **kw})


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- pure functions


def test_schedule_and_strictness():
    assert GANTrainConfig(epochs=2, decay_epochs=1, batch_size=2).total_steps(11) == 3 * 5 and GANTrainConfig(max_steps=5).total_steps(2975) == 5
    # official update_learning_rate: full rate through epoch `epochs`, then -lr/decay per epoch
    assert [lr_factor(e, 2, 4) for e in range(6)] == [1.0, 1.0, 1.0, 0.75, 0.5, 0.25]
    assert lr_factor(7, 3, 0) == 1.0
    with pytest.raises(ConfigError, match="learning_rate"):
        train_gan({"learning_rate": 1.0}, Pairs(), "unused")
    with pytest.raises(ConfigError, match=r"train\.loss\.gan_mode"):
        train_gan({"loss": {"gan_mode": "wgan"}}, Pairs(), "unused")


def test_geometry_and_translation_size_are_computed_once():
    assert image_size("facades", 128) == (128, 128) and image_size("cityscapes", 256) == (256, 512)
    assert generator_geometry({"ngf": 8}, {"ngf", "height"}, 64) == {"ngf": 8, "height": 64}
    assert generator_geometry({"ngf": 8}, {"ngf"}, 64) == {"ngf": 8}  # size-agnostic generators
    with pytest.raises(ValueError, match="height=32 differs from size=64"):
        generator_geometry({"height": 32}, {"height"}, 64)
    # the one relay from a generator name to its sized config (the trainer, the timing grid and workload use it)
    assert generator_overrides("asapnet", {"lr_depth": 1}, 64) == {"lr_depth": 1, "height": 64}
    assert generator_overrides("pix2pixhd", {"ngf": 8}, 64) == {"ngf": 8}
    with pytest.raises(ValueError, match="height=32 differs from size=64"):
        generator_overrides("asapnet", {"height": 32}, 64)
    common = {"size": 64, "generator_cfg": {"label_nc": 13}}  # Facades: 13 one-hot channels
    stage = from_dict(TranslationTrainStage, {"common": common, "models": {"asapnet": {}, "pix2pixhd": {"generator": "pix2pixhd"}}})
    assert translation_size(stage) == 64
    with pytest.raises(ConfigError, match="share one size"):  # refused when the section loads
        from_dict(TranslationTrainStage, {"common": common, "models": {"asapnet": {}, "pix2pixhd": {"generator": "pix2pixhd", "size": 32}}})
    with pytest.raises(ConfigError, match=r"train_translation.models.a.generator: 'asapnet' differs from the model's key 'a'"):
        from_dict(TranslationTrainStage, {"common": common, "models": {"a": {}}}, where="train_translation")
    with pytest.raises(ConfigError, match=r"train_translation.common.generator_cfg.label_nc=12: dataset 'facades' has 13"):
        from_dict(TranslationTrainStage, {"common": {**common, "generator_cfg": {"label_nc": 12}}, "models": {"asapnet": {}}},
                  where="train_translation")


@pytest.mark.parametrize("mode", ["hinge", "lsgan"])
def test_d_loss_terms_sum_to_the_discriminator_loss(mode):
    g = torch.Generator().manual_seed(0)
    real = [[torch.randn(2, 4, 5, 5, generator=g), torch.randn(2, 1, 3, 3, generator=g)] for _ in range(2)]
    fake = [[torch.randn(2, 4, 5, 5, generator=g), torch.randn(2, 1, 3, 3, generator=g)] for _ in range(2)]
    d_real, d_fake = d_loss_terms(mode, real, fake)
    assert torch.allclose(d_real + d_fake, gan_d_loss(mode, real, fake))
    p = real[0][-1]
    if mode == "hinge":
        assert torch.allclose(d_loss_terms(mode, real[:1], fake[:1])[0], torch.relu(1 - p).mean())
    else:
        assert torch.allclose(d_loss_terms(mode, real[:1], fake[:1])[0], ((p - 1) ** 2).mean())


# ----------------------------------------------------------------------------- training runs


def test_asapnet_recipe_trains_writes_outputs_and_round_trips(tmp_path):
    out = tmp_path / "run"
    data = Pairs(n=4)  # 2 steps per epoch; epochs 1 + decay 2 -> 6 steps
    summary = train_gan(_cfg(), data, out, params={"scale": "test", "root": Path("/data")}, progress=False)
    assert (summary["steps"], summary["total_steps"], summary["epochs"]) == (6, 6, 3.0)
    assert summary["vgg_used"] is False and summary["stopped_by_budget"] is False
    rows = read_losses(out / "losses.csv")
    assert list(rows[0]) == list(LOSS_COLUMNS)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6] and [r["epoch"] for r in rows] == [0, 0, 1, 1, 2, 2]
    assert all(np.isfinite([r[k] for k in LOSS_COLUMNS]).all() for r in rows)
    assert [r["lr_g"] for r in rows] == [1e-4] * 4 + [5e-5] * 2  # lr_factor(2, 1, 2) = 0.5
    assert [r["lr_d"] for r in rows] == [4e-4] * 4 + [2e-4] * 2
    assert all(r["g_vgg"] == 0.0 and r["d_real"] >= 0 and r["d_fake"] >= 0 for r in rows)
    final = summary["final_losses"]  # mean of the last 10% (here: the last row)
    assert final == {k: rows[-1][k] for k in ("d_real", "d_fake", "g_gan", "g_feat", "g_vgg", "g_l1")}

    samples = sorted(p.name for p in (out / "samples").glob("*.png"))
    assert samples == ["latest.png", "step_000003.png", "step_000006.png"]
    grid = np.asarray(Image.open(out / "samples" / "latest.png"))
    assert grid.shape == (4 * SIZE + 3 * 2, 3 * SIZE + 2 * 2, 3)
    assert np.array_equal(grid[:SIZE, :SIZE], label_colormap(data.labels[0], LABEL_NC))  # item 0, unflipped
    assert np.array_equal(grid[:SIZE, 2 * (SIZE + 2):], np.asarray(
        ((data.images[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0)))

    raw = torch.load(out / "checkpoint.pt", weights_only=True)
    assert raw["model"] == "asapnet" and raw["step"] == 6 and raw["epoch"] == 3
    assert raw["config"]["height"] == SIZE and raw["config"]["label_nc"] == LABEL_NC
    assert raw["params"]["loss"]["gan_mode"] == "hinge" and raw["params"]["generator_cfg"] == ASAP
    assert set(raw["aux_state_dicts"]) == {"discriminator"}
    assert set(raw["optimizers"]) == set(raw["schedulers"]) == {"generator", "discriminator"}
    assert raw["optimizers"]["generator"]["param_groups"][0]["betas"] == (0.0, 0.9)
    assert raw["schedulers"]["discriminator"]["last_epoch"] == 6
    assert raw["extra"]["vgg_used"] is False and raw["extra"]["stage_params"] == {"scale": "test", "root": "/data"}
    assert raw["extra"]["discriminator"]["config"]["in_channels"] == LABEL_NC + 3
    assert {"python", "numpy", "torch", "cuda"} <= set(raw["rng"][0])
    assert raw["torch_version"] == torch.__version__ and raw["git_revision"]

    rebuilt = build(raw["model"], raw["config"])
    rebuilt.load_state_dict(raw["state_dict"])
    g = load_model(out / "checkpoint.pt")
    assert not g.training and _equal(g.state_dict(), rebuilt.state_dict())
    files = generate(g, data, tmp_path / "gen", batch_size=3)
    assert [f.name for f in files] == [f"item_{i:03d}.png" for i in range(4)]
    onehot = torch.nn.functional.one_hot(data.labels, LABEL_NC).permute(0, 3, 1, 2).float()  # (4, 13, H, W)
    to_u8 = lambda x: ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)  # noqa: E731
    with torch.no_grad():
        want = torch.cat([to_u8(rebuilt.eval()(onehot[:3])), to_u8(rebuilt(onehot[3:]))])  # generate's batches
        whole = to_u8(rebuilt(onehot))  # the sample grid's batch
    assert np.array_equal(np.stack([np.asarray(Image.open(f)) for f in files]), want.numpy())
    assert np.array_equal(grid[:SIZE, SIZE + 2 : 2 * SIZE + 2], whole[0].numpy())  # the final generator


def test_pix2pixhd_recipe_is_config_only_with_vgg_and_edges(tmp_path):
    vgg = vgg19_features(None, random_init=True)
    state = {f"features.{k.split('.', 2)[2]}": v for k, v in vgg.state_dict().items()}  # slices.s.<idx>.w -> features.<idx>.w
    torch.save(state, tmp_path / "vgg19.pth")
    cfg = _cfg(generator="pix2pixhd", generator_cfg={**P2P, "use_instance_edge": True},
               discriminator_cfg={**D_TINY, "spectral_norm": False},
               loss=LossConfig(gan_mode="lsgan", vgg_weights=str(tmp_path / "vgg19.pth")),
               lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, max_steps=2)
    summary = train_gan(cfg, Pairs(n=4, edges=True), tmp_path / "p2p", progress=False)
    assert summary["steps"] == 2 and summary["vgg_used"] is True
    rows = read_losses(tmp_path / "p2p" / "losses.csv")
    assert all(r["g_vgg"] > 0 and np.isfinite(list(r.values())).all() for r in rows)
    assert [r["lr_g"] for r in rows] == [2e-4, 2e-4] and [r["lr_d"] for r in rows] == [2e-4, 2e-4]
    raw = torch.load(tmp_path / "p2p" / "checkpoint.pt", weights_only=True)
    assert raw["model"] == "pix2pixhd" and raw["extra"]["vgg_used"] is True
    assert raw["optimizers"]["discriminator"]["param_groups"][0]["betas"] == (0.5, 0.999)
    d_keys = raw["aux_state_dicts"]["discriminator"]
    assert not any("parametrizations" in k for k in d_keys)  # no spectral norm
    assert d_keys["scales.0.blocks.0.0.weight"].shape[1] == LABEL_NC + 1 + 3  # labels + edge + RGB
    # flips belong to the trainer: a dataset that flips by itself is refused
    with pytest.raises(ValueError, match="flip=True"):
        train_gan(_cfg(), Pairs(flip=True), tmp_path / "x", progress=False)


def test_two_steps_on_real_facades(data_mirror, tmp_path):
    from lib.data import TRANSLATION_DATASETS, translation_dataset

    FACADES_NC = TRANSLATION_DATASETS["facades"]
    data = translation_dataset("facades", data_mirror / "facades", "train", 64)
    cfg = _cfg(generator_cfg={**ASAP, "label_nc": FACADES_NC}, size=64, max_steps=2, batch_size=1)
    summary = train_gan(cfg, data, tmp_path, progress=False)
    assert summary["steps"] == 2 and summary["steps_per_epoch"] == len(data) == 318
    rows = read_losses(tmp_path / "losses.csv")
    assert [r["step"] for r in rows] == [1, 2] and all(np.isfinite(list(r.values())).all() for r in rows)
    assert np.asarray(Image.open(tmp_path / "samples" / "latest.png")).shape == (4 * 64 + 6, 3 * 64 + 4, 3)
    test = translation_dataset("facades", data_mirror / "facades", "test", 64)
    files = generate(load_model(tmp_path / "checkpoint.pt"), torch.utils.data.Subset(test, [0, 1]), tmp_path / "gen")
    assert [f.name for f in files] == ["cmp_b0001.png", "cmp_b0002.png"]


# ----------------------------------------------------------------------------- the converging recipe


def test_step_schedule_decays_linearly_to_the_end():
    from lib.train.gan import step_lr_factor

    assert [step_lr_factor(s, 6, 4) for s in range(6)] == [1.0, 1.0, 1.0, 0.75, 0.5, 0.25]
    assert step_lr_factor(3, 6, 0) == 1.0
    assert GANTrainConfig(steps=7, decay_steps=3).total_steps(10_000) == 7
    assert GANTrainConfig(steps=7, max_steps=5).total_steps(10) == 5
    with pytest.raises(ValueError, match="decay_steps must be <= steps"):
        GANTrainConfig(steps=3, decay_steps=4)
    with pytest.raises(ValueError, match="ema_decay"):
        GANTrainConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match="precision"):
        GANTrainConfig(precision="fp16")


def test_ema_update_is_the_closed_form_average_and_curve_steps_end_at_total():
    from lib.train.gan_outputs import curve_steps, ema_update

    avg, net = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = {k: v.clone() for k, v in avg.state_dict().items()}
    ema_update(avg, net, 0.9)
    for k, v in avg.state_dict().items():
        assert torch.allclose(v, 0.9 * before[k] + 0.1 * net.state_dict()[k])
    assert curve_steps(100, 4) == [25, 50, 75, 100] and curve_steps(3, 6) == [1, 2, 3] and curve_steps(10, 0) == []


def test_l1_ema_and_snapshots(tmp_path):
    """L1 is logged weighted; the evaluated generator is the average; snapshots carry their
    training time and load with the one loader; a resumed run continues the average."""
    from lib.checkpoint import load_checkpoint
    from lib.train.gan import EVAL_GENERATOR_NAME, list_snapshots

    kw = dict(steps=6, decay_steps=3, ema_decay=0.5, curve_points=3, loss=LossConfig(lambda_l1=7.0), precision="fp32")
    out = train_gan(_cfg(**kw), Pairs(), tmp_path / "a", progress=False)
    rows = read_losses(tmp_path / "a" / "losses.csv")
    assert len(rows) == 6 and all(r["g_l1"] > 0 for r in rows)
    assert [r["lr_g"] for r in rows] == pytest.approx([1e-4, 1e-4, 1e-4, 1e-4, 2 / 3 * 1e-4, 1 / 3 * 1e-4])
    snaps = list_snapshots(tmp_path / "a")
    assert [s for s, _, _ in snaps] == [2, 4, 6] and out["curve_steps"] == [2, 4, 6]
    assert all(t1 < t2 for (_, t1, _), (_, t2, _) in zip(snaps, snaps[1:]))
    raw = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    ema_sd = raw["aux_state_dicts"]["generator_ema"]
    final = load_checkpoint(tmp_path / "a" / EVAL_GENERATOR_NAME)
    assert final["ema"] and _equal(final["state_dict"], ema_sd) and not _equal(ema_sd, raw["state_dict"])
    assert _equal(load_model(snaps[-1][2]).state_dict(), ema_sd)
    # interrupted after 3 steps and resumed: same average, same snapshots
    train_gan(_cfg(**kw, max_steps=3), Pairs(), tmp_path / "b", progress=False)
    train_gan(_cfg(**kw), Pairs(), tmp_path / "b", progress=False)
    assert _equal(load_checkpoint(tmp_path / "b" / EVAL_GENERATOR_NAME)["state_dict"], ema_sd)
