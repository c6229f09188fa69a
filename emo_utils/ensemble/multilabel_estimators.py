"""Multi-label ensembles as estimators: ``fit``, ``predict_proba``, ``predict``, ``oof_predict_proba``.

The estimator behind each method of :data:`MULTILABEL_ENSEMBLES` (see
:mod:`emo_utils.ensemble.multilabel` for the table of methods): :class:`KOfNVote` and
:class:`MultilabelAverage` over the combiners of
:mod:`emo_utils.ensemble.multilabel_combiners`, :class:`MultilabelStacking` (one logistic
regression per label) and :class:`MultilabelLearned` (weights learnt with
:mod:`emo_utils.ensemble.selection`); :func:`make_multilabel_ensemble` builds one from the
config's options.  Everything public here is importable from ``emo_utils.ensemble`` and
``emo_utils.ensemble.multilabel``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np
from scipy.special import logit
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import PredefinedSplit

from ..errors import ConfigError, DataError, TrainingError
from ..metrics import (
    MULTILABEL_METRICS,
    THRESHOLD_METRICS,
    check_thresholds,
    get_multilabel_metric,
)
from ..thresholds import THRESHOLD_MODES, cross_fit_thresholds, tune_thresholds
from .combiners import DEFAULT_POWER, check_power, check_weights
from .estimators import SINGLE
from .multilabel_combiners import (
    _check_folds,
    _check_k,
    _check_target,
    _model_thresholds,
    _vote_threshold,
    check_multilabel_probas,
    label_geometric_mean,
    label_mean,
    label_power_mean,
    label_rank_mean,
    label_vote_shares,
)
from .selection import (
    DEFAULT_ROUNDS,
    WEIGHT_LEARNERS,
    LearnedMean,
    LearnerOptions,
    check_selection_options,
)

__all__ = [
    "MULTILABEL_ENSEMBLES",
    "STACKING_EPS",
    "KOfNVote",
    "MultilabelAverage",
    "MultilabelEnsemble",
    "MultilabelLearned",
    "MultilabelStacking",
    "make_multilabel_ensemble",
    "resolve_multilabel_method",
]

#: Probabilities are clipped to ``[eps, 1 - eps]`` before the stacker's logit.
STACKING_EPS = 1e-6


class MultilabelEnsemble(Protocol):
    """What every entry of :data:`MULTILABEL_ENSEMBLES` builds."""

    def fit(
        self, probas: np.ndarray, y: np.ndarray, folds: np.ndarray | None = None
    ) -> MultilabelEnsemble:
        """Learn from OOF ``probas`` and targets ``y`` (or only check them); ``self``."""

    def predict_proba(self, probas: np.ndarray) -> np.ndarray:
        """Combined ``(n_samples, n_labels)`` scores in ``[0, 1]``."""

    def predict(self, probas: np.ndarray, thresholds: Any = None) -> np.ndarray:
        """0/1 decisions ``(n_samples, n_labels)``."""

    def oof_predict_proba(self, probas: np.ndarray, y: np.ndarray, folds: np.ndarray) -> np.ndarray:
        """Scores of the OOF rows that never used the scored rows' labels."""


def _decide(scores: np.ndarray, thresholds: float | np.ndarray) -> np.ndarray:
    return (scores >= check_thresholds(thresholds, scores.shape)).astype(np.int64)


