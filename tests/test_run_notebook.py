"""The notebook runner publishes progress-bar output as a terminal shows it (scripts/run_notebook.py)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from lib.paths import ROOT


def _runner():
    spec = importlib.util.spec_from_file_location("run_notebook", ROOT / "scripts" / "run_notebook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_terminal_text_keeps_what_follows_the_last_carriage_return():
    t = _runner()._terminal_text
    assert t("a\rb\rc\nx\ry\r\nz") == "c\ny\nz"  # a trailing carriage return keeps the text before it
    assert t("plain\ntext\n") == "plain\ntext\n"  # no carriage return: unchanged
    assert t("") == "" and t("\n\n") == "\n\n"


def test_compact_streams_merges_redraws_and_keeps_other_outputs(tmp_path):
    outputs = [
        {"output_type": "stream", "name": "stdout", "text": ["start\n"]},
        *({"output_type": "stream", "name": "stderr", "text": f"\rbar {i}/3"} for i in range(4)),
        {"output_type": "stream", "name": "stderr", "text": "\n"},
        {"output_type": "display_data", "data": {"text/plain": ["<figure>"]}, "metadata": {}},
        {"output_type": "stream", "name": "stdout", "text": ["done\n"]},
    ]
    nb = {"cells": [{"cell_type": "code", "source": [], "metadata": {}, "execution_count": 1, "outputs": outputs},
                    {"cell_type": "markdown", "source": ["text"], "metadata": {}}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    _runner().compact_streams(path)
    got = json.loads(path.read_text())["cells"]
    assert got[0]["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": ["start\n"]},
        {"output_type": "stream", "name": "stderr", "text": ["bar 3/3\n"]},
        outputs[-2],
        {"output_type": "stream", "name": "stdout", "text": ["done\n"]},
    ]
    assert got[1] == nb["cells"][1]


@pytest.mark.slow  # a papermill kernel: ~5 s
def test_published_notebook_holds_the_last_state_of_a_progress_bar(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import sys, time\n"
        "for i in range(200):\n"
        "    sys.stderr.write(f'\\rstep {i + 1}/200'); sys.stderr.flush()\n"
        "sys.stderr.write('\\n')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src, dest = tmp_path / "nb.ipynb", tmp_path / "runs" / "nb.ipynb"
    nbformat.write(nb, src)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebook.py"), str(src), str(dest)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    published = nbformat.read(dest, 4)
    nbformat.validate(published)
    streams = [o for o in published.cells[0].outputs if o.output_type == "stream"]
    assert [(o.name, o.text) for o in streams] == [("stderr", "step 200/200\n")]
