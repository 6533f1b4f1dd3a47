"""Typed, strict configuration loaded from ``params.yaml``.

``params.yaml`` is the single source of truth. Each stage reads one section; each model
has a frozen dataclass config whose defaults are the paper's values. Unknown keys and
wrongly typed values are errors that name the offending key.
"""
from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from lib.io import read_text

__all__ = ["ConfigError", "load_params", "section", "from_dict", "check_keys", "to_dict", "deep_merge"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A parameter file or section is missing, unknown or of the wrong type."""


def load_params(path: str | Path = "params.yaml") -> dict:
    """Reads a YAML parameter file.

    Args:
        path: the YAML file.

    Returns:
        The parsed mapping.

    Raises:
        ConfigError: the file is missing or is not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"parameter file not found: {path}")
    try:
        params = yaml.safe_load(read_text(path))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    except ValueError as e:  # not UTF-8 (names the file)
        raise ConfigError(str(e)) from e
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return params


def section(params: Mapping, dotted: str) -> Any:
    """Returns ``params[a][b]...`` for ``dotted = "a.b"``, naming the missing key on error."""
    node: Any = params
    walked = []
    for key in dotted.split("."):
        walked.append(key)
        if not isinstance(node, Mapping) or key not in node:
            raise ConfigError(f"params key not found: {'.'.join(walked)}")
        node = node[key]
    return node


def _check_finite(value: Any, where: str) -> None:
    """Raises :class:`ConfigError` naming the key of the first NaN / infinite number in ``value``
    (a number, or one nested in mappings and lists)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: {value!r} is not a finite number")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_finite(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite(v, f"{where}[{i}]")


def _check_type(value: Any, tp: Any, where: str) -> Any:
    """Validates (and lightly coerces) ``value`` against the annotation ``tp``; every number in
    it must be finite (NaN and infinity are refused wherever they appear)."""
    _check_finite(value, where)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arm in args:
            try:
                return _check_type(value, arm, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} matches none of {tp}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_check_type(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, where=where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def check_keys(cls: type, data: Mapping | None, where: str) -> None:
    """Raises :class:`ConfigError` naming ``where.<key>`` for each key of ``data`` that is not a
    field of dataclass ``cls`` (for sections merged before they are built, such as ``common``)."""
    if data is None:
        return
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
                          f"known keys: {', '.join(sorted(fields))}")


def from_dict(cls: type[T], data: Mapping | None, where: str | None = None) -> T:
    """Builds the frozen dataclass ``cls`` from a mapping, strictly.

    Missing keys take the dataclass defaults (the paper's values); unknown keys and values
    of the wrong type raise :class:`ConfigError` naming the key.

    Args:
        cls: a dataclass type.
        data: the mapping (``None`` means all defaults).
        where: the dotted params path of ``data``, used in error messages.

    Returns:
        An instance of ``cls``.
    """
    where = where or cls.__name__
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name in fields:
        if name in data:
            kwargs[name] = _check_type(data[name], hints[name], f"{where}.{name}")
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        # a check that names its field first ("max_images=-3 must be >= 0") gets the full key path
        if str(e).startswith(f"{where}."):  # already names its full key
            raise ConfigError(str(e)) from e
        first = re.match(r"[A-Za-z_][A-Za-z0-9_]*", str(e))
        if first and first.group(0) in fields:
            raise ConfigError(f"{where}.{e}") from e
        raise ConfigError(f"{where}: {e}") from e
    return obj


def to_dict(obj: Any) -> dict:
    """A dataclass config as a plain (YAML/JSON/checkpoint-safe) dict; tuples become lists."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(obj)


def deep_merge(base: Mapping, overlay: Mapping) -> dict:
    """``base`` with ``overlay`` written over it; nested mappings merge, other values replace."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
