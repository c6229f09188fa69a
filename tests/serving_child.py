"""A slowed-down classifier for the serving tests' worker processes.

``python -m emo_utils serve worker --classifier serving_child:slow_classifier`` (with this
folder on ``PYTHONPATH``) serves the run's real ensemble, but every piece takes at least
:data:`DELAY_S` seconds longer, so a test can kill the worker while it classifies a piece.
"""

from __future__ import annotations

import os
import time

import numpy as np

from emo_utils.serving.classifier import RunPieceClassifier, WindowProbabilities

#: Extra seconds per piece.
DELAY_S = 0.6


class SlowClassifier:
    """:class:`RunPieceClassifier` that sleeps :data:`DELAY_S` before every piece."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.inner = RunPieceClassifier(run_dir, device="cpu")
        self.classes = self.inner.classes
        self.sample_rate = self.inner.sample_rate
        self.window, self.hop, self.pool = self.inner.window, self.inner.hop, self.inner.pool

    def classify(self, waveform: np.ndarray, *, sample_rate: int) -> np.ndarray:
        """The run's probabilities, :data:`DELAY_S` seconds late."""
        time.sleep(DELAY_S)
        return self.inner.classify(waveform, sample_rate=sample_rate)

    def timeline(self, waveform: np.ndarray, *, sample_rate: int) -> WindowProbabilities:
        """The run's windows, :data:`DELAY_S` seconds late."""
        time.sleep(DELAY_S)
        return self.inner.timeline(waveform, sample_rate=sample_rate)


def slow_classifier(run_dir: str | os.PathLike) -> SlowClassifier:
    """The ``--classifier`` factory."""
    return SlowClassifier(run_dir)
