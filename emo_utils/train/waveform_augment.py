"""Waveform augmentations of on-the-fly runs, applied to the sound before the features.

``train.waveform_augmentations`` lists ``"name:probability"`` entries of
:data:`WAVEFORM_AUGMENTATIONS`; each is a `torch-audiomentations
<https://github.com/asteroid-team/torch-audiomentations>`_ transform applied per example
with that probability, on the batch's device, to training batches only
(:class:`WaveformAugment`, ``split_idx = 0``): validation, OOF and test predictions never
see them.  They draw from torch's random generator, so ``train.seed`` (``set_seed``) fixes
them.

===============  ==========================================================================
``gain``         ``Gain``: -18 to +6 dB
``shift``        ``Shift``: roll by up to half the window, either way
``noise``        ``AddColoredNoise``: coloured noise (spectral slope -2 to 2) at 3-30 dB SNR
``pitch_shift``  ``PitchShift``: -4 to +4 semitones (same length)
===============  ==========================================================================

Time stretching is not offered: torch-audiomentations has no time stretch (audiomentations
has one, on the CPU, but its install downgrades ``soxr``, which the decoder's resampling
uses).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch_audiomentations as ta
from fastai.data.transforms import Transform
from fastai.torch_core import TensorImage
from torch import nn

from ..errors import ConfigError

__all__ = ["WAVEFORM_AUGMENTATIONS", "WaveformAugment", "parse_waveform_augmentations"]


def _gain(p: float, sample_rate: int) -> nn.Module:
    return ta.Gain(min_gain_in_db=-18.0, max_gain_in_db=6.0, p=p, output_type="dict")


def _shift(p: float, sample_rate: int) -> nn.Module:
    return ta.Shift(min_shift=-0.5, max_shift=0.5, rollover=True, p=p, output_type="dict")


def _noise(p: float, sample_rate: int) -> nn.Module:
    return ta.AddColoredNoise(
        min_snr_in_db=3.0, max_snr_in_db=30.0, p=p, sample_rate=sample_rate, output_type="dict"
    )


def _pitch_shift(p: float, sample_rate: int) -> nn.Module:
    return ta.PitchShift(
        min_transpose_semitones=-4.0,
        max_transpose_semitones=4.0,
        p=p,
        sample_rate=sample_rate,
        output_type="dict",
    )


#: Name -> ``make(probability, sample_rate)``: a torch-audiomentations transform of
#: ``(B, 1, n)`` batches, applied per example with that probability.
WAVEFORM_AUGMENTATIONS: dict[str, Callable[[float, int], nn.Module]] = {
    "gain": _gain,
    "shift": _shift,
    "noise": _noise,
    "pitch_shift": _pitch_shift,
}


def parse_waveform_augmentations(entries: Sequence[str]) -> list[tuple[str, float]]:
    """``[(name, probability)]`` of ``train.waveform_augmentations`` entries ``"name:p"``.

    Raises
    ------
    ConfigError
        Naming ``train.waveform_augmentations``: an unknown name, or a probability that
        is not a number in (0, 1].

    Examples
    --------
    >>> parse_waveform_augmentations(["gain:0.5", "noise:1"])
    [('gain', 0.5), ('noise', 1.0)]
    """
    out = []
    for entry in entries:
        name, _sep, prob = str(entry).partition(":")
        if name not in WAVEFORM_AUGMENTATIONS:
            raise ConfigError(
                "train.waveform_augmentations",
                entry,
                f"unknown augmentation {name!r}; known: {sorted(WAVEFORM_AUGMENTATIONS)}",
            )
        try:
            p = float(prob)
        except ValueError:
            p = float("nan")
        if not 0.0 < p <= 1.0:
            raise ConfigError(
                "train.waveform_augmentations",
                entry,
                "must be 'name:probability' with a probability in (0, 1], e.g. 'gain:0.5'",
            )
        out.append((name, p))
    return out


class WaveformAugment(Transform):
    """The configured waveform augmentations of a training batch ``(B, 1, 1, n)``.

    Parameters
    ----------
    entries : sequence of str
        ``train.waveform_augmentations`` (``"name:probability"``), applied in this order.
    sample_rate : int
        ``audio.sample_rate``.
    """

    split_idx, order = 0, 1

    def __init__(self, entries: Sequence[str], *, sample_rate: int) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.augment = ta.Compose(
            [
                WAVEFORM_AUGMENTATIONS[name](p, self.sample_rate)
                for name, p in parse_waveform_augmentations(entries)
            ],
            output_type="dict",
        )

    def encodes(self, x: TensorImage) -> TensorImage:
        """The batch with each clip augmented (same shape, device and dtype)."""
        y = x.as_subclass(torch.Tensor)
        b, _c, _h, n = y.shape
        out = self.augment(y.reshape(b, 1, n).float(), sample_rate=self.sample_rate).samples
        return TensorImage(out.reshape(y.shape).to(y.dtype))
