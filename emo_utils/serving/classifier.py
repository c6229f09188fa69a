"""The small interface the serving activities classify through, and its default adapter.

The activities only need :class:`PieceClassifier`: ``classes``, ``sample_rate`` and
``classify(waveform, sample_rate=...) -> probabilities``.  :class:`RunPieceClassifier` is the
default: a trained run folder as :class:`emo_utils.timeline.RunClassifier` serves it (every
model family it computes inputs for, the run's chosen ensemble method fitted on OOF), loaded
once per process (:func:`run_classifier`), applied to the windows of a piece.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Protocol

import numpy as np

from ..errors import TrainingError
from ..timeline import RunClassifier

__all__ = ["PieceClassifier", "RunPieceClassifier", "run_classifier"]

#: ``ensemble.pool`` -> how a piece's window probabilities are pooled, per class.
_POOLS = {"mean": np.mean, "max": np.max}


class PieceClassifier(Protocol):
    """What the serving activities need from a model: class names and one piece's probabilities."""

    classes: tuple[str, ...]
    sample_rate: int

    def classify(self, waveform: np.ndarray, *, sample_rate: int) -> np.ndarray:
        """Probabilities of one piece, shape ``(len(classes),)``."""


class RunPieceClassifier:
    """A trained run's ensemble over pieces of audio, through :class:`RunClassifier`.

    A piece longer than the run's window (``audio.duration``) is cut into windows half a
    window apart, the last one aligned to the piece's end, and the windows' probabilities
    are pooled per class as the run pools views (``ensemble.pool``: mean, or max for
    multi-label runs); a shorter piece is one padded window.

    Parameters
    ----------
    run_dir : str or os.PathLike
        A trained run folder (every fold of every ``train.architectures`` entry done).
    device : str, optional
        Default: the GPU when there is one.

    Raises
    ------
    TrainingError, ConfigError, CheckpointError
        As :class:`~emo_utils.timeline.RunClassifier`.
    """

    def __init__(self, run_dir: str | os.PathLike, *, device: str | None = None) -> None:
        self.inner = RunClassifier(run_dir, device=device)
        self.run = self.inner.run
        self.classes = tuple(self.inner.columns)
        self.sample_rate = self.inner.sample_rate
        self._pool = _POOLS[self.inner.config.ensemble.pool]
        self._lock = threading.Lock()

    def windows(self, waveform: np.ndarray) -> np.ndarray:
        """The windows of one piece, shape ``(n, min(len(waveform), window_samples))``."""
        y = np.asarray(waveform, dtype=np.float32)
        w = self.inner.window_samples
        if len(y) <= w:
            return y[None]
        starts = list(range(0, len(y) - w + 1, max(1, w // 2)))
        if starts[-1] != len(y) - w:
            starts.append(len(y) - w)
        return np.stack([y[s : s + w] for s in starts])

    def classify(self, waveform: np.ndarray, *, sample_rate: int) -> np.ndarray:
        """Probabilities of one piece.

        Parameters
        ----------
        waveform : numpy.ndarray, shape (n,)
            Mono samples at :attr:`sample_rate`.
        sample_rate : int
            Must equal :attr:`sample_rate`.

        Returns
        -------
        numpy.ndarray of float64, shape (len(classes),)

        Raises
        ------
        TrainingError
            ``sample_rate`` is not the run's.
        AudioError
            Empty piece or NaN/inf samples.
        """
        if sample_rate != self.sample_rate:
            raise TrainingError(
                f"piece at {sample_rate} Hz given to a run trained at {self.sample_rate} Hz"
            )
        with self._lock:  # one forward pass at a time per process: the models are shared
            probs = self.inner.classify_windows(windows=self.windows(waveform))
        return self._pool(probs, axis=0)


@functools.lru_cache(maxsize=4)
def run_classifier(run_dir: str, device: str | None = None) -> RunPieceClassifier:
    """The :class:`RunPieceClassifier` of ``run_dir``, built once per process."""
    return RunPieceClassifier(run_dir, device=device)
