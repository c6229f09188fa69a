"""The ``"torch"`` feature backend: the images of a batch of clips computed in torch.

The same images as :func:`emo_utils.features.channels.compute_image` (the ``"librosa"``
backend, the exact reference), computed for a batch of equally long clips at once, on the
CPU (torch's own threads) or a GPU (``features.device``):

* **STFT** -- :func:`torch.stft` with librosa's Hann window (:func:`.spectrum._stft_window`,
  centred in ``n_fft``), centred frames and zero padding (``pad_mode="constant"``), in
  float64 and rounded to ``complex64``, as :func:`librosa.stft` computes it for a float32
  clip.  A float32 FFT is not accurate enough: bins near the ``top_db`` floor are then off by
  up to 5e-3 dB (measured on the test signals), above the 1e-3 dB budget.
* **mel** and **chroma** -- librosa's own filter banks (:func:`.spectrum.mel_filters`,
  :func:`.spectrum.chroma_filters`, i.e. :func:`librosa.filters.mel` and
  :func:`librosa.filters.chroma`) applied as float32 matrix products.
* **dB** -- ``10 log10(max(amin, S))`` (``ref=1.0``) with ``top_db`` applied **per clip**
  (to ``top_db`` below that clip's own maximum, never the batch's).
* **chroma tuning** -- not ported: each clip's tuning is estimated **on the CPU** by
  :func:`.spectrum.estimate_tuning` (piptrack's peaks, librosa's ``pitch_tuning``) from the
  same float32 power spectrogram the torch STFT computed (copied to the CPU), so the chroma
  filter bank of each clip is the one the librosa path picks.
* **resizing** -- ``torch.nn.functional.interpolate(mode="bilinear", antialias=True)``,
  the convention of :func:`.spectrum.resize_rows`.
* **normalisation** -- :data:`TORCH_NORMALIZATIONS` (the four built-in methods, per clip and
  channel).

A channel without a torch implementation in :data:`TORCH_CHANNELS` (``"mfcc"``, ``"delta"``,
``"waveform"``, a channel registered by the user) and a normalisation without one in
:data:`TORCH_NORMALIZATIONS` are computed the librosa way for that channel, clip by clip on
the CPU, so every configuration works; only the listed ones are batched.

Parity with the librosa path on generated audio (``tests/test_torch_features.py``): mel
and STFT dB within 1e-3 dB, chroma within 1e-3 (float32).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..config import FeatureConfig
from .channels import ChannelSpec, chroma_channel, mel_channel, normalize, stft_channel
from .spectrum import (
    AMIN_AMPLITUDE,
    AMIN_POWER,
    Spectrum,
    _stft_window,
    active_frames,
    chroma_filters,
    estimate_tuning,
    mel_filters,
)

__all__ = [
    "TORCH_CHANNELS",
    "TORCH_NORMALIZATIONS",
    "TorchSpectrum",
    "compute_images_tensor",
    "compute_images_torch",
    "register_torch_channel",
    "resolve_device",
]

#: Librosa channel function (:attr:`ChannelSpec.compute`) -> its torch version
#: ``compute(*, spectrum: TorchSpectrum) -> Tensor (B, rows, T)``.  Keyed by the function, not
#: the name, so a channel re-registered under a built-in name is never given the built-in's
#: torch version.
TORCH_CHANNELS: dict[Callable[..., np.ndarray], Callable[..., torch.Tensor]] = {}


def register_torch_channel(
    mirrors: Callable[..., np.ndarray],
) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """Decorator adding the torch version of the channel function ``mirrors``.

    Parameters
    ----------
    mirrors : callable
        The channel's librosa implementation (what ``register_channel`` registered); the
        torch version must agree with it (within float32 rounding).

    Notes
    -----
    The decorated ``compute(*, spectrum)`` receives a :class:`TorchSpectrum` of a batch and
    returns a tensor of shape ``(B, rows, T)``.
    """

    def deco(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        TORCH_CHANNELS[mirrors] = fn
        return fn

    return deco


def resolve_device(device: str) -> torch.device:
    """``features.device`` as a :class:`torch.device` (``"auto"``: CUDA when present, else CPU)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


#: Constants (STFT windows, filter banks) already on a device, by key.
_CONSTANTS: dict[tuple, torch.Tensor] = {}
_MAX_CONSTANTS = 256


