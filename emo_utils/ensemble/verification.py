"""Ensembles of verification scorers: z-normalised score averaging, weights chosen on OOF EER.

Every member (an architecture: its fold models averaged) scores trials on its own scale, so
each fold model's scores are first z-normalised with the mean and standard deviation of
its own out-of-fold trial scores (:func:`emo_utils.train.verification.z_normalize`); the
members' z-scores are then averaged with weights.  :data:`VERIFICATION_ENSEMBLES`:

``single``
    the member with the lowest OOF EER (weight 1);
``zmean``
    every member with the same weight;
``weighted``
    weights on a simplex grid (step 0.1) minimising the OOF EER.  Its OOF score is
    cross-fitted: the trials of each fold are combined with the weights chosen on the other
    folds, so it is not flattered by the choice; the test set gets the weights chosen on
    every fold.

``ensemble.method = "best"`` takes the method with the lowest (cross-fitted) OOF EER;
ties go to the earlier one, ``single`` first.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import TrainingError
from ..verification.metrics import equal_error_rate

__all__ = [
    "VERIFICATION_ENSEMBLES",
    "VerificationEnsembleReport",
    "choose_weights",
    "combine_scores",
    "evaluate_verification_ensembles",
    "simplex_grid",
]


def simplex_grid(n: int, *, step: float = 0.1) -> np.ndarray:
    """Every weight vector of ``n`` non-negative multiples of ``step`` summing to 1.

    Returns
    -------
    numpy.ndarray of float64, shape (n_points, n)

    Examples
    --------
    >>> simplex_grid(2, step=0.5).tolist()
    [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]
    """
    units = round(1 / step)
    points = [c for c in itertools.product(range(units + 1), repeat=n - 1) if sum(c) <= units]
    return np.array([[*c, units - sum(c)] for c in points], dtype=np.float64) / units


def combine_scores(zscores: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """Weighted mean of the members' z-scores.

    Parameters
    ----------
    zscores : numpy.ndarray, shape (n_trials, n_members)
    weights : sequence of float, length n_members
        Non-negative, not all zero (normalised here).

    Returns
    -------
    numpy.ndarray of float64, shape (n_trials,)
    """
    w = np.asarray(weights, dtype=np.float64)
    return np.asarray(zscores, dtype=np.float64) @ (w / w.sum())


def choose_weights(labels: np.ndarray, zscores: np.ndarray, *, step: float = 0.1) -> np.ndarray:
    """The grid point of :func:`simplex_grid` with the lowest EER (first on ties).

    Returns
    -------
    numpy.ndarray of float64, shape (n_members,)
    """
    grid = simplex_grid(zscores.shape[1], step=step)
    # Uniform weights first, so a tie keeps the plain mean.
    uniform = np.full(zscores.shape[1], 1 / zscores.shape[1])
    candidates = [uniform, *grid]
    eers = [equal_error_rate(labels, combine_scores(zscores, w)) for w in candidates]
    return np.asarray(candidates[int(np.argmin(eers))])


def _single(labels: np.ndarray, z: np.ndarray, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    eers = [equal_error_rate(labels, z[:, j]) for j in range(z.shape[1])]
    w = np.zeros(z.shape[1])
    w[int(np.argmin(eers))] = 1.0
    return z @ w, w


def _zmean(labels: np.ndarray, z: np.ndarray, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = np.full(z.shape[1], 1 / z.shape[1])
    return z @ w, w


def _weighted(
    labels: np.ndarray, z: np.ndarray, folds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    oof = np.empty(len(labels))
    for fold in np.unique(folds):
        inner = folds != fold
        if len(np.unique(labels[inner])) < 2:  # one fold only: nothing to learn from
            w = np.full(z.shape[1], 1 / z.shape[1])
        else:
            w = choose_weights(labels[inner], z[inner])
        oof[~inner] = combine_scores(z[~inner], w)
    return oof, choose_weights(labels, z)


#: name -> ``f(labels, zscores (n, m), folds) -> (OOF scores, weights for the test set)``.
VERIFICATION_ENSEMBLES: dict[
    str, Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
] = {"single": _single, "zmean": _zmean, "weighted": _weighted}


@dataclass
class VerificationEnsembleReport:
    """OOF EER of every member and method, the weights, and the chosen method.

    Attributes
    ----------
    members : list of str
        The members (architectures), in column order.
    member_eer : dict of str to float
    method_eer : dict of str to float
        Cross-fitted for ``weighted``.
    weights : dict of str to list of float
        The test-set weights of every method, one per member.
    oof_scores : dict of str to numpy.ndarray
        Every method's OOF trial scores.
    best : str
        The method with the lowest OOF EER (ties: the earliest).
    """

    members: list[str]
    member_eer: dict[str, float]
    method_eer: dict[str, float]
    weights: dict[str, list[float]]
    oof_scores: dict[str, np.ndarray] = field(repr=False)
    best: str = ""


def evaluate_verification_ensembles(
    labels: np.ndarray,
    zscores: Mapping[str, np.ndarray],
    folds: np.ndarray,
    *,
    methods: Sequence[str] = tuple(VERIFICATION_ENSEMBLES),
) -> VerificationEnsembleReport:
    """Score every method on the OOF trials and pick the best.

    Parameters
    ----------
    labels : numpy.ndarray, shape (n_trials,)
        1 for same identity, 0 for different.
    zscores : mapping of str to numpy.ndarray of shape (n_trials,)
        Every member's per-fold z-normalised OOF scores of the same trials.
    folds : numpy.ndarray, shape (n_trials,)
        Fold of every trial (for the cross-fitting of ``weighted``).
    methods : sequence of str
        Names of :data:`VERIFICATION_ENSEMBLES`, in tie-break order.

    Returns
    -------
    VerificationEnsembleReport
    """
    if not zscores:
        raise TrainingError("verification ensemble: no trained model")
    members = list(zscores)
    z = np.column_stack([np.asarray(zscores[m], dtype=np.float64) for m in members])
    labels = np.asarray(labels)
    member_eer = {m: equal_error_rate(labels, z[:, j]) for j, m in enumerate(members)}
    method_eer, weights, oof = {}, {}, {}
    for name in methods:
        scores, w = VERIFICATION_ENSEMBLES[name](labels, z, np.asarray(folds))
        oof[name] = scores
        method_eer[name] = equal_error_rate(labels, scores)
        weights[name] = [float(x) for x in w]
    best = min(method_eer, key=lambda n: (method_eer[n], list(methods).index(n)))
    return VerificationEnsembleReport(members, member_eer, method_eer, weights, oof, best)
