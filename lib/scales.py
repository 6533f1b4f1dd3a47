"""Selecting a scale (smoke / default / paper) by editing ``params.yaml`` in place, losslessly.

``params.yaml`` is the default scale and the single source of truth. A scale file
(``scales/<name>.yaml``) names only the values that differ from it; nested mappings merge
(a scale may set one key of a ``generator_cfg``), other values replace. Selecting a scale
splices just those values into the text of ``params.yaml``: every comment, the key order,
flow styles and number spellings stay as written, so ``git diff params.yaml`` shows the
changed values and nothing else.

The way back is recorded when ``params.yaml`` leaves the default scale: the original text of
every value a scale replaces (or ``!unset`` for a key it adds) goes to
``.params.default-values.yaml`` beside it (git-ignored, derived from ``params.yaml``). ``select
default`` splices those texts back, so selecting any scale and then the default leaves
``params.yaml`` byte-identical (``tests/test_scales.py``). Switching between two non-default
scales passes through the default.

CLI::

    python -m lib.scales select smoke        # or default, paper, paper-smoke (paper, then its smoke sizes)
    python -m lib.scales show                # the selected scale and the known ones
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lib.config import ConfigError, load_params
from lib.io import read_text, write_text
from lib.paths import ROOT

__all__ = ["select", "scale_files", "overlay_chain", "RECORD_NAME"]

DEFAULT = "default"
RECORD_NAME = ".{stem}.default-values.yaml"  # beside params.yaml: the texts that restore the default
UNSET = "!unset"
# scale -> the scales applied before it, in order
CHAINS: dict[str, tuple[str, ...]] = {"paper-smoke": ("paper",)}
ENTRY_SECTIONS = ("datasets",)  # sections whose entries a scale may add (the paired datasets it studies)

Path_ = tuple[str, ...]


# ----------------------------------------------------------------------------- scale files


def scale_files(scales_dir: Path) -> dict[str, Path]:
    """Scale name -> its overlay file (``scales/*.yaml``)."""
    return {p.stem: p for p in sorted(scales_dir.glob("*.yaml"))}


def overlay_chain(name: str, scales_dir: Path) -> list[Path]:
    """The overlay files that make scale ``name``, in the order they are applied."""
    files = scale_files(scales_dir)
    if name == DEFAULT:
        return []
    if name not in files:
        raise ConfigError(f"unknown scale {name!r}; known: {', '.join([DEFAULT, *files])} (files in {scales_dir})")
    return [files[n] for n in (*CHAINS.get(name, ()), name)]


def _load(path: Path) -> Mapping:
    return load_params(path)  # a mapping, or a ConfigError naming the file


def _get(data: Any, path: Path_) -> Any:
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data


def _leaves(overlay: Mapping, base: Any) -> list[tuple[Path_, Any]]:
    """(key path, value) of everything ``overlay`` sets, descending while both sides are mappings."""
    out: list[tuple[Path_, Any]] = []
    for key, value in overlay.items():
        sub = base.get(key) if isinstance(base, Mapping) else None
        if isinstance(value, Mapping) and value and isinstance(sub, Mapping):
            out += [((key, *rest), v) for rest, v in _leaves(value, sub)]
        else:
            out.append(((key,), value))
    return out


# ----------------------------------------------------------------------------- text splicing


def render(value: Any) -> str:
    """``value`` as one line of YAML (flow style for collections)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False).strip()
    return text[:-3].rstrip() if text.endswith("\n...") else text


def _last_end(node: yaml.Node) -> int:
    """Text index just after the last character that belongs to ``node`` (for a block collection,
    the end of its last leaf; PyYAML's own end mark lies at the next token, past any comments)."""
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        return _last_end(last[1] if isinstance(node, yaml.MappingNode) else last)
    return node.end_mark.index


def _find(root: yaml.Node, path: Path_, where: str) -> tuple[yaml.MappingNode, int | None]:
    """The mapping node that holds ``path[-1]`` and the index of its pair (None when absent)."""
    node = root
    for i, key in enumerate(path):
        if not isinstance(node, yaml.MappingNode):
            raise ConfigError(f"{where}: {'.'.join(path[:i])} is not a mapping in params.yaml")
        index = next((j for j, (k, _) in enumerate(node.value) if k.value == key), None)
        if i == len(path) - 1:
            return node, index
        if index is None:
            raise ConfigError(f"{where}: key {'.'.join(path[:i + 1])} does not exist in params.yaml")
        node = node.value[index][1]
    raise AssertionError("empty key path")


def _line_end(text: str, index: int) -> int:
    """Index just after the newline of the line holding ``index - 1``."""
    nl = text.find("\n", max(index - 1, 0))
    return len(text) if nl < 0 else nl + 1


def splice(text: str, path: Path_, new: str | None, where: str, align: bool = False) -> tuple[str, str | None]:
    """Sets ``path`` to the YAML text ``new`` (None: removes the key). Returns the new text and the
    old value's text (None when the key was absent). A value followed by a comment on its line owns
    the spaces before the comment; ``align`` pads ``new`` so that the comment keeps its column."""
    root = yaml.compose(text)
    parent, index = _find(root, path, where)
    key = path[-1]
    if index is not None:  # replace (or remove) an existing value
        knode, vnode = parent.value[index]
        start, end = vnode.start_mark.index, _last_end(vnode)
        gap = re.match(r"[ \t]+(?=#)", text[end:])
        if new is not None and gap:
            end += len(gap.group())
            if align:
                new += " " * max(1, end - start - len(new))
        old = text[start:end]
        if new is not None:
            return text[:start] + new + text[end:], old
        if parent.flow_style:  # `, key: value` (or `key: value, ` when first)
            if index > 0:
                cut_from = _last_end(parent.value[index - 1][1])
                return text[:cut_from] + text[end:], old
            nxt = parent.value[1][0].start_mark.index if len(parent.value) > 1 else end
            return text[:knode.start_mark.index] + text[nxt:], old
        line_start = text.rfind("\n", 0, knode.start_mark.index) + 1
        return text[:line_start] + text[_line_end(text, end):], old
    if new is None:
        return text, None
    if parent.flow_style:
        close = parent.end_mark.index - 1  # the `}`
        sep = ", " if parent.value else ""
        return text[:close] + f"{sep}{key}: {new}" + text[close:], None
    if not parent.value:
        raise ConfigError(f"{where}: cannot add {'.'.join(path)} to an empty block mapping")
    column = parent.value[0][0].start_mark.column
    at = _line_end(text, _last_end(parent.value[-1][1]))
    return text[:at] + " " * column + f"{key}: {new}\n" + text[at:], None


# ----------------------------------------------------------------------------- select


def select(name: str, params_file: Path | None = None, scales_dir: Path | None = None) -> str:
    """Puts ``params_file`` at scale ``name`` (see the module docstring); returns the new text."""
    params_file = Path(params_file or ROOT / "params.yaml")
    scales_dir = Path(scales_dir or params_file.parent / "scales")
    record_file = params_file.with_name(RECORD_NAME.format(stem=params_file.stem))
    text = read_text(params_file) if params_file.is_file() else None
    if text is None:
        raise ConfigError(f"parameter file not found: {params_file}")
    params = _load(params_file)
    if "scale" not in params:
        raise ConfigError(f"{params_file}: no `scale` key")
    chain = overlay_chain(name, scales_dir)  # checks the name before anything is written

    if params["scale"] != DEFAULT:  # back to the default first
        if not record_file.is_file():
            raise ConfigError(f"{params_file} is at scale {params['scale']!r} and {record_file} (the default "
                              f"values) is missing; restore params.yaml from git (`git checkout params.yaml`)")
        record = _load(record_file)
        for dotted, old in reversed(list(record.items())):
            text, _ = splice(text, tuple(dotted.split(".")), None if old == UNSET else old, str(record_file))
        record_file.unlink()
    if not chain:
        write_text(params_file, text)
        return text

    record: dict[str, str] = {}
    for file in chain:
        current = yaml.safe_load(text)
        for path, value in _leaves(_load(file), current):
            for depth in (1, 2):  # a section and its first-level keys must exist: a typo is not a new key
                if depth == 2 and path[0] in ENTRY_SECTIONS:  # ... except a new entry of a section of entries
                    continue
                if len(path) >= depth and _get(current, path[:depth]) is None:
                    raise ConfigError(f"{file}: key {'.'.join(path[:depth])} does not exist in {params_file}")
            text, old = splice(text, path, render(value), str(file), align=True)
            record.setdefault(".".join(path), UNSET if old is None else old)
    header = (f"# Derived by `python -m lib.scales select {name}`: the text of each value of params.yaml at the\n"
              "# default scale that the selected scale replaced (!unset: a key it added). Do not edit.\n")
    write_text(record_file, header + yaml.safe_dump(record, sort_keys=False, width=10**9, allow_unicode=True))
    write_text(params_file, text)
    return text


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.scales", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("select", help="put params.yaml at a scale (`default` returns)")
    p.add_argument("scale")
    p.add_argument("--params", type=Path, default=None, help="the params file (default: the project's params.yaml)")
    sub.add_parser("show", help="the selected scale and the known ones")
    args = parser.parse_args(argv)
    try:
        if args.command == "select":
            select(args.scale, args.params)
            print(f"{args.params or 'params.yaml'}: scale = {args.scale}")
        else:
            scale = _load(ROOT / "params.yaml").get("scale")
            print(f"params.yaml: scale = {scale}; known: {', '.join([DEFAULT, *scale_files(ROOT / 'scales')])}")
    except (ConfigError, OSError, ValueError) as e:  # ValueError: a file that is not UTF-8 (named)
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
