"""Image channels: the channel registry, normalisation and :func:`compute_image`.

:func:`compute_image` computes a clip's STFT once (:class:`~.spectrum.Spectrum`) and derives
every channel named in ``features.channels`` from it.  The built-in channels reproduce, value
for value, the direct librosa calls of the usual notebook recipe:

==============  ==========================================================================
``"mel"``       ``librosa.power_to_db(librosa.feature.melspectrogram(y=y, ...), ref=1.0,
                top_db=top_db)``, shape ``(n_mels, T)``
``"chroma"``    ``librosa.feature.chroma_stft(y=y, ...)`` (tuning estimated from the same
                spectrogram, as chroma_stft does), shape ``(n_chroma, T)``, values in [0, 1]
``"stft"``      ``librosa.amplitude_to_db(np.abs(librosa.stft(y, ...)), ref=1.0,
                top_db=top_db)``, shape ``(1 + n_fft // 2, T)``
``"mfcc"``      ``librosa.feature.mfcc(S=mel dB, n_mfcc=20)``
``"delta"``     ``librosa.feature.delta(mel dB)`` (width 9)
``"waveform"``  the sample at each frame's centre (sample ``t * hop_length`` of frame ``t``;
                0 past the clip's end), shape ``(1, T)``: the raw clip when ``hop_length``
                is 1 -- the waveform input of :mod:`emo_utils.features.waveform`; no STFT
==============  ==========================================================================

``T = 1 + len(y) // hop_length`` (centred frames).  The default image (mel, chroma, stft) is
bit-identical to the usual recipe (three librosa calls) and about three times faster with
decoding included (``benchmarks/bench_features.py``); :mod:`.spectrum` explains why.

Channels whose height differs from ``n_mels`` are resized along frequency by
:func:`~.spectrum.resize_rows`; time is never resized.

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

Every normalisation gives finite values for silent and constant clips.  The returned image
is float32 whatever ``features.precision`` is.

**Custom channels.**  :func:`register_channel` adds a channel to :data:`CHANNELS`.  The
feature cache keys on each used channel's :attr:`ChannelSpec.identity`: the ``version``
given to :func:`register_channel` or, without one, a hash of the code of its functions, so
editing a channel's code never reuses images cached with the old code.
"""

from __future__ import annotations

import functools
import hashlib
import math
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import librosa
import numpy as np

from ..config import FeatureConfig
from ..errors import ConfigError
from .spectrum import AMIN_POWER, Spectrum, n_frames, resize_rows

__all__ = [
    "CHANNELS",
    "DELTA_WIDTH",
    "FEATURES_VERSION",
    "NORMALIZATIONS",
    "N_MFCC",
    "ChannelSpec",
    "channel_specs",
    "compute_image",
    "db_range",
    "normalize",
    "register_channel",
    "waveform_channel",
]

#: Bump when :func:`compute_image` (or a kernel of :mod:`.spectrum`) changes its output; the
#: feature cache keys on it.
FEATURES_VERSION = 1
#: Coefficients of the ``"mfcc"`` channel.
N_MFCC = 20
#: Width of the ``"delta"`` channel's Savitzky-Golay window.
DELTA_WIDTH = 9


# ---------------------------------------------------------------------------- fixed ranges
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


