"""One STFT per clip, turned into a multi-channel image.

:func:`compute_image` computes the clip's STFT once (:class:`Spectrum`) and derives every
channel from it.  The default channels reproduce, value for value, the three direct librosa
calls of the usual notebook recipe:

============  ==========================================================================
``"mel"``     ``librosa.power_to_db(librosa.feature.melspectrogram(y=y, ...), ref=1.0,
              top_db=top_db)``, shape ``(n_mels, T)``
``"chroma"``  ``librosa.feature.chroma_stft(y=y, ...)`` (tuning estimated from the same
              spectrogram, as chroma_stft does), shape ``(n_chroma, T)``, values in [0, 1]
``"stft"``    ``librosa.amplitude_to_db(np.abs(librosa.stft(y, ...)), ref=1.0,
              top_db=top_db)``, shape ``(1 + n_fft // 2, T)``
``"mfcc"``    ``librosa.feature.mfcc(S=mel dB, n_mfcc=20)``
``"delta"``   ``librosa.feature.delta(mel dB)`` (width 9)
============  ==========================================================================

``T = 1 + len(y) // hop_length`` (centred frames).

**Speed, with identical output.**  The default image is bit-identical to the usual recipe
(three librosa calls) and about three times faster with decoding included
(``benchmarks/bench_features.py``), because:

* one STFT instead of three, computed by :func:`power_spectrogram` with librosa's own
  arithmetic (float64 windowing and ``rfft``, rounding to complex64) a few frames at a time,
  skipping the frames that are all zeros (the padding of a short clip; :func:`active_frames`);
* chroma's tuning estimate (``librosa.estimate_tuning``, which runs ``piptrack`` over the
  whole spectrogram and was half of ``chroma_stft``'s time) is computed by
  :func:`estimate_tuning` at the spectral peaks of piptrack's band only
  (:func:`spectral_peaks`);
* the dB conversions take the logarithm of the non-silent frames only (:func:`power_to_db`);
* the mel and chroma filter banks are built once per parameter set (librosa rebuilds them on
  every call).

Each of these is tested to be bit-identical to the librosa function it replaces.

**dB reference.**  Both dB conversions use the absolute reference ``ref=1.0`` (not
``ref=np.max``), so loudness is kept and a silent clip (every value at the ``amin`` floor,
-100 dB) is distinguishable from a full-scale one.  ``top_db`` clips each clip's values to
``top_db`` below its own maximum, as librosa does.

**Resizing.**  Channels whose height differs from ``n_mels`` are resized along frequency by
:func:`resize_rows`: linear interpolation with half-pixel centres and, when shrinking, a
triangle filter widened by the shrink factor (antialiasing).  This is what
``torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=True)`` and
PIL's bilinear resize do along one axis.  Time is never resized.

**Normalisation** (``features.normalization``, per channel, :data:`NORMALIZATIONS`):

``"fixed"`` (default)
    ``(x - lo) / (hi - lo)`` clipped to [0, 1] with a range fixed per channel, independent of
    the clip (:func:`db_range`): for dB channels ``lo = -100 dB`` (the ``amin`` floor, i.e.
    silence) and ``hi = 20 log10(sum(window))`` (the largest STFT magnitude a signal within
    [-1, 1] can reach); chroma is already in [0, 1].  Loudness is kept, silence maps to 0.
``"minmax"``
    ``(x - min) / (max - min)`` per clip and channel; a constant channel (e.g. silence) gives 0.
``"standard"``
    ``(x - mean) / std`` per clip and channel; a constant channel gives 0.
``"none"``
    the raw values (dB, chroma energy).

Every normalisation gives finite values for silent and constant clips.

Precision: ``features.precision = "float64"`` converts the clip to float64 before the STFT
(librosa then computes in float64, as its direct calls do on a float64 clip); ``"float32"``
(default) keeps librosa's float32 arithmetic, as on a clip from ``librosa.load``.  The
returned image is float32 either way.
"""

from __future__ import annotations

import functools
import inspect
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import librosa
import numpy as np
import scipy.sparse

from ..config import FeatureConfig
from ..errors import ConfigError

