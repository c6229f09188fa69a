"""Single-label ensembles: combining several models' class probabilities, chosen on OOF.

(Multi-label ensembles are in :mod:`emo_utils.ensemble.multilabel`; both are importable
from ``emo_utils.ensemble``.)

Every combiner works on probabilities of shape ``(n_models, n_samples, n_classes)`` (one
softmax output per model, e.g. the fold-averaged test probabilities of each architecture,
or their out-of-fold probabilities), in the manner of scikit-learn's
:class:`~sklearn.ensemble.VotingClassifier` and :class:`~sklearn.ensemble.StackingClassifier`:

=============  ===========================================================================
``single``     the best single model on OOF (by the competition metric); its OOF score is
               that model's, and ``best`` falls back to it
``mode``       majority vote of the per-model labels (the reference solution's method);
               optional model weights; ties broken as described in :func:`mode_vote`
``mean``       weighted arithmetic mean of the probabilities ("soft" voting)
``geometric``  weighted geometric mean of the probabilities, renormalised
``rank``       weighted mean of each model's within-row class ranks (a Borda count),
               renormalised: :func:`rank_mean_proba`
``power``      weighted mean of ``p ** power``, renormalised: :func:`power_mean_proba`
``select``     greedy forward selection with replacement (Caruana et al. 2004) of the
               models maximising the competition metric of their mean
``weighted``   weights on the simplex minimising the log loss of the weighted mean
``stacking``   a small scikit-learn model fitted on the models' OOF probabilities
=============  ===========================================================================

``single``, ``select``, ``weighted`` and ``stacking`` learn from the OOF labels; the OOF
scores of ``select``, ``weighted`` and ``stacking`` are cross-fitted over the training
folds (never in-sample; :mod:`emo_utils.ensemble.selection`), and the test predictions use
what they learn on all OOF rows.

:data:`ENSEMBLES` maps each name to a factory ``(weights=None, **options) -> ensemble``;
an ensemble has ``fit(probas, y, folds=None)``, ``predict(probas)``,
``predict_proba(probas)`` and ``oof_predict(probas, y, folds)`` (labels for OOF scoring
that never used the scored rows' labels); the learnt ones also ``oof_predict_proba``.

:func:`score_ensembles` scores every single model and every method on OOF predictions with
the competition metric and returns an :class:`EnsembleReport`;
:func:`emo_utils.ensemble.evaluate_ensembles` does the same from a run folder.  ``best``
resolves to the method with the best OOF score, ties to the earliest method, ``single``
first: it never scores below the best single model.

Examples
--------
>>> import numpy as np
>>> from emo_utils.ensemble import mode_vote
>>> probas = np.array([[[0.9, 0.1]], [[0.4, 0.6]], [[0.2, 0.8]]])  # 3 models, 1 sample
>>> mode_vote(probas).tolist()
[1]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy.special import logsumexp, softmax
from scipy.stats import rankdata
from sklearn.base import ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.metrics import log_loss
from sklearn.model_selection import PredefinedSplit, StratifiedKFold, cross_val_predict

from ..errors import ConfigError, DataError, TrainingError
from ..metrics import METRICS, get_metric
from ..tables import markdown_table
from .selection import (
    DEFAULT_ROUNDS,
    WEIGHT_LEARNERS,
    LearnedMean,
    LearnerOptions,
    check_selection_options,
)

__all__ = [
    "DEFAULT_POWER",
    "ENSEMBLES",
    "SINGLE",
    "STACKING_MODELS",
    "EnsembleReport",
    "LearnedEnsemble",
    "StackingEnsemble",
    "VotingEnsemble",
    "at_max",
    "check_power",
    "check_probas",
    "check_weights",
    "geometric_mean_proba",
    "make_ensemble",
    "mean_proba",
    "mode_vote",
    "power_mean_proba",
    "rank_mean_proba",
    "resolve_method",
    "score_ensembles",
    "vote_shares",
    "with_single",
]

#: Smallest probability used inside the geometric and power means (zeros are clipped to it).
GEOMETRIC_EPS = 1e-12

#: Default exponent of the ``power`` ensembles (``ensemble.power``).
DEFAULT_POWER = 2.0

#: The method that is the best single model: always scored first, so ``best`` falls back
#: to it on ties and never scores below the best single model.
SINGLE = "single"


# ---------------------------------------------------------------------------- validation
def check_probas(probas: np.ndarray) -> np.ndarray:
    """``probas`` as float64 of shape ``(n_models, n_samples, n_classes)``, finite, >= 0."""
    arr = np.asarray(probas, dtype=np.float64)
    if arr.ndim != 3 or 0 in arr.shape:
        raise DataError(
            f"probas: expected a non-empty array of shape (n_models, n_samples, n_classes), "
            f"got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise DataError("probas: probabilities must be finite and >= 0 (NaN, inf or < 0 found)")
    return arr


def check_power(power: float) -> float:
    """``power`` as a float; :class:`ConfigError` (``ensemble.power``) unless finite and > 0."""
    if isinstance(power, bool) or not isinstance(power, (int, float, np.floating, np.integer)):
        raise ConfigError("ensemble.power", power, "must be a finite number > 0")
    if not np.isfinite(power) or power <= 0:
        raise ConfigError("ensemble.power", power, "must be a finite number > 0")
    return float(power)


def check_weights(weights: Sequence[float] | np.ndarray | None, n_models: int) -> np.ndarray:
    """Model weights as a float64 array of length ``n_models`` (all ones when ``None``)."""
    if weights is None or len(weights) == 0:
        return np.ones(n_models)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_models,):
        raise ConfigError(
            "ensemble.weights", list(weights), f"needs one weight per model ({n_models})"
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError(
            "ensemble.weights", list(weights), "must be non-negative finite numbers, not all zero"
        )
    return w


# ---------------------------------------------------------------------------- combiners
def vote_shares(
    probas: np.ndarray, *, weights: Sequence[float] | np.ndarray | None = None
) -> np.ndarray:
    """Weighted share of the votes each class gets; rows sum to 1.

    Parameters
    ----------
    probas : numpy.ndarray, shape (n_models, n_samples, n_classes)
        Per-model class probabilities; each model votes for its argmax.
    weights : sequence of float, optional
        One non-negative weight per model (default: equal weights).

    Returns
    -------
    numpy.ndarray, shape (n_samples, n_classes)
    """
    p = check_probas(probas)
    w = check_weights(weights, p.shape[0])
    votes = np.eye(p.shape[2])[p.argmax(axis=2)]  # (n_models, n_samples, n_classes) one-hot
    return np.einsum("m,mnc->nc", w, votes) / w.sum()


def at_max(scores: np.ndarray) -> np.ndarray:
    """Mask of the entries equal to their row's maximum, up to float rounding.

    The tie rule of every vote: relative tolerance ``1e-9`` (absolute ``1e-12``), so float
    rounding in weights cannot decide a tie; ``-inf`` entries are never at the maximum of a
    row holding a finite value.

    Parameters
    ----------
    scores : numpy.ndarray, shape (n_samples, n_classes)

    Returns
    -------
    numpy.ndarray of bool, shape (n_samples, n_classes)

    Examples
    --------
    >>> at_max(np.array([[1.0, 1.0 + 1e-12, 0.5]])).tolist()
    [[True, True, False]]
    """
    return np.isclose(scores, scores.max(axis=1, keepdims=True), rtol=1e-9, atol=1e-12)


def mode_vote(
    probas: np.ndarray, *, weights: Sequence[float] | np.ndarray | None = None
) -> np.ndarray:
    """Majority (mode) vote of the per-model labels, with a deterministic tie-break.

    Each model votes for its most probable class; a class's count is the summed weight of
    the models that voted for it.  The class with the largest count wins.  Ties are broken
    in two levels:

    1. among the tied classes, the one with the largest weighted sum of probabilities over
       all models (the soft-voting score) wins;
    2. if that is tied too, the lowest class index (the alphabetically first class name)
       wins.

    Counts and probability sums are compared with a relative tolerance of ``1e-9`` so that
    float rounding in the weights cannot decide a tie.

    Parameters
    ----------
    probas : numpy.ndarray, shape (n_models, n_samples, n_classes)
        Per-model class probabilities.
    weights : sequence of float, optional
        One non-negative weight per model (default: one vote each).

    Returns
    -------
    numpy.ndarray of int64, shape (n_samples,)
        Winning class index of every sample.

    Examples
    --------
    Two models vote for class 0 and two for class 1; the summed probabilities decide:

    >>> import numpy as np
    >>> p = np.array([[[0.6, 0.4]], [[0.9, 0.1]], [[0.3, 0.7]], [[0.2, 0.8]]])
    >>> mode_vote(p).tolist()  # sums: class 0 = 2.0, class 1 = 2.0 -> lowest index
    [0]
    """
    p = check_probas(probas)
    w = check_weights(weights, p.shape[0])
    counts = vote_shares(p, weights=w)
    soft = np.einsum("m,mnc->nc", w, p)
    tied = at_max(counts)
    still_tied = tied & at_max(np.where(tied, soft, -np.inf))
    return still_tied.argmax(axis=1).astype(np.int64)  # first True = lowest class index


def mean_proba(
    probas: np.ndarray, *, weights: Sequence[float] | np.ndarray | None = None
) -> np.ndarray:
    """Weighted arithmetic mean of the models' probabilities ("soft" voting).

    Parameters
    ----------
    probas : numpy.ndarray, shape (n_models, n_samples, n_classes)
    weights : sequence of float, optional

    Returns
    -------
    numpy.ndarray, shape (n_samples, n_classes)
        Rows sum to 1 when every model's rows do.
    """
    p = check_probas(probas)
    return np.average(p, axis=0, weights=check_weights(weights, p.shape[0]))


def geometric_mean_proba(
    probas: np.ndarray,
    *,
    weights: Sequence[float] | np.ndarray | None = None,
    eps: float = GEOMETRIC_EPS,
) -> np.ndarray:
    """Weighted geometric mean of the models' probabilities, renormalised to sum to 1.

    Probabilities are clipped to ``eps`` before the logarithm, so a zero from one model
    pulls its class down strongly but never produces ``-inf`` or NaN.

    Parameters
    ----------
    probas : numpy.ndarray, shape (n_models, n_samples, n_classes)
    weights : sequence of float, optional
    eps : float
        Floor applied to the probabilities (default ``1e-12``).

    Returns
    -------
    numpy.ndarray, shape (n_samples, n_classes)
        Finite, non-negative, rows sum to 1.
    """
    p = check_probas(probas)
    w = check_weights(weights, p.shape[0])
    log_mean = np.average(np.log(np.clip(p, eps, None)), axis=0, weights=w)
    return softmax(log_mean, axis=1)  # exp and renormalise, computed stably


def power_mean_proba(
    probas: np.ndarray,
    *,
    weights: Sequence[float] | np.ndarray | None = None,
    power: float = DEFAULT_POWER,
    eps: float = GEOMETRIC_EPS,
) -> np.ndarray:
    """Weighted mean of the probabilities raised to ``power``, renormalised per row.

    ``power > 1`` lets confident models count for more than under the plain mean
    (``power = 1``); ``power < 1`` flattens them (towards the geometric mean as ``power``
    goes to 0).  Computed in log space (probabilities clipped to ``eps``), so a large
    ``power`` does not underflow.

    Parameters
    ----------
    probas : numpy.ndarray, shape (n_models, n_samples, n_classes)
    weights : sequence of float, optional
    power : float
        The exponent, finite and > 0 (default 2).
    eps : float
        Floor applied to the probabilities (default ``1e-12``).

    Returns
    -------
    numpy.ndarray, shape (n_samples, n_classes)
        Finite, non-negative, rows sum to 1.

    Examples
    --------
    >>> p = np.array([[[0.9, 0.1]], [[0.3, 0.7]]])
    >>> power_mean_proba(p, power=1.0).round(3).tolist()  # the mean
    [[0.6, 0.4]]
    >>> power_mean_proba(p, power=2.0).round(3).tolist()  # (0.81 + 0.09) vs (0.01 + 0.49)
    [[0.643, 0.357]]
    """
    p = check_probas(probas)
    w = check_weights(weights, p.shape[0])
    k = check_power(power)
    log_sum = logsumexp(k * np.log(np.clip(p, eps, None)), axis=0, b=w[:, None, None])
    return softmax(log_sum, axis=1)


def rank_mean_proba(
    probas: np.ndarray, *, weights: Sequence[float] | np.ndarray | None = None
) -> np.ndarray:
    """Weighted mean of each model's class ranks within every row (a Borda count).

    Each model's classes are ranked within each row with :func:`scipy.stats.rankdata`
    (the least probable 1, ties get their average rank) and mapped to
    ``(rank - 1) / (n_classes - 1)``; the weighted mean over models is renormalised so
    rows sum to 1.  Only the order of each model's probabilities counts, not their
    calibration.  The ranks are taken within a row, not over the rows (as multi-label
    ``rank`` does): a row's result does not depend on the other rows (the test set's
    make-up), and a rare class is not favoured, as it would be if each class column were
    ranked over the rows and the argmax taken.

    Parameters
    ----------
    probas : numpy.ndarray, shape (n_models, n_samples, n_classes)
    weights : sequence of float, optional

    Returns
    -------
    numpy.ndarray, shape (n_samples, n_classes)
        Non-negative, rows sum to 1.

    Examples
    --------
    >>> p = np.array([[[0.5, 0.3, 0.2]], [[0.1, 0.5, 0.4]], [[0.2, 0.5, 0.3]]])
    >>> rank_mean_proba(p).round(3).tolist()  # mean ranks 1/3, 5/6, 1/3 of 1.5
    [[0.222, 0.556, 0.222]]
    """
    p = check_probas(probas)
    w = check_weights(weights, p.shape[0])
    n_classes = p.shape[2]
    ranks = rankdata(p, axis=2)
    scaled = (ranks - 1) / (n_classes - 1) if n_classes > 1 else np.ones_like(ranks)
    mean = np.average(scaled, axis=0, weights=w)
    return mean / mean.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------- estimators
class Ensemble(Protocol):
    """What every entry of :data:`ENSEMBLES` builds."""

    def fit(
        self, probas: np.ndarray, y: np.ndarray, folds: np.ndarray | None = None
    ) -> Ensemble: ...
    def predict(self, probas: np.ndarray) -> np.ndarray: ...
    def predict_proba(self, probas: np.ndarray) -> np.ndarray: ...
    def oof_predict(self, probas: np.ndarray, y: np.ndarray, folds: np.ndarray) -> np.ndarray: ...


#: ``voting`` name -> function ``(probas, *, weights) -> (n_samples, n_classes)``.
_VOTING_PROBA: dict[str, Callable[..., np.ndarray]] = {
    "hard": vote_shares,
    "soft": mean_proba,
    "geometric": geometric_mean_proba,
    "rank": rank_mean_proba,
    "power": power_mean_proba,
}


@dataclass
class VotingEnsemble:
    """Voting over fixed models, like scikit-learn's ``VotingClassifier`` on precomputed outputs.

    Parameters
    ----------
    voting : {"hard", "soft", "geometric", "rank", "power"}
        ``"hard"``: :func:`mode_vote` (``predict_proba`` returns the weighted vote shares);
        ``"soft"``: :func:`mean_proba`; ``"geometric"``: :func:`geometric_mean_proba`;
        ``"rank"``: :func:`rank_mean_proba`; ``"power"``: :func:`power_mean_proba`.
    weights : sequence of float, optional
        One weight per model.
    power : float
        The exponent of ``"power"`` (``ensemble.power``, default 2); unused otherwise.

    Notes
    -----
    Nothing is learnt, so :meth:`fit` only checks its input and :meth:`oof_predict` is
    :meth:`predict`: OOF scores of voting methods are honest by construction.
    """

    voting: str = "hard"
    weights: Sequence[float] | None = None
    power: float = DEFAULT_POWER

    def __post_init__(self) -> None:
        if self.voting not in _VOTING_PROBA:
            raise ConfigError("voting", self.voting, f"must be one of {sorted(_VOTING_PROBA)}")
        check_power(self.power)

    def fit(
        self, probas: np.ndarray, y: np.ndarray | None = None, folds: np.ndarray | None = None
    ) -> VotingEnsemble:
        """Check ``probas`` and one weight per model; learn nothing and return ``self``."""
        check_weights(self.weights, check_probas(probas).shape[0])
        return self

    def predict_proba(self, probas: np.ndarray) -> np.ndarray:
        """Combined ``(n_samples, n_classes)`` probabilities (vote shares for ``"hard"``)."""
        options = {"power": self.power} if self.voting == "power" else {}
        return _VOTING_PROBA[self.voting](probas, weights=self.weights, **options)

    def predict(self, probas: np.ndarray) -> np.ndarray:
        """Class index per sample: :func:`mode_vote` for ``"hard"``, else the argmax."""
        if self.voting == "hard":
            return mode_vote(probas, weights=self.weights)
        return self.predict_proba(probas).argmax(axis=1)

    def oof_predict(
        self, probas: np.ndarray, y: np.ndarray | None = None, folds: np.ndarray | None = None
    ) -> np.ndarray:
        """:meth:`predict` (nothing is learnt, so ``y`` and ``folds`` are not needed)."""
        return self.predict(probas)


#: Stacking model name (``ensemble.stacking_model``) -> factory ``(seed) -> classifier``.
STACKING_MODELS: dict[str, Callable[[int], ClassifierMixin]] = {
    "logistic": lambda seed: LogisticRegression(max_iter=2000, random_state=seed),
    "ridge": lambda seed: RidgeClassifier(alpha=1.0),
}


def _stack_features(probas: np.ndarray) -> np.ndarray:
    """``(n_models, n_samples, n_classes)`` -> ``(n_samples, n_models * n_classes)``."""
    p = check_probas(probas)
    return p.transpose(1, 0, 2).reshape(p.shape[1], -1)


def _to_proba(scores: np.ndarray, method: str) -> np.ndarray:
    """Probabilities from a ``predict_proba`` output, or softmax of a ``decision_function``."""
    if method == "predict_proba":
        return scores
    if scores.ndim == 1:  # binary decision_function: the score of the second class
        scores = np.column_stack([np.zeros_like(scores), scores])
    return softmax(scores, axis=1)


def _proba_method(estimator: ClassifierMixin) -> str:
    return "predict_proba" if hasattr(estimator, "predict_proba") else "decision_function"


def _fold_ids(y: np.ndarray, folds: np.ndarray | None, *, n_splits: int, seed: int) -> np.ndarray:
    """The OOF folds, or (``None`` or a single fold) a shuffled stratified split of ``y``.

    The fallback has ``min(n_splits, smallest class count)`` folds, at least 2.
    """
    if folds is not None and len(np.unique(folds)) >= 2:
        return np.asarray(folds)
    counts = np.bincount(y)
    n = max(2, int(min(n_splits, counts[counts > 0].min())))
    ids = np.empty(len(y), dtype=np.int64)
    split = StratifiedKFold(n, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    for k, (_, test) in enumerate(split):
        ids[test] = k
    return ids


@dataclass
class StackingEnsemble:
    """A scikit-learn model fitted on the models' OOF probabilities.

    The features of a sample are the concatenated class probabilities of every model.
    :meth:`oof_predict` scores it honestly: :func:`sklearn.model_selection.cross_val_predict`
    over the training folds (``PredefinedSplit`` on the OOF fold column), so the prediction
    for a sample in fold ``k`` comes from a stacker that never saw fold ``k``'s labels.

    Parameters
    ----------
    model : {"logistic", "ridge"}
        Name in :data:`STACKING_MODELS`.
    weights : sequence of float, optional
        Accepted for a uniform factory signature; ignored (the stacker learns weights).
    seed : int
        Random state of the model and of the fallback split when no folds are given.
    n_splits : int
        Folds of the fallback stratified split used when ``folds`` is ``None``.
    """

    model: str = "logistic"
    weights: Sequence[float] | None = None
    seed: int = 0
    n_splits: int = 5
    estimator_: ClassifierMixin | None = field(default=None, init=False, repr=False)
    n_classes_: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.model not in STACKING_MODELS:
            raise ConfigError(
                "ensemble.stacking_model", self.model, f"must be one of {sorted(STACKING_MODELS)}"
            )

    def _estimator(self) -> ClassifierMixin:
        return STACKING_MODELS[self.model](self.seed)

    @staticmethod
    def _full(proba: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
        """Spread the columns of the classes seen in training over ``n_classes`` columns."""
        out = np.zeros((proba.shape[0], n_classes))
        out[:, present] = proba
        return out

    def fit(
        self, probas: np.ndarray, y: np.ndarray, folds: np.ndarray | None = None
    ) -> StackingEnsemble:
        """Fit the stacker on all of ``probas`` (OOF) and class indices ``y``; return ``self``.

        ``folds`` is accepted for the uniform protocol and not needed.
        """
        x = _stack_features(probas)
        self.n_classes_ = np.shape(probas)[2]
        self.estimator_ = clone(self._estimator()).fit(x, np.asarray(y))
        return self

    def predict_proba(self, probas: np.ndarray) -> np.ndarray:
        """The fitted stacker's ``(n_samples, n_classes)`` probabilities.

        A classifier without ``predict_proba`` gets the softmax of its decision function;
        classes absent from the training labels get probability 0.

        Raises
        ------
        TrainingError
            If :meth:`fit` has not been called.
        """
        if self.estimator_ is None:
            raise TrainingError("StackingEnsemble: call fit(oof_probas, y) before predicting")
        x = _stack_features(probas)
        method = _proba_method(self.estimator_)
        proba = _to_proba(getattr(self.estimator_, method)(x), method)
        return self._full(proba, self.estimator_.classes_, self.n_classes_)

    def predict(self, probas: np.ndarray) -> np.ndarray:
        """Class index per sample: the argmax of :meth:`predict_proba`."""
        return self.predict_proba(probas).argmax(axis=1)

    def oof_predict_proba(
        self, probas: np.ndarray, y: np.ndarray, folds: np.ndarray | None = None
    ) -> np.ndarray:
        """Cross-validated stacker probabilities of the training samples.

        Parameters
        ----------
        probas : numpy.ndarray, shape (n_models, n_samples, n_classes)
            OOF probabilities of the base models.
        y : numpy.ndarray of int, shape (n_samples,)
            True class indices.
        folds : numpy.ndarray of int, shape (n_samples,), optional
            The training fold of each sample (the OOF ``fold`` column); the stacker is
            cross-validated over the same folds.  ``None`` uses a stratified split.

        Returns
        -------
        numpy.ndarray, shape (n_samples, n_classes)
        """
        x = _stack_features(probas)
        y = np.asarray(y)
        cv = PredefinedSplit(_fold_ids(y, folds, n_splits=self.n_splits, seed=self.seed))
        est = self._estimator()
        method = _proba_method(est)
        proba = _to_proba(cross_val_predict(est, x, y, cv=cv, method=method), method)
        # cross_val_predict orders the columns by the sorted classes present in y.
        return self._full(proba, np.unique(y), np.shape(probas)[2])

    def oof_predict(
        self, probas: np.ndarray, y: np.ndarray, folds: np.ndarray | None = None
    ) -> np.ndarray:
        """Class index per training sample: the argmax of :meth:`oof_predict_proba`."""
        return self.oof_predict_proba(probas, y, folds).argmax(axis=1)


def _metric_score(metric: str, y: np.ndarray, proba: np.ndarray) -> float:
    """Metric ``metric`` of the argmax of ``proba`` against the class indices ``y``."""
    return float(get_metric(metric)(y, proba.argmax(axis=1)))


def _log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """scikit-learn's log loss of the class indices ``y`` under ``proba`` (rows renormalised)."""
    total = proba.sum(axis=1, keepdims=True)
    proba = np.divide(proba, total, out=np.full_like(proba, 1.0 / proba.shape[1]), where=total > 0)
    return float(log_loss(y, proba, labels=np.arange(proba.shape[1])))


