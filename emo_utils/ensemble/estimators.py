"""Single-label ensembles as estimators: ``fit``, ``predict``, ``predict_proba``, ``oof_predict``.

The estimator behind each method of :data:`ENSEMBLES` (see :mod:`emo_utils.ensemble.single`
for the table of methods): :class:`VotingEnsemble` over the combiners of
:mod:`emo_utils.ensemble.combiners`, :class:`StackingEnsemble` (a scikit-learn model on the
models' OOF probabilities) and :class:`LearnedEnsemble` (weights learnt with
:mod:`emo_utils.ensemble.selection`); :func:`make_ensemble` builds one from the config's
options.  Everything here is importable from ``emo_utils.ensemble`` and
``emo_utils.ensemble.single``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np
from scipy.special import softmax
from sklearn.base import ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.metrics import log_loss
from sklearn.model_selection import PredefinedSplit, StratifiedKFold, cross_val_predict

from ..errors import ConfigError, DataError, TrainingError
from ..metrics import get_metric
from .combiners import (
    DEFAULT_POWER,
    check_power,
    check_probas,
    check_weights,
    geometric_mean_proba,
    mean_proba,
    mode_vote,
    power_mean_proba,
    rank_mean_proba,
    vote_shares,
)
from .selection import (
    DEFAULT_ROUNDS,
    WEIGHT_LEARNERS,
    LearnedMean,
    LearnerOptions,
    check_selection_options,
)

__all__ = [
    "ENSEMBLES",
    "SINGLE",
    "STACKING_MODELS",
    "LearnedEnsemble",
    "StackingEnsemble",
    "VotingEnsemble",
    "make_ensemble",
]

#: The method that is the best single model: always scored first, so ``best`` falls back
#: to it on ties and never scores below the best single model.
SINGLE = "single"


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
#: first: :func:`~emo_utils.ensemble.scoring.score_ensembles` breaks ties in favour of the
#: earliest method.
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
        A registered name (``"best"`` must be resolved first with
        :func:`~emo_utils.ensemble.scoring.resolve_method`).
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
