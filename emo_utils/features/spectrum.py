"""Spectral kernels: one STFT per clip and the librosa quantities derived from it.

:class:`Spectrum` computes a clip's power spectrogram once and derives from it, on demand,
what the channels of :mod:`emo_utils.features.channels` need (mel power and dB, STFT dB,
tuning, chroma).  Every kernel here is bit-identical to the librosa function it replaces
(``tests/test_features.py`` pins each one) and faster:

* one STFT instead of three, computed by :func:`power_spectrogram` with librosa's own
  arithmetic (float64 windowing and ``rfft``, rounding to complex64) a few frames at a time,
  skipping the frames that are all zeros (the padding of a short clip; :func:`active_frames`);
* chroma's tuning estimate (``librosa.estimate_tuning``, which runs ``piptrack`` over the
  whole spectrogram and was half of ``chroma_stft``'s time) is computed by
  :func:`estimate_tuning` at the spectral peaks of piptrack's band only
  (:func:`spectral_peaks`);
* the dB conversions take the logarithm of the non-silent frames only (:func:`power_to_db`);
* the mel and chroma filter banks are built once per parameter set (:func:`mel_filters`,
  :func:`chroma_filters`; librosa rebuilds them on every call).

``T = 1 + len(y) // hop_length`` (centred frames, :func:`n_frames`).

**dB reference.**  Both dB conversions use the absolute reference ``ref=1.0`` (not
``ref=np.max``), so loudness is kept and a silent clip (every value at the ``amin`` floor,
-100 dB) is distinguishable from a full-scale one.  ``top_db`` clips each clip's values to
``top_db`` below its own maximum, as librosa does.

**Resizing.**  :func:`resize_rows` resizes along frequency: linear interpolation with
half-pixel centres and, when shrinking, a triangle filter widened by the shrink factor
(antialiasing).  This is what ``torch.nn.functional.interpolate(mode="bilinear",
align_corners=False, antialias=True)`` and PIL's bilinear resize do along one axis.

**Precision.**  ``features.precision = "float64"`` converts the clip to float64 before the
STFT (librosa then computes in float64, as its direct calls do on a float64 clip);
``"float32"`` (default) keeps librosa's float32 arithmetic, as on a clip from
``librosa.load``.
"""

from __future__ import annotations

import functools
import inspect
import warnings

import librosa
import numpy as np
import scipy.sparse

from ..config import FeatureConfig

__all__ = [
    "AMIN_AMPLITUDE",
    "AMIN_POWER",
    "Spectrum",
    "active_frames",
    "chroma_filters",
    "estimate_tuning",
    "mel_filters",
    "n_frames",
    "power_spectrogram",
    "power_to_db",
    "resize_matrix",
    "resize_rows",
    "spectral_peaks",
]

#: ``amin`` of :func:`librosa.power_to_db` (power) -- the dB floor is ``10 log10(AMIN)``.
AMIN_POWER = 1e-10
#: ``amin`` of :func:`librosa.amplitude_to_db`; ``AMIN_AMPLITUDE ** 2 == AMIN_POWER``.
AMIN_AMPLITUDE = 1e-5

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
def resize_matrix(src: int, *, height: int, dtype: str = "float64") -> np.ndarray:
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
    return resize_matrix(x.shape[0], height=height, dtype=x.dtype.name) @ x


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
    power: np.ndarray, *, sample_rate: float
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


def estimate_tuning(power: np.ndarray, *, sample_rate: float, bins_per_octave: int) -> float:
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
    """A clip's power spectrogram and the quantities derived from it, each computed once.

    Everything (the power spectrogram, mel power, dB scales, tuning, chroma) is computed
    when a channel first asks for it, so the channels of one image share one STFT and a
    channel that reads only the samples (``"waveform"``) computes none.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Mono clip (any float dtype; converted to ``config.precision``).
    sample_rate : int
    config : FeatureConfig

    Attributes
    ----------
    y : numpy.ndarray, shape (n,)
        The clip, in ``config.precision``.
    sample_rate : int
    config : FeatureConfig
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

    @functools.cached_property
    def active(self) -> tuple[int, int]:
        """Frames ``[start, stop)`` that hold a non-zero sample (:func:`active_frames`)."""
        return active_frames(self.y, n_fft=self.config.n_fft, hop_length=self.config.hop_length)

    @functools.cached_property
    def power(self) -> np.ndarray:
        """The power spectrogram, shape ``(1 + n_fft // 2, T)`` (:func:`power_spectrogram`)."""
        c = self.config
        return power_spectrogram(
            self.y,
            n_fft=c.n_fft,
            hop_length=c.hop_length,
            win_length=c.win_length or None,
            active=self.active,
        )

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
