"""OOF scoring of single-label ensembles, and the report of either kind.

:func:`score_ensembles` scores every single model and every method of
:data:`~emo_utils.ensemble.estimators.ENSEMBLES` on OOF predictions with the competition
metric and returns an :class:`EnsembleReport` (the multi-label scorer,
:func:`emo_utils.ensemble.multilabel.score_multilabel_ensembles`, returns one too);
:func:`resolve_method` turns ``"best"`` into the method that writes the submission.
Everything here is importable from ``emo_utils.ensemble`` and ``emo_utils.ensemble.single``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..metrics import METRICS, get_metric
from ..tables import markdown_table
from .combiners import DEFAULT_POWER, check_probas
from .estimators import ENSEMBLES, SINGLE, make_ensemble
from .selection import DEFAULT_ROUNDS, LearnedMean

__all__ = [
    "EnsembleReport",
    "resolve_method",
    "score_ensembles",
    "with_single",
]


@dataclass
class EnsembleReport:
    """OOF scores of every single model and every ensemble method, side by side.

    Attributes
    ----------
    metric : str
        The competition metric (``ensemble.metric``); the ranking key.
    table : pandas.DataFrame
        One row per single model (``kind == "model"``) then per method (``"ensemble"``,
        ``single`` first), columns ``name, kind`` and one score column per metric, the
        competition metric first.
    best_method : str
        The ensemble method with the best honest OOF score (ties: the earliest method, so
        ``single`` unless an ensemble strictly beats the best single model).
    best_model : str
        The single model with the best OOF score (ties: the first model).
    method : str
        The method configured to write the submission (``"best"`` resolved).
    n_samples : int
        OOF rows scored.
    details : dict
        What each learnt method chose when fitted on all OOF rows (what predicts the test
        set): ``{"single": model name, "select": {model: weight}, "weighted": {model:
        weight}}``; members with weight 0 are left out.
    """

    metric: str
    table: pd.DataFrame
    best_method: str
    best_model: str
    method: str
    n_samples: int
    details: dict[str, Any] = field(default_factory=dict)

    def scores(self, kind: str) -> dict[str, float]:
        """``name -> score`` (competition metric) of the rows of ``kind`` (model/ensemble)."""
        rows = self.table[self.table["kind"] == kind]
        return dict(zip(rows["name"], rows[self.metric].astype(float), strict=True))

    @property
    def model_scores(self) -> dict[str, float]:
        """``name -> score`` (competition metric) of every single model."""
        return self.scores("model")

    @property
    def ensemble_scores(self) -> dict[str, float]:
        """``method -> score`` (competition metric) of every ensemble method."""
        return self.scores("ensemble")

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict for ``ensemble_report.json``.

        The fields (``method`` under the key ``submission_method``), the table as a list of
        row dicts under ``rows``, and what the learnt methods chose under ``details``.
        """
        return {
            "metric": self.metric,
            "n_samples": self.n_samples,
            "best_method": self.best_method,
            "best_model": self.best_model,
            "submission_method": self.method,
            "rows": self.table.to_dict(orient="records"),
            "details": self.details,
        }

    def weight_table(self) -> pd.DataFrame:
        """Each model's weight in every learnt method (fitted on all OOF rows).

        Returns
        -------
        pandas.DataFrame
            Index: the models (table order); one column per method of :attr:`details`
            (``single``: 1 for its model); 0 for a model left out.
        """
        models = self.table.loc[self.table["kind"] == "model", "name"].astype(str).tolist()
        columns = {}
        for method, chosen in self.details.items():
            weights = {chosen: 1.0} if isinstance(chosen, str) else dict(chosen)
            columns[method] = [float(weights.get(m, 0.0)) for m in models]
        return pd.DataFrame(columns, index=pd.Index(models, name="model"))

    def to_markdown(self) -> str:
        """Text of ``ensemble_report.md``: the score table, then best and submission methods.

        The best ensemble method and the submission's are marked in the table; the best
        single model is named below it.
        """
        metrics = [c for c in self.table.columns if c not in ("name", "kind")]
        lines = [
            "# Ensemble report (out-of-fold)",
            "",
            f"{self.n_samples} OOF samples; competition metric: **{self.metric}**.",
            "",
        ]
        rows = []
        for row in self.table.itertuples(index=False):
            d = row._asdict()
            name = d["name"]
            marks = [
                m
                for m, hit in (
                    ("best", name == self.best_method),
                    ("submission", name == self.method),
                )
                if hit and d["kind"] == "ensemble"
            ]
            label = f"{name} ({', '.join(marks)})" if marks else name
            rows.append([label, d["kind"], *(float(d[m]) for m in metrics)])
        lines += markdown_table(["name", "kind", *metrics], rows)
        best_score = self.ensemble_scores[self.best_method]
        lines += [
            "",
            f"Best method on OOF ({self.metric}): **{self.best_method}** ({best_score:.4f}).",
            f"Best single model: {self.best_model} ({self.model_scores[self.best_model]:.4f}).",
            f"Submission written by: **{self.method}**.",
            "",
        ]
        if self.details:
            weights = self.weight_table()
            lines += [
                "## Learnt weights (fitted on all OOF rows; these predict the test set)",
                "",
                "Their OOF scores above are nested, except `single` (its model's own): each "
                "fold was combined with weights learnt on the other folds.  Blank: weight 0.",
                "",
            ]
            rows = [
                [name, *(float(w) if w > 0 else None for w in weights.loc[name])]
                for name in weights.index
            ]
            lines += markdown_table(["model", *weights.columns], rows)
            lines.append("")
        return "\n".join(lines)


