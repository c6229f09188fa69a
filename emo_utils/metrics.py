"""Classification metrics, by name.

Two registries, both of scikit-learn scoring functions:

* :data:`METRICS` maps the metric names used in the configuration (``train.monitor``,
  ``ensemble.metric``) to functions ``f(y_true, y_pred)`` on label indices (single-label
  classification); a task (:mod:`emo_utils.tasks`) wraps them for fastai's training logs.
* :data:`MULTILABEL_METRICS` maps multi-label metric names to functions
  ``f(y_true, scores, *, thresholds=0.5)`` on a 0/1 indicator matrix ``y_true`` of shape
  ``(n_samples, n_labels)`` and sigmoid probabilities ``scores`` of the same shape.

Examples
--------
>>> from emo_utils.metrics import score
>>> round(score("f1_macro", [0, 1, 1], [0, 1, 0]), 3)
0.667
>>> import numpy as np
>>> y = np.array([[1, 0], [0, 1], [1, 1]])
>>> s = np.array([[0.9, 0.2], [0.4, 0.7], [0.6, 0.3]])
>>> round(get_multilabel_metric("f1_micro")(y, s, thresholds=0.5), 3)  # tp 3, fp 0, fn 1
0.857
>>> get_multilabel_metric("map")(y, s)
1.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    label_ranking_average_precision_score,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from .errors import ConfigError, DataError

__all__ = [
    "METRICS",
    "MULTILABEL_METRICS",
    "THRESHOLD_METRICS",
    "check_multilabel",
    "check_thresholds",
    "get_metric",
    "get_multilabel_metric",
    "per_class_report",
    "per_label_report",
    "score",
]

#: name -> ``f(y_true, y_pred) -> float`` on class indices (scikit-learn).
METRICS: dict[str, Callable[..., float]] = {
    "accuracy": accuracy_score,
    "f1_macro": partial(f1_score, average="macro", zero_division=0),
    "f1_weighted": partial(f1_score, average="weighted", zero_division=0),
}


def get_metric(name: str) -> Callable[..., float]:
    """The scoring function called ``name``; :class:`~emo_utils.errors.ConfigError` if unknown.

    The function takes ``(y_true, y_pred)`` (class indices or labels) and returns a float.
    """
    try:
        return METRICS[name]
    except KeyError:
        raise ConfigError("metric", name, f"unknown metric; known: {sorted(METRICS)}") from None


def score(name: str, y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Score predicted class indices with the metric called ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`METRICS`.
    y_true, y_pred : sequence of int
        True and predicted class indices, same length.

    Returns
    -------
    float
    """
    return float(get_metric(name)(np.asarray(y_true), np.asarray(y_pred)))