__all__ = [
    "CHANNELS",
    "FEATURES_VERSION",
    "NORMALIZATIONS",
    "ChannelSpec",
    "Spectrum",
    "active_frames",
    "chroma_filters",
    "compute_image",
    "db_range",
    "estimate_tuning",
    "mel_filters",
    "n_frames",
    "normalize",
    "power_spectrogram",
    "power_to_db",
    "register_channel",
    "resize_matrix",
    "resize_rows",
    "spectral_peaks",
]

#: Bump when :func:`compute_image` changes its output; the feature cache keys on it.
FEATURES_VERSION = 1

#: ``amin`` of :func:`librosa.power_to_db` (power) -- the dB floor is ``10 log10(AMIN)``.
AMIN_POWER = 1e-10
#: ``amin`` of :func:`librosa.amplitude_to_db`; ``AMIN_AMPLITUDE ** 2 == AMIN_POWER``.
AMIN_AMPLITUDE = 1e-5
#: Coefficients of the ``"mfcc"`` channel.
N_MFCC = 20
#: Width of the ``"delta"`` channel's Savitzky-Golay window.
DELTA_WIDTH = 9

_DTYPES = {"float32": np.float32, "float64": np.float64}


def n_frames(n_samples: int, *, hop_length: int) -> int:
    """Frames of the centred STFT of ``n_samples`` samples: ``1 + n_samples // hop_length``."""
    return 1 + int(n_samples) // int(hop_length)


# ---------------------------------------------------------------------------- filter banks
@functools.lru_cache(maxsize=16)
def mel_filters(
    *, sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float
) -> np.ndarray:
    """:func:`librosa.filters.mel` (``fmax`` 0 means Nyquist), cached and read-only.

    Returns
    -------
    numpy.ndarray, shape (n_mels, 1 + n_fft // 2), float32
    """
    basis = librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax or None
    )
    basis.setflags(write=False)
    return basis


@functools.lru_cache(maxsize=256)
def chroma_filters(*, sample_rate: int, n_fft: int, n_chroma: int, tuning: float) -> np.ndarray:
    """:func:`librosa.filters.chroma`, cached and read-only.

    ``tuning`` comes from :func:`librosa.estimate_tuning` at 0.01-bin resolution, so at most
    100 banks per parameter set are built.

    Returns
    -------
    numpy.ndarray, shape (n_chroma, 1 + n_fft // 2), float32
    """
    basis = librosa.filters.chroma(sr=sample_rate, n_fft=n_fft, tuning=tuning, n_chroma=n_chroma)
    basis.setflags(write=False)
    return basis


@functools.lru_cache(maxsize=64)
def resize_matrix(src: int, height: int, dtype: str = "float64") -> np.ndarray:
    """Weights ``W`` with ``W @ x`` resizing ``src`` rows to ``height`` (see :func:`resize_rows`).

    Output row ``i`` is centred on source coordinate ``c = (i + 0.5) * src / height``; source
    row ``j`` (centre ``j + 0.5``) gets weight ``max(0, 1 - |j + 0.5 - c| / s)`` with
    ``s = max(1, src / height)``, and each row of weights is normalised to sum to 1.

    Returns
    -------
    scipy.sparse.csr_array, shape (height, src)
        Sparse: each output row mixes only the few source rows under its filter.
    """
    if src < 1 or height < 1:
        raise ValueError(f"resize_matrix needs positive sizes, got src={src}, height={height}")
    scale = src / height
    support = max(1.0, scale)
    centres = (np.arange(height) + 0.5) * scale
    rows = np.arange(src) + 0.5
    weights = np.clip(1.0 - np.abs(rows[None, :] - centres[:, None]) / support, 0.0, None)
    weights /= weights.sum(axis=1, keepdims=True)
    return scipy.sparse.csr_array(weights.astype(dtype))


def resize_rows(x: np.ndarray, *, height: int) -> np.ndarray:
    """Resize a ``(rows, frames)`` array to ``(height, frames)`` along the first axis.

    Linear interpolation with half-pixel centres, antialiased when shrinking (the
    ``torch.nn.functional.interpolate(mode="bilinear", antialias=True)`` convention).
    Returns ``x`` itself when it already has ``height`` rows.

    Parameters
    ----------
    x : numpy.ndarray, shape (rows, frames)
    height : int

    Returns
    -------
    numpy.ndarray, shape (height, frames), dtype of ``x``
    """
    if x.shape[0] == height:
        return x
    return resize_matrix(x.shape[0], height, x.dtype.name) @ x


