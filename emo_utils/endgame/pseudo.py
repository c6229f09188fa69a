"""Pseudo-label rounds, the parent's side: check the parent run, make the soft targets.

A round (``train.pseudo_from = PARENT``, ``python -m emo_utils train --pseudo-from PARENT``)
adds test clips, and the clips of ``data.unlabelled_dir``, to the training part of every
fold, with the parent's ensemble probabilities as soft targets
(:mod:`emo_utils.train.pseudo` is the training side).  This module:

* :func:`check_parent` refuses a parent that could leak or make the scores incomparable:
  not trained or not predicted, other classes, other data settings, other fold settings,
  or a ``folds.csv`` other than the one the new run already has;
* :func:`pseudo_candidates` lists the clips to label (each file once; clips without an
  input are skipped, with their reason, never an error);
* :func:`make_pseudo_labels` labels them **per fold**: fold ``k``'s targets are the parent's
  fold-``k`` models' probabilities (:func:`emo_utils.infer.predict.predict_folds`; those
  models never saw fold ``k``'s labels), combined by the parent's ensemble method (the one
  that wrote its submission) fitted on the parent's OOF rows **outside** fold ``k``, and,
  multi-label, cut at thresholds tuned (like the parent's ``thresholds.json``) on those rows
  too.  No label of fold ``k`` reaches fold ``k``'s targets directly; what remains is
  second order (the other folds' models, whose OOF rows fit the ensemble, trained on fold
  ``k``);
* :func:`pseudo_labels` reads the targets a round saved (``RUN/pseudo_labels.csv`` and
  ``.json``), so a resumed round trains on exactly the targets it started with, or makes and
  saves them.

:mod:`emo_utils.train.pseudo` (which imports fastai with the training package) is imported
only when targets are made or read, so ``vote`` and ``blend`` start without fastai.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import Config
from ..ensemble import ensemble_options, make_ensemble, make_multilabel_ensemble
from ..errors import CheckpointError, TrainingError
from ..infer.predict import predict_folds
from ..runs import RunDir
from ..tasks import Task, get_task
from ..thresholds import tune_thresholds
from .gather import SHARED_TRAIN_FIELDS

if TYPE_CHECKING:
    from ..train.pseudo import PseudoLabels

__all__ = ["check_parent", "make_pseudo_labels", "pseudo_candidates", "pseudo_labels"]

#: ``data`` fields a round may change from its parent (they add clips, not labels).
ROUND_DATA_FIELDS = frozenset({"unlabelled_dir"})

_FIELD = "train.pseudo_from"


def check_parent(
    parent: str | os.PathLike | RunDir,
    *,
    config: Config,
    classes: Sequence[str],
    run: str | os.PathLike | RunDir | None = None,
) -> RunDir:
    """The parent run of a pseudo-label round, checked before any work.

    Parameters
    ----------
    parent : str, os.PathLike or RunDir
        ``train.pseudo_from``.
    config : Config
        The round's config.
    classes : sequence of str
        The round's classes (the competition's).
    run : str, os.PathLike or RunDir, optional
        The round's run folder: it must not be the parent, and a ``folds.csv`` it already
        has must be the parent's, byte for byte.

    Returns
    -------
    RunDir

    Raises
    ------
    TrainingError
        Naming the file and the reason: no run folder, the round's own folder, other
        ``data`` settings (but ``data.unlabelled_dir``), other ``train.n_folds`` / ``seed``
        / ``use_groups``, other classes, an unfinished fold or missing OOF file, no
        ``folds.csv``, a different ``folds.csv`` in ``run``, or no
        ``ensemble_report.json`` (predict with the parent first).
    """
    parent = RunDir(parent)
    if not parent.config_file.is_file():
        raise TrainingError(
            f"{_FIELD} = {os.fspath(parent.path)!r}: no trained run folder there "
            f"({parent.config_file} not found)"
        )
    if run is not None and parent.path.resolve() == RunDir(run).path.resolve():
        raise TrainingError(f"{_FIELD}: the parent must be another run folder than {parent.path}")
    mine, theirs = config.to_dict(), parent.read_config().to_dict()
    changed = [
        k
        for k in mine["data"]
        if k not in ROUND_DATA_FIELDS and mine["data"][k] != theirs["data"].get(k)
    ]
    if changed:
        raise TrainingError(
            f"{_FIELD}: {parent.config_file}: the data settings {changed} differ from this "
            "round's; a round continues its parent's competition"
        )
    changed = [k for k in SHARED_TRAIN_FIELDS if mine["train"][k] != theirs["train"][k]]
    if changed:
        raise TrainingError(
            f"{_FIELD}: {parent.config_file}: train settings {changed} differ from this "
            "round's; a round trains on its parent's folds (else OOF would leak and rounds "
            "would be scored on other folds)"
        )
    if list(parent.read_classes()) != list(classes):
        raise TrainingError(
            f"{_FIELD}: {parent.classes_file}: classes {list(parent.read_classes())} differ "
            f"from this round's {list(classes)}"
        )
    archs = list(theirs["train"]["architectures"])
    parent.require_trained(archs, theirs["train"]["n_folds"])
    missing = [a for a in archs if not parent.oof_file(a).is_file()]
    if missing:
        raise TrainingError(f"{_FIELD}: {parent.oof_dir}: no OOF predictions for {missing}")
    if not parent.folds_file.is_file():
        raise TrainingError(f"{_FIELD}: {parent.folds_file} not found; train the parent first")
    if run is not None and RunDir(run).folds_file.is_file():
        mine_folds = RunDir(run).folds_file
        if mine_folds.read_bytes() != parent.folds_file.read_bytes():
            raise TrainingError(
                f"OOF would leak: {mine_folds} is not byte-identical to the parent's "
                f"{parent.folds_file}; a round trains on its parent's folds (use a new run "
                "folder)"
            )
    report = parent.read_ensemble_report()
    if not report or "submission_method" not in report:
        raise TrainingError(
            f"{_FIELD}: {parent.ensemble_report_file()} not found; predict with the parent "
            f"first (python -m emo_utils predict --run {parent.path}): the ensemble method "
            "that wrote its submission makes the pseudo-labels"
        )
    return parent


def pseudo_candidates(
    inputs: Mapping[str, Mapping[str, Any]], splits: Sequence[str]
) -> tuple[list[str], list[str], list[tuple[str, str, str]]]:
    """The clips a round labels: each file of each split once, if it has every input.

    Parameters
    ----------
    inputs : mapping
        ``{split: {input kind: store}}`` of the round (its splits' caches).
    splits : sequence of str
        ``train.pseudo_splits``, in order; splits missing from ``inputs`` are left out.

    Returns
    -------
    splits, filenames : list of str
        The split and file name of every clip, split by split in store order (a file listed
        twice in ``test.csv`` once).
    skipped : list of (str, str, str)
        ``(split, file name, reason)`` of every clip without an input (a file that cannot be
        decoded), left out.
    """
    out_splits: list[str] = []
    names: list[str] = []
    skipped: list[tuple[str, str, str]] = []
    for split in splits:
        stores = inputs.get(split)
        if not stores:
            continue
        first = next(iter(stores.values()))
        seen: set[str] = set()
        for row, name in enumerate(first.filenames):
            if name in seen:
                continue
            seen.add(name)
            reason = next((s.reasons[row] for s in stores.values() if s.reasons[row]), "")
            if reason:
                skipped.append((split, name, reason))
            else:
                out_splits.append(split)
                names.append(name)
    return out_splits, names, skipped


def _fold_ensemble(parent_config: Config, method: str, task: Task) -> Any:
    """The parent's ensemble method, unfitted, with the parent's ensemble options."""
    ec = parent_config.ensemble
    common = {
        "weights": ec.weights or None,
        "seed": parent_config.train.seed,
        **ensemble_options(parent_config),
    }
    if task.label_kind == "multi":
        return make_multilabel_ensemble(
            method,
            k=ec.vote_k or None,
            threshold_mode=ec.threshold,
            min_positives=ec.min_positives,
            **common,
        )
    return make_ensemble(method, stacking_model=ec.stacking_model, **common)


def make_pseudo_labels(
    parent: str | os.PathLike | RunDir,
    inputs: Mapping[str, Mapping[str, Any]],
    *,
    splits: Sequence[str],
    filenames: Sequence[str],
    config: Config,
    device: Any = None,
    progress: bool = True,
) -> PseudoLabels:
    """The soft targets of ``filenames`` for every fold, from the parent's models.

    Parameters
    ----------
    parent : str, os.PathLike or RunDir
        A checked parent (:func:`check_parent`).
    inputs : mapping
        ``{split: {input kind: store}}`` built with the **parent's** config (its models'
        inputs).
    splits, filenames : sequence of str
        The clips (:func:`pseudo_candidates`).
    config : Config
        The round's config: ``train.pseudo_threshold`` and ``train.pseudo_power``.
    device, progress
        For the parent's models (:func:`~emo_utils.infer.predict.predict_folds`).

    Returns
    -------
    PseudoLabels
        Without stores (:meth:`~emo_utils.train.pseudo.PseudoLabels.with_inputs`).  A clip
        the parent could not predict is kept by no fold.
    """
    from ..train.pseudo import PseudoLabels  # the training side imports fastai: only here

    parent = RunDir(parent)
    pconf = parent.read_config()
    task = get_task(pconf.data.task)
    classes = parent.read_classes()
    columns = task.output_columns(classes)
    archs = list(pconf.train.architectures)
    n_folds = pconf.train.n_folds
    method = str(parent.read_ensemble_report()["submission_method"])
    empty = PseudoLabels(
        parent=parent.path,
        method=method,
        splits=list(splits),
        filenames=list(filenames),
        keep=np.zeros((n_folds, len(filenames)), dtype=bool),
        targets=np.zeros((n_folds, len(filenames), len(columns)), dtype=np.float32),
        columns=columns,
    )
    if not len(filenames):
        return empty
    stores = empty.with_inputs(inputs, require_ok=False).inputs
    per_fold = predict_folds(stores, run_dir=parent, config=pconf, device=device, progress=progress)
    oof = parent.load_oof(archs, classes, encode=task.encode)
    tc = config.train
    keep, targets, thresholds = [], [], []
    for fold in range(n_folds):
        outside = oof.folds != fold
        ensemble = _fold_ensemble(pconf, method, task)
        ensemble.fit(oof.probas[:, outside], oof.y[outside], oof.folds[outside])
        stacked = np.stack([per_fold[a][fold] for a in archs])  # (n_models, n, n_outputs)
        ok = np.isfinite(stacked).all(axis=(0, 2))
        proba = np.full(stacked.shape[1:], np.nan)
        if ok.any():
            proba[ok] = ensemble.predict_proba(stacked[:, ok])
        threshold = tc.pseudo_threshold
        if task.label_kind == "multi":
            if threshold is None:
                ec = pconf.ensemble
                threshold = tune_thresholds(
                    oof.y[outside],
                    ensemble.predict_proba(oof.probas[:, outside]),
                    mode=ec.threshold,
                    min_positives=ec.min_positives,
                )
            thresholds.append(np.broadcast_to(threshold, (len(columns),)).tolist())
        t, k = task.pseudo_targets(proba, threshold=threshold, power=tc.pseudo_power)
        targets.append(t)
        keep.append(k)
    return PseudoLabels(
        parent=parent.path,
        method=method,
        splits=list(splits),
        filenames=list(filenames),
        keep=np.stack(keep),
        targets=np.stack(targets),
        columns=columns,
        thresholds=thresholds or None,
    )


def pseudo_labels(
    run_dir: str | os.PathLike | RunDir,
    *,
    config: Config,
    inputs: Mapping[str, Mapping[str, Any]],
    parent_inputs: Callable[[Sequence[str]], Mapping[str, Mapping[str, Any]]],
    device: Any = None,
    progress: bool = True,
) -> tuple[PseudoLabels, list[tuple[str, str, str]]]:
    """The round's targets with their stores: read from the run folder, or made and saved.

    Parameters
    ----------
    run_dir : str, os.PathLike or RunDir
        The round's run folder (hold its lock: the targets are written into it).
    config : Config
        The round's config (``train.pseudo_from`` a checked parent).
    inputs : mapping
        ``{split: {input kind: store}}`` of the round's ``train.pseudo_splits``.
    parent_inputs : callable
        ``parent_inputs(splits) -> {split: {input kind: store}}`` built with the parent's
        config; called only when the targets are made (not on a resumed round).
    device, progress
        For the parent's models.

    Returns
    -------
    labels : PseudoLabels
        With :attr:`~emo_utils.train.pseudo.PseudoLabels.inputs` (the round's stores).
    skipped : list of (str, str, str)
        ``(split, file name, reason)`` of the clips left out (no input).

    Raises
    ------
    CheckpointError
        Saved targets made from another parent, for other outputs or folds, or for clips
        the caches no longer give.
    """
    from ..train.pseudo import PseudoLabels  # the training side imports fastai: only here

    run = RunDir(run_dir)
    splits, filenames, skipped = pseudo_candidates(inputs, config.train.pseudo_splits)
    saved = PseudoLabels.load(run)
    if saved is not None:
        parent = Path(config.train.pseudo_from)
        if saved.parent.resolve() != parent.resolve() or saved.n_folds != config.train.n_folds:
            raise CheckpointError(
                f"{run.pseudo_labels_file('.json')}: made from {saved.parent} for "
                f"{saved.n_folds} folds, not from {parent} for {config.train.n_folds}; use a "
                "new run folder for the round"
            )
        return saved.with_inputs(inputs), skipped
    used = list(dict.fromkeys(splits))
    labels = make_pseudo_labels(
        config.train.pseudo_from,
        parent_inputs(used) if used else {},
        splits=splits,
        filenames=filenames,
        config=config,
        device=device,
        progress=progress,
    )
    labels.save(run)
    return labels.with_inputs(inputs), skipped
