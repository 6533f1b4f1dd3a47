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
    python scripts/stage_deps.py --fix      # add the missing lib files to dvc.yaml's deps lists (text edit)
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


def matrix_item(stage: str, key: str, params: dict) -> dict[str, str]:
    """The matrix values of a generated stage's key (``facades-asapnet`` -> dataset and model)."""
    if stage != "train_translation":
        raise KeyError(f"{stage}: not a matrix stage")
    for model in params["train_translation"]["models"]:
        dataset = key[: -len(model) - 1]
        if key.endswith(f"-{model}") and dataset in params["translation"]["datasets"]:
            return {"dataset": dataset, "model": model}
    raise KeyError(f"{stage}@{key}: no study dataset and model of params.yaml give this key")


def registry_models(stage: str, key: str | None, params: dict) -> set[str]:
    """Model registry names a stage builds or loads, from its settings in ``params`` (``key``: the
    ``foreach`` / ``matrix`` entry of a per-study, per-model or per-run stage)."""
    translation = params["train_translation"]["models"]
    runs = params["train_denoiser"]["runs"]
    generators = {m["generator"] for m in translation.values()}
    segmenters = {"segmenter", "inception_segmenter"}  # a study's recipe picks one (train_segmenter.arch)
    if stage == "train_translation":
        return {translation[matrix_item(stage, key, params)["model"]]["generator"], "patchgan"}
    if stage == "evaluate_translation":
        return generators | segmenters
    if stage == "train_segmenter":
        return segmenters
    if stage == "time_translation":
        return set(params["time_translation"]["models"]) | generators
    if stage == "train_denoiser":
        return {runs[key]["model"], "dncnn"}  # lib.denoise.study sizes every run against DnCNN
    if stage == "evaluate_denoising":
        return {r["model"] for r in runs.values()} | {"dncnn"}
    if stage == "dncnn_official":
        return {"dncnn"}
    return set()


def stage_modules(stage: str, key: str | None, notebook: Path, params: dict) -> set[str]:
    """Every lib module the stage's notebook runs."""
    modules, loaded = notebook_imports(notebook)
    modules |= {STAGES[s].split(":")[0] for s in loaded}
    modules |= {MODELS[name][0] for name in registry_models(stage, key, params)}
    return closure(modules)


def dvc_stages() -> list[tuple[str, str, str | None, list[str], list[str], str]]:
    """(address, stage name, foreach key or None, deps, outs, notebook) of every stage of ``dvc.yaml``,
    as DVC resolves them."""
    from dvc.repo import Repo

    out = []
    with Repo(str(ROOT)) as repo:
        for st in repo.index.stages:
            if not getattr(st, "cmd", None):
                continue
            name, _, key = st.name.partition("@")
            deps = [Path(d.def_path).as_posix() for d in st.deps]
            # the notebook the command runs (the report's render script runs the one it depends on)
            found = re.search(r"notebooks/\S+\.ipynb", st.cmd)
            notebook = found.group(0) if found else next(d for d in deps if d.startswith("notebooks/"))
            outs = [Path(o.def_path).as_posix() for o in st.outs]
            out.append((st.addressing, name, key or None, deps, outs, notebook))
    return out


def covered(file: str, deps: list[str]) -> bool:
    return any(file == d or file.startswith(d.rstrip("/") + "/") for d in deps)


def _is_code(dep: str) -> bool:
    """A lib dependency that holds (or held: it is gone) Python code; package data such as
    lib/data/checksums does not."""
    path = ROOT / dep
    return path.suffix == ".py" or not path.exists() or (path.is_dir() and any(path.rglob("*.py")))


