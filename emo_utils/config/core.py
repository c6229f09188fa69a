"""The :class:`Config` of the whole pipeline: its sections, overrides, files and hashes.

See the package docstring (:mod:`emo_utils.config`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import re
import types
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from ..errors import ConfigError
from ..fileio import write_json, write_text
from ._validate import _check, _task
from .presets import PRESETS
from .sections import (
    AudioConfig,
    DataConfig,
    EnsembleConfig,
    FeatureConfig,
    StatisticsConfig,
    TimelineConfig,
    TrainConfig,
    VerificationConfig,
)

#: ``train.monitor`` may also name the validation loss (not a metric of the registry).
_MONITOR_LOSS = "valid_loss"
#: ``ensemble.method`` may also be ``"best"``: the registered method that scored best on OOF.
_BEST_METHOD = "best"


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading ``1e-3`` as a float, as YAML 1.2 and JSON do.

    YAML 1.1 (PyYAML) wants a dot in a float (``1.0e-3``) and reads ``1e-3`` as a string,
    which every user writing a learning rate would hit.
    """


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _load_yaml(text: str) -> Any:
    """``yaml.safe_load`` with :class:`_YamlLoader` (``1e-3`` is a float)."""
    return yaml.load(text, Loader=_YamlLoader)


#: Audio fields that do not change a cached image (see :meth:`Config.feature_hash`).
_NOT_IN_FEATURE_HASH = frozenset({"train_crop", "waveform_sample_rate"})
#: Audio fields added after caches were first keyed: they enter the key only when they differ
#: from these values (their defaults), so a cache built before them keeps its folder.
_HASHED_UNLESS = {"pad": "zero"}
#: Feature fields left out of the cache key: where images are computed, not what they are.
_FEATURES_NOT_IN_HASH = frozenset({"device", "engine", "ray_address"})
#: Feature fields added after caches were first keyed (see :data:`_HASHED_UNLESS`).
_FEATURES_HASHED_UNLESS = {"backend": "librosa"}
_ALWAYS = object()

_SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "audio": AudioConfig,
    "features": FeatureConfig,
    "statistics": StatisticsConfig,
    "train": TrainConfig,
    "ensemble": EnsembleConfig,
    "verification": VerificationConfig,
    "timeline": TimelineConfig,
}


