"""The project code each DVC stage runs, against the ``deps`` that ``dvc.yaml`` gives it.

A stage runs one notebook. What that notebook runs is the import closure of its ``lib``
imports (grimp's graph of ``lib``, with the packages a module import also executes), plus the
modules it reaches through the two lazy registries: the stage registry (``load_stage(name)``
imports that stage's config module) and the model registry (a model name in ``params.yaml``
imports that model's file). A stage whose ``deps`` miss one of those files would be reported
up to date after that file changed; a ``lib`` dependency outside the closure re-runs the stage
for nothing. Both are errors here. ``tests/test_stage_deps.py`` runs the check.

Usage::

    python scripts/stage_deps.py            # every stage: OK, or the files missing / not needed
    python scripts/stage_deps.py --print S  # the lib files stage S runs (for its deps in dvc.yaml)
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import grimp  # noqa: E402
import yaml  # noqa: E402

from lib.models import MODELS  # noqa: E402
from lib.stages import STAGES  # noqa: E402

LOAD_STAGE = re.compile(r"load_stage\(\s*[\"'](\w+)[\"']")


@lru_cache(maxsize=1)
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("lib", include_external_packages=False, cache_dir=None)


def module_file(module: str) -> str:
    """``lib.a.b`` -> ``lib/a/b.py`` or ``lib/a/b/__init__.py`` (relative to the project root)."""
    rel = Path(*module.split("."))
    package = ROOT / rel / "__init__.py"
    return (package if package.is_file() else ROOT / rel.with_suffix(".py")).relative_to(ROOT).as_posix()


def closure(modules: Iterable[str]) -> set[str]:
    """The modules that importing ``modules`` executes: their upstream imports and, for each,
    the packages above it (whose ``__init__`` runs first), to a fixed point."""
    g = graph()
    todo, seen = set(modules), set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo |= set(g.find_upstream_modules(m)) - seen
        parts = m.split(".")
        todo |= {".".join(parts[:i]) for i in range(1, len(parts))} - seen
    return seen


def notebook_imports(notebook: Path) -> tuple[set[str], set[str]]:
    """The ``lib`` modules a notebook's code cells import, and the stages it loads by name."""
    g = graph()
    modules: set[str] = set()
    stages: set[str] = set()
    cells = json.loads(notebook.read_text())["cells"]
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        stages |= set(LOAD_STAGE.findall(source))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                modules |= {a.name for a in node.names if a.name.split(".")[0] == "lib"}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lib":
                modules.add(node.module)
                modules |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in g.modules}
    return modules, stages


def registry_models(stage: str, item: dict, params: dict) -> set[str]:
    """Model registry names a stage builds or loads, from its settings in ``params``."""
    translation = params["train_translation"]["models"]
    runs = params["train_denoiser"]["runs"]
    generators = {m["generator"] for m in translation.values()}
    if stage == "train_translation":
        return {translation[item["model"]]["generator"], "patchgan"}
    if stage == "evaluate_translation":
        return generators | {"segmenter"}
    if stage == "train_segmenter":
        return {"segmenter"}
    if stage == "time_translation":
        return set(params["time_translation"]["models"]) | generators
    if stage == "train_denoiser":
        return {runs[item["run"]]["model"], "dncnn"}  # lib.denoise.study sizes every run against DnCNN
    if stage == "evaluate_denoising":
        return {r["model"] for r in runs.values()} | {"dncnn"}
    if stage == "dncnn_official":
        return {"dncnn"}
    return set()


def stage_modules(stage: str, item: dict, notebook: Path, params: dict) -> set[str]:
    modules, loaded = notebook_imports(notebook)
    modules |= {STAGES[s].split(":")[0] for s in loaded}
    modules |= {MODELS[name][0] for name in registry_models(stage, item, params)}
    return closure(modules)


def dvc_stages() -> list[tuple[str, str, dict, list[str], str]]:
    """(address, stage name, matrix item, deps, notebook) of every stage of ``dvc.yaml``, resolved by DVC."""
    from dvc.repo import Repo

    out = []
    with Repo(str(ROOT)) as repo:
        for st in repo.index.stages:
            if not getattr(st, "cmd", None):
                continue
            name = st.name.split("@")[0]
            item = {}
            if "@" in st.name:
                # the matrix / foreach key: `stage@value` (one axis) or `stage@a-b` (matrix over several)
                definition = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][name]
                axes = list((definition.get("matrix") or {"key": None}).keys())
                values = st.name.split("@", 1)[1].split("-") if len(axes) > 1 else [st.name.split("@", 1)[1]]
                item = dict(zip(axes, values))
            notebook = re.search(r"notebooks/\S+\.ipynb", st.cmd).group(0)
            deps = [Path(d.def_path).as_posix() for d in st.deps]
            out.append((st.addressing, name, item, deps, notebook))
    return out


def covered(file: str, deps: list[str]) -> bool:
    return any(file == d or file.startswith(d.rstrip("/") + "/") for d in deps)


def check() -> list[str]:
    """One line per stage whose lib deps differ from what its notebook runs (empty: all agree)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    problems = []
    for address, name, item, deps, notebook in dvc_stages():
        needed = {module_file(m) for m in stage_modules(name, item, ROOT / notebook, params)}
        missing = sorted(f for f in needed if not covered(f, deps))
        lib_deps = [d for d in deps if d.startswith("lib/")]
        extra = sorted(d for d in lib_deps if not any(f == d or f.startswith(d.rstrip("/") + "/") for f in needed))
        if notebook not in deps:
            problems.append(f"{address}: its notebook {notebook} is not a dependency")
        if missing:
            problems.append(f"{address}: runs {', '.join(missing)}, not in its deps (dvc.yaml)")
        if extra:
            problems.append(f"{address}: depends on {', '.join(extra)}, which its notebook does not run")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--print", dest="stage", help="print the lib files that stage (address) runs")
    args = parser.parse_args(argv)
    if args.stage:
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        for address, name, item, _, notebook in dvc_stages():
            if address == args.stage:
                for f in sorted(module_file(m) for m in stage_modules(name, item, ROOT / notebook, params)):
                    print(f"      - {f}")
                return 0
        print(f"error: no stage {args.stage!r} in dvc.yaml", file=sys.stderr)
        return 2
    problems = check()
    print("\n".join(problems) if problems else "every stage depends on exactly the lib files it runs")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
