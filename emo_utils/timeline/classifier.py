"""A trained run folder as a classifier of audio windows and files: :class:`RunClassifier`.

The run folder is read once: ``config.json``, ``classes.json``, every fold model of every
architecture in ``train.architectures`` (on the GPU when there is one), and the ensemble the
run's submission uses (``ensemble_report.json``'s method, fitted on the run's OOF
predictions as the predict stage fits it; multi-label runs also read the method's
OOF-tuned thresholds from ``thresholds.json``).

No train/serve skew: every input the run's models read is computed by the functions that
fill the cache (:data:`INPUT_KINDS`: images by
:func:`~emo_utils.features.compute_image`, stored in ``features.cache_dtype``; clip
statistics by :func:`~emo_utils.features.clip_statistics`; waveforms of ``hf:`` models at
``audio.waveform_sample_rate``), the torch models run through
:func:`~emo_utils.infer.predict.predict_rows` with the run's views
(:func:`~emo_utils.infer.predict.view_settings`), folds are averaged as
:func:`~emo_utils.infer.predict.predict_test` averages them, and the ensemble combines the
architectures as the submission does.  :meth:`RunClassifier.classify_clip` of a test file
therefore equals the run's own test probabilities of that file.

Speed (timelines and streams): :meth:`RunClassifier.classify_stream_windows` computes the
STFT frames that overlapping windows share once and summarises the clip statistics of a
batch together (equal to :meth:`RunClassifier.classify_windows` within float32 rounding), and
the torch folds run on their ONNX export (ONNX Runtime) where the run has an up-to-date one
(:data:`ENGINES`, ``engine="auto"``).

Examples
--------
>>> clf = RunClassifier("runs/demo")                                  # doctest: +SKIP
>>> clf.classify_windows(windows=np.zeros((2, clf.window_samples)))   # doctest: +SKIP
array([[...], [...]])                                                 # (2, n_classes)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import librosa
import numpy as np
import pandas as pd
import torch

from ..audio import load_clip, pad_clip
from ..config import Config
from ..ensemble import ensemble_options, evaluate_ensembles, make_ensemble, make_multilabel_ensemble
from ..errors import AudioError, ConfigError
from ..features import FeatureStore
from ..features._parallel import _one_blas_thread
from ..infer.onnx_export import (
    ONNX_FILE,
    OnnxFoldModel,
    _up_to_date,
    int8_model_path,
    onnx_model_path,
)
from ..infer.predict import predict_rows, tta_views, view_settings
from ..models import load_fold_model, model_input, resolve_architecture, select_device
from ..models.classical import MODEL_FILE as ESTIMATOR_FILE
from ..models.classical import load_estimator, predict_estimator
from ..models.sed import frame_bounds, frame_probabilities, is_sed_model
from ..runs import RunDir
from ..tasks import get_task
from ..thresholds import tune_thresholds
from .inputs import INPUT_KINDS, SHARED_STORES, WindowInput

__all__ = ["ENGINES", "INPUT_KINDS", "FrameProbabilities", "RunClassifier", "WindowInput"]


# ---------------------------------------------------------------------------- models
def _engine_torch(run: RunDir, arch: str, fold: int, device: torch.device) -> Any:
    return load_fold_model(run.path, arch=arch, fold=fold, device=device)


def _engine_onnx(run: RunDir, arch: str, fold: int, device: torch.device) -> Any:
    return OnnxFoldModel(onnx_model_path(run, arch=arch, fold=fold), spin=False)


def _engine_onnx_int8(run: RunDir, arch: str, fold: int, device: torch.device) -> Any:
    return OnnxFoldModel(int8_model_path(run, arch=arch, fold=fold), spin=False)


def _engine_auto(run: RunDir, arch: str, fold: int, device: torch.device) -> Any:
    onnx_path = run.fold_file(arch, fold, ONNX_FILE)
    model_path = run.fold_file(arch, fold, run.MODEL_FILE)
    # A frame-level (sed:) model's ONNX export gives clip logits only: its frames need torch.
    if (
        not resolve_architecture(arch)[0].frame_level
        and device.type == "cpu"
        and onnx_path.is_file()
        and _up_to_date(onnx_path, model_path)
    ):
        return _engine_onnx(run, arch, fold, device)
    return _engine_torch(run, arch, fold, device)


#: ``engine`` of :class:`RunClassifier` -> loader of a torch-trained fold model
#: (``load(run, arch, fold, device)``): ``"torch"`` the checkpoint; ``"onnx"`` its
#: ``model.onnx`` on ONNX Runtime (``python -m emo_utils export --format onnx`` writes it);
#: ``"auto"`` the ONNX model where the fold has an up-to-date one and the device is the CPU,
#: else (and for ``sed:`` models, whose frames the export does not give) the checkpoint;
#: ``"onnx-int8"`` (opt-in, never chosen by ``"auto"``) its ``model.int8.onnx`` (``export
#: --format onnx-int8``): faster on CPUs with VNNI, probabilities not quite fp32's (README).
ENGINES: dict[str, Callable[[RunDir, str, int, torch.device], Any]] = {
    "auto": _engine_auto,
    "torch": _engine_torch,
    "onnx": _engine_onnx,
    "onnx-int8": _engine_onnx_int8,
}


def _load_torch(clf: RunClassifier, arch: str, fold: int) -> Any:
    return ENGINES[clf.engine](clf.run, arch, fold, clf.device)


def _load_sklearn(clf: RunClassifier, arch: str, fold: int) -> Any:
    return load_estimator(clf.run.fold_file(arch, fold, ESTIMATOR_FILE))


def _predict_torch(clf: RunClassifier, arch: str, model: Any, store: Any) -> np.ndarray:
    family, _ = resolve_architecture(arch)
    if family.check_input is not None:
        family.check_input(arch, model, store)
    return predict_rows(
        model,
        store,
        np.arange(len(store)),
        task=clf.task,
        **view_settings(clf.config),
        batch_size=clf.batch_size,
        device=clf.device,
        mixed_precision=clf.config.train.mixed_precision,
    )


def _predict_sklearn(clf: RunClassifier, arch: str, model: Any, store: Any) -> np.ndarray:
    out = np.full((len(store), len(clf.columns)), np.nan)
    ok = store.ok
    if ok.any():
        out[ok] = predict_estimator(
            model,
            store.matrix(np.flatnonzero(ok)),
            n_outputs=len(clf.columns),
            label_kind=clf.task.label_kind,
        )
    return out


#: ``ModelFamily.trainer`` -> ``(load(clf, arch, fold), predict(clf, arch, model, store))``.
_FAMILY_RUNNERS: dict[str, tuple[Callable[..., Any], Callable[..., np.ndarray]]] = {
    "fastai": (_load_torch, _predict_torch),
    "sklearn": (_load_sklearn, _predict_sklearn),
}


# ---------------------------------------------------------------------------- ensembles
def _single_ensemble(clf: RunClassifier, oof: Any) -> tuple[Any, np.ndarray | None]:
    ec = clf.config.ensemble
    ensemble = make_ensemble(
        clf.method,
        weights=ec.weights or None,
        stacking_model=ec.stacking_model,
        seed=clf.config.train.seed,
        **ensemble_options(clf.config),
    )
    ensemble.fit(oof.probas, oof.y, oof.folds)
    return ensemble, None


def _multi_ensemble(clf: RunClassifier, oof: Any) -> tuple[Any, np.ndarray | None]:
    ec = clf.config.ensemble
    ensemble = make_multilabel_ensemble(
        clf.method,
        weights=ec.weights or None,
        k=ec.vote_k or None,
        threshold_mode=ec.threshold,
        min_positives=ec.min_positives,
        seed=clf.config.train.seed,
        **ensemble_options(clf.config),
    )
    ensemble.fit(oof.probas, oof.y, oof.folds)
    return ensemble, clf.run.read_thresholds(oof.classes)[clf.method]


#: ``Task.label_kind`` -> the fitted ensemble of the run and its thresholds (multi-label).
_ENSEMBLE_BUILDERS = {"single": _single_ensemble, "multi": _multi_ensemble}


# ---------------------------------------------------------------------------- frames
@dataclass(frozen=True)
class FrameProbabilities:
    """Frame-wise probabilities of windows (:meth:`RunClassifier.classify_frames`).

    Attributes
    ----------
    starts, ends : numpy.ndarray of float64, shape (n_frames,)
        Seconds from each window's start that every frame covers (consecutive).
    probabilities : numpy.ndarray of float64, shape (n_windows, n_frames, n_outputs)
        The ensemble's probabilities of every frame, columns in ``columns`` order.
    """

    starts: np.ndarray
    ends: np.ndarray
    probabilities: np.ndarray


def _on_grid(values: np.ndarray, n_frames: int) -> np.ndarray:
    """``(n, T_a, C)`` frames on a grid of ``n_frames`` frames: the frame holding each centre."""
    t = values.shape[1]
    index = np.floor((np.arange(n_frames) + 0.5) * t / n_frames).astype(np.int64)
    return values[:, np.minimum(index, t - 1)]


def _fold_mean(folds: np.ndarray) -> np.ndarray:
    """Mean over the first axis; NaN for a row (axis 1) where any fold has no value."""
    total = folds.sum(axis=0)  # NaN where any fold failed, as predict_test
    ok = np.isfinite(total).reshape(len(total), -1).all(axis=1)
    return np.where(ok.reshape((-1,) + (1,) * (total.ndim - 1)), total / len(folds), np.nan)


# ---------------------------------------------------------------------------- the classifier
class RunClassifier:
    """A trained run folder, loaded once, that classifies audio windows and files.

    Parameters
    ----------
    run_dir : str, os.PathLike or RunDir
        A run folder whose folds have all finished training (``train`` stage) and whose
        OOF predictions exist.
    device : str or torch.device, optional
        Default: the GPU when there is one, else the CPU.
    method : str, optional
        Ensemble method (a name of ``ensemble.method``, ``"best"`` allowed).  Default: the
        method of the run's last submission (``ensemble_report.json``), else
        ``ensemble.method`` of the run's config resolved on its OOF predictions.
    batch_size : int, optional
        Windows per forward pass; default ``2 * train.batch_size``.
    engine : {"auto", "torch", "onnx", "onnx-int8"}
        What runs the torch-trained fold models (:data:`ENGINES`): by default the fold's
        ONNX export on ONNX Runtime where it has an up-to-date one (``python -m emo_utils
        export --run RUN --format onnx``) and the device is the CPU, else the checkpoint.
        ``"onnx-int8"``: the int8 quantisation (``export --format onnx-int8``; opt-in).

    Attributes
    ----------
    run : RunDir
    config : Config
        The run's configuration (``ensemble.method`` set to :attr:`method`).
    task : Task
        The run's task (``data.task``).
    classes : tuple of str
        Class names, in index order.
    columns : list of str
        The probability columns (:meth:`Task.output_columns`; the classes for both tasks).
    method : str
        The ensemble method applied (``"best"`` resolved).
    thresholds : numpy.ndarray of shape (n_classes,) or None
        Multi-label runs: the method's OOF-tuned decision thresholds; ``None`` otherwise.
    frame_level : bool
        Whether an architecture of the run has the frame-level attention head
        (``sed:<name>``, :mod:`emo_utils.models.sed`): :meth:`classify_frames` then gives
        frames finer than a window, and timelines use them.
    device : torch.device
    batch_size : int
    engine : str

    Raises
    ------
    TrainingError
        A fold has not finished training, or an architecture has no OOF predictions.
    ConfigError
        An architecture reads an input this classifier cannot compute (:data:`INPUT_KINDS`),
        or an unknown ``engine``.
    CheckpointError
        A damaged run file (classes, thresholds, a model).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike | RunDir,
        *,
        device: str | torch.device | None = None,
        method: str | None = None,
        batch_size: int | None = None,
        engine: str = "auto",
    ) -> None:
        self.run = RunDir(run_dir)
        config = self.run.read_config()
        self.task = get_task(config.data.task)
        self.architectures = list(config.train.architectures)
        self.run.require_trained(self.architectures, config.train.n_folds)
        for arch in self.architectures:
            kind = resolve_architecture(arch)[0].input
            if kind not in INPUT_KINDS:
                raise ConfigError(
                    "train.architectures",
                    arch,
                    f"reads the input {kind!r}, which RunClassifier cannot compute "
                    f"(known: {sorted(INPUT_KINDS)})",
                )
        self.classes = self.run.read_classes()
        self.columns = self.task.output_columns(self.classes)
        self.device = select_device(device)
        self.batch_size = int(batch_size or 2 * config.train.batch_size)
        self.method = self._resolve_method(config, method)
        self.config = config.override({"ensemble.method": self.method})
        if engine not in ENGINES:
            raise ConfigError("engine", engine, f"known: {sorted(ENGINES)}")
        self.engine = engine
        self._models = {
            arch: [
                _FAMILY_RUNNERS[resolve_architecture(arch)[0].trainer][0](self, arch, fold)
                for fold in range(config.train.n_folds)
            ]
            for arch in self.architectures
        }
        self.frame_level = any(
            is_sed_model(model) for models in self._models.values() for model in models
        )
        oof = self.run.load_oof(self.architectures, self.classes, encode=self.task.encode)
        self._ensemble, self.thresholds = _ENSEMBLE_BUILDERS[self.task.label_kind](self, oof)
        self._oof = oof

    def _resolve_method(self, config: Config, method: str | None) -> str:
        """The ensemble method the classifier applies (see the class parameters)."""
        if method is None:
            report = self.run.read_ensemble_report() or {}
            chosen = report.get("submission_method")
            if isinstance(chosen, str) and chosen:
                return chosen
        else:
            config = config.override({"ensemble.method": method})
        return evaluate_ensembles(self.run, config=config, write=False).method

    # ------------------------------------------------------------------ properties
    @property
    def sample_rate(self) -> int:
        """Rate (Hz) of the waveforms :meth:`classify_windows` takes: ``audio.sample_rate``."""
        return int(self.config.audio.sample_rate)

    @property
    def window_samples(self) -> int:
        """Samples per window: ``round(audio.duration * audio.sample_rate)``."""
        return int(self.config.audio.n_samples)

    @property
    def window_seconds(self) -> float:
        """Seconds per window (``audio.duration``)."""
        return float(self.config.audio.duration)

    def oof_thresholds(self) -> np.ndarray:
        """Per-class decision thresholds tuned on the run's OOF predictions.

        Multi-label runs: :attr:`thresholds` (``thresholds.json``).  Single-label runs: each
        class against the rest, the F1-optimal threshold of the ensemble's probabilities of
        the OOF clips (:func:`emo_utils.thresholds.tune_thresholds`, ``ensemble.threshold``
        and ``ensemble.min_positives``; learnt ensembles are fitted on those same clips, so
        theirs are slightly optimistic).

        Returns
        -------
        numpy.ndarray of float64, shape (n_outputs,)
        """
        if self.thresholds is not None:
            return np.asarray(self.thresholds, dtype=np.float64)
        ec = self.config.ensemble
        y = self._oof.y
        onehot = np.zeros((len(y), len(self.columns)), dtype=np.int64)
        onehot[np.arange(len(y)), y] = 1
        return tune_thresholds(
            onehot,
            self._ensemble.predict_proba(self._oof.probas),
            mode=ec.threshold,
            min_positives=ec.min_positives,
        )

    # ------------------------------------------------------------------ classifying
    def _kinds(self) -> list[str]:
        """The input kinds the models read, in architecture order."""
        return list(dict.fromkeys(resolve_architecture(a)[0].input for a in self.architectures))

    def _store(self, kind: str, clips: Sequence[np.ndarray], rate: int) -> Any:
        """The ``kind`` input of mono clips at ``rate``, each clip computed alone."""
        spec = INPUT_KINDS[kind]
        config = spec.config(self.config)
        target = config.audio.sample_rate
        converted = [
            librosa.resample(y, orig_sr=rate, target_sr=target, res_type=config.audio.res_type)
            if target != rate
            else y
            for y in clips
        ]
        return spec.store([f"window{i}" for i in range(len(clips))], converted, config)

    def _inputs(self, clips: Sequence[np.ndarray], rate: int) -> dict[str, Any]:
        """``{input kind: store}`` of mono clips at ``rate`` for every input the models read."""
        return {kind: self._store(kind, clips, rate) for kind in self._kinds()}

    def _ensemble_of(self, inputs: dict[str, Any]) -> np.ndarray:
        """The ensemble's probabilities ``(n_rows, n_outputs)`` of prepared inputs."""
        per_arch = []
        for arch in self.architectures:
            family, _ = resolve_architecture(arch)
            predict = _FAMILY_RUNNERS[family.trainer][1]
            store = model_input(arch, inputs)
            folds = np.stack([predict(self, arch, model, store) for model in self._models[arch]])
            per_arch.append(_fold_mean(folds))
        return self._combine(per_arch)

    def _combine(self, per_arch: Sequence[np.ndarray]) -> np.ndarray:
        """The ensemble of per-architecture probabilities, each ``(n_rows, n_outputs)``."""
        stacked = np.stack(per_arch)  # (n_models, n_rows, n_outputs)
        ok = np.isfinite(stacked).all(axis=(0, 2))
        out = np.full(stacked.shape[1:], np.nan)
        if ok.any():
            out[ok] = self._ensemble.predict_proba(stacked[:, ok])
        return out

    def _window_clips(self, windows: np.ndarray) -> list[np.ndarray]:
        """Validated windows padded to :attr:`window_samples` (see :meth:`classify_windows`)."""
        x = np.asarray(windows)
        if x.ndim != 2 or x.shape[1] == 0 or x.shape[1] > self.window_samples:
            raise AudioError(
                "<windows>",
                f"needs shape (n, samples) with 0 < samples <= {self.window_samples}, "
                f"got {x.shape}",
            )
        if not np.isfinite(x).all():
            raise AudioError("<windows>", "NaN/inf samples")
        audio = self.config.audio
        return [
            pad_clip(np.asarray(y, dtype=np.float32), size=audio.n_samples, mode=audio.pad)
            for y in x
        ]

    def _sed_frames(self, model: Any, store: FeatureStore) -> np.ndarray:
        """``(n_rows, T', n_outputs)`` frame probabilities of a SED fold model."""
        views, _ = tta_views(store, np.arange(len(store)), crop=self.config.audio.crop)
        out = []
        model = model.to(self.device).eval()
        with torch.inference_mode():
            for b in range(0, len(views), self.batch_size):
                x = torch.from_numpy(np.asarray(views[b : b + self.batch_size], np.float32))
                probs = frame_probabilities(
                    model, x.to(self.device), activation=self.task.activation
                )
                out.append(probs.cpu().numpy().astype(np.float64))
        return np.concatenate(out)

    def classify_windows(self, *, windows: np.ndarray) -> np.ndarray:
        """Class probabilities of waveform windows.

        Parameters
        ----------
        windows : numpy.ndarray, shape (n, samples)
            Mono audio at :attr:`sample_rate`, one window per row, ``0 < samples <=``
            :attr:`window_samples` (shorter windows are padded as ``audio.pad`` pads short
            clips).

        Returns
        -------
        numpy.ndarray of float64, shape (n, n_outputs)
            The ensemble's probabilities, columns in :attr:`columns` order.

        Raises
        ------
        AudioError
            Not a 2-D array, empty or too long windows, or NaN/inf samples.
        """
        clips = self._window_clips(windows)
        if not clips:
            return np.zeros((0, len(self.columns)))
        return self._ensemble_of(self._inputs(clips, self.sample_rate))

    def classify_frames(self, *, windows: np.ndarray) -> FrameProbabilities:
        """Frame-wise probabilities of waveform windows (runs with the SED head).

        Every architecture with the frame-level head (``sed:<name>``) gives the task's
        activation of its frame logits (:func:`~emo_utils.models.sed.frame_probabilities`),
        at its backbone's time resolution; any other architecture gives its window
        probabilities to every frame of the window.  The frames of each architecture are
        put on the finest grid among them (the frame holding each grid frame's centre),
        folds are averaged, and the run's ensemble combines the architectures frame by frame
        as it combines windows.  Frames are the window's own view: ``ensemble.tta_shifts``
        and mixed precision do not apply.  A run without the head gives one frame per
        window, equal to :meth:`classify_windows`.

        Parameters
        ----------
        windows : numpy.ndarray, shape (n, samples)
            As for :meth:`classify_windows`.

        Returns
        -------
        FrameProbabilities
            ``probabilities`` of shape ``(n, n_frames, n_outputs)``; ``starts``/``ends`` in
            seconds from the window start, from the image's time axis
            (:func:`~emo_utils.models.sed.frame_bounds`).

        Raises
        ------
        AudioError
            As :meth:`classify_windows`.
        """
        clips = self._window_clips(windows)
        n_out = len(self.columns)
        inputs = self._inputs(clips, self.sample_rate) if clips else {}
        per_arch, columns = [], 0
        for arch in self.architectures:
            family, _ = resolve_architecture(arch)
            models = self._models[arch]
            if not clips:
                per_arch.append(np.zeros((0, 1, n_out)))
                continue
            store = inputs[family.input]
            if is_sed_model(models[0]):
                folds = np.stack([self._sed_frames(model, store) for model in models])
                columns = store.window_frames
            else:
                predict = _FAMILY_RUNNERS[family.trainer][1]
                folds = np.stack([predict(self, arch, model, store) for model in models])[
                    :, :, None
                ]
            per_arch.append(_fold_mean(folds))
        n_frames = max(p.shape[1] for p in per_arch)
        if columns:
            features = self.config.features
            starts, ends = frame_bounds(
                n_frames,
                n_columns=columns,
                hop_length=features.hop_length,
                sample_rate=self.sample_rate,
            )
        else:
            starts, ends = np.zeros(1), np.full(1, self.window_seconds)
        grid = [_on_grid(p, n_frames).reshape(-1, n_out) for p in per_arch]
        probs = self._combine(grid) if clips else np.zeros((0, n_out))
        return FrameProbabilities(
            starts=starts,
            ends=ends,
            probabilities=probs.reshape(len(clips), n_frames, n_out),
        )

    def classify_stream_windows(self, *, windows: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Class probabilities of windows cut from one stream, sharing their STFT frames.

        The fast path of timelines and streams: equal (within float32 rounding) to
        :meth:`classify_windows` of the same windows, but a frame that overlapping windows
        share is transformed once (:func:`~emo_utils.features.shared.window_images`), clip
        statistics are summarised for the whole batch at once
        (:func:`~emo_utils.features.statistics.clips_statistics`), BLAS runs single-threaded
        for the small spectral products, and every fold model gets the whole batch.  Inputs
        without a shared path (resampled waveforms) and windows shorter than
        :attr:`window_samples` are computed per window as :meth:`classify_windows` does.

        Parameters
        ----------
        windows : numpy.ndarray, shape (n, samples)
            Mono audio at :attr:`sample_rate`, ``0 < samples <=`` :attr:`window_samples`;
            windows that overlap in the stream hold the same samples where they overlap.
        starts : numpy.ndarray of int, shape (n,)
            Stream sample of each window's first sample.

        Returns
        -------
        numpy.ndarray of float64, shape (n, n_outputs)

        Raises
        ------
        AudioError
            As :meth:`classify_windows`, or ``starts`` not one per window.
        """
        x = np.asarray(windows)
        if x.ndim != 2 or x.shape[1] != self.window_samples:
            return self.classify_windows(windows=x)
        starts = np.asarray(starts, dtype=np.int64).reshape(-1)
        if len(starts) != len(x):
            raise AudioError("<windows>", f"{len(x)} windows but {len(starts)} starts")
        if not np.isfinite(x).all():
            raise AudioError("<windows>", "NaN/inf samples")
        if len(x) == 0:
            return np.zeros((0, len(self.columns)))
        x = x.astype(np.float32, copy=False)
        inputs = {}
        with _one_blas_thread():
            for kind in self._kinds():
                shared = SHARED_STORES.get(kind)
                config = INPUT_KINDS[kind].config(self.config)
                if shared is None or config.audio.sample_rate != self.sample_rate:
                    inputs[kind] = self._store(kind, list(x), self.sample_rate)
                else:
                    inputs[kind] = shared(x, starts, config)
        return self._ensemble_of(inputs)

    def classify_clip(self, path: str | os.PathLike) -> np.ndarray:
        """Probabilities of one file as the run's test predictions score it.

        The file is decoded as the cache decodes it (``audio.max_duration`` seconds chosen
        by ``audio.crop``, padded to one window), and its views
        (``ensemble.tta_windows``, ``tta_shifts``) pooled as in the test predictions.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        numpy.ndarray of float64, shape (n_outputs,)

        Raises
        ------
        AudioError
            The file cannot be decoded (naming the file and the reason).
        """
        inputs = {}
        for kind in {resolve_architecture(a)[0].input for a in self.architectures}:
            spec = INPUT_KINDS[kind]
            config = spec.config(self.config)
            inputs[kind] = spec.store([os.fspath(path)], [spec.decode(path, config)], config)
        return self._ensemble_of(inputs)[0]

    def classify_file(self, path: str | os.PathLike, *, hop: float | None = None) -> pd.DataFrame:
        """Probabilities of every window of the part of a file the cache decodes.

        Parameters
        ----------
        path : str or os.PathLike
        hop : float, optional
            Seconds between window starts (default half a window); the last window is
            aligned to the end of the decoded audio.

        Returns
        -------
        pandas.DataFrame
            One row per window: ``start``, ``end`` (seconds) and one column per entry of
            :attr:`columns`.

        Raises
        ------
        AudioError
            The file cannot be decoded.
        """
        y = load_clip(path, config=self.config.audio)
        w = self.window_samples
        step = max(1, round((self.window_seconds / 2 if hop is None else hop) * self.sample_rate))
        starts = list(range(0, len(y) - w + 1, step))
        if starts[-1] != len(y) - w:
            starts.append(len(y) - w)
        probs = self.classify_windows(windows=np.stack([y[s : s + w] for s in starts]))
        table = pd.DataFrame(probs, columns=self.columns)
        seconds = np.asarray(starts, dtype=np.float64) / self.sample_rate
        table.insert(0, "end", seconds + self.window_seconds)
        table.insert(0, "start", seconds)
        return table
