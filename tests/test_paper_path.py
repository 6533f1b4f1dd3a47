"""The paper path of the translation stages: Cityscapes with ``scales/paper.yaml``.

* Slow: in a copy of the repository, ``scales/paper.yaml`` then ``scales/paper-smoke.yaml``
  (smoke sizes, VGG loss off, the segmenter trained by the pipeline) are applied, the data root
  is the 8-pair Cityscapes subset of the data mirror (fetched by the fetch stage), and ``dvc
  repro`` runs the translation stages. Checked: the metrics files, mIoU over the 19 trainIds,
  generators conditioned on 35 label channels + instance edges, images twice as wide as high.
* Fast: ``scales/paper.yaml`` as it is names files that cannot be fetched (VGG19 ImageNet
  weights, a scripted DRN-D-105); without them the training and evaluation notebooks stop in
  their settings cell, with an error naming the file, the params key and where to get it, and
  leave nothing behind.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import project_copy, run_checked
from PIL import Image

from lib import config, scales
from lib.paths import ROOT

STUDY = "cityscapes_subset"  # scales/paper-smoke.yaml: the Cityscapes entry at the subset's folder
TRANSLATION_STAGES = [f"train_translation@{STUDY}-asapnet", f"train_translation@{STUDY}-pix2pixhd",
                      f"train_segmenter@{STUDY}", f"evaluate_translation@{STUDY}", "time_translation"]
MODELS = ("asapnet", "pix2pixhd")
CITYSCAPES_LABEL_NC = 35  # SPADE/ASAPNet --label_nc 35 (labelIds 0..33 + 1)


@pytest.fixture(scope="module")
def paper_repo(tmp_path_factory, data_mirror, weights_mirror):
    if not (data_mirror / "cityscapes_subset" / "gtFine" / "train").is_dir():
        pytest.fail(f"{data_mirror}/cityscapes_subset is missing (see the data MANIFEST)")
    dest = tmp_path_factory.mktemp("paper") / "repo"
    env = project_copy(dest, data_mirror, weights_mirror, "paper-smoke")
    log = run_checked([sys.executable, "-m", "dvc", "repro", *TRANSLATION_STAGES], dest, env)
    return dest, env, log


@pytest.mark.slow  # five notebooks through dvc: a few minutes
def test_translation_stages_run_on_cityscapes(paper_repo):
    from lib.data import translation_dataset
    from lib.data.labels import IGNORE_INDEX, label_set
    from lib.models import load_model
    from lib.models.generate import generator_inputs

    dest, _, log = paper_repo
    params = config.load_params(dest / "params.yaml")
    stage = params["train_translation"]
    assert params["translation"]["datasets"] == [STUDY] and params["scale"] == "smoke"
    data_root = params["datasets"][STUDY]["root"]
    size = stage["common"]["size"]
    metrics = dest / "reports" / "metrics"
    for name in ("train_asapnet.json", "train_pix2pixhd.json", "losses_asapnet.csv", "losses_pix2pixhd.csv",
                 "train_segmenter.json", "translation_eval.json", "translation_eval.csv"):
        assert (metrics / "translation" / STUDY / name).is_file(), f"{name} missing; dvc log:\n{log[-3000:]}"
    for name in ("translation_timing.json", "translation_timing.csv"):
        assert (metrics / name).is_file(), f"{name} missing; dvc log:\n{log[-3000:]}"

    # the generators: 35 one-hot label channels + 1 instance-edge channel; H x 2H out
    item = translation_dataset("cityscapes", dest / data_root, "train", size)[0]
    assert item["label"].shape == (size, 2 * size) and item["instance_edge"].shape == (1, size, 2 * size)
    for model in MODELS:
        summary = json.loads((metrics / "translation" / STUDY / f"train_{model}.json").read_text())
        assert (summary["scale"], summary["dataset"], summary["vgg_used"]) == ("smoke", STUDY, False)
        out = dest / "data" / "processed" / "translation" / STUDY / model
        generator = load_model(out / "generator.pt").eval()
        onehot, edge = generator_inputs(generator, item["label"][None], item["instance_edge"][None])
        assert onehot.shape == (1, CITYSCAPES_LABEL_NC, size, 2 * size) and edge.shape == (1, 1, size, 2 * size)
        with torch.inference_mode():
            fake = generator(onehot, edge)  # (1, 3, H, 2H)
        assert fake.shape == (1, 3, size, 2 * size) and torch.isfinite(fake).all()
        d_state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)["aux_state_dicts"]
        # the discriminator sees labels + edge + RGB
        assert d_state["discriminator"]["scales.0.blocks.0.0.weight"].shape[1] == CITYSCAPES_LABEL_NC + 1 + 3

    # evaluation: H x 2H images, mIoU over the 19 trainIds
    train_classes = label_set("cityscapes").class_names
    ev = json.loads((metrics / "translation" / STUDY / "translation_eval.json").read_text())
    assert ev["meta"]["size"] == [size, 2 * size]
    assert ev["meta"]["class_names"] == list(train_classes) and len(train_classes) == 19
    n = ev["meta"]["n_images"]
    test_items = [translation_dataset("cityscapes", dest / data_root, stage["test_split"], size)[i]
                  for i in range(n)]
    present = set(np.unique(label_set("cityscapes").targets(torch.stack([it["label"] for it in test_items])).numpy()))
    present.discard(IGNORE_INDEX)
    assert present, "the test maps hold no evaluated class"
    for row in ev["rows"]:
        iou = {k: float(v) for k, v in row["per_class_iou"].items()}  # NaN is written as "nan"
        assert list(iou) == list(train_classes)
        # IoU is defined (not NaN) at least for every trainId the test maps contain; mIoU is their mean
        defined = {c for c, name in enumerate(train_classes) if not math.isnan(iou[name])}
        assert present <= defined, (row["model"], present - defined)
        assert float(row["miou"]) == pytest.approx(np.mean([v for v in iou.values() if not math.isnan(v)]))
    for model in (*MODELS, "real"):
        files = sorted((dest / "data" / "processed" / "evaluation" / STUDY / model).glob("*.png"))
        assert len(files) == n
        assert all(Image.open(f).size == (2 * size, size) for f in files)  # PIL: (W, H)

    # timing: the generators as trained take 35 labels at H x 2H
    timing = json.loads((metrics / "translation_timing.json").read_text())
    trained = {t["model"]: t for t in timing["meta"]["trained"]}
    assert set(trained) == set(MODELS) and {t["dataset"] for t in trained.values()} == {STUDY}
    for t in trained.values():
        assert (t["height"], t["width"], t["label_nc"]) == (size, 2 * size, CITYSCAPES_LABEL_NC)
    import pandas as pd

    rows = pd.read_csv(metrics / "translation_timing.csv")
    done = rows[(rows["kind"] == "trained") & (rows["status"] == "ok")]
    assert set(done["model"]) == set(MODELS) and (done["width"] == 2 * done["height"]).all()


# ----------------------------------------------------------------------------- fast: missing paper files


def _paper_params(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    scales.select("paper", path, ROOT / "scales")
    return path


def _code_cells(notebook: str) -> list[str]:
    cells = json.loads((ROOT / "notebooks" / notebook).read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def _run_until_error(cells: list[str], overrides: dict) -> tuple[int, BaseException]:
    """Runs the notebook's code cells in order (the parameters cell, then ``overrides`` over it)
    until one raises; the index of that cell and the error."""
    ns: dict = {}
    for i, src in enumerate(cells):
        try:
            exec(compile(src, f"<cell {i}>", "exec"), ns)
        except Exception as err:  # noqa: BLE001 - the cell's error is the result
            return i, err
        if i == 0:
            ns.update(overrides)
    raise AssertionError("every cell ran: the missing file was not caught")


def test_paper_scale_without_its_files_stops_before_training(tmp_path):
    """``scales/paper.yaml`` as committed, without the VGG19 / DRN-D-105 files: notebooks 03 and
    05 fail in their settings cell, naming the file, the params key and where to get it, and
    write nothing."""
    from lib.stages import load_stage
    from lib.translation.requirements import DRN_URL, VGG19_URL

    params = _paper_params(tmp_path)
    _, stage = load_stage("train_translation", params)
    _, ev = load_stage("evaluate_translation", params)
    vgg = ROOT / stage.models["asapnet"]["loss"]["vgg_weights"]
    drn = ROOT / ev.segmenter
    if vgg.exists() or drn.exists():
        pytest.skip(f"this checkout has the paper files ({vgg}, {drn})")

    for model in stage.models:
        out = tmp_path / "out" / model
        cells = _code_cells("03-train-translation.ipynb")
        at, err = _run_until_error(cells, dict(params_file=str(params), dataset="cityscapes", model=model, output_root=str(out)))
        assert isinstance(err, FileNotFoundError), repr(err)
        message = str(err)
        for fragment in (str(vgg), f"train_translation.models.{model}.loss.vgg_weights", VGG19_URL):
            assert fragment in message, f"{fragment!r} not in: {message}"
        assert "train_gan(" in "".join(cells[at + 1:]) and "train_gan(" not in cells[at]  # training comes later
        assert not (tmp_path / "out").exists()

    cells = _code_cells("05-evaluate-translation.ipynb")
    images = tmp_path / "evaluation"
    at, err = _run_until_error(cells, dict(params_file=str(params), dataset="cityscapes", translation_dir=str(tmp_path / "t"),
                                           segmenter_dir=str(tmp_path / "seg"), output_root=str(images)))
    assert isinstance(err, FileNotFoundError), repr(err)
    for fragment in (str(drn), "evaluate_translation.segmenter", DRN_URL):
        assert fragment in str(err), f"{fragment!r} not in: {err}"
    assert "real_test_images(" in "".join(cells[at + 1:])  # the first writing cell comes later
    assert not images.exists()
