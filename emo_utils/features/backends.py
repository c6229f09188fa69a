"""Feature backends: what computes the images of decoded clips (``features.backend``).

:data:`BACKENDS` maps a name to a :class:`FeatureBackend`:

* ``"librosa"`` (default, the exact reference) -- numpy/librosa, one clip at a time
  (:func:`emo_utils.features.channels.compute_image`); the cache builder spreads the clips
  over worker processes.
* ``"torch"`` -- the clips of a chunk as one batch in torch, on the CPU or a GPU
  (``features.device``; :mod:`.torch_backend`), in the building process (torch's threads or
  the GPU do the parallel work).  Agrees with ``"librosa"`` to 1e-3 dB (mel, STFT) and 1e-3
  (chroma), not bit for bit, so the backend is part of the cache key
  (:meth:`emo_utils.config.Config.feature_hash`).

Torch is imported only when the torch backend runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..config import FeatureConfig
from .channels import ChannelSpec, _compute_image

__all__ = ["BACKENDS", "FeatureBackend", "compute_images"]


@dataclass(frozen=True)
class FeatureBackend:
    """One entry of :data:`BACKENDS`.

    Attributes
    ----------
    images : callable
        ``images(clips, *, sample_rate, config, specs) -> list of numpy.ndarray``: the image
        ``(len(specs), n_mels, 1 + n // hop_length)`` float32 of each clip (shape ``(n,)``).
    batched : bool
        ``False``: the cache builder calls it clip by clip (a clip it cannot process gets its
        own reason), with BLAS limited to one thread, and spreads chunks over worker
        processes.  ``True``: it gets the decoded clips of a chunk as one batch and
        parallelises by itself (threads, a GPU), in the building process only.
    """

    images: Callable[..., list[np.ndarray]]
    batched: bool


def _librosa_images(
    clips: Sequence[np.ndarray],
    *,
    sample_rate: int,
    config: FeatureConfig,
    specs: Sequence[ChannelSpec],
) -> list[np.ndarray]:
    return [_compute_image(y, sample_rate=sample_rate, config=config, specs=specs) for y in clips]


#: Samples of one torch batch at most (about 1.5 minutes at 22.05 kHz times 16 clips): the
#: float64 frames of the STFT take ``8 * n_fft / hop_length`` bytes per sample.
TORCH_BATCH_SAMPLES = 1 << 21


def _torch_images(
    clips: Sequence[np.ndarray],
    *,
    sample_rate: int,
    config: FeatureConfig,
    specs: Sequence[ChannelSpec],
) -> list[np.ndarray]:
    from .torch_backend import compute_images_torch, resolve_device

    device = resolve_device(config.device)
    out: list[np.ndarray | None] = [None] * len(clips)
    by_length: dict[int, list[int]] = {}
    for k, y in enumerate(clips):
        by_length.setdefault(len(y), []).append(k)
    for length, members in by_length.items():
        step = max(1, TORCH_BATCH_SAMPLES // max(1, length))
        for start in range(0, len(members), step):
            batch = members[start : start + step]
            images = compute_images_torch(
                np.stack([clips[k] for k in batch]),
                sample_rate=sample_rate,
                config=config,
                specs=specs,
                device=device,
            )
            for k, image in zip(batch, images, strict=True):
                out[k] = image
    return [image for image in out if image is not None]


#: Backend name -> :class:`FeatureBackend`; ``features.backend`` picks from it.
BACKENDS: dict[str, FeatureBackend] = {
    "librosa": FeatureBackend(_librosa_images, batched=False),
    "torch": FeatureBackend(_torch_images, batched=True),
}


def compute_images(
    clips: Sequence[np.ndarray],
    *,
    sample_rate: int,
    config: FeatureConfig,
    specs: Sequence[ChannelSpec],
) -> list[np.ndarray]:
    """The images of ``clips`` by the backend ``config.backend``.

    Parameters
    ----------
    clips : sequence of numpy.ndarray, each shape (n_i,)
        Mono clips at ``sample_rate`` (any lengths; the torch backend batches equal ones).
    sample_rate : int
    config : FeatureConfig
    specs : sequence of ChannelSpec
        ``channel_specs(config.channels)``.

    Returns
    -------
    list of numpy.ndarray, each shape (len(specs), config.n_mels, 1 + n_i // hop_length)
        float32, in the order of ``clips``.
    """
    return BACKENDS[config.backend].images(
        clips, sample_rate=sample_rate, config=config, specs=specs
    )