def per_class_report(
    y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of every class.

    Parameters
    ----------
    y_true, y_pred : sequence of int
        True and predicted class indices.
    classes : sequence of str
        Class names, in index order.

    Returns
    -------
    dict
        ``{class name: {"precision", "recall", "f1", "support"}}`` in class order.
    """
    p, r, f, s = precision_recall_fscore_support(
        np.asarray(y_true),
        np.asarray(y_pred),
        labels=np.arange(len(classes)),
        zero_division=0,
    )
    return {
        name: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, name in enumerate(classes)
    }


# ---------------------------------------------------------------------------- multi-label
def check_multilabel(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a multi-label target matrix and its scores.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (n_samples, n_labels)
        Indicator matrix: ``y_true[i, j] == 1`` when sample ``i`` has label ``j``.
    scores : array-like of float, shape (n_samples, n_labels)
        Sigmoid probabilities in ``[0, 1]``.

    Returns
    -------
    y_true : numpy.ndarray of int64, shape (n_samples, n_labels)
    scores : numpy.ndarray of float64, shape (n_samples, n_labels)

    Raises
    ------
    DataError
        Not two-dimensional, empty, shapes differ, a target other than 0/1, or a score
        that is not a finite number in ``[0, 1]``.
    """
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 2 or 0 in y.shape:
        raise DataError(
            f"y_true: expected a non-empty 0/1 array of shape (n_samples, n_labels), "
            f"got shape {y.shape}"
        )
    if s.shape != y.shape:
        raise DataError(f"scores: shape {s.shape} differs from y_true's {y.shape}")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise DataError(f"y_true: targets must be 0 or 1, found {y[bad].flat[0].item()!r}")
    bad = ~(np.isfinite(s) & (s >= 0) & (s <= 1))
    if bad.any():
        raise DataError(
            f"scores: must be finite probabilities in [0, 1], found {s[bad][0].item()!r}"
        )
    return y.astype(np.int64), s


def check_thresholds(thresholds: float | np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Decision thresholds broadcastable against scores of ``shape`` ``(n_samples, n_labels)``.

    Parameters
    ----------
    thresholds : float or numpy.ndarray
        One threshold for every label, one per label ``(n_labels,)``, or one per sample and
        label ``(n_samples, n_labels)`` (what
        :func:`emo_utils.thresholds.cross_fit_thresholds` returns).
    shape : tuple of int
        ``(n_samples, n_labels)`` of the scores.

    Returns
    -------
    numpy.ndarray of float64
        ``thresholds`` as an array of shape ``()``, ``(n_labels,)`` or ``shape``.

    Raises
    ------
    DataError
        Another shape, or a threshold that is not finite.
    """
    t = np.asarray(thresholds, dtype=np.float64)
    if t.shape not in ((), (shape[1],), tuple(shape)):
        raise DataError(
            f"thresholds: expected a float, shape ({shape[1]},) or {tuple(shape)}, "
            f"got shape {t.shape}"
        )
    if not np.all(np.isfinite(t)):
        raise DataError(f"thresholds: must be finite, found {t[~np.isfinite(t)].flat[0].item()!r}")
    return t


def _label_columns(
    y: np.ndarray, pred: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[int] | None]:
    """``(y, pred, labels)`` that scikit-learn reads as one binary problem per label.

    scikit-learn takes an ``(n_samples, 1)`` indicator matrix for a binary column vector
    whose classes are 0 and 1; a single label is passed as 1-D arrays with ``labels=[1]``.
    """
    if y.shape[1] == 1:
        return y[:, 0], pred[:, 0], [1]
    return y, pred, None


def _f1_at(
    y_true: np.ndarray, scores: np.ndarray, *, thresholds: float | np.ndarray = 0.5, average: str
) -> float:
    """scikit-learn's ``f1_score`` of the decisions ``scores >= thresholds``."""
    y, s = check_multilabel(y_true, scores)
    t = check_thresholds(thresholds, s.shape)
    y, pred, labels = _label_columns(y, (s >= t).astype(np.int64))
    return float(f1_score(y, pred, labels=labels, average=average, zero_division=0))


def _labels_with(y: np.ndarray, *, negatives: bool) -> np.ndarray:
    """Indices of the labels with a positive (and, when ``negatives``, a negative) sample."""
    keep = y.any(axis=0)
    if negatives:
        keep &= ~y.all(axis=0)
    return np.flatnonzero(keep)


def _mean_average_precision(
    y_true: np.ndarray, scores: np.ndarray, *, thresholds: float | np.ndarray = 0.5
) -> float:
    """Mean over the labels with a positive sample of ``average_precision_score`` per label.

    Labels without any positive are left out (their average precision is undefined).
    ``thresholds`` is accepted for the registry's uniform signature and ignored.

    Raises
    ------
    DataError
        No label has a positive sample.
    """
    y, s = check_multilabel(y_true, scores)
    labels = _labels_with(y, negatives=False)
    if labels.size == 0:
        raise DataError("map: no label has a positive sample; mean average precision undefined")
    return float(np.mean([average_precision_score(y[:, j], s[:, j]) for j in labels]))


def _macro_roc_auc(
    y_true: np.ndarray, scores: np.ndarray, *, thresholds: float | np.ndarray = 0.5
) -> float:
    """Macro ROC AUC over the labels that have both positive and negative samples.

    The BirdCLEF rule: a label without positives (or without negatives) has no ROC AUC and
    is skipped, so it neither counts as 0 nor produces NaN.  ``thresholds`` is ignored.

    Raises
    ------
    DataError
        No label has both positive and negative samples.
    """
    y, s = check_multilabel(y_true, scores)
    labels = _labels_with(y, negatives=True)
    if labels.size == 0:
        raise DataError(
            "roc_auc: no label has both positive and negative samples; ROC AUC undefined"
        )
    return float(np.mean([roc_auc_score(y[:, j], s[:, j]) for j in labels]))


def _lwlrap(
    y_true: np.ndarray, scores: np.ndarray, *, thresholds: float | np.ndarray = 0.5
) -> float:
    """Label-weighted label-ranking average precision (Freesound Audio Tagging 2019).

    For every positive (sample, label) pair, the precision of the sample's label ranking at
    that label's rank, averaged over all positive pairs: scikit-learn's
    ``label_ranking_average_precision_score`` with ``sample_weight`` = each sample's number
    of positive labels.  Samples without positive labels are left out (weight 0).
    ``thresholds`` is ignored.

    Raises
    ------
    DataError
        No sample has a positive label.
    """
    y, s = check_multilabel(y_true, scores)
    weight = y.sum(axis=1)
    rows = weight > 0
    if not rows.any():
        raise DataError("lwlrap: no sample has a positive label; lwlrap undefined")
    return float(
        label_ranking_average_precision_score(y[rows], s[rows], sample_weight=weight[rows])
    )


#: name -> ``f(y_true, scores, *, thresholds=0.5) -> float`` on a 0/1 matrix ``y_true`` and
#: probabilities ``scores``, both ``(n_samples, n_labels)`` (scikit-learn).  ``thresholds``
#: (a float, ``(n_labels,)`` or ``(n_samples, n_labels)``) only matters to the F1 metrics,
#: which score the decisions ``scores >= thresholds``; the others rank the scores.
MULTILABEL_METRICS: dict[str, Callable[..., float]] = {
    "f1_macro": partial(_f1_at, average="macro"),
    "f1_micro": partial(_f1_at, average="micro"),
    "map": _mean_average_precision,
    "roc_auc": _macro_roc_auc,
    "lwlrap": _lwlrap,
}

#: The multi-label metrics that score decisions at thresholds (the rest rank the scores).
THRESHOLD_METRICS: frozenset[str] = frozenset({"f1_macro", "f1_micro"})


def get_multilabel_metric(name: str) -> Callable[..., float]:
    """The multi-label scoring function called ``name``.

    The function takes ``(y_true, scores, *, thresholds=0.5)`` and returns a float.

    Raises
    ------
    ConfigError
        ``name`` is not in :data:`MULTILABEL_METRICS`.
    """
    try:
        return MULTILABEL_METRICS[name]
    except KeyError:
        raise ConfigError(
            "metric", name, f"unknown multi-label metric; known: {sorted(MULTILABEL_METRICS)}"
        ) from None


def per_label_report(
    y_true: np.ndarray,
    scores: np.ndarray,
    thresholds: float | np.ndarray,
    classes: Sequence[str],
) -> dict[str, dict[str, float | int]]:
    """Precision, recall, F1, average precision and error counts of every label.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (n_samples, n_labels)
    scores : array-like of float, shape (n_samples, n_labels)
        Probabilities; a label is predicted when ``scores >= thresholds``.
    thresholds : float or numpy.ndarray, shape (n_labels,)
        Decision threshold of every label.
    classes : sequence of str
        Label names, in column order.

    Returns
    -------
    dict
        ``{label: {"precision", "recall", "f1", "ap", "support", "fp", "fn", "threshold"}}``
        in column order; ``support`` is the number of positives, ``fp``/``fn`` the false
        positives/negatives at the threshold, ``ap`` the average precision of the scores
        (NaN for a label without positives, where it is undefined).

    Raises
    ------
    DataError
        Invalid arrays, thresholds not a float or ``(n_labels,)``, or one name per label
        missing.
    """
    y, s = check_multilabel(y_true, scores)
    t = np.broadcast_to(check_thresholds(thresholds, (1, s.shape[1])), (s.shape[1],))
    if len(classes) != s.shape[1]:
        raise DataError(f"classes: {len(classes)} names for {s.shape[1]} labels")
    args = _label_columns(y, (s >= t).astype(np.int64))
    p, r, f, support = precision_recall_fscore_support(
        *args[:2], labels=args[2], average=None, zero_division=0
    )
    # (n_labels, 2, 2): [[tn, fp], [fn, tp]] per label
    confusion = multilabel_confusion_matrix(*args[:2], labels=args[2])
    ap = [
        average_precision_score(y[:, j], s[:, j]) if support[j] else np.nan
        for j in range(s.shape[1])
    ]
    return {
        name: {
            "precision": float(p[j]),
            "recall": float(r[j]),
            "f1": float(f[j]),
            "ap": float(ap[j]),
            "support": int(support[j]),
            "fp": int(confusion[j, 0, 1]),
            "fn": int(confusion[j, 1, 0]),
            "threshold": float(t[j]),
        }
        for j, name in enumerate(classes)
    }
