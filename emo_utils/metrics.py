"""Classification metrics, by name.

One registry, :data:`METRICS`, maps the metric names used in the configuration
(``train.monitor``, ``ensemble.metric``) to scikit-learn scoring functions on label
indices; a task (:mod:`emo_utils.tasks`) wraps them for fastai's training logs.

Examples
--------
>>> from emo_utils.metrics import score
>>> round(score("f1_macro", [0, 1, 1], [0, 1, 0]), 3)
0.667
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from .errors import ConfigError

__all__ = ["METRICS", "get_metric", "per_class_report", "score"]

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