# ---------------------------------------------------------------------------- code identity
def _feed(value: Any, digest: Any, seen: set[int]) -> None:
    """Add a stable description of ``value`` (a constant, code object or function) to ``digest``.

    Stable across processes and runs: no memory addresses, no set ordering.  Objects that
    have no stable description contribute their type only (their state is not tracked; a
    channel that depends on such state should declare a ``version``).
    """
    if isinstance(value, types.CodeType):
        digest.update(b"code:")
        digest.update(value.co_code)
        digest.update(repr(value.co_names).encode())
        _feed(value.co_consts, digest, seen)
    elif isinstance(value, (tuple, list)):
        digest.update(f"{type(value).__name__}[{len(value)}](".encode())
        for item in value:
            _feed(item, digest, seen)
        digest.update(b")")
    elif isinstance(value, (frozenset, set)):
        digest.update(f"set{sorted(repr(v) for v in value)}".encode())
    elif isinstance(value, dict):
        digest.update(f"dict[{len(value)}](".encode())
        for key in sorted(value, key=repr):
            digest.update(repr(key).encode())
            _feed(value[key], digest, seen)
        digest.update(b")")
    elif value is None or value is Ellipsis or isinstance(value, (bool, int, float, complex)):
        digest.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, (str, bytes)):
        digest.update(f"{type(value).__name__}[{len(value)}]:{value!r};".encode())
    elif isinstance(value, np.ndarray):
        digest.update(f"ndarray:{value.dtype.str}:{value.shape}:".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif callable(value):
        _feed_callable(value, digest, seen)
    else:
        digest.update(f"<{type(value).__module__}.{type(value).__qualname__}>".encode())


def _feed_callable(fn: Callable[..., Any], digest: Any, seen: set[int]) -> None:
    if id(fn) in seen:  # a recursive closure
        digest.update(b"<recursion>")
        return
    seen.add(id(fn))
    if isinstance(fn, functools.partial):
        digest.update(b"partial(")
        _feed((fn.func, fn.args, dict(fn.keywords)), digest, seen)
        digest.update(b")")
        return
    code = getattr(fn, "__code__", None)
    if code is None:  # a builtin or a callable object: its type's __call__, if in Python
        code = getattr(type(fn).__call__, "__code__", None)
        digest.update(f"<{type(fn).__module__}.{type(fn).__qualname__}>".encode())
        if code is None:
            name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "")
            digest.update(f"{getattr(fn, '__module__', None)}.{name}".encode())
            return
    _feed(code, digest, seen)
    _feed(getattr(fn, "__defaults__", None), digest, seen)
    _feed(getattr(fn, "__kwdefaults__", None), digest, seen)
    cells = []
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            cells.append(cell.cell_contents)
        except ValueError:  # an empty cell
            cells.append(None)
    _feed(tuple(cells), digest, seen)


