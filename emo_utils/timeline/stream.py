"""A live stream classified window by window: :class:`StreamClassifier`.

Audio arrives in chunks of any size -- numpy arrays, or raw PCM bytes -- at the stream's
rate; it is mixed to mono, resampled to the run's rate with soxr's streaming resampler when
the rates differ, and cut into windows by the same :class:`~.buffer.WindowBuffer` as offline
timelines (:func:`~.timelines.file_timeline`), so the windows of a stream equal those of the
same audio in a file, and so do their probabilities.  Every window is classified as soon
as the chunk that completes it arrives: the latency is one window's classification, the
memory two windows plus one chunk.

A bad chunk (empty, NaN/inf samples, another rate than the stream's, bytes that are not
whole samples) raises an :class:`~emo_utils.errors.AudioError` saying why and is dropped;
the stream goes on with the next chunk as if the bad one never came.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import soxr

from ..errors import AudioError
from .buffer import WindowBuffer, stream_audio
from .classifier import RunClassifier
from .timelines import classify_windows, window_samples

__all__ = ["PCM_FORMATS", "StreamClassifier", "WindowPrediction", "stream_file"]

#: Raw byte formats: name -> (numpy dtype, scale to [-1, 1]).
PCM_FORMATS = {
    "int16": (np.dtype("<i2"), 1 / 32768),
    "int32": (np.dtype("<i4"), 1 / 2147483648),
    "float32": (np.dtype("<f4"), 1.0),
}

_SOURCE = "<stream>"


@dataclass(frozen=True)
class WindowPrediction:
    """The probabilities of one window of a stream.

    Attributes
    ----------
    start, end : float
        Seconds from the start of the stream.
    probabilities : numpy.ndarray of float64, shape (n_outputs,)
        In :attr:`RunClassifier.columns` order.
    label : str
        The most probable class.
    seconds : float
        Time spent classifying the batch of windows this one came in (its latency once the
        chunk that completed it arrived).
    """

    start: float
    end: float
    probabilities: np.ndarray
    label: str
    seconds: float


class StreamClassifier:
    """Classify a live stream window by window (see the module doc).

    Parameters
    ----------
    classifier : RunClassifier
        The trained run.
    sample_rate : int, optional
        Rate of the incoming audio (default: the run's, ``audio.sample_rate``).
    window, hop : float, optional
        Seconds (defaults: the run's ``audio.duration``, half of it).
    channels : int
        Interleaved channels of raw byte chunks (numpy chunks give theirs by their shape).
    pcm : {"int16", "int32", "float32"}
        Sample format of raw byte chunks (little-endian).

    Examples
    --------
    >>> stream = StreamClassifier(RunClassifier("runs/demo"))    # doctest: +SKIP
    >>> for chunk in microphone():                               # doctest: +SKIP
    ...     for p in stream.push(chunk):
    ...         print(p.start, p.label)
    """

    def __init__(
        self,
        classifier: RunClassifier,
        *,
        sample_rate: int | None = None,
        window: float | None = None,
        hop: float | None = None,
        channels: int = 1,
        pcm: str = "int16",
    ) -> None:
        if pcm not in PCM_FORMATS:
            raise AudioError(_SOURCE, f"unknown PCM format {pcm!r} (known: {list(PCM_FORMATS)})")
        if channels < 1:
            raise AudioError(_SOURCE, f"channels must be >= 1, got {channels}")
        self.classifier = classifier
        self.sample_rate = int(sample_rate or classifier.sample_rate)
        self.channels = int(channels)
        self.pcm = pcm
        w, h = window_samples(classifier, window=window, hop=hop)
        self._buffer = WindowBuffer(window=w, hop=h)
        self._resampler = self._new_resampler()

    def _new_resampler(self) -> soxr.ResampleStream | None:
        if self.sample_rate == self.classifier.sample_rate:
            return None
        return soxr.ResampleStream(
            self.sample_rate, self.classifier.sample_rate, 1, dtype="float32", quality="HQ"
        )

    @property
    def seconds(self) -> float:
        """Seconds of audio received so far (at the run's rate, after resampling)."""
        return self._buffer.total / self.classifier.sample_rate

    def _samples(self, chunk: np.ndarray | bytes | bytearray | memoryview) -> np.ndarray:
        """A chunk as mono float32, checked; raises before changing any state."""
        if isinstance(chunk, (bytes, bytearray, memoryview)):
            dtype, scale = PCM_FORMATS[self.pcm]
            raw = bytes(chunk)
            frame = dtype.itemsize * self.channels
            if len(raw) % frame:
                raise AudioError(
                    _SOURCE,
                    f"chunk of {len(raw)} bytes is not whole {self.pcm} frames of "
                    f"{self.channels} channel(s) ({frame} bytes each); chunk dropped",
                )
            x = np.frombuffer(raw, dtype=dtype).astype(np.float32) * np.float32(scale)
            x = x.reshape(-1, self.channels)
        else:
            x = np.asarray(chunk)
            if x.dtype.kind not in "fiu":
                raise AudioError(_SOURCE, f"chunk of dtype {x.dtype} is not audio; chunk dropped")
            if x.ndim not in (1, 2):
                raise AudioError(
                    _SOURCE, f"chunk of shape {x.shape}: expected (n,) or (n, channels); dropped"
                )
            x = x.astype(np.float32, copy=False)
        if x.size == 0:
            raise AudioError(_SOURCE, "empty chunk (no samples); chunk dropped")
        if not np.isfinite(x).all():
            raise AudioError(_SOURCE, "chunk has NaN/inf samples; chunk dropped")
        return x.mean(axis=1, dtype=np.float32) if x.ndim == 2 else x

    def _predict(self, windows: list) -> list[WindowPrediction]:
        if not windows:
            return []
        clf = self.classifier
        began = time.perf_counter()
        probs = classify_windows(clf, windows)  # as the offline timeline classifies them
        spent = time.perf_counter() - began
        rate = clf.sample_rate
        return [
            WindowPrediction(
                start=w.start / rate,
                end=w.end / rate,
                probabilities=p,
                label=clf.columns[int(np.argmax(p))],
                seconds=spent,
            )
            for w, p in zip(windows, probs, strict=True)
        ]

    def push(
        self, chunk: np.ndarray | bytes | bytearray | memoryview, *, sample_rate: int | None = None
    ) -> list[WindowPrediction]:
        """Add a chunk; return the predictions of the windows it completes.

        Parameters
        ----------
        chunk : numpy.ndarray of shape (n,) or (n, channels), or bytes
            Audio at the stream's rate: floats in [-1, 1] or integers, or raw PCM bytes
            (``pcm``, ``channels``).
        sample_rate : int, optional
            The chunk's rate, if the source says it; it must equal the stream's.

        Returns
        -------
        list of WindowPrediction
            Oldest first; empty until a window is complete.

        Raises
        ------
        AudioError
            A bad chunk (the stream is unchanged and keeps working).
        """
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            raise AudioError(
                _SOURCE,
                f"chunk at {sample_rate} Hz in a {self.sample_rate} Hz stream; chunk dropped "
                "(open a StreamClassifier with sample_rate= for that rate)",
            )
        x = self._samples(chunk)
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x)
        return self._predict(self._buffer.push(x))

    def close(self) -> list[WindowPrediction]:
        """End the stream: the predictions of its last windows (the end-aligned one), if any.

        The classifier is then ready for a new stream.
        """
        windows = []
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            windows = self._buffer.push(tail)
        out = self._predict(windows + self._buffer.flush())
        self._resampler = self._new_resampler()
        return out


def stream_file(
    classifier: RunClassifier,
    path: str | os.PathLike,
    *,
    chunk: float = 0.5,
    window: float | None = None,
    hop: float | None = None,
) -> Iterator[WindowPrediction]:
    """Classify a file as if it were streamed in ``chunk``-second pieces.

    The file is decoded block by block at the run's rate and fed to a
    :class:`StreamClassifier` ``chunk`` seconds at a time.

    Yields
    ------
    WindowPrediction
        One per window, as soon as the piece that completes it is pushed.
    """
    if not chunk > 0:
        raise AudioError(_SOURCE, f"chunk must be > 0 seconds, got {chunk}")
    stream = StreamClassifier(classifier, window=window, hop=hop)
    size = max(1, round(chunk * classifier.sample_rate))
    carry = np.zeros(0, dtype=np.float32)
    for block in stream_audio(path, sample_rate=classifier.sample_rate):
        carry = np.concatenate([carry, block])
        while len(carry) >= size:
            yield from stream.push(carry[:size])
            carry = carry[size:]
    if len(carry):
        yield from stream.push(carry)
    yield from stream.close()
