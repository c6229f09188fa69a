"""Single-label combiners: validation, votes and means of several models' class probabilities.

Every function works on probabilities of shape ``(n_models, n_samples, n_classes)`` (one
softmax output per model) and optional per-model weights; the estimators of
:mod:`emo_utils.ensemble.estimators` are built on them.  Everything here is importable
from ``emo_utils.ensemble`` and ``emo_utils.ensemble.single``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import logsumexp, softmax
from scipy.stats import rankdata

from ..errors import ConfigError, DataError

__all__ = [
    "DEFAULT_POWER",
    "GEOMETRIC_EPS",
    "at_max",
    "check_power",
    "check_probas",
    "check_weights",
    "geometric_mean_proba",
    "mean_proba",
    "mode_vote",
    "power_mean_proba",
    "rank_mean_proba",
    "vote_shares",
]

#: Smallest probability used inside the geometric and power means (zeros are clipped to it).
GEOMETRIC_EPS = 1e-12

#: Default exponent of the ``power`` ensembles (``ensemble.power``).
DEFAULT_POWER = 2.0


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
