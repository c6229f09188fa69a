"""The ensemble stage of a run folder: score every model and method on its OOF predictions.

:func:`evaluate_ensembles` reads ``oof/ARCH.csv`` of every architecture, scores them with
the task's ensembles (:func:`~emo_utils.ensemble.scoring.score_ensembles` for single-label,
:func:`~emo_utils.ensemble.multilabel_scoring.score_multilabel_ensembles` for multi-label) and
writes ``ensemble_report.json`` / ``.md``; for multi-label runs also ``thresholds.json``,
the decision thresholds tuned on all OOF rows that the test predictions are cut at.
"""

from __future__ import annotations

import os
from typing import Any

from ..config import Config
from ..fileio import write_json, write_text
from ..runs import OOF, RunDir
from ..tasks import Task, get_task
from .multilabel_scoring import score_multilabel_ensembles
from .scoring import EnsembleReport, score_ensembles

__all__ = ["ensemble_options", "evaluate_ensembles"]


def ensemble_options(config: Config) -> dict[str, Any]:
    """The options of the learnt and power ensembles, from ``config.ensemble``.

    Keyword arguments shared by :func:`~emo_utils.ensemble.make_ensemble`,
    :func:`~emo_utils.ensemble.make_multilabel_ensemble` and both scorers: ``metric``
    (what ``single`` and ``select`` maximise), ``selection_rounds``, ``selection_init``
    and ``power``.

    Parameters
    ----------
    config : Config
        A resolved configuration (``ensemble.metric`` set).

    Returns
    -------
    dict
    """
    ec = config.ensemble
    return {
        "metric": ec.metric,
        "selection_rounds": ec.selection_rounds,
        "selection_init": ec.selection_init,
        "power": ec.power,
    }


def _single(run: RunDir, oof: OOF, config: Config, task: Task) -> EnsembleReport:
    ec = config.ensemble
    return score_ensembles(
        oof.probas,
        oof.y,
        model_names=oof.architectures,
        folds=oof.folds,
        method=ec.method,
        weights=ec.weights or None,
        stacking_model=ec.stacking_model,
        seed=config.train.seed,
        methods=task.ensembles,
        metrics=task.metrics,
        **ensemble_options(config),
    )


def _multi(run: RunDir, oof: OOF, config: Config, task: Task) -> EnsembleReport:
    ec = config.ensemble
    report, thresholds = score_multilabel_ensembles(
        oof.probas,
        oof.y,
        model_names=oof.architectures,
        folds=oof.folds,
        method=ec.method,
        metrics=task.metrics,
        methods=task.ensembles,
        weights=ec.weights or None,
        k=ec.vote_k or None,
        threshold_mode=ec.threshold,
        min_positives=ec.min_positives,
        seed=config.train.seed,
        **ensemble_options(config),
    )
    write_json(
        run.thresholds_file,
        {
            "classes": list(oof.classes),
            "mode": ec.threshold,
            "min_positives": ec.min_positives,
            "thresholds": {name: [float(t) for t in v] for name, v in thresholds.items()},
        },
    )
    return report


#: ``Task.label_kind`` -> scorer of a run's OOF predictions.
_SCORERS = {"single": _single, "multi": _multi}


def evaluate_ensembles(
    run_dir: str | os.PathLike | RunDir, *, config: Config | None = None, write: bool = True
) -> EnsembleReport:
    """Score every architecture and every ensemble method on a run's OOF predictions.

    Parameters
    ----------
    run_dir : str or os.PathLike
        Run folder with ``classes.json`` and ``oof/ARCH.csv`` for every architecture of
        ``config.train.architectures``.
    config : Config, optional
        Default: the run's ``config.json``.
    write : bool
        Write ``ensemble_report.json`` and ``ensemble_report.md`` into the run folder.
        Multi-label runs always write ``thresholds.json`` (the predict stage applies it).

    Returns
    -------
    EnsembleReport
    """
    run = RunDir(run_dir)
    config = config or run.read_config()
    task = get_task(config.data.task)
    oof = run.load_oof(list(config.train.architectures), encode=task.encode)
    report = _SCORERS[task.label_kind](run, oof, config, task)
    if write:
        write_json(run.ensemble_report_file(".json"), report.to_dict())
        write_text(run.ensemble_report_file(".md"), report.to_markdown())
    return report
