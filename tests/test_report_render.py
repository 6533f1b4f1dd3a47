"""`make render` (scripts/render_report.py) gives the same bytes every time, and the committed page is
what it gives: two renders of the committed results files into temporary folders are compared with
each other and with reports/index.html, reports/figures/, reports/headline/ and reports/plots/."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # two notebook runs: about a minute
OUTPUTS = ("figures", "headline", "plots")  # the folders the notebook writes, besides the page


def _render(dest: Path) -> dict[str, bytes]:
    """Renders into ``dest`` (the stage photos copied there, as the notebook reads them from its figures
    folder); returns every file written, by path relative to ``dest``."""
    shutil.copytree(ROOT / "reports" / "figures", dest / "figures")
    cmd = [sys.executable, str(ROOT / "scripts" / "render_report.py"), "--out", str(dest / "index.html"),
           "--executed", str(dest / "executed.ipynb"), "--figures-dir", str(dest / "figures"),
           "--headline-dir", str(dest / "headline"), "--plots-dir", str(dest / "plots")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {str(p.relative_to(dest)): p.read_bytes() for p in sorted(dest.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def renders(tmp_path_factory) -> tuple[dict[str, bytes], dict[str, bytes]]:
    return _render(tmp_path_factory.mktemp("a")), _render(tmp_path_factory.mktemp("b"))


def test_two_renders_give_the_same_bytes(renders):
    a, b = renders
    assert sorted(a) == sorted(b)
    differ = [name for name in a if name != "executed.ipynb" and a[name] != b[name]]
    assert not differ, f"differ between two renders of the same files: {differ}"
    page = a["index.html"].decode()
    assert "Rendered:" not in page and " UTC" not in page  # no render time
    assert "cell-id=injected-parameters" in page  # the parameters cell has a fixed id, not a random one
    assert "/tmp" not in page and "pytest" not in page  # nothing of where it was rendered


def test_the_committed_page_is_the_render_of_the_committed_files(renders):
    a, _ = renders
    committed = {f"{folder}/{p.relative_to(ROOT / 'reports' / folder)}": p.read_bytes()
                 for folder in OUTPUTS for p in sorted((ROOT / "reports" / folder).rglob("*")) if p.is_file()}
    stale = [name for name, data in committed.items() if a.get(name) != data]
    assert not stale, f"reports/ files differ from a fresh render (run `make render` and commit): {stale}"
    assert a["index.html"] == (ROOT / "reports" / "index.html").read_bytes(), \
        "reports/index.html differs from a fresh render of the committed results (run `make render` and commit it)"
