"""Verification metrics: equal error rate and the NIST minimum detection cost.

Both are computed from the ROC of the trial scores (scikit-learn's
:func:`~sklearn.metrics.roc_curve`): one sort of the scores, then vectorised arithmetic on
the operating points, so time is ``O(n log n)`` and memory linear in the number of trials.
Tied scores form one operating point (one threshold can never split them).

Operating points
    At a threshold ``t`` a trial is accepted ("same identity") when its score is ``>= t``.
    The miss rate ``P_miss(t)`` is the share of target trials (same identity) rejected and
    the false-alarm rate ``P_fa(t)`` the share of non-target trials accepted.  The points
    run from "accept nothing" (``P_fa = 0, P_miss = 1``) to "accept everything"
    (``P_fa = 1, P_miss = 0``), one per distinct score.

Equal error rate (:func:`equal_error_rate`)
    ``P_miss - P_fa`` never increases along the points.  At the first point where
    ``P_miss <= P_fa`` the curve has crossed the diagonal; the EER is where the straight
    segment from the point before meets ``P_miss = P_fa`` (exactly the point's rate when
    it lies on the diagonal).  Perfect separation gives 0, identical scores 0.5.

Minimum detection cost (:func:`min_dcf`)
    ``DCF(t) = c_miss * p_target * P_miss(t) + c_fa * (1 - p_target) * P_fa(t)``, divided by
    the cost of the better trivial system, ``min(c_miss * p_target, c_fa * (1 - p_target))``
    (NIST SRE normalisation), minimised over every operating point.  1.0 means no better
    than always accepting or always rejecting.

Examples
--------
>>> labels = [1, 1, 1, 0, 0, 0]
>>> scores = [0.9, 0.8, 0.3, 0.4, 0.2, 0.1]
>>> round(equal_error_rate(labels, scores), 4)
0.3333
>>> equal_error_rate([1, 0], [0.9, 0.1])
0.0
>>> round(min_dcf(labels, scores, p_target=0.5), 4)
0.3333
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import roc_curve

from ..errors import ConfigError, DataError

__all__ = [
    "VERIFICATION_METRICS",
    "OperatingPoints",
    "check_trials",
    "eer_threshold",
    "equal_error_rate",
    "get_verification_metric",
    "min_dcf",
    "operating_points",
]


def check_trials(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validated trial labels and scores.

    Parameters
    ----------
    labels : array-like of shape (n,)
        1 (or True) for a target trial (same identity), 0 for a non-target trial.
    scores : array-like of shape (n,)
        Finite trial scores, higher meaning more likely the same identity.

    Returns
    -------
    labels : numpy.ndarray of bool, shape (n,)
    scores : numpy.ndarray of float64, shape (n,)

    Raises
    ------
    DataError
        Shapes differ or are not 1-d, labels other than 0/1, a non-finite score, or no
        target or no non-target trial (both rates need one).
    """
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape:
        raise DataError(
            f"verification trials: labels {y.shape} and scores {s.shape} must be 1-d and equal"
        )
    if y.dtype != bool and not np.isin(y, (0, 1)).all():
        raise DataError("verification trials: labels must be 0/1 (1 = same identity)")
    y = y.astype(bool)
    if not np.isfinite(s).all():
        raise DataError(f"verification trials: {int((~np.isfinite(s)).sum())} non-finite scores")
    n_target = int(y.sum())
    if n_target == 0 or n_target == len(y):
        raise DataError(
            f"verification trials: need target and non-target trials, got {n_target} target "
            f"of {len(y)}"
        )
    return y, s


@dataclass(frozen=True)
class OperatingPoints:
    """Every operating point of a set of trials, from "accept nothing" to "accept all".

    Attributes
    ----------
    p_miss, p_fa : numpy.ndarray of float64, shape (n_points,)
        Miss and false-alarm rates; ``p_miss`` non-increasing, ``p_fa`` non-decreasing.
    thresholds : numpy.ndarray of float64, shape (n_points,)
        Accept when ``score >= threshold``; the first is ``+inf``.
    """

    p_miss: np.ndarray
    p_fa: np.ndarray
    thresholds: np.ndarray