@dataclass
class KOfNVote:
    """k-of-n vote over fixed models: ``mode`` of :data:`MULTILABEL_ENSEMBLES`.

    Parameters
    ----------
    weights : sequence of float, optional
        One weight per model (see :func:`k_of_n_vote`).
    k : int, optional
        Votes needed (default the strict majority :func:`default_k` of the models).
    thresholds : float or numpy.ndarray
        Each model's decision thresholds, float, ``(n_labels,)`` or ``(n_models,
        n_labels)``; default 0.5.  Used when ``tune`` is ``None``.
    tune : {None, "per_label", "global"}
        When set, :meth:`fit` tunes each model's thresholds on the OOF rows with
        :func:`emo_utils.thresholds.tune_thresholds` (this ``mode``), and
        :meth:`oof_predict_proba` uses each model's cross-fitted thresholds instead
        (:func:`emo_utils.thresholds.cross_fit_thresholds`).
    min_positives : int
        Passed to the threshold tuning.

    Notes
    -----
    :meth:`predict_proba` returns the (weighted) vote share of every label, whose decision
    threshold is :meth:`decision_threshold` ``= k / n``.
    """

    weights: Sequence[float] | None = None
    k: int | None = None
    thresholds: float | np.ndarray = 0.5
    tune: str | None = None
    min_positives: int = 5
    thresholds_: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.tune is not None and self.tune not in THRESHOLD_MODES:
            raise ConfigError(
                "threshold_mode", self.tune, f"must be None or one of {list(THRESHOLD_MODES)}"
            )
        k = self.k
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
            raise ConfigError("ensemble.k", k, "must be an integer >= 1 (votes needed)")

    def decision_threshold(self, n_models: int) -> float:
        """``k / n``: the vote share from which a label is present."""
        return _vote_threshold(_check_k(self.k, n_models), n_models)

    def fit(
        self, probas: np.ndarray, y: np.ndarray | None = None, folds: np.ndarray | None = None
    ) -> KOfNVote:
        """Check the input and fix each model's thresholds (tuned on ``y`` when ``tune``).

        ``folds`` is accepted for the uniform protocol and not needed.
        """
        p = check_multilabel_probas(probas)
        check_weights(self.weights, p.shape[0])
        _check_k(self.k, p.shape[0])
        if self.tune is None:
            self.thresholds_ = np.array(_model_thresholds(self.thresholds, p)[:, 0, :])
            return self
        if y is None:
            raise DataError(f"KOfNVote(tune={self.tune!r}): fit needs the targets y")
        y = _check_target(y, p)
        self.thresholds_ = np.stack(
            [tune_thresholds(y, pm, mode=self.tune, min_positives=self.min_positives) for pm in p]
        )
        return self

    def _thresholds(self, p: np.ndarray) -> np.ndarray | float:
        if self.thresholds_ is not None:
            return self.thresholds_
        if self.tune is not None:
            raise TrainingError("KOfNVote: call fit(oof_probas, Y) to tune the thresholds first")
        return self.thresholds

    def predict_proba(self, probas: np.ndarray) -> np.ndarray:
        """Weighted vote share ``(n_samples, n_labels)`` of every label."""
        p = check_multilabel_probas(probas)
        return label_vote_shares(p, thresholds=self._thresholds(p), weights=self.weights)

    def predict(self, probas: np.ndarray, thresholds: Any = None) -> np.ndarray:
        """0/1 decisions: vote share ``>= k / n`` (or ``>= thresholds`` when given)."""
        p = check_multilabel_probas(probas)
        t = self.decision_threshold(p.shape[0]) if thresholds is None else thresholds
        return _decide(self.predict_proba(p), t)

    def oof_predict_proba(
        self, probas: np.ndarray, y: np.ndarray | None = None, folds: np.ndarray | None = None
    ) -> np.ndarray:
        """Vote shares of the OOF rows, each model deciding at thresholds the row never chose.

        Without ``tune`` nothing is learnt: :meth:`predict_proba`.  With ``tune``, each
        model's thresholds for a row of fold ``k`` are tuned on the other folds.
        """
        p = check_multilabel_probas(probas)
        if self.tune is None:
            return label_vote_shares(p, thresholds=self.thresholds, weights=self.weights)
        if y is None:
            raise DataError(f"KOfNVote(tune={self.tune!r}): oof_predict_proba needs y")
        y = _check_target(y, p)
        f = _check_folds(folds, p.shape[1])
        per_row = np.stack(
            [
                cross_fit_thresholds(y, pm, f, mode=self.tune, min_positives=self.min_positives)
                for pm in p
            ]
        )
        return label_vote_shares(p, thresholds=per_row, weights=self.weights)