@dataclass
class LearnedEnsemble(LearnedMean):
    """A weighted mean of the models whose weights are learnt from the OOF labels.

    The ``single``, ``select`` and ``weighted`` methods of :data:`ENSEMBLES`, built on
    :data:`emo_utils.ensemble.selection.WEIGHT_LEARNERS`:

    * ``"single"``: all the weight on the model with the best ``metric`` (ties: the first
      model); its OOF output is that model's OOF probabilities;
    * ``"select"``: :func:`~emo_utils.ensemble.selection.forward_selection` maximising
      ``metric`` of the argmax of the mean;
    * ``"weighted"``: :func:`~emo_utils.ensemble.selection.optimize_weights` minimising
      scikit-learn's :func:`~sklearn.metrics.log_loss` of the weighted mean.

    :meth:`fit` learns the weights on all OOF rows (they predict the test set);
    :meth:`oof_predict_proba` of ``select`` and ``weighted`` is cross-fitted over the
    folds (nested), so their OOF score never used the scored rows' labels.

    Parameters
    ----------
    learner : {"single", "select", "weighted"}
        Name in :data:`~emo_utils.ensemble.selection.WEIGHT_LEARNERS`.
    weights : sequence of float, optional
        Accepted for a uniform factory signature; ignored (the weights are learnt).
    metric : str
        Competition metric (a key of :data:`emo_utils.metrics.METRICS`) that ``single``
        and ``select`` maximise.
    rounds, init : int
        ``select``'s ``ensemble.selection_rounds`` and ``ensemble.selection_init``.
    seed, n_splits : int
        The stratified split cross-fitted over when no folds are given.

    Attributes
    ----------
    weights_ : numpy.ndarray, shape (n_models,) or None
        The weights learnt by :meth:`fit` (sum to 1).
    """

    learner: str = "select"
    weights: Sequence[float] | None = None
    metric: str = "accuracy"
    rounds: int = DEFAULT_ROUNDS
    init: int = 1
    seed: int = 0
    n_splits: int = 5
    weights_: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._spec()
        get_metric(self.metric)
        check_selection_options(self.rounds, self.init)

    def _check_probas(self, probas: np.ndarray) -> np.ndarray:
        return check_probas(probas)

    def _check_target(self, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        arr = np.asarray(y)
        if arr.shape != (p.shape[1],) or not np.issubdtype(arr.dtype, np.integer):
            raise DataError(
                f"y: expected {p.shape[1]} class indices, got shape {arr.shape} ({arr.dtype})"
            )
        if arr.min() < 0 or arr.max() >= p.shape[2]:
            raise DataError(f"y: class indices must be in [0, {p.shape[2]}), got {arr.max()}")
        return arr.astype(np.int64)

    def _options(self, folds: np.ndarray | None) -> LearnerOptions:
        return LearnerOptions(
            score=partial(_metric_score, self.metric),
            loss=_log_loss,
            rounds=self.rounds,
            init=self.init,
        )

    def _folds(self, y: np.ndarray, folds: np.ndarray | None, n_samples: int) -> np.ndarray:
        return _fold_ids(y, folds, n_splits=self.n_splits, seed=self.seed)

    def predict(self, probas: np.ndarray) -> np.ndarray:
        """Class index per sample: the argmax of :meth:`predict_proba`."""
        return self.predict_proba(probas).argmax(axis=1)

    def oof_predict(
        self, probas: np.ndarray, y: np.ndarray, folds: np.ndarray | None = None
    ) -> np.ndarray:
        """Class index per training sample: the argmax of :meth:`oof_predict_proba`."""
        return self.oof_predict_proba(probas, y, folds).argmax(axis=1)


#: Method name -> factory ``(weights=None, **options) -> ensemble``.  ``single`` comes
#: first: :func:`score_ensembles` breaks ties in favour of the earliest method.
ENSEMBLES: dict[str, Callable[..., Ensemble]] = {
    SINGLE: partial(LearnedEnsemble, SINGLE),
    "mode": partial(VotingEnsemble, "hard"),
    "mean": partial(VotingEnsemble, "soft"),
    "geometric": partial(VotingEnsemble, "geometric"),
    "rank": partial(VotingEnsemble, "rank"),
    "power": partial(VotingEnsemble, "power"),
    "select": partial(LearnedEnsemble, "select"),
    "weighted": partial(LearnedEnsemble, "weighted"),
    "stacking": StackingEnsemble,
}


def make_ensemble(
    method: str,
    *,
    weights: Sequence[float] | None = None,
    stacking_model: str = "logistic",
    seed: int = 0,
    metric: str = "accuracy",
    selection_rounds: int = DEFAULT_ROUNDS,
    selection_init: int = 1,
    power: float = DEFAULT_POWER,
) -> Ensemble:
    """Build the ensemble registered as ``method`` in :data:`ENSEMBLES`.

    Parameters
    ----------
    method : str
        A registered name (``"best"`` must be resolved first with :func:`resolve_method`).
    weights : sequence of float, optional
        One weight per model (the voting methods; the learnt ones ignore it).
    stacking_model : str
        ``stacking``'s model, a name in :data:`STACKING_MODELS`.
    seed : int
        ``stacking``'s random state, and the fallback split of the learnt methods.
    metric : str
        The competition metric ``single`` and ``select`` maximise.
    selection_rounds, selection_init : int
        ``select``'s options (:func:`~emo_utils.ensemble.selection.forward_selection`).
    power : float
        ``power``'s exponent.

    Raises
    ------
    ConfigError
        Unknown method, or an invalid option.
    """
    if method not in ENSEMBLES:
        raise ConfigError(
            "ensemble.method", method, f"unknown method; known: {[*ENSEMBLES, 'best']}"
        )
    weights = list(weights) if weights else None
    learnt = {"metric": metric, "rounds": selection_rounds, "init": selection_init, "seed": seed}
    options: dict[str, Any] = {
        "stacking": {"model": stacking_model, "seed": seed},
        "power": {"power": power},
        **dict.fromkeys(WEIGHT_LEARNERS, learnt),
    }.get(method, {})
    return ENSEMBLES[method](weights=weights, **options)


# ---------------------------------------------------------------------------- OOF scoring
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
