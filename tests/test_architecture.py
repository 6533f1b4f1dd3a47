"""The library's shape: layers import downward only, modules stay small and say their job."""
from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parent.parent / "lib"
MAX_LINES = 500  # a module longer than this holds more than one job


def _modules() -> list[Path]:
    return sorted(p for p in LIB.rglob("*.py") if "__pycache__" not in p.parts)


def test_import_layers_contract_holds():
    """`lint-imports` checks the layers contract of pyproject.toml (docs/design.md#architecture)."""
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.fail("lint-imports not found: install the requirements (import-linter)")
    res = subprocess.run([exe], cwd=LIB.parent, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_passes():
    """`ruff check` with the rules of pyproject.toml's [tool.ruff] (pyflakes, pycodestyle) on the code."""
    if importlib.util.find_spec("ruff") is None:
        pytest.fail("ruff not found: install the requirements (ruff)")
    cmd = [sys.executable, "-m", "ruff", "check", "--no-cache", "lib", "tests", "scripts", "benchmarks"]
    res = subprocess.run(cmd, cwd=LIB.parent, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(LIB)))
def test_module_is_short_and_documented(path: Path):
    text = path.read_text()
    n = text.count("\n")
    assert n <= MAX_LINES, f"{path.relative_to(LIB.parent)}: {n} lines > {MAX_LINES}; split it by job"
    if path.name == "__init__.py" and not text.strip():
        return
    doc = ast.get_docstring(ast.parse(text))
    assert doc and doc.strip(), f"{path.relative_to(LIB.parent)}: no module docstring saying its job"


def test_no_reference_to_a_missing_design_document():
    """Design references point into docs/design.md, which exists and has the cited sections."""
    root = LIB.parent
    design = (root / "docs" / "design.md").read_text()
    anchors = {"-".join(line[3:].strip().lower().split()) for line in design.splitlines() if line.startswith("## ")}
    for path in [*_modules(), *root.glob("notebooks/*.ipynb"), root / "params.yaml", root / "README.md"]:
        text = path.read_text()
        assert "DESIGN §" not in text and "DESIGN sec" not in text, f"{path}: cites a DESIGN document that does not exist"
        for anchor in re.findall(r"docs/design\.md#([a-z0-9-]+)", text):
            assert anchor in anchors, f"{path}: docs/design.md#{anchor} is not a section of docs/design.md"
