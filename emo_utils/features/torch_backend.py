"""The ``"torch"`` feature backend: the images of a batch of clips computed in torch.

The same images as :func:`emo_utils.features.channels.compute_image` (the ``"librosa"``
backend, the exact reference), computed for a batch of equally long clips at once, on the
CPU (torch's own threads) or a GPU (``features.device``).

**Active frames.**  Like the exact path (:func:`.spectrum.active_frames`), only the STFT
frames that hold a non-zero sample are computed: the zero padding of a short clip (about
half the frames of a typical corpus) has an all-zero spectrum, whose dB value, chroma and
mel power are known.  The active frames of all clips of the batch are stacked, clip after
clip, into one ``(N, rows)`` matrix (frames in rows: the FFT's output layout), every
per-frame quantity is one batched op on it, and each channel is spread over the
``(B, rows, T)`` image at the end (:class:`FrameValues`, :meth:`TorchSpectrum.dense`), its
inactive frames filled with their clip's value.

* **STFT** -- librosa's Hann window (:func:`.spectrum._stft_window`, centred in ``n_fft``),
  centred frames and zero padding, the frames windowed in float64 and transformed by
  :func:`torch.fft.rfft` in float64, rounded to float32 (as :func:`librosa.stft` stores a
  float32 clip's FFT as ``complex64``), then ``re ** 2 + im ** 2``.  On the CPU a block of
  frames at a time, so that a block and its spectrum stay in the core's cache.  A float32
  FFT is not accurate enough: bins near the ``top_db`` floor are then off by up to 5e-3 dB
  (measured on the test signals), above the 1e-3 dB budget.
* **mel** and **chroma** -- librosa's own filter banks (:func:`.spectrum.mel_filters`,
  :func:`.spectrum.chroma_filters`, i.e. :func:`librosa.filters.mel` and
  :func:`librosa.filters.chroma`) applied as float32 matrix products.
* **dB** -- ``10 log10(max(amin, S))`` (``ref=1.0``) with ``top_db`` applied **per clip**
  (to ``top_db`` below that clip's own maximum, never the batch's).
* **chroma tuning** -- the exact path's estimate (:func:`.spectrum.estimate_tuning`:
  piptrack's peaks, librosa's ``pitch_tuning``), batched (:mod:`.torch_tuning`): the peaks
  of every frame of the batch are found in torch with the exact path's arithmetic
  (:func:`~.torch_tuning.batch_spectral_peaks`), and the per-clip median and tuning
  histogram of :func:`librosa.pitch_tuning` are computed for all clips at once in numpy
  (:func:`~.torch_tuning.batch_pitch_tuning`), so each clip gets the chroma filter bank
  the librosa path picks.
* **resizing** -- the weights of :func:`.spectrum.resize_rows` (:func:`.spectrum.resize_matrix`,
  the convention of ``torch.nn.functional.interpolate(mode="bilinear", antialias=True)``)
  along frequency.
* **normalisation** -- :data:`TORCH_NORMALIZATIONS` (the four built-in methods, per clip and
  channel).
* **CPU threads** -- :func:`compute_images_tensor` splits a CPU batch into
  ``torch.get_num_threads()`` parts of about as many active frames, each computed by its
  own thread with one intra-op thread (:func:`cpu_workers`).

A channel without a torch implementation in :data:`TORCH_CHANNELS` (``"mfcc"``, ``"delta"``,
``"waveform"``, a channel registered by the user) and a normalisation without one in
:data:`TORCH_NORMALIZATIONS` are computed the librosa way for that channel, clip by clip on
the CPU, so every configuration works; only the listed ones are batched.

Parity with the librosa path on generated audio (``tests/test_torch_features.py``): mel
and STFT dB within 1e-3 dB, chroma within 1e-3 (float32), the same tuning.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

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
    resize_matrix,
)
from .torch_tuning import batch_pitch_tuning, batch_spectral_peaks

__all__ = [
    "TORCH_CHANNELS",
    "TORCH_NORMALIZATIONS",
    "FrameValues",
    "TorchSpectrum",
    "batch_active_frames",
    "batch_pitch_tuning",
    "batch_spectral_peaks",
    "compute_images_tensor",
    "compute_images_torch",
    "cpu_workers",
    "register_torch_channel",
    "resolve_device",
]

#: Librosa channel function (:attr:`ChannelSpec.compute`) -> its torch version
#: ``compute(*, spectrum: TorchSpectrum) -> Tensor (B, rows, T) or FrameValues``.  Keyed by
#: the function, not the name, so a channel re-registered under a built-in name is never
#: given the built-in's torch version.
TORCH_CHANNELS: dict[Callable[..., np.ndarray], Callable[..., torch.Tensor | FrameValues]] = {}


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
    returns a tensor of shape ``(B, rows, T)`` or the :class:`FrameValues` of the batch's
    active frames.
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


#: Rows of a filter bank per block of :func:`_banded_product`.
_BAND_ROWS = 16
#: Banded filter banks already on a device, by key (as :data:`_CONSTANTS`).
_BANDED: dict[tuple, list[tuple[int, int, torch.Tensor]]] = {}


def _banded_product(x: torch.Tensor, *, key: tuple, make: Callable[[], np.ndarray]) -> torch.Tensor:
    """``x @ make().T`` for a filter bank whose rows are each non-zero on a short band.

    The bank's rows are taken :data:`_BAND_ROWS` at a time, each block multiplied with the
    columns of ``x`` its rows cover: the same sums without most of the zero terms (for the
    default mel bank, 13 % of the dense product's work, about four times as fast).  Only
    the order of the float32 additions differs from the dense product.

    Parameters
    ----------
    x : torch.Tensor, shape (N, bins), float32
    key : tuple
        Identifies the bank (with ``x``'s device) in the cache of blocks.
    make : callable
        ``make() -> numpy.ndarray`` of shape ``(rows, bins)``: the bank.

    Returns
    -------
    torch.Tensor, shape (N, rows), float32
    """
    full = (*key, str(x.device))
    blocks = _BANDED.get(full)
    if blocks is None:
        if len(_BANDED) >= _MAX_CONSTANTS:
            _BANDED.clear()
        bank = np.asarray(make(), dtype=np.float32)
        blocks = []
        for top in range(0, bank.shape[0], _BAND_ROWS):
            rows = bank[top : top + _BAND_ROWS]
            cols = np.flatnonzero(np.any(rows != 0, axis=0))
            lo, hi = (int(cols[0]), int(cols[-1]) + 1) if len(cols) else (0, 0)
            weights = torch.as_tensor(np.ascontiguousarray(rows[:, lo:hi].T), device=x.device)
            blocks.append((lo, hi, weights))
        _BANDED[full] = blocks
    return torch.cat([x[:, lo:hi] @ weights for lo, hi, weights in blocks], dim=-1)


@dataclass(frozen=True)
class FrameValues:
    """A channel of a batch as the values of its active frames and of its other frames.

    Attributes
    ----------
    values : torch.Tensor, shape (N, rows)
        One row per active frame of the batch, clip after clip (:class:`TorchSpectrum`'s
        layout).
    fill : torch.Tensor, shape (B, rows)
        The value of every inactive frame (all-zero samples) of each clip.
    """

    values: torch.Tensor
    fill: torch.Tensor

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> FrameValues:
        """``fn`` (a per-frame function, ``(n, rows) -> (n, rows')``) of values and fill."""
        return FrameValues(fn(self.values), fn(self.fill))


def _db_of_frames(
    power: torch.Tensor, *, row_clip: torch.Tensor, n_clips: int, amin: float, top_db: float | None
) -> FrameValues:
    """``librosa.power_to_db(power, ref=1.0, amin=amin, top_db=top_db)`` of each clip.

    Parameters
    ----------
    power : torch.Tensor, shape (N, rows)
        The active frames of the batch; every other frame is zero.
    row_clip : torch.Tensor of int64, shape (N,)
        The clip of each frame.
    n_clips : int
    amin : float
    top_db : float or None
        Values are clipped to ``top_db`` below the maximum of **their own clip**.

    Returns
    -------
    FrameValues
        Of shape ``(N, rows)`` and ``(n_clips, rows)``, dtype of ``power``.
    """
    db = torch.clamp(power, min=amin).log10_().mul_(10.0)
    silence = torch.zeros((n_clips, 1), dtype=power.dtype, device=power.device)
    fill = torch.clamp(silence, min=amin).log10_().mul_(10.0)
    if top_db is not None:
        # The clip's maximum: its frames' maxima, and silence's value (no frame is below it).
        peak = fill[:, 0].scatter_reduce(0, row_clip, db.amax(dim=-1), reduce="amax")
        low = (peak - top_db).unsqueeze(-1)
        torch.maximum(db, low[row_clip], out=db)
        fill = torch.maximum(fill, low)
    return FrameValues(db, fill.expand(n_clips, power.shape[-1]))


# ---------------------------------------------------------------------------- spectrum
#: Bytes of float64 windowed frames transformed per block on the CPU: 64 frames of 2048
#: samples; a block and its spectrum stay in the core's cache (measured on this 2-core
#: machine: 128 frames of 2048 samples take about three times as long per frame).
_CPU_BLOCK_BYTES = 1 << 20
#: The same on a GPU: a bound on the memory of one transform.
_GPU_BLOCK_BYTES = 1 << 28


def batch_active_frames(y: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """:func:`.spectrum.active_frames` of each clip: ``[start, stop)`` rows, shape ``(B, 2)``.

    Parameters
    ----------
    y : numpy.ndarray, shape (B, n)
    n_fft, hop_length : int

    Returns
    -------
    numpy.ndarray of int64, shape (B, 2)
    """
    return np.array(
        [active_frames(clip, n_fft=n_fft, hop_length=hop_length) for clip in y], dtype=np.int64
    ).reshape(-1, 2)


class TorchSpectrum:
    """The power spectrogram of a batch of clips and what the channels derive from it.

    Each quantity is computed once, when a channel first asks for it, for the **active
    frames** of the batch only (the frames that hold a non-zero sample,
    :func:`.spectrum.active_frames`), stacked clip after clip in rows; the ``(B, rows, T)``
    attributes (:attr:`power`, :attr:`mel_db`, :attr:`stft_db`, :attr:`chroma`) spread
    them over every frame (:meth:`dense`).

    Parameters
    ----------
    y : numpy.ndarray, shape (B, n)
        Equally long mono clips.
    sample_rate : int
    config : FeatureConfig
    device : torch.device
    active : numpy.ndarray of int, shape (B, 2), optional
        ``batch_active_frames(y, ...)`` if already known.

    Attributes
    ----------
    y : numpy.ndarray, shape (B, n), float32
    active : numpy.ndarray of int64, shape (B, 2)
        Each clip's active frames ``[start, stop)``.
    offsets : numpy.ndarray of int64, shape (B + 1,)
        Clip ``b``'s active frames are rows ``offsets[b]:offsets[b + 1]`` of the frame
        matrices (:attr:`frames_power`, :class:`FrameValues`).
    n_frames : int
        ``T``, the frames of each clip's STFT.
    """

    def __init__(
        self,
        y: np.ndarray,
        *,
        sample_rate: int,
        config: FeatureConfig,
        device: torch.device,
        active: np.ndarray | None = None,
    ) -> None:
        y = np.asarray(y)
        if y.ndim != 2 or y.shape[1] == 0:
            raise ValueError(f"TorchSpectrum needs a (batch, samples) array, got shape {y.shape}")
        self.y = y.astype(np.float32, copy=False)
        self.sample_rate = int(sample_rate)
        self.config = config
        self.device = device
        n_fft, hop = config.n_fft, config.hop_length
        self.n_frames = 1 + (y.shape[1] + 2 * (n_fft // 2) - n_fft) // hop
        if active is None:
            active = batch_active_frames(self.y, n_fft=n_fft, hop_length=hop)
        self.active = np.asarray(active, dtype=np.int64).reshape(-1, 2)
        self.offsets = np.concatenate(([0], np.cumsum(self.active[:, 1] - self.active[:, 0])))

    @property
    def top_db(self) -> float | None:
        """``features.top_db``, with 0 meaning no clipping."""
        return self.config.top_db or None

    @property
    def n_clips(self) -> int:
        """``B``."""
        return len(self.y)

    @functools.cached_property
    def row_clip(self) -> torch.Tensor:
        """The clip of each active frame, shape ``(N,)``, int64, on the device."""
        counts = torch.as_tensor(np.diff(self.offsets), device=self.device)
        return torch.repeat_interleave(torch.arange(self.n_clips, device=self.device), counts)

    @functools.cached_property
    def _dense_index(self) -> torch.Tensor:
        """Row of ``cat([values, fill])`` of each clip's frames, shape ``(B, T)``."""
        t = np.arange(self.n_frames)
        start, stop = self.active[:, :1], self.active[:, 1:]
        inside = (t >= start) & (t < stop)
        index = np.where(
            inside,
            self.offsets[:-1, None] + t - start,
            self.offsets[-1] + np.arange(self.n_clips)[:, None],
        )
        return torch.as_tensor(index, device=self.device)

    def dense(self, frames: FrameValues) -> torch.Tensor:
        """A channel's :class:`FrameValues` spread over every frame of every clip.

        Parameters
        ----------
        frames : FrameValues
            Values ``(N, rows)`` and fill ``(B, rows)``.

        Returns
        -------
        torch.Tensor, shape (B, rows, T)
            A transposed view of a ``(B, T, rows)`` tensor.
        """
        table = torch.cat([frames.values, frames.fill.to(frames.values.dtype)])
        return table[self._dense_index].transpose(-2, -1)

    @functools.cached_property
    def frames_power(self) -> torch.Tensor:
        """Power spectrum of each active frame, shape ``(N, 1 + n_fft // 2)``, float32.

        ``np.abs(librosa.stft(y[b], ...)) ** 2`` of clip ``b``'s active frames in rows
        ``offsets[b]:offsets[b + 1]``: the same centred zero-padded frames, float64 window
        and FFT, the real and imaginary parts rounded to float32 as ``complex64`` rounds
        them, and the power their float32 ``re ** 2 + im ** 2`` (librosa squares the
        float32 ``|.|``: the two differ by float32 rounding, about 1e-7 relative).
        """
        c = self.config
        n_fft, hop = c.n_fft, c.hop_length
        win_length = c.win_length or n_fft
        window = _constant(
            ("window", n_fft, win_length),
            make=lambda: _stft_window(n_fft, win_length),
            device=self.device,
            dtype=torch.float64,
        )
        # Every clip padded by n_fft // 2 zeros on the left and to a multiple of hop_length
        # (at least n_fft // 2 zeros on the right): the frames of all clips are then rows
        # of one strided view of the batch.
        n = self.y.shape[1]
        stride = -(-(n + 2 * (n_fft // 2)) // hop) * hop
        padded = torch.nn.functional.pad(
            torch.as_tensor(self.y, device=self.device), (n_fft // 2, stride - n - n_fft // 2)
        )
        frames = padded.reshape(-1).unfold(0, n_fft, hop)
        rows = torch.as_tensor(
            np.concatenate(
                [b * (stride // hop) + np.arange(*span) for b, span in enumerate(self.active)]
                or [np.zeros(0, dtype=np.int64)]
            ),
            dtype=torch.int64,
            device=self.device,
        )
        out = torch.empty((len(rows), 1 + n_fft // 2), dtype=torch.float32, device=self.device)
        budget = _CPU_BLOCK_BYTES if self.device.type == "cpu" else _GPU_BLOCK_BYTES
        step = max(1, budget // (8 * n_fft))
        for start in range(0, len(rows), step):
            # Converted to float64 first: a float32 block times the float64 window takes a
            # slow mixed-dtype path, 20 times as long as this conversion and product.
            block = frames.index_select(0, rows[start : start + step]).to(torch.float64)
            block.mul_(window)
            parts = torch.view_as_real(torch.fft.rfft(block, dim=-1)).to(torch.float32)
            real, imag = parts[..., 0], parts[..., 1]
            torch.addcmul(real.square(), imag, imag, out=out[start : start + step])
        return out

    @functools.cached_property
    def power(self) -> torch.Tensor:
        """Power spectrogram, shape ``(B, 1 + n_fft // 2, T)``, float32 (float64 FFT)."""
        return self.dense(self._zero_filled(self.frames_power))

    def _zero_filled(self, values: torch.Tensor) -> FrameValues:
        return FrameValues(values, values.new_zeros((self.n_clips, values.shape[-1])))

    @functools.cached_property
    def frames_mel_power(self) -> torch.Tensor:
        """Mel power of each active frame, shape ``(N, n_mels)`` (librosa's filter bank)."""
        c = self.config
        return _banded_product(
            self.frames_power,
            key=("mel", self.sample_rate, c.n_fft, c.n_mels, c.fmin, c.fmax),
            make=lambda: mel_filters(
                sample_rate=self.sample_rate,
                n_fft=c.n_fft,
                n_mels=c.n_mels,
                fmin=c.fmin,
                fmax=c.fmax,
            ),
        )

    @functools.cached_property
    def frames_mel_db(self) -> FrameValues:
        """``power_to_db(mel_power, ref=1.0, amin=1e-10, top_db)`` per clip, ``(N, n_mels)``."""
        return _db_of_frames(
            self.frames_mel_power,
            row_clip=self.row_clip,
            n_clips=self.n_clips,
            amin=AMIN_POWER,
            top_db=self.top_db,
        )

    @functools.cached_property
    def frames_stft_db(self) -> FrameValues:
        """``amplitude_to_db(|stft|, ref=1.0, amin=1e-5, top_db)`` per clip, ``(N, F)``."""
        return _db_of_frames(
            self.frames_power,
            row_clip=self.row_clip,
            n_clips=self.n_clips,
            amin=AMIN_AMPLITUDE**2,
            top_db=self.top_db,
        )

    @functools.cached_property
    def tuning(self) -> list[float]:
        """Each clip's tuning (fraction of a chroma bin), the exact path's estimate.

        :func:`.spectrum.estimate_tuning` of each clip's active frames (as
        :attr:`.Spectrum.tuning`), batched: :func:`batch_spectral_peaks` then
        :func:`batch_pitch_tuning`.
        """
        c = self.config
        if self.frames_power.shape[-1] < 3:  # too few bins for a peak: librosa's own path
            power = self.power.cpu().numpy()
            return [
                estimate_tuning(
                    power=power[b, :, start:stop],
                    sample_rate=self.sample_rate,
                    bins_per_octave=c.n_chroma,
                )
                if stop > start
                else 0.0
                for b, (start, stop) in enumerate(self.active)
            ]
        frames, pitches, mags = batch_spectral_peaks(
            self.frames_power, sample_rate=self.sample_rate
        )
        tuning = batch_pitch_tuning(
            pitches.cpu().numpy(),
            mags=mags.cpu().numpy(),
            clips=self.row_clip[frames].cpu().numpy(),
            n_clips=self.n_clips,
            bins_per_octave=c.n_chroma,
        )
        return [float(t) for t in tuning]

    @functools.cached_property
    def frames_chroma(self) -> FrameValues:
        """Chroma of each active frame, ``(N, n_chroma)``, each frame scaled to max 1."""
        c = self.config
        power = self.frames_power
        raw = power.new_empty((power.shape[0], c.n_chroma))
        for b, tuning in enumerate(self.tuning):
            start, stop = self.offsets[b], self.offsets[b + 1]
            if stop == start:
                continue
            basis = _constant(
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
            torch.matmul(power[start:stop], basis.T, out=raw[start:stop])
        # librosa.util.normalize(norm=inf, threshold=tiny, fill=None): a frame whose max is
        # below the smallest normal float is left as it is (the silent frames: zeros).
        length = raw.abs().amax(dim=-1, keepdim=True)
        length = torch.where(length < torch.finfo(raw.dtype).tiny, 1.0, length)
        return self._zero_filled(raw / length)

    @property
    def mel_power(self) -> torch.Tensor:
        """Mel power spectrogram, shape ``(B, n_mels, T)``."""
        return self.dense(self._zero_filled(self.frames_mel_power))

    @property
    def mel_db(self) -> torch.Tensor:
        """:attr:`frames_mel_db` of every frame, shape ``(B, n_mels, T)``."""
        return self.dense(self.frames_mel_db)

    @property
    def stft_db(self) -> torch.Tensor:
        """:attr:`frames_stft_db` of every frame, shape ``(B, 1 + n_fft // 2, T)``."""
        return self.dense(self.frames_stft_db)

    @property
    def chroma(self) -> torch.Tensor:
        """:attr:`frames_chroma` of every frame, shape ``(B, n_chroma, T)``."""
        return self.dense(self.frames_chroma)


@register_torch_channel(mel_channel)
def _mel(*, spectrum: TorchSpectrum) -> FrameValues:
    return spectrum.frames_mel_db


@register_torch_channel(chroma_channel)
def _chroma(*, spectrum: TorchSpectrum) -> FrameValues:
    return spectrum.frames_chroma


@register_torch_channel(stft_channel)
def _stft(*, spectrum: TorchSpectrum) -> FrameValues:
    return spectrum.frames_stft_db


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
def _resize_last(x: torch.Tensor, *, height: int) -> torch.Tensor:
    """:func:`.spectrum.resize_rows` along the last axis: ``(n, rows)`` -> ``(n, height)``.

    The exact path's weights (:func:`.spectrum.resize_matrix`, float32: half-pixel centres,
    a triangle filter widened by the shrink factor, the convention of torch's antialiased
    bilinear resize), applied band by band (:func:`_banded_product`: each output row mixes
    only the few input rows under its filter).
    """
    if x.shape[-1] == height:
        return x
    rows = x.shape[-1]
    return _banded_product(
        x.to(torch.float32),
        key=("resize", rows, height),
        make=lambda: resize_matrix(rows, height=height, dtype="float32").toarray(),
    )


def _resize(x: torch.Tensor, *, height: int) -> torch.Tensor:
    """:func:`.spectrum.resize_rows` of each clip: ``(B, rows, T)`` -> ``(B, height, T)``."""
    if x.shape[-2] == height:
        return x
    return (
        _resize_last(x.transpose(-2, -1).reshape(-1, x.shape[-2]), height=height)
        .reshape(x.shape[0], x.shape[-1], height)
        .transpose(-2, -1)
    )


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
    y = np.asarray(y, dtype=np.float32)
    active = batch_active_frames(y, n_fft=config.n_fft, hop_length=config.hop_length)
    workers = cpu_workers(len(y), device=device)

    def images(part: slice) -> torch.Tensor:
        return _images_tensor(
            y[part],
            active=active[part],
            sample_rate=sample_rate,
            config=config,
            specs=specs,
            device=device,
        )

    if workers == 1:
        return images(slice(None))
    # Consecutive clips, about the same number of active frames (the work) per thread.
    work = np.cumsum(active[:, 1] - active[:, 0] + 1)
    cuts = np.searchsorted(work, work[-1] * np.arange(1, workers) / workers, side="right")
    parts = [slice(a, b) for a, b in itertools.pairwise([0, *cuts, len(y)]) if b > a]
    # torch's thread count is the process's: one split at a time, so that two callers on
    # two threads (serving activities) cannot leave it at 1 by restoring each other's value.
    with _THREAD_SPLIT:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(len(parts)) as pool:
                return torch.cat(list(pool.map(images, parts)))
        finally:
            torch.set_num_threads(threads)


#: Held while a CPU batch is split over threads (:func:`compute_images_tensor`).
_THREAD_SPLIT = threading.Lock()


def cpu_workers(n_clips: int, *, device: torch.device) -> int:
    """Threads that compute a CPU batch's images, each a part of its clips.

    ``torch.get_num_threads()`` (at most one per clip) on the CPU, 1 on other devices.
    Each thread runs torch with one intra-op thread (:func:`compute_images_tensor`): every
    op of the pipeline is small (a block of 64 frames, a clip's chroma), and torch's
    intra-op threads would meet at a barrier after each one -- and stall whenever another
    process holds a core.
    """
    if device.type != "cpu":
        return 1
    return max(1, min(torch.get_num_threads(), n_clips))


def _images_tensor(
    y: np.ndarray,
    *,
    active: np.ndarray,
    sample_rate: int,
    config: FeatureConfig,
    specs: Sequence[ChannelSpec],
    device: torch.device,
) -> torch.Tensor:
    """:func:`compute_images_tensor` of one batch (``active``: its active frames), here."""
    spectrum = TorchSpectrum(
        y, sample_rate=sample_rate, config=config, device=device, active=active
    )
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
                channel = compute(spectrum=spectrum)
            if isinstance(channel, FrameValues):  # resized before it is spread over the frames
                channel = spectrum.dense(
                    channel.map(lambda x: _resize_last(x.to(torch.float32), height=config.n_mels))
                )
            else:
                channel = _resize(channel.to(torch.float32), height=config.n_mels)
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
    # Outside inference mode: a plain tensor (a model may train on it).
    return torch.stack(channels, dim=1)