def _constant(
    key: tuple, *, make: Callable[[], np.ndarray], device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """``make()`` as a tensor on ``device``, built once per ``(key, device, dtype)``."""
    full = (*key, str(device), dtype)
    tensor = _CONSTANTS.get(full)
    if tensor is None:
        if len(_CONSTANTS) >= _MAX_CONSTANTS:
            _CONSTANTS.clear()
        tensor = torch.as_tensor(np.array(make()), dtype=dtype, device=device)
        _CONSTANTS[full] = tensor
    return tensor


def power_to_db(power: torch.Tensor, *, amin: float, top_db: float | None) -> torch.Tensor:
    """``librosa.power_to_db(power, ref=1.0, amin=amin, top_db=top_db)`` of each clip.

    Parameters
    ----------
    power : torch.Tensor, shape (B, rows, T)
    amin : float
    top_db : float or None
        Values are clipped to ``top_db`` below the maximum of **their own clip**.

    Returns
    -------
    torch.Tensor, shape (B, rows, T), dtype of ``power``
    """
    db = 10.0 * torch.log10(torch.clamp(power, min=amin))
    if top_db is not None:
        db = torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - top_db)
    return db


#: Frames per FFT block of :func:`_cpu_power`: a block and its spectrum stay in cache.
_CPU_BLOCK_FRAMES = 64


