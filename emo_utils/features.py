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

``T = 1 + len(y) // hop_length`` (centred frames).  The mel, chroma and STFT filter banks are
built once per parameter set and reused (librosa rebuilds them on every call); with the single
STFT this is faster than the three separate librosa calls, with identical output
(``benchmarks/bench_features.py``).

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
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import librosa
import numpy as np
import scipy.sparse

from .config import FeatureConfig
from .errors import ConfigError

__all__ = [
    "CHANNELS",
    "FEATURES_VERSION",
    "NORMALIZATIONS",
    "ChannelSpec",
    "Spectrum",
    "chroma_filters",
    "compute_image",
    "db_range",
    "mel_filters",
    "n_frames",
    "normalize",
    "register_channel",
    "resize_matrix",
    "resize_rows",
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


# ---------------------------------------------------------------------------- spectrum
class Spectrum:
    """A clip's STFT and the quantities derived from it, each computed at most once.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Mono clip (any float dtype; converted to ``config.precision``).
    sample_rate : int
    config : FeatureConfig

    Attributes
    ----------
    stft : numpy.ndarray, shape (1 + n_fft // 2, T), complex
        ``librosa.stft(y, n_fft, hop_length, win_length, window="hann", center=True)``.
    """

    def __init__(self, y: np.ndarray, *, sample_rate: int, config: FeatureConfig) -> None:
        y = np.asarray(y)
        if y.ndim != 1 or len(y) == 0:
            raise ValueError(f"Spectrum needs a non-empty 1-D clip, got shape {y.shape}")
        self.y = y.astype(_DTYPES[config.precision], copy=False)
        self.sample_rate = int(sample_rate)
        self.config = config
        self.stft = librosa.stft(
            self.y,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
            win_length=config.win_length or None,
            window="hann",
            center=True,
        )

    @property
    def top_db(self) -> float | None:
        """``features.top_db``, with 0 meaning no clipping."""
        return self.config.top_db or None

    @functools.cached_property
    def magnitude(self) -> np.ndarray:
        """``|stft|``, shape ``(1 + n_fft // 2, T)``."""
        return np.abs(self.stft)

    @functools.cached_property
    def power(self) -> np.ndarray:
        """``|stft| ** 2``, shape ``(1 + n_fft // 2, T)``."""
        return self.magnitude**2

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
        return librosa.power_to_db(self.mel_power, ref=1.0, amin=AMIN_POWER, top_db=self.top_db)

    @functools.cached_property
    def stft_db(self) -> np.ndarray:
        """``amplitude_to_db(|stft|, ref=1.0, amin=1e-5, top_db)``, shape ``(1 + n_fft // 2, T)``."""
        return librosa.amplitude_to_db(
            self.magnitude, ref=1.0, amin=AMIN_AMPLITUDE, top_db=self.top_db
        )

    @functools.cached_property
    def tuning(self) -> float:
        """Tuning deviation (fraction of a chroma bin) estimated from :attr:`power`.

        As :func:`librosa.feature.chroma_stft` does; a clip without pitched content (silence,
        DC) gets librosa's fallback 0.0 without its "empty frequency set" warning.
        """
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Trying to estimate tuning from empty")
            return float(
                librosa.estimate_tuning(
                    S=self.power, sr=self.sample_rate, bins_per_octave=self.config.n_chroma
                )
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
    image = np.empty((len(specs), config.n_mels, spectrum.stft.shape[-1]), dtype=np.float32)
    for k, spec in enumerate(specs):
        channel = resize_rows(spec.compute(spectrum=spectrum), height=config.n_mels)
        image[k] = normalize(
            channel, method=config.normalization, fixed_range=spec.fixed_range(config=config)
        )
    return image