#: ``combine`` name -> ``(probas, *, weights) -> (n_samples, n_labels)``.
_COMBINE: dict[str, Callable[..., np.ndarray]] = {
    "mean": label_mean,
    "geometric": label_geometric_mean,
    "rank": label_rank_mean,
    "power": label_power_mean,
}


@dataclass
class MultilabelAverage:
    """A fixed per-label average of the models: ``mean``, ``geometric``, ``rank`` or ``power``.

    Parameters
    ----------
    combine : {"mean", "geometric", "rank", "power"}
        :func:`label_mean`, :func:`label_geometric_mean`, :func:`label_rank_mean` or
        :func:`label_power_mean`.
    weights : sequence of float, optional
        One weight per model.
    power : float
        The exponent of ``"power"`` (``ensemble.power``, default 2); unused otherwise.

    Notes
    -----
    Nothing is learnt, so :meth:`oof_predict_proba` is :meth:`predict_proba`.
    """

    combine: str = "mean"
    weights: Sequence[float] | None = None
    power: float = DEFAULT_POWER

    def __post_init__(self) -> None:
        if self.combine not in _COMBINE:
            raise ConfigError("combine", self.combine, f"must be one of {sorted(_COMBINE)}")
        check_power(self.power)

    def fit(
        self, probas: np.ndarray, y: np.ndarray | None = None, folds: np.ndarray | None = None
    ) -> MultilabelAverage:
        """Check ``probas`` and one weight per model; learn nothing and return ``self``."""
        check_weights(self.weights, check_multilabel_probas(probas).shape[0])
        return self

    def predict_proba(self, probas: np.ndarray) -> np.ndarray:
        """Combined ``(n_samples, n_labels)`` scores in ``[0, 1]``."""
        options = {"power": self.power} if self.combine == "power" else {}
        return _COMBINE[self.combine](probas, weights=self.weights, **options)

    def predict(self, probas: np.ndarray, thresholds: Any = None) -> np.ndarray:
        """0/1 decisions ``predict_proba >= thresholds`` (default 0.5)."""
        return _decide(self.predict_proba(probas), 0.5 if thresholds is None else thresholds)

    def oof_predict_proba(
        self, probas: np.ndarray, y: np.ndarray | None = None, folds: np.ndarray | None = None
    ) -> np.ndarray:
        """:meth:`predict_proba` (nothing is learnt, so ``y`` and ``folds`` are not needed)."""
        return self.predict_proba(probas)


def _label_features(p: np.ndarray, j: int) -> np.ndarray:
    """The models' logits of label ``j``: ``(n_samples, n_models)``."""
    return logit(np.clip(p[:, :, j].T, STACKING_EPS, 1 - STACKING_EPS))


