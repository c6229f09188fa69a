"""Ensemble weights learnt from out-of-fold labels, scored honestly by nested cross-fitting.

The task-independent core of the learnt ensembles ``single``, ``select`` and ``weighted``
of :data:`emo_utils.ensemble.ENSEMBLES` (single-label) and
:data:`emo_utils.ensemble.MULTILABEL_ENSEMBLES` (multi-label): numpy in, numpy out.
Probabilities have shape ``(n_models, n_samples, n_outputs)`` (classes or labels); a learner
returns one non-negative weight per model, the weights summing to 1, and the ensemble's
output is the weighted mean of the models' probabilities (:func:`weighted_mean`).

=========================  ================================================================
:func:`best_single`        all the weight on the model with the best score
:func:`forward_selection`  greedy forward selection with replacement (Caruana et al. 2004)
:func:`optimize_weights`   weights on the simplex minimising a smooth loss (scipy's SLSQP)
:func:`cross_fit_weights`  the nested wrapper: fold ``k`` is combined with weights learnt on
                           the other folds only
=========================  ================================================================

:data:`WEIGHT_LEARNERS` maps the method names to the learners; :class:`LearnedMean` is the
base class of the ensembles built on them (``fit``, ``predict_proba``,
``oof_predict_proba``, ``describe``).  What "score" and "loss" mean is the task's business
(:class:`LearnerOptions`): single-label ensembles score the argmax with the competition
metric and use the log loss; multi-label ones score with the multi-label metric and use the
binary cross-entropy.

Honest OOF scores
-----------------
Weights learnt on all OOF rows and scored on the same rows overfit the labels: with enough
models, even pure noise looks good.  The OOF output of ``select`` and ``weighted`` is
therefore cross-fitted (nested): the rows of fold ``k`` are combined with weights learnt on
the other folds' rows (:func:`cross_fit_weights`), so no scored row's label chose its own
weights.  ``single`` is not nested: its OOF output is the chosen model's own OOF
probabilities, the reference that an ensemble must strictly beat for ``best`` to choose it.
The weights used on the test set are learnt on all OOF rows (:meth:`LearnedMean.fit`).

References
----------
Caruana, R., Niculescu-Mizil, A., Crew, G. and Ksikes, A. (2004).  Ensemble selection from
libraries of models.  *Proceedings of the 21st International Conference on Machine
Learning (ICML)*.

Examples
--------
Model ``a`` is always right, model ``b`` always wrong: selection keeps ``a`` only.

>>> import numpy as np
>>> from sklearn.metrics import accuracy_score
>>> y = np.array([0, 1, 1, 0])
>>> a = np.eye(2)[y] * 0.8 + 0.1
>>> probas = np.stack([a, a[:, ::-1]])  # (2 models, 4 samples, 2 classes)
>>> def score(y_true, proba):
...     return accuracy_score(y_true, proba.argmax(axis=1))
>>> forward_selection(probas, y, score=score).tolist()
[1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

from ..errors import ConfigError, DataError, TrainingError

__all__ = [
    "DEFAULT_ROUNDS",
    "MIN_WEIGHT",
    "WEIGHT_LEARNERS",
    "LearnedMean",
    "LearnerOptions",
    "WeightLearner",
    "best_single",
    "check_selection_options",
    "cross_fit_weights",
    "forward_selection",
    "optimize_weights",
    "weighted_mean",
]

#: Default number of additions of :func:`forward_selection` (``ensemble.selection_rounds``).
DEFAULT_ROUNDS = 20

#: :func:`optimize_weights` sets weights below this to 0 (then renormalises).
MIN_WEIGHT = 1e-6

#: A candidate must beat the current score by more than this (relative to ``max(1, |score|)``)
#: to count as an improvement, so float rounding in a metric cannot add a model.
_IMPROVEMENT_RTOL = 1e-12

#: ``score(y, combined) -> float``, higher is better.
Score = Callable[[np.ndarray, np.ndarray], float]
#: ``loss(y, combined) -> float``, lower is better (smooth in the weights).
Loss = Callable[[np.ndarray, np.ndarray], float]


# ---------------------------------------------------------------------------- validation
def _check_probas(probas: np.ndarray) -> np.ndarray:
    """``probas`` as float64 ``(n_models, n_samples, n_outputs)``, non-empty and finite."""
    p = np.asarray(probas, dtype=np.float64)
    if p.ndim != 3 or 0 in p.shape:
        raise DataError(
            f"probas: expected a non-empty array of shape (n_models, n_samples, n_outputs), "
            f"got shape {p.shape}"
        )
    if not np.all(np.isfinite(p)):
        raise DataError("probas: probabilities must be finite (NaN or inf found)")
    return p


def _check_rows(y: np.ndarray, n_samples: int) -> np.ndarray:
    """``y`` as an array with one entry (or row) per sample."""
    arr = np.asarray(y)
    if arr.ndim == 0 or arr.shape[0] != n_samples:
        raise DataError(f"y: expected {n_samples} rows (one per sample), got shape {arr.shape}")
    return arr


def _check_folds(folds: Sequence[int] | np.ndarray, n_samples: int) -> np.ndarray:
    f = np.asarray(folds)
    if f.shape != (n_samples,):
        raise DataError(f"folds: expected shape ({n_samples},) (one per row), got {f.shape}")
    if np.unique(f).size < 2:
        raise DataError(f"folds: need at least 2 distinct folds, got {np.unique(f).tolist()}")
    return f


def check_selection_options(rounds: int, init: int) -> None:
    """Check :func:`forward_selection`'s ``rounds`` and ``init``.

    Raises
    ------
    ConfigError
        ``rounds`` (``ensemble.selection_rounds``) or ``init`` (``ensemble.selection_init``)
        is not an integer >= 1.
    """
    for name, value in (("ensemble.selection_rounds", rounds), ("ensemble.selection_init", init)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(name, value, "must be an integer >= 1")


def _mix(p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``sum_m w_m p_m / sum_m w_m`` without checks (negative weights clipped to 0)."""
    w = np.clip(np.asarray(w, dtype=np.float64), 0.0, None)
    total = w.sum()
    if total <= 0:
        w, total = np.ones(p.shape[0]), float(p.shape[0])
    return np.tensordot(w / total, p, axes=1)


