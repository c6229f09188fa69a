"""The validation helpers of the config sections, and the registry look-up.

Every check raises :class:`~emo_utils.errors.ConfigError` naming the dotted field, the value
and the reason.  :func:`registry_names` imports a registry only when it is called (when a
config is validated), never when this module is imported.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError

#: Registry kind -> ``(module, attribute)`` of the mapping whose keys are the accepted names.
#: Imported lazily by :func:`registry_names` (at validation time, not at import time).
_REGISTRIES: dict[str, tuple[str, str]] = {
    "crop": ("emo_utils.audio", "CROP_POLICIES"),
    "normalization": ("emo_utils.features", "NORMALIZATIONS"),
    "metric": ("emo_utils.metrics", "METRICS"),
    "image_normalization": ("emo_utils.models", "IMAGE_NORMALIZATIONS"),
    "stacking_model": ("emo_utils.ensemble", "STACKING_MODELS"),
    "ensemble": ("emo_utils.ensemble", "ENSEMBLES"),
    "task": ("emo_utils.tasks", "TASKS"),
    "descriptor": ("emo_utils.features.statistics", "DESCRIPTORS"),
    "pad": ("emo_utils.audio", "PAD_MODES"),
    "feature_backend": ("emo_utils.features.backends", "BACKENDS"),
    "chunk_engine": ("emo_utils.features.build", "CHUNK_ENGINES"),
    "waveform_augmentation": ("emo_utils.train.waveform_augment", "WAVEFORM_AUGMENTATIONS"),
}


def registry_names(kind: str) -> tuple[str, ...]:
    """The sorted names registered under ``kind``: the single source of every choice set.

    Parameters
    ----------
    kind : str
        One of ``"crop"`` (:data:`emo_utils.audio.CROP_POLICIES`), ``"normalization"``
        (:data:`emo_utils.features.NORMALIZATIONS`), ``"metric"``
        (:data:`emo_utils.metrics.METRICS`), ``"image_normalization"``
        (:data:`emo_utils.models.IMAGE_NORMALIZATIONS`), ``"stacking_model"``
        (:data:`emo_utils.ensemble.STACKING_MODELS`), ``"ensemble"``
        (:data:`emo_utils.ensemble.ENSEMBLES`), ``"task"`` (:data:`emo_utils.tasks.TASKS`),
        ``"descriptor"`` (:data:`emo_utils.features.statistics.DESCRIPTORS`), ``"pad"``
        (:data:`emo_utils.audio.PAD_MODES`), ``"feature_backend"``
        (:data:`emo_utils.features.backends.BACKENDS`) or ``"chunk_engine"``
        (:data:`emo_utils.features.build.CHUNK_ENGINES`).

    Examples
    --------
    >>> registry_names("metric")
    ('accuracy', 'f1_macro', 'f1_weighted')
    """
    try:
        module, attribute = _REGISTRIES[kind]
    except KeyError:
        raise ValueError(f"unknown registry kind {kind!r}; known: {sorted(_REGISTRIES)}") from None
    return tuple(sorted(getattr(importlib.import_module(module), attribute)))


def _task(name: str) -> Any:
    """The registered task ``name`` (imported lazily, like :func:`registry_names`)."""
    return importlib.import_module("emo_utils.tasks").get_task(name)


def _check(ok: bool, name: str, value: object, reason: str) -> None:
    if not ok:
        raise ConfigError(name, value, reason)


def _is_number(value: object) -> bool:
    """A real number: ``int`` or ``float`` but not ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(
    name: str,
    value: object,
    *,
    minimum: int,
    maximum: int | None = None,
    reason: str | None = None,
) -> None:
    """``value`` is an ``int`` (not a ``bool``) in ``[minimum, maximum]``."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    ok = ok and (maximum is None or value <= maximum)
    if reason is None:
        reason = (
            f"must be an integer >= {minimum}"
            if maximum is None
            else f"must be an integer in [{minimum}, {maximum}]"
        )
    _check(ok, name, value, reason)


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    bad = not _is_number(value) or not math.isfinite(value)
    bad = bad or (value < 0 if allow_zero else value <= 0)
    _check(not bad, name, value, "must be a finite number " + (">= 0" if allow_zero else "> 0"))


def _probability_text(text: str) -> bool:
    """``text`` is a number in (0, 1]."""
    try:
        return 0.0 < float(text) <= 1.0
    except ValueError:
        return False


def _choice(name: str, value: object, choices: Sequence[object]) -> None:
    _check(value in choices, name, value, f"must be one of {list(choices)}")


def _registered(
    name: str,
    value: object,
    kind: str,
    *,
    extra: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> None:
    """``value`` is a name of the ``kind`` registry (plus ``extra``, minus ``exclude``)."""
    names = sorted({*registry_names(kind), *extra} - set(exclude))
    _check(isinstance(value, str) and value in names, name, value, f"must be one of {names}")


def _probability(name: str, value: float) -> None:
    _check(_is_number(value) and 0.0 <= value <= 1.0, name, value, "must be a number in [0, 1]")
