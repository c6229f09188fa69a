"""Cross-validated training of the registered models with fastai, resumable, with OOF.

:func:`train_cv` trains every architecture of ``config.train.architectures`` on every fold
of ``RUN/folds.csv`` and writes the run folder (layout: :class:`emo_utils.runs.RunDir`).
The task (``data.task``, :mod:`emo_utils.tasks`) gives the targets, the loss, the metrics
and the fold splitter; the model registry (:mod:`emo_utils.models`) builds the network
inside a :class:`~emo_utils.models.NormalizedModel`, whose per-channel statistics
(``train.image_normalization``) are saved with the weights.

Training: fastai ``fit_one_cycle`` with AdamW, the task's loss, mixed precision on GPU, the
best epoch by ``train.monitor`` kept by a ``SaveModelCallback``, optional early stopping
and a CSV log per fold (:mod:`emo_utils.train.callbacks`).  Out-of-fold probabilities come
from :func:`emo_utils.infer.predict.predict_rows`, the function the test predictions use.

Resume: a fold with ``done.json`` is skipped; a fold with ``checkpoint.pth`` continues at
the next epoch of the same one-cycle schedule (fastai's ``start_epoch``) with the model,
optimiser, random-number states and best score restored, so a worse resumed epoch never
replaces the best weights.  Every file is written atomically; a damaged checkpoint raises
:class:`~emo_utils.errors.CheckpointError` naming the fold, the file and the fix.

Families: the ``fastai`` trainer above fits torch models on their family's input store
(``ModelFamily.input``: images for timm, waveforms for ``hf:`` transformers); the family's
hooks check the model against its store, freeze what it keeps
(``train.freeze_feature_encoder``) and give its parameter groups for layer-wise learning
rates (``train.layer_decay``).  The
``sklearn`` trainer (:func:`_fit_fold`) fits the scikit-learn estimators of the classical
family on clip statistics, on the same folds, writing the same ``oof.csv`` and ``done.json``
(plus ``model.joblib``).  ``ModelFamily.trainer`` picks one per architecture.

Pseudo-label rounds (``pseudo=``, :mod:`emo_utils.train.pseudo`): the pseudo-labelled
clips' stores are joined to the training stores, and every fold of a model trained by
fastai sees them in its view of the run (:func:`_fold_run`) as rows of the fold
:data:`~emo_utils.train.pseudo.PSEUDO_FOLD`: training rows with the fold's soft targets,
never validation rows.  The run trains on the parent's ``folds.csv``; ``classical:*``
models train on the labelled clips only (scikit-learn estimators take hard labels).

Blown-up training: a NaN/inf training loss raises :class:`~emo_utils.errors.TrainingDiverged`
naming the fold, epoch and batch (:class:`~emo_utils.train.callbacks.StopOnNonFiniteLoss`);
the fold's checkpoint and weights are removed and it is not marked done, so a rerun trains
it again.  OOF probabilities that are NaN, infinite or missing stop the fold before its
``oof.csv`` is written.  A model whose OOF score is at or below the majority-class baseline
gets an :class:`~emo_utils.errors.EmoUtilsWarning` and a line in ``cv_report.md``.

Several processes (``accelerate launch -m emo_utils train``, ``torchrun``,
``notebook_launcher``; :mod:`emo_utils.train.distributed`): every rank trains each fold
together (fastai's ``DistributedTrainer``), the ranks predict the OOF rows in contiguous
pieces gathered in row order, and rank 0 alone writes the run folder (``config.json``,
``folds.csv``, the fold files, ``oof/``, ``cv_report``); the others wait for it where they
read its files.  ``classical:*`` folds are fitted by rank 0 and read back by the others.
The run folder is the same as one process's.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastai.callback.core import Callback
from fastai.callback.schedule import fit_one_cycle  # noqa: F401  (patches Learner.fit_one_cycle)
from fastai.torch_core import set_seed

from ..config import Config
from ..data.competition import Competition
from ..data.folds import load_or_create_folds
from ..errors import (
    CacheError,
    CheckpointError,
    ConfigError,
    EmoUtilsWarning,
    TrainingError,
)
from ..features.concat import concat_stores
from ..features.on_the_fly import OnTheFlyModel, store_kind
from ..features.store import FeatureStore, require_valid_training
from ..fileio import remove_temp_files, write_csv, write_json, write_text
from ..infer.predict import predict_rows, view_settings
from ..models import (
    NormalizedModel,
    build_model,
    check_architectures,
    check_local_weights,
    check_normalization,
    check_setups,
    image_statistics,
    input_normalization,
    model_input,
    model_inputs,
    resolve_architecture,
)
from ..models.classical import MODEL_FILE as ESTIMATOR_FILE
from ..models.classical import fit_estimator, predict_estimator, save_estimator
from ..runs import RunDir
from ..tasks import Task, get_task
from .checkpoints import read_checkpoint
from .data import make_dataloaders
from .distributed import (
    barrier,
    describe,
    is_distributed,
    is_main,
    main_first,
    map_shards,
    training_device,
)
from .fit import fit_fold
from .learner import layer_learning_rates, make_learner
from .on_the_fly import on_the_fly_transforms, require_on_the_fly_input
from .pseudo import PSEUDO_FOLD, PseudoLabels, install_parent_folds, round_history
from .report import cv_report, report_markdown

__all__ = ["CVResult", "FoldResult", "check_training_setup", "train_cv"]


def _oof_frame(
    filenames: Sequence[str],
    labels: Sequence[str],
    fold: np.ndarray,
    probs: np.ndarray,
    columns: Sequence[str],
) -> pd.DataFrame:
    df = pd.DataFrame({"filename": list(filenames), "label": list(labels), "fold": fold})
    return pd.concat([df, pd.DataFrame(probs, columns=list(columns))], axis=1)


@dataclass
class FoldResult:
    """Outcome of one fold of one architecture (the content of its ``done.json``)."""

    arch: str
    fold: int
    best_epoch: int | None
    best_score: float
    scores: dict[str, float]
    n_train: int
    n_valid: int
    epochs_run: int
    stopped_early: bool
    seconds: float
    oof: pd.DataFrame = field(repr=False)
    skipped: bool = False

    def to_json(self) -> dict[str, Any]:
        """The fields as a plain dict for ``done.json`` (without ``oof`` and ``skipped``)."""
        d = dataclasses.asdict(self)
        d.pop("oof")
        d.pop("skipped")
        return d


@dataclass
class CVResult:
    """What :func:`train_cv` did and scored.

    Attributes
    ----------
    run_dir : pathlib.Path
        The run folder.
    classes : tuple of str
        Class names, in index order (the probability columns of ``oof``).
    folds : pandas.DataFrame
        ``filename, label, fold`` of every training clip (``RUN/folds.csv``).
    oof : dict of str to pandas.DataFrame
        Architecture -> ``filename, label, fold, <class probabilities>`` in ``folds`` order.
    fold_results : dict of str to list of FoldResult
        Architecture -> one result per fold.
    report : dict
        The content of ``cv_report.json``.
    skipped_files : list of (str, str)
        ``(file, reason)`` of training rows dropped by ``data.skip_bad_train``.
    """

    run_dir: Path
    classes: tuple[str, ...]
    folds: pd.DataFrame
    oof: dict[str, pd.DataFrame]
    fold_results: dict[str, list[FoldResult]]
    report: dict[str, Any]
    skipped_files: list[tuple[str, str]] = field(default_factory=list)

    def scores(self, metric: str = "accuracy") -> dict[str, float]:
        """Out-of-fold score of every architecture for ``metric`` (one of the task's metrics)."""
        known = self.report["metrics"]
        if metric not in known:
            raise ConfigError("metric", metric, f"unknown metric; known: {sorted(known)}")
        return {a: r["overall"][metric] for a, r in self.report["architectures"].items()}

    @property
    def trained(self) -> list[tuple[str, int]]:
        """``(arch, fold)`` pairs trained (or resumed) by this call."""
        return [(r.arch, r.fold) for rs in self.fold_results.values() for r in rs if not r.skipped]

    @property
    def skipped(self) -> list[tuple[str, int]]:
        """``(arch, fold)`` pairs already finished before this call."""
        return [(r.arch, r.fold) for rs in self.fold_results.values() for r in rs if r.skipped]

    def oof_probabilities(self, arch: str) -> np.ndarray:
        """OOF probabilities of ``arch``, shape ``(n_clips, n_classes)``, in ``folds`` order."""
        return self.oof[arch][list(self.classes)].to_numpy(dtype=np.float64)


# ---------------------------------------------------------------------------- training
@dataclass
class _Run:
    """Everything the folds of a run share."""

    run: RunDir
    config: Config
    task: Task
    inputs: dict[str, Any]  # input kind (ModelFamily.input) -> its store
    classes: tuple[str, ...]
    columns: list[str]  # the task's output columns of OOF files
    folds: pd.DataFrame  # filename, label, fold (competition order)
    store_rows: dict[str, np.ndarray]  # input kind -> store row of every folds row
    targets: np.ndarray  # encoded target of every folds row
    progress: bool
    callbacks: Sequence[Callback]
    pseudo: _PseudoRows | None = None  # a pseudo-label round's clips (train.pseudo_from)
    fold_targets: np.ndarray | None = None  # a fold's view: the soft targets of its pseudo rows


@dataclass
class _PseudoRows:
    """The pseudo-labelled clips of a round: their targets and their rows in ``_Run.inputs``."""

    labels: PseudoLabels
    store_rows: dict[str, np.ndarray]  # input kind -> row of every clip in the joined store


def _with_pseudo(run: _Run, pseudo: PseudoLabels) -> _Run:
    """``run`` with the pseudo-labelled clips' stores joined after the training stores.

    Raises
    ------
    TrainingError
        Targets made for other folds or outputs, or an input a fastai-trained model needs
        missing from ``pseudo.inputs``.
    """
    tc = run.config.train
    if pseudo.n_folds != tc.n_folds or list(pseudo.columns) != list(run.columns):
        raise TrainingError(
            f"pseudo-labels made for {pseudo.n_folds} folds and outputs {pseudo.columns}; this "
            f"run has {tc.n_folds} folds and outputs {run.columns}"
        )
    kinds = {
        resolve_architecture(a)[0].input
        for a in tc.architectures
        if resolve_architecture(a)[0].trainer == "fastai"
    }
    missing = sorted(kinds - set(pseudo.inputs))
    if missing and len(pseudo):
        raise TrainingError(f"pseudo-labels: no {missing} store of the pseudo-labelled clips")
    inputs, rows = dict(run.inputs), {}
    for kind, store in pseudo.inputs.items():
        if kind in inputs:
            rows[kind] = len(inputs[kind]) + np.arange(len(store), dtype=np.int64)
            inputs[kind] = concat_stores([inputs[kind], store])
    return dataclasses.replace(run, inputs=inputs, pseudo=_PseudoRows(pseudo, rows))


def _fold_run(run: _Run, arch: str, fold: int) -> _Run:
    """The run as fold ``fold`` of ``arch`` trains on it.

    In a pseudo-label round, for models trained by fastai: the clips kept for the fold are
    appended to ``folds`` with the fold :data:`PSEUDO_FOLD` (never a validation fold, so
    they are training rows), to ``store_rows`` and, as soft targets, to ``fold_targets``.
    Otherwise ``run`` itself.
    """
    if run.pseudo is None or resolve_architecture(arch)[0].trainer != "fastai":
        return run
    labels = run.pseudo.labels
    kept = np.flatnonzero(labels.keep[fold])
    if kept.size == 0:
        return run
    extra = pd.DataFrame(
        {
            "filename": [labels.filenames[i] for i in kept],
            "label": "",
            "fold": np.full(kept.size, PSEUDO_FOLD, dtype=np.int64),
        }
    )
    rows = {
        kind: np.concatenate([r, run.pseudo.store_rows[kind][kept]])
        for kind, r in run.store_rows.items()
        if kind in run.pseudo.store_rows
    }
    return dataclasses.replace(
        run,
        folds=pd.concat([run.folds, extra], ignore_index=True),
        store_rows={**run.store_rows, **rows},
        fold_targets=labels.targets[fold][kept],
    )


def _training_targets(run: _Run, idx: np.ndarray) -> np.ndarray:
    """Targets of a fold's training rows ``idx``.

    As encoded (:meth:`Task.encode`) without pseudo rows; with them, probabilities: the
    labelled rows' (:meth:`Task.target_probabilities`) and the pseudo rows' soft targets.
    """
    if run.fold_targets is None:
        return run.targets[idx]
    n = len(run.targets)
    labelled = idx < n
    out = np.empty((len(idx), len(run.columns)), dtype=np.float32)
    out[labelled] = run.task.target_probabilities(run.targets[idx[labelled]], len(run.columns))
    out[~labelled] = run.fold_targets[idx[~labelled] - n]
    return out


def _check_probabilities(
    probs: np.ndarray, *, n_outputs: int, arch: str, fold: int, file: Path
) -> None:
    """Raise when a fold's OOF probabilities are missing, NaN or infinite (naming ``file``)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != n_outputs:
        raise TrainingError(
            f"{arch} fold {fold}: {file}: out-of-fold probabilities have shape {probs.shape}, "
            f"expected {n_outputs} columns; the fold is not marked done"
        )
    bad = ~np.isfinite(probs).all(axis=1)
    if bad.any():
        raise TrainingError(
            f"{arch} fold {fold}: {file}: {int(bad.sum())} of {len(probs)} out-of-fold rows hold "
            "NaN or infinite probabilities (the model's weights blew up: learning rate too "
            "high, or bad input); the fold is not marked done"
        )


def _finished_fold(run: _Run, arch: str, fold: int) -> FoldResult:
    done = run.run.fold_file(arch, fold, RunDir.DONE_FILE)
    oof_file = run.run.fold_file(arch, fold, RunDir.FOLD_OOF_FILE)
    fix = f"delete {done} to train the fold again"
    info = run.run.read_done(arch, fold)
    oof = run.run.read_fold_oof(arch, fold)
    expected = run.folds["filename"][run.folds["fold"] == fold]
    if set(oof.get("filename", [])) != set(expected) or not set(run.columns) <= set(oof.columns):
        raise CheckpointError(
            f"{arch} fold {fold}: {oof_file} does not match the fold's clips or classes in "
            f"folds.csv / classes.json; {fix}"
        )
    if not np.isfinite(oof[run.columns].to_numpy(dtype=np.float64)).all():
        raise CheckpointError(
            f"{arch} fold {fold}: {oof_file} holds NaN or empty probabilities (a blown-up "
            f"training); {fix}"
        )
    keys = {f.name for f in dataclasses.fields(FoldResult)} - {"oof", "skipped"}
    if not keys <= set(info):
        raise CheckpointError(f"{arch} fold {fold}: {done} is incomplete; {fix}")
    return FoldResult(**{k: info[k] for k in keys}, oof=oof, skipped=True)


def _train_fold(run: _Run, arch: str, fold: int) -> FoldResult:
    """Train (or resume) one fold and write its files; ``done.json`` last."""
    start_time = time.perf_counter()
    tc = run.config.train
    fdir = run.run.fold_dir(arch, fold)
    if is_main():
        fdir.mkdir(parents=True, exist_ok=True)
        remove_temp_files(fdir)  # left by a killed run; nothing else writes to this fold
    ckpt_path = fdir / RunDir.CHECKPOINT_FILE
    model_path = fdir / RunDir.MODEL_FILE
    state = (
        read_checkpoint(ckpt_path, arch=arch, fold=fold, epochs=tc.epochs)
        if ckpt_path.is_file()
        else None
    )
    valid_mask = run.folds["fold"].to_numpy() == fold
    train_idx, valid_idx = np.flatnonzero(~valid_mask), np.flatnonzero(valid_mask)
    device = training_device()
    set_seed(tc.seed, reproducible=device.type == "cpu")

    family, _ = resolve_architecture(arch)
    kind = store_kind(family.input, run.config)
    store, store_rows = run.inputs[kind], run.store_rows[kind]
    # On-the-fly: the image cache gives the channels and normalisation statistics.
    images, image_rows = run.inputs[family.input], run.store_rows[family.input]
    body = build_model(
        arch,
        len(run.classes),
        pretrained=tc.pretrained and state is None,
        weights_dir=tc.weights_dir,
        in_chans=images.image_shape[0],
    )
    if family.check_input is not None:
        family.check_input(arch, body, store)
    train_rows = store_rows[train_idx]
    normalization = input_normalization(arch, tc.image_normalization)
    mean, std = image_statistics(
        normalization, store=images, rows=image_rows[train_idx], model=body
    )
    # Frozen parts and parameter groups (bottom to head) before the optimiser exists.
    groups, lr_max = None, tc.lr
    if family.training_groups is not None:
        groups = family.training_groups(body, tc)
        rates = layer_learning_rates(tc.lr, tc.layer_decay, len(groups))
        keep = [i for i, group in enumerate(groups) if group]
        groups, lr_max = [groups[i] for i in keep], rates[keep]
    model = NormalizedModel(body, mean, std)
    dls = make_dataloaders(
        store,
        train_rows=train_rows,
        train_targets=_training_targets(run, train_idx),
        valid_rows=store_rows[valid_idx],
        valid_targets=run.targets[valid_idx],
        config=run.config,
        device=device,
        input_kind=family.input,
        batch_transforms=on_the_fly_transforms(run.config) if kind != family.input else (),
    )
    learn = make_learner(
        dls,
        model,
        config=tc,
        task=run.task,
        n_classes=len(run.classes),
        train_targets=_training_targets(run, train_idx),
        path=fdir,
        progress=run.progress,
        param_groups=groups,
    )

    fit = fit_fold(
        learn,
        state=state,
        train_config=tc,
        lr_max=lr_max,
        ckpt_path=ckpt_path,
        model_path=model_path,
        log_path=fdir / RunDir.LOG_FILE,
        arch=arch,
        fold=fold,
        progress=run.progress,
        callbacks=run.callbacks,
    )

    # The OOF probabilities come from the same function, views and precision as the test
    # predictions (infer.predict_rows), not from fastai's get_preds.
    predictor = learn.model
    if kind != family.input:
        predictor = OnTheFlyModel(
            learn.model, sample_rate=run.config.audio.sample_rate, config=run.config.features
        )
    probs = map_shards(  # one piece of the rows per process, gathered in row order
        lambda rows: predict_rows(
            predictor,
            store,
            rows,
            task=run.task,
            **view_settings(run.config),
            batch_size=tc.batch_size,
            device=dls.device,
            mixed_precision=tc.mixed_precision,
        ),
        store_rows[valid_idx],
    )
    return _finish_fold(
        run,
        arch,
        fold,
        valid_idx,
        probs,
        start_time=start_time,
        best_epoch=fit.best_epoch,
        best_score=float("nan") if fit.best is None else float(fit.best),
        epochs_run=fit.epochs_run,
        extra={"normalization": {"name": normalization, "mean": mean, "std": std}},
    )


def _finish_fold(
    run: _Run,
    arch: str,
    fold: int,
    valid_idx: np.ndarray,
    probs: np.ndarray,
    *,
    start_time: float,
    best_epoch: int | None,
    best_score: float | None,
    epochs_run: int,
    extra: Mapping[str, Any],
) -> FoldResult:
    """Check and score a fold's OOF probabilities; write ``oof.csv``, then ``done.json``.

    ``best_score=None`` (models without epochs): the fold's score on ``ensemble.metric``.
    """
    fdir = run.run.fold_dir(arch, fold)
    oof_file = fdir / RunDir.FOLD_OOF_FILE
    _check_probabilities(probs, n_outputs=len(run.columns), arch=arch, fold=fold, file=oof_file)
    y_valid = run.targets[valid_idx]
    scores = {name: run.task.score(name, y_valid, probs) for name in run.task.metrics}
    folds_valid = run.folds.iloc[valid_idx]
    oof = _oof_frame(
        folds_valid["filename"],
        folds_valid["label"],
        folds_valid["fold"].to_numpy(),
        probs,
        run.columns,
    )
    epochs = run.config.train.epochs
    result = FoldResult(
        arch=arch,
        fold=fold,
        best_epoch=best_epoch,
        best_score=scores[run.config.ensemble.metric] if best_score is None else best_score,
        scores=scores,
        n_train=len(run.folds) - len(valid_idx),
        n_valid=len(valid_idx),
        epochs_run=epochs_run,
        stopped_early=0 < epochs_run < epochs,
        seconds=round(time.perf_counter() - start_time, 3),
        oof=oof,
    )
    if is_main():
        write_csv(oof_file, oof)
        write_json(
            fdir / RunDir.DONE_FILE,
            result.to_json() | {"monitor": run.config.train.monitor, **extra},
        )
    return result


def _fit_fold(run: _Run, arch: str, fold: int) -> FoldResult:
    """Fit one fold of a scikit-learn family (:mod:`emo_utils.models.classical`).

    The estimator is fitted on the fold's training rows of its input (clip statistics) and
    scores the validation rows; ``model.joblib``, ``oof.csv`` and ``done.json`` are written
    atomically, ``done.json`` last.  Nothing to resume: a fit takes seconds.
    """
    start_time = time.perf_counter()
    family, name = resolve_architecture(arch)
    fdir = run.run.fold_dir(arch, fold)
    fdir.mkdir(parents=True, exist_ok=True)
    remove_temp_files(fdir)
    valid_mask = run.folds["fold"].to_numpy() == fold
    train_idx, valid_idx = np.flatnonzero(~valid_mask), np.flatnonzero(valid_mask)
    store = model_input(arch, run.inputs)
    x = store.matrix(run.store_rows[family.input])
    kind = run.task.label_kind
    model = fit_estimator(
        family.build(name, n_outputs=len(run.columns)),
        x[train_idx],
        run.targets[train_idx],
        label_kind=kind,
        seed=run.config.train.seed,
    )
    probs = predict_estimator(model, x[valid_idx], n_outputs=len(run.columns), label_kind=kind)
    save_estimator(model, fdir / ESTIMATOR_FILE)
    result = _finish_fold(
        run,
        arch,
        fold,
        valid_idx,
        probs,
        start_time=start_time,
        best_epoch=None,
        best_score=None,
        epochs_run=0,
        extra={},
    )
    if run.progress:
        metric = run.config.ensemble.metric
        print(f"fitted in {result.seconds:.1f} s: {metric} {result.best_score:.4f}")
    return result


#: ``ModelFamily.trainer`` -> the function that trains (or resumes) one fold.
_FOLD_TRAINERS = {"fastai": _train_fold, "sklearn": _fit_fold}


# ---------------------------------------------------------------------------- run setup
def _as_inputs(store: Any, architectures: Sequence[str]) -> dict[str, Any]:
    """``{input kind: store}`` from one image store or a mapping; every needed input present.

    Raises
    ------
    TrainingError
        An architecture's input (``ModelFamily.input``) is not given.
    """
    inputs = dict(store) if isinstance(store, Mapping) else {"image": store}
    missing = [kind for kind in model_inputs(architectures) if kind not in inputs]
    if missing:
        needs = [a for a in architectures if resolve_architecture(a)[0].input in missing]
        raise TrainingError(
            f"train.architectures: {needs} need the input(s) {missing}, which were not given; "
            "pass a mapping such as {'image': build_cache(...), 'features': "
            "build_statistics(...), 'waveform': build_waveforms(...)} "
            "(emo_utils.models.build_inputs builds it)"
        )
    return inputs


def _align_store(
    competition: Competition, inputs: Mapping[str, Any], config: Config
) -> tuple[Competition, dict[str, np.ndarray], list[tuple[str, str]]]:
    """Store rows of every usable training row per input, and the dropped ``(file, reason)``.

    The one place ``data.skip_bad_train`` is applied: failed rows (in any input) stop the
    run (:func:`~emo_utils.features.require_valid_training` lists them all) or are dropped.
    """
    names = competition.train["filename"].tolist()
    rows: dict[str, np.ndarray] = {}
    good = np.arange(len(names))
    skipped: dict[str, str] = {}
    for kind, store in inputs.items():
        index: dict[str, int] = {}
        for i, name in enumerate(store.filenames):
            index.setdefault(name, i)
        missing = [n for n in names if n not in index]
        if missing:
            raise CacheError(
                f"{len(missing)} training file(s) are not in the {kind} store, e.g. "
                f"{missing[:5]}; rebuild the cache for this competition"
            )
        rows[kind] = np.array([index[n] for n in names], dtype=np.int64)
        aligned = store.select(rows[kind])
        good = np.intersect1d(
            good, require_valid_training(aligned, skip_bad=config.data.skip_bad_train)
        )
        for name, reason in aligned.failures():
            skipped.setdefault(name, reason)
    if skipped:
        train = competition.train.iloc[good].reset_index(drop=True)
        competition = dataclasses.replace(competition, train=train)
        rows = {kind: r[good] for kind, r in rows.items()}
    return competition, rows, list(skipped.items())


def check_training_setup(competition: Competition, config: Config) -> None:
    """Fail before any work (feature cache, run folder) when training could not start.

    Checks that the task and every ``train.architectures`` name are registered, that local
    pretrained weights exist when ``train.weights_dir`` is set, that every model takes the
    run's input (``ModelFamily.check_setup``: an ``hf:`` model's sample rate and window
    length), and that the labels can fill ``train.n_folds`` folds.  :func:`train_cv` calls
    it too, after dropping failed files.

    Raises
    ------
    TrainingError
        Naming the field (``train.architectures``, ``train.weights_dir``,
        ``train.n_folds``) and the reason.
    ConfigError
        Unknown ``data.task``.
    """
    tc = config.train
    task = get_task(config.data.task)
    check_architectures(tc.architectures)
    check_normalization(tc.architectures, tc.image_normalization)
    if tc.pretrained and tc.weights_dir:
        check_local_weights(tc.architectures, tc.weights_dir)
    check_setups(tc.architectures, config)
    task.check_counts(competition.train["label"].tolist(), n_folds=tc.n_folds)


def train_cv(
    competition: Competition,
    store: FeatureStore | Mapping[str, Any],
    *,
    run_dir: str | os.PathLike | RunDir,
    config: Config,
    progress: bool = True,
    groups: Mapping[str, object] | Sequence[object] | None = None,
    callbacks: Sequence[Callback] = (),
    pseudo: PseudoLabels | None = None,
) -> CVResult:
    """Train every architecture on every fold, resumably, and write the run folder.

    Parameters
    ----------
    competition : Competition
        Training rows (``filename``, ``label``) and ``classes``.
    store : FeatureStore or mapping
        Cached training images, or ``{input: store}`` for every input the architectures
        need (``"image"``: a :class:`~emo_utils.features.FeatureStore`; ``"features"``: a
        :class:`~emo_utils.features.StatisticsStore` for ``classical:*`` models;
        ``"waveform"``: the :class:`~emo_utils.features.FeatureStore` of
        :func:`~emo_utils.features.build_waveforms` for ``hf:*`` models;
        :func:`emo_utils.models.build_inputs` builds it).  Rows are matched to
        ``competition.train`` by file name.
    run_dir : str, os.PathLike or RunDir
        The run folder (created if needed).  Re-running skips finished folds and resumes an
        interrupted one.
    config : Config
        The run's configuration (``data.task`` and the ``train`` section; ``audio.crop`` /
        ``audio.train_crop`` choose the windows; ``data.skip_bad_train`` decides about
        clips without image; the ``ensemble.tta_*`` views apply to the OOF predictions as
        to the test predictions).
    progress : bool
        Show fastai's progress bars and per-epoch tables.
    groups : mapping or sequence, optional
        Near-duplicate group for ``train.use_groups`` (see
        :func:`emo_utils.data.folds.load_or_create_folds`): a mapping file name -> group, or
        one group per usable training row.
    callbacks : sequence of fastai Callback
        Extra callbacks added to every fold's ``fit`` (logging, experiment tracking).
    pseudo : PseudoLabels, optional
        A pseudo-label round's soft targets, with the stores of their clips
        (:meth:`PseudoLabels.with_inputs`; :func:`emo_utils.endgame.pseudo.pseudo_labels`
        makes them).  Fold ``k`` of a fastai-trained model trains on its labelled training
        clips plus the clips kept for fold ``k``; validation and OOF stay on the labelled
        clips.  The run takes the parent's ``folds.csv`` (copied when absent, refused when
        different), and ``cv_report`` gets a ``pseudo`` section (rounds' OOF side by side).

    Returns
    -------
    CVResult

    Raises
    ------
    TrainingError
        Unknown architecture or missing local weights (before any training), too few clips
        of a class for the folds, a run folder made for other data.
    CheckpointError
        A damaged checkpoint, weights or completion file, naming the fold and the file.
    ConfigError
        ``run_dir`` holds a run made with another configuration.
    CacheError
        Training clips missing from the store, or failed while ``data.skip_bad_train`` is off.
    """
    tc = config.train
    task = get_task(config.data.task)
    check_architectures(tc.architectures)
    inputs = _as_inputs(store, tc.architectures)
    require_on_the_fly_input(inputs, config)
    competition, rows, skipped = _align_store(competition, inputs, config)
    if isinstance(groups, Mapping):
        absent = [n for n in competition.train["filename"] if n not in groups]
        if absent:
            raise TrainingError(f"groups: no group for {len(absent)} file(s), e.g. {absent[:5]}")
        groups = [groups[n] for n in competition.train["filename"]]
    elif groups is not None and len(groups) != len(competition.train):
        raise TrainingError(
            f"groups: {len(groups)} values for {len(competition.train)} usable training rows; "
            "pass a mapping file name -> group to let failed rows drop out"
        )
    check_training_setup(competition, config)
    classes = tuple(competition.classes)
    progress = progress and is_main()
    run = RunDir(run_dir)
    with main_first():  # rank 0 writes the run files; the others then read folds.csv
        if is_main():
            run.prepare()
            run.write_run_files(config, classes)
            if pseudo is not None:
                install_parent_folds(run, pseudo.parent)  # before folds are read: the parent's
        folds = load_or_create_folds(
            competition, path=run.folds_file, config=config, groups=groups, splitter=task.split
        )
    if progress and is_distributed():
        print(f"distributed training: {describe()}, rank 0 writes {run.path}")
    run_state = _Run(
        run=run,
        config=config,
        task=task,
        inputs=inputs,
        classes=classes,
        columns=task.output_columns(classes),
        folds=folds[["filename", "label", "fold"]],
        store_rows=rows,
        targets=task.encode(folds["label"].tolist(), classes),
        progress=progress,
        callbacks=list(callbacks),
    )
    if pseudo is not None:
        run_state = _with_pseudo(run_state, pseudo)
    fold_results: dict[str, list[FoldResult]] = {}
    oofs: dict[str, pd.DataFrame] = {}
    for arch in tc.architectures:
        results = []
        for fold in range(tc.n_folds):
            if run.fold_done(arch, fold):
                result = _finished_fold(run_state, arch, fold)
                if progress:
                    print(f"{arch} fold {fold}: already trained, skipped")
            else:
                if progress:
                    print(f"{arch} fold {fold + 1}/{tc.n_folds}")
                result = _train_or_read(run_state, arch, fold)
            results.append(result)
        fold_results[arch] = results
        oofs[arch] = _merge_oof(run_state, arch, results)
        if is_main():
            write_csv(run.oof_file(arch), oofs[arch])
    report = cv_report(
        fold_results,
        oofs,
        task=task,
        targets=run_state.targets,
        classes=classes,
        monitor=tc.monitor,
        n_folds=tc.n_folds,
        groups=folds.get("group"),
        pseudo=_pseudo_summary(run_state, classes),
    )
    if is_main():
        write_json(run.cv_report_file(".json"), report)
        write_text(run.cv_report_file(".md"), report_markdown(report))
        for message in report["warnings"]:
            warnings.warn(message, EmoUtilsWarning, stacklevel=2)
    barrier()  # every rank returns once the run folder is complete
    return CVResult(
        run_dir=run.path,
        classes=classes,
        folds=folds,
        oof=oofs,
        fold_results=fold_results,
        report=report,
        skipped_files=skipped,
    )


def _train_or_read(run: _Run, arch: str, fold: int) -> FoldResult:
    """Train one fold (every rank, for fastai models), then wait until rank 0 wrote it.

    A ``classical:*`` fold is fitted by rank 0 alone; the other ranks read its files.
    """
    trainer = resolve_architecture(arch)[0].trainer
    result = None
    if trainer == "fastai" or is_main():
        result = _FOLD_TRAINERS[trainer](_fold_run(run, arch, fold), arch, fold)
    barrier()  # the fold's done.json exists for every rank
    if result is None:
        result = dataclasses.replace(_finished_fold(run, arch, fold), skipped=False)
    return result


def _pseudo_summary(run: _Run, classes: Sequence[str]) -> dict[str, Any] | None:
    """What the CV report says about the round's pseudo-labels (``None``: no round)."""
    if run.pseudo is None:
        return None
    labels, tc = run.pseudo.labels, run.config.train
    return {
        "parent": os.fspath(labels.parent),
        "run": os.fspath(run.run.path),
        "method": labels.method,
        "metric": run.config.ensemble.metric,
        "clips": len(labels),
        "splits": labels.split_counts(),
        "kept": labels.kept_per_fold(),
        "threshold": tc.pseudo_threshold,
        "power": tc.pseudo_power,
        "architectures": [
            a for a in tc.architectures if resolve_architecture(a)[0].trainer == "fastai"
        ],
        "history": round_history(labels.parent, task=run.task, classes=classes),
    }


def _merge_oof(run: _Run, arch: str, results: list[FoldResult]) -> pd.DataFrame:
    merged = pd.concat([r.oof for r in results], ignore_index=True)
    counts = merged["filename"].value_counts()
    twice = counts[counts > 1].index.tolist()
    missing = sorted(set(run.folds["filename"]) - set(merged["filename"]))
    if twice or missing:
        raise TrainingError(
            f"{arch}: out-of-fold predictions cover clips twice ({twice[:5]}) or not at all "
            f"({missing[:5]}); the fold files disagree with folds.csv"
        )
    merged = merged.set_index("filename").loc[run.folds["filename"]].reset_index()
    return merged[["filename", "label", "fold", *run.columns]]
