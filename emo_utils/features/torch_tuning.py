"""The chroma tuning estimate of a whole batch, for the torch feature backend.

:func:`.spectrum.estimate_tuning` (piptrack's peaks, then librosa's ``pitch_tuning``) of every
clip of a batch at once: :func:`batch_spectral_peaks` finds the peaks of every active frame
in torch with the exact path's arithmetic, and :func:`batch_pitch_tuning` computes each
clip's median and tuning histogram for all clips together in numpy, so the torch backend
picks the same chroma filter bank as the librosa path (tests/test_torch_features.py).
"""

from __future__ import annotations

import librosa
import numpy as np
import torch

from .spectrum import _PIPTRACK_DEFAULTS, _piptrack_band

__all__ = ["batch_pitch_tuning", "batch_spectral_peaks"]


def batch_spectral_peaks(
    power: torch.Tensor, *, sample_rate: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`.spectrum.spectral_peaks` of every frame of a batch, in torch.

    The same peaks (local maxima above ``threshold * max`` of their frame inside piptrack's
    band) and the same values: the parabolic fit in float64, the rest in float32, the
    operations of :func:`.spectrum.spectral_peaks` one by one (each one correctly rounded
    in numpy and torch alike).

    Parameters
    ----------
    power : torch.Tensor, shape (N, 1 + n_fft // 2), float32
        Power spectrum of each frame (frames in rows).
    sample_rate : float

    Returns
    -------
    frames : torch.Tensor of int64, shape (n_peaks,)
        Row of ``power`` of each peak.
    pitches, mags : torch.Tensor, shape (n_peaks,), float32
        As :func:`.spectrum.spectral_peaks` returns them.
    """
    n_bins = power.shape[-1]
    n_fft = 2 * (n_bins - 1)
    lo, hi = _piptrack_band(float(sample_rate), n_bins)
    if lo > hi or power.shape[0] == 0:
        empty = power.new_zeros(0)
        return torch.zeros(0, dtype=torch.int64, device=power.device), empty, empty
    ref = _PIPTRACK_DEFAULTS["threshold"] * power.amax(dim=-1, keepdim=True)
    band = power[:, lo - 1 : hi + 2]
    masked = band * (band > ref)
    centre = masked[:, 1:-1]
    frames, cols = torch.nonzero(
        (centre > masked[:, :-2]) & (centre >= masked[:, 2:]), as_tuple=True
    )
    x0 = band[:, 1:-1][frames, cols]
    below = band[:, :-2][frames, cols]
    above = band[:, 2:][frames, cols]
    diff = above - below
    a = (above + below).to(torch.float64) - 2 * x0.to(torch.float64)
    b = diff.to(torch.float64) / 2
    outside = b.abs() >= a.abs()
    shift = (-b / torch.where(outside, 1.0, a)).to(power.dtype)
    shift[outside] = 0
    avg = diff / 2.0
    bins = (cols + lo).to(torch.float64)
    pitches = ((bins + shift.to(torch.float64)) * float(sample_rate) / n_fft).to(power.dtype)
    mags = x0 + 0.5 * avg * shift
    return frames, pitches, mags


def _sorted_in_groups(values: np.ndarray, *, groups: np.ndarray) -> np.ndarray:
    """``values`` (float32, not NaN) sorted by ``groups`` (non-negative ints), then by value.

    One radix sort of uint64 keys: the group in the high 32 bits, the float32 bits made
    order-preserving (negative values' bits flipped, the others' sign bit set) in the low
    ones; several times faster than :func:`numpy.lexsort`.
    """
    bits = values.astype(np.float32).view(np.uint32)
    flip = np.where(bits >> 31 == 1, np.uint32(0xFFFFFFFF), np.uint32(0x80000000))
    keys = (groups.astype(np.uint64) << np.uint64(32)) | (bits ^ flip).astype(np.uint64)
    low = np.sort(keys, kind="stable").astype(np.uint32)
    unflip = np.where(low >> 31 == 1, np.uint32(0x80000000), np.uint32(0xFFFFFFFF))
    return (low ^ unflip).view(np.float32)


def batch_pitch_tuning(
    pitches: np.ndarray, *, mags: np.ndarray, clips: np.ndarray, n_clips: int, bins_per_octave: int
) -> np.ndarray:
    """The tail of :func:`.spectrum.estimate_tuning` for the peaks of many clips at once.

    Per clip: the pitched peaks with at least their median magnitude, then
    :func:`librosa.pitch_tuning` (the residual of each pitch to the chroma bins, the peak of
    its histogram at 0.01-bin resolution); 0.0 for a clip without a pitched peak.  The
    median (``np.median``: the mean of the two middle values for an even count, in the
    magnitudes' dtype) and the histogram (bins ``[e_i, e_{i+1})``, compared in float64 as
    ``np.histogram`` compares) are computed for all clips by sorting and counting once.

    Parameters
    ----------
    pitches, mags : numpy.ndarray, shape (n_peaks,), float32
        :func:`batch_spectral_peaks`'s values.
    clips : numpy.ndarray of int, shape (n_peaks,)
        The clip of each peak, in ``[0, n_clips)``.
    n_clips, bins_per_octave : int

    Returns
    -------
    numpy.ndarray, shape (n_clips,), float64
        Each clip's tuning, in ``[-0.5, 0.5)`` bins.
    """
    pitched = pitches > 0
    pitches, mags, clips = pitches[pitched], mags[pitched], clips[pitched]
    counts = np.bincount(clips, minlength=n_clips)
    has = counts > 0
    ordered = _sorted_in_groups(mags, groups=clips)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))[has]
    low = ordered[starts + (counts[has] - 1) // 2]
    high = ordered[starts + counts[has] // 2]
    median = np.zeros(n_clips, dtype=mags.dtype)
    median[has] = np.where(counts[has] % 2 == 1, low, (low + high) / mags.dtype.type(2))
    selected = mags >= median[clips]
    pitches, clips = pitches[selected], clips[selected]
    # librosa.pitch_tuning (resolution 0.01), all clips at once.
    residual = np.mod(bins_per_octave * librosa.hz_to_octs(pitches), 1.0)
    residual[residual >= 0.5] -= 1.0
    edges = np.linspace(-0.5, 0.5, 101)
    n_bins = len(edges) - 1
    index = np.searchsorted(edges, residual.astype(np.float64), side="right") - 1
    index[residual == edges[-1]] = n_bins - 1  # np.histogram's last bin is closed
    inside = (index >= 0) & (index < n_bins)
    histogram = np.bincount(
        clips[inside] * n_bins + index[inside], minlength=n_clips * n_bins
    ).reshape(n_clips, n_bins)
    return np.where(has, edges[np.argmax(histogram, axis=-1)], 0.0)
