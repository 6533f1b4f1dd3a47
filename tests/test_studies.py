"""The translation studies of params.yaml (lib/stages.py): the datasets section, one study per dataset
with its own settings merged over the shared ones, errors under the key as written, and the label
channels checked against the entry and against the label maps on disk."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from lib import scales, stages
from lib.config import ConfigError, from_dict
from lib.data import image_size, translation_dataset
from lib.data.catalog import dataset_config, load_datasets
from lib.data.paired import label_channels
from lib.paths import ROOT
from lib.train.gan import TranslationTrainStage, gan_config, translation_size
from lib.train.gan_checks import check_label_maps

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def _write(tmp_path: Path, edit) -> Path:
    params = copy.deepcopy(PARAMS)
    edit(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_the_datasets_section_is_the_built_in_entries():
    written = PARAMS["datasets"]
    assert set(written) == {"facades", "camvid"}
    for name, entry in load_datasets(written).items():
        if name in written:
            assert entry == dataset_config(name), name
            assert {"root", "splits", "num_classes", "ignore_id", "class_names", "eval_ids", "label_mode", "size"} <= set(
                written[name]), f"datasets.{name}: every key written out"
    assert written["camvid"]["size"] == [128, 176]


def test_each_study_gets_its_dataset_and_its_own_settings():
    got = {}
    for dataset in PARAMS["translation"]["datasets"]:
        _, train = stages.load_stage("train_translation", ROOT / "params.yaml", dataset)
        _, seg = stages.load_stage("train_segmenter", ROOT / "params.yaml", dataset)
        _, ev = stages.load_stage("evaluate_translation", ROOT / "params.yaml", dataset)
        gans = {m: gan_config(train, m) for m in train.models}
        assert train.dataset == train.data.name == dataset and train.data_root == f"data/raw/{dataset}"
        assert {g.generator_cfg["label_nc"] for g in gans.values()} == {label_channels(train.data)}
        got[dataset] = (translation_size(train), {m: g.steps for m, g in gans.items()}, seg.arch, seg.train_splits,
                        ev.kid_subset_size)
        # the shared recipe stays the same in every study
        assert gans["asapnet"].loss.gan_mode == "hinge" and gans["pix2pixhd"].lr_g == 2e-4
    assert got["facades"] == (128, {"asapnet": 6300, "pix2pixhd": 4350}, "unet", ("train",), 30)
    assert got["camvid"][2:] == ("inception", ("train", "val"), 116)
    assert stages.load_stage("train_translation", ROOT / "params.yaml")[1].dataset == "facades"  # the first study
    assert stages.load_stage("train_denoiser", ROOT / "params.yaml", "camvid")[1]  # other stages ignore the study


@pytest.mark.parametrize("edit, fragments", [
    (lambda p: p["translation"]["per_dataset"]["camvid"]["train_segmenter"].update(arch="drn"),
     ["translation.per_dataset.camvid.train_segmenter.arch", "'drn'"]),
    (lambda p: p["translation"]["per_dataset"]["camvid"]["evaluate_translation"].update(kid_subset_size=0),
     ["translation.per_dataset.camvid.evaluate_translation.kid_subset_size"]),
    (lambda p: p["translation"]["per_dataset"]["camvid"]["train_translation"]["models"]["asapnet"].update(stepz=3),
     ["translation.per_dataset.camvid.train_translation.models.asapnet.stepz"]),
    (lambda p: p["translation"]["per_dataset"]["camvid"]["train_translation"]["common"]["generator_cfg"].update(label_nc=13),
     ["translation.per_dataset.camvid.train_translation.common.generator_cfg.label_nc=13", "12 one-hot label channels"]),
    (lambda p: p["train_segmenter"].update(lr=-1.0), ["train_segmenter.lr"]),  # a shared value keeps its own key
    (lambda p: p["translation"]["per_dataset"]["camvid"]["train_translation"].update(dataset="facades"),
     ["translation.per_dataset.camvid.train_translation.dataset", "set by translation.datasets"]),
    (lambda p: p["translation"]["per_dataset"]["camvid"].update(train_gan={}), ["per_dataset.camvid.train_gan", "study stage"]),
    (lambda p: p["translation"]["per_dataset"].update(camvd={}), ["translation.per_dataset.camvd", "unknown dataset"]),
    (lambda p: p["translation"].update(datasets=["facades", "facades"]), ["translation.datasets", "distinct"]),
    (lambda p: p["translation"]["per_dataset"]["camvid"].pop("evaluate_translation"),
     ["translation.per_dataset.camvid.evaluate_translation: missing", "write {}"]),
    (lambda p: p["datasets"]["camvid"].update(root="data/camvid"), ["datasets.camvid.root", "data/raw/camvid"]),
    (lambda p: p["train_translation"]["models"].update(p2p=p["train_translation"]["models"].pop("pix2pixhd")),
     ["train_translation.models.p2p.generator", "differs from the model's key 'p2p'"]),
])
def test_bad_study_settings_name_the_key_as_written(tmp_path, edit, fragments):
    with pytest.raises(ConfigError) as e:
        stages.check_params(_write(tmp_path, edit))
    for fragment in fragments:
        assert fragment in str(e.value), str(e.value)


def test_a_dataset_outside_the_studies_is_refused(tmp_path):
    path = _write(tmp_path, lambda p: p["translation"].update(datasets=["camvid"]))
    assert stages.load_stage("evaluate_translation", path, "camvid")[1].kid_subset_size == 116
    with pytest.raises(ConfigError, match=r"dataset 'facades' is not a study of translation.datasets \['camvid'\]"):
        stages.load_stage("train_translation", path, "facades")


def test_the_smoke_scale_runs_both_studies_tiny(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    scales.select("smoke", path, ROOT / "scales")
    assert stages.check_params(path) == "smoke"
    sizes = {}
    for dataset in ("facades", "camvid"):
        _, train = stages.load_stage("train_translation", path, dataset)
        sizes[dataset] = image_size(train.paired(), translation_size(train))
        assert all(gan_config(train, m).max_steps == 2 for m in train.models)
    assert sizes == {"facades": (64, 64), "camvid": (64, 88)}


def test_label_nc_against_the_label_maps_on_disk(data_mirror, tmp_path):
    _, camvid = stages.load_stage("train_translation", ROOT / "params.yaml", "camvid")
    data = translation_dataset(camvid.paired(), data_mirror / "camvid", "train", 64)
    assert check_label_maps(camvid, "asapnet", data) == 11  # the Unlabelled channel is the highest one used
    _, facades = stages.load_stage("train_translation", ROOT / "params.yaml", "facades")
    with pytest.raises(ConfigError, match=r"label_nc=13: the training data \(camvid\) have 12 one-hot label channels"):
        check_label_maps(facades, "asapnet", data)  # Facades' generators on CamVid's maps

    # a map holding an id the entry does not allow (found on disk before any item is loaded)
    (tmp_path / "d").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "d" / "p.png")
    ids = np.ones((8, 8), np.uint8)
    ids[0, 0] = 200
    Image.fromarray(ids, mode="L").save(tmp_path / "d" / "l.png")
    (tmp_path / "d" / "train.txt").write_text("p.png l.png\n")
    entry = {**PARAMS["datasets"]["facades"], "root": str(tmp_path / "d"), "label_mode": "L",
             "splits": {"train": {"list": "train.txt"}, "test": {"list": "train.txt"}}}
    mine = load_datasets({"mine": entry})["mine"]
    stage = from_dict(TranslationTrainStage, {**PARAMS["train_translation"], "dataset": "mine", "data": mine,
                                              "common": {**PARAMS["train_translation"]["common"], "generator_cfg": {"label_nc": 13}}},
                      where="train_translation")
    with pytest.raises(ConfigError, match=r"train_translation.common.generator_cfg.label_nc=13: .*l.png holds label id 200"):
        check_label_maps(stage, "pix2pixhd", translation_dataset(mine, None, "train", 8))
