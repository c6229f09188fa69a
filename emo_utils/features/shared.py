"""Images of many overlapping windows of one signal, with one STFT frame per distinct frame.

:func:`window_images` gives, for windows cut from one stream (their samples and their start
in the stream), the image :func:`~emo_utils.features.compute_image` gives each window alone,
computing the STFT of every *distinct* frame once.  A frame of a window is identified by
where it starts in the stream and which of its samples lie inside the window (the others
are the zero padding of the centred STFT), so a frame that two windows share -- the same
samples, the same padding -- is transformed once and reused by both.  Windows whose starts
differ by a multiple of ``features.hop_length`` share every frame but the few padded ones
at their edges; others share none, and still save the per-window setup of the transform.

Everything after the power spectrogram is computed per window, exactly as
:func:`~emo_utils.features.compute_image` does (:class:`~.spectrum.Spectrum` with the power
already filled in): ``top_db`` relative to each window's own maximum, the tuning of chroma
from each window's frames, each window's normalisation.  The power of a frame is computed
with :func:`~.spectrum.power_spectrogram`'s arithmetic (float64 windowing and ``rfft``,
rounding to the complex dtype of the clip), so images equal the per-window ones.

Memory: the unique frames of one call, ``(n_unique, n_fft)`` float64 at most
``n_windows * T`` rows, transformed :data:`~.spectrum._STFT_BLOCK_BYTES` at a time.
"""

from __future__ import annotations

import librosa
import numpy as np

from ..config import FeatureConfig
from .channels import _image_of_spectrum, channel_specs
from .spectrum import (
    _DTYPES,
    _STFT_BLOCK_BYTES,
    Spectrum,
    _stft_window,
    active_frames,
    mel_filters,
)

__all__ = ["frame_keys", "window_images", "window_powers"]

#: Built-in channels that read the mel power spectrogram.
_MEL_CHANNELS = frozenset({"mel", "mfcc", "delta"})


