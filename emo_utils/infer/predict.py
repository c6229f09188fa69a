"""One path from a fold model to probabilities, for out-of-fold and test predictions alike.

:func:`predict_rows` is the only function that turns a model's output into probabilities:
training calls it on a fold's validation rows (the OOF file), and :func:`predict_test` on
the test rows, with the same views, the same activation (the task's) and the same
precision, so stacking and "best" are fitted on what the test path reproduces.

Views (``ensemble`` section of the config, applied to OOF and test alike):

* ``audio.crop`` -- the window of a long clip used without ``tta_windows``;
* ``tta_windows`` -- every ``audio.duration`` window of a long clip
  (:meth:`FeatureStore.windows <emo_utils.features.FeatureStore.windows>`);
* ``tta_shifts = k`` -- ``k`` extra copies of every view rolled in time by
  ``j * window_frames // (k + 1)`` frames, ``j = 1..k``.

The probabilities of a clip are pooled over its views per class: the mean (``ensemble.pool
= "mean"``, single-label default) or the maximum (``"max"``, the multi-label default: a
label heard in one window of a long clip is present in the clip).  Tasks with whole-clip
predictions (:attr:`emo_utils.tasks.Task.whole_clip`, multi-label) always use every window.
Views are built a chunk of rows at a time, so memory does not grow with the test set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .._console import interactive
from ..errors import CheckpointError, TrainingError
from ..features.on_the_fly import OnTheFlyModel, store_kind
from ..fileio import write_csv
from ..models import (
    load_fold_model,
    model_input,
    model_inputs,
    resolve_architecture,
    select_device,
)
from ..models.classical import MODEL_FILE as ESTIMATOR_FILE
from ..models.classical import load_estimator, predict_estimator
from ..runs import RunDir
from ..tasks import Task, get_task

if TYPE_CHECKING:
    from ..config import Config
    from ..features.store import FeatureStore

__all__ = [
    "ModelLoader",
    "predict_folds",
    "predict_rows",
    "predict_test",
    "tta_views",
    "view_settings",
]

#: ``(run_dir, *, arch, fold, device) -> torch.nn.Module`` (eval mode, logits out).
ModelLoader = Callable[..., torch.nn.Module]


def view_settings(config: Config, *, pool: bool = True) -> dict[str, object]:
    """The view keyword arguments of :func:`predict_rows` for a config.

    ``pool=False`` leaves out ``pool`` (the keyword arguments of :func:`tta_views`).
    """
    task = get_task(config.data.task)
    settings: dict[str, object] = {
        "crop": config.audio.crop,
        "tta_windows": config.ensemble.tta_windows or task.whole_clip,
        "tta_shifts": config.ensemble.tta_shifts,
    }
    if pool:
        settings["pool"] = config.ensemble.pool
    return settings


def tta_views(
    store: FeatureStore,
    rows: Sequence[int] | None = None,
    *,
    crop: str = "start",
    tta_windows: bool = False,
    tta_shifts: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The images a model sees for ``rows`` (default: every row with an image).

    Parameters
    ----------
    store : FeatureStore
        Cached images.
    rows : sequence of int, optional
        Store rows; rows without an image (``store.ok`` False) are left out.
    crop : {"start", "center"}
        The window of a long clip used without ``tta_windows`` (``audio.crop``).
    tta_windows : bool
        Use every window of long clips (:meth:`FeatureStore.windows`).
    tta_shifts : int
        Extra time-rolled copies of every window.

    Returns
    -------
    views : numpy.ndarray, shape (n_views, C, H, window_frames)
        In the store's dtype.
    owner : numpy.ndarray of int64, shape (n_views,)
        Store row of each view.
    """
    if tta_shifts < 0:
        raise TrainingError(f"tta_shifts must be >= 0, got {tta_shifts}")
    rows = np.flatnonzero(store.ok) if rows is None else np.asarray(rows, dtype=np.int64)
    rows = rows[store.ok[rows]] if rows.size else rows
    dtype = store.frames.dtype
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


