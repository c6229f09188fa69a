"""Decision thresholds of multi-label probabilities, tuned on out-of-fold predictions.

A multi-label model outputs one sigmoid probability per label; a label is predicted when
its probability reaches the label's threshold.  :func:`tune_thresholds` picks the
thresholds that maximise F1 on OOF rows (what is applied to the test set);
:func:`cross_fit_thresholds` gives every OOF row the thresholds tuned on the *other* folds,
so an OOF F1 can be reported without tuning on the scored rows.

F1 at every candidate threshold comes from scikit-learn's
:func:`~sklearn.metrics.precision_recall_curve` (one curve per label, or one over all
labels pooled for the micro F1 of ``mode="global"``).

Examples
--------
>>> import numpy as np
>>> y = np.array([[0], [0], [1], [1]])
>>> s = np.array([[0.1], [0.3], [0.7], [0.9]])
>>> tune_thresholds(y, s, min_positives=1).tolist()  # every t in (0.3, 0.7] is perfect
[0.5]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import precision_recall_curve

from .errors import ConfigError, DataError
from .metrics import check_multilabel

__all__ = ["DEFAULT_GRID", "THRESHOLD_MODES", "cross_fit_thresholds", "tune_thresholds"]

#: The fine grid added to the distinct score values when ``grid`` is ``None``.
DEFAULT_GRID = np.round(np.linspace(0.01, 0.99, 99), 2)

#: ``mode`` values of :func:`tune_thresholds`.
THRESHOLD_MODES = ("per_label", "global")

#: F1 values this close count as tied (float rounding must not decide).
_RTOL, _ATOL = 1e-9, 1e-12


def _check_grid(grid: Sequence[float] | np.ndarray | None) -> np.ndarray | None:
    if grid is None:
        return None
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 1 or g.size == 0 or not np.all(np.isfinite(g)):
        raise DataError(f"grid: expected a non-empty 1-D array of finite thresholds, got {grid!r}")
    return np.unique(g)


def _best_threshold(y: np.ndarray, s: np.ndarray, grid: np.ndarray | None) -> float:
    """The threshold maximising the binary F1 of ``s >= t`` against ``y`` (both 1-D).

    Candidates are ``grid``, or (``grid=None``) the distinct values of ``s`` plus
    :data:`DEFAULT_GRID`.  Ties go to the candidate closest to 0.5, then to the lower one.
    """
    if y.any():
        precision, recall, curve_t = precision_recall_curve(y, s, drop_intermediate=False)
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
        candidates = np.union1d(curve_t, DEFAULT_GRID) if grid is None else grid
        # curve_t ascends; the decisions s >= t equal those at the first curve_t >= t, and the
        # curve's final point (precision 1, recall 0, F1 0) stands for "nothing predicted".
        f1_at = f1[np.searchsorted(curve_t, candidates, side="left")]
    else:  # no positive: F1 is 0 whatever the threshold; the tie rule decides
        candidates = DEFAULT_GRID if grid is None else grid
        f1_at = np.zeros(candidates.shape)
    tied = np.isclose(f1_at, f1_at.max(), rtol=_RTOL, atol=_ATOL)
    best = candidates[tied]
    return float(best[np.argmin(np.abs(best - 0.5))])  # candidates ascend: lower wins a tie


def tune_thresholds(
    y_true: np.ndarray,
    scores: np.ndarray,
    *,
    mode: str = "per_label",
    min_positives: int = 5,
    grid: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """The decision threshold of every label that maximises F1 on ``(y_true, scores)``.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (n_samples, n_labels)
        True labels (indicator matrix).
    scores : array-like of float, shape (n_samples, n_labels)
        Probabilities in ``[0, 1]``; a label is predicted when ``scores >= threshold``.
    mode : {"per_label", "global"}
        ``"per_label"``: each label's own F1 is maximised over its own threshold.
        ``"global"``: one threshold for every label, maximising the micro F1 (true and false
        positives and negatives pooled over all labels).
    min_positives : int
        ``"per_label"`` only: a label with fewer positive samples than this gets the global
        threshold instead of its own (its own F1 optimum would fit a handful of rows).
    grid : sequence of float, optional
        Candidate thresholds.  Default: every distinct score value (the thresholds of
        scikit-learn's ``precision_recall_curve``) plus ``0.01, 0.02, ..., 0.99``, so a
        wide gap between negatives and positives is not cut at its upper edge.

    Returns
    -------
    numpy.ndarray of float64, shape (n_labels,)

    Raises
    ------
    DataError
        Invalid ``y_true``/``scores`` (see :func:`emo_utils.metrics.check_multilabel`) or
        ``grid``.
    ConfigError
        Unknown ``mode``, or ``min_positives`` not a non-negative integer.

    Notes
    -----
    Ties: among the candidates with the best F1 (within a relative ``1e-9``), the one
    closest to 0.5 wins, and the lower one when two are equally close.  F1 is constant
    between consecutive score values, so a perfectly separated label whose gap contains
    0.5 gets exactly 0.5.  With no positive at all every threshold scores F1 = 0 and the
    candidate closest to 0.5 is returned.
    """
    y, s = check_multilabel(y_true, scores)
    if mode not in THRESHOLD_MODES:
        raise ConfigError("threshold_mode", mode, f"must be one of {list(THRESHOLD_MODES)}")
    if isinstance(min_positives, bool) or not isinstance(min_positives, (int, np.integer)):
        raise ConfigError("min_positives", min_positives, "must be an integer >= 0")
    if min_positives < 0:
        raise ConfigError("min_positives", min_positives, "must be an integer >= 0")
    g = _check_grid(grid)
    n_labels = y.shape[1]
    global_t = _best_threshold(y.ravel(), s.ravel(), g)
    out = np.full(n_labels, global_t)
    if mode == "per_label":
        positives = y.sum(axis=0)
        for j in np.flatnonzero(positives >= max(min_positives, 1)):
            out[j] = _best_threshold(y[:, j], s[:, j], g)
    return out


def cross_fit_thresholds(
    y_true: np.ndarray, scores: np.ndarray, folds: Sequence[int] | np.ndarray, **kwargs
) -> np.ndarray:
    """Per-row thresholds tuned on every fold but the row's own.

    For each fold ``k``, :func:`tune_thresholds` runs on the rows of every other fold and
    its thresholds are applied to fold ``k``'s rows: the honest decision threshold of an
    OOF row, whose own label never chose it.  Score OOF F1 with it
    (``MULTILABEL_METRICS["f1_macro"](y, scores, thresholds=cross_fit_thresholds(...))``).

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (n_samples, n_labels)
    scores : array-like of float, shape (n_samples, n_labels)
    folds : array-like of int, shape (n_samples,)
        The fold of every row (the OOF ``fold`` column); at least two distinct folds.
    **kwargs
        ``mode``, ``min_positives``, ``grid``: passed to :func:`tune_thresholds`.

    Returns
    -------
    numpy.ndarray of float64, shape (n_samples, n_labels)

    Raises
    ------
    DataError
        Invalid arrays, ``folds`` of another length than the rows, or a single fold.
    """
    y, s = check_multilabel(y_true, scores)
    f = np.asarray(folds)
    if f.shape != (y.shape[0],):
        raise DataError(f"folds: expected shape ({y.shape[0]},) (one per row), got {f.shape}")
    fold_ids = np.unique(f)
    if fold_ids.size < 2:
        raise DataError(
            f"folds: cross-fitting needs at least 2 distinct folds, got {fold_ids.tolist()}"
        )
    out = np.empty(s.shape)
    for k in fold_ids:
        scored = f == k
        out[scored] = tune_thresholds(y[~scored], s[~scored], **kwargs)
    return out
