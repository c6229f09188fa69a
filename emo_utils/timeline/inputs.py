"""What each model input of a run is, computed from audio windows as the cache computes it.

:data:`INPUT_KINDS` maps a ``ModelFamily.input`` (``image``, ``features``, ``waveform``,
``embeddings``) to a :class:`WindowInput`: the config that decodes it, the decoder of a file
and the store of decoded clips, each the cache's own function (images by
:func:`~emo_utils.features.compute_image` rounded to ``features.cache_dtype``, clip
statistics by :func:`~emo_utils.features.clip_statistics`, waveforms at
``audio.waveform_sample_rate``, frozen ``hfemb:`` embeddings by
:func:`~emo_utils.models.embeddings.extract_embeddings`), so
:class:`~emo_utils.timeline.RunClassifier` has no train/serve skew.

:data:`SHARED_STORES` computes the ``image`` and ``features`` inputs of many overlapping
windows cut from one stream together (the STFT frames they share once; a batch's
statistics at once), equal to the per-window stores within float32 rounding.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..audio import load_audio, load_clip
from ..config import Config
from ..features import FeatureStore, StatisticsStore, clip_statistics, compute_image, n_frames
from ..features.shared import window_images
from ..features.statistics import clips_statistics, statistic_names
from ..features.waveform import waveform_config
from ..models import resolve_architecture
from ..models.embeddings import EmbeddingStore, extract_embeddings, split_name
from ..models.hf import build_hf_model
from ..tasks import get_task

__all__ = ["INPUT_KINDS", "SHARED_STORES", "WindowInput"]


def _as_cached(images: np.ndarray, dtype: str) -> np.ndarray:
    """Images rounded to the cache's ``dtype`` as the cache stores them, held as float32.

    The values are the cache's (float16 by default); float32 storage spares every fold
    model's prediction the float16 -> float32 conversion of the same views.
    """
    return np.asarray(images).astype(dtype).astype(np.float32, copy=False)


def _image_store(names: Sequence[str], clips: Sequence[np.ndarray], config: Config) -> FeatureStore:
    """Images of clips at ``config.audio.sample_rate``, as the cache stores them."""
    features = config.features
    images = [
        _as_cached(
            compute_image(y, sample_rate=config.audio.sample_rate, config=features),
            features.cache_dtype,
        )
        for y in clips
    ]
    return FeatureStore.from_arrays(
        names,
        images,
        window_frames=n_frames(config.audio.n_samples, hop_length=features.hop_length),
        sample_rate=config.audio.sample_rate,
    )


def _statistics_store(
    names: Sequence[str], clips: Sequence[np.ndarray], config: Config
) -> StatisticsStore:
    """Clip statistics of the classical models."""
    rate = config.audio.sample_rate
    values = np.stack(
        [clip_statistics(y, sample_rate=rate, config=config.statistics) for y in clips]
    )
    return StatisticsStore(
        filenames=list(names),
        values=values,
        names=statistic_names(sample_rate=rate, config=config.statistics),
        reasons=[""] * len(names),
    )


def _shared_image_store(windows: np.ndarray, starts: np.ndarray, config: Config) -> FeatureStore:
    """:func:`_image_store` of windows of one stream, their shared frames computed once."""
    features = config.features
    images = _as_cached(
        window_images(windows, starts, sample_rate=config.audio.sample_rate, config=features),
        features.cache_dtype,
    )
    return FeatureStore.from_arrays(
        [f"window{i}" for i in range(len(windows))],
        list(images),
        window_frames=n_frames(config.audio.n_samples, hop_length=features.hop_length),
        sample_rate=config.audio.sample_rate,
    )


def _batch_statistics_store(
    windows: np.ndarray, starts: np.ndarray, config: Config
) -> StatisticsStore:
    """:func:`_statistics_store` of equal windows, summarised together (:func:`clips_statistics`)."""
    rate = config.audio.sample_rate
    if windows.shape[1] < config.statistics.n_fft:  # padded per clip by clip_statistics
        return _statistics_store([f"window{i}" for i in range(len(windows))], list(windows), config)
    return StatisticsStore(
        filenames=[f"window{i}" for i in range(len(windows))],
        values=clips_statistics(windows, sample_rate=rate, config=config.statistics),
        names=statistic_names(sample_rate=rate, config=config.statistics),
        reasons=[""] * len(windows),
    )


#: ``ModelFamily.input`` -> ``store(windows, starts, config)`` of full windows cut from one
#: stream (:meth:`RunClassifier.classify_stream_windows`); other kinds are computed per window.
SHARED_STORES: dict[str, Callable[[np.ndarray, np.ndarray, Config], Any]] = {
    "image": _shared_image_store,
    "features": _batch_statistics_store,
}


@dataclass(frozen=True)
class WindowInput:
    """How one model input kind (``ModelFamily.input``) is computed from audio.

    Attributes
    ----------
    config : callable
        ``config(run_config) -> Config`` whose ``audio`` section decodes the input (its
        sample rate, duration and padding) and whose ``features`` section computes it.
    decode : callable
        ``decode(path, config) -> (n,) float32``: a file decoded as the cache decodes it
        (``config`` is the one returned by :attr:`config`).
    store : callable
        ``store(names, clips, config) -> store``: the input of clips decoded at
        ``config.audio.sample_rate``, one row per clip.
    """

    config: Callable[[Config], Config]
    decode: Callable[[str, Config], np.ndarray]
    store: Callable[[Sequence[str], Sequence[np.ndarray], Config], Any]


@functools.lru_cache(maxsize=4)
def _frozen_model(source: str, weights_dir: str | None) -> Any:
    """The frozen transformer of an ``hfemb:`` model, loaded once per process."""
    return build_hf_model(source, n_outputs=2, pretrained=True, weights_dir=weights_dir)


def _embedding_store(names: Sequence[str], clips: Sequence[np.ndarray], config: Config) -> Any:
    """Frozen embeddings of clips for every ``hfemb:`` model of the run, as the cache has them.

    ``config`` is the waveform config of the run (:func:`waveform_config`); the clips'
    waveform store is made as the ``waveform`` input's, then each ``hfemb:`` name's layer is
    pooled by :func:`~emo_utils.models.embeddings.extract_embeddings` with the views the
    cache uses.
    """
    waveforms = _image_store(names, clips, config)
    task = get_task(config.data.task)
    tc = config.train
    vectors = {}
    for arch in tc.architectures:
        family, name = resolve_architecture(arch)
        if family.input != "embeddings":
            continue
        source, layer = split_name(name)
        pooled = extract_embeddings(
            _frozen_model(source, tc.weights_dir),
            waveforms,
            np.arange(len(waveforms)),
            crop=config.audio.crop,
            all_windows=bool(config.ensemble.tta_windows or task.whole_clip),
            batch_size=tc.batch_size,
        )
        vectors[name] = pooled[:, layer]
    return EmbeddingStore(filenames=list(names), vectors=vectors, reasons=[""] * len(names))


def _same(config: Config) -> Config:
    return config


def _decode_clip(path: str, config: Config) -> np.ndarray:
    return load_clip(path, config=config.audio)


def _decode_unpadded(path: str, config: Config) -> np.ndarray:
    audio = config.audio
    return load_audio(
        path,
        sample_rate=audio.sample_rate,
        max_duration=audio.max_duration,
        crop=audio.crop,
        res_type=audio.res_type,
    )


#: ``ModelFamily.input`` -> how :class:`RunClassifier` computes it (the cache's functions).
INPUT_KINDS: dict[str, WindowInput] = {
    "image": WindowInput(config=_same, decode=_decode_clip, store=_image_store),
    "features": WindowInput(config=_same, decode=_decode_unpadded, store=_statistics_store),
    "waveform": WindowInput(config=waveform_config, decode=_decode_clip, store=_image_store),
    "embeddings": WindowInput(config=waveform_config, decode=_decode_clip, store=_embedding_store),
}
