"""Load-time checks of a ``train_translation`` recipe, reported under the key the user wrote.

A model's recipe is ``common`` with ``models.<model>`` merged over it
(:func:`lib.train.gan.gan_config`), and the generator and discriminator configs are derived
from it (the generator built for ``height = size``). :func:`check_recipe` builds all three
when ``params.yaml`` is loaded, so a bad value fails before any stage starts, and rewrites the
key of each error to the one in the file: a bad ``common.size`` is reported as
``train_translation.common.size`` (not as the ``models.asapnet.height`` it becomes), a value
written under ``common`` under ``common``, a generator config key under
``models.<model>.generator_cfg``.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from lib.config import ConfigError
from lib.data import TRANSLATION_DATASETS
from lib.models import make_config
from lib.models.generate import GENERATORS, generator_overrides, size_multiple

__all__ = ["written_at", "check_recipe"]

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def written_at(stage: Any, model: str, path: Sequence[str]) -> str:
    """The params key of setting ``path`` of ``model``'s merged recipe as the user wrote it:
    under ``models.<model>`` when given there, else under ``common`` when given there, else
    (a default) under ``models.<model>``."""
    for where, section in ((f"models.{model}", stage.models[model]), ("common", stage.common)):
        node: Any = section
        for key in path:
            if not isinstance(node, Mapping) or key not in node:
                break
            node = node[key]
        else:
            return f"train_translation.{where}." + ".".join(path)
    return f"train_translation.models.{model}." + ".".join(path)


def _reblame(message: str, prefix: str, key_of: Any) -> str | None:
    """``message`` (``<prefix><field path><rest>``) with its key replaced by ``key_of(path)``,
    or None when it does not start with ``prefix`` and a field."""
    if not message.startswith(prefix):
        return None
    m = _FIELD.match(message[len(prefix):])
    if not m:
        return None
    return key_of(m.group(0).split(".")) + message[len(prefix) + len(m.group(0)):]


def _unknown_keys(message: str, key: str) -> str:
    """``<x>: unknown key(s) a, b; known keys: ...`` with each key named as ``<key>.a``."""
    m = re.search(r"unknown key\(s\) ([^;]*)(;.*)?$", message)
    if not m:
        return f"{key}: {message}"
    names = ", ".join(f"{key}.{k.strip()}" for k in m.group(1).split(","))
    return f"{key}: unknown key(s) {names}{m.group(2) or ''}"


def check_recipe(stage: Any, model: str) -> Any:
    """Builds ``model``'s training config and its generator and discriminator configs.

    Returns:
        The :class:`lib.train.gan.GANTrainConfig`.

    Raises:
        ConfigError: the first bad value, named by the key it was written under.
    """
    from lib.train.gan import _conditioning, _discriminator_config, gan_config

    prefix = f"train_translation.models.{model}."
    try:
        cfg = gan_config(stage, model)
    except ConfigError as e:
        message = _reblame(str(e), prefix, lambda path: written_at(stage, model, path))
        if message is None:
            raise
        raise ConfigError(message) from e
    gen_key = written_at(stage, model, ["generator"])
    size_key = written_at(stage, model, ["size"])
    gcfg_key = written_at(stage, model, ["generator_cfg"])
    if cfg.generator not in GENERATORS:
        raise ConfigError(f"{gen_key}: {cfg.generator!r} is not a label->photo generator; known: {', '.join(GENERATORS)}")
    try:
        overrides = generator_overrides(cfg.generator, cfg.generator_cfg, cfg.size)
    except ValueError as e:  # generator_cfg.height other than size
        raise ConfigError(f"{gcfg_key}.height: {e}; leave it out (the height is {size_key})") from e
    try:
        g_cfg = make_config(cfg.generator, overrides)
    except ConfigError as e:
        text = str(e)
        m = re.match(rf"models\.{re.escape(cfg.generator)}\.([A-Za-z_][A-Za-z0-9_]*)", text)
        if m and m.group(1) == "height" and "height" not in cfg.generator_cfg:  # derived from size
            reason = re.sub(r"^=\S*\s*", "", text[m.end():])  # "=100 must be ..." -> "must be ..."
            raise ConfigError(f"{size_key}={cfg.size}: the {cfg.generator} generator is built for height = size, "
                              f"and its height {reason}") from e
        if m:
            raise ConfigError(f"{gcfg_key}.{m.group(1)}{text[m.end():]}") from e
        raise ConfigError(_unknown_keys(text, gcfg_key)) from e
    mh, mw = size_multiple(cfg.generator, g_cfg)
    if cfg.size % mh:
        raise ConfigError(f"{size_key}: {cfg.size} is not a multiple of {mh}, which the {cfg.generator} generator needs")
    label_nc, use_edge = _conditioning(g_cfg)
    needed = TRANSLATION_DATASETS.get(stage.dataset, 0)
    if label_nc < needed:
        key = written_at(stage, model, ["generator_cfg", "label_nc"])
        raise ConfigError(f"{key}={label_nc}: train_translation.dataset {stage.dataset!r} has {needed} label ids "
                          f"(0..{needed - 1}); label_nc must be at least {needed}")
    dcfg_key = written_at(stage, model, ["discriminator_cfg"])
    try:
        _discriminator_config(cfg, label_nc, use_edge)
    except ConfigError as e:
        text = str(e)
        message = _reblame(text, "models.patchgan.", lambda path: f"{dcfg_key}.{'.'.join(path)}")
        raise ConfigError(message or _unknown_keys(text, dcfg_key)) from e
    return cfg