@dataclass(frozen=True)
class Config:
    """The whole pipeline's configuration; see the module docstring."""

    data: DataConfig = field(default_factory=DataConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    statistics: StatisticsConfig = field(default_factory=StatisticsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    verification: VerificationConfig = field(default_factory=VerificationConfig)
    timeline: TimelineConfig = field(default_factory=TimelineConfig)

    def __post_init__(self) -> None:
        for name, cls in _SECTIONS.items():
            _check(
                isinstance(getattr(self, name), cls),
                name,
                getattr(self, name),
                f"must be a {cls.__name__}",
            )
        self._resolve_task_defaults()
        if self.ensemble.weights:
            _check(
                len(self.ensemble.weights) == len(self.train.architectures),
                "ensemble.weights",
                self.ensemble.weights,
                f"needs one weight per architecture ({len(self.train.architectures)})",
            )
        _check_physical_limits(self.audio, self.features)
        if self.ensemble.tta_windows:
            _check(
                self.audio.max_duration > self.audio.duration,
                "ensemble.tta_windows",
                True,
                "needs audio.max_duration > audio.duration (only one window is cached)",
            )

    def _resolve_task_defaults(self) -> None:
        """Fill the task-dependent ``None`` fields and check names against the task.

        ``ensemble.metric``, ``ensemble.pool`` and ``train.loss`` default to the task's
        (:attr:`emo_utils.tasks.Task.defaults`), ``train.monitor`` to ``ensemble.metric``;
        they are stored resolved, so a saved ``config.json`` holds the names.
        """
        task = _task(self.data.task)
        ens = self.ensemble
        resolved = {
            "metric": ens.metric if ens.metric is not None else task.defaults["ensemble.metric"],
            "pool": ens.pool if ens.pool is not None else task.defaults["ensemble.pool"],
        }
        ens = dataclasses.replace(ens, **resolved)
        tr = self.train
        tr = dataclasses.replace(
            tr,
            loss=tr.loss if tr.loss is not None else task.losses[0],
            monitor=tr.monitor if tr.monitor is not None else ens.metric,
        )
        object.__setattr__(self, "ensemble", ens)
        object.__setattr__(self, "train", tr)
        for name, value, choices in (
            ("ensemble.metric", ens.metric, task.metrics),
            ("train.monitor", tr.monitor, (*task.metrics, _MONITOR_LOSS)),
            ("ensemble.method", ens.method, (*task.ensembles, _BEST_METHOD)),
            ("train.loss", tr.loss, task.losses),
        ):
            _check(
                value in choices,
                name,
                value,
                f"must be one of {sorted(choices)} for data.task = {self.data.task!r}",
            )

    # ------------------------------------------------------------------ building
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        """Build from a nested mapping (unknown sections or fields are errors)."""
        if not isinstance(data, Mapping):
            raise ConfigError("<root>", data, "must be a mapping of sections")
        unknown = set(data) - set(_SECTIONS)
        if unknown:
            raise ConfigError(
                sorted(unknown)[0],
                data[sorted(unknown)[0]],
                f"unknown section; known: {list(_SECTIONS)}",
            )
        sections = {}
        for name, section_cls in _SECTIONS.items():
            values = data.get(name, {}) or {}
            if not isinstance(values, Mapping):
                raise ConfigError(name, values, "must be a mapping of fields")
            sections[name] = _build_section(section_cls, name, values)
        return cls(**sections)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Config:
        """Load a ``.json``, ``.yaml`` or ``.yml`` file.

        Raises
        ------
        ConfigError
            The file is missing, empty, not UTF-8 text (binary, UTF-16, latin-1), cannot be
            parsed, or holds an invalid value; the message names the file or field.
        """
        path = Path(path)
        if not path.is_file():
            raise ConfigError("<file>", os.fspath(path), "config file does not exist")
        text = _read_config_text(path)
        try:
            data = json.loads(text) if path.suffix == ".json" else _load_yaml(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ConfigError("<file>", os.fspath(path), f"cannot be parsed: {exc}") from exc
        if data is None:  # only comments or blank lines
            raise ConfigError(
                "<file>",
                os.fspath(path),
                "config file holds no settings (only blank lines or comments); write `{}` "
                "to mean every default, or use a preset",
            )
        return cls.from_dict(data)

    @classmethod
    def preset(cls, name: str) -> Config:
        """A named preset of :data:`PRESETS`.

        ``"default"`` (GPU, real data), ``"cpu_demo"`` (small and fast),
        ``"cpu_small_data"`` (CPU, a few hundred clips, no pretrained weights: CNNs plus
        classical models, the honest ``best`` ensemble), ``"cpu_families"`` (the mixed-family
        demo: a CNN, two classical models and a tiny random wav2vec2 the demo writes) or
        ``"cpu_demo_multilabel"`` (the multi-label demo).
        """
        try:
            overrides = PRESETS[name]
        except KeyError:
            raise ConfigError(
                "<preset>", name, f"unknown preset; known: {sorted(PRESETS)}"
            ) from None
        return cls().override(overrides)

    def override(self, overrides: Mapping[str, Any]) -> Config:
        """Return a copy with dotted-name overrides applied, e.g. ``{"train.epochs": 3}``.

        Values given as strings (from the command line) are parsed as YAML scalars or lists,
        so ``"3"``, ``"true"`` and ``"[a, b]"`` work.

        ``train.monitor`` follows ``ensemble.metric``: when the metric is overridden, the
        monitor is not, and the monitor was the old metric, the monitor becomes the new one.
        """
        data = self.to_dict()
        if "data.task" in overrides:
            # Fields still at the old task's defaults follow the new task's.
            old = _task(self.data.task)
            current = {
                "ensemble.metric": self.ensemble.metric,
                "ensemble.pool": self.ensemble.pool,
                "train.loss": self.train.loss,
            }
            defaults = {**old.defaults, "train.loss": old.losses[0]}
            for key, value in current.items():
                if key not in overrides and value == defaults.get(key):
                    section, _, name = key.partition(".")
                    data[section][name] = None
        metric_follows = "ensemble.metric" in overrides or data["ensemble"]["metric"] is None
        if (
            metric_follows
            and "train.monitor" not in overrides
            and self.train.monitor == self.ensemble.metric
        ):
            data["train"]["monitor"] = None
        for key, value in overrides.items():
            section, _, name = key.partition(".")
            if section not in _SECTIONS or not name:
                raise ConfigError(
                    key,
                    value,
                    f"override names must look like 'section.field' with section in {list(_SECTIONS)}",
                )
            if name not in {f.name for f in fields(_SECTIONS[section])}:
                raise ConfigError(key, value, "unknown field")
            if isinstance(value, str):
                with contextlib.suppress(yaml.YAMLError):
                    value = _load_yaml(value) if value.strip() else value
            data[section][name] = value
        return Config.from_dict(data)

    # ------------------------------------------------------------------ saving
    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain-Python dict (tuples become lists), suitable for JSON."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON text, ending with a newline."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: str | os.PathLike) -> None:
        """Atomically write as JSON (``.json``) or YAML (``.yaml``/``.yml``)."""
        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))
        else:
            write_json(path, self.to_dict())

    def feature_hash(self) -> str:
        """Hash of everything that changes a cached image: the audio and feature sections.

        ``audio.train_crop`` is left out: it only chooses which cached window training reads;
        so is ``audio.waveform_sample_rate`` (the waveform cache is keyed by the config
        :func:`emo_utils.features.waveform.waveform_config` derives, whose ``sample_rate``
        it is).  ``audio.pad`` counts only when it is not ``"zero"``, so caches built
        before the field existed keep their folder.
        """
        data = self.to_dict()
        audio = {
            k: v
            for k, v in data["audio"].items()
            if k not in _NOT_IN_FEATURE_HASH and _HASHED_UNLESS.get(k, _ALWAYS) != v
        }
        features = {
            k: v
            for k, v in data["features"].items()
            if k not in _FEATURES_NOT_IN_HASH and _FEATURES_HASHED_UNLESS.get(k, _ALWAYS) != v
        }
        payload = json.dumps({"audio": audio, "features": features}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _read_config_text(path: Path) -> str:
    """The text of a config file, or a :class:`ConfigError` naming the file and problem."""
    name = os.fspath(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError("<file>", name, f"cannot be read ({exc.strerror})") from exc
    if not raw.strip():
        raise ConfigError("<file>", name, "config file is empty; write `{}` to mean every default")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(raw) > 1 and raw[1:2] == b"\x00"):
        raise ConfigError("<file>", name, "config file is UTF-16 text; save it as UTF-8")
    if b"\x00" in raw:
        raise ConfigError("<file>", name, "config file is binary, not JSON or YAML text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            "<file>",
            name,
            f"config file is not UTF-8 text (undecodable byte at offset {exc.start}); "
            "save it as UTF-8",
        ) from exc
    return text.removeprefix("\ufeff")


def _check_physical_limits(audio: AudioConfig, features: FeatureConfig) -> None:
    """Checks that need both sections: ``fmax`` below Nyquist, no empty mel filter.

    Raises
    ------
    ConfigError
        ``features.fmax`` or ``features.fmin`` above ``audio.sample_rate / 2``, or a mel
        filter of the bank that covers no FFT bin (``features.n_fft`` too small for
        ``features.n_mels``; the message names the largest ``n_mels`` that works and the
        smallest power-of-two ``n_fft`` that does).
    """
    nyquist = audio.sample_rate / 2
    _check(
        features.fmax <= nyquist,
        "features.fmax",
        features.fmax,
        f"must be <= audio.sample_rate / 2 = {nyquist:g} Hz (0 means the Nyquist frequency)",
    )
    _check(
        features.fmin < nyquist,
        "features.fmin",
        features.fmin,
        f"must be < audio.sample_rate / 2 = {nyquist:g} Hz",
    )
    if _empty_mel_filters(
        audio.sample_rate, features.n_fft, features.n_mels, features.fmin, features.fmax
    ):
        n_fft = features.n_fft
        while n_fft < 2**20 and _empty_mel_filters(
            audio.sample_rate, n_fft, features.n_mels, features.fmin, features.fmax
        ):
            n_fft *= 2
        n_mels = features.n_mels
        while n_mels > 1 and _empty_mel_filters(
            audio.sample_rate, features.n_fft, n_mels, features.fmin, features.fmax
        ):
            n_mels -= 1
        raise ConfigError(
            "features.n_fft",
            features.n_fft,
            f"too small for features.n_mels = {features.n_mels} at {audio.sample_rate} Hz "
            f"(fmin {features.fmin:g}, fmax {features.fmax or nyquist:g}): some mel filters "
            f"would cover no FFT bin and give empty image rows; use n_fft >= {n_fft} or "
            f"n_mels <= {n_mels}",
        )


@functools.lru_cache(maxsize=64)
def _empty_mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> bool:
    """Whether :func:`librosa.filters.mel` has an all-zero filter (librosa's own test)."""
    import librosa  # the bank itself; imported only when a config is validated
    import numpy as np

    fmax = fmax or sample_rate / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns "Empty filters detected"
        weights = librosa.filters.mel(
            sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax
        )
    mel_f = librosa.mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax)
    return not bool(np.all((mel_f[:-2] == 0) | (weights.max(axis=1) > 0)))


