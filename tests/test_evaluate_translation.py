"""Translation evaluation: mIoU on synthetic cases, FID/KID plumbing, image sets, result files."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from lib.checkpoint import save_checkpoint
from lib.config import to_dict
from lib.data.images import read_image
from lib.io import read_json
from lib.metrics import fid as fidlib
from lib.models import build, load_model, make_config
from lib.models.generate import generate_images
from lib.data.labels import label_set
from lib.translation import evaluate as ev
from lib.translation import image_sets
from lib.translation import segmentation_eval as segev

SIZE = 16


class TinyFacades(Dataset):
    """Facades-like test items: label ids 1..3 in vertical bands, photo colour = class, stems cmp_bNNNN."""

    def __init__(self, n: int = 5, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.cuts = rng.integers(2, SIZE - 2, (n, 2))
        self.noise = rng.normal(0, 0.05, (n, 3, SIZE, SIZE)).astype(np.float32)

    def __len__(self) -> int:
        return len(self.cuts)

    def __getitem__(self, i: int) -> dict:
        a, b = sorted(int(v) for v in self.cuts[i])
        label = torch.ones(SIZE, SIZE, dtype=torch.long)  # (H, W) id 1
        label[:, a:] = 2
        label[:, b:] = 3
        image = (label.float() / 4 * 2 - 1).expand(3, SIZE, SIZE).clone()  # grey level encodes the id
        image = (image + torch.from_numpy(self.noise[i])).clamp(-1, 1)
        image = ((image + 1) * 127.5).round() / 127.5 - 1  # on the uint8 grid, as photo_to_tensor gives
        return {"label": label, "image": image, "path": f"/data/base/cmp_b{i + 1:04d}.jpg"}


class MeanStd(nn.Module):
    """Stand-in for Inception: ``[features (B, 6, 1, 1)]`` = per-channel mean and std."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f = torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)  # (B, 6)
        return [f[:, :, None, None]]  # (B, 6, 1, 1)


def _generator_checkpoint(path):
    cfg = make_config("pix2pixhd", dict(label_nc=13, use_instance_edge=False, ngf=4, n_downsampling=1, n_blocks=1))
    torch.manual_seed(0)
    gen = build("pix2pixhd", cfg)
    save_checkpoint(path, model="pix2pixhd", config=to_dict(cfg), state_dict=gen.state_dict(), step=0)
    return path


def _oracle(x: torch.Tensor) -> torch.Tensor:
    """Reads the class back from the grey level of TinyFacades photos: id = round(4 (x+1)/2)."""
    ids = torch.round((x[:, 0] + 1) / 2 * 4).long()  # (B, H, W) ids 1..3
    return ids - 1  # classes 0..2


# ---------------------------------------------------------------- mIoU


def test_miou_perfect_and_constant_segmenters():
    data = TinyFacades(4)
    lset = label_set("facades")
    images = torch.stack([data[i]["image"] for i in range(4)])  # (4, 3, H, W)
    targets = torch.stack([lset.targets(data[i]["label"]) for i in range(4)])  # (4, H, W) in 0..2
    perfect = segev.segmentation_scores(_oracle, images, targets, num_classes=12, n_boot=5)
    assert perfect["miou"] == 1.0 and perfect["pixel_accuracy"] == 1.0 and perfect["n"] == 4
    assert perfect["miou_boot_low"] == perfect["miou_boot_high"] == 1.0
    assert all(np.isnan(v) for v in perfect["per_class_iou"][3:])  # absent classes do not count

    constant = segev.segmentation_scores(lambda x: torch.zeros(x.shape[0], SIZE, SIZE, dtype=torch.long),
                                         images, targets, num_classes=12, batch_size=3)
    counts = torch.bincount(targets.flatten(), minlength=3).double()  # pixels per class 0..2
    n0, total = float(counts[0]), float(counts.sum())
    # IoU_0 = n0 / total (every pixel predicted 0); IoU_1 = IoU_2 = 0; classes 3.. absent
    assert constant["miou"] == pytest.approx(n0 / total / 3, rel=1e-12)
    assert constant["pixel_accuracy"] == pytest.approx(n0 / total, rel=1e-12)
    assert np.isnan(constant["miou_boot_low"])  # no bootstrap asked


def test_miou_ignores_pixels_and_pairs_files_by_stem(tmp_path):
    data = TinyFacades(3)
    files = image_sets.real_test_images(data, tmp_path / "real")
    lset = label_set("facades")
    targets = segev.test_targets(data, lset)
    assert sorted(targets) == sorted(p.stem for p in files)
    # knock out class 2 (id 3) in every label map: a constant-0 segmenter then misses only class 1
    masked = {k: torch.where(v == 2, torch.full_like(v, 255), v) for k, v in targets.items()}
    out = segev.segmentation_scores(lambda x: torch.zeros(x.shape[0], SIZE, SIZE, dtype=torch.long),
                                    tmp_path / "real", masked, num_classes=12, ignore_index=255)
    kept = torch.stack(list(masked.values()))
    n0, n1 = int((kept == 0).sum()), int((kept == 1).sum())
    assert out["miou"] == pytest.approx(n0 / (n0 + n1) / 2, rel=1e-12)
    assert segev.segmentation_scores(_oracle, tmp_path / "real", targets, num_classes=12)["miou"] == 1.0
    with pytest.raises(KeyError, match="cmp_b0001"):
        segev.segmentation_scores(_oracle, tmp_path / "real", {"other": targets["cmp_b0002"]}, num_classes=12)