@dataclass
class MultilabelStacking:
    """One logistic regression per label on the models' logits of that label.

    Features of label ``j`` are the ``n_models`` logits ``log(p / (1 - p))`` of label ``j``
    (probabilities clipped to ``[1e-6, 1 - 1e-6]``), not every label's: with hundreds of
    labels and a few positives each, a per-label stacker of ``n_models`` inputs is what the
    data can fit, and on a single model it is Platt scaling.  A label whose training column
    is constant (all 0 or all 1) predicts that prior instead of fitting.

    Parameters
    ----------
    weights : sequence of float, optional
        Accepted for a uniform factory signature; ignored (the stacker learns weights).
    seed : int
        ``random_state`` of the logistic regressions.
    C : float
        Inverse regularisation strength of the logistic regressions.
    """

    weights: Sequence[float] | None = None
    seed: int = 0
    C: float = 1.0
    models_: list[LogisticRegression | float] | None = field(default=None, init=False, repr=False)
    shape_: tuple[int, int] | None = field(default=None, init=False, repr=False)

    def _estimator(self) -> LogisticRegression:
        return LogisticRegression(C=self.C, max_iter=1000, random_state=self.seed)

    def _fit_labels(self, p: np.ndarray, y: np.ndarray) -> list[LogisticRegression | float]:
        models: list[LogisticRegression | float] = []
        for j in range(p.shape[2]):
            col = y[:, j]
            if col.min() == col.max():
                models.append(float(col[0]))  # constant training column: its prior
            else:
                models.append(clone(self._estimator()).fit(_label_features(p, j), col))
        return models

    @staticmethod
    def _predict_labels(models: list[LogisticRegression | float], p: np.ndarray) -> np.ndarray:
        out = np.empty(p.shape[1:])
        for j, model in enumerate(models):
            if isinstance(model, float):
                out[:, j] = model
            else:  # classes_ is [0, 1]: column 1 is the label's probability
                out[:, j] = model.predict_proba(_label_features(p, j))[:, 1]
        return out

    def fit(
        self, probas: np.ndarray, y: np.ndarray, folds: np.ndarray | None = None
    ) -> MultilabelStacking:
        """Fit every label's stacker on all OOF rows; return ``self`` (``folds`` unused)."""
        p = check_multilabel_probas(probas)
        self.models_ = self._fit_labels(p, _check_target(y, p))
        self.shape_ = (p.shape[0], p.shape[2])
        return self

    def predict_proba(self, probas: np.ndarray) -> np.ndarray:
        """The fitted stackers' ``(n_samples, n_labels)`` probabilities.

        Raises
        ------
        TrainingError
            :meth:`fit` has not been called.
        DataError
            Another number of models or labels than in :meth:`fit`.
        """
        if self.models_ is None or self.shape_ is None:
            raise TrainingError("MultilabelStacking: call fit(oof_probas, Y) before predicting")
        p = check_multilabel_probas(probas)
        if (p.shape[0], p.shape[2]) != self.shape_:
            raise DataError(
                f"probas: fitted on (n_models, n_labels) = {self.shape_}, "
                f"got {(p.shape[0], p.shape[2])}"
            )
        return self._predict_labels(self.models_, p)

    def predict(self, probas: np.ndarray, thresholds: Any = None) -> np.ndarray:
        """0/1 decisions ``predict_proba >= thresholds`` (default 0.5)."""
        return _decide(self.predict_proba(probas), 0.5 if thresholds is None else thresholds)

    def oof_predict_proba(self, probas: np.ndarray, y: np.ndarray, folds: np.ndarray) -> np.ndarray:
        """Cross-validated stacker probabilities of the OOF rows.

        ``PredefinedSplit`` on the OOF fold column: the rows of fold ``k`` are predicted by
        stackers fitted on the other folds only (a label constant there predicts its
        prior).  Never in-sample.

        Parameters
        ----------
        probas : numpy.ndarray, shape (n_models, n_samples, n_labels)
        y : numpy.ndarray of {0, 1}, shape (n_samples, n_labels)
        folds : numpy.ndarray of int, shape (n_samples,)
            At least two distinct folds.

        Returns
        -------
        numpy.ndarray, shape (n_samples, n_labels)
        """
        p = check_multilabel_probas(probas)
        y = _check_target(y, p)
        f = _check_folds(folds, p.shape[1])
        test_fold = np.unique(f, return_inverse=True)[1]  # every fold value is a test fold
        out = np.empty(p.shape[1:])
        for train, test in PredefinedSplit(test_fold).split():
            models = self._fit_labels(p[:, train], y[train])
            out[test] = self._predict_labels(models, p[:, test])
        return out


def _label_score(
    metric: str,
    y: np.ndarray,
    scores: np.ndarray,
    *,
    folds: np.ndarray | None,
    mode: str,
    min_positives: int,
) -> float:
    """Multi-label metric ``metric`` of ``scores``; the F1 metrics at tuned thresholds.

    F1 is scored at thresholds cross-fitted over ``folds`` (the report's OOF score of a
    model), or with ``folds=None`` tuned on the same rows (the objective of ``select``,
    whose honesty comes from the nesting around it).
    """
    if metric not in THRESHOLD_METRICS:
        return float(MULTILABEL_METRICS[metric](y, scores))
    tune = {"mode": mode, "min_positives": min_positives}
    if folds is None:
        thresholds = tune_thresholds(y, scores, **tune)
    else:
        thresholds = cross_fit_thresholds(y, scores, folds, **tune)
    return float(MULTILABEL_METRICS[metric](y, scores, thresholds=thresholds))


