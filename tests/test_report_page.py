"""What the page says about where a number was measured and how much it varied, and what makes two
renders of the same files identical: machine identity, timing spreads, the header, provenance,
figure bytes, photo-grid titles, and the display fixes (text kept as written, weighted loss terms)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from lib.report import common, machines, translation
from lib.report import denoise as D

EPYC = {"device": "cpu", "cpu_model": "AMD EPYC", "cpu_features": ["avx2", "avx512f", "avx512_bf16"], "threads": 2}


def test_same_machine_needs_the_cpu_features_to_say_yes():
    assert machines.same_machine(EPYC, dict(EPYC)) is True
    assert machines.same_machine(EPYC, {**EPYC, "cpu_features": ["avx2"]}) is False  # same name, other CPU
    assert machines.same_machine(EPYC, {**EPYC, "threads": 1}) is False
    unknown = {k: v for k, v in EPYC.items() if k != "cpu_features"}
    assert machines.same_machine(EPYC, unknown) is None and machines.same_machine(EPYC, {}) is None
    # a timing both runs measured settles it: 1,527 ms against 475 ms is not one machine
    assert machines.benchmark_machine(unknown, EPYC, [(1527.0, 475.0)]) is False
    assert machines.benchmark_machine(unknown, EPYC, [(480.0, 475.0)]) is None
    assert machines.where_text(False) == "another CPU" and machines.where_text(None) == "CPU not identified"
    assert machines.machine_text(unknown) == "AMD EPYC (CPU features not recorded), 2 threads"


def test_time_cell_carries_the_recorded_spread():
    dash = "\u2060–\u2060"
    assert machines.time_cell({"median_ms": 475.4, "q25_ms": 468.0, "q75_ms": 479.2}) == f"475\u00a0[468{dash}479]"
    # per-run times as the benchmarks write them: the quartiles of the runs
    assert machines.spread({"median_ms": 3.0, "times_ms": "1 2 3 4 5"}) == ("iqr", 2.0, 4.0)
    # older files: min and p90 only, marked with round brackets and named in the caption
    assert machines.time_cell({"median_ms": 475.4, "min_ms": 462.9, "p90_ms": 479.5}) == f"475\u00a0(463{dash}480)"
    assert machines.time_cell({"median_ms": float("nan")}) == common.MISSING
    note = machines.spread_note(["range", "range"], "3-30")
    assert "fastest and 90th-percentile run of the 3-30 timed runs" in note and "no interquartile range" in note
    assert "interquartile range" in machines.spread_note(["iqr"])


def test_header_names_the_commits_of_the_metrics_and_no_render_time():
    metas = {"a.json": {"git_revision": "aaa", "scale": "default"}, "b.json": {"meta": {"git_revision": "bbb"}},
             "c.json": {"git_revision": "aaa"}}
    head = common.run_header("default", "T", metas)
    assert "`aaa`, `bbb`" in head and "UTC" not in head and "Rendered" not in head
    assert common.run_header("default", "T", metas) == head  # nothing depends on the moment of rendering


def test_provenance_reads_the_meta_block_where_a_file_has_one():
    table = common.provenance_table({
        "train_denoise_x.json": {"steps": 5, "meta": {"scale": "default", "git_revision": "abc", "hardware": EPYC}},
        "train_asapnet.json": {"scale": "default", "git_revision": "def", "hardware": EPYC},
        "bench.json": {"environment": EPYC},
    })
    assert table.loc["train_denoise_x.json", "commit"] == "abc" and table.loc["train_asapnet.json", "commit"] == "def"
    assert "AMD EPYC" in table.loc["train_denoise_x.json", "device"] and "AMD EPYC" in table.loc["bench.json", "device"]
    assert table.loc["bench.json", "commit"] == common.MISSING


def test_saved_figures_are_byte_identical(tmp_path):
    def draw(path):
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3], [3, 1, 2])
        ax.set_title("t")
        common.save_figure(fig, path)
        plt.close(fig)

    draw(tmp_path / "a.png")
    draw(tmp_path / "b.png")
    data = (tmp_path / "a.png").read_bytes()
    assert data == (tmp_path / "b.png").read_bytes() and b"matplotlib" not in data.lower()


def test_photo_grid_has_one_title_per_column(tmp_path):
    from PIL import Image

    Image.new("RGB", (262, 130), "white").save(tmp_path / "g.png")
    html = common.photo_grid(tmp_path / "g.png", "alt <text>", ["label map", "ASAPNet", "real photo"])
    assert html.count("<span>") == 3 and "repeat(3, 1fr)" in html and "max-width:min(100%, 262px)" in html
    assert "alt &lt;text&gt;" in html and "data:image/jpeg;base64," in html


def test_text_cells_are_kept_as_written():
    out = common.format_frame(pd.DataFrame({"EMA": ["0.999", "no"], "L1 weight": ["20", "nan"], "x": [0.5, 1.0]}))
    assert out["EMA"].tolist() == ["0.999", "no"] and out["L1 weight"].tolist() == ["20", common.MISSING]
    assert out["x"].tolist() == ["0.50", "1.00"]


def test_training_table_and_loss_figure_show_every_weight():
    summary = {"generator_params": 8e6, "steps": 10, "epochs": 1.0, "wall_seconds": 60.0, "vgg_used": False,
               "ema": True, "precision": "bf16", "hardware": EPYC, "final_losses": {"g_l1": 6.9},
               "config": {"ema_decay": 0.999, "loss": {"lambda_l1": 20.0, "lambda_feat": 10.0, "lambda_vgg": 10.0}}}
    table = common.format_frame(translation.training_table({"asapnet": summary}))
    assert table.loc["asapnet", "EMA"] == "0.999" and table.loc["asapnet", "L1 weight"] == "20"
    assert translation.loss_weights(summary) == {"g_feat": 10.0, "g_l1": 20.0}  # no VGG term: not used
    losses = pd.DataFrame({"step": [1, 2, 3], "d_real": [1.0, 0.9, 0.8], "d_fake": [1.0, 0.9, 0.8], "g_gan": [0.1] * 3,
                           "g_feat": [12.0] * 3, "g_vgg": [0.0] * 3, "g_l1": [7.0] * 3})
    fig = translation.plot_gan_losses({"asapnet": losses}, summaries={"asapnet": summary})
    labels = [ln.get_label() for ln in fig.axes[0].lines]
    assert labels == ["D real", "D fake", "G adversarial", "G feature matching x 10", "G L1 x 20"]  # VGG off: not drawn
    assert fig.axes[0].get_title() == "ASAPNet: G loss = adv + 10·FM + 20·L1"
    plt.close(fig)


def test_official_dncnn_table_is_long_and_narrow():
    rows = [{"set": s, "model": m, "n_images": n, "sigma": sig, "psnr": 30.0 + sig / 100, "ssim": 0.9,
             "published_psnr": pub} for s, m, n, pub in (("bsd68", "dncnn_b_gray", 68, 30.1), ("set12", "dncnn_b_gray", 12, "nan"))
            for sig in (15.0, 25.0, 50.0)]
    table = D.dncnn_official_table({"rows": rows})
    assert list(table.columns) == ["PSNR", "published", "diff", "SSIM"] and len(table) == 6
    assert table.loc[("bsd68", "dncnn_b_gray", 68, "25"), "diff"] == pytest.approx(0.15)
    assert pd.isna(table.loc[("set12", "dncnn_b_gray", 12, "50"), "diff"])


def test_grid_caption_says_how_few_images_it_rests_on():
    ev = {"grid_check": [{"model": "a", "crop": 64, "n_images": 3, "sigma": 25.0, "gain_db": 1.0}]}
    assert "first 3 BSD68 images only" in D.grid_caption(ev)


def test_ablation_costs_carry_the_time_spread():
    ablation = pd.DataFrame({"params (M)": [0.5], "GMAC 481x321": [1.8], "ms 481x321": [33.0], "steps": [767],
                             "PSNR σ=25": [26.8]}, index=["asap"])
    timing = pd.DataFrame([{"model": "asap", "height": 321, "width": 481, "median_ms": 33.0, "min_ms": 32.0,
                            "p90_ms": 34.0, "runs": 3}])
    costs, note = D.ablation_cost_display(ablation, timing)
    assert costs.loc["asap", "ms 481x321"] == "33\u00a0(32\u2060–\u206034)" and "PSNR σ=25" not in costs.columns
    assert "3 timed runs" in note