# ---------------------------------------------------------------------------- tuning
#: ``fmin``, ``fmax`` and ``threshold`` of :func:`librosa.piptrack`, whose defaults
#: :func:`librosa.estimate_tuning` (and so :func:`librosa.feature.chroma_stft`) uses.
_PIPTRACK_DEFAULTS: dict[str, float] = {
    name: float(param.default)
    for name, param in inspect.signature(librosa.piptrack).parameters.items()
    if name in ("fmin", "fmax", "threshold")
}


@functools.lru_cache(maxsize=16)
def _piptrack_band(sample_rate: float, n_bins: int) -> tuple[int, int]:
    """First and last frequency bin :func:`librosa.piptrack` may report (``lo > hi``: none).

    Its feasible region is ``fmin <= f < min(fmax, sr / 2)``; bin 0 and the last bin can never
    hold a peak (``localmax`` never marks the first element, and the last bin lies at
    ``sr / 2``, outside the region).
    """
    fmin = max(_PIPTRACK_DEFAULTS["fmin"], 0.0)
    fmax = min(_PIPTRACK_DEFAULTS["fmax"], float(sample_rate) / 2)
    freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=2 * (n_bins - 1))
    rows = np.flatnonzero((fmin <= freqs) & (freqs < fmax))
    if len(rows) == 0:
        return 1, 0
    return max(int(rows[0]), 1), min(int(rows[-1]), n_bins - 2)


