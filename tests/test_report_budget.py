"""lib/report/budget.py: the longer runs outside the pipeline, as the report shows them."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lib.report import budget  # noqa: E402

NBSP = "\u00a0"


def _frame() -> pd.DataFrame:
    rows = []
    for run, factor, steps in (("2x", 2.0, 12), ("1x", 1.0, 6)):  # the longer run first: the table orders by factor
        for model, base in (("asapnet", 0.4), ("pix2pixhd", 0.7)):
            for k, step in enumerate(range(steps // 6, steps + 1, steps // 6)):
                final = step == steps
                kid = base + 0.01 * k * (1 if model == "pix2pixhd" else -1)
                rows.append(dict(dataset="toy", run=run, budget_factor=factor, model=model, step=step, total_steps=steps,
                                 decay_steps=steps // 3, train_seconds=60.0 * step, final=final, kid=kid,
                                 kid_boot_low=kid - 0.02 if final else float("nan"),
                                 kid_boot_high=kid + 0.02 if final else float("nan"), fid=100 * kid,
                                 miou=0.1 + 0.01 * k, miou_boot_low=0.05 if final else float("nan"),
                                 miou_boot_high=0.3 if final else float("nan"), train_revision="abc", eval_revision="abc",
                                 cpu="Toy CPU"))
    return pd.DataFrame(rows)


def test_budget_table_values():
    table = budget.budget_table(_frame())
    assert list(table.index) == [("ASAPNet", "1x"), ("ASAPNet", "2x"), ("pix2pixHD", "1x"), ("pix2pixHD", "2x")]
    row = table.loc[("ASAPNet", "2x")]
    # ASAPNet 2x: 6 snapshots, kid = 0.4 - 0.01 k, k = 0..5; final k = 5
    assert row["steps"] == "12" and row["minutes"] == "12.0"
    assert row["KID [95% CI]"] == f"0.350{NBSP}[0.330,{NBSP}0.370]"
    assert row["KID, last 3"] == "0.360"  # mean of k = 3, 4, 5
    assert row["best KID"] == "0.350"
    assert row["mIoU, last 3"] == "0.140" and row["best mIoU"] == "0.150"
    assert table.loc[("pix2pixHD", "1x"), "best KID"] == "0.700"


def test_budget_caption_and_plot():
    frame = _frame()
    text = budget.budget_caption(frame, "toy")
    assert "1x, 2x" in text and "Toy CPU" in text and "translation_budget_toy.csv" in text
    fig = budget.plot_budget_curves(frame)
    try:
        assert len(fig.axes) == 2
        assert len(fig.axes[0].lines) == 4  # 2 models x 2 runs
        styles = {line.get_label(): line.get_linestyle() for line in fig.axes[0].lines}
        assert styles["ASAPNet, 1x steps"] == "-" and styles["ASAPNet, 2x steps"] == "--"
    finally:
        plt.close(fig)


def test_load_results(tmp_path):
    assert budget.load_results(tmp_path / "none.csv", "budget") is None
    path = tmp_path / "b.csv"
    _frame().drop(columns=["kid_boot_low"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"b\.csv: missing columns kid_boot_low"):
        budget.load_results(path, "budget")
    _frame().to_csv(path, index=False)
    assert len(budget.load_results(path, "budget")) == len(_frame())


def test_ceiling_table():
    frame = pd.DataFrame([
        dict(changed="(params.yaml)", steps=696, train_seconds=528.0, n=233, miou=0.49, miou_boot_low=0.478,
             miou_boot_high=0.5, pixel_accuracy=0.828, cpu="Toy CPU"),
        dict(changed="epochs=24", steps=1392, train_seconds=1100.0, n=233, miou=0.5, miou_boot_low=float("nan"),
             miou_boot_high=float("nan"), pixel_accuracy=0.83, cpu="Toy CPU"),
    ])
    table = budget.ceiling_table(frame)
    assert list(table.index) == ["(params.yaml)", "epochs=24"]
    assert table.loc["(params.yaml)", "steps"] == "696" and table.loc["epochs=24", "steps"] == "1,392"
    assert table.loc["(params.yaml)", "mIoU on the real test photos [95% CI]"] == f"0.490{NBSP}[0.478,{NBSP}0.500]"
    assert table.loc["epochs=24", "mIoU on the real test photos [95% CI]"] == "0.500"  # no interval recorded
    assert "233 real test photos" in budget.ceiling_caption(frame, "toy")