def _autocast_dtype(device: torch.device, mixed_precision: bool) -> torch.dtype | None:
    """The autocast dtype training used on this device (bf16 where supported, else fp16)."""
    if not mixed_precision or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def predict_rows(
    model: torch.nn.Module,
    store: FeatureStore,
    rows: Sequence[int],
    *,
    task: Task | str,
    crop: str = "start",
    tta_windows: bool = False,
    tta_shifts: int = 0,
    pool: str = "mean",
    batch_size: int = 64,
    device: str | torch.device | None = None,
    mixed_precision: bool = False,
    progress: bool = False,
    desc: str = "",
) -> np.ndarray:
    """Probabilities of ``rows``: the task's activation per view, pooled over views.

    Parameters
    ----------
    model : torch.nn.Module
        Maps raw cached windows ``(B, C, H, W)`` to logits ``(B, n_outputs)``.
    store : FeatureStore
        Cached images.
    rows : sequence of int
        Store rows to predict.
    task : Task or str
        The task (registry entry or name) whose :meth:`~emo_utils.tasks.Task.activation`
        turns logits into probabilities.
    crop, tta_windows, tta_shifts
        The views (see :func:`tta_views`; :func:`view_settings` reads them from a config).
    pool : {"mean", "max"}
        How a clip's views are pooled, per class (``ensemble.pool``).
    batch_size : int
        Views per forward pass.
    device : str or torch.device, optional
        Default: the GPU when there is one.
    mixed_precision : bool
        Autocast on CUDA with the dtype training used (bf16 where supported, else fp16).
    progress : bool
        Show a progress bar.
    desc : str
        Its label.

    Returns
    -------
    numpy.ndarray of float64, shape (len(rows), n_outputs)
        One row per requested row, in order; NaN for rows without an image.
    """
    task = get_task(task) if isinstance(task, str) else task
    if pool not in ("mean", "max"):
        raise TrainingError(f"pool must be 'mean' or 'max', got {pool!r}")
    dev = select_device(device)
    unique, inverse = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
    model = model.to(dev).eval()
    autocast = _autocast_dtype(dev, mixed_precision)
    out: np.ndarray | None = None
    chunk = max(1, batch_size)
    with torch.inference_mode():
        starts = range(0, len(unique), chunk)
        for start in tqdm(
            starts, desc=desc, disable=not progress or not interactive(), leave=False
        ):
            part = unique[start : start + chunk]
            views, owner = tta_views(
                store, part, crop=crop, tta_windows=tta_windows, tta_shifts=tta_shifts
            )
            probs = []
            for b in range(0, len(views), batch_size):
                x = torch.from_numpy(np.asarray(views[b : b + batch_size], np.float32)).to(dev)
                with torch.autocast(dev.type, dtype=autocast, enabled=autocast is not None):
                    logits = model(x)
                probs.append(task.activation(logits).cpu().numpy().astype(np.float64))
            if not probs:
                continue
            probs = np.concatenate(probs)
            if out is None:
                out = np.full((len(unique), probs.shape[1]), np.nan)
            local = np.searchsorted(part, owner)  # part is sorted: view -> position in part
            counts = np.bincount(local, minlength=len(part)).astype(np.float64)
            hit = counts > 0
            if pool == "max":
                pooled = np.full((len(part), probs.shape[1]), -np.inf)
                np.maximum.at(pooled, local, probs)
                out[start : start + len(part)][hit] = pooled[hit]
            else:
                sums = np.zeros((len(part), probs.shape[1]))
                np.add.at(sums, local, probs)
                out[start : start + len(part)][hit] = sums[hit] / counts[hit, None]
    if out is None:
        return np.full((len(inverse), 0), np.nan)
    return out[inverse]


def _predict_torch_fold(
    run: RunDir,
    arch: str,
    fold: int,
    inputs: dict[str, Any],
    *,
    config: Config,
    task: Task,
    device: torch.device,
    batch_size: int,
    progress: bool,
    loader: ModelLoader,
) -> np.ndarray:
    """Probabilities of every row of the family's input store from one fastai-trained fold."""
    family, _name = resolve_architecture(arch)
    kind = store_kind(family.input, config)
    store = inputs[kind]
    model = loader(run.path, arch=arch, fold=fold, device=device)
    if family.check_input is not None:
        family.check_input(arch, model, store)
    if kind != family.input:  # on-the-fly: the images of the windows, as in training
        model = OnTheFlyModel(model, sample_rate=config.audio.sample_rate, config=config.features)
    return predict_rows(
        model,
        store,
        np.arange(len(store)),
        task=task,
        **view_settings(config),
        batch_size=batch_size,
        device=device,
        mixed_precision=config.train.mixed_precision,
        progress=progress,
        desc=f"{arch} fold {fold}",
    )


def _predict_sklearn_fold(
    run: RunDir,
    arch: str,
    fold: int,
    inputs: dict[str, Any],
    *,
    config: Config,
    task: Task,
    **_: Any,
) -> np.ndarray:
    """Probabilities of every row of the family's input store from one fitted estimator."""
    store = model_input(arch, inputs)
    model = load_estimator(run.fold_file(arch, fold, ESTIMATOR_FILE))
    n_outputs = len(task.output_columns(run.read_classes()))
    out = np.full((len(store), n_outputs), np.nan)
    ok = store.ok
    if ok.any():
        out[ok] = predict_estimator(
            model, store.matrix(np.flatnonzero(ok)), n_outputs=n_outputs, label_kind=task.label_kind
        )
    return out


#: ``ModelFamily.trainer`` -> ``(run, arch, fold, inputs, **options) -> (n_rows, n_outputs)``.
_FOLD_PREDICTORS = {"fastai": _predict_torch_fold, "sklearn": _predict_sklearn_fold}


