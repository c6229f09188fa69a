"""Predicting the test set with every fold of every architecture, and the submission.

:func:`predict_test` reads the test images once from the feature cache (with optional
test-time averaging views), runs every fold model of every architecture over them, turns
logits into probabilities with a softmax, averages over views and then over folds, and writes
``RUN/predictions/ARCH.csv`` (``filename`` and one probability column per class, one row per
test row in ``test.csv`` order; empty for rows whose audio failed).

:func:`predict_and_submit` is what the pipeline calls: test probabilities, OOF comparison of
every single model and ensemble method (``RUN/ensemble_report.json/.md``), the configured
method's labels on the test rows that have an image, the fallback for the others, and the
validated submission in ``submissions/<run>__<method>.csv``.

Test-time averaging (``ensemble`` section of the config):

* ``tta_windows`` -- every ``audio.duration`` window of a long clip
  (:meth:`FeatureStore.windows <emo_utils.features.store.FeatureStore.windows>`) instead of only the
  ``audio.crop`` window;
* ``tta_shifts = k`` -- ``k`` extra copies of every view rolled in time by
  ``j * window_frames // (k + 1)`` frames, ``j = 1..k``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..features.store import FeatureStore
from ..data.competition import Competition
from ..config import Config, load_run_config
from ..ensemble import (
    EnsembleReport,
    evaluate_ensembles,
    load_oof,
    make_ensemble,
    read_classes,
)
from ..errors import CheckpointError, SubmissionError, TrainingError
from ..fileio import read_csv, write_csv
from ..submission import SubmissionFiles, failures_from_store, fallback_label, write_submission

__all__ = [
    "ModelLoader",
    "SubmissionOutcome",
    "load_predictions",
    "predict_and_submit",
    "predict_test",
    "tta_views",
]

#: ``(run_dir, arch, fold, *, device) -> torch.nn.Module`` (eval mode, logits out).
ModelLoader = Callable[..., torch.nn.Module]


def tta_views(
    store: FeatureStore,
    *,
    crop: str = "start",
    tta_windows: bool = False,
    tta_shifts: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Every image the models see at test time, computed once from the cache.

    Parameters
    ----------
    store : FeatureStore
        Test images.
    crop : {"start", "center"}
        The window of a long clip used without ``tta_windows`` (``audio.crop``).
    tta_windows : bool
        Use every window of long clips (:meth:`FeatureStore.windows`).
    tta_shifts : int
        Extra time-rolled copies of every window.

    Returns
    -------
    views : numpy.ndarray, shape (n_views, C, H, window_frames)
        In the store's dtype (float16 caches stay float16 until batched).
    owner : numpy.ndarray of int64, shape (n_views,)
        Test row of each view; only rows with an image (``store.ok``) appear.
    """
    if tta_shifts < 0:
        raise TrainingError(f"tta_shifts must be >= 0, got {tta_shifts}")
    dtype = store.frames.dtype
    rows = np.flatnonzero(store.ok)
    if rows.size == 0:
        return np.zeros((0, *store.image_shape), dtype=dtype), np.zeros(0, dtype=np.int64)
    per_row = [
        store.windows(int(i)) if tta_windows else store.window(int(i), crop)[None] for i in rows
    ]
    owner = np.repeat(rows, [len(v) for v in per_row]).astype(np.int64)
    base = np.concatenate(per_row).astype(dtype, copy=False)
    width = store.window_frames
    steps = [j * width // (tta_shifts + 1) for j in range(1, tta_shifts + 1)]
    views = np.concatenate([base, *(np.roll(base, s, axis=-1) for s in steps)])
    return views, np.tile(owner, 1 + len(steps))


def _device(device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _fold_probabilities(
    model: torch.nn.Module,
    views: np.ndarray,
    *,
    device: torch.device,
    batch_size: int,
    mixed_precision: bool,
    desc: str,
    progress: bool,
) -> np.ndarray:
    """Softmax probabilities of every view, shape ``(n_views, n_classes)``."""
    model.eval()
    out = []
    autocast = device.type == "cuda" and mixed_precision
    starts = range(0, len(views), batch_size)
    with torch.inference_mode():
        for start in tqdm(starts, desc=desc, disable=not progress, leave=False):
            batch = torch.from_numpy(np.asarray(views[start : start + batch_size], np.float32))
            with torch.autocast(device.type, enabled=autocast):
                logits = model(batch.to(device, non_blocking=True))
            out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def _missing_folds(run_dir: Path, arch: str, n_folds: int) -> list[int]:
    return [
        k
        for k in range(n_folds)
        if not (run_dir / "models" / arch / f"fold{k}" / "done.json").is_file()
    ]


def predict_test(
    run_dir: str | os.PathLike,
    store: FeatureStore,
    config: Config | None = None,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
    batch_size: int | None = None,
    write: bool = True,
    loader: ModelLoader | None = None,
) -> dict[str, np.ndarray]:
    """Test probabilities of every architecture, averaged over its folds.

    Parameters
    ----------
    run_dir : str or os.PathLike
        A trained run folder (``classes.json``, ``models/ARCH/fold{k}/done.json``).
    store : FeatureStore
        The test images, in ``test.csv`` order.
    config : Config, optional
        Default: the run's ``config.json``.  Uses ``train.architectures``,
        ``train.n_folds``, ``audio.crop`` and the ``ensemble.tta_*`` fields.
    device : str or torch.device, optional
        Default: CUDA when available, else CPU.
    progress : bool
        Show a progress bar per fold.
    batch_size : int, optional
        Default: ``2 * train.batch_size``.
    write : bool
        Write ``RUN/predictions/ARCH.csv``.
    loader : callable, optional
        ``loader(run_dir, arch, fold, device=...) -> torch.nn.Module`` returning a model in
        eval mode that maps raw windows ``(B, C, H, W)`` to logits; default
        :func:`emo_utils.train.cv.load_fold_model`.

    Returns
    -------
    dict of str to numpy.ndarray
        Architecture -> probabilities of shape ``(len(store), n_classes)``: softmax per
        view, averaged over views, then over folds.  Rows without an image are NaN.

    Raises
    ------
    TrainingError
        A fold of an architecture has not finished training.
    CheckpointError
        A model's output does not have one logit per class.
    """
    if loader is None:
        from ..train.cv import load_fold_model as loader

    run_dir = Path(run_dir)
    config = config or load_run_config(run_dir)
    classes = read_classes(run_dir)
    archs = list(config.train.architectures)
    n_folds = config.train.n_folds
    missing = {a: m for a in archs if (m := _missing_folds(run_dir, a, n_folds))}
    if missing:
        raise TrainingError(
            f"{run_dir / 'models'}: unfinished folds {missing} (no done.json); train them first"
        )
    dev = _device(device)
    views, owner = tta_views(
        store,
        crop=config.audio.crop,
        tta_windows=config.ensemble.tta_windows,
        tta_shifts=config.ensemble.tta_shifts,
    )
    counts = np.bincount(owner, minlength=len(store)).astype(np.float64)
    ok = counts > 0
    batch_size = batch_size or 2 * config.train.batch_size
    results: dict[str, np.ndarray] = {}
    for arch in archs:
        total = np.zeros((len(store), len(classes)))
        for fold in range(n_folds):
            if len(views) == 0:
                break
            model = loader(run_dir, arch, fold, device=dev).to(dev)
            probs = _fold_probabilities(
                model,
                views,
                device=dev,
                batch_size=batch_size,
                mixed_precision=config.train.mixed_precision,
                desc=f"{arch} fold {fold}",
                progress=progress,
            )
            if probs.shape[1] != len(classes):
                raise CheckpointError(
                    f"{run_dir / 'models' / arch / f'fold{fold}'}: model gives "
                    f"{probs.shape[1]} outputs for {len(classes)} classes"
                )
            per_row = np.zeros_like(total)
            np.add.at(per_row, owner, probs)
            total[ok] += per_row[ok] / counts[ok, None]
            del model
        result = np.full_like(total, np.nan)
        result[ok] = total[ok] / n_folds
        results[arch] = result
        if write:
            df = pd.DataFrame(result, columns=list(classes))
            df.insert(0, "filename", store.filenames)
            write_csv(run_dir / "predictions" / f"{arch}.csv", df)
    return results


def load_predictions(
    run_dir: str | os.PathLike,
    architectures: Sequence[str],
    store: FeatureStore | None = None,
) -> dict[str, np.ndarray]:
    """Read back ``RUN/predictions/ARCH.csv`` written by :func:`predict_test`.

    Parameters
    ----------
    run_dir : str or os.PathLike
    architectures : sequence of str
    store : FeatureStore, optional
        When given, the files must list its file names in its order.

    Raises
    ------
    CheckpointError
        A file is missing, lacks a class column or does not match ``store``.
    """
    run_dir = Path(run_dir)
    classes = list(read_classes(run_dir))
    out = {}
    for arch in architectures:
        path = run_dir / "predictions" / f"{arch}.csv"
        if not path.is_file():
            raise CheckpointError(f"{path}: not found; run predict_test first")
        df = read_csv(path, dtype={"filename": str}, keep_default_na=False, na_values=[""])
        absent = [c for c in ["filename", *classes] if c not in df.columns]
        if absent:
            raise CheckpointError(f"{path}: missing column(s) {absent}")
        if store is not None and df["filename"].tolist() != list(store.filenames):
            raise CheckpointError(f"{path}: file names differ from the test feature store")
        out[arch] = df[classes].to_numpy(np.float64)
    return out


@dataclass
class SubmissionOutcome:
    """What :func:`predict_and_submit` produced.

    Attributes
    ----------
    submission : pathlib.Path
        The submission CSV.
    files : SubmissionFiles
        Submission, probabilities and failures files.
    method : str
        The method that wrote the submission (``"best"`` resolved).
    best_method : str
        The method with the best OOF score.
    report : EnsembleReport
        OOF scores of every model and method.
    probabilities : dict
        Architecture -> test probabilities ``(n_test, n_classes)`` (NaN for failed rows).
    labels : numpy.ndarray
        Class index of every test row after the fallback.
    n_fallback : int
        Test rows that got the fallback label.
    """

    submission: Path
    files: SubmissionFiles
    method: str
    best_method: str
    report: EnsembleReport
    probabilities: dict[str, np.ndarray] = field(repr=False)
    labels: np.ndarray = field(repr=False)
    n_fallback: int = 0

    @property
    def model_scores(self) -> dict[str, float]:
        """Architecture -> OOF score (competition metric)."""
        return self.report.model_scores

    @property
    def ensemble_scores(self) -> dict[str, float]:
        """Method -> OOF score (competition metric)."""
        return self.report.ensemble_scores

    def as_dict(self) -> dict[str, Any]:
        return {
            "submission": str(self.submission),
            "method": self.method,
            "best_method": self.best_method,
            "n_fallback": self.n_fallback,
            "model_scores": self.model_scores,
            "ensemble_scores": self.ensemble_scores,
        }


def predict_and_submit(
    competition: Competition,
    store: FeatureStore,
    run_dir: str | os.PathLike,
    config: Config | None = None,
    *,
    submissions_dir: str | os.PathLike = "submissions",
    method: str | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    reuse_predictions: bool = False,
    loader: ModelLoader | None = None,
) -> SubmissionOutcome:
    """Predict the test set, compare ensembles on OOF, and write the submission.

    Parameters
    ----------
    competition : Competition
        The competition (test rows, classes, submission columns).
    store : FeatureStore
        Test images, one row per ``test.csv`` row.
    run_dir : str or os.PathLike
        The trained run folder.
    config : Config, optional
        Default: the run's ``config.json``.
    submissions_dir : str or os.PathLike
        Where ``<run>__<method>.csv`` and its companions go.
    method : str, optional
        Overrides ``ensemble.method`` (``"best"`` allowed).
    device, progress, loader
        Passed to :func:`predict_test`.
    reuse_predictions : bool
        Read ``RUN/predictions/ARCH.csv`` instead of running the models (fails if absent).

    Returns
    -------
    SubmissionOutcome
    """
    run_dir = Path(run_dir)
    config = config or load_run_config(run_dir)
    if method is not None:
        config = config.override({"ensemble.method": method})
    classes = read_classes(run_dir)
    if tuple(classes) != tuple(competition.classes):
        raise SubmissionError(
            f"{run_dir / 'classes.json'}: classes {list(classes)} differ from the "
            f"competition's {list(competition.classes)}"
        )
    if list(store.filenames) != competition.test["filename"].tolist():
        raise SubmissionError("the test feature store's file names differ from test.csv's rows")
    archs = list(config.train.architectures)
    report = evaluate_ensembles(run_dir, config)
    if reuse_predictions:
        probabilities = load_predictions(run_dir, archs, store)
    else:
        probabilities = predict_test(
            run_dir, store, config, device=device, progress=progress, loader=loader
        )
    stacked = np.stack([probabilities[a] for a in archs])  # (n_models, n_test, n_classes)
    ok = np.isfinite(stacked).all(axis=(0, 2))
    ensemble = make_ensemble(
        report.method,
        weights=config.ensemble.weights or None,
        stacking_model=config.ensemble.stacking_model,
        seed=config.train.seed,
    )
    if report.method == "stacking":
        oof = load_oof(run_dir, archs, classes)
        ensemble.fit(oof.probas, oof.y)
    labels = np.full(len(store), -1, dtype=np.int64)
    proba = np.full((len(store), len(classes)), np.nan)
    if ok.any():
        labels[ok] = ensemble.predict(stacked[:, ok])
        proba[ok] = ensemble.predict_proba(stacked[:, ok])
    failures = failures_from_store(store)
    # Rows the models could not score for another reason also fall back, with a reason.
    for row in np.flatnonzero(~ok):
        failures.setdefault(int(row), "no test probabilities")
    files = write_submission(
        competition,
        labels,
        out_dir=submissions_dir,
        run_name=run_dir.name,
        method=report.method,
        failures=failures,
        probabilities=proba,
        data_config=config.data,
    )
    labels[list(failures)] = fallback_label(competition)
    return SubmissionOutcome(
        submission=files.submission,
        files=files,
        method=report.method,
        best_method=report.best_method,
        report=report,
        probabilities=probabilities,
        labels=labels,
        n_fallback=len(failures),
    )