def operating_points(labels: ArrayLike, scores: ArrayLike) -> OperatingPoints:
    """The operating points of the trials (see the module docstring), from their ROC.

    Parameters
    ----------
    labels : array-like of shape (n,)
        1 for a target trial, 0 for a non-target trial.
    scores : array-like of shape (n,)
        Trial scores.

    Returns
    -------
    OperatingPoints
        One point per distinct score plus "accept nothing".
    """
    y, s = check_trials(labels, scores)
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    return OperatingPoints(p_miss=1.0 - tpr, p_fa=fpr, thresholds=thresholds)


def equal_error_rate(labels: ArrayLike, scores: ArrayLike) -> float:
    """Equal error rate of the trials (the module docstring defines it).

    Parameters
    ----------
    labels : array-like of shape (n,)
        1 for a target trial (same identity), 0 for a non-target trial.
    scores : array-like of shape (n,)
        Trial scores, higher meaning more likely the same identity.

    Returns
    -------
    float
        In ``[0, 0.5]`` for any scorer at least as good as chance; lower is better.
    """
    pts = operating_points(labels, scores)
    gap = pts.p_miss - pts.p_fa  # non-increasing, from 1 down to -1
    i = int(np.argmax(gap <= 0))
    if gap[i] == 0 or i == 0:
        return float(pts.p_fa[i])
    before, after = gap[i - 1], gap[i]
    t = before / (before - after)
    return float(pts.p_fa[i - 1] + t * (pts.p_fa[i] - pts.p_fa[i - 1]))


def eer_threshold(labels: ArrayLike, scores: ArrayLike) -> float:
    """The score threshold of the operating point closest to the equal error rate.

    The neutral score of a trial a scorer cannot judge: accepted and rejected equally
    wrongly.  Returns the largest finite threshold when the closest point is "accept
    nothing".

    Returns
    -------
    float
    """
    pts = operating_points(labels, scores)
    i = int(np.argmin(np.abs(pts.p_miss - pts.p_fa)))
    finite = np.isfinite(pts.thresholds)
    return float(pts.thresholds[i] if finite[i] else pts.thresholds[finite].max())


def _check_costs(p_target: float, c_miss: float, c_fa: float) -> None:
    if not 0.0 < p_target < 1.0:
        raise ConfigError("verification.p_target", p_target, "must be in (0, 1)")
    for name, value in (("c_miss", c_miss), ("c_fa", c_fa)):
        if not value > 0:
            raise ConfigError(f"verification.{name}", value, "must be > 0")


def min_dcf(
    labels: ArrayLike,
    scores: ArrayLike,
    *,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> float:
    """Normalised minimum detection cost (NIST SRE) of the trials.

    Parameters
    ----------
    labels : array-like of shape (n,)
        1 for a target trial, 0 for a non-target trial.
    scores : array-like of shape (n,)
        Trial scores.
    p_target : float, default 0.01
        Prior probability of a target trial.
    c_miss, c_fa : float, default 1.0
        Costs of a miss and of a false alarm.

    Returns
    -------
    float
        ``min_t DCF(t) / min(c_miss * p_target, c_fa * (1 - p_target))``, in ``[0, 1]``;
        lower is better.
    """
    _check_costs(p_target, c_miss, c_fa)
    pts = operating_points(labels, scores)
    dcf = c_miss * p_target * pts.p_miss + c_fa * (1.0 - p_target) * pts.p_fa
    return float(dcf.min() / min(c_miss * p_target, c_fa * (1.0 - p_target)))


#: name -> ``f(labels, scores) -> float`` (lower is better for both).
VERIFICATION_METRICS: dict[str, Callable[..., float]] = {
    "eer": equal_error_rate,
    "min_dcf": min_dcf,
}


def get_verification_metric(name: str) -> Callable[..., float]:
    """The metric ``name`` of :data:`VERIFICATION_METRICS`; :class:`ConfigError` if unknown."""
    try:
        return VERIFICATION_METRICS[name]
    except KeyError:
        raise ConfigError(
            "verification.metric", name, f"unknown; known: {sorted(VERIFICATION_METRICS)}"
        ) from None
