"""Learning curves of the translation evaluation: every snapshot scored with the final protocol,
the smoothed final value, the generator picked for the final evaluation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import TINY_GENERATORS
from test_evaluate_translation import MeanStd, TinyFacades, _oracle
from lib.checkpoint import save_checkpoint
from lib.config import to_dict
from lib.data.labels import label_set
from lib.models import build, make_config
from lib.train.gan_outputs import EVAL_GENERATOR_NAME, SNAPSHOTS_DIR, write_generator
from lib.translation import curves
from lib.translation import evaluate as ev
from lib.translation import image_sets
from lib.translation import segmentation_eval as segev


def _tiny_generator(seed: int):
    cfg = make_config("pix2pixhd", dict(label_nc=13, use_instance_edge=False, **TINY_GENERATORS["pix2pixhd"]))
    torch.manual_seed(seed)
    return build("pix2pixhd", cfg), cfg


def _snapshots(run_dir, steps_seconds_seeds):
    """Hand-made snapshots as the trainer writes them: ``snapshots/step_XXXXXX.pt`` with train_seconds."""
    for step, seconds, seed in steps_seconds_seeds:
        gen, cfg = _tiny_generator(seed)
        write_generator(run_dir / SNAPSHOTS_DIR / f"step_{step:06d}.pt", gen, "pix2pixhd", cfg, step=step,
                        train_seconds=seconds, ema=True)


def test_every_snapshot_scored_with_the_final_protocol(tmp_path):
    data, lset = TinyFacades(4), label_set("facades")
    cfg = ev.TranslationEvalConfig(n_boot=3, batch_size=2, fid_method="svd", kid_subsets=5, kid_subset_size=2)
    image_sets.real_test_images(data, tmp_path / "real")
    inception, segmenter = MeanStd(), (_oracle, "oracle")
    real_features = ev.fidlib.activations(tmp_path / "real", inception)
    targets = segev.test_targets(data, lset)
    run = tmp_path / "run"
    _snapshots(run, [(4, 2.0, 1), (2, 1.0, 0), (6, 3.5, 1)])  # written out of order; steps 4 and 6 share weights
    frame, seconds = curves.evaluate_snapshots("pix2pixhd", run, data, lset, tmp_path / "real", tmp_path / "work",
                                               segmenter, inception, cfg, real_features=real_features, targets=targets)
    assert tuple(frame.columns) == curves.CURVE_COLUMNS and seconds > 0
    assert list(frame["step"]) == [2, 4, 6] and list(frame["train_seconds"]) == [1.0, 2.0, 3.5]
    assert frame.iloc[1][["kid", "fid", "miou"]].tolist() == frame.iloc[2][["kid", "fid", "miou"]].tolist()
    assert frame.iloc[0]["fid"] != frame.iloc[1]["fid"]
    # the point estimates equal those of the final evaluation of the same generator
    final = ev.evaluate_model("pix2pixhd", run / SNAPSHOTS_DIR / "step_000002.pt", data, lset, tmp_path / "real",
                              tmp_path / "final", segmenter, inception, cfg, real_features=real_features, targets=targets)
    assert [final[k] for k in curves.CURVE_METRICS] == frame.iloc[0][list(curves.CURVE_METRICS)].tolist()
    assert np.isfinite(final["kid_boot_low"]) and final["kid_boot_low"] <= final["kid_boot_high"]
    empty, none = curves.evaluate_snapshots("asapnet", tmp_path / "old_run", data, lset, tmp_path / "real",
                                            tmp_path / "work", segmenter, inception, cfg)
    assert empty.empty and np.isnan(none)


def _curve() -> pd.DataFrame:
    rows = [("asapnet", s, s * 10.0, kid, 100 + kid, 0.1 * kid) for s, kid in [(4, 4.0), (1, 1.0), (3, 3.0), (2, 2.0), (5, 8.0)]]
    rows += [("pix2pixhd", s, s * 20.0, kid, 200.0, 0.5) for s, kid in [(1, 9.0), (2, 7.0)]]
    return pd.DataFrame(rows, columns=list(curves.CURVE_COLUMNS))


def test_smoothed_final_is_the_mean_of_the_last_points_by_step():
    final = curves.smoothed_final(_curve())
    assert final["asapnet"]["kid"] == pytest.approx((3 + 4 + 8) / 3)
    assert final["asapnet"]["fid"] == pytest.approx(100 + (3 + 4 + 8) / 3)
    assert final["asapnet"]["steps"] == [3, 4, 5] and final["asapnet"]["points"] == 3
    assert final["pix2pixhd"] == {"kid": 8.0, "fid": 200.0, "miou": 0.5, "points": 2, "steps": [1, 2]}  # fewer points
    smooth = curves.smoothed_curve(_curve())
    a = smooth[smooth["model"] == "asapnet"]
    assert list(a["step"]) == [1, 2, 3, 4, 5]
    assert a["kid"].tolist() == pytest.approx([1.0, 1.5, 2.0, 3.0, 5.0])  # trailing mean of up to 3 points
    assert a["kid"].iloc[-1] == pytest.approx(final["asapnet"]["kid"])
    with pytest.raises(ValueError, match="points"):
        curves.smoothed_final(_curve(), points=0)


def test_smoothed_values_join_the_rows_and_the_curve_file(tmp_path):
    rows = [{"model": "asapnet", "kid": 8.0}, {"model": "pix2pixhd", "kid": 7.0}, {"model": "real", "kid": 0.1}]
    out = curves.add_smoothed(rows, _curve())
    assert out[0]["kid_smoothed"] == pytest.approx(5.0) and out[0]["smoothed_points"] == 3 and out[0]["kid"] == 8.0
    assert out[1]["kid_smoothed"] == pytest.approx(8.0) and "kid_smoothed" not in out[2]
    assert "kid_smoothed" not in rows[0]  # the input rows are not changed
    curves.write_curves(_curve(), tmp_path / "c.csv")
    back = pd.read_csv(tmp_path / "c.csv")
    assert tuple(back.columns) == curves.CURVE_COLUMNS
    assert list(zip(back["model"], back["step"]))[:3] == [("asapnet", 1), ("asapnet", 2), ("asapnet", 3)]
    with pytest.raises(ValueError, match="train_seconds"):
        curves.write_curves(_curve().drop(columns="train_seconds"), tmp_path / "x.csv")


def test_final_evaluation_prefers_the_evaluation_generator(tmp_path):
    with pytest.raises(FileNotFoundError, match=EVAL_GENERATOR_NAME):
        ev.eval_checkpoint(tmp_path)
    gen, cfg = _tiny_generator(0)
    save_checkpoint(tmp_path / "checkpoint.pt", model="pix2pixhd", config=to_dict(cfg), state_dict=gen.state_dict(), step=3)
    assert ev.eval_checkpoint(tmp_path) == tmp_path / "checkpoint.pt"  # a run written before generator.pt existed
    write_generator(tmp_path / EVAL_GENERATOR_NAME, gen, "pix2pixhd", cfg, step=3, train_seconds=1.0, ema=True)
    assert ev.eval_checkpoint(tmp_path) == tmp_path / EVAL_GENERATOR_NAME


def test_per_class_iou_table_and_file(tmp_path):
    names = label_set("facades").class_names
    rows = [{"model": "asapnet", "per_class_iou": [0.1 * i for i in range(len(names))]},
            {"model": "real", "per_class_iou": {n: 1.0 for n in names[:-1]}}]  # as read back from JSON, one class missing
    t = segev.per_class_frame(rows, names)
    assert tuple(t.columns) == segev.PER_CLASS_COLUMNS and len(t) == 2 * len(names)
    assert t.loc[3, "class"] == names[3] and t.loc[3, "iou"] == pytest.approx(0.3)
    assert np.isnan(t.iloc[-1]["iou"]) and t.iloc[-1]["class_id"] == len(names) - 1
    with pytest.raises(ValueError, match="asapnet"):
        segev.per_class_frame([{"model": "asapnet", "per_class_iou": [0.5]}], names)
