"""The pipeline's shape: each stage depends on exactly the code it runs, its items come from
params.yaml, and its outputs are the ones its lib module names (scripts/stage_deps.py)."""
from __future__ import annotations

import importlib
import re
import subprocess
import sys

import pytest
import yaml

from lib.paths import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import stage_deps  # noqa: E402

# stage -> "module:function" naming its outputs (the function takes the foreach key, or the matrix values, if any)
OUTPUTS = {
    "fetch": "lib.data.fetch:outputs",
    "dncnn_official": "lib.denoise.official:outputs",
    "train_translation": "lib.train.gan:outputs",
    "train_segmenter": "lib.train.segmenter:outputs",
    "evaluate_translation": "lib.translation.evaluate:outputs",
    "time_translation": "lib.translation.timing:outputs",
    "train_denoiser": "lib.denoise.study:outputs",
    "evaluate_denoising": "lib.denoise.evaluate:outputs",
}


@pytest.fixture(scope="module")
def stages():
    return stage_deps.dvc_stages()


def test_every_stage_depends_on_exactly_the_code_it_runs(stages):
    problems = stage_deps.check(stages)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("dropped", ["lib/config.py", "lib/checkpoint.py", "lib/stages.py"])
def test_a_missing_dependency_is_named_with_its_stage(stages, dropped):
    """The gaps of a hand-picked list (every training stage ran lib/config.py and lib/checkpoint.py
    without depending on them) fail the check, naming the stage and the file."""
    cut = [(a, n, k, [d for d in deps if d != dropped], outs, nb) for a, n, k, deps, outs, nb in stages]
    problems = stage_deps.check(cut)
    assert any(p.startswith("train_translation@facades-asapnet: runs") and dropped in p for p in problems), problems


def test_a_dependency_no_entry_runs_is_named(stages):
    padded = [(a, n, k, deps + ["lib/models/spade.py"] if n == "train_denoiser" else deps, outs, nb)
              for a, n, k, deps, outs, nb in stages]
    problems = stage_deps.check(padded)
    assert any("train_denoiser@dncnn_gray: depends on lib/models/spade.py" in p for p in problems), problems


def test_registries_are_lazy():
    """Loading one stage's settings imports that stage's module, not the others'."""
    code = ("import sys; from lib.stages import load_stage; load_stage('train_denoiser'); "
            "print(sorted(m for m in sys.modules if m.startswith('lib.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    loaded = set(eval(out))  # noqa: S307 - our own printed list
    assert "lib.denoise.study" in loaded
    assert not loaded & {"lib.train.gan", "lib.report", "lib.translation.evaluate", "lib.models.spade",
                         "lib.models.pix2pixhd"}, loaded


def test_items_come_from_params_and_outputs_from_lib(stages):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    by_name: dict[str, set] = {}
    for address, name, key, _, outs, nb in stages:
        by_name.setdefault(name, set()).add(key)
        if name not in OUTPUTS:
            continue
        module, func = OUTPUTS[name].split(":")
        fn = getattr(importlib.import_module(module), func)
        if name == "train_translation":
            named = set(fn(**stage_deps.matrix_item(name, key, params)).values())
        else:
            named = set((fn(key) if key else fn()).values())
        executed = {o for o in outs if o.startswith("reports/runs/")}
        assert len(executed) == 1 and executed.pop().endswith(".ipynb"), f"{address}: one executed notebook"
        assert set(outs) - {o for o in outs if o.startswith("reports/runs/")} == named, (
            f"{address}: dvc.yaml declares {sorted(outs)}, {module}.{func} names {sorted(named)}")
    studies = params["translation"]["datasets"]
    assert by_name["train_translation"] == {f"{d}-{m}" for d in studies for m in params["train_translation"]["models"]}
    assert by_name["train_segmenter"] == by_name["evaluate_translation"] == set(studies)
    assert by_name["train_denoiser"] == set(params["train_denoiser"]["runs"])


def test_report_depends_on_folders_not_file_names():
    report = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["report"]
    named = [d for d in report["deps"] if re.search(r"(train|losses)_(denoise_)?\w+\.(json|csv)$", d)]
    assert not named, f"the report depends on per-item files by name: {named}"
    assert {"reports/metrics", "reports/figures/stages"} <= set(report["deps"])


@pytest.mark.slow  # a copy of the project and two smoke-scale training stages: about a minute
def test_a_third_model_and_a_new_run_are_one_params_edit(tmp_path, data_mirror, weights_mirror):
    from conftest import project_copy, run_checked

    dest = tmp_path / "repo"
    dest.mkdir()
    env = project_copy(dest, data_mirror, weights_mirror, "smoke")
    text = (dest / "params.yaml").read_text()
    model = ("    spade:                   # a third model: SPADE, the registry's own file\n"
             "      generator: spade\n"
             "      generator_cfg: {use_instance_edge: false, ngf: 4, spade_hidden: 8,"
             " num_upsampling_layers: normal}\n"
             "      discriminator_cfg: {ndf: 8}\n"
             "      steps: 2\n")
    run = "    cnn_3x4: {model: dncnn, data: train400, label: plain CNN 3x4, model_cfg: {depth: 3, channels: 4}, train: {patch_size: 40}}\n"
    text = text.replace("\ntime_translation:", "\n" + model + "\ntime_translation:", 1)
    text = text.replace("\nevaluate_denoising:", "\n" + run + "\nevaluate_denoising:", 1)
    (dest / "params.yaml").write_text(text)
    run_checked(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "third model"], dest, env)
    listed = run_checked([sys.executable, "-m", "dvc", "stage", "list"], dest, env)
    assert "train_translation@facades-spade" in listed and "train_denoiser@cnn_3x4" in listed
    check = subprocess.run([sys.executable, "scripts/stage_deps.py"], cwd=dest, env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    run_checked([sys.executable, "-m", "dvc", "repro", "train_translation@facades-spade", "train_denoiser@cnn_3x4"], dest, env)
    for path in ("reports/metrics/translation/facades/train_spade.json", "reports/figures/stages/translation/facades/samples_spade.png",
                 "reports/metrics/train_denoise_cnn_3x4.json", "reports/metrics/losses_denoise_cnn_3x4.csv"):
        assert (dest / path).is_file(), path
