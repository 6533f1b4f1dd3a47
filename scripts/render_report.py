"""Renders ``reports/index.html`` from the committed results files, the same bytes every time.

Runs ``notebooks/99-render-report.ipynb`` with papermill into a temporary folder, removes from the
executed notebook what differs between two runs of the same notebook on the same files (papermill's
and nbclient's timestamps and durations, the random id of the injected-parameters cell, the paths
of the temporary files), then converts it to HTML with nbconvert and the page template
(``reports/templates/report``) and moves the page into place atomically. The notebook also writes
its figures, the headline metrics and the plot CSVs (their folders below); their bytes depend only
on the results files too. Nothing else is written: no ``dvc.lock``, no tracked notebook, unless
``--executed`` names where to keep the cleaned executed notebook (the pipeline's report stage keeps it
in ``reports/runs/``).

``make render`` and the DVC ``report`` stage both run this script, so both give the same page::

    python scripts/render_report.py                                  # make render
    python scripts/render_report.py --executed reports/runs/99-render-report.ipynb   # dvc.yaml: report
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from env_check import missing_packages_message  # beside this script (scripts/), standard library only

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "notebooks/99-render-report.ipynb"
TEMPLATE = "reports/templates/report"
INJECTED_ID = "injected-parameters"  # a fixed id for papermill's parameters cell (papermill draws a random one)
PARAMETERS = {  # papermill parameter -> (option, default), repository-relative paths
    "params_file": ("--params-file", "params.yaml"),
    "metrics_dir": ("--metrics-dir", "reports/metrics"),
    "figures_dir": ("--figures-dir", "reports/figures"),
    "headline_dir": ("--headline-dir", "reports/headline"),
    "plots_dir": ("--plots-dir", "reports/plots"),
}


def clean_notebook(nb: dict) -> dict:
    """``nb`` (an executed notebook as JSON) without what changes from run to run: the papermill and
    nbclient timing metadata of the notebook and of every cell, papermill's input/output paths and
    environment, and the random id of the injected-parameters cell (set to :data:`INJECTED_ID`)."""
    meta = nb.get("metadata", {})
    papermill = meta.get("papermill")
    if isinstance(papermill, dict):
        meta["papermill"] = {k: papermill[k] for k in ("parameters", "version") if k in papermill}
    for cell in nb.get("cells", []):
        cm = cell.get("metadata", {})
        cm.pop("papermill", None)
        cm.pop("execution", None)
        if INJECTED_ID in cm.get("tags", []):
            cell["id"] = INJECTED_ID
    return nb


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, (option, default) in PARAMETERS.items():
        p.add_argument(option, dest=name, default=default, help=f"notebook parameter {name} (default {default})")
    p.add_argument("--out", default="reports/index.html", help="the page (default reports/index.html)")
    p.add_argument("--executed", default=None,
                   help="also keep the cleaned executed notebook here (default: not kept)")
    return p.parse_args(argv)


def _publish(src: Path, dest: Path) -> None:
    """Copies ``src`` to ``dest`` atomically (a temporary file beside ``dest``, renamed into place)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, staged)
    os.replace(staged, dest)


def main(argv: list[str]) -> int:
    if (missing := missing_packages_message("papermill", "nbconvert")) is not None:
        print(missing, file=sys.stderr)
        return 2
    args = _args(argv)
    os.chdir(ROOT)  # the notebook resolves its parameters against the repository root
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="render_report_") as tmp:
        executed = Path(tmp) / Path(NOTEBOOK).name  # the same name every run: the page title comes from it
        params = [x for name in PARAMETERS for x in ("-p", name, getattr(args, name))]
        code = subprocess.call([sys.executable, "-m", "papermill", "--cwd", ".", "--log-level", "WARNING",
                                "--no-progress-bar", NOTEBOOK, str(executed), *params])
        if code != 0:
            print(f"error: {NOTEBOOK} failed (exit {code}); {out} was left as it was", file=sys.stderr)
            return code
        nb = clean_notebook(json.loads(executed.read_text(encoding="utf-8")))
        executed.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        code = subprocess.call([sys.executable, "-m", "nbconvert", "--log-level", "WARN", "--to", "html", "--no-input",
                                "--template", TEMPLATE, "--output-dir", tmp, "--output", "page", str(executed)])
        if code != 0:
            print(f"error: nbconvert failed (exit {code}); {out} was left as it was", file=sys.stderr)
            return code
        _publish(Path(tmp) / "page.html", out)
        if args.executed:
            _publish(executed, Path(args.executed))
    print(f"report: {ROOT / out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
