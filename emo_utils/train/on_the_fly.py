"""On-the-fly training (``train.features = "on_the_fly"``): the fastai side.

:class:`OnTheFlyImages` is a fastai batch transform that turns the waveform windows of a
batch ``(B, 1, 1, n + 1)`` into images ``(B, C, H, T)`` on the batch's device
(:func:`emo_utils.features.on_the_fly.waveform_images`).  It runs on training and
validation batches alike (``split_idx = None``), after the waveform augmentations and
before the image augmentations of :mod:`.augment` (its ``order`` lies between theirs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastai.data.transforms import Transform
from fastai.torch_core import TensorImage

from ..config import Config, FeatureConfig
from ..errors import TrainingError
from ..features.on_the_fly import ON_THE_FLY_INPUT, is_on_the_fly, waveform_images
from ..models import model_inputs

__all__ = ["OnTheFlyImages", "on_the_fly_transforms", "require_on_the_fly_input"]


class OnTheFlyImages(Transform):
    """Waveform windows -> images, per batch, on the batch's device.

    Parameters
    ----------
    sample_rate : int
        ``audio.sample_rate``.
    config : FeatureConfig
        The run's ``features`` section.
    """

    split_idx, order = None, 5

    def __init__(self, *, sample_rate: int, config: FeatureConfig) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.config = config

    def encodes(self, x: TensorImage) -> TensorImage:
        """Images ``(B, C, H, 1 + n // hop_length)`` of windows ``(B, 1, 1, n + 1)``."""
        return TensorImage(waveform_images(x, sample_rate=self.sample_rate, config=self.config))


def on_the_fly_transforms(config: Config) -> list[Transform]:
    """The batch transforms of an on-the-fly run, before the image augmentations.

    Parameters
    ----------
    config : Config
        Its ``audio.sample_rate`` and ``features`` section.

    Returns
    -------
    list of fastai Transform
        :class:`~.waveform_augment.WaveformAugment` (training batches only, when
        ``train.waveform_augmentations`` is set), then :class:`OnTheFlyImages`.
    """
    sr = config.audio.sample_rate
    out: list[Transform] = []
    if config.train.waveform_augmentations:
        from .waveform_augment import WaveformAugment  # torch-audiomentations: only when used

        out.append(WaveformAugment(config.train.waveform_augmentations, sample_rate=sr))
    out.append(OnTheFlyImages(sample_rate=sr, config=config.features))
    return out


def require_on_the_fly_input(inputs: Mapping[str, Any], config: Config) -> None:
    """Fail unless an on-the-fly run with image models was given its waveform store.

    Raises
    ------
    TrainingError
        ``train.features = "on_the_fly"``, an image model, and no
        :data:`~emo_utils.features.on_the_fly.ON_THE_FLY_INPUT` in ``inputs``.
    """
    if not is_on_the_fly(config) or ON_THE_FLY_INPUT in inputs:
        return
    if "image" in model_inputs(config.train.architectures):
        raise TrainingError(
            f"train.features = 'on_the_fly': the image models need the input "
            f"{ON_THE_FLY_INPUT!r} (emo_utils.features.on_the_fly.build_on_the_fly_waveforms; "
            "emo_utils.models.build_inputs builds it), which was not given"
        )