def spectral_peaks(
    *, power: np.ndarray, sample_rate: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The peaks ``librosa.piptrack(S=power, sr=sample_rate)`` finds, as sparse entries.

    :func:`librosa.piptrack` interpolates every bin of the spectrogram (``np.gradient`` and a
    parabolic fit along frequency) and then keeps only the local maxima above
    ``threshold * max`` of their frame inside ``[fmin, fmax)``.  This function finds the same
    maxima first, looking only at the bins of that band, and interpolates only at them, with
    the same arithmetic (the parabolic fit in float64, as librosa's numba stencil computes it,
    the rest in the spectrogram's dtype), so the values are bit-identical to piptrack's.
    ``n_fft`` is inferred from the number of bins, as piptrack does for a spectrogram input.

    Parameters
    ----------
    power : numpy.ndarray, shape (1 + n_fft // 2, T), float32 or float64
        Spectrogram (for chroma, the power spectrogram).
    sample_rate : float

    Returns
    -------
    rows, cols : numpy.ndarray of intp, shape (n_peaks,)
        Bin and frame of each peak, in ``np.nonzero`` (row-major) order.
    pitches, mags : numpy.ndarray, shape (n_peaks,), dtype of ``power``
        ``pitches[rows, cols]`` and ``mags[rows, cols]`` of piptrack's output (both are zero
        everywhere else).
    """
    n_bins = power.shape[-2]
    n_fft = 2 * (n_bins - 1)
    lo, hi = _piptrack_band(float(sample_rate), n_bins)
    if lo > hi:
        empty = np.zeros(0, dtype=power.dtype)
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp), empty, empty
    ref = _PIPTRACK_DEFAULTS["threshold"] * np.max(power, axis=-2)
    band = power[lo - 1 : hi + 2]
    masked = band * (band > ref)
    centre = masked[1:-1]
    rows, cols = np.nonzero((centre > masked[:-2]) & (centre >= masked[2:]))
    x0 = band[1:-1][rows, cols]
    below = band[:-2][rows, cols]
    above = band[2:][rows, cols]
    # librosa's _pi_stencil: ``a = x[1] + x[-1] - 2 * x[0]``, ``b = (x[1] - x[-1]) / 2``, with
    # the sum and difference in the input dtype and the rest in float64 (numba's promotion of
    # ``2 * x``); the shift is 0 where the optimum is more than a bin away.
    diff = above - below
    a = (above + below).astype(np.float64) - 2 * x0.astype(np.float64)
    b = diff.astype(np.float64) / 2
    outside = np.abs(b) >= np.abs(a)
    shift = (-b / np.where(outside, 1.0, a)).astype(power.dtype)
    shift[outside] = 0
    # np.gradient along frequency, then piptrack's ``dskew = 0.5 * avg * shift``.
    avg = diff / 2.0
    rows += lo
    pitches = ((rows + shift) * float(sample_rate) / n_fft).astype(power.dtype)
    mags = x0 + 0.5 * avg * shift
    return rows, cols, pitches, mags


def estimate_tuning(*, power: np.ndarray, sample_rate: float, bins_per_octave: int) -> float:
    """``librosa.estimate_tuning(S=power, sr=sample_rate, bins_per_octave=bins_per_octave)``.

    The same estimate (peaks of :func:`spectral_peaks`, i.e. of :func:`librosa.piptrack`,
    with at least the median magnitude, histogram of :func:`librosa.pitch_tuning`), about
    ten times faster.  A spectrogram without peaks (silence, DC) gives librosa's fallback 0.0
    without its "empty frequency set" warning.

    Parameters
    ----------
    power : numpy.ndarray, shape (1 + n_fft // 2, T)
    sample_rate : float
    bins_per_octave : int

    Returns
    -------
    float
        Tuning deviation in ``[-0.5, 0.5)`` bins, at 0.01-bin resolution.
    """
    if power.ndim != 2 or power.shape[0] < 3:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Trying to estimate tuning from empty")
            return float(
                librosa.estimate_tuning(S=power, sr=sample_rate, bins_per_octave=bins_per_octave)
            )
    _, _, pitches, mags = spectral_peaks(power=power, sample_rate=sample_rate)
    pitched = pitches > 0
    if not pitched.any():
        return 0.0
    threshold = np.median(mags[pitched])
    return float(
        librosa.pitch_tuning(
            pitches[(mags >= threshold) & pitched], bins_per_octave=bins_per_octave
        )
    )


# ---------------------------------------------------------------------------- spectrum
#: Bytes of float64 windowed frames transformed per block by :func:`power_spectrogram`: a
#: few frames, so that a block and its spectrum stay in the core's cache.
_STFT_BLOCK_BYTES = 1 << 18


@functools.lru_cache(maxsize=16)
def _stft_window(n_fft: int, win_length: int) -> np.ndarray:
    """The Hann window of :func:`librosa.stft`, centred in ``n_fft`` samples, read-only."""
    window = librosa.filters.get_window("hann", win_length, fftbins=True)
    window = librosa.util.pad_center(window, size=n_fft)
    window.setflags(write=False)
    return window


def _stft_frames(y: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """Centred frames of ``y`` (zero padding), shape ``(T, n_fft)``, a strided view."""
    padded = np.pad(y, n_fft // 2, mode="constant")
    return librosa.util.frame(padded, frame_length=n_fft, hop_length=hop_length, axis=0)


def active_frames(y: np.ndarray, *, n_fft: int, hop_length: int) -> tuple[int, int]:
    """Frames ``[start, stop)`` of the centred STFT that hold a non-zero sample.

    Every other frame (leading or trailing digital silence, such as the zero padding of a
    short clip) is all zeros, so its spectrum is exactly zero.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
    n_fft, hop_length : int

    Returns
    -------
    (int, int)
        ``0 <= start <= stop <= T``; ``(0, 0)`` for a clip without a non-zero sample.
    """
    nonzero = y != 0
    if not nonzero.any():
        return 0, 0
    n_frames_total = 1 + (len(y) + 2 * (n_fft // 2) - n_fft) // hop_length
    first = int(nonzero.argmax())
    last = len(y) - 1 - int(nonzero[::-1].argmax())
    # Frame t covers samples [t * hop - n_fft // 2, t * hop - n_fft // 2 + n_fft).
    start = max(0, -(-(first + n_fft // 2 - n_fft + 1) // hop_length))
    stop = min(n_frames_total, (last + n_fft // 2) // hop_length + 1)
    return start, stop


def power_spectrogram(
    y: np.ndarray,
    *,
    n_fft: int,
    hop_length: int,
    win_length: int | None = None,
    active: tuple[int, int] | None = None,
) -> np.ndarray:
    """``np.abs(librosa.stft(y, ...)) ** 2`` computed block by block, bit-identical.

    :func:`librosa.stft` (Hann window, centred frames, zero padding) windows the frames in
    float64, transforms them with :func:`librosa.get_fftlib`'s ``rfft`` and stores the result
    as ``complex64`` for a float32 clip (``complex128`` for float64).  This function does the
    same arithmetic, frame by frame, but squares the magnitude of each block of frames while
    it is in cache, without keeping the complex matrix, and skips the frames that are all
    zeros (:func:`active_frames`; their spectrum is exactly zero), e.g. the padding of a
    short clip.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,), float32 or float64
    n_fft, hop_length : int
    win_length : int, optional
        Default ``n_fft``.
    active : (int, int), optional
        ``active_frames(y, n_fft=n_fft, hop_length=hop_length)`` if already known.

    Returns
    -------
    numpy.ndarray, shape (1 + n_fft // 2, T), dtype of ``y``
        Fortran-ordered, like :func:`librosa.stft`'s output.
    """
    window = _stft_window(int(n_fft), int(win_length or n_fft))
    frames = _stft_frames(y, n_fft=n_fft, hop_length=hop_length)
    fft = librosa.get_fftlib()
    complex_dtype = librosa.util.dtype_r2c(y.dtype)
    if active is None:
        active = active_frames(y, n_fft=n_fft, hop_length=hop_length)
    first, stop = active
    power = np.empty((frames.shape[0], 1 + n_fft // 2), dtype=y.dtype)
    power[:first] = 0
    power[stop:] = 0
    step = max(1, min(stop - first, _STFT_BLOCK_BYTES // (8 * n_fft)))
    windowed = np.empty((step, n_fft), dtype=np.result_type(window, y))
    rounded = np.empty((step, 1 + n_fft // 2), dtype=complex_dtype)
    for start in range(first, stop, step):
        k = min(step, stop - start)
        np.multiply(window, frames[start : start + k], out=windowed[:k])
        spectrum = fft.rfft(windowed[:k], axis=-1)
        if spectrum.dtype != complex_dtype:  # librosa stores the float64 FFT as complex64
            np.copyto(rounded[:k], spectrum, casting="same_kind")
            spectrum = rounded[:k]
        np.abs(spectrum, out=power[start : start + k])
    np.square(power, out=power)
    return power.T


def power_to_db(
    power: np.ndarray, *, active: tuple[int, int], amin: float, top_db: float | None
) -> np.ndarray:
    """``librosa.power_to_db(power, ref=1.0, amin=amin, top_db=top_db)``, bit-identical.

    For a spectrogram whose frames outside ``active`` are zero (:attr:`Spectrum.active`):
    librosa's logarithm is taken of the active frames only, every other frame gets the value
    librosa computes for a zero, and then, as librosa does last, values are clipped to
    ``top_db`` below the maximum of the whole array.

    Parameters
    ----------
    power : numpy.ndarray, shape (rows, T)
        Zero outside the frames ``[start, stop)``.
    active : (int, int)
        ``(start, stop)``.
    amin : float
    top_db : float or None

    Returns
    -------
    numpy.ndarray, shape (rows, T), dtype of ``power``
    """
    start, stop = active
    if (start, stop) == (0, power.shape[-1]):
        return librosa.power_to_db(power, ref=1.0, amin=amin, top_db=top_db)
    zero = librosa.power_to_db(np.zeros(1, dtype=power.dtype), ref=1.0, amin=amin, top_db=None)
    db = np.empty(power.shape, dtype=zero.dtype)
    db[..., :start] = zero[0]
    db[..., stop:] = zero[0]
    db[..., start:stop] = librosa.power_to_db(
        power[..., start:stop], ref=1.0, amin=amin, top_db=None
    )
    if top_db is not None:
        if top_db < 0:
            raise librosa.ParameterError("top_db must be non-negative")
        db = np.maximum(db, db.max() - top_db)
    return db


class Spectrum:
    """A clip's STFT and the quantities derived from it, each computed at most once.

    The power spectrogram is computed when the object is created; the complex STFT and the
    magnitude only when a channel asks for them.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Mono clip (any float dtype; converted to ``config.precision``).
    sample_rate : int
    config : FeatureConfig

    Attributes
    ----------
    power : numpy.ndarray, shape (1 + n_fft // 2, T)
        ``np.abs(librosa.stft(y, n_fft, hop_length, win_length, window="hann",
        center=True)) ** 2`` (:func:`power_spectrogram`).
    active : (int, int)
        Frames ``[start, stop)`` that hold a non-zero sample (:func:`active_frames`); the
        power of every other frame is zero.
    """

    def __init__(self, y: np.ndarray, *, sample_rate: int, config: FeatureConfig) -> None:
        y = np.asarray(y)
        if y.ndim != 1 or len(y) == 0:
            raise ValueError(f"Spectrum needs a non-empty 1-D clip, got shape {y.shape}")
        self.y = y.astype(_DTYPES[config.precision], copy=False)
        self.sample_rate = int(sample_rate)
        self.config = config
        self.active = active_frames(self.y, n_fft=config.n_fft, hop_length=config.hop_length)
        self.power = power_spectrogram(
            self.y,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
            win_length=config.win_length or None,
            active=self.active,
        )

    @functools.cached_property
    def stft(self) -> np.ndarray:
        """``librosa.stft(y, n_fft, hop_length, win_length, window="hann", center=True)``.

        Shape ``(1 + n_fft // 2, T)``, complex.  Computed on first use (a second STFT: only
        channels that need the phase should use it).
        """
        c = self.config
        return librosa.stft(
            self.y,
            n_fft=c.n_fft,
            hop_length=c.hop_length,
            win_length=c.win_length or None,
            window="hann",
            center=True,
        )

    @functools.cached_property
    def magnitude(self) -> np.ndarray:
        """``|stft|``, shape ``(1 + n_fft // 2, T)`` (computed on first use, from :attr:`stft`)."""
        return np.abs(self.stft)

    @property
    def n_frames(self) -> int:
        """Frames ``T`` of the STFT."""
        return int(self.power.shape[-1])

    @property
    def top_db(self) -> float | None:
        """``features.top_db``, with 0 meaning no clipping."""
        return self.config.top_db or None

    @functools.cached_property
    def mel_power(self) -> np.ndarray:
        """Mel power spectrogram, shape ``(n_mels, T)``, as ``librosa.feature.melspectrogram``."""
        c = self.config
        basis = mel_filters(
            sample_rate=self.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax
        )
        # The same contraction as librosa.feature.melspectrogram, with a cached filter bank.
        return np.einsum("...ft,mf->...mt", self.power, basis, optimize=True)

    @functools.cached_property
    def mel_db(self) -> np.ndarray:
        """``power_to_db(mel_power, ref=1.0, amin=1e-10, top_db)``, shape ``(n_mels, T)``."""
        return power_to_db(self.mel_power, active=self.active, amin=AMIN_POWER, top_db=self.top_db)

    @functools.cached_property
    def stft_db(self) -> np.ndarray:
        """``amplitude_to_db(|stft|, ref=1.0, amin=1e-5, top_db)``, shape ``(1 + n_fft // 2, T)``.

        Computed as librosa's ``amplitude_to_db`` does it, ``power_to_db(|stft| ** 2,
        ref=1.0, amin=1e-5 ** 2, top_db)``, from the already squared :attr:`power`.
        """
        return power_to_db(
            self.power, active=self.active, amin=AMIN_AMPLITUDE**2, top_db=self.top_db
        )

    @functools.cached_property
    def tuning(self) -> float:
        """Tuning deviation (fraction of a chroma bin) estimated from :attr:`power`.

        ``librosa.estimate_tuning(S=power, sr, bins_per_octave=n_chroma)``, as
        :func:`librosa.feature.chroma_stft` does, computed by :func:`estimate_tuning`; a clip
        without pitched content (silence, DC) gets librosa's fallback 0.0 without its "empty
        frequency set" warning.  Only the :attr:`active` frames are searched: a frame of zeros
        has no spectral peak.
        """
        start, stop = self.active
        if start == stop:
            return 0.0
        return estimate_tuning(
            power=self.power[:, start:stop],
            sample_rate=self.sample_rate,
            bins_per_octave=self.config.n_chroma,
        )

    @functools.cached_property
    def chroma(self) -> np.ndarray:
        """Chromagram, shape ``(n_chroma, T)``, as ``librosa.feature.chroma_stft`` (norm=inf)."""
        c = self.config
        basis = chroma_filters(
            sample_rate=self.sample_rate, n_fft=c.n_fft, n_chroma=c.n_chroma, tuning=self.tuning
        )
        raw = np.einsum("cf,...ft->...ct", basis, self.power, optimize=True)
        return librosa.util.normalize(raw, norm=np.inf, axis=-2)


# ---------------------------------------------------------------------------- channels
def db_range(*, config: FeatureConfig) -> tuple[float, float]:
    """``(lo, hi)`` of the ``"fixed"`` normalisation for dB channels.

    ``lo = 10 log10(1e-10) = -100`` dB is the floor of silence; ``hi = 20 log10(sum(window))``
    is the largest STFT magnitude of a signal within [-1, 1] (60.2 dB for a 2048-sample Hann
    window).
    """
    return 10.0 * math.log10(AMIN_POWER), 20.0 * math.log10(
        _window_sum(config.win_length or config.n_fft)
    )


@functools.lru_cache(maxsize=16)
def _window_sum(win_length: int) -> float:
    return float(np.sum(librosa.filters.get_window("hann", win_length, fftbins=True)))


@dataclass(frozen=True)
class ChannelSpec:
    """One entry of :data:`CHANNELS`.

    Attributes
    ----------
    compute : callable
        ``compute(*, spectrum) -> numpy.ndarray`` of shape ``(rows, T)``.
    fixed_range : callable
        ``fixed_range(*, config) -> (lo, hi)``: the values mapped to 0 and 1 by the
        ``"fixed"`` normalisation.
    """

    compute: Callable[..., np.ndarray]
    fixed_range: Callable[..., tuple[float, float]]


#: Channel name -> :class:`ChannelSpec`.  ``features.channels`` picks from it.
CHANNELS: dict[str, ChannelSpec] = {}


def register_channel(
    name: str, *, fixed_range: Callable[..., tuple[float, float]]
) -> Callable[[Callable[..., np.ndarray]], Callable[..., np.ndarray]]:
    """Decorator adding ``compute(*, spectrum) -> (rows, T)`` to :data:`CHANNELS` as ``name``.

    Examples
    --------
    >>> import numpy as np
    >>> @register_channel("log_power_sum", fixed_range=lambda *, config: (-100.0, 100.0))
    ... def log_power_sum(*, spectrum):
    ...     return 10 * np.log10(spectrum.power.sum(axis=0, keepdims=True) + 1e-10)
    """

    def deco(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        CHANNELS[name] = ChannelSpec(fn, fixed_range)
        return fn

    return deco


def _unit_range(*, config: FeatureConfig) -> tuple[float, float]:
    return 0.0, 1.0


def _mfcc_range(*, config: FeatureConfig) -> tuple[float, float]:
    lo, hi = db_range(config=config)
    # Orthonormal DCT: coefficient 0 is sqrt(n_mels) times the mean dB; others are smaller.
    return lo * math.sqrt(config.n_mels), hi * math.sqrt(config.n_mels)


def _delta_range(*, config: FeatureConfig) -> tuple[float, float]:
    lo, hi = db_range(config=config)
    # First-order Savitzky-Golay slope over DELTA_WIDTH frames: sum |coefficients| <= 1/3.
    bound = (hi - lo) / 3.0
    return -bound, bound


@register_channel("mel", fixed_range=db_range)
def mel_channel(*, spectrum: Spectrum) -> np.ndarray:
    """Log-mel spectrogram (dB, ref 1.0), shape ``(n_mels, T)``."""
    return spectrum.mel_db


@register_channel("chroma", fixed_range=_unit_range)
def chroma_channel(*, spectrum: Spectrum) -> np.ndarray:
    """Chromagram, shape ``(n_chroma, T)``, each frame scaled to max 1."""
    return spectrum.chroma


@register_channel("stft", fixed_range=db_range)
def stft_channel(*, spectrum: Spectrum) -> np.ndarray:
    """STFT magnitude in dB (ref 1.0), shape ``(1 + n_fft // 2, T)``."""
    return spectrum.stft_db


@register_channel("mfcc", fixed_range=_mfcc_range)
def mfcc_channel(*, spectrum: Spectrum) -> np.ndarray:
    """MFCCs of the log-mel spectrogram, shape ``(N_MFCC, T)``."""
    return librosa.feature.mfcc(S=spectrum.mel_db, n_mfcc=N_MFCC)


@register_channel("delta", fixed_range=_delta_range)
def delta_channel(*, spectrum: Spectrum) -> np.ndarray:
    """Time derivative of the log-mel spectrogram, shape ``(n_mels, T)``."""
    mel_db = spectrum.mel_db
    frames = mel_db.shape[-1]
    width = min(DELTA_WIDTH, frames if frames % 2 else frames - 1)
    if width < 3:
        return np.zeros_like(mel_db)
    return librosa.feature.delta(mel_db, width=width)


# ---------------------------------------------------------------------------- normalisation
def _norm_fixed(x: np.ndarray, *, fixed_range: tuple[float, float]) -> np.ndarray:
    lo, hi = fixed_range
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def _norm_minmax(x: np.ndarray, *, fixed_range: tuple[float, float]) -> np.ndarray:
    lo, hi = np.min(x), np.max(x)
    if not hi > lo:
        return np.zeros_like(x)
    return (x - lo) / (hi - lo)


def _norm_standard(x: np.ndarray, *, fixed_range: tuple[float, float]) -> np.ndarray:
    std = np.std(x)
    if not std > 0:
        return np.zeros_like(x)
    return (x - np.mean(x)) / std


def _norm_none(x: np.ndarray, *, fixed_range: tuple[float, float]) -> np.ndarray:
    return x


#: Normalisation name -> ``f(x, *, fixed_range) -> x`` (see the module docstring).
NORMALIZATIONS: dict[str, Callable[..., np.ndarray]] = {
    "fixed": _norm_fixed,
    "minmax": _norm_minmax,
    "standard": _norm_standard,
    "none": _norm_none,
}


def normalize(x: np.ndarray, *, method: str, fixed_range: tuple[float, float]) -> np.ndarray:
    """Scale one channel by a :data:`NORMALIZATIONS` method.

    Parameters
    ----------
    x : numpy.ndarray, shape (rows, T)
    method : {"fixed", "minmax", "standard", "none"}
    fixed_range : (float, float)
        Values mapped to 0 and 1 by ``"fixed"`` (ignored by the others).

    Returns
    -------
    numpy.ndarray, shape (rows, T), finite when ``x`` is
    """
    try:
        fn = NORMALIZATIONS[method]
    except KeyError:
        raise ConfigError(
            "features.normalization", method, f"unknown; known: {sorted(NORMALIZATIONS)}"
        ) from None
    return fn(x, fixed_range=fixed_range)


def _channel_specs(config: FeatureConfig) -> list[ChannelSpec]:
    unknown = [c for c in config.channels if c not in CHANNELS]
    if unknown:
        raise ConfigError(
            "features.channels",
            list(config.channels),
            f"unknown {unknown}; known: {sorted(CHANNELS)}",
        )
    return [CHANNELS[c] for c in config.channels]


def compute_image(y: np.ndarray, *, sample_rate: int, config: FeatureConfig) -> np.ndarray:
    """The image of one clip.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Mono clip at ``sample_rate`` (already padded to the wanted duration).
    sample_rate : int
    config : FeatureConfig
        Channels, STFT parameters, normalisation and precision.

    Returns
    -------
    numpy.ndarray, shape (len(config.channels), config.n_mels, 1 + n // hop_length), float32
        Channel ``k`` is ``config.channels[k]``, resized to ``n_mels`` rows
        (:func:`resize_rows`) and normalised (:func:`normalize`).

    Raises
    ------
    ConfigError
        Unknown channel name.
    """
    specs = _channel_specs(config)
    spectrum = Spectrum(y, sample_rate=sample_rate, config=config)
    image = np.empty((len(specs), config.n_mels, spectrum.n_frames), dtype=np.float32)
    for k, spec in enumerate(specs):
        channel = resize_rows(spec.compute(spectrum=spectrum), height=config.n_mels)
        image[k] = normalize(
            channel, method=config.normalization, fixed_range=spec.fixed_range(config=config)
        )
    return image