def score_ensembles(
    probas: np.ndarray,
    y: np.ndarray,
    *,
    model_names: Sequence[str],
    folds: np.ndarray | None = None,
    metric: str = "accuracy",
    method: str = "mode",
    weights: Sequence[float] | None = None,
    stacking_model: str = "logistic",
    seed: int = 0,
    methods: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    selection_rounds: int = DEFAULT_ROUNDS,
    selection_init: int = 1,
    power: float = DEFAULT_POWER,
) -> EnsembleReport:
    """Score every single model and every ensemble method on OOF predictions.

    Every method's OOF score is honest: the learnt methods (``select``, ``weighted``,
    ``stacking``) are cross-fitted over ``folds``; ``single``'s score is the best single
    model's own.  ``single`` is always scored, first, so ``"best"`` (the top method, ties
    to the earliest) never scores below the best single model.

    Parameters
    ----------
    probas : numpy.ndarray, shape (n_models, n_samples, n_classes)
        OOF probabilities of every model, rows aligned.
    y : numpy.ndarray of int, shape (n_samples,)
        True class indices.
    model_names : sequence of str
        Name of each model (architectures), in ``probas`` order.
    folds : numpy.ndarray of int, shape (n_samples,), optional
        Training fold of each sample; the learnt methods are cross-fitted over them
        (``None``: over a stratified split).
    metric : str
        Competition metric (name in :data:`emo_utils.metrics.METRICS`); ``single`` and
        ``select`` maximise it.
    method : str
        Configured method; ``"best"`` resolves to the best-scoring one.
    weights, stacking_model, seed, selection_rounds, selection_init, power
        Passed to :func:`make_ensemble`.
    methods : sequence of str, optional
        Ensemble methods to score (the task's, :attr:`emo_utils.tasks.Task.ensembles`);
        default every method of :data:`ENSEMBLES`.  ``single`` is put first if missing.
    metrics : sequence of str, optional
        Metrics of the table (the task's); default every metric of
        :data:`emo_utils.metrics.METRICS`.

    Returns
    -------
    EnsembleReport
        With :attr:`EnsembleReport.details`: what the learnt methods chose on all rows.
    """
    p = check_probas(probas)
    y = np.asarray(y, dtype=np.int64)
    get_metric(metric)
    resolve_method(method, next(iter(ENSEMBLES)))  # fail on an unknown name before scoring
    if len(model_names) != p.shape[0] or y.shape != (p.shape[1],):
        raise DataError(
            f"probas {p.shape}: needs {p.shape[0]} model names (got {len(model_names)}) and "
            f"{p.shape[1]} labels (got {y.shape})"
        )
    methods = with_single(ENSEMBLES if methods is None else methods)
    for name in methods:
        resolve_method(name, name)
    metrics = list(METRICS) if metrics is None else list(metrics)
    names_in_order = [metric, *(m for m in metrics if m != metric)]
    options = {
        "weights": weights,
        "stacking_model": stacking_model,
        "seed": seed,
        "metric": metric,
        "selection_rounds": selection_rounds,
        "selection_init": selection_init,
        "power": power,
    }

    def row(name: str, kind: str, pred: np.ndarray) -> dict[str, Any]:
        return {"name": name, "kind": kind} | {
            m: float(METRICS[m](y, pred)) for m in names_in_order
        }

    rows = [row(n, "model", p[i].argmax(axis=1)) for i, n in enumerate(model_names)]
    details: dict[str, Any] = {}
    for name in methods:
        ens = make_ensemble(name, **options)
        rows.append(row(name, "ensemble", ens.oof_predict(p, y, folds)))
        if isinstance(ens, LearnedMean):
            details[name] = ens.fit(p, y, folds).describe(list(model_names))
    table = pd.DataFrame(rows)
    best_method, best_model = _best_names(table, metric)
    return EnsembleReport(
        metric=metric,
        table=table,
        best_method=best_method,
        best_model=best_model,
        method=resolve_method(method, best_method),
        n_samples=int(p.shape[1]),
        details=details,
    )


def with_single(methods: Sequence[str]) -> list[str]:
    """``methods`` with :data:`SINGLE` first (moved there, or added).

    Examples
    --------
    >>> with_single(["mode", "single", "mean"])
    ['single', 'mode', 'mean']
    """
    return [SINGLE, *(m for m in methods if m != SINGLE)]


def _best_names(table: pd.DataFrame, metric: str) -> tuple[str, str]:
    """``(best method, best model)`` of a report table: the first row with the top score."""
    methods = table[table["kind"] == "ensemble"]
    models = table[table["kind"] == "model"]
    best_method = str(methods.loc[methods[metric].idxmax(), "name"])
    best_model = str(models.loc[models[metric].idxmax(), "name"])
    return best_method, best_model


def resolve_method(method: str, best_method: str) -> str:
    """The method that writes the submission: ``method``, or ``best_method`` for ``"best"``.

    Raises
    ------
    ConfigError
        ``method`` is neither ``"best"`` nor in :data:`ENSEMBLES`.
    """
    resolved = best_method if method == "best" else method
    if resolved not in ENSEMBLES:
        raise ConfigError(
            "ensemble.method", method, f"unknown method; known: {[*ENSEMBLES, 'best']}"
        )
    return resolved