def resolve_config(
    config_file: str | os.PathLike | None = None,
    *,
    preset: str = "default",
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """The config a notebook or command asks for: a file, else a preset, then overrides.

    Parameters
    ----------
    config_file : str or os.PathLike, optional
        JSON or YAML config file; when given, ``preset`` is ignored.
    preset : str
        Name in :data:`PRESETS` (``"default"`` or ``"cpu_demo"``).
    overrides : mapping, optional
        Dotted-name overrides, e.g. ``{"train.epochs": 2}``.
    """
    cfg = Config.from_file(config_file) if config_file else Config.preset(preset)
    return cfg.override(overrides) if overrides else cfg


def _build_section(section_cls: type, section: str, values: Mapping[str, Any]) -> Any:
    hints = get_type_hints(section_cls)
    known = {f.name for f in fields(section_cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{section}.{key}", value, f"unknown field; known: {sorted(known)}")
        kwargs[key] = _coerce(hints[key], value, f"{section}.{key}")
    return section_cls(**kwargs)


def _coerce(hint: Any, value: Any, name: str) -> Any:
    """Convert JSON/YAML values to the annotated type (lists to tuples, ints to floats)."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):  # ``X | None``: None stays None
        if value is None and type(None) in get_args(hint):
            return None
        (hint,) = [a for a in get_args(hint) if a is not type(None)]
        return _coerce(hint, value, name)
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(name, value, "must be a list")
        (item_type, _) = get_args(hint)
        return tuple(_coerce(item_type, v, name) for v in value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is str and value is None:
        return ""
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise ConfigError(name, value, f"must be of type {hint.__name__}")
    if hint is int and isinstance(value, bool):
        raise ConfigError(name, value, "must be of type int")
    return value