def _code_identity(*fns: Callable[..., Any]) -> str:
    """Hash of the code of ``fns``: bytecode, constants and names, nested code objects too.

    Also covers default arguments and closure values.  Not covered: the functions and
    globals it refers to by name (only the names are hashed).
    """
    digest = hashlib.sha256()
    seen: set[int] = set()
    for fn in fns:
        _feed_callable(fn, digest, seen)
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------------- registry
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
    version : str or None
        Declared version of the channel (``compute`` and ``fixed_range`` together), or
        ``None`` to identify it by its code (:attr:`identity`).
    """

    compute: Callable[..., np.ndarray]
    fixed_range: Callable[..., tuple[float, float]]
    version: str | None = None

    @property
    def identity(self) -> str:
        """What the feature cache keys this channel's images on.

        ``"version:<version>"`` when a version was declared, else ``"code:<hash>"``: a hash
        of the code objects of :attr:`compute` and :attr:`fixed_range` (bytecode, constants,
        names, recursively for nested functions, plus default arguments and closure values).
        Editing either function's body changes it; editing a helper it calls does not
        (declare a ``version`` then, and change it with the helper).
        """
        if self.version is not None:
            return f"version:{self.version}"
        return f"code:{_code_identity(self.compute, self.fixed_range)}"


#: Channel name -> :class:`ChannelSpec`.  ``features.channels`` picks from it; always read
#: it through this module (``channels.CHANNELS``), never rebind it.
CHANNELS: dict[str, ChannelSpec] = {}


def register_channel(
    name: str,
    *,
    fixed_range: Callable[..., tuple[float, float]],
    version: str | None = None,
) -> Callable[[Callable[..., np.ndarray]], Callable[..., np.ndarray]]:
    """Decorator adding ``compute(*, spectrum) -> (rows, T)`` to :data:`CHANNELS` as ``name``.

    Registering a name again replaces the channel.

    Parameters
    ----------
    name : str
        The name ``features.channels`` uses.
    fixed_range : callable
        ``fixed_range(*, config) -> (lo, hi)`` for the ``"fixed"`` normalisation.
    version : str, optional
        The channel's version, for the feature cache key.  By default the cache keys on a
        hash of the code of ``compute`` and ``fixed_range`` (:attr:`ChannelSpec.identity`);
        declare a version when the output also depends on code elsewhere (helpers, data
        files) and change it whenever that output changes.

    Notes
    -----
    Define channels in an importable module rather than in a notebook or script
    (``__main__``): worker processes of :func:`~emo_utils.features.build.build_cache` must
    import the function, so a channel defined in ``__main__`` makes the build run in one
    process.

    Examples
    --------
    >>> import numpy as np
    >>> @register_channel("log_power_sum", fixed_range=lambda *, config: (-100.0, 100.0))
    ... def log_power_sum(*, spectrum):
    ...     return 10 * np.log10(spectrum.power.sum(axis=0, keepdims=True) + 1e-10)
    """

    def deco(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        CHANNELS[name] = ChannelSpec(fn, fixed_range, None if version is None else str(version))
        return fn

    return deco


def channel_specs(names: Sequence[str]) -> list[ChannelSpec]:
    """The registered channels ``names`` (``features.channels``), in that order.

    The one check of channel names: :func:`compute_image` and the cache builder (before
    any file is read) both call it.

    Parameters
    ----------
    names : sequence of str

    Returns
    -------
    list of ChannelSpec, length len(names)

    Raises
    ------
    ConfigError
        A name is not in :data:`CHANNELS` (all unknown names are listed).
    """
    unknown = [c for c in names if c not in CHANNELS]
    if unknown:
        raise ConfigError(
            "features.channels", list(names), f"unknown {unknown}; known: {sorted(CHANNELS)}"
        )
    return [CHANNELS[c] for c in names]


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


def _waveform_range(*, config: FeatureConfig) -> tuple[float, float]:
    return -1.0, 1.0


@register_channel("waveform", fixed_range=_waveform_range, version="1")
def waveform_channel(*, spectrum: Spectrum) -> np.ndarray:
    """The clip's sample at each frame centre, shape ``(1, T)``, ``T = 1 + n // hop_length``.

    Frame ``t`` is centred on sample ``t * hop_length`` (the centred-STFT convention of the
    other channels); a frame centred past the last sample (the last one when ``hop_length``
    divides the length) gets 0.  Reads the samples only: no spectrogram is computed.
    """
    hop = spectrum.config.hop_length
    y = spectrum.y
    out = np.zeros((1, n_frames(len(y), hop_length=hop)), dtype=y.dtype)
    samples = y[::hop]
    out[0, : len(samples)] = samples
    return out


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


# ---------------------------------------------------------------------------- image
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
        (:func:`~.spectrum.resize_rows`) and normalised (:func:`normalize`).

    Raises
    ------
    ConfigError
        Unknown channel name.
    """
    return _compute_image(
        y, sample_rate=sample_rate, config=config, specs=channel_specs(config.channels)
    )


def _compute_image(
    y: np.ndarray, *, sample_rate: int, config: FeatureConfig, specs: Sequence[ChannelSpec]
) -> np.ndarray:
    """:func:`compute_image` with the channels given as specs (``channel_specs(...)``).

    The cache builder's worker processes get the specs from the building process, so a
    channel registered there is computed even if the worker's registry lacks it.
    """
    spectrum = Spectrum(y, sample_rate=sample_rate, config=config)
    return _image_of_spectrum(spectrum, config=config, specs=specs)


def _image_of_spectrum(
    spectrum: Spectrum, *, config: FeatureConfig, specs: Sequence[ChannelSpec]
) -> np.ndarray:
    """The image of a clip's :class:`~.spectrum.Spectrum` (:func:`_compute_image`'s channels)."""
    image: np.ndarray | None = None
    for k, spec in enumerate(specs):
        channel = resize_rows(spec.compute(spectrum=spectrum), height=config.n_mels)
        if image is None:  # the width of the first channel: no STFT needed to know it
            image = np.empty((len(specs), config.n_mels, channel.shape[-1]), dtype=np.float32)
        image[k] = normalize(
            channel, method=config.normalization, fixed_range=spec.fixed_range(config=config)
        )
    if image is None:
        raise ConfigError("features.channels", (), "must name at least one channel")
    return image
