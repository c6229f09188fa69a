"""Stage 2: audio -> image features, and the on-disk feature cache.

``spectrum`` holds the librosa-identical kernels (STFT power, mel and chroma filters,
dB scaling, tuning), ``channels`` the channel registry and ``compute_image``; ``store``
the read side of the cache (:class:`FeatureStore`) and ``build`` the resumable builder.
May import: ``config``, ``errors``, ``fileio``, ``audio``.
"""

from .spectrum import (
    CHANNELS,
    FEATURES_VERSION,
    NORMALIZATIONS,
    ChannelSpec,
    Spectrum,
    compute_image,
    n_frames,
    normalize,
    power_spectrogram,
    power_to_db,
    register_channel,
)
from .store import FeatureStore, build_cache, cache_folder, open_cache, require_valid_training

__all__ = [
    "CHANNELS",
    "FEATURES_VERSION",
    "NORMALIZATIONS",
    "ChannelSpec",
    "FeatureStore",
    "Spectrum",
    "build_cache",
    "cache_folder",
    "compute_image",
    "n_frames",
    "normalize",
    "open_cache",
    "power_spectrogram",
    "power_to_db",
    "register_channel",
    "require_valid_training",
]
