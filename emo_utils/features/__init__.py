"""Stage 2: audio -> image features, and the on-disk feature cache.

``spectrum`` holds the librosa-identical kernels (STFT power, mel and chroma filters,
dB scaling, tuning), ``channels`` the channel registry and ``compute_image``; ``backends``
the ``features.backend`` registry (``torch_backend``: the same images batched in torch, on
the CPU or a GPU); ``store``
the cache on disk and its read side (:class:`FeatureStore`), ``build`` the resumable
builder (its worker scheduler is the private ``_parallel``); ``statistics`` the per-clip
summary statistics of the classical models (:class:`StatisticsStore`); ``waveform`` the
waveform input of ``hf:`` models (a :class:`FeatureStore` of one ``"waveform"`` channel).
May import: ``config``, ``errors``, ``fileio``, ``audio``.
"""

from .build import build_cache
from .channels import (
    CHANNELS,
    FEATURES_VERSION,
    NORMALIZATIONS,
    ChannelSpec,
    channel_specs,
    compute_image,
    normalize,
    register_channel,
)
from .spectrum import Spectrum, n_frames, power_spectrogram, power_to_db
from .statistics import DESCRIPTORS, StatisticsStore, build_statistics, clip_statistics
from .store import (
    FeatureStore,
    cache_folder,
    default_cache_dir,
    open_cache,
    require_valid_training,
)
from .waveform import build_waveforms, waveform_config

__all__ = [
    "CHANNELS",
    "DESCRIPTORS",
    "FEATURES_VERSION",
    "NORMALIZATIONS",
    "ChannelSpec",
    "FeatureStore",
    "Spectrum",
    "StatisticsStore",
    "build_cache",
    "build_statistics",
    "build_waveforms",
    "cache_folder",
    "channel_specs",
    "clip_statistics",
    "compute_image",
    "default_cache_dir",
    "n_frames",
    "normalize",
    "open_cache",
    "power_spectrogram",
    "power_to_db",
    "register_channel",
    "require_valid_training",
    "waveform_config",
]
