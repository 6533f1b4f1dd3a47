"""Segmentation networks and the segmenter trainer: label sets and colours, networks, MAC count,
training, the derived size, TorchScript segmenters. The shared loop (resume, NaN stop, DDP) is
tested over every trainer in tests/test_train_loop.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TwoColours
from torch import nn

from lib.config import ConfigError, from_dict
from lib.data.labels import label_colormap, label_set
from lib.models import load_model
from lib.models import segmentation as seg
from lib.train import segmenter as trainer
from lib.train.common import read_losses
from lib.train.gan import TranslationTrainStage


def _cfg(**kw) -> trainer.SegmenterTrainConfig:
    base = dict(seed=0, width=8, size=16, batch_size=4, epochs=15, lr=1e-2, log_every=1,
                checkpoint_every=0, threads=1, device="cpu")
    return trainer.SegmenterTrainConfig(**{**base, **kw})


# ---------------------------------------------------------------- label sets


def test_label_sets_map_dataset_ids_to_classes():
    fac = label_set("facades")
    assert fac.num_classes == 12 and len(fac.class_names) == 12 and fac.class_names[0] == "background"
    assert fac.targets(torch.tensor([0, 1, 2, 12, 13])).tolist() == [255, 0, 1, 11, 255]
    city = label_set("cityscapes")
    assert city.num_classes == 19 and city.class_names[13] == "car"
    # labelIds 7 road -> 0, 26 car -> 13, 33 bicycle -> 18, 0 unlabeled and 9 parking -> ignore
    assert city.targets(np.array([7, 26, 33, 0, 9])).tolist() == [0, 13, 18, 255, 255]
    with pytest.raises(KeyError, match="facades"):
        label_set("ade20k")


def test_label_colormap_is_the_voc_palette():
    colours = label_colormap(np.array([[0, 1, 2], [3, 12, 7]]), 13)
    assert colours.dtype == np.uint8 and colours.shape == (2, 3, 3)
    assert colours[0].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    assert colours[1].tolist() == [[128, 128, 0], [64, 0, 128], [128, 128, 128]]  # VOC: cat, dog, bus
    assert len({tuple(c) for c in label_colormap(np.arange(35), 35)}) == 35
    with pytest.raises(ValueError, match="outside"):
        label_colormap(torch.tensor([[13]]), 13)


# ---------------------------------------------------------------- networks


@pytest.mark.parametrize("arch", seg.ARCHS)
def test_networks_map_images_to_full_size_logits(arch):
    torch.manual_seed(0)
    net = seg.SegmentationNet(seg.SegmentationNetConfig(arch=arch, num_classes=5, width=4)).eval()
    x = torch.rand(2, 3, 32, 64) * 2 - 1
    with torch.no_grad():
        out = net(x)
    assert out.shape == (2, 5, 32, 64) and torch.isfinite(out).all()
    ids = seg.segment(net, x)
    assert ids.dtype == torch.int64 and torch.equal(ids, out.argmax(1))


def test_unet_gradients_reach_every_parameter():
    net = seg.UNet(num_classes=3, width=4, depth=2)
    net(torch.randn(2, 3, 8, 8)).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    with pytest.raises(ValueError, match="multiple of 4"):
        net(torch.randn(1, 3, 10, 8))


def test_complexity_equals_closed_form_for_a_one_level_unet():
    h, w, c, k = 8, 12, 5, 4  # image, classes, base width
    got = seg.complexity(seg.SegmentationNetConfig(arch="unet", num_classes=c, width=k, depth=1), h, w)
    hw = h * w
    macs = (
        hw * 9 * (3 * k + k * k)  # inc: 3 -> k, k -> k at full size
        + hw // 4 * 9 * (k * 2 * k + 2 * k * 2 * k)  # down: k -> 2k, 2k -> 2k at half size
        + hw * 9 * (3 * k * k + k * k)  # up: (2k + k) -> k, k -> k at full size
        + hw * k * c  # 1x1 head
    )
    assert got["gmacs"] * 1e9 == pytest.approx(macs, rel=1e-12)
    n_params = sum(p.numel() for p in seg.SegmentationNet(seg.SegmentationNetConfig(num_classes=c, width=k, depth=1)).parameters())
    assert got["params"] == n_params


def test_segment_accepts_ids_and_rejects_bad_shapes():
    x = torch.zeros(2, 3, 4, 4)
    ids = seg.segment(lambda im: torch.ones(im.shape[0], 4, 4, dtype=torch.long), x)
    assert ids.tolist() == torch.ones(2, 4, 4, dtype=torch.long).tolist()
    with pytest.raises(ValueError, match="do not match"):
        seg.segment(lambda im: torch.zeros(2, 3, 2, 2), x)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        seg.segment(lambda im: im, torch.zeros(3, 4, 4))


# ---------------------------------------------------------------- training


@pytest.mark.parametrize("kw", [{}, dict(precision="bf16", scale_range=(0.8, 1.25), color_jitter=0.2,
                                         class_weights="inverse_sqrt")], ids=["fp32", "bf16-augmented-weighted"])
def test_training_loss_falls_and_segments_two_colours(tmp_path, kw):
    data = TwoColours(8)
    out = trainer.train_segmenter(_cfg(**kw), data, tmp_path, labels="facades", progress=False)
    assert out["steps"] == 30 and out["label_set"] == "facades" and out["num_classes"] == 12
    assert out["precision"] == kw.get("precision", "fp32")
    rows = read_losses(tmp_path / trainer.LOSSES_NAME)
    assert [r["step"] for r in rows] == list(range(1, 31))
    first, last = np.mean([r["loss"] for r in rows[:3]]), np.mean([r["loss"] for r in rows[-3:]])
    assert last < 0.6 * first, (first, last)  # from about ln(12) = 2.5
    assert rows[-1]["lr"] < rows[0]["lr"]  # poly decay
    model = load_model(tmp_path / trainer.CHECKPOINT_NAME)
    assert isinstance(model, seg.SegmentationNet) and model.cfg.label_set == "facades"
    items = [data[i] for i in range(len(data))]
    pred = seg.segment(model, torch.stack([it["image"] for it in items]))  # (8, 16, 16)
    true = torch.stack([label_set("facades").targets(it["label"]) for it in items])
    assert (pred == true).float().mean() > 0.9


def test_zoom_pads_with_ignore_and_crops_inside_the_image():
    torch.manual_seed(0)
    image, target = torch.rand(3, 16, 16) * 2 - 1, torch.randint(0, 5, (16, 16))
    rng = np.random.default_rng(0)
    same = trainer.augment_item(image, target, rng, (1.0, 1.0), 0.0, 255)
    assert torch.equal(same[0], image) and torch.equal(same[1], target)
    for _ in range(5):
        small_img, small = trainer.augment_item(image, target, rng, (0.5, 0.5), 0.0, 255)
        # zoom 1/2: the image covers (H/2)^2 of the H^2 output pixels; the rest is padding
        assert (small == 255).sum() == 16 * 16 - 8 * 8
        near = nn.functional.max_pool2d((small != 255).float()[None, None], 3, 1, 1)[0, 0] > 0  # (16, 16): valid +- 1 px
        assert (small_img[:, ~near] == 0).all()  # bilinear padding reaches at most one pixel past the image
        big_img, big = trainer.augment_item(image, target, rng, (2.0, 2.0), 0.0, 255)
        assert (big != 255).all() and set(big.unique().tolist()) <= set(target.unique().tolist())
        assert big_img.shape == image.shape and big.dtype == torch.int64


def test_colour_jitter_keeps_targets_and_range():
    image, target = torch.rand(3, 8, 8) * 2 - 1, torch.randint(0, 5, (8, 8))
    out, same = trainer.augment_item(image, target, np.random.default_rng(3), (1.0, 1.0), 0.4, 255)
    assert torch.equal(same, target) and out.min() >= -1 and out.max() <= 1 and not torch.equal(out, image)
    grey = torch.zeros(3, 8, 8)  # mid grey: contrast and saturation leave it, brightness b scales it
    out = trainer.augment_item(grey, target, np.random.default_rng(4), (1.0, 1.0), 0.4, 255)[0]
    b = np.random.default_rng(4).uniform(0.6, 1.4, size=3)[0]
    torch.testing.assert_close(out, torch.full_like(grey, 0.5 * b * 2 - 1))


def test_class_weights_are_inverse_sqrt_of_the_share_with_unit_mean_loss_scale():
    counts = torch.tensor([900, 100, 0, 25])
    w = trainer.class_weights(counts)
    share = counts / counts.sum()
    assert w[2] == 0
    torch.testing.assert_close((share * w).sum(), torch.tensor(1.0))
    torch.testing.assert_close(w[1] / w[0], torch.tensor(3.0))  # sqrt(900 / 100)
    torch.testing.assert_close(w[3] / w[1], torch.tensor(2.0))  # sqrt(100 / 25)


def test_augmentation_is_a_function_of_seed_epoch_and_index(tmp_path):
    cfg = _cfg(scale_range=(0.7, 1.4), color_jitter=0.3)
    items = trainer._Targets(TwoColours(4), label_set("facades"), cfg, cache=True)
    items.set_epoch(2)
    a = items[1]
    items.set_epoch(0)
    other = items[1]
    items.set_epoch(2)
    b = items[1]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["target"], b["target"])
    assert not torch.equal(a["image"], other["image"])
    counts = items.pixel_counts()
    assert counts.sum() == 4 * 16 * 16 and counts[2:].sum() == 0  # two colours: classes 0 and 1 only


def test_trainer_rejects_flipping_datasets_and_wrong_sizes(tmp_path):
    data = TwoColours(8)
    data.flip = True
    with pytest.raises(ValueError, match="flip"):
        trainer.train_segmenter(_cfg(), data, tmp_path, progress=False)
    with pytest.raises(ValueError, match="size=32"):
        trainer.train_segmenter(_cfg(size=32), TwoColours(8), tmp_path, progress=False)


def test_config_validation_and_the_size_from_the_translation_stage():
    with pytest.raises(ValueError, match="arch"):
        trainer.SegmenterTrainConfig(arch="drn")
    for bad, key in [(dict(scale_range=(1.5, 1.0)), "scale_range"), (dict(color_jitter=1.0), "color_jitter"),
                     (dict(class_weights="median"), "class_weights"), (dict(precision="fp16"), "precision")]:
        with pytest.raises(ValueError, match=key):
            trainer.SegmenterTrainConfig(**bad)
    assert trainer.SegmenterTrainConfig().total_steps(318) == 8 * 39
    assert trainer.poly_factor(0, 10) == 1.0 and trainer.poly_factor(10, 10) == 0.0
    assert trainer.poly_factor(5, 10) == pytest.approx(0.5**0.9)
    stage = from_dict(TranslationTrainStage, {"common": {"size": 64, "generator_cfg": {"label_nc": 13}}, "models": {"asapnet": {}}})
    assert trainer.segmenter_config(trainer.SegmenterTrainConfig(), stage).size == 64
    assert trainer.segmenter_config(trainer.SegmenterTrainConfig(size=64), stage).size == 64
    with pytest.raises(ConfigError, match="train_segmenter.size=128 differs from the translation size 64"):
        trainer.segmenter_config(trainer.SegmenterTrainConfig(size=128), stage)
    with pytest.raises(ValueError, match="segmenter_config"):
        trainer.train_segmenter(trainer.SegmenterTrainConfig(), TwoColours(8), "unused")


# ---------------------------------------------------------------- TorchScript segmenters


class _HalfResScores(nn.Module):
    """Scores at half resolution, returned first in a tuple (as DRN's DRNSeg)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.conv(nn.functional.avg_pool2d(x, 2))  # (B, 4, H/2, W/2)
        return torch.log_softmax(y, 1), x


@pytest.mark.filterwarnings("ignore:`torch.jit")
def test_torchscript_segmenter_normalises_and_upsamples(tmp_path):
    torch.manual_seed(0)
    inner = _HalfResScores().eval()
    torch.jit.script(inner).save(str(tmp_path / "drn_like.pt"))
    mean, std = (0.3, 0.4, 0.5), (0.2, 0.25, 0.5)
    model = seg.load_torchscript_segmenter(tmp_path / "drn_like.pt", num_classes=4, mean=mean, std=std)
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        out = model(x)
        norm = ((x + 1) / 2 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        ref = nn.functional.interpolate(inner(norm)[0], size=(8, 8), mode="bilinear", align_corners=False)
    assert out.shape == (2, 4, 8, 8)
    torch.testing.assert_close(out, ref)
    with pytest.raises(ValueError, match=r"expected \(B, 19"):
        seg.load_torchscript_segmenter(tmp_path / "drn_like.pt", num_classes=19)(x)
    torch.save({"w": torch.zeros(1)}, tmp_path / "state.pth")
    with pytest.raises(ValueError, match=r"state\.pth.*not a TorchScript"):
        seg.load_torchscript_segmenter(tmp_path / "state.pth")


def test_segmentation_grid_shape():
    data = TwoColours(2)
    net = seg.SegmentationNet(seg.SegmentationNetConfig(num_classes=12, width=4)).eval()
    grid = seg.segmentation_grid(net, data, label_set("facades"), n=4)  # only 2 items
    assert grid.shape == (2 * 16 + 2, 3 * 16 + 4, 3) and grid.dtype == np.uint8
    # right panel: true classes 0 (red part) and 1 coloured as palette entries 1 and 2
    np.testing.assert_array_equal(grid[0, 2 * 16 + 4], [128, 0, 0])


def test_exported_program_segmenter(tmp_path):
    torch.manual_seed(1)
    inner = _HalfResScores().eval()
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    torch.export.save(torch.export.export(inner, (torch.zeros(2, 3, 8, 8),)), str(tmp_path / "seg.pt2"))
    model = seg.load_torchscript_segmenter(tmp_path / "seg.pt2", num_classes=4, mean=(0.5,) * 3, std=(0.5,) * 3)
    with torch.no_grad():
        ref = nn.functional.interpolate(inner(x)[0], size=(8, 8), mode="bilinear", align_corners=False)  # mean = std = 0.5: identity
        torch.testing.assert_close(model(x), ref)