def _binary_cross_entropy(y: np.ndarray, scores: np.ndarray) -> float:
    """scikit-learn's log loss of every (row, label) as one binary decision."""
    return float(log_loss(y.ravel(), scores.ravel(), labels=[0, 1]))


@dataclass
class MultilabelLearned(LearnedMean):
    """A per-label weighted mean of the models whose weights are learnt from the OOF labels.

    The ``single``, ``select`` and ``weighted`` methods of :data:`MULTILABEL_ENSEMBLES`,
    built on :data:`emo_utils.ensemble.selection.WEIGHT_LEARNERS` (one weight per model,
    shared by every label):

    * ``"single"``: all the weight on the model with the best ``metric``, scored as the
      report scores a model (F1 metrics at thresholds cross-fitted over the folds given to
      :meth:`fit`, tuned in-sample without them); its OOF output is that model's;
    * ``"select"``: :func:`~emo_utils.ensemble.selection.forward_selection` maximising
      ``metric`` of the mean (F1 at thresholds tuned on the rows it selects on);
    * ``"weighted"``: :func:`~emo_utils.ensemble.selection.optimize_weights` minimising
      the binary cross-entropy of the mean (scikit-learn's ``log_loss`` over every row
      and label).

    ``select`` and ``weighted``'s :meth:`oof_predict_proba` is cross-fitted over the
    folds (nested); :meth:`fit` learns the weights on all OOF rows for the test set.

    Parameters
    ----------
    learner : {"single", "select", "weighted"}
        Name in :data:`~emo_utils.ensemble.selection.WEIGHT_LEARNERS`.
    weights : sequence of float, optional
        Accepted for a uniform factory signature; ignored (the weights are learnt).
    metric : str
        Key of :data:`emo_utils.metrics.MULTILABEL_METRICS` that ``single`` and ``select``
        maximise.
    rounds, init : int
        ``select``'s ``ensemble.selection_rounds`` and ``ensemble.selection_init``.
    threshold_mode : {"per_label", "global"}
        How the F1 metrics' thresholds are tuned.
    min_positives : int
        Passed to the threshold tuning.

    Attributes
    ----------
    weights_ : numpy.ndarray, shape (n_models,) or None
        The weights learnt by :meth:`fit` (sum to 1).
    """

    learner: str = "select"
    weights: Sequence[float] | None = None
    metric: str = "map"
    rounds: int = DEFAULT_ROUNDS
    init: int = 1
    threshold_mode: str = "per_label"
    min_positives: int = 5
    weights_: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._spec()
        get_multilabel_metric(self.metric)
        check_selection_options(self.rounds, self.init)
        if self.threshold_mode not in THRESHOLD_MODES:
            raise ConfigError(
                "threshold_mode", self.threshold_mode, f"must be one of {list(THRESHOLD_MODES)}"
            )

    def _check_probas(self, probas: np.ndarray) -> np.ndarray:
        return check_multilabel_probas(probas)

    def _check_target(self, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        return _check_target(y, p)

    def _options(self, folds: np.ndarray | None) -> LearnerOptions:
        score = partial(
            _label_score,
            self.metric,
            mode=self.threshold_mode,
            min_positives=self.min_positives,
        )
        return LearnerOptions(
            score=partial(score, folds=None),
            loss=_binary_cross_entropy,
            model_score=partial(score, folds=folds),
            rounds=self.rounds,
            init=self.init,
        )

    def _folds(self, y: np.ndarray, folds: np.ndarray | None, n_samples: int) -> np.ndarray:
        return _check_folds(folds, n_samples)

    def predict(self, probas: np.ndarray, thresholds: Any = None) -> np.ndarray:
        """0/1 decisions ``predict_proba >= thresholds`` (default 0.5)."""
        return _decide(self.predict_proba(probas), 0.5 if thresholds is None else thresholds)


#: Method name -> factory ``(weights=None, **options) -> multi-label ensemble``.  ``single``
#: comes first: :func:`score_multilabel_ensembles` breaks ties in favour of the earliest.
MULTILABEL_ENSEMBLES: dict[str, Callable[..., MultilabelEnsemble]] = {
    SINGLE: partial(MultilabelLearned, SINGLE),
    "mode": KOfNVote,
    "mean": partial(MultilabelAverage, "mean"),
    "geometric": partial(MultilabelAverage, "geometric"),
    "rank": partial(MultilabelAverage, "rank"),
    "power": partial(MultilabelAverage, "power"),
    "select": partial(MultilabelLearned, "select"),
    "weighted": partial(MultilabelLearned, "weighted"),
    "stacking": MultilabelStacking,
}

_BEST = "best"


def _unknown(method: str) -> ConfigError:
    return ConfigError(
        "ensemble.method",
        method,
        f"unknown multi-label method; known: {[*MULTILABEL_ENSEMBLES, _BEST]}",
    )


def make_multilabel_ensemble(
    method: str,
    *,
    weights: Sequence[float] | None = None,
    k: int | None = None,
    threshold_mode: str | None = None,
    min_positives: int = 5,
    seed: int = 0,
    metric: str = "map",
    selection_rounds: int = DEFAULT_ROUNDS,
    selection_init: int = 1,
    power: float = DEFAULT_POWER,
) -> MultilabelEnsemble:
    """Build the ensemble registered as ``method`` in :data:`MULTILABEL_ENSEMBLES`.

    Parameters
    ----------
    method : str
        A registered name (``"best"`` must be resolved first with
        :func:`resolve_multilabel_method`).
    weights : sequence of float, optional
        One weight per model (ignored by ``stacking`` and the learnt methods).
    k, threshold_mode, min_positives
        ``mode``: votes needed, and how each model's thresholds are tuned (``None``:
        fixed 0.5; see :class:`KOfNVote`).  ``single`` and ``select`` tune the F1
        metrics' thresholds with ``threshold_mode`` (``None``: ``"per_label"``) and
        ``min_positives``.
    seed : int
        ``stacking`` only.
    metric : str
        The multi-label metric ``single`` and ``select`` maximise.
    selection_rounds, selection_init : int
        ``select``'s options (:func:`~emo_utils.ensemble.selection.forward_selection`).
    power : float
        ``power``'s exponent.

    Raises
    ------
    ConfigError
        Unknown method, or an invalid option.
    """
    if method not in MULTILABEL_ENSEMBLES:
        raise _unknown(method)
    weights = list(weights) if weights is not None and len(weights) else None
    learnt = {
        "metric": metric,
        "rounds": selection_rounds,
        "init": selection_init,
        "threshold_mode": threshold_mode or "per_label",
        "min_positives": min_positives,
    }
    options: dict[str, Any] = {
        "mode": {"k": k, "tune": threshold_mode, "min_positives": min_positives},
        "stacking": {"seed": seed},
        "power": {"power": power},
        **dict.fromkeys(WEIGHT_LEARNERS, learnt),
    }.get(method, {})
    return MULTILABEL_ENSEMBLES[method](weights=weights, **options)


def resolve_multilabel_method(method: str, best_method: str) -> str:
    """``method``, or ``best_method`` when ``method`` is ``"best"``.

    Raises
    ------
    ConfigError
        ``method`` is neither ``"best"`` nor in :data:`MULTILABEL_ENSEMBLES`.
    """
    resolved = best_method if method == _BEST else method
    if resolved not in MULTILABEL_ENSEMBLES:
        raise _unknown(method)
    return resolved
