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
``time_stretch`` :class:`TimeStretch`: 0.8x to 1.25x the tempo, the pitch kept (torchaudio's
                 phase vocoder), centred in the window (same length)
===============  ==========================================================================

torch-audiomentations has no time stretch, so :class:`TimeStretch` is one of its
``BaseWaveformTransform`` s (same probability, seeding and ``Compose`` as the others) over
:func:`torchaudio.functional.phase_vocoder` (audiomentations has one too, on the CPU, but
its install downgrades ``soxr``, which the decoder's resampling uses).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch_audiomentations as ta
import torchaudio
from fastai.data.transforms import Transform
from fastai.torch_core import TensorImage
from torch import nn
from torch_audiomentations.core.transforms_interface import BaseWaveformTransform
from torch_audiomentations.utils.object_dict import ObjectDict

from ..errors import ConfigError

__all__ = [
    "WAVEFORM_AUGMENTATIONS",
    "TimeStretch",
    "WaveformAugment",
    "parse_waveform_augmentations",
]


class TimeStretch(BaseWaveformTransform):
    """Change the tempo of each example, not its pitch; the length stays the same.

    Each selected example gets a rate drawn log-uniformly from ``[min_rate, max_rate]``
    (torch's generator: ``train.seed`` fixes it).  Its STFT (``n_fft``, hop ``n_fft // 4``,
    Hann window) goes through :func:`torchaudio.functional.phase_vocoder` and back
    (:func:`torch.istft`), giving ``n / rate`` samples: a slower clip (rate < 1) keeps its
    centre ``n`` samples, a faster one is zero-padded equally on both sides.

    Parameters
    ----------
    min_rate, max_rate : float
        Tempo factors, ``0 < min_rate < max_rate`` (> 1 is faster).
    n_fft : int
        Phase-vocoder frame (512 samples: 32 ms at 16 kHz).
    p : float
        Probability per example.

    Raises
    ------
    ConfigError
        ``min_rate`` and ``max_rate`` not ``0 < min_rate < max_rate``.
    """

    supported_modes = frozenset({"per_example"})
    supports_multichannel = True
    requires_sample_rate = False
    supports_target = False
    requires_target = False

    def __init__(
        self,
        min_rate: float = 0.8,
        max_rate: float = 1.25,
        *,
        n_fft: int = 512,
        p: float = 0.5,
        sample_rate: int | None = None,
        output_type: str | None = None,
    ) -> None:
        super().__init__(mode="per_example", p=p, sample_rate=sample_rate, output_type=output_type)
        if not 0.0 < min_rate < max_rate:
            raise ConfigError(
                "time_stretch rates", (min_rate, max_rate), "need 0 < min_rate < max_rate"
            )
        self.min_rate, self.max_rate, self.n_fft = float(min_rate), float(max_rate), int(n_fft)

    def randomize_parameters(
        self,
        samples: torch.Tensor = None,
        sample_rate: int | None = None,
        targets: torch.Tensor | None = None,
        target_rate: int | None = None,
    ) -> None:
        """Draw one rate per example (log-uniform)."""
        low, high = math.log(self.min_rate), math.log(self.max_rate)
        log_rates = torch.distributions.Uniform(low, high).sample((samples.size(0),))
        self.transform_parameters["rates"] = log_rates.exp()

    def apply_transform(
        self,
        samples: torch.Tensor = None,
        sample_rate: int | None = None,
        targets: torch.Tensor | None = None,
        target_rate: int | None = None,
    ) -> ObjectDict:
        """``samples`` ``(B, C, n)``, each example stretched by its rate.

        A window no longer than ``n_fft`` samples (no STFT frame to stretch) is returned as it is.
        """
        n, hop = samples.shape[-1], self.n_fft // 4
        if n <= self.n_fft:
            return ObjectDict(
                samples=samples, sample_rate=sample_rate, targets=targets, target_rate=target_rate
            )
        window = torch.hann_window(self.n_fft, device=samples.device)
        advance = torch.linspace(0, math.pi * hop, self.n_fft // 2 + 1, device=samples.device)
        out = torch.zeros_like(samples)
        for i, rate in enumerate(self.transform_parameters["rates"].tolist()):
            spec = torch.stft(
                samples[i].float(), self.n_fft, hop, window=window, return_complex=True
            )
            spec = torchaudio.functional.phase_vocoder(spec, rate, advance[:, None])
            length = max(1, round(n / rate))
            y = torch.istft(spec, self.n_fft, hop, window=window, length=length)
            if length >= n:
                start = (length - n) // 2
                out[i] = y[..., start : start + n]
            else:
                start = (n - length) // 2
                out[i, :, start : start + length] = y
        return ObjectDict(
            samples=out, sample_rate=sample_rate, targets=targets, target_rate=target_rate
        )


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


def _time_stretch(p: float, sample_rate: int) -> nn.Module:
    return TimeStretch(0.8, 1.25, p=p, sample_rate=sample_rate, output_type="dict")


#: Name -> ``make(probability, sample_rate)``: a torch-audiomentations transform of
#: ``(B, 1, n)`` batches, applied per example with that probability.
WAVEFORM_AUGMENTATIONS: dict[str, Callable[[float, int], nn.Module]] = {
    "gain": _gain,
    "shift": _shift,
    "noise": _noise,
    "pitch_shift": _pitch_shift,
    "time_stretch": _time_stretch,
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
