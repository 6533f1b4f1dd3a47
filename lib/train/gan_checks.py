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
from lib.data.paired import label_channels
from lib.models import make_config
from lib.models.generate import GENERATORS, generator_overrides, size_multiple

__all__ = ["written_at", "check_stage", "check_recipe", "check_label_maps"]

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


def check_stage(stage: Any) -> None:
    """The checks of a ``train_translation`` section when it loads: the study's dataset (built in
    when no entry is given) and its splits, then every model's recipe (:func:`check_recipe`),
    each model keyed by its generator's registry name (``dvc.yaml`` tracks ``lib/models/<key>.py``).

    Raises:
        ValueError / ConfigError: the first bad value, named by its key.
    """
    if stage.data is None:
        from lib.data import TRANSLATION_DATASETS

        if stage.dataset not in TRANSLATION_DATASETS:
            raise ValueError(f"dataset={stage.dataset!r}; known: {', '.join(TRANSLATION_DATASETS)}")
    elif stage.data.name not in ("", stage.dataset):
        raise ValueError(f"dataset={stage.dataset!r} but data describes {stage.data.name!r}")
    for key in ("train_split", "test_split"):
        if getattr(stage, key) not in stage.paired().splits:
            raise ValueError(f"{key}={getattr(stage, key)!r}: dataset {stage.dataset!r} has the splits "
                             f"{', '.join(stage.paired().splits)}")
    if not stage.models:
        raise ValueError("models: expected at least one model recipe")
    for model in stage.models:
        generator = check_recipe(stage, model).generator
        if generator != model:
            raise ConfigError(f"{written_at(stage, model, ['generator'])}: {generator!r} differs from the model's key "
                              f"{model!r}; name each model by its generator (dvc.yaml tracks lib/models/<key>.py)")


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
    needed = label_channels(stage.paired())
    if label_nc != needed:
        key = written_at(stage, model, ["generator_cfg", "label_nc"])
        raise ConfigError(f"{key}={label_nc}: dataset {stage.dataset!r} has {needed} one-hot label channels "
                          f"(ids 0..{needed - 1}, datasets.{stage.dataset}); label_nc must be {needed}")
    dcfg_key = written_at(stage, model, ["discriminator_cfg"])
    try:
        _discriminator_config(cfg, label_nc, use_edge)
    except ConfigError as e:
        text = str(e)
        message = _reblame(text, "models.patchgan.", lambda path: f"{dcfg_key}.{'.'.join(path)}")
        raise ConfigError(message or _unknown_keys(text, dcfg_key)) from e
    return cfg


def check_label_maps(stage: Any, model: str, dataset: Any) -> int:
    """Where training starts: the generator's ``label_nc`` against the label maps on disk.

    The one-hot input has ``label_nc`` channels (the recipe's ``generator_cfg.label_nc``); the
    dataset's entry gives :func:`lib.data.paired.label_channels` (its classes, plus the ignore id's
    channel), and every training label map is read to find the largest id it holds (the ignore id
    as its channel). Both must fit: ``label_nc`` equals the channels and exceeds every id.

    Args:
        stage: the ``train_translation`` settings of the study.
        model: a key of ``stage.models``.
        dataset: the training set, a :class:`lib.data.paired.PairedDataset` (``cfg``, ``pairs``).

    Returns:
        The largest channel index found in the label maps.

    Raises:
        ConfigError: ``label_nc`` differs from the channels, or a label map holds an id at or
            above it (names the params key, the dataset and the file).
    """
    from lib.data.images import read_label
    from lib.train.gan import _conditioning, gan_config

    cfg = gan_config(stage, model)
    label_nc, _ = _conditioning(make_config(cfg.generator, generator_overrides(cfg.generator, cfg.generator_cfg, cfg.size)))
    key = written_at(stage, model, ["generator_cfg", "label_nc"])
    paired = dataset.cfg
    channels = label_channels(paired)
    if label_nc != channels:
        raise ConfigError(f"{key}={label_nc}: the training data ({paired.name or paired.root}) have {channels} one-hot "
                          f"label channels; label_nc must be {channels}")
    top = -1
    for pair in dataset.pairs:
        ids = read_label(pair.label, modes=(paired.label_mode,))
        if paired.ignore_id is not None and paired.ignore_id >= paired.num_classes:
            ignored = ids == paired.ignore_id  # the ignore id becomes channel num_classes
            if ignored.any():
                top = max(top, paired.num_classes)
            ids = ids[~ignored]
        if ids.size:
            top = max(top, int(ids.max()))
        if top >= label_nc:
            raise ConfigError(f"{key}={label_nc}: {pair.label} holds label id {top}; the one-hot input needs "
                              f"label_nc > {top}")
    return top
