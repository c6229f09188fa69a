"""Multi-label combiners: validation, k-of-n votes and per-label means of sigmoid outputs.

Every function works on probabilities of shape ``(n_models, n_samples, n_labels)`` (one
sigmoid output per model and label) and optional per-model weights; the estimators of
:mod:`emo_utils.ensemble.multilabel_estimators` are built on them.  Everything public here
is importable from ``emo_utils.ensemble`` and ``emo_utils.ensemble.multilabel``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import logsumexp
from scipy.stats import rankdata

from ..errors import ConfigError, DataError
from ..metrics import check_multilabel
from .combiners import DEFAULT_POWER, GEOMETRIC_EPS, check_power, check_weights

__all__ = [
    "check_multilabel_probas",
    "default_k",
    "k_of_n_vote",
    "label_geometric_mean",
    "label_mean",
    "label_power_mean",
    "label_rank_mean",
    "label_vote_shares",
]

#: Vote shares and the vote threshold ``k / n`` are rounded to this many decimals, so float
#: rounding in the weights cannot decide whether a label reached ``k`` votes.
_VOTE_DECIMALS = 12


# ---------------------------------------------------------------------------- validation
def check_multilabel_probas(probas: np.ndarray) -> np.ndarray:
    """``probas`` as float64 ``(n_models, n_samples, n_labels)``, every value in ``[0, 1]``.

    Raises
    ------
    DataError
        Another shape, an empty axis, or a value that is not a finite number in ``[0, 1]``.
    """
    p = np.asarray(probas, dtype=np.float64)
    if p.ndim != 3 or 0 in p.shape:
        raise DataError(
            f"probas: expected a non-empty array of shape (n_models, n_samples, n_labels), "
            f"got shape {p.shape}"
        )
    bad = ~(np.isfinite(p) & (p >= 0) & (p <= 1))
    if bad.any():
        raise DataError(
            f"probas: must be finite probabilities in [0, 1], found {p[bad][0].item()!r}"
        )
    return p


def _check_target(y_true: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``y_true`` as int64 ``(n_samples, n_labels)`` matching ``p``'s rows and labels."""
    return check_multilabel(y_true, p[0])[0]


def _check_folds(folds: Sequence[int] | np.ndarray | None, n_samples: int) -> np.ndarray:
    f = None if folds is None else np.asarray(folds)
    if f is None or f.shape != (n_samples,):
        raise DataError(
            f"folds: expected one fold per row, shape ({n_samples},), "
            f"got {None if f is None else f.shape}"
        )
    if np.unique(f).size < 2:
        raise DataError(f"folds: need at least 2 distinct folds, got {np.unique(f).tolist()}")
    return f


def default_k(n_models: int) -> int:
    """The strict majority of ``n_models`` votes: ``ceil((n + 1) / 2)``.

    Examples
    --------
    >>> [default_k(n) for n in (1, 2, 3, 4, 5)]
    [1, 2, 2, 3, 3]
    """
    return math.ceil((n_models + 1) / 2)


def _check_k(k: int | None, n_models: int) -> int:
    if k is None:
        return default_k(n_models)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_models:
        raise ConfigError("ensemble.k", k, f"must be an integer from 1 to {n_models} (models)")
    return int(k)


def _model_thresholds(thresholds: float | np.ndarray, p: np.ndarray) -> np.ndarray:
    """Model thresholds broadcast to ``p``'s shape ``(n_models, n_samples, n_labels)``.

    Accepted: a float, ``(n_labels,)`` (the same for every model), ``(n_models, n_labels)``
    or ``(n_models, n_samples, n_labels)`` (per-row, e.g. cross-fitted).
    """
    t = np.asarray(thresholds, dtype=np.float64)
    n_models, _, n_labels = p.shape
    if t.shape == (n_models, n_labels):
        t = t[:, None, :]
    elif t.shape not in ((), (n_labels,), p.shape):
        raise DataError(
            f"thresholds: expected a float, shape ({n_labels},), ({n_models}, {n_labels}) or "
            f"{p.shape}, got shape {t.shape}"
        )
    if not np.all(np.isfinite(t)):
        raise DataError(f"thresholds: must be finite, found {t[~np.isfinite(t)].flat[0].item()!r}")
    return np.broadcast_to(t, p.shape)