def _cpu_power(
    y: torch.Tensor, *, window: torch.Tensor, n_fft: int, hop_length: int
) -> torch.Tensor:
    """What ``torch.stft`` then ``|.| ** 2`` give, a block of frames at a time (CPU).

    The same centred zero-padded frames, float64 window and FFT, the real and imaginary
    parts rounded to float32 as ``complex64`` rounds them, and the power their float32
    ``re ** 2 + im ** 2`` (librosa squares the float32 ``|.|``: the two differ by float32
    rounding, about 1e-7 relative).  About twice as fast on a CPU as one :func:`torch.stft`
    of the batch, whose float64 frames and spectrum do not fit in the cache, and twice
    again as the complex ``abs`` then ``square``.

    Parameters
    ----------
    y : torch.Tensor, shape (B, n), float64
    window : torch.Tensor, shape (n_fft,), float64
    n_fft, hop_length : int

    Returns
    -------
    torch.Tensor, shape (B, 1 + n_fft // 2, T), float32
    """
    frames = torch.nn.functional.pad(y, (n_fft // 2, n_fft // 2)).unfold(-1, n_fft, hop_length)
    batch, n_frames, _ = frames.shape
    out = torch.empty((batch, n_frames, 1 + n_fft // 2), dtype=torch.float32)
    for b in range(batch):
        for start in range(0, n_frames, _CPU_BLOCK_FRAMES):
            block = frames[b, start : start + _CPU_BLOCK_FRAMES] * window
            parts = torch.view_as_real(torch.fft.rfft(block, dim=-1)).to(torch.float32)
            torch.sum(parts.square_(), dim=-1, out=out[b, start : start + _CPU_BLOCK_FRAMES])
    return out.transpose(-1, -2)


class TorchSpectrum:
    """The power spectrogram of a batch of clips and what the channels derive from it.

    Each quantity is computed once, when a channel first asks for it.

    Parameters
    ----------
    y : numpy.ndarray, shape (B, n)
        Equally long mono clips.
    sample_rate : int
    config : FeatureConfig
    device : torch.device

    Attributes
    ----------
    y : numpy.ndarray, shape (B, n), float32
    power : torch.Tensor, shape (B, 1 + n_fft // 2, T), float32
        ``np.abs(librosa.stft(y[b], ...)) ** 2`` of each clip, on ``device``.
    """

    def __init__(
        self, y: np.ndarray, *, sample_rate: int, config: FeatureConfig, device: torch.device
    ) -> None:
        y = np.asarray(y)
        if y.ndim != 2 or y.shape[1] == 0:
            raise ValueError(f"TorchSpectrum needs a (batch, samples) array, got shape {y.shape}")
        self.y = y.astype(np.float32, copy=False)
        self.sample_rate = int(sample_rate)
        self.config = config
        self.device = device

    @property
    def top_db(self) -> float | None:
        """``features.top_db``, with 0 meaning no clipping."""
        return self.config.top_db or None

    @functools.cached_property
    def power(self) -> torch.Tensor:
        """Power spectrogram, shape ``(B, 1 + n_fft // 2, T)``, float32 (float64 FFT)."""
        c = self.config
        win_length = c.win_length or c.n_fft
        window = _constant(
            ("window", c.n_fft, win_length),
            make=lambda: _stft_window(c.n_fft, win_length),
            device=self.device,
            dtype=torch.float64,
        )
        y = torch.as_tensor(self.y, device=self.device).to(torch.float64)
        if self.device.type == "cpu":
            return _cpu_power(y, window=window, n_fft=c.n_fft, hop_length=c.hop_length)
        spec = torch.stft(
            y,
            n_fft=c.n_fft,
            hop_length=c.hop_length,
            window=window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        # librosa rounds the float64 FFT to complex64, then takes |.| ** 2 in float32.
        return spec.to(torch.complex64).abs().square()

    @functools.cached_property
    def mel_power(self) -> torch.Tensor:
        """Mel power spectrogram, shape ``(B, n_mels, T)`` (librosa's filter bank)."""
        c = self.config
        basis = _constant(
            ("mel", self.sample_rate, c.n_fft, c.n_mels, c.fmin, c.fmax),
            make=lambda: mel_filters(
                sample_rate=self.sample_rate,
                n_fft=c.n_fft,
                n_mels=c.n_mels,
                fmin=c.fmin,
                fmax=c.fmax,
            ),
            device=self.device,
            dtype=torch.float32,
        )
        return torch.matmul(basis, self.power)

    @functools.cached_property
    def mel_db(self) -> torch.Tensor:
        """``power_to_db(mel_power, ref=1.0, amin=1e-10, top_db)`` per clip, ``(B, n_mels, T)``."""
        return power_to_db(self.mel_power, amin=AMIN_POWER, top_db=self.top_db)

    @functools.cached_property
    def stft_db(self) -> torch.Tensor:
        """``amplitude_to_db(|stft|, ref=1.0, amin=1e-5, top_db)`` per clip, ``(B, F, T)``."""
        return power_to_db(self.power, amin=AMIN_AMPLITUDE**2, top_db=self.top_db)

    @functools.cached_property
    def tuning(self) -> list[float]:
        """Each clip's tuning (fraction of a chroma bin), estimated **on the CPU**.

        :func:`.spectrum.estimate_tuning` (librosa's estimate) of the torch power
        spectrogram's frames that hold a non-zero sample, as :attr:`.Spectrum.tuning` does.
        """
        c = self.config
        power = self.power.cpu().numpy()
        out = []
        for b in range(len(self.y)):
            start, stop = active_frames(self.y[b], n_fft=c.n_fft, hop_length=c.hop_length)
            if start == stop:
                out.append(0.0)
                continue
            out.append(
                estimate_tuning(
                    power=power[b, :, start:stop],
                    sample_rate=self.sample_rate,
                    bins_per_octave=c.n_chroma,
                )
            )
        return out

    @functools.cached_property
    def chroma(self) -> torch.Tensor:
        """Chromagram, shape ``(B, n_chroma, T)``, each frame scaled to max 1 (norm=inf)."""
        c = self.config
        bases = torch.stack(
            [
                _constant(
                    ("chroma", self.sample_rate, c.n_fft, c.n_chroma, tuning),
                    make=lambda tuning=tuning: chroma_filters(
                        sample_rate=self.sample_rate,
                        n_fft=c.n_fft,
                        n_chroma=c.n_chroma,
                        tuning=tuning,
                    ),
                    device=self.device,
                    dtype=torch.float32,
                )
                for tuning in self.tuning
            ]
        )
        raw = torch.bmm(bases, self.power)
        # librosa.util.normalize(norm=inf, threshold=tiny, fill=None): a frame whose max is
        # below the smallest normal float is left as it is.
        length = raw.abs().amax(dim=-2, keepdim=True)
        length = torch.where(length < torch.finfo(raw.dtype).tiny, 1.0, length)
        return raw / length


@register_torch_channel(mel_channel)
def _mel(*, spectrum: TorchSpectrum) -> torch.Tensor:
    return spectrum.mel_db


@register_torch_channel(chroma_channel)
def _chroma(*, spectrum: TorchSpectrum) -> torch.Tensor:
    return spectrum.chroma


@register_torch_channel(stft_channel)
def _stft(*, spectrum: TorchSpectrum) -> torch.Tensor:
    return spectrum.stft_db


# ---------------------------------------------------------------------------- normalisation
def _norm_fixed(x: torch.Tensor, *, fixed_range: tuple[float, float]) -> torch.Tensor:
    lo, hi = fixed_range
    return torch.clamp((x - lo) / (hi - lo), 0.0, 1.0)


def _norm_minmax(x: torch.Tensor, *, fixed_range: tuple[float, float]) -> torch.Tensor:
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (x - lo) / torch.where(span > 0, span, 1.0), 0.0)


def _norm_standard(x: torch.Tensor, *, fixed_range: tuple[float, float]) -> torch.Tensor:
    std, mean = torch.std_mean(x, dim=(-2, -1), keepdim=True, correction=0)
    return torch.where(std > 0, (x - mean) / torch.where(std > 0, std, 1.0), 0.0)


def _norm_none(x: torch.Tensor, *, fixed_range: tuple[float, float]) -> torch.Tensor:
    return x


#: Normalisation name -> ``f(x (B, rows, T), *, fixed_range)``, per clip, as
#: :data:`emo_utils.features.channels.NORMALIZATIONS` does for one clip.
TORCH_NORMALIZATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "fixed": _norm_fixed,
    "minmax": _norm_minmax,
    "standard": _norm_standard,
    "none": _norm_none,
}


# ---------------------------------------------------------------------------- images
def _resize(x: torch.Tensor, *, height: int) -> torch.Tensor:
    """:func:`.spectrum.resize_rows` of each clip: ``(B, rows, T)`` -> ``(B, height, T)``.

    Torch's antialiased bilinear resize, the convention :func:`.spectrum.resize_rows`
    follows (half-pixel centres, a triangle filter widened by the shrink factor).
    """
    if x.shape[-2] == height:
        return x
    return torch.nn.functional.interpolate(
        x.unsqueeze(1),
        size=(height, x.shape[-1]),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    ).squeeze(1)


def compute_images_torch(
    y: np.ndarray,
    *,
    sample_rate: int,
    config: FeatureConfig,
    specs: Sequence[ChannelSpec],
    device: torch.device,
) -> np.ndarray:
    """The images of a batch of equally long clips (the ``"torch"`` backend).

    Parameters
    ----------
    y : numpy.ndarray, shape (B, n)
    sample_rate : int
    config : FeatureConfig
    specs : sequence of ChannelSpec
        ``channel_specs(config.channels)``: each channel's librosa implementation (whose
        torch version :data:`TORCH_CHANNELS` holds, or which is called per clip) and its
        ``fixed_range``.
    device : torch.device

    Returns
    -------
    numpy.ndarray, shape (B, len(specs), config.n_mels, 1 + n // hop_length), float32
    """
    return (
        compute_images_tensor(y, sample_rate=sample_rate, config=config, specs=specs, device=device)
        .cpu()
        .numpy()
    )


def compute_images_tensor(
    y: np.ndarray,
    *,
    sample_rate: int,
    config: FeatureConfig,
    specs: Sequence[ChannelSpec],
    device: torch.device,
) -> torch.Tensor:
    """:func:`compute_images_torch`, left on ``device`` as a tensor.

    For callers that feed the images to a model on the same device (on-the-fly training,
    :mod:`emo_utils.features.on_the_fly`): no copy to the CPU.

    Returns
    -------
    torch.Tensor, shape (B, len(specs), config.n_mels, 1 + n // hop_length), float32
        On ``device``.
    """
    spectrum = TorchSpectrum(y, sample_rate=sample_rate, config=config, device=device)
    norm = TORCH_NORMALIZATIONS.get(config.normalization)
    fallback: list[Spectrum] | None = None
    channels = []
    with torch.inference_mode():
        for spec in specs:
            fixed_range = spec.fixed_range(config=config)
            compute = TORCH_CHANNELS.get(spec.compute)
            if compute is None:  # no torch version: the librosa way, clip by clip
                if fallback is None:
                    fallback = [
                        Spectrum(clip, sample_rate=sample_rate, config=config) for clip in y
                    ]
                channel = torch.stack(
                    [
                        torch.as_tensor(np.asarray(spec.compute(spectrum=s), dtype=np.float32))
                        for s in fallback
                    ]
                ).to(device)
            else:
                channel = compute(spectrum=spectrum).to(torch.float32)
            channel = _resize(channel, height=config.n_mels)
            if norm is None:
                channel = torch.as_tensor(
                    np.stack(
                        [
                            normalize(c, method=config.normalization, fixed_range=fixed_range)
                            for c in channel.cpu().numpy()
                        ]
                    ),
                    dtype=torch.float32,
                ).to(device)
            else:
                channel = norm(channel, fixed_range=fixed_range)
            channels.append(channel)
    return torch.stack(channels, dim=1).clone()
