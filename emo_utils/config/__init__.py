"""One frozen, validated configuration for the whole pipeline.

A :class:`Config` has eight sections, each a frozen dataclass validated when it is built:

* :class:`DataConfig`     -- where the competition files are and what their columns are called;
* :class:`AudioConfig`    -- decoding, resampling and fitting clips to a fixed duration;
* :class:`FeatureConfig`  -- the STFT and the channels of the image;
* :class:`StatisticsConfig` -- the per-clip statistics of the classical models;
* :class:`TrainConfig`    -- folds, architectures, optimisation and augmentation;
* :class:`EnsembleConfig` -- test-time averaging, the ensemble method and the metric;
* :class:`VerificationConfig` -- the ``verification`` task (trials, embeddings, losses);
* :class:`TimelineConfig` -- timelines, events and their evaluation on long recordings.

Every run folder holds the ``config.json`` it ran with; inference rebuilds the pipeline from
it (as timm's ``train.py`` does with ``args.yaml``).  Invalid values raise
:class:`~emo_utils.errors.ConfigError` naming the dotted field, the value and the reason.

Names of crop policies, normalisations, metrics, ensemble methods, stacking models, tasks and
statistics descriptors are checked against the registries that implement them
(:func:`registry_names`), so a new registry entry is accepted by the config without editing
this module.  The registries are imported when a config is validated, never when this module
is imported: ``config`` stays the bottom of the import graph.

Examples
--------
>>> from emo_utils.config import Config
>>> cfg = Config.preset("cpu_demo").override({"train.epochs": 2, "train.architectures": ["resnet18"]})
>>> cfg.train.epochs
2
"""

from __future__ import annotations

# The package re-exports every public name of the former single module ``config.py``;
# ``X as X`` marks those outside ``__all__`` (as before) as explicit re-exports.
from ._validate import registry_names
from .core import Config, resolve_config
from .presets import PRESETS as PRESETS
from .sections import CACHE_DTYPES as CACHE_DTYPES
from .sections import POOLS as POOLS
from .sections import PSEUDO_SPLITS as PSEUDO_SPLITS
from .sections import TRAIN_FEATURES as TRAIN_FEATURES
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

__all__ = [
    "AudioConfig",
    "Config",
    "DataConfig",
    "EnsembleConfig",
    "FeatureConfig",
    "StatisticsConfig",
    "TimelineConfig",
    "TrainConfig",
    "VerificationConfig",
    "registry_names",
    "resolve_config",
]
