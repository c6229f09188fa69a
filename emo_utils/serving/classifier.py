"""The small interface the serving activities classify through, and its default adapter.

The activities only need :class:`PieceClassifier`: ``classes`` and
``classify(waveform, sample_rate=...) -> probabilities``.  :class:`RunPieceClassifier` is the
default: a trained run folder, its fold models loaded once (cached per process by
:func:`run_classifier`), each piece turned into the run's image exactly as the feature cache
does (:func:`emo_utils.audio.pad_clip`, :func:`emo_utils.features.compute_image`) and
predicted by :func:`emo_utils.infer.predict.predict_test` with every window of the piece
(``ensemble.tta_windows``), the architectures' probabilities averaged.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any, Protocol

import numpy as np
import torch

from ..audio import pad_clip
from ..errors import TrainingError
from ..features import FeatureStore, compute_image, n_frames
from ..infer.predict import predict_test
from ..models import load_fold_model, model_inputs
from ..runs import RunDir

__all__ = ["PieceClassifier", "RunPieceClassifier", "run_classifier"]


class PieceClassifier(Protocol):
    """What the serving activities need from a model: class names and one piece's probabilities."""

    classes: tuple[str, ...]
    sample_rate: int

    def classify(self, waveform: np.ndarray, *, sample_rate: int) -> np.ndarray:
        """Probabilities of one piece, shape ``(len(classes),)``."""


class RunPieceClassifier:
    """A trained run's ensemble over pieces of audio (image-input model families).

    Parameters
    ----------
    run_dir : str or os.PathLike
        A trained run folder (every fold of every ``train.architectures`` entry done).
    device : str, optional
        Default: the GPU when there is one.

    Raises
    ------
    TrainingError
        The run is not fully trained, or one of its models needs an input other than the
        image (``classical:``, ``hf:`` models are not served yet).
    """

    def __init__(self, run_dir: str | os.PathLike, *, device: str | None = None) -> None:
        self.run = RunDir(run_dir)
        config = self.run.read_config()
        archs = list(config.train.architectures)
        self.run.require_trained(archs, config.train.n_folds)
        other = [kind for kind in model_inputs(archs) if kind != "image"]
        if other:
            raise TrainingError(
                f"{self.run.path}: serving supports image models only; the run's models also "
                f"need {other}"
            )
        # Every window of a piece counts (max_duration only bounds what a cache keeps).
        self.config = config.override(
            {"ensemble.tta_windows": True, "audio.max_duration": max(3600.0, config.audio.duration)}
        )
        self.classes = self.run.read_classes()
        self.sample_rate = config.audio.sample_rate
        self.device = device
        self._window_frames = n_frames(
            config.audio.n_samples, hop_length=config.features.hop_length
        )
        self._models: dict[tuple[str, int], torch.nn.Module] = {}
        self._lock = threading.Lock()

    def _load(self, run_dir: Any, *, arch: str, fold: int, device: torch.device) -> torch.nn.Module:
        """:func:`emo_utils.models.load_fold_model`, once per fold model."""
        key = (arch, fold)
        if key not in self._models:
            self._models[key] = load_fold_model(run_dir, arch=arch, fold=fold, device=device)
        return self._models[key]

    def classify(self, waveform: np.ndarray, *, sample_rate: int) -> np.ndarray:
        """Probabilities of one piece.

        Parameters
        ----------
        waveform : numpy.ndarray, shape (n,)
            Mono samples at :attr:`sample_rate` (shorter pieces are padded as in training).
        sample_rate : int
            Must equal :attr:`sample_rate`.

        Returns
        -------
        numpy.ndarray of float64, shape (len(classes),)
        """
        if sample_rate != self.sample_rate:
            raise TrainingError(
                f"piece at {sample_rate} Hz given to a run trained at {self.sample_rate} Hz"
            )
        audio = self.config.audio
        y = pad_clip(np.asarray(waveform, np.float32), size=audio.n_samples, mode=audio.pad)
        image = compute_image(y, sample_rate=sample_rate, config=self.config.features)
        store = FeatureStore.from_arrays(
            ["piece"], [image], window_frames=self._window_frames, sample_rate=sample_rate
        )
        with self._lock:  # one forward pass at a time per process: the models are shared
            probs = predict_test(
                store,
                run_dir=self.run,
                config=self.config,
                device=self.device,
                progress=False,
                write=False,
                loader=self._load,
            )
        return np.mean([p[0] for p in probs.values()], axis=0)


@functools.lru_cache(maxsize=4)
def run_classifier(run_dir: str, device: str | None = None) -> RunPieceClassifier:
    """The :class:`RunPieceClassifier` of ``run_dir``, built once per process."""
    return RunPieceClassifier(run_dir, device=device)
