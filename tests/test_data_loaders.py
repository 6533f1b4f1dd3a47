"""Image I/O, transforms, Facades/Cityscapes loaders and the denoising data."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as Fn
from PIL import Image

from lib.data import cityscapes as cs
from lib.data import denoise as dn
from lib.data.images import list_images
from lib.data import facades as fc
from lib.data.images import read_image, read_label, write_image
from lib.data.transforms import augment, augment_inverse, one_hot

# ----------------------------------------------------------------------------- images


def test_write_read_roundtrip_and_format(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (7, 9), dtype=np.uint8)
    rgb = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    write_image(tmp_path / "g.png", gray)
    write_image(tmp_path / "c.png", rgb)
    assert np.array_equal(read_image(tmp_path / "g.png", "L"), gray)
    assert np.array_equal(read_image(tmp_path / "c.png", "RGB"), rgb)
    write_image(tmp_path / "c.jpg", rgb)
    assert Image.open(tmp_path / "c.jpg").format == "JPEG"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(ValueError, match="uint8"):
        write_image(tmp_path / "f.png", gray.astype(np.float32))


def test_corrupt_truncated_missing_images_name_the_file(tmp_path):
    bad = tmp_path / "garbage.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(ValueError, match="garbage.png"):
        read_image(bad, "RGB")
    with pytest.raises(ValueError, match="garbage.png"):
        read_label(bad)
    good = tmp_path / "full.png"
    write_image(good, np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="cut.png"):
        read_image(cut, "RGB")
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        read_image(tmp_path / "nothere.png", "L")


def test_read_label_keeps_16_bit_and_palette_indices(tmp_path):
    inst = np.array([[26001, 0], [7, 33002]], dtype=np.uint16)
    Image.fromarray(inst).save(tmp_path / "inst.png")
    lab = read_label(tmp_path / "inst.png")
    assert lab.dtype == np.int64 and lab.tolist() == inst.tolist()
    pal = Image.fromarray(np.array([[1, 12], [3, 5]], dtype=np.uint8)).convert("P")
    pal.putpalette([0, 0, 0] * 256)  # all colours black: indices must still come back
    pal.save(tmp_path / "pal.png")
    assert read_label(tmp_path / "pal.png").tolist() == [[1, 12], [3, 5]]
    write_image(tmp_path / "rgb.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="rgb.png"):
        read_label(tmp_path / "rgb.png")


# ----------------------------------------------------------------------------- transforms


def test_one_hot_matches_reference_and_checks_range():
    labels = torch.randint(0, 5, (2, 3, 4))
    out = one_hot(labels, 5)
    assert out.shape == (2, 5, 3, 4) and out.dtype == torch.float32
    assert torch.equal(out, Fn.one_hot(labels, 5).permute(0, 3, 1, 2).float())
    assert torch.equal(out.sum(1), torch.ones(2, 3, 4))
    with pytest.raises(ValueError, match="13"):
        one_hot(torch.tensor([[[0, 13]]]), 13)
    with pytest.raises(ValueError, match="-1"):
        one_hot(torch.tensor([[[-1, 2]]]), 13)


def test_augment_eight_distinct_modes_with_inverses():
    x = np.arange(12, dtype=np.int64).reshape(3, 4)
    outs = [augment(x, m) for m in range(8)]
    assert len({o.tobytes() + bytes(o.shape) for o in outs}) == 8
    for m in range(8):
        assert np.array_equal(augment_inverse(outs[m], m), x)
        t = torch.from_numpy(x)[None, None]  # (1, 1, H, W)
        assert np.array_equal(augment(t, m)[0, 0].numpy(), outs[m])
        assert torch.equal(augment_inverse(augment(t, m), m), t)
    rgb = np.random.default_rng(0).integers(0, 256, (3, 4, 3))
    assert np.array_equal(augment(rgb, 1)[..., 2], augment(rgb[..., 2], 1))  # channels last untouched
    with pytest.raises(ValueError):
        augment(x, 8)


# ----------------------------------------------------------------------------- facades


def test_facades_real_split_and_tensors(data_mirror):
    root = data_mirror / "facades"
    train, test = fc.facades_split(root, "train"), fc.facades_split(root, "test")
    assert len(train) == 318 and len(test) == 60
    assert train[0][0].name == "cmp_b0061.jpg" and test[0][1].name == "cmp_b0001.png"
    label, photo = fc.load_facades_pair(*test[0], size=64)
    assert label.shape == (64, 64) and label.dtype == torch.int64
    assert photo.shape == (3, 64, 64) and photo.dtype == torch.float32
    assert photo.min() >= -1 and photo.max() <= 1 and photo.std() > 0.1
    assert label.min() >= 1 and label.max() <= 12 and len(label.unique()) > 3
    oh = one_hot(label[None], fc.LABEL_NC)  # (1, 13, 64, 64)
    assert torch.equal(oh.sum(1), torch.ones(1, 64, 64)) and oh[:, 0].sum() == 0
    ds = fc.FacadesDataset(root, "test", size=32, flip=True, seed=3)
    flips = []
    for i in range(6):
        a, b = ds[i], ds[i]
        assert torch.equal(a["image"], b["image"]) and a["path"].endswith(".jpg")
        plain = fc.load_facades_pair(*ds.pairs[i], size=32)
        flipped = not torch.equal(a["label"], plain[0])
        if flipped:
            assert torch.equal(a["label"], plain[0].flip(-1)) and torch.equal(a["image"], plain[1].flip(-1))
        flips.append(flipped)
    assert any(flips) and not all(flips)


def _fake_facades(tmp_path, label: np.ndarray, photo_hw=None, ids=("cmp_b0001",)):
    root = tmp_path / "facades"
    (root / "base").mkdir(parents=True)
    (root / "splits_asapnet").mkdir()
    (root / "splits_asapnet" / "train_ids.txt").write_text("".join(i + "\n" for i in ids))
    h, w = photo_hw or label.shape
    write_image(root / "base" / "cmp_b0001.jpg", np.full((h, w, 3), 120, np.uint8))
    Image.fromarray(label.astype(np.uint8)).convert("P").save(root / "base" / "cmp_b0001.png")
    return root


def test_facades_errors_name_files(tmp_path):
    ok = np.ones((8, 6), np.uint8)
    bad = ok.copy()
    bad[0, 0] = 13
    root = _fake_facades(tmp_path / "a", bad)
    pair = fc.facades_split(root, "train")[0]
    with pytest.raises(ValueError, match=r"cmp_b0001\.png.*\[13\]"):
        fc.load_facades_pair(*pair, size=4)
    zero = ok.copy()
    zero[1, 1] = 0
    root = _fake_facades(tmp_path / "z", zero)
    with pytest.raises(ValueError, match=r"\[0\]"):
        fc.load_facades_pair(*fc.facades_split(root, "train")[0], size=4)
    root = _fake_facades(tmp_path / "b", ok, photo_hw=(8, 7))
    with pytest.raises(ValueError, match=r"cmp_b0001\.jpg.*cmp_b0001\.png"):
        fc.load_facades_pair(*fc.facades_split(root, "train")[0], size=4)
    root = _fake_facades(tmp_path / "c", ok, ids=("cmp_b0001", "cmp_b0002"))
    with pytest.raises(FileNotFoundError, match="cmp_b0002"):
        fc.facades_split(root, "train")
    (root / "splits_asapnet" / "test_ids.txt").write_text("\n")
    with pytest.raises(ValueError, match="test_ids.txt"):
        fc.facades_split(root, "test")


# ----------------------------------------------------------------------------- cityscapes


def test_instance_edges_closed_form():
    inst = np.array([[1, 1, 1, 1],
                     [1, 2, 2, 1],
                     [1, 1, 1, 1],
                     [1, 1, 1, 1]])
    expected = np.array([[0, 1, 1, 0],
                         [1, 1, 1, 1],
                         [0, 1, 1, 0],
                         [0, 0, 0, 0]], dtype=np.float32)
    assert np.array_equal(cs.instance_edges(inst), expected)
    assert torch.equal(cs.instance_edges(torch.from_numpy(inst)), torch.from_numpy(expected))


def test_train_ids_mapping():
    assert cs.LABEL_TO_TRAIN[7] == 0 and cs.LABEL_TO_TRAIN[26] == 13 and cs.LABEL_TO_TRAIN[0] == 255
    valid = sorted(v for v in cs.LABEL_TO_TRAIN.values() if v != 255)
    assert valid == list(range(19)) and len(cs.TRAIN_CLASSES) == 19
    lab = np.array([[7, 26, 0], [33, 23, -1]])
    assert cs.to_train_ids(lab).tolist() == [[0, 13, 255], [18, 10, 255]]
    assert cs.to_train_ids(torch.from_numpy(lab)).tolist() == [[0, 13, 255], [18, 10, 255]]


def test_cityscapes_subset(data_mirror):
    root = data_mirror / "cityscapes_subset"
    train = cs.cityscapes_split(root, "train")
    assert len(train) == 8 and all(it["image"] is not None for it in train)
    with pytest.raises(FileNotFoundError, match="leftImg8bit"):
        cs.cityscapes_split(root, "val")
    val = cs.cityscapes_split(root, "val", require_photos=False)
    assert len(val) == 15 and all(it["image"] is None for it in val)
    ds = cs.CityscapesDataset(root, "train", size=(64, 128), flip=False)
    item = ds[0]
    assert item["label"].shape == (64, 128) and item["label"].dtype == torch.int64
    assert item["instance_edge"].shape == (1, 64, 128) and item["image"].shape == (3, 64, 128)
    assert set(item["instance_edge"].unique().tolist()) == {0.0, 1.0}
    assert 0 <= item["label"].min() and item["label"].max() < cs.LABEL_NC
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    native = cs.load_cityscapes_item(train[0], None)  # subset is stored at 256x512
    assert native["label"].shape == (256, 512)
    inst = read_label(train[0]["instance"])
    assert inst.max() > 1000  # 16-bit instance ids kept (class * 1000 + k)
    assert torch.equal(native["instance_edge"][0], torch.from_numpy(cs.instance_edges(inst)))
    tid = cs.to_train_ids(native["label"])
    assert torch.equal(tid, torch.from_numpy(cs.to_train_ids(native["label"].numpy())))
    assert set(tid.unique().tolist()) <= set(range(19)) | {255} and (tid == 0).any()  # road present
    vds = cs.CityscapesDataset(root, "val", size=(32, 64), require_photos=False)
    assert "image" not in vds[0] and vds[0]["instance_edge"].shape == (1, 32, 64)


# ----------------------------------------------------------------------------- denoising


def test_noise_seed_is_stable():
    s = dn.test_noise_seed(0, "test001.png", 25)
    assert s == dn.test_noise_seed(0, "test001.png", 25.0)
    assert s != dn.test_noise_seed(0, "test001.png", 15) and s != dn.test_noise_seed(1, "test001.png", 25)
    assert s != dn.test_noise_seed(0, "test002.png", 25)
    import hashlib

    assert s == int.from_bytes(hashlib.sha256(b"0/test001.png/25.0").digest()[:8], "big")


def test_noisy_test_image_protocol():
    flat = np.full((256, 256), 128, np.uint8)
    a = dn.noisy_test_image(flat, 25, seed=7)
    assert a.dtype == np.float32 and a.shape == flat.shape
    assert np.array_equal(a, dn.noisy_test_image(flat, 25, seed=7))
    assert not np.array_equal(a, dn.noisy_test_image(flat, 15, seed=7))
    assert abs(a.std() - 25 / 255) < 0.01 * 25 / 255  # 65536 samples: rel. s.e. about 0.3 %
    assert abs(a.mean() - 128 / 255) < 0.002
    expected = flat / 255 + 25 / 255 * np.random.default_rng(7).standard_normal(flat.shape)
    assert np.allclose(a, expected, atol=1e-6)
    dark = dn.noisy_test_image(np.zeros((64, 64, 3), np.uint8), 50, seed=1)
    assert dark.min() < 0 and dark.shape == (64, 64, 3)  # not clipped


def test_denoise_sets_real(data_mirror, tmp_path):
    paths = list_images(data_mirror / "bsd68")
    assert len(paths) == 68 and paths[0].name == "test001.png"
    set12 = dn.load_named_set(data_mirror, "set12")
    assert len(set12) == 12 and all(a.ndim == 2 and a.dtype == np.uint8 for _, a in set12)
    assert {a.shape for _, a in set12} == {(256, 256), (512, 512)}
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        list_images(tmp_path / "empty")


def test_patch_dataset_shapes_sigma_and_determinism():
    rng = np.random.default_rng(0)
    gray = [rng.integers(0, 256, (12, 12), dtype=np.uint8)]
    ds = dn.PatchDataset(gray, patch_size=8, patches_per_epoch=40, sigma=(0, 55), seed=5)
    sigmas, modes_ok = [], 0
    for i in range(len(ds)):
        it = ds[i]
        assert it["clean"].shape == (1, 8, 8) and it["noisy"].shape == (1, 8, 8)
        assert 0 <= it["clean"].min() and it["clean"].max() <= 1
        sigmas.append(float(it["sigma"]))
        patch = np.rint(it["clean"][0].numpy() * 255).astype(np.uint8)
        # the patch is a dihedral transform of some crop of the image
        found = any(
            np.array_equal(augment_inverse(patch, m), gray[0][t:t + 8, left:left + 8])
            for m in range(8) for t in range(5) for left in range(5)
        )
        modes_ok += found
    assert modes_ok == len(ds)
    assert min(sigmas) >= 0 and max(sigmas) <= 55 and np.std(sigmas) > 5
    a, b = ds[3], ds[3]
    assert all(torch.equal(a[k], b[k]) for k in a)
    ds.set_epoch(1)
    assert not torch.equal(ds[3]["noisy"], a["noisy"])
    color = [rng.integers(0, 256, (50, 60, 3), dtype=np.uint8) for _ in range(2)]
    cds = dn.PatchDataset(color, patch_size=40, patches_per_epoch=4, sigma=25.0, seed=0)
    it = cds[0]
    assert it["clean"].shape == (3, 40, 40) and float(it["sigma"]) == 25.0
    assert abs((it["noisy"] - it["clean"]).std().item() - 25 / 255) < 0.1 * 25 / 255
    with pytest.raises(ValueError, match="smaller than patch"):
        dn.PatchDataset(color, patch_size=64, patches_per_epoch=4)