def predict_test(
    store: FeatureStore | Mapping[str, Any],
    *,
    run_dir: str | os.PathLike | RunDir,
    config: Config | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    batch_size: int | None = None,
    write: bool = True,
    loader: ModelLoader | None = None,
) -> dict[str, np.ndarray]:
    """Test probabilities of every architecture, averaged over its folds.

    Parameters
    ----------
    store : FeatureStore or mapping
        The test images, in ``test.csv`` order, or ``{input: store}`` for every input the
        architectures need (:func:`emo_utils.models.build_inputs`; ``classical:*``
        models read ``"features"``, ``hf:*`` models ``"waveform"``).
    run_dir : str, os.PathLike or RunDir
        A trained run folder.
    config : Config, optional
        Default: the run's ``config.json``.  Uses ``data.task``, ``train.architectures``,
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
        ``loader(run_dir, *, arch, fold, device) -> torch.nn.Module`` returning a model in
        eval mode that maps raw windows ``(B, C, H, W)`` to logits; default
        :func:`emo_utils.models.load_fold_model` (torch families only).

    Returns
    -------
    dict of str to numpy.ndarray
        Architecture -> probabilities of shape ``(n_rows, n_classes)``: the fold
        predictions averaged over folds.  Rows without an input (a clip that failed) are NaN.

    Raises
    ------
    TrainingError
        A fold of an architecture has not finished training, or an input is missing.
    CheckpointError
        A model's output does not have one value per class.
    """
    run = RunDir(run_dir)
    config = config or run.read_config()
    per_fold = predict_folds(
        store,
        run_dir=run,
        config=config,
        device=device,
        progress=progress,
        batch_size=batch_size,
        loader=loader,
    )
    filenames = (
        next(iter(store.values())).filenames if isinstance(store, Mapping) else store.filenames
    )
    columns = get_task(config.data.task).output_columns(run.read_classes())
    results: dict[str, np.ndarray] = {}
    for arch, folds in per_fold.items():
        total = folds.sum(axis=0)  # NaN where the input or any fold failed
        results[arch] = np.where(
            np.isfinite(total).all(axis=1, keepdims=True), total / len(folds), np.nan
        )
        if write:
            df = pd.DataFrame(results[arch], columns=columns)
            df.insert(0, "filename", filenames)
            write_csv(run.predictions_file(arch), df)
    return results


def predict_folds(
    store: FeatureStore | Mapping[str, Any],
    *,
    run_dir: str | os.PathLike | RunDir,
    config: Config | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    batch_size: int | None = None,
    loader: ModelLoader | None = None,
) -> dict[str, np.ndarray]:
    """The probabilities of every fold model of every architecture, one array per fold.

    What :func:`predict_test` averages, kept apart: a pseudo-label round labels fold
    ``k``'s clips with the parent's fold-``k`` models only (those never saw fold ``k``'s
    labels).  Nothing is written.

    Parameters
    ----------
    store, run_dir, config, device, progress, batch_size, loader
        As for :func:`predict_test`; the rows may be any clips (test, unlabelled).

    Returns
    -------
    dict of str to numpy.ndarray
        Architecture -> probabilities of shape ``(n_folds, n_rows, n_outputs)``; rows
        without an input are NaN.

    Raises
    ------
    TrainingError
        A fold has not finished training, or an input the architectures need is missing.
    CheckpointError
        A model's output does not have one value per class.
    """
    run = RunDir(run_dir)
    config = config or run.read_config()
    task = get_task(config.data.task)
    archs = list(config.train.architectures)
    n_folds = config.train.n_folds
    run.require_trained(archs, n_folds)
    inputs = dict(store) if isinstance(store, Mapping) else {"image": store}
    missing = [
        store_kind(kind, config)
        for kind in model_inputs(archs)
        if store_kind(kind, config) not in inputs
    ]
    if missing:
        raise TrainingError(f"the run's models need the input(s) {missing}, which were not given")
    n_rows = len(next(iter(inputs.values())).filenames)
    columns = task.output_columns(run.read_classes())
    options = {
        "config": config,
        "task": task,
        "device": select_device(device),
        "batch_size": batch_size or 2 * config.train.batch_size,
        "progress": progress,
        "loader": loader or load_fold_model,
    }
    results: dict[str, np.ndarray] = {}
    for arch in archs:
        family, _name = resolve_architecture(arch)
        out = np.full((n_folds, n_rows, len(columns)), np.nan)
        ok = inputs[store_kind(family.input, config)].ok
        if ok.any():
            for fold in range(n_folds):
                probs = _FOLD_PREDICTORS[family.trainer](run, arch, fold, inputs, **options)
                if probs.shape[1] != len(columns):
                    raise CheckpointError(
                        f"{run.fold_dir(arch, fold)}: model gives {probs.shape[1]} outputs for "
                        f"{len(columns)} classes"
                    )
                out[fold, ok] = probs[ok]
                if progress and not interactive():
                    print(f"predicted {arch} fold {fold}: {n_rows} clips", flush=True)
        results[arch] = out
    return results