def weighted_mean(probas: np.ndarray, weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """The weighted mean of the models' probabilities.

    Parameters
    ----------
    probas : numpy.ndarray, shape (n_models, n_samples, n_outputs)
    weights : sequence of float, shape (n_models,)
        Non-negative, not all zero; normalised to sum to 1.

    Returns
    -------
    numpy.ndarray, shape (n_samples, n_outputs)

    Raises
    ------
    DataError
        Another number of weights than models, or negative, non-finite or all-zero weights.
    """
    p = _check_probas(probas)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (p.shape[0],):
        raise DataError(f"weights: expected shape ({p.shape[0]},) (one per model), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise DataError(f"weights: must be non-negative finite numbers, not all zero: {w}")
    return _mix(p, w)


# ---------------------------------------------------------------------------- learners
def best_single(probas: np.ndarray, y: np.ndarray, *, score: Score) -> np.ndarray:
    """All the weight on the model whose probabilities score best.

    Parameters
    ----------
    probas : numpy.ndarray, shape (n_models, n_samples, n_outputs)
    y : numpy.ndarray, shape (n_samples,) or (n_samples, n_outputs)
        Targets, passed to ``score`` as they are.
    score : callable
        ``score(y, proba) -> float`` of one model's ``(n_samples, n_outputs)``
        probabilities; higher is better.

    Returns
    -------
    numpy.ndarray, shape (n_models,)
        1 for the best model, 0 elsewhere; ties go to the first model (model order).
    """
    p = _check_probas(probas)
    y = _check_rows(y, p.shape[1])
    scores = np.array([float(score(y, pm)) for pm in p])
    weights = np.zeros(p.shape[0])
    weights[int(np.argmax(scores))] = 1.0  # first maximum: model order
    return weights


def forward_selection(
    probas: np.ndarray,
    y: np.ndarray,
    *,
    score: Score,
    rounds: int = DEFAULT_ROUNDS,
    init: int = 1,
) -> np.ndarray:
    """Greedy forward selection of models with replacement (Caruana et al. 2004).

    1. *Sorted initialisation*: the models are sorted by their own score (ties: model
       order); the ensemble starts as the equal-weight mean of the top ``j`` models, for
       the ``j <= init`` whose mean scores best (ties: the smallest ``j``).  With
       ``init=1`` (default) it starts from the best single model.
    2. *Forward steps*: at most ``rounds`` times, every model is tried as one more member
       (a model may be added again: *with replacement*, so a good model gains weight) and
       the one whose addition gives the highest score is added.  Ties go to the first
       model in model order.  Selection stops early when no addition improves the score
       (by more than a relative ``1e-12``).

    A model's weight is the number of times it was added divided by the ensemble's size,
    so every step can only raise the score on ``(probas, y)``: the result never scores
    below the best single model there.

    Parameters
    ----------
    probas : numpy.ndarray, shape (n_models, n_samples, n_outputs)
        The models' (OOF) probabilities, rows aligned.
    y : numpy.ndarray, shape (n_samples,) or (n_samples, n_outputs)
        Targets, passed to ``score`` as they are.
    score : callable
        ``score(y, combined) -> float`` of ``(n_samples, n_outputs)`` combined
        probabilities; higher is better.  Called about ``n_models * rounds`` times.
    rounds : int
        The most models added after the initialisation (``ensemble.selection_rounds``).
    init : int
        Size of the largest sorted initialisation tried (``ensemble.selection_init``);
        values above ``n_models`` mean ``n_models``.

    Returns
    -------
    numpy.ndarray, shape (n_models,)
        Non-negative weights summing to 1 (integer counts divided by their total).

    Raises
    ------
    ConfigError
        ``rounds`` or ``init`` is not an integer >= 1.
    """
    check_selection_options(rounds, init)
    p = _check_probas(probas)
    y = _check_rows(y, p.shape[1])
    n_models = p.shape[0]
    singles = np.array([float(score(y, pm)) for pm in p])
    order = np.argsort(-singles, kind="stable")  # best first, model order on ties

    counts = np.zeros(n_models)
    total = np.zeros(p.shape[1:])
    best, best_counts, best_total = -np.inf, counts, total
    for j, m in enumerate(order[: min(int(init), n_models)]):
        counts, total = counts.copy(), total + p[m]
        counts[m] += 1
        s = singles[m] if j == 0 else float(score(y, total / (j + 1)))
        if s > best:
            best, best_counts, best_total = s, counts, total
    counts, total = best_counts.copy(), best_total.copy()

    for _ in range(int(rounds)):
        size = counts.sum() + 1
        candidates = np.array([float(score(y, (total + pm) / size)) for pm in p])
        m = int(np.argmax(candidates))  # first maximum: model order
        if not candidates[m] > best + _IMPROVEMENT_RTOL * max(1.0, abs(best)):
            break
        best = candidates[m]
        counts[m] += 1
        total += p[m]
    return counts / counts.sum()


def optimize_weights(
    probas: np.ndarray, y: np.ndarray, *, loss: Loss, max_iter: int = 500
) -> np.ndarray:
    """Non-negative weights summing to 1 that minimise ``loss`` of the weighted mean.

    :func:`scipy.optimize.minimize` with ``method="SLSQP"``: bounds ``0 <= w_m <= 1`` and
    the equality constraint ``sum(w) = 1``, starting from equal weights (gradients by
    finite differences).  Weights below :data:`MIN_WEIGHT` are then set to 0 and the rest
    renormalised.  If the result has a higher loss than equal weights (the optimiser
    failed), equal weights are returned.  The log loss and the binary cross-entropy of a
    weighted mean are convex in the weights, so the optimum is global.

    Parameters
    ----------
    probas : numpy.ndarray, shape (n_models, n_samples, n_outputs)
    y : numpy.ndarray, shape (n_samples,) or (n_samples, n_outputs)
        Targets, passed to ``loss`` as they are.
    loss : callable
        ``loss(y, combined) -> float`` of ``(n_samples, n_outputs)`` combined
        probabilities; lower is better, smooth in the weights (e.g. scikit-learn's
        :func:`~sklearn.metrics.log_loss`).
    max_iter : int
        SLSQP's iteration limit.

    Returns
    -------
    numpy.ndarray, shape (n_models,)
        Deterministic for given inputs.
    """
    p = _check_probas(probas)
    y = _check_rows(y, p.shape[1])
    n_models = p.shape[0]
    start = np.full(n_models, 1.0 / n_models)
    if n_models == 1:
        return start

    def objective(w: np.ndarray) -> float:
        return float(loss(y, _mix(p, w)))

    result = minimize(
        objective,
        start,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * n_models,
        constraints=({"type": "eq", "fun": lambda w: float(np.sum(w)) - 1.0},),
        options={"maxiter": int(max_iter), "ftol": 1e-10},
    )
    w = np.clip(np.asarray(result.x, dtype=np.float64), 0.0, None)
    w[w < MIN_WEIGHT] = 0.0
    if not np.all(np.isfinite(w)) or w.sum() <= 0:
        return start
    w /= w.sum()
    return w if objective(w) <= objective(start) else start


def cross_fit_weights(
    probas: np.ndarray,
    y: np.ndarray,
    folds: Sequence[int] | np.ndarray,
    *,
    fit: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Nested (cross-fitted) OOF output of a weight learner.

    For each fold ``k`` (in sorted order), ``fit`` learns weights on the rows of every
    other fold and fold ``k``'s rows are combined with them (:func:`weighted_mean`): no
    scored row's label chose the weights it is combined with, so a score of the output
    is honest.

    Parameters
    ----------
    probas : numpy.ndarray, shape (n_models, n_samples, n_outputs)
        The models' OOF probabilities.
    y : numpy.ndarray, shape (n_samples,) or (n_samples, n_outputs)
        Targets.
    folds : numpy.ndarray of int, shape (n_samples,)
        The fold of every row (the OOF ``fold`` column); at least two distinct folds.
    fit : callable
        ``fit(probas_train, y_train) -> weights (n_models,)``, e.g.
        ``functools.partial(forward_selection, score=...)``.

    Returns
    -------
    oof : numpy.ndarray, shape (n_samples, n_outputs)
        Every row combined with the weights learnt without its fold.
    fold_weights : numpy.ndarray, shape (n_folds, n_models)
        The weights learnt for each fold, in sorted fold order.

    Raises
    ------
    DataError
        Shapes that do not match, or fewer than two folds.
    """
    p = _check_probas(probas)
    y = _check_rows(y, p.shape[1])
    f = _check_folds(folds, p.shape[1])
    out = np.empty(p.shape[1:])
    fold_weights = []
    for k in np.unique(f):
        scored = f == k
        w = np.asarray(fit(p[:, ~scored], y[~scored]), dtype=np.float64)
        out[scored] = weighted_mean(p[:, scored], w)
        fold_weights.append(w)
    return out, np.stack(fold_weights)


# ---------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class LearnerOptions:
    """What a weight learner of :data:`WEIGHT_LEARNERS` may use; the task supplies it.

    Attributes
    ----------
    score : callable
        ``score(y, combined) -> float`` (higher is better) that :func:`forward_selection`
        maximises.
    loss : callable
        ``loss(y, combined) -> float`` (lower is better) that :func:`optimize_weights`
        minimises.
    model_score : callable, optional
        The score :func:`best_single` ranks the models by (default ``score``): the task's
        OOF score of a single model, so ``single`` picks the report's best model.
    rounds, init : int
        :func:`forward_selection`'s options.
    """

    score: Score
    loss: Loss
    model_score: Score | None = None
    rounds: int = DEFAULT_ROUNDS
    init: int = 1


def _fit_single(p: np.ndarray, y: np.ndarray, options: LearnerOptions) -> np.ndarray:
    return best_single(p, y, score=options.model_score or options.score)


def _fit_select(p: np.ndarray, y: np.ndarray, options: LearnerOptions) -> np.ndarray:
    return forward_selection(p, y, score=options.score, rounds=options.rounds, init=options.init)


def _fit_weighted(p: np.ndarray, y: np.ndarray, options: LearnerOptions) -> np.ndarray:
    return optimize_weights(p, y, loss=options.loss)


def _model_name(weights: np.ndarray, names: Sequence[str]) -> str:
    return str(names[int(np.argmax(weights))])


def _member_weights(weights: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    return {str(n): float(w) for n, w in zip(names, weights, strict=True) if w > 0}


@dataclass(frozen=True)
class WeightLearner:
    """One entry of :data:`WEIGHT_LEARNERS`.

    Attributes
    ----------
    fit : callable
        ``fit(probas, y, options) -> weights (n_models,)`` with a :class:`LearnerOptions`.
    nested : bool
        Whether the OOF output is cross-fitted (:func:`cross_fit_weights`); ``False`` only
        for ``single``, whose OOF output is the chosen model's own.
    describe : callable
        ``describe(weights, model_names)``: what the report shows (a model name, or
        ``{model: weight}`` of the members with a positive weight).
    """

    fit: Callable[[np.ndarray, np.ndarray, LearnerOptions], np.ndarray]
    nested: bool
    describe: Callable[[np.ndarray, Sequence[str]], Any]


#: Method name -> :class:`WeightLearner`: the learnt ensembles of every task.
WEIGHT_LEARNERS: dict[str, WeightLearner] = {
    "single": WeightLearner(_fit_single, nested=False, describe=_model_name),
    "select": WeightLearner(_fit_select, nested=True, describe=_member_weights),
    "weighted": WeightLearner(_fit_weighted, nested=True, describe=_member_weights),
}


class LearnedMean:
    """Base class of the ensembles that weight the models by :data:`WEIGHT_LEARNERS`.

    A subclass (one per task, a dataclass) has the fields ``learner`` (a name in
    :data:`WEIGHT_LEARNERS`) and ``weights_`` (``None`` until fitted), and implements
    :meth:`_check_probas`, :meth:`_check_target`, :meth:`_options` and :meth:`_folds`.
    """

    learner: str
    weights_: np.ndarray | None

    # ------------------------------------------------------------------ task hooks
    def _check_probas(self, probas: np.ndarray) -> np.ndarray:
        """``probas`` validated for the task."""
        raise NotImplementedError

    def _check_target(self, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        """``y`` validated against the probabilities ``p``."""
        raise NotImplementedError

    def _options(self, folds: np.ndarray | None) -> LearnerOptions:
        """The task's score, loss and options (``folds``: the OOF folds of the rows)."""
        raise NotImplementedError

    def _folds(self, y: np.ndarray, folds: np.ndarray | None, n_samples: int) -> np.ndarray:
        """The folds the OOF output is cross-fitted over."""
        raise NotImplementedError

    # ------------------------------------------------------------------ protocol
    def _spec(self) -> WeightLearner:
        if self.learner not in WEIGHT_LEARNERS:
            raise ConfigError(
                "ensemble.method",
                self.learner,
                f"not a learnt method; known: {list(WEIGHT_LEARNERS)}",
            )
        return WEIGHT_LEARNERS[self.learner]

    def fit(self, probas: np.ndarray, y: np.ndarray, folds: np.ndarray | None = None) -> Any:
        """Learn the weights on all rows of ``probas`` (the OOF rows); return ``self``.

        Parameters
        ----------
        probas : numpy.ndarray, shape (n_models, n_samples, n_outputs)
        y : numpy.ndarray
            Targets of the rows.
        folds : numpy.ndarray of int, shape (n_samples,), optional
            OOF folds; only a task's ``single`` score may use them.
        """
        p = self._check_probas(probas)
        y = self._check_target(y, p)
        self.weights_ = self._spec().fit(p, y, self._options(folds))
        return self

    def predict_proba(self, probas: np.ndarray) -> np.ndarray:
        """The weighted mean ``(n_samples, n_outputs)`` with the fitted weights.

        Raises
        ------
        TrainingError
            :meth:`fit` has not been called.
        DataError
            Another number of models than in :meth:`fit`.
        """
        if self.weights_ is None:
            raise TrainingError(
                f"{type(self).__name__}({self.learner!r}): call fit(oof_probas, y) first"
            )
        p = self._check_probas(probas)
        if p.shape[0] != self.weights_.shape[0]:
            raise DataError(f"probas: fitted on {self.weights_.shape[0]} models, got {p.shape[0]}")
        return _mix(p, self.weights_)

    def oof_predict_proba(
        self, probas: np.ndarray, y: np.ndarray, folds: np.ndarray | None = None
    ) -> np.ndarray:
        """OOF output that never used the scored rows' labels (``single``: its model's).

        Nested learners are cross-fitted over the folds (:func:`cross_fit_weights`); the
        fitted state (``weights_``) is left alone.

        Parameters
        ----------
        probas : numpy.ndarray, shape (n_models, n_samples, n_outputs)
            The models' OOF probabilities.
        y : numpy.ndarray
            Targets of the rows.
        folds : numpy.ndarray of int, shape (n_samples,), optional
            The OOF fold of every row (the task decides what ``None`` means).

        Returns
        -------
        numpy.ndarray, shape (n_samples, n_outputs)
        """
        p = self._check_probas(probas)
        y = self._check_target(y, p)
        spec = self._spec()
        if not spec.nested:
            return _mix(p, spec.fit(p, y, self._options(folds)))
        options = self._options(None)
        f = self._folds(y, folds, p.shape[1])
        return cross_fit_weights(p, y, f, fit=lambda pp, yy: spec.fit(pp, yy, options))[0]

    def describe(self, model_names: Sequence[str]) -> Any:
        """What the fitted weights choose: a model name (``single``) or ``{model: weight}``.

        Raises
        ------
        TrainingError
            :meth:`fit` has not been called.
        DataError
            Another number of names than models.
        """
        if self.weights_ is None:
            raise TrainingError(f"{type(self).__name__}: call fit(oof_probas, y) first")
        if len(model_names) != self.weights_.shape[0]:
            raise DataError(
                f"model_names: {len(model_names)} names for {self.weights_.shape[0]} models"
            )
        return self._spec().describe(self.weights_, list(model_names))
