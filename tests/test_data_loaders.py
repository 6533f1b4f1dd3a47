"""Image I/O, transforms, the paired label -> photo datasets (Facades, Cityscapes, CamVid, bad data) and the denoising data."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as Fn
from PIL import Image

from lib.config import ConfigError, to_dict
from lib.data import TRANSLATION_DATASETS, dataset_config, image_size, translation_dataset
from lib.data import denoise as dn
from lib.data.catalog import CAMVID, load_datasets
from lib.data.labels import label_set
from lib.data.paired import PairedDataset, label_channels, load_pair, split_pairs
from lib.data.images import list_images, read_image, read_label, write_image
from lib.data.transforms import augment, augment_inverse, instance_edges, one_hot

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


# ----------------------------------------------------------------------------- instance edges


def test_instance_edges_closed_form():
    inst = np.array([[1, 1, 1, 1],
                     [1, 2, 2, 1],
                     [1, 1, 1, 1],
                     [1, 1, 1, 1]])
    expected = np.array([[0, 1, 1, 0],
                         [1, 1, 1, 1],
                         [0, 1, 1, 0],
                         [0, 0, 0, 0]], dtype=np.float32)
    assert np.array_equal(instance_edges(inst), expected)
    assert torch.equal(instance_edges(torch.from_numpy(inst)), torch.from_numpy(expected))


# ----------------------------------------------------------------------------- paired datasets: real data


def test_facades_real_split_and_tensors(data_mirror):
    root = data_mirror / "facades"
    cfg = dataset_config("facades", root)
    train, test = split_pairs(cfg, "train"), split_pairs(cfg, "test")
    assert len(train) == 318 and len(test) == 60
    assert train[0].photo.name == "cmp_b0061.jpg" and test[0].label.name == "cmp_b0001.png"
    item = load_pair(cfg, test[0], (64, 64))
    label, photo = item["label"], item["image"]
    assert label.shape == (64, 64) and label.dtype == torch.int64 and "instance_edge" not in item
    assert photo.shape == (3, 64, 64) and photo.dtype == torch.float32
    assert photo.min() >= -1 and photo.max() <= 1 and photo.std() > 0.1
    assert label.min() >= 1 and label.max() <= 12 and len(label.unique()) > 3
    oh = one_hot(label[None], TRANSLATION_DATASETS["facades"])  # (1, 13, 64, 64)
    assert torch.equal(oh.sum(1), torch.ones(1, 64, 64)) and oh[:, 0].sum() == 0
    # the inline names are those of the dataset's label_names.txt
    assert label_set("facades").class_names == tuple(line.split()[1] for line in (root / "label_names.txt").read_text().splitlines())
    ds = PairedDataset(cfg, "test", size=32, flip=True, seed=3)
    flips = []
    for i in range(6):
        a, b = ds[i], ds[i]
        assert torch.equal(a["image"], b["image"]) and a["path"].endswith(".jpg")
        plain = load_pair(cfg, ds.pairs[i], (32, 32))
        flipped = not torch.equal(a["label"], plain["label"])
        if flipped:
            assert torch.equal(a["label"], plain["label"].flip(-1)) and torch.equal(a["image"], plain["image"].flip(-1))
        flips.append(flipped)
    assert any(flips) and not all(flips)


def test_cityscapes_subset(data_mirror):
    root = data_mirror / "cityscapes_subset"
    ds = translation_dataset("cityscapes", root, "train", 64)
    assert len(ds) == 8 and ds.pairs[0].label.name == "aachen_000000_000019_gtFine_labelIds.png"
    assert [p.photo.name[:20] for p in ds.pairs] == [f"aachen_00000{i}_000019" for i in range(8)]
    item = ds[0]
    assert item["label"].shape == (64, 128) and item["label"].dtype == torch.int64
    assert item["instance_edge"].shape == (1, 64, 128) and item["image"].shape == (3, 64, 128)
    assert set(item["instance_edge"].unique().tolist()) == {0.0, 1.0}
    assert 0 <= item["label"].min() and item["label"].max() < TRANSLATION_DATASETS["cityscapes"] == 35
    native = load_pair(ds.cfg, ds.pairs[0], None)  # the subset is stored at 256x512
    assert native["label"].shape == (256, 512)
    inst = read_label(ds.pairs[0].instance)
    assert inst.max() > 1000  # 16-bit instance ids kept (class * 1000 + k)
    assert torch.equal(native["instance_edge"][0], torch.from_numpy(instance_edges(inst)))
    with pytest.raises(FileNotFoundError, match=r"split 'val': photo folder not found: .*leftImg8bit/val"):
        translation_dataset("cityscapes", root, "val", 64)  # the subset's val maps come without photos
    # mIoU over the 19 trainIds of cityscapesScripts
    city = label_set("cityscapes")
    assert city.num_classes == 19 and city.class_names[:3] == ("road", "sidewalk", "building")
    assert city.class_names[-1] == "bicycle" and city.class_names[13] == "car"
    lab = np.array([[7, 26, 0], [33, 23, -1]])
    assert city.targets(lab).tolist() == [[0, 13, 255], [18, 10, 255]]
    tid = city.targets(native["label"])
    assert set(tid.unique().tolist()) <= set(range(19)) | {255} and (tid == 0).any()  # road present


def test_camvid(data_mirror):
    root = data_mirror / "camvid"
    sizes = {split: len(translation_dataset("camvid", root, split)) for split in ("train", "val", "test")}
    assert sizes == {"train": 367, "val": 101, "test": 233}  # SegNet's CamVid
    ds = translation_dataset("camvid", root, "train")
    assert ds.size == (128, 176) and image_size("camvid", 64) == (64, 88)
    assert ds.pairs[0].photo == root / "train" / "0001TP_006690.png"
    assert ds.pairs[0].label == root / "trainannot" / "0001TP_006690.png"
    item = ds[0]
    assert item["image"].shape == (3, 128, 176) and item["label"].shape == (128, 176)
    assert set(item["label"].unique().tolist()) <= set(range(12)) and "instance_edge" not in item
    assert TRANSLATION_DATASETS["camvid"] == 12  # 11 classes + Unlabelled as its own input channel
    assert one_hot(item["label"][None], 12).shape == (1, 12, 128, 176)
    labels = label_set("camvid", root)
    assert labels.num_classes == 11 and labels.class_names == (
        "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist")
    assert labels.targets(torch.tensor([0, 10, 11])).tolist() == [0, 10, 255]  # Unlabelled is ignored


def _readme_section() -> str:
    from lib.paths import ROOT

    text = (ROOT / "README.md").read_text()
    start = text.index("## Bring your own paired dataset")
    return text[start:text.index("\n## ", start + 1)]


def test_readme_example_is_the_built_in_camvid_entry():
    import re

    import yaml

    block = re.search(r"```yaml\n(.*?)```", _readme_section(), re.S).group(1)
    entries = yaml.safe_load(block)["datasets"]
    assert load_datasets(entries)["camvid"] == dataset_config("camvid")


def test_readme_error_lines_are_the_real_messages(data_mirror, tmp_path):
    """Each error line of the README is what the loader says for that problem (paths shortened)."""
    import re
    import shutil

    section = _readme_section()
    shown = re.search(r"\*\*What bad data look like\.\*\*.*?```\n(.*?)```", section, re.S).group(1).splitlines()
    root = tmp_path / "data" / "raw" / "camvid"
    for rel in ("class_names.txt", "train/0001TP_006690.png", "trainannot/0001TP_006690.png",
                "train/0001TP_006720.png", "val/0016E5_07959.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_mirror / "camvid" / rel, root / rel)
    (root / "train.txt").write_text("train/0001TP_006690.png trainannot/0001TP_006690.png\n"
                                    "train/0001TP_006720.png trainannot/0001TP_006720.png\n")
    bad = root / "trainannot" / "0001TP_006720.png"
    good = np.asarray(Image.open(root / "trainannot" / "0001TP_006690.png"))

    def message(make, split="train", index=1, size=None, entry=None) -> str:
        make()
        with pytest.raises((ValueError, FileNotFoundError)) as e:
            if entry is not None:
                load_datasets({"camvid": entry})
            ds = translation_dataset("camvid", root, split, size)
            ds[index]
        return str(e.value).replace(f"{tmp_path}/", "")

    ids = good.copy()
    ids[0, :2] = [12, 255]
    got = [
        message(lambda: None),
        message(lambda: Image.fromarray(ids).save(bad)),
        message(lambda: shutil.copy(root / "train" / "0001TP_006690.png", bad)),
        message(lambda: Image.fromarray(good).convert("P").save(bad)),
        message(lambda: Image.fromarray(good.astype(np.uint16)).save(bad)),
        message(lambda: Image.fromarray(np.zeros((360, 480), np.uint8)).save(bad)),
        message(lambda: (root / "val.txt").write_text(""), "val"),
        message(lambda: (root / "val.txt").write_text("val/0016E5_07959.png\n"), "val"),
        message(lambda: Image.fromarray(good).save(bad), size=100),
        message(lambda: None, entry={**CAMVID, "splits": {"train": {"list": "train.txt", "photos": "train"}}}),
    ]
    assert got == shown


# ----------------------------------------------------------------------------- paired datasets: settings and bad data


def _pair_files(root, stem, label, photo_hw=None, mode=None, photos="img", labels="ann", label_suffix=".png"):
    h, w = photo_hw or label.shape[:2]
    write_image(root / photos / f"{stem}.png", np.full((h, w, 3), 100, np.uint8))
    (root / labels / stem).parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(label)
    (img.convert(mode) if mode else img).save(root / labels / f"{stem}{label_suffix}")


def _mine(tmp_path, n=2, label=None, **entry):
    """A list-file dataset ``mine`` with ``n`` 8x6 pairs (ids 0..2, 4 = ignore) under ``tmp_path``."""
    root = tmp_path / "mine"
    lines = []
    for i in range(n):
        lab = label if label is not None else (np.arange(48).reshape(8, 6) % 3).astype(np.uint8)
        _pair_files(root, f"p{i}", lab)
        lines.append(f"img/p{i}.png ann/p{i}.png\n")
    (root / "train.txt").write_text("".join(lines))
    (root / "names.txt").write_text("0 road\n1 car\n2 tree\n4 void\n")
    spec = {"root": str(root), "splits": {"train": {"list": "train.txt"}}, "num_classes": 3, "ignore_id": 4,
            "class_names": "names.txt", "size": [8, 6], **entry}
    return load_datasets({"mine": spec})["mine"], root


def _one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_list_file_dataset_and_ignore_channel(tmp_path):
    cfg, root = _mine(tmp_path)
    ds = PairedDataset(cfg, "train")
    assert len(ds) == 2 and ds[1]["path"] == str(root / "img" / "p1.png")
    assert label_channels(cfg) == 4  # 3 classes + the ignore id (4) as channel 3
    lab = np.zeros((8, 6), np.uint8)
    lab[0, :3] = [4, 2, 1]
    cfg, root = _mine(tmp_path / "b", n=1, label=lab)
    item = PairedDataset(cfg, "train")[0]
    assert item["label"][0, :4].tolist() == [3, 2, 1, 0]  # the ignore id 4 is the extra channel 3
    lset = label_set(cfg)
    assert lset.class_names == ("road", "car", "tree") and lset.targets(item["label"])[0, :4].tolist() == [255, 2, 1, 0]
    assert PairedDataset(cfg, "train", size=4)[0]["label"].shape == (4, 3)  # the aspect of size: [8, 6]
    with pytest.raises(ValueError, match=r"height 5 gives the fractional width 3.75 .* multiple of 4") as e:
        PairedDataset(cfg, "train", size=5)
    _one_line(e)


def test_folder_pairs_matched_by_stem(tmp_path):
    root = tmp_path / "f"
    lab = np.ones((4, 4), np.uint8)
    for stem in ("b/x2", "a/x1", "a/x3"):
        _pair_files(root, stem, lab, photos="photos", labels="labels")
    spec = {"root": str(root), "num_classes": 2, "class_names": ["bg", "fg"], "size": [4, 4],
            "splits": {"train": {"photos": "photos", "labels": "labels"}}}
    cfg = load_datasets({"f": spec})["f"]
    assert [p.photo.relative_to(root / "photos").as_posix() for p in split_pairs(cfg, "train")] == \
        ["a/x1.png", "a/x3.png", "b/x2.png"]  # sorted by stem, nested folders included
    (root / "labels" / "a" / "x3.png").unlink()
    with pytest.raises(FileNotFoundError) as e:
        split_pairs(cfg, "train")
    msg = _one_line(e)
    assert "photo" in msg and str(root / "photos" / "a" / "x3.png") in msg and str(root / "labels" / "a" / "x3.png") in msg
    (root / "photos" / "a" / "x3.png").unlink()
    (root / "labels" / "a" / "x1.png").rename(root / "labels" / "a" / "x0.png")
    with pytest.raises(FileNotFoundError, match=r"label map .*x0\.png has no photo: expected .*photos/a/x0\.png"):
        split_pairs(cfg, "train")
    with pytest.raises(KeyError, match="no split 'val'; splits: train"):
        split_pairs(cfg, "val")


def test_bad_pairs_give_one_line_naming_the_file(tmp_path):
    cfg, root = _mine(tmp_path)
    # missing partner in the list
    (root / "ann" / "p1.png").unlink()
    with pytest.raises(FileNotFoundError) as e:
        PairedDataset(cfg, "train")
    assert f"{root / 'train.txt'}:2" in _one_line(e) and str(root / "ann" / "p1.png") in str(e.value)
    # a malformed line
    (root / "train.txt").write_text("img/p0.png ann/p0.png\nimg/p0.png\n")
    with pytest.raises(ValueError, match=r"train\.txt:2: expected 'photo label'.* 1 fields"):
        PairedDataset(cfg, "train")
    # empty split
    (root / "train.txt").write_text("# nothing yet\n\n")
    with pytest.raises(ValueError, match=r"split 'train' is empty: .*train\.txt lists no pairs") as e:
        PairedDataset(cfg, "train")
    _one_line(e)
    # photo and label of different sizes
    _pair_files(root, "p1", np.zeros((8, 6), np.uint8), photo_hw=(8, 7))
    (root / "train.txt").write_text("img/p1.png ann/p1.png\n")
    with pytest.raises(ValueError, match=r"photo .*p1\.png is 7x8 but label .*ann/p1\.png is 6x8 \(W x H\)") as e:
        PairedDataset(cfg, "train")[0]
    _one_line(e)


@pytest.mark.parametrize("case", ["too_large", "unnamed", "rgb", "palette", "16bit"])
def test_bad_label_maps_say_what_was_found(tmp_path, case):
    lab = np.zeros((8, 6), np.uint8)
    if case == "too_large":
        lab[2, 2] = 7
    if case == "unnamed":
        lab[2, 2] = 3  # below num_classes + 1 but not named (3 is neither a class nor the ignore id)
    cfg, root = _mine(tmp_path, n=1, label=lab, num_classes=4 if case == "unnamed" else 3)
    path = root / "ann" / "p0.png"
    if case == "rgb":
        write_image(path, np.zeros((8, 6, 3), np.uint8))
    if case == "palette":
        Image.fromarray(lab).convert("P").save(path)
    if case == "16bit":
        Image.fromarray(lab.astype(np.uint16) + 300).save(path)
    with pytest.raises(ValueError) as e:
        PairedDataset(cfg, "train")[0]
    msg = _one_line(e)
    assert str(path) in msg
    expected = {"too_large": ["label ids [7]", "outside 0..2", "num_classes=3", "ignore id (4)"],
                "unnamed": ["label ids [3]", "are not classes", "[0, 1, 2, 4]"],
                "rgb": ["RGB colour image (mode RGB)", "mode L", "one id per pixel"],
                "palette": ["palette image (mode P)", "(mode L), or set label_mode: P"],
                "16bit": ["16-bit image (mode I;16)", "8-bit gray ids"]}[case]
    for part in expected:
        assert part in msg, (part, msg)


def test_palette_maps_with_label_mode_p(tmp_path):
    lab = (np.arange(48).reshape(8, 6) % 3).astype(np.uint8)
    cfg, root = _mine(tmp_path, n=1, label=lab, label_mode="P")
    pal = Image.fromarray(lab).convert("P")
    pal.putpalette([0, 0, 0] * 256)  # the indices are the ids, whatever the colours
    pal.save(root / "ann" / "p0.png")
    assert torch.equal(PairedDataset(cfg, "train")[0]["label"], torch.from_numpy(lab.astype(np.int64)))
    Image.fromarray(lab).save(root / "ann" / "p0.png")
    with pytest.raises(ValueError, match=r"8-bit gray image \(mode L\); expected palette indices as ids \(mode P, label_mode: P\), or set label_mode: L"):
        PairedDataset(cfg, "train")[0]


def test_id_list_selects_and_orders_folder_pairs(tmp_path):
    root = tmp_path / "ids"
    for stem in ("a", "b", "c"):
        _pair_files(root, stem, np.ones((4, 4), np.uint8), photos="base", labels="base", mode="P", label_suffix=".lab.png")
    (root / "split.txt").write_text("c\na\n")
    spec = {"root": str(root), "num_classes": 2, "class_names": [None, "thing"], "size": [4, 4], "label_mode": "P",
            "splits": {"train": {"photos": "base", "labels": "base", "label_suffix": ".lab.png", "ids": "split.txt"}}}
    cfg = load_datasets({"ids": spec})["ids"]
    assert [p.label.name for p in split_pairs(cfg, "train")] == ["c.lab.png", "a.lab.png"]
    no_ids = dataclasses.replace(cfg, splits={"train": dataclasses.replace(cfg.splits["train"], ids=None)})
    assert [p.photo.name for p in split_pairs(no_ids, "train")] == ["a.png", "b.png", "c.png"]  # x.lab.png: no photo
    (root / "split.txt").write_text("c\nd\n")
    with pytest.raises(FileNotFoundError, match=r"id d \(listed in .*split\.txt\) has no photo: missing file .*d\.png"):
        split_pairs(cfg, "train")
    (root / "split.txt").write_text("\n")
    with pytest.raises(ValueError, match=r"split 'train' is empty: the id list .*split\.txt"):
        split_pairs(cfg, "train")


def test_bad_entries_are_named_by_their_params_key(tmp_path):
    good = {"root": "x", "splits": {"train": {"list": "t.txt"}}, "num_classes": 3, "class_names": "n.txt",
            "size": [8, 8]}

    def refused(change: dict, *parts: str) -> None:
        with pytest.raises(ConfigError) as e:
            load_datasets({"mine": {**good, **change}})
        msg = _one_line(e)
        for part in parts:
            assert part in msg, (part, msg)

    refused({"splits": {"train": {"list": "t.txt", "photos": "p"}}}, "datasets.mine.splits.train", "not both")
    refused({"splits": {"train": {"photos": "p"}}}, "datasets.mine.splits.train.labels", "missing")
    refused({"splits": {"train": {"lst": "t.txt"}}}, "datasets.mine.splits.train", "unknown key(s) lst")
    refused({"splits": {}}, "datasets.mine.splits", "at least one split")
    refused({"size": [8]}, "datasets.mine.size", "expected 2 items")
    refused({"num_classes": 0}, "datasets.mine.num_classes=0")
    refused({"eval_ids": [1, 3]}, "datasets.mine.eval_ids", "3 is not a class id")
    refused({"class_names": ["a", "b", "c", "d"]}, "datasets.mine.class_names[3]", "num_classes=3")
    refused({"label_mode": "RGB"}, "datasets.mine.label_mode", "'RGB' is not one of")
    refused({"name": "other"}, "datasets.mine.name")
    with pytest.raises(KeyError, match="unknown dataset 'ade20k'; known: facades, cityscapes, camvid"):
        dataset_config("ade20k")
    # a class-names file that names an id outside the classes
    (tmp_path / "n.txt").write_text("0 a\n7 b\n")
    cfg = load_datasets({"mine": {**good, "root": str(tmp_path)}})["mine"]
    with pytest.raises(ValueError, match=r"n\.txt:2: id 7 >= num_classes=3"):
        label_set(cfg)


def test_fingerprint_follows_contents_and_settings(tmp_path):
    import shutil

    cfg, root = _mine(tmp_path / "a")
    first = PairedDataset(cfg, "train").fingerprint()
    copy = tmp_path / "b" / "mine"
    shutil.copytree(root, copy)
    moved = dataset_config(cfg, copy)
    assert PairedDataset(moved, "train").fingerprint() == first  # same files elsewhere: same data
    assert PairedDataset(moved, "train", size=4).fingerprint() != first  # other item size
    assert PairedDataset(dataset_config(load_datasets({"mine": {**to_dict(moved), "num_classes": 5, "ignore_id": None}})["mine"]),
                         "train").fingerprint() != first  # other label settings
    write_image(copy / "img" / "p1.png", np.full((8, 6, 3), 7, np.uint8))  # same name, other photo
    assert PairedDataset(moved, "train").fingerprint() != first


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