def frame_keys(
    starts: np.ndarray, *, length: int, n_fft: int, hop_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """What every centred STFT frame of every window reads: ``(first, lo, hi)`` per frame.

    Frame ``t`` of the window starting at stream sample ``s`` covers the stream samples
    ``[first, first + n_fft)`` with ``first = s + t * hop_length - n_fft // 2``; only
    ``[lo, hi) = [max(first, s), min(first + n_fft, s + length))`` are the window's samples,
    the rest is zero padding.  Two frames with equal keys hold equal samples.

    Parameters
    ----------
    starts : numpy.ndarray of int, shape (n_windows,)
        Stream sample of each window's first sample.
    length : int
        Samples per window.
    n_fft, hop_length : int

    Returns
    -------
    keys : numpy.ndarray of int64, shape (n_windows * T, 3)
        Window-major: rows ``[i * T, (i + 1) * T)`` are window ``i``'s frames.
    n_frames : int
        ``T = 1 + length // hop_length``.
    """
    t = np.arange(1 + length // hop_length, dtype=np.int64)
    s = np.asarray(starts, dtype=np.int64)[:, None]
    first = s + t[None, :] * hop_length - n_fft // 2
    lo = np.maximum(first, s)
    hi = np.minimum(first + n_fft, s + length)
    return np.stack([first, lo, hi], axis=-1).reshape(-1, 3), len(t)


def window_powers(
    windows: np.ndarray, starts: np.ndarray, *, config: FeatureConfig
) -> tuple[np.ndarray, int]:
    """The power spectrogram of every window, each distinct frame transformed once.

    Parameters
    ----------
    windows : numpy.ndarray, shape (n_windows, length)
        Samples of each window (in ``config.precision``); windows that overlap in the
        stream must hold the same samples where they overlap.
    starts : numpy.ndarray of int, shape (n_windows,)
        Stream sample of each window's first sample.
    config : FeatureConfig
        ``n_fft``, ``hop_length``, ``win_length``.

    Returns
    -------
    powers : numpy.ndarray, shape (n_windows, T, 1 + n_fft // 2), dtype of ``windows``
        ``powers[i].T`` is ``power_spectrogram(windows[i], ...)``.
    n_unique : int
        Frames transformed.
    """
    n_fft, hop = int(config.n_fft), int(config.hop_length)
    n, length = windows.shape
    keys, n_t = frame_keys(starts, length=length, n_fft=n_fft, hop_length=hop)
    unique, first_of, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    owner = first_of // n_t  # a window holding each unique frame
    base = np.asarray(starts, dtype=np.int64)[owner]
    window = _stft_window(n_fft, int(config.win_length or n_fft))
    fft = librosa.get_fftlib()
    complex_dtype = librosa.util.dtype_r2c(windows.dtype)
    power = np.empty((len(unique), 1 + n_fft // 2), dtype=windows.dtype)
    step = max(1, _STFT_BLOCK_BYTES // (8 * n_fft))
    offsets = np.arange(n_fft, dtype=np.int64)
    for a in range(0, len(unique), step):
        b = min(a + step, len(unique))
        first, lo, hi = unique[a:b, 0:1], unique[a:b, 1:2], unique[a:b, 2:3]
        pos = first + offsets[None, :]  # stream samples of each frame
        inside = (pos >= lo) & (pos < hi)
        local = np.where(inside, pos - base[a:b, None], 0)
        frames = np.where(inside, windows[owner[a:b, None], local], 0).astype(windows.dtype)
        spectrum = fft.rfft(window * frames, axis=-1)
        if spectrum.dtype != complex_dtype:  # as librosa: the float64 FFT stored as complex64
            spectrum = spectrum.astype(complex_dtype)
        power[a:b] = np.abs(spectrum)
    np.square(power, out=power)
    return power[inverse].reshape(n, n_t, -1), len(unique)


def window_images(
    windows: np.ndarray, starts: np.ndarray, *, sample_rate: int, config: FeatureConfig
) -> np.ndarray:
    """The image of every window, as :func:`~emo_utils.features.compute_image` of each alone.

    Parameters
    ----------
    windows : numpy.ndarray, shape (n_windows, length)
        Mono windows at ``sample_rate`` (already padded to the wanted duration), cut from
        one stream: overlapping windows hold the same samples where they overlap.
    starts : numpy.ndarray of int, shape (n_windows,)
        Stream sample of each window's first sample (windows of unrelated clips: any
        starts at least ``length + n_fft`` apart, e.g. ``i * (length + n_fft)``).
    sample_rate : int
    config : FeatureConfig

    Returns
    -------
    numpy.ndarray of float32, shape (n_windows, len(config.channels), config.n_mels, T)

    Raises
    ------
    ConfigError
        Unknown channel name.
    """
    specs = channel_specs(config.channels)
    x = np.asarray(windows).astype(_DTYPES[config.precision], copy=False)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"window_images needs (n_windows, length > 0) windows, got {x.shape}")
    powers, _ = window_powers(x, starts, config=config)
    # (bins, T) C-ordered per window: numpy's einsum (mel, chroma) is many times faster on
    # it than on the Fortran-ordered spectrogram of librosa.stft, with the same values.
    powers = np.ascontiguousarray(powers.transpose(0, 2, 1))
    mel = None
    if any(name in _MEL_CHANNELS for name in config.channels):  # one product for every window
        basis = mel_filters(
            sample_rate=int(sample_rate),
            n_fft=config.n_fft,
            n_mels=config.n_mels,
            fmin=config.fmin,
            fmax=config.fmax,
        )
        mel = np.matmul(basis, powers)
    out = None
    for i, y in enumerate(x):
        spectrum = Spectrum(y, sample_rate=sample_rate, config=config)
        active = active_frames(spectrum.y, n_fft=config.n_fft, hop_length=config.hop_length)
        # The cached properties of Spectrum, filled with what was computed for every window.
        spectrum.__dict__["active"] = active
        spectrum.__dict__["power"] = powers[i]
        if mel is not None:
            spectrum.__dict__["mel_power"] = mel[i]
        image = _image_of_spectrum(spectrum, config=config, specs=specs)
        if out is None:
            out = np.empty((len(x), *image.shape), dtype=np.float32)
        out[i] = image
    return out
