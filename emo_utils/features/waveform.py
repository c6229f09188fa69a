"""The waveform input of ``hf:`` models: mono clips cached as float16, like the images.

The waveform store is a :class:`~emo_utils.features.store.FeatureStore` whose image is the
clip itself: one channel (``"waveform"``), height 1, one frame per sample.  It is built by
:func:`~emo_utils.features.build.build_cache` from the config :func:`waveform_config`
derives from the run's, so it gets its own cache folder (``CACHE/<hash>/<split>/``) and
everything the image cache has: resume by chunks, locks, atomic writes, checksums, failed
rows with reasons, and the same crop policies, random training windows
(``audio.max_duration > audio.duration`` with ``audio.train_crop = "random"``), test-time
windows (``ensemble.tta_windows``) and pooling as the images.

What :func:`waveform_config` changes in the run's config:

* ``audio.sample_rate`` becomes ``audio.waveform_sample_rate`` (default 16000 Hz: the rate
  of wav2vec2, HuBERT, WavLM and AST; each ``hf:`` model's feature extractor is checked
  against it before training);
* ``features`` becomes one ``"waveform"`` channel with ``hop_length = 1`` and ``n_mels = 1``,
  no normalisation, float16 storage, every other image setting at its default, so runs with
  different image settings share one waveform cache.

Decoding, crop, ``audio.duration``, ``audio.max_duration``, ``audio.min_duration`` and
``audio.pad`` (``"tile"`` repeats a short clip instead of padding it with zeros) are the
run's.

**Window length.**  The cache keeps the frame convention of every image: a clip of ``n``
samples has ``T = 1 + n // hop_length = n + 1`` frames, frame ``t`` centred on sample ``t``.
A window is therefore ``audio.duration * waveform_sample_rate + 1`` samples (80 001 for
5 s at 16 kHz): the window's samples and, last, the sample after it (0 at the end of a
clip).  The models take any length; the extra sample moves nothing.

**Batches.**  A window reads as ``(1, 1, T)`` float32 and a batch as ``(B, 1, 1, T)``: the
shape the image pipeline (datasets, augmentations, ``predict_rows``, ``tta_views``) already
handles.  :class:`emo_utils.models.hf.HFAudioClassifier` takes it as ``(B, T)``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from ..config import Config, FeatureConfig
from .build import build_cache
from .store import FeatureStore

__all__ = ["WAVEFORM_CHANNEL", "build_waveforms", "waveform_config"]

#: The channel of the waveform store (:data:`emo_utils.features.channels.CHANNELS`).
WAVEFORM_CHANNEL = "waveform"


def waveform_config(config: Config) -> Config:
    """The config the waveform cache of ``config``'s run is built from (see the module doc).

    Examples
    --------
    >>> cfg = waveform_config(Config())
    >>> cfg.audio.sample_rate, cfg.features.channels, cfg.features.hop_length
    (16000, ('waveform',), 1)
    """
    audio = dataclasses.replace(config.audio, sample_rate=config.audio.waveform_sample_rate)
    features = FeatureConfig(
        channels=(WAVEFORM_CHANNEL,),
        hop_length=1,
        n_mels=1,
        normalization="none",
        cache_dtype="float16",
    )
    return dataclasses.replace(config, audio=audio, features=features)


def build_waveforms(
    competition: Any,
    split: str,
    *,
    config: Config,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    wait: bool = True,
) -> FeatureStore:
    """Compute, resume or reuse the waveform cache of one split.

    Parameters are those of :func:`~emo_utils.features.build.build_cache`, with the run's
    ``config`` (the waveform settings are derived by :func:`waveform_config`).

    Returns
    -------
    FeatureStore
        One row per row of the split's table; windows of shape
        ``(1, 1, duration * waveform_sample_rate + 1)``; ``sample_rate`` is
        ``audio.waveform_sample_rate``.
    """
    return build_cache(
        competition,
        split,
        config=waveform_config(config),
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        progress=progress,
        wait=wait,
        label="waveforms",
    )
