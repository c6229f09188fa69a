"""OOF scoring of multi-label ensembles.

:func:`score_multilabel_ensembles` scores every single model and every method of
:data:`~emo_utils.ensemble.multilabel_estimators.MULTILABEL_ENSEMBLES` on OOF
probabilities and returns the :class:`~emo_utils.ensemble.scoring.EnsembleReport` of
:mod:`emo_utils.ensemble.scoring` with the thresholds to apply to the test set.  It is
importable from ``emo_utils.ensemble`` and ``emo_utils.ensemble.multilabel``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..metrics import MULTILABEL_METRICS, THRESHOLD_METRICS, get_multilabel_metric
from ..thresholds import THRESHOLD_MODES, cross_fit_thresholds, tune_thresholds
from .combiners import DEFAULT_POWER
from .multilabel_combiners import _check_folds, _check_target, check_multilabel_probas
from .multilabel_estimators import (
    MULTILABEL_ENSEMBLES,
    KOfNVote,
    make_multilabel_ensemble,
    resolve_multilabel_method,
)
from .scoring import EnsembleReport, _best_names, with_single
from .selection import DEFAULT_ROUNDS, LearnedMean

__all__ = ["score_multilabel_ensembles"]


def score_multilabel_ensembles(
    probas: np.ndarray,
    y: np.ndarray,
    *,
    model_names: Sequence[str],
    folds: np.ndarray,
    metric: str = "map",
    method: str = "mode",
    metrics: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    weights: Sequence[float] | None = None,
    k: int | None = None,
    threshold_mode: str = "per_label",
    min_positives: int = 5,
    seed: int = 0,
    selection_rounds: int = DEFAULT_ROUNDS,
    selection_init: int = 1,
    power: float = DEFAULT_POWER,
) -> tuple[EnsembleReport, dict[str, np.ndarray]]:
    """Score every single model and every multi-label ensemble method on OOF probabilities.

    Scoring is honest: the threshold-free metrics (``map``, ``roc_auc``, ``lwlrap``) score
    the OOF probabilities (for ``stacking``, ``select`` and ``weighted``, their
    cross-fitted ones: nested over ``folds``); the F1 metrics score the decisions at
    thresholds cross-fitted over ``folds`` (:func:`emo_utils.thresholds.cross_fit_thresholds`:
    a row's thresholds never saw its label), except ``mode``, decided at its fixed vote
    threshold ``k / n`` with each model voting at its own cross-fitted thresholds.
    ``single`` (the best single model, scored as its model row) is always scored, first,
    so ``"best"`` (the top method, ties to the earliest) never scores below the best model.

    Parameters
    ----------
    probas : numpy.ndarray, shape (n_models, n_samples, n_labels)
        OOF probabilities of every model, rows aligned.
    y : numpy.ndarray of {0, 1}, shape (n_samples, n_labels)
        True labels.
    model_names : sequence of str
        Name of each model, in ``probas`` order (none may be a method's name).
    folds : numpy.ndarray of int, shape (n_samples,)
        OOF fold of every row (at least 2 distinct).
    metric : str
        Competition metric (a key of :data:`emo_utils.metrics.MULTILABEL_METRICS`): the
        ranking key and the table's first score column.
    method : str
        Configured method; ``"best"`` resolves to the best-scoring one.
    metrics : sequence of str, optional
        Metrics of the table; default every multi-label metric.
    methods : sequence of str, optional
        Methods to score; default every method of :data:`MULTILABEL_ENSEMBLES`.
        ``single`` is put first if missing.
    weights : sequence of float, optional
        Model weights (``mode``, ``mean``, ``geometric``, ``rank``, ``power``).
    k : int, optional
        ``mode``'s votes needed (default the strict majority).
    threshold_mode : {"per_label", "global"}
        How thresholds are tuned (:func:`emo_utils.thresholds.tune_thresholds`).
    min_positives : int
        Labels with fewer positives get the global threshold.
    seed : int
        ``stacking``'s random state.
    selection_rounds, selection_init, power
        Passed to :func:`make_multilabel_ensemble`.

    Returns
    -------
    report : EnsembleReport
        Rows: every model (``kind == "model"``) then every method (``"ensemble"``);
        columns ``name, kind`` and one per metric, ``metric`` first;
        :attr:`~EnsembleReport.details`: what the learnt methods chose on all rows.
    thresholds : dict of str to numpy.ndarray, shape (n_labels,)
        Per model and method name, the thresholds to apply to its test scores, tuned on
        all OOF rows (``mode``: ``k / n`` for every label, on the vote share; its models
        vote at their own entries of this dict; the learnt methods: on their OOF output).

    Raises
    ------
    ConfigError
        Unknown metric, method, threshold mode, or bad weights or ``k``.
    DataError
        Shapes that do not match, a model named like a method, or fewer than 2 folds.

    Notes
    -----
    The thresholds cross-fitted on the OOF output of ``stacking``, ``select`` or
    ``weighted`` for other folds come from stackers or weights that saw the scored fold's
    labels (the thresholds are not nested a second time), a second-order leak that the
    threshold-free metrics do not have.
    """
    p = check_multilabel_probas(probas)
    y = _check_target(y, p)
    f = _check_folds(folds, p.shape[1])
    names = [str(n) for n in model_names]
    metrics = list(MULTILABEL_METRICS) if metrics is None else list(metrics)
    methods = with_single(MULTILABEL_ENSEMBLES if methods is None else methods)
    for m in [metric, *metrics]:
        get_multilabel_metric(m)
    for name in methods:
        resolve_multilabel_method(name, name)
    resolve_multilabel_method(method, methods[0])  # fail on an unknown name before scoring
    if threshold_mode not in THRESHOLD_MODES:
        raise ConfigError(
            "threshold_mode", threshold_mode, f"must be one of {list(THRESHOLD_MODES)}"
        )
    if len(names) != p.shape[0]:
        raise DataError(f"model_names: {len(names)} names for {p.shape[0]} models")
    clash = sorted(set(names) & set(methods)) or sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise DataError(f"model_names: {clash} repeat a name or name a method")
    order = [metric, *(m for m in metrics if m != metric)]
    tune = {"mode": threshold_mode, "min_positives": min_positives}
    options = {
        "weights": weights,
        "k": k,
        "threshold_mode": threshold_mode,
        "min_positives": min_positives,
        "seed": seed,
        "metric": metric,
        "selection_rounds": selection_rounds,
        "selection_init": selection_init,
        "power": power,
    }

    def row(name: str, kind: str, scores: np.ndarray, fixed: float | None) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name, "kind": kind}
        per_row = None
        for m in order:
            if m in THRESHOLD_METRICS:
                if per_row is None:
                    per_row = (
                        fixed if fixed is not None else cross_fit_thresholds(y, scores, f, **tune)
                    )
                out[m] = float(MULTILABEL_METRICS[m](y, scores, thresholds=per_row))
            else:
                out[m] = float(MULTILABEL_METRICS[m](y, scores))
        return out

    rows, thresholds = [], {}
    details: dict[str, Any] = {}
    for i, name in enumerate(names):
        rows.append(row(name, "model", p[i], None))
        thresholds[name] = tune_thresholds(y, p[i], **tune)
    for name in methods:
        ens = make_multilabel_ensemble(name, **options)
        oof = ens.oof_predict_proba(p, y, f)
        if isinstance(ens, LearnedMean):
            details[name] = ens.fit(p, y, f).describe(names)
        if isinstance(ens, KOfNVote):
            vote = ens.decision_threshold(p.shape[0])
            rows.append(row(name, "ensemble", oof, vote))
            thresholds[name] = np.full(p.shape[2], vote)
        else:
            rows.append(row(name, "ensemble", oof, None))
            thresholds[name] = tune_thresholds(y, oof, **tune)
    table = pd.DataFrame(rows)
    best_method, best_model = _best_names(table, metric)
    report = EnsembleReport(
        metric=metric,
        table=table,
        best_method=best_method,
        best_model=best_model,
        method=resolve_multilabel_method(method, best_method),
        n_samples=int(p.shape[1]),
        details=details,
    )
    return report, thresholds
