"""Audio-appropriate batch augmentation for spectrogram images and waveforms.

Every augmentation is a fastai batch :class:`~fastai.data.transforms.Transform` applied
to training batches only (``split_idx = 0``) on the batch's device, to images of shape
``(B, C, H, T)`` (``H`` frequency bins, ``T`` frames) or waveform windows ``(B, 1, 1, T)``
(``T`` samples, :mod:`emo_utils.features.waveform`).  They are built from
:class:`~emo_utils.config.TrainConfig` through the :data:`AUGMENTATIONS` registry, which
also says which input kinds (``ModelFamily.input``) each one applies to; a value of 0
switches one off.  Mixup is fastai's :class:`~fastai.callback.mixup.MixUp` callback
(``train.mixup`` is its alpha) and mixes images and waveforms alike.

There are deliberately no flips or rotations: a flipped spectrogram is a different sound.

==============  ==================================================================  ==========
``time_shift``  roll each image along time by up to ``time_shift * T`` frames        image,
                (a waveform by as many samples)                                      waveform
``freq_mask``   SpecAugment frequency mask: up to ``freq_mask * H`` adjacent bins    image
``time_mask``   SpecAugment time mask: up to ``time_mask * T`` adjacent frames       image
==============  ==================================================================  ==========

The SpecAugment masks are image-only: on a waveform a "frequency" axis does not exist and
a time mask would cut a hole of constant value into the signal.  The ``hf:`` models mask
their own latent time steps in training instead (transformers' ``mask_time_prob``).

Masked cells take the mean of their image channel, so a mask removes information without
adding an artificial silence or edge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from fastai.data.transforms import Transform
from fastai.torch_core import TensorImage

from ..config import TrainConfig

__all__ = [
    "AUGMENTATIONS",
    "Augmentation",
    "FrequencyMask",
    "TimeMask",
    "TimeShift",
    "batch_augmentations",
]


class TimeShift(Transform):
    """Roll every image of a batch along time by its own random number of frames.

    Parameters
    ----------
    max_fraction : float
        Largest shift, as a fraction of the frames; shifts are uniform in
        ``[-max_fraction * T, max_fraction * T]``.
    """

    split_idx, order = 0, 10

    def __init__(self, max_fraction: float) -> None:
        super().__init__()
        self.max_fraction = float(max_fraction)

    def encodes(self, x: TensorImage) -> TensorImage:
        """The ``(B, C, H, T)`` batch with each image rolled along time by its own shift.

        ``x`` is returned unchanged when the largest shift rounds down to 0 frames.
        """
        b, t = x.shape[0], x.shape[-1]
        max_shift = int(self.max_fraction * t)
        if max_shift == 0:
            return x
        shifts = torch.randint(-max_shift, max_shift + 1, (b,), device=x.device)
        source = (torch.arange(t, device=x.device)[None, :] - shifts[:, None]) % t
        return x.gather(-1, source[:, None, None, :].expand_as(x))


class _AxisMask(Transform):
    """One random band of adjacent cells along ``axis``, per image, set to the channel mean."""

    split_idx, order = 0, 20
    axis = -1

    def __init__(self, max_fraction: float) -> None:
        super().__init__()
        self.max_fraction = float(max_fraction)

    def encodes(self, x: TensorImage) -> TensorImage:
        b, size = x.shape[0], x.shape[self.axis]
        max_width = int(self.max_fraction * size)
        if max_width == 0:
            return x
        width = torch.randint(0, max_width + 1, (b,), device=x.device)
        start = (torch.rand(b, device=x.device) * (size - width + 1)).long()
        pos = torch.arange(size, device=x.device)[None, :]
        band = (pos >= start[:, None]) & (pos < (start + width)[:, None])  # (B, size)
        shape = [b, 1, 1, 1]
        shape[self.axis] = size
        fill = x.mean(dim=(-2, -1), keepdim=True)
        return torch.where(band.view(shape), fill, x)


class FrequencyMask(_AxisMask):
    """SpecAugment frequency mask: up to ``max_fraction`` of the bins, per image."""

    axis = -2


class TimeMask(_AxisMask):
    """SpecAugment time mask: up to ``max_fraction`` of the frames, per image."""

    axis = -1


@dataclass(frozen=True)
class Augmentation:
    """One :data:`AUGMENTATIONS` entry.

    Attributes
    ----------
    make : callable
        Transform class taking the config field's value.
    inputs : tuple of str
        The input kinds (``ModelFamily.input``) it applies to.
    """

    make: Callable[[float], Transform]
    inputs: tuple[str, ...]


#: ``TrainConfig`` field -> the transform taking that field's value, and its input kinds.
AUGMENTATIONS: dict[str, Augmentation] = {
    "time_shift": Augmentation(TimeShift, ("image", "waveform")),
    "freq_mask": Augmentation(FrequencyMask, ("image",)),
    "time_mask": Augmentation(TimeMask, ("image",)),
}


def batch_augmentations(config: TrainConfig, input_kind: str = "image") -> list[Transform]:
    """The switched-on batch transforms of ``config`` that apply to ``input_kind``.

    Parameters
    ----------
    config : TrainConfig
        Its fields named in :data:`AUGMENTATIONS` (0 switches one off).
    input_kind : str
        The model family's input (``"image"``, ``"waveform"``).
    """
    return [
        entry.make(getattr(config, name))
        for name, entry in AUGMENTATIONS.items()
        if getattr(config, name) > 0 and input_kind in entry.inputs
    ]