def compare(stages: list | None = None) -> list[tuple[str, str, str, list[str], list[str]]]:
    """(address, stage name, notebook, lib files it runs that its deps lack, lib deps no entry of the
    stage runs) for every stage. A per-model or per-run stage may list a file that another entry of
    the same stage runs (the deps of a ``foreach`` are one list), never one that no entry runs."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    stages = dvc_stages() if stages is None else stages
    needed = {address: {module_file(m) for m in stage_modules(name, key, ROOT / nb, params)}
              for address, name, key, _, _, nb in stages}
    union: dict[str, set[str]] = {}
    for address, name, *_ in stages:
        union.setdefault(name, set()).update(needed[address])
    out = []
    for address, name, _, deps, _, notebook in stages:
        missing = sorted(f for f in needed[address] if not covered(f, deps))
        extra = sorted(d for d in deps if d.startswith("lib/") and _is_code(d)
                       and not any(covered(f, [d]) for f in union[name]))
        out.append((address, name, notebook if notebook not in deps else "", missing, extra))
    return out


def check(stages: list | None = None) -> list[str]:
    """One line per stage whose lib deps differ from what its notebook runs (empty: all agree)."""
    problems = []
    for address, _, notebook, missing, extra in compare(stages):
        if notebook:
            problems.append(f"{address}: its notebook {notebook} is not a dependency")
        if missing:
            problems.append(f"{address}: runs {', '.join(missing)}, not in its deps (dvc.yaml)")
        if extra:
            problems.append(f"{address}: depends on {', '.join(extra)}, which its notebook does not run")
    return problems


def fix(dvc_file: Path = ROOT / "dvc.yaml") -> list[str]:
    """Inserts each stage's missing lib files into its ``deps`` list, in order among its lib lines, and
    removes the lib deps that no entry runs; every other byte of ``dvc.yaml`` is kept. Returns what changed."""
    missing: dict[str, set[str]] = {}
    extra: dict[str, set[str]] = {}
    for _, name, _, stage_missing, stage_extra in compare():  # a foreach stage's entries count once
        missing.setdefault(name, set()).update(stage_missing)
        extra.setdefault(name, set()).update(stage_extra)
    lines = dvc_file.read_text().splitlines(keepends=True)
    added = []
    for name, files in sorted((k, v) for k, v in extra.items() if v):
        start = next(i for i, line in enumerate(lines) if line.rstrip() == f"  {name}:")
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("  ") and not lines[i].startswith("   ")
                    and lines[i].strip()), len(lines))
        for i in reversed(range(start, end)):
            item = lines[i].strip()
            if item.startswith("- ") and item[2:].split()[0] in files:
                added.append(f"{name}: removed {item[2:].split()[0]}")
                del lines[i]
    for name, files in sorted((k, v) for k, v in missing.items() if v):
        start = next(i for i, line in enumerate(lines) if line.rstrip() == f"  {name}:")
        deps_at = next(i for i in range(start, len(lines)) if line_key(lines[i]) == "deps")
        indent = len(lines[deps_at]) - len(lines[deps_at].lstrip())
        j = deps_at + 1
        while j < len(lines) and lines[j].startswith(" " * (indent + 2) + "- "):
            j += 1
        item_indent = " " * (indent + 2)
        for f in sorted(files):
            libs = [k for k in range(deps_at + 1, j) if lines[k].strip().startswith("- lib/")]
            at = next((k for k in libs if lines[k].strip()[2:].split()[0] > f), (libs[-1] + 1) if libs else deps_at + 1)
            lines.insert(at, f"{item_indent}- {f}\n")
            j += 1
            added.append(f"{name}: added {f}")
    dvc_file.write_text("".join(lines))
    return added


def line_key(line: str) -> str:
    return line.strip().split(":")[0] if ":" in line else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--print", dest="stage", help="print the lib files that stage (address) runs")
    parser.add_argument("--fix", action="store_true", help="add the missing lib files to dvc.yaml's deps")
    args = parser.parse_args(argv)
    if args.fix:
        print("\n".join(fix()) or "nothing to change")
    if args.stage:
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        for address, name, key, _, _, notebook in dvc_stages():
            if address == args.stage:
                for f in sorted(module_file(m) for m in stage_modules(name, key, ROOT / notebook, params)):
                    print(f"      - {f}")
                return 0
        print(f"error: no stage {args.stage!r} in dvc.yaml", file=sys.stderr)
        return 2
    problems = check()
    print("\n".join(problems) if problems else "every stage depends on exactly the lib files it runs")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
