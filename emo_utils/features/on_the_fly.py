"""On-the-fly features (``train.features = "on_the_fly"``): images computed per batch.

Image models normally read windows of the image cache.  In on-the-fly mode they read
**waveform windows** instead and the image of every window is computed on the training
device, per batch, by the torch feature backend (:mod:`.torch_backend`), so waveform
augmentations (:mod:`emo_utils.train.on_the_fly`) can change the sound before the features.

* **Input** -- :data:`ON_THE_FLY_INPUT`, a waveform store like the ``hf:`` family's
  (:mod:`.waveform`) but at ``audio.sample_rate`` (the rate the images are computed at) and
  stored as **float32** (float16 would add quantisation noise about 66 dB below the signal,
  visible in the dB images).  :func:`on_the_fly_config` derives its config,
  :func:`build_on_the_fly_waveforms` builds it (its own cache folder, resumable like every
  cache); :func:`emo_utils.models.build_inputs` builds it when the run is on-the-fly.
* **Images** -- :func:`waveform_images` turns a batch ``(B, 1, 1, n + 1)`` of windows into
  ``(B, C, H, 1 + n // hop_length)``: the window's first ``n = duration * sample_rate``
  samples (the store's extra last sample is dropped) through
  :func:`.torch_backend.compute_images_tensor` with the run's ``features`` section (any
  ``features.backend``: the images are always the torch backend's, within 1e-3 dB of the
  librosa path).  Training applies it as a fastai batch transform
  (:class:`emo_utils.train.on_the_fly.OnTheFlyImages`), prediction as the first step of
  :class:`OnTheFlyModel`; both call this one function, so there is no train/serve skew.
* **Same images as the cache** -- when every clip is one window long
  (``audio.max_duration == audio.duration``, the default) the image of a window is the
  cached image.  With longer clips a window's image is computed from that window alone:
  its edges are zero-padded and ``top_db`` and the per-clip normalisation are the window's,
  where the cache computes them over the whole clip and crops frames.
* **Normalisation statistics** (``train.image_normalization``) come from the image cache
  of the same config (always built by the pipeline).

ONNX: ``export --format onnx`` exports the fold's image network (images in, as for any
run); ``predict --engine onnx`` of an on-the-fly run computes the images in torch
(:class:`OnTheFlyModel` around the ONNX Runtime model) and runs the network on ONNX Runtime.
The features themselves are not exported (``torch.stft`` of complex numbers and the CPU
tuning estimate of chroma).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import Config, FeatureConfig
from .build import build_cache
from .channels import channel_specs
from .store import FeatureStore
from .waveform import WAVEFORM_CHANNEL

__all__ = [
    "ON_THE_FLY_INPUT",
    "OnTheFlyModel",
    "build_on_the_fly_waveforms",
    "is_on_the_fly",
    "on_the_fly_config",
    "store_kind",
    "waveform_images",
]

#: Input kind (key of the pipeline's ``{input kind: store}``) of the on-the-fly waveforms.
ON_THE_FLY_INPUT = "on_the_fly_waveform"


def is_on_the_fly(config: Config) -> bool:
    """Whether image models compute their images per batch (``train.features``)."""
    return config.train.features == "on_the_fly"


def store_kind(family_input: str, config: Config) -> str:
    """The input store a model family reads in this run.

    ``family_input`` (``ModelFamily.input``), except that image models of an on-the-fly run
    read :data:`ON_THE_FLY_INPUT`.

    >>> store_kind("image", Config())
    'image'
    >>> store_kind("image", Config().override({"train.features": "on_the_fly"}))
    'on_the_fly_waveform'
    """
    if family_input == "image" and is_on_the_fly(config):
        return ON_THE_FLY_INPUT
    return family_input


def on_the_fly_config(config: Config) -> Config:
    """The config of the on-the-fly waveform cache: one float32 channel at ``audio.sample_rate``.

    Examples
    --------
    >>> cfg = on_the_fly_config(Config())
    >>> cfg.features.channels, cfg.features.cache_dtype, cfg.audio.sample_rate
    (('waveform',), 'float32', 22050)
    """
    features = FeatureConfig(
        channels=(WAVEFORM_CHANNEL,),
        hop_length=1,
        n_mels=1,
        normalization="none",
        cache_dtype="float32",
    )
    return dataclasses.replace(config, features=features)


def build_on_the_fly_waveforms(
    competition: Any,
    split: str,
    *,
    config: Config,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    wait: bool = True,
) -> FeatureStore:
    """Compute, resume or reuse the on-the-fly waveform cache of one split.

    Parameters are those of :func:`~emo_utils.features.build.build_cache`, with the run's
    ``config`` (the cache's own is :func:`on_the_fly_config`).

    Returns
    -------
    FeatureStore
        One row per row of the split's table; windows of shape
        ``(1, 1, duration * audio.sample_rate + 1)``, float32.
    """
    return build_cache(
        competition,
        split,
        config=on_the_fly_config(config),
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        progress=progress,
        wait=wait,
        label="on-the-fly waveforms",
    )


def waveform_images(x: torch.Tensor, *, sample_rate: int, config: FeatureConfig) -> torch.Tensor:
    """The images of a batch of waveform windows, computed on the batch's device.

    Parameters
    ----------
    x : torch.Tensor, shape (B, 1, 1, n + 1)
        Windows of the on-the-fly waveform store; the last sample (the one after the
        window) is dropped.
    sample_rate : int
        The windows' rate (``audio.sample_rate``).
    config : FeatureConfig
        The run's ``features`` section.

    Returns
    -------
    torch.Tensor, shape (B, len(config.channels), config.n_mels, 1 + n // hop_length)
        float32, on ``x``'s device; a plain tensor.
    """
    y = x.as_subclass(torch.Tensor).reshape(x.shape[0], -1)[:, :-1]
    # TorchSpectrum takes the clips as numpy (active frames and the tuning histogram are
    # found on the CPU): the waveforms (small next to the images) make one trip to the CPU
    # and back.
    from .torch_backend import compute_images_tensor

    with torch.autocast(y.device.type, enabled=False):
        return compute_images_tensor(
            y.detach().to(torch.float32).cpu().numpy().astype(np.float32, copy=False),
            sample_rate=sample_rate,
            config=config,
            specs=channel_specs(config.channels),
            device=y.device,
        )


class OnTheFlyModel(nn.Module):
    """``model(waveform_images(x))``: an image model fed waveform windows (prediction).

    Parameters
    ----------
    model : torch.nn.Module
        The image model (a :class:`~emo_utils.models.normalize.NormalizedModel`).
    sample_rate : int
        ``audio.sample_rate``.
    config : FeatureConfig
        The run's ``features`` section.

    Notes
    -----
    No parameters or buffers of its own: its state dict is the wrapped model's, with the
    prefix ``model.``.
    """

    def __init__(self, model: nn.Module, *, sample_rate: int, config: FeatureConfig) -> None:
        super().__init__()
        self.model = model
        self.sample_rate = int(sample_rate)
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_outputs)`` of waveform windows ``(B, 1, 1, n + 1)``."""
        return self.model(waveform_images(x, sample_rate=self.sample_rate, config=self.config))