# ---------------------------------------------------------------- image sets


def test_real_and_generated_test_images_share_names_and_size(tmp_path):
    data = TinyFacades(3)
    ckpt = _generator_checkpoint(tmp_path / "gen.pt")
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "stale.png").write_bytes(b"old")  # left by an earlier run: removed
    fake = image_sets.generate_test_images(ckpt, data, tmp_path / "fake", batch_size=2)
    real = image_sets.real_test_images(data, tmp_path / "real")
    assert [p.name for p in fake] == [p.name for p in real] == ["cmp_b0001.png", "cmp_b0002.png", "cmp_b0003.png"]
    assert sorted(p.name for p in (tmp_path / "fake").iterdir()) == [p.name for p in fake]
    for f, r, i in zip(fake, real, range(3)):
        assert read_image(f).shape == read_image(r).shape == (SIZE, SIZE, 3)
        want = ((data[i]["image"] + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, 3)
        np.testing.assert_array_equal(read_image(r), want)
    generator = load_model(ckpt)
    want_fake = generate_images(generator, torch.stack([data[i]["label"] for i in range(3)]))  # (3, H, W, 3)
    np.testing.assert_array_equal(np.stack([read_image(f) for f in fake]), want_fake)
    ref = image_sets.reference_images(TinyFacades(6, seed=1), 3, 0, tmp_path / "ref")
    assert len(ref) == 3 and all(p.exists() for p in ref)


# ---------------------------------------------------------------- FID / KID


def test_fid_kid_uses_one_feature_pass_per_folder(tmp_path):
    real = image_sets.real_test_images(TinyFacades(6, seed=0), tmp_path / "real")
    fake = image_sets.real_test_images(TinyFacades(6, seed=3), tmp_path / "fake")
    model = MeanStd()
    out = ev.fid_kid(tmp_path / "real", tmp_path / "fake", n_boot=10, seed=0, model=model, method="svd")
    f_real, f_fake = fidlib.activations(real, model), fidlib.activations(fake, model)
    assert out["fid"] == pytest.approx(fidlib.fid_from_features(f_real, f_fake, "sqrtm"), rel=1e-6)
    kid, kid_std = fidlib.kid_from_features(f_real, f_fake, 100, 1000, 0)
    assert (out["kid"], out["kid_std"]) == (kid, kid_std)
    assert out["n"] == out["n_real"] == 6
    assert out["fid_boot_low"] <= out["fid_boot_mean"] <= out["fid_boot_high"] and out["fid_boot_std"] > 0
    assert out["kid_boot_low"] <= out["kid_boot_mean"] <= out["kid_boot_high"]
    bare = ev.fid_kid(tmp_path / "real", tmp_path / "fake", n_boot=0, seed=0, model=model, method="svd")
    assert (bare["fid"], bare["kid"]) == (out["fid"], out["kid"]) and np.isnan(bare["fid_boot_low"]) and np.isnan(bare["kid_boot_high"])
    same = ev.fid_kid(tmp_path / "real", tmp_path / "real", n_boot=2, seed=0, model=model, method="svd",
                      real_features=f_real)
    assert abs(same["fid"]) < 1e-9


def test_fid_kid_with_the_inception_weights(tmp_path, weights_mirror, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    image_sets.real_test_images(TinyFacades(3, seed=0), tmp_path / "real")
    image_sets.real_test_images(TinyFacades(3, seed=5), tmp_path / "fake")
    out = ev.fid_kid(tmp_path / "real", tmp_path / "fake", n_boot=2, seed=0,
                     weights_file=weights_mirror / fidlib.LOCAL_WEIGHTS_NAME, dims=64, method="svd")
    assert np.isfinite(out["fid"]) and out["fid"] > 0 and out["n"] == 3


# ---------------------------------------------------------------- rows and files


def test_evaluate_model_and_result_files(tmp_path):
    data = TinyFacades(4)
    lset = label_set("facades")
    cfg = ev.TranslationEvalConfig(n_boot=3, batch_size=2, fid_method="svd", kid_subsets=5)
    ckpt = _generator_checkpoint(tmp_path / "gen.pt")
    image_sets.real_test_images(data, tmp_path / "real")
    targets = segev.test_targets(data, lset)
    segmenter = (_oracle, "oracle reading the grey level")
    row = ev.evaluate_model("pix2pixhd", ckpt, data, lset, tmp_path / "real", tmp_path / "fake", segmenter,
                            MeanStd(), cfg, targets=targets)
    assert tuple(row)[: len(ev.ROW_COLUMNS)] == ev.ROW_COLUMNS
    assert row["model"] == "pix2pixhd" and row["n"] == 4 and row["fid"] > 0 and row["segmenter"] == segmenter[1]
    assert len(row["per_class_iou"]) == 12
    no_ref = dataclasses.replace(cfg, real_reference=False)
    real = ev.evaluate_real(tmp_path / "real", lset, targets, segmenter, no_ref)
    assert real["miou"] == 1.0 and np.isnan(real["fid"]) and real["n"] == 4 and real["fid_between"] == ""
    with pytest.raises(ValueError, match="reference_set"):
        ev.evaluate_real(tmp_path / "real", lset, targets, segmenter, cfg)
    ref = ev.evaluate_real(tmp_path / "real", lset, targets, segmenter, cfg, inception=MeanStd(),
                           reference_set=TinyFacades(6, seed=9), reference_dir=tmp_path / "ref")
    assert ref["n"] == 4 and ref["fid"] > 0 and "training" in ref["fid_between"]
    assert len(list((tmp_path / "ref").glob("*.png"))) == 4
    js, cs = ev.write_results([row, real], {"scale": "smoke"}, tmp_path / "m.json", tmp_path / "m.csv",
                              class_names=lset.class_names, per_class_path=tmp_path / "pc.csv", extra={"curves": {"points": 3}})
    per_class = pd.read_csv(tmp_path / "pc.csv")
    assert list(per_class["model"].unique()) == ["pix2pixhd", "real"] and list(per_class["class"][:12]) == list(lset.class_names)
    np.testing.assert_array_equal(per_class["iou"][:12], row["per_class_iou"])
    table = pd.read_csv(cs)
    assert tuple(table.columns) == ev.ROW_COLUMNS and list(table["model"]) == ["pix2pixhd", "real"]
    assert table.loc[1, "miou"] == 1.0 and np.isnan(table.loc[1, "fid"])
    saved = read_json(js)
    assert saved["meta"] == {"scale": "smoke"} and "biased" in saved["fid_caveat"] and saved["curves"] == {"points": 3}
    assert [r["model"] for r in saved["rows"]] == ["pix2pixhd", "real"]
    assert set(ev.ROW_COLUMNS) <= set(saved["rows"][0]) and saved["rows"][1]["per_class_iou"]["background"] == 1.0
    with pytest.raises(ValueError, match="lacks"):
        ev.write_results([{"model": "x"}], {}, tmp_path / "x.json", tmp_path / "x.csv")

    grid, stems = image_sets.sample_grid(data, {"pix2pixhd": tmp_path / "fake", "real": tmp_path / "real"}, label_nc=13, n=2)
    assert grid.shape == (2 * SIZE + 2, 3 * SIZE + 4, 3) and stems == ["cmp_b0001", "cmp_b0004"]


def test_build_segmenter_checks_the_label_set(tmp_path):
    from lib.models import segmentation as seg

    net_cfg = seg.SegmentationNetConfig(arch="unet", num_classes=12, width=4, label_set="facades")
    net = seg.SegmentationNet(net_cfg)
    save_checkpoint(tmp_path / "s.pt", model="segmenter", config=to_dict(net_cfg), state_dict=net.state_dict(),
                    step=7, params={"size": SIZE})
    cfg = ev.TranslationEvalConfig()
    model, desc = ev.build_segmenter(cfg, tmp_path / "s.pt", label_set("facades"), size=SIZE)
    assert isinstance(model, seg.SegmentationNet) and "7 steps" in desc and "facades" in desc
    with pytest.raises(ValueError, match="19 cityscapes"):
        ev.build_segmenter(cfg, tmp_path / "s.pt", label_set("cityscapes"))
    with pytest.warns(UserWarning, match="trained at 16 px"):
        ev.build_segmenter(cfg, tmp_path / "s.pt", label_set("facades"), size=32)


@pytest.mark.filterwarnings("ignore:`torch.jit")
def test_build_segmenter_from_a_torchscript_file(tmp_path):
    from lib.models import segmentation as seg

    torch.jit.script(nn.Conv2d(3, 19, 1)).save(str(tmp_path / "drn_d_105.pt"))
    cfg = ev.TranslationEvalConfig(segmenter=str(tmp_path / "drn_d_105.pt"), segmenter_input_size=(32, 64))
    model, desc = ev.build_segmenter(cfg, None, label_set("cityscapes"))
    assert isinstance(model, seg.ScriptedSegmenter) and "drn_d_105.pt" in desc and "external" in desc
    assert seg.segment(model, torch.zeros(1, 3, 16, 32)).shape == (1, 16, 32)
