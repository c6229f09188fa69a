"""The small interface the serving activities classify through, and its default adapter.

The activities only need :class:`PieceClassifier`: ``classes``, ``sample_rate``, the
timeline's ``window``/``hop``, ``classify(waveform, sample_rate=...) -> probabilities`` for a
stream's piece and ``timeline(waveform, sample_rate=...) -> WindowProbabilities`` for a piece
of a recording file.  :class:`RunPieceClassifier` is the default: a trained run folder as
:class:`emo_utils.timeline.RunClassifier` serves it (every model family it computes inputs
for, the run's chosen ensemble method fitted on OOF), loaded once per process
(:func:`run_classifier`), applied to the timeline windows of a piece (the windows and batches
of :func:`emo_utils.timeline.timelines.classify_stream`, the code ``detect`` runs).
"""

from __future__ import annotations

import functools
import os
import threading
from typing import NamedTuple, Protocol

import numpy as np

from ..errors import AudioError, TrainingError
from ..timeline import RunClassifier
from ..timeline.timelines import classify_stream, window_samples

__all__ = ["PieceClassifier", "RunPieceClassifier", "WindowProbabilities", "run_classifier"]

#: ``ensemble.pool`` -> how a piece's window probabilities are pooled, per class.
_POOLS = {"mean": np.mean, "max": np.max}


class WindowProbabilities(NamedTuple):
    """The timeline windows of a piece of audio and their class probabilities.

    Attributes
    ----------
    starts, ends : numpy.ndarray of int, shape (n,)
        Sample positions of each window in the piece (``ends`` one past its last sample).
    probabilities : numpy.ndarray of float64, shape (n, n_classes)
    """

    starts: np.ndarray
    ends: np.ndarray
    probabilities: np.ndarray


class PieceClassifier(Protocol):
    """What the serving activities need from a model.

    Attributes
    ----------
    classes : tuple of str
    sample_rate : int
        Rate the pieces are decoded to.
    window, hop : int
        The timeline's window and hop in samples (a recording's pieces are planned on them).
    """

    classes: tuple[str, ...]
    sample_rate: int
    window: int
    hop: int

    def classify(self, waveform: np.ndarray, *, sample_rate: int) -> np.ndarray:
        """Probabilities of one piece, shape ``(len(classes),)``."""

    def timeline(self, waveform: np.ndarray, *, sample_rate: int) -> WindowProbabilities:
        """The windows (``window`` samples every ``hop``) of a piece and their probabilities."""

    def pool(self, probabilities: np.ndarray) -> np.ndarray:
        """One piece's probabilities ``(n_classes,)`` from its windows' ``(n, n_classes)``."""


class RunPieceClassifier:
    """A trained run's ensemble over pieces of audio, through :class:`RunClassifier`.

    A piece is cut into the timeline's windows (:class:`~emo_utils.timeline.buffer.
    WindowBuffer`: the run's window, ``audio.duration``, every half window, the last one
    aligned to the piece's end; a piece shorter than one window is one padded window).
    :meth:`timeline` returns every window's probabilities; :meth:`classify` pools them per
    class as the run pools views (``ensemble.pool``: mean, or max for multi-label runs).

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
        self.window, self.hop = window_samples(self.inner)
        self._pool = _POOLS[self.inner.config.ensemble.pool]
        self._lock = threading.Lock()

    def _check_rate(self, sample_rate: int) -> None:
        if sample_rate != self.sample_rate:
            raise TrainingError(
                f"piece at {sample_rate} Hz given to a run trained at {self.sample_rate} Hz"
            )

    def timeline(self, waveform: np.ndarray, *, sample_rate: int) -> WindowProbabilities:
        """Every timeline window of one piece and its probabilities.

        The windows and their probabilities are those :func:`emo_utils.timeline.timelines.
        file_timeline` gives for the same samples, so the pieces of a recording planned on
        :attr:`window` and :attr:`hop` give the file's timeline (see
        :meth:`~.activities.ServingActivities.plan_pieces`).

        Parameters
        ----------
        waveform : numpy.ndarray, shape (n,)
            Mono samples at :attr:`sample_rate`, ``n >= 1``.
        sample_rate : int
            Must equal :attr:`sample_rate`.

        Returns
        -------
        WindowProbabilities

        Raises
        ------
        TrainingError
            ``sample_rate`` is not the run's.
        AudioError
            Empty piece or NaN/inf samples.
        """
        self._check_rate(sample_rate)
        starts, ends, probs = [], [], []
        with self._lock:  # one forward pass at a time per process: the models are shared
            for batch, p in classify_stream(
                self.inner,
                [np.asarray(waveform, dtype=np.float32)],
                window=self.window,
                hop=self.hop,
            ):
                starts.extend(w.start for w in batch)
                ends.extend(w.end for w in batch)
                probs.append(p)
        if not probs:
            raise AudioError("<piece>", "no samples")
        return WindowProbabilities(
            np.asarray(starts, dtype=np.int64),
            np.asarray(ends, dtype=np.int64),
            np.concatenate(probs),
        )

    def pool(self, probabilities: np.ndarray) -> np.ndarray:
        """Windows' probabilities ``(n, n_classes)`` pooled per class (``ensemble.pool``)."""
        return self._pool(np.asarray(probabilities), axis=0)

    def classify(self, waveform: np.ndarray, *, sample_rate: int) -> np.ndarray:
        """Probabilities of one piece (its windows' pooled).

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
        return self.pool(self.timeline(waveform, sample_rate=sample_rate).probabilities)


@functools.lru_cache(maxsize=4)
def run_classifier(run_dir: str, device: str | None = None) -> RunPieceClassifier:
    """The :class:`RunPieceClassifier` of ``run_dir``, built once per process."""
    return RunPieceClassifier(run_dir, device=device)
