"""Streamed decoding of files of any length, and the window ring buffer both timelines and streams use.

* :func:`stream_audio` -- a file as mono float32 blocks at a given rate, decoded a block at
  a time (libsndfile blocks, or PyAV frames for the formats libsndfile does not read) and
  resampled with soxr's streaming resampler (the ``soxr_hq`` quality librosa uses), so a
  one-hour file is never held whole.
* :class:`WindowBuffer` -- samples pushed in pieces of any size come out as windows of
  ``window`` samples every ``hop`` samples, in at most ``2 * window`` samples of memory.

Window convention (the same as :meth:`emo_utils.features.FeatureStore.window_starts`):
windows start at ``0, hop, 2 hop, ...`` while a whole window fits; at the end
(:meth:`WindowBuffer.flush`) one more window is aligned to the end of the audio when the
last one did not reach it, and audio shorter than one window gives one short window (the
classifier pads it as ``audio.pad`` pads short clips).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import soxr

from ..audio import _av_frames as av_frames
from ..audio import _open, _open_av, _uses_av
from ..errors import AudioError

__all__ = ["Window", "WindowBuffer", "stream_audio"]

#: Native frames libsndfile reads per block.
BLOCK_FRAMES = 1 << 16


def _mono(frames: np.ndarray) -> np.ndarray:
    """``(n, channels)`` -> ``(n,)`` float32, the mean of the channels (as librosa.to_mono)."""
    if frames.ndim == 1:
        return frames.astype(np.float32, copy=False)
    if frames.shape[1] == 1:
        return np.ascontiguousarray(frames[:, 0], dtype=np.float32)
    return np.mean(frames, axis=1, dtype=np.float32)


def _native_blocks(path: str | os.PathLike) -> tuple[int, Iterator[np.ndarray]]:
    """``(native rate, iterator of (n, channels) float32 blocks)`` of a whole file."""
    if _uses_av(path):

        def av_blocks() -> Iterator[np.ndarray]:
            with _open_av(path) as (container, stream):
                yield from av_frames(container, stream)

        with _open_av(path) as (_container, stream):
            native = int(stream.codec_context.sample_rate or stream.rate or 0)
        if native <= 0:
            raise AudioError(path, "audio stream without a sample rate")
        return native, av_blocks()
    with _open(path) as fh:
        native = int(fh.samplerate)

    def sf_blocks() -> Iterator[np.ndarray]:
        with _open(path) as fh:
            yield from fh.blocks(blocksize=BLOCK_FRAMES, dtype="float32", always_2d=True)

    return native, sf_blocks()


def stream_audio(path: str | os.PathLike, *, sample_rate: int) -> Iterator[np.ndarray]:
    """Decode a file block by block to mono float32 at ``sample_rate``.

    Parameters
    ----------
    path : str or os.PathLike
        Any format :func:`emo_utils.audio.load_audio` reads.
    sample_rate : int
        Output rate (Hz).

    Yields
    ------
    numpy.ndarray of float32, shape (n,)
        Consecutive pieces of the file (sizes vary; some may be empty).

    Raises
    ------
    AudioError
        Missing, empty or unreadable file, no samples, or NaN/inf samples (naming the
        second where the first one is).
    """
    native, blocks = _native_blocks(path)
    resampler = (
        soxr.ResampleStream(native, sample_rate, 1, dtype="float32", quality="HQ")
        if native != sample_rate
        else None
    )
    seen = 0
    for block in blocks:
        if not np.isfinite(block).all():
            bad = int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
            raise AudioError(path, f"NaN/inf sample(s), first at {(seen + bad) / native:.3f} s")
        seen += len(block)
        y = _mono(block)
        yield resampler.resample_chunk(y) if resampler is not None else y
    if seen == 0:
        raise AudioError(path, "no audio samples could be decoded")
    if resampler is not None:
        yield resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


@dataclass(frozen=True)
class Window:
    """One window of audio.

    Attributes
    ----------
    start : int
        Its first sample (from the start of the stream).
    samples : numpy.ndarray of float32, shape (n,)
        ``n == window`` except for a stream shorter than one window.
    """

    start: int
    samples: np.ndarray

    @property
    def end(self) -> int:
        """One past its last sample."""
        return self.start + len(self.samples)


class WindowBuffer:
    """Windows of ``window`` samples every ``hop`` samples from pieces of any size.

    A fixed buffer of ``2 * window`` samples: pushing never grows memory, whatever the
    length of the stream or the size of the pieces.

    Parameters
    ----------
    window : int
        Samples per window, >= 1.
    hop : int
        Samples between window starts, >= 1 (larger than ``window`` skips audio).

    Examples
    --------
    >>> buf = WindowBuffer(window=4, hop=2)
    >>> [w.start for w in buf.push(np.arange(7, dtype=np.float32))]
    [0, 2]
    >>> [(w.start, w.samples.tolist()) for w in buf.flush()]
    [(3, [3.0, 4.0, 5.0, 6.0])]
    """

    def __init__(self, *, window: int, hop: int) -> None:
        if window < 1 or hop < 1:
            raise ValueError(f"window and hop must be >= 1 sample, got {window} and {hop}")
        self.window = int(window)
        self.hop = int(hop)
        self._buf = np.zeros(2 * self.window, dtype=np.float32)
        self._reset()

    def _reset(self) -> None:
        self._n = 0  # valid samples in _buf
        self._base = 0  # stream position of _buf[0]
        self._next = 0  # stream position of the next window's start
        self._emitted_end = 0  # end of the last window given out (0: none yet)

    @property
    def total(self) -> int:
        """Samples pushed so far."""
        return self._base + self._n

    def push(self, samples: np.ndarray) -> list[Window]:
        """Add samples; return the windows they complete (oldest first).

        Parameters
        ----------
        samples : numpy.ndarray, shape (n,)
            Mono audio, any ``n >= 0``.

        Returns
        -------
        list of Window
        """
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        out: list[Window] = []
        w = self.window
        while len(x):
            take = min(len(x), len(self._buf) - self._n)
            self._buf[self._n : self._n + take] = x[:take]
            self._n += take
            x = x[take:]
            while self._next + w <= self.total:
                lo = self._next - self._base
                out.append(Window(self._next, self._buf[lo : lo + w].copy()))
                self._emitted_end = self._next + w
                self._next += self.hop
            keep_from = max(self._base, min(self._next, self.total - w))
            drop = keep_from - self._base
            if drop > 0:
                self._buf[: self._n - drop] = self._buf[drop : self._n]
                self._n -= drop
                self._base = keep_from
        return out

    def flush(self) -> list[Window]:
        """The last window at the end of the stream (see the module doc); then reset."""
        out: list[Window] = []
        total, w = self.total, self.window
        if total and self._emitted_end == 0:  # shorter than one window
            out.append(Window(0, self._buf[: self._n].copy()))
        elif self._emitted_end and self._emitted_end < total:
            lo = total - w - self._base
            out.append(Window(total - w, self._buf[lo : lo + w].copy()))
        self._reset()
        return out