# ---------------------------------------------------------------------------- combiners
def label_vote_shares(
    probas: np.ndarray,
    *,
    thresholds: float | np.ndarray = 0.5,
    weights: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Weighted share of the models that predict each label (``probas >= thresholds``).

    Parameters
    ----------
    probas : numpy.ndarray, shape (n_models, n_samples, n_labels)
    thresholds : float or numpy.ndarray
        Each model's decision thresholds: a float, ``(n_labels,)``, ``(n_models, n_labels)``
        or ``(n_models, n_samples, n_labels)``.
    weights : sequence of float, optional
        One non-negative weight per model (default: one vote each).

    Returns
    -------
    numpy.ndarray, shape (n_samples, n_labels)
        In ``[0, 1]``, rounded to 12 decimals.
    """
    p = check_multilabel_probas(probas)
    w = check_weights(weights, p.shape[0])
    votes = (p >= _model_thresholds(thresholds, p)).astype(np.float64)
    return np.round(np.einsum("m,mnl->nl", w, votes) / w.sum(), _VOTE_DECIMALS)


def _vote_threshold(k: int, n_models: int) -> float:
    return round(k / n_models, _VOTE_DECIMALS)


def k_of_n_vote(
    probas: np.ndarray,
    *,
    k: int | None = None,
    thresholds: float | np.ndarray = 0.5,
    weights: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """A label is present when at least ``k`` of the ``n`` models predict it.

    Parameters
    ----------
    probas : numpy.ndarray, shape (n_models, n_samples, n_labels)
    k : int, optional
        Votes needed, ``1 <= k <= n``; default the strict majority :func:`default_k`.
    thresholds : float or numpy.ndarray
        Each model's decision thresholds (see :func:`label_vote_shares`).
    weights : sequence of float, optional
        Model weights: a label is present when its weighted vote share reaches ``k / n``
        (the weights scaled to sum to ``n`` and their count compared with ``k``).

    Returns
    -------
    numpy.ndarray of int64 in {0, 1}, shape (n_samples, n_labels)
    """
    p = check_multilabel_probas(probas)
    k = _check_k(k, p.shape[0])
    shares = label_vote_shares(p, thresholds=thresholds, weights=weights)
    return (shares >= _vote_threshold(k, p.shape[0])).astype(np.int64)


def label_mean(
    probas: np.ndarray, *, weights: Sequence[float] | np.ndarray | None = None
) -> np.ndarray:
    """Weighted arithmetic mean of the models' probabilities, label by label.

    Returns
    -------
    numpy.ndarray, shape (n_samples, n_labels)
    """
    p = check_multilabel_probas(probas)
    return np.average(p, axis=0, weights=check_weights(weights, p.shape[0]))


def label_geometric_mean(
    probas: np.ndarray,
    *,
    weights: Sequence[float] | np.ndarray | None = None,
    eps: float = GEOMETRIC_EPS,
) -> np.ndarray:
    """Weighted geometric mean of the models' probabilities, label by label.

    Not renormalised across labels (each label is its own yes/no question).  Probabilities
    are clipped to ``eps`` before the logarithm, so a 0 never gives ``-inf`` or NaN.

    Returns
    -------
    numpy.ndarray, shape (n_samples, n_labels)
        In ``[0, 1]``.

    Examples
    --------
    >>> label_geometric_mean(np.array([[[0.25, 1.0]], [[1.0, 0.04]]])).round(3).tolist()
    [[0.5, 0.2]]
    """
    p = check_multilabel_probas(probas)
    w = check_weights(weights, p.shape[0])
    return np.exp(np.average(np.log(np.clip(p, eps, None)), axis=0, weights=w))


def label_rank_mean(
    probas: np.ndarray, *, weights: Sequence[float] | np.ndarray | None = None
) -> np.ndarray:
    """Weighted mean of rank-normalised scores, label by label.

    Each model's column (one label) is ranked over the rows with
    :func:`scipy.stats.rankdata` (ties get their average rank) and mapped to
    ``(rank - 1) / (n_samples - 1)`` (0.5 for a single row), then averaged over models.
    Ranks are relative to the rows given, so thresholds tuned on OOF rank scores carry over
    to a test set only when its label frequencies are similar.

    Returns
    -------
    numpy.ndarray, shape (n_samples, n_labels)
        In ``[0, 1]``.
    """
    p = check_multilabel_probas(probas)
    n = p.shape[1]
    ranks = rankdata(p, axis=1)
    scaled = (ranks - 1) / (n - 1) if n > 1 else np.full_like(ranks, 0.5)
    return np.average(scaled, axis=0, weights=check_weights(weights, p.shape[0]))


def label_power_mean(
    probas: np.ndarray,
    *,
    weights: Sequence[float] | np.ndarray | None = None,
    power: float = DEFAULT_POWER,
    eps: float = GEOMETRIC_EPS,
) -> np.ndarray:
    """Weighted power mean ``(sum_m w_m p_m ** power / sum_m w_m) ** (1 / power)``, per label.

    ``power = 1`` is :func:`label_mean`; ``power > 1`` moves the result towards the
    largest of the models' probabilities (a label one model is sure of stays likely),
    ``power < 1`` towards :func:`label_geometric_mean`.  Each label is its own yes/no
    question, so nothing is renormalised across labels; the ``1 / power`` root keeps the
    result on the probability scale.  Computed in log space (probabilities clipped to
    ``eps``).

    Parameters
    ----------
    probas : numpy.ndarray, shape (n_models, n_samples, n_labels)
    weights : sequence of float, optional
    power : float
        The exponent, finite and > 0 (default 2).
    eps : float
        Floor applied to the probabilities (default ``1e-12``).

    Returns
    -------
    numpy.ndarray, shape (n_samples, n_labels)
        In ``[0, 1]``.

    Examples
    --------
    >>> label_power_mean(np.array([[[0.6, 0.0]], [[0.8, 0.0]]])).round(3).tolist()
    [[0.707, 0.0]]
    """
    p = check_multilabel_probas(probas)
    w = check_weights(weights, p.shape[0])
    k = check_power(power)
    log_mean = logsumexp(k * np.log(np.clip(p, eps, None)), axis=0, b=(w / w.sum())[:, None, None])
    return np.clip(np.exp(log_mean / k), 0.0, 1.0)
