"""Tables and plots of multi-label predictions (plain arrays in, figures out).

Every function takes ``y_true (n, L)`` (0/1 label presence), ``scores (n, L)``
(probabilities, or any scores where higher means more likely) and ``classes`` (the ``L``
label names, column order), plus the tuned per-label ``thresholds`` where a decision is
shown: a clip is predicted to hold label ``j`` when ``scores[:, j] >= thresholds[j]``, the
convention of :func:`sklearn.metrics.precision_recall_curve`.  Numbers come from
scikit-learn's metrics; figures are built like :mod:`emo_utils.reports.plots` (object API,
no pyplot state) and saved with :func:`emo_utils.reports.plots.save_figure`.

================================  ========================================================
:func:`per_label_table`           precision, recall, F1, AP, support, FP, FN per label
:func:`plot_per_label_table`      the same table as an image (F1 cells shaded)
:func:`plot_pr_curves`            precision-recall curve per label, tuned threshold marked
:func:`plot_threshold_f1`         F1 against the threshold per label, tuned threshold marked
:func:`plot_label_cooccurrence`   label x label counts of clips holding both
:func:`plot_label_confusion`      TP / FN and TN / FP bars of every label
:func:`label_set_names`           the label set of every clip, to colour an embedding map
:func:`label_set_codes`           the same as colour indices and names, most frequent first
================================  ========================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from sklearn.metrics import (
    average_precision_score,
    multilabel_confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
)

from ..errors import ConfigError, DataError
from .plots import new_figure

__all__ = [
    "NO_LABEL",
    "OTHER_SETS",
    "label_set_codes",
    "label_set_names",
    "per_label_table",
    "plot_label_confusion",
    "plot_label_cooccurrence",
    "plot_per_label_table",
    "plot_pr_curves",
    "plot_threshold_f1",
]

#: Name :func:`label_set_names` gives a clip without any label.
NO_LABEL = "(none)"
#: Name :func:`label_set_names` gives the clips of the rarest label sets.
OTHER_SETS = "other"
#: :func:`per_label_table`'s note for a label without positive clips.
_NO_POSITIVES = "no positive clip: AP undefined"


# ---------------------------------------------------------------------------- checks
def _targets(y_true: ArrayLike, classes: Sequence[str]) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 2 or y.shape[1] != len(classes):
        raise DataError(
            f"y_true: expected shape (n_clips, {len(classes)}) (one 0/1 column per class), "
            f"got {y.shape}"
        )
    if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
        raise DataError(f"y_true: must hold only 0 and 1, got dtype {y.dtype}")
    return y.astype(np.int64)


def _scores(y: np.ndarray, scores: ArrayLike) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != y.shape:
        raise DataError(f"scores: expected shape {y.shape} (like y_true), got {s.shape}")
    if not np.isfinite(s).all():
        raise DataError("scores: hold NaN or infinite values")
    return s


def _thresholds(thresholds: ArrayLike | float, n_labels: int) -> np.ndarray:
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim == 0:
        t = np.full(n_labels, float(t))
    if t.shape != (n_labels,) or not np.isfinite(t).all():
        raise DataError(
            f"thresholds: expected {n_labels} finite values (one per class) or one number, "
            f"got shape {t.shape}"
        )
    return t


def _check(
    y_true: ArrayLike, scores: ArrayLike, thresholds: ArrayLike | float, classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = _targets(y_true, classes)
    return y, _scores(y, scores), _thresholds(thresholds, y.shape[1])


def _colours(n: int) -> list[tuple[float, ...]]:
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


# ---------------------------------------------------------------------------- table
def per_label_table(
    y_true: ArrayLike, scores: ArrayLike, thresholds: ArrayLike | float, classes: Sequence[str]
) -> pd.DataFrame:
    """Per-label scores at the tuned thresholds, and the threshold-free average precision.

    Precision, recall and F1 come from
    :func:`sklearn.metrics.precision_recall_fscore_support` with ``zero_division=0`` (a
    label never predicted, or never present, scores 0, not NaN); FP and FN from
    :func:`sklearn.metrics.multilabel_confusion_matrix`; AP from
    :func:`sklearn.metrics.average_precision_score` on the scores.

    Parameters
    ----------
    y_true : array-like of 0/1, shape (n, L)
        True label presence.
    scores : array-like, shape (n, L)
        Probability (or score) of every label.
    thresholds : array-like, shape (L,), or float
        Tuned threshold of every label (one number: the same for all).
    classes : sequence of str
        The ``L`` label names, column order.

    Returns
    -------
    pandas.DataFrame
        Index: the label names; columns ``precision, recall, f1, ap`` (float), ``support,
        fp, fn`` (int), ``threshold`` (float) and ``note`` (str).  A label without positive
        clips has ``ap`` NaN (scikit-learn would report a meaningless 0) and its ``note``
        says so; every other cell is a number.

    Raises
    ------
    DataError
        Arrays of mismatched shapes, ``y_true`` not 0/1, or non-finite scores.
    """
    y, s, t = _check(y_true, scores, thresholds, classes)
    predicted = (s >= t).astype(np.int64)
    labels = np.arange(y.shape[1])
    precision, recall, f1, support = precision_recall_fscore_support(
        y, predicted, labels=labels, average=None, zero_division=0
    )
    confusion = multilabel_confusion_matrix(y, predicted, labels=labels)  # [[tn, fp], [fn, tp]]
    has_positives = y.sum(axis=0) > 0
    ap = np.array(
        [average_precision_score(y[:, j], s[:, j]) if has_positives[j] else np.nan for j in labels]
    )
    return pd.DataFrame(
        {
            "precision": precision.astype(float),
            "recall": recall.astype(float),
            "f1": f1.astype(float),
            "ap": ap,
            "support": support.astype(np.int64),
            "fp": confusion[:, 0, 1].astype(np.int64),
            "fn": confusion[:, 1, 0].astype(np.int64),
            "threshold": t,
            "note": np.where(has_positives, "", _NO_POSITIVES),
        },
        index=pd.Index([str(c) for c in classes], name="label"),
    )


#: Columns of :func:`per_label_table` shown by :func:`plot_per_label_table`, and how.
_TABLE_FORMATS = {
    "precision": "{:.3f}",
    "recall": "{:.3f}",
    "f1": "{:.3f}",
    "ap": "{:.3f}",
    "support": "{:.0f}",
    "fp": "{:.0f}",
    "fn": "{:.0f}",
    "threshold": "{:.2f}",
}


def plot_per_label_table(table: pd.DataFrame, *, title: str = "") -> Figure:
    """Render a :func:`per_label_table` as an image, F1 cells shaded by value.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`per_label_table` (index: the labels).
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One axes holding a table: one row per label plus a ``macro`` row (precision, recall
        and F1 averaged over every label, as ``f1_macro``; AP over the labels with positive
        clips, as ``map``; support, FP and FN summed), one column per entry of the table
        but ``note`` (an undefined AP is shown as ``-``).

    Raises
    ------
    DataError
        ``table`` lacks one of the columns of :func:`per_label_table`.
    """
    missing = [c for c in _TABLE_FORMATS if c not in table.columns]
    if missing:
        raise DataError(f"plot_per_label_table: missing column(s) {missing}; use per_label_table")
    shown = table[list(_TABLE_FORMATS)]
    macro = {c: float(shown[c].mean()) for c in ("precision", "recall", "f1")}
    positives = shown["ap"].dropna()  # labels with positive clips
    macro["ap"] = float(positives.mean()) if len(positives) else np.nan
    macro |= {c: int(shown[c].sum()) for c in ("support", "fp", "fn")}
    macro["threshold"] = np.nan
    rows = [*((str(i), row) for i, row in shown.iterrows()), ("macro", pd.Series(macro))]
    cells = [
        ["-" if pd.isna(row[c]) else fmt.format(float(row[c])) for c, fmt in _TABLE_FORMATS.items()]
        for _, row in rows
    ]
    cmap = matplotlib.colormaps["Blues"]
    f1_col = list(_TABLE_FORMATS).index("f1")
    shade = [["white"] * len(_TABLE_FORMATS) for _ in rows]
    for colours, (_, row) in zip(shade, rows, strict=True):
        if not pd.isna(row["f1"]):
            colours[f1_col] = cmap(0.15 + 0.6 * float(row["f1"]))
    fig = new_figure(8.0, 0.32 * len(rows) + 1.0)
    ax = fig.add_subplot()
    ax.axis("off")
    tab = ax.table(
        cellText=cells,
        rowLabels=[name for name, _ in rows],
        colLabels=list(_TABLE_FORMATS),
        cellColours=shade,
        loc="center",
    )
    tab.scale(1.0, 1.2)
    ax.set_title(
        f"{title + ': ' if title else ''}per-label scores at the thresholds", fontsize="medium"
    )
    return fig


# ---------------------------------------------------------------------------- curves
def _operating_points(
    y: np.ndarray, s: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 of every label at its threshold (as :func:`per_label_table`)."""
    predicted = (s >= t).astype(np.int64)
    p, r, f, _ = precision_recall_fscore_support(
        y, predicted, labels=np.arange(y.shape[1]), average=None, zero_division=0
    )
    return p, r, f


def plot_pr_curves(
    y_true: ArrayLike,
    scores: ArrayLike,
    thresholds: ArrayLike | float,
    classes: Sequence[str],
    *,
    title: str = "",
) -> Figure:
    """Precision-recall curve of every label, with the tuned threshold's operating point.

    Parameters
    ----------
    y_true : array-like of 0/1, shape (n, L)
        True label presence.
    scores : array-like, shape (n, L)
        Probability (or score) of every label.
    thresholds : array-like, shape (L,), or float
        Tuned threshold of every label.
    classes : sequence of str
        The ``L`` label names, column order.
    title : str
        Figure title (e.g. the architecture).

    Returns
    -------
    matplotlib.figure.Figure
        One axes: one step line per label with positives
        (:func:`sklearn.metrics.precision_recall_curve`), labelled with its AP, and one dot
        per such label at the precision and recall of ``scores >= threshold``; a label
        without positive clips gets only a "no curve" legend entry.

    Raises
    ------
    DataError
        Arrays of mismatched shapes, ``y_true`` not 0/1, or non-finite scores.
    """
    y, s, t = _check(y_true, scores, thresholds, classes)
    at_p, at_r, _ = _operating_points(y, s, t)
    fig = new_figure(7.0, 5.5)
    ax = fig.add_subplot()
    aps = []
    for j, (name, colour) in enumerate(zip(classes, _colours(len(classes)), strict=True)):
        if not y[:, j].any():
            ax.plot([], [], " ", label=f"{name}: no curve (no positive clip)")
            continue
        precision, recall, _ = precision_recall_curve(y[:, j], s[:, j])
        ap = average_precision_score(y[:, j], s[:, j])
        aps.append(ap)
        ax.plot(
            recall,
            precision,
            drawstyle="steps-post",
            color=colour,
            lw=1.5,
            label=f"{name} (AP {ap:.3f}, t={t[j]:.2f})",
        )
        ax.scatter(
            [at_r[j]], [at_p[j]], s=45, color=colour, edgecolors="black", zorder=3, linewidths=0.8
        )
    ax.set(xlim=(0, 1.01), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
    ax.legend(loc="lower left", fontsize="small")
    macro = f"macro AP {np.mean(aps):.3f}" if aps else "no AP"
    ax.set_title(
        f"{title + ': ' if title else ''}precision-recall per label, {macro} "
        "(dots: tuned thresholds)",
        fontsize="medium",
    )
    return fig


def plot_threshold_f1(
    y_true: ArrayLike,
    scores: ArrayLike,
    thresholds: ArrayLike | float,
    classes: Sequence[str],
    *,
    title: str = "",
) -> Figure:
    """F1 of every label against its decision threshold, with the tuned threshold marked.

    F1 at every distinct score comes from :func:`sklearn.metrics.precision_recall_curve`
    (a clip is positive when its score is ``>=`` the threshold), so the step curve is exact
    between scores.

    Parameters
    ----------
    y_true : array-like of 0/1, shape (n, L)
        True label presence.
    scores : array-like, shape (n, L)
        Probability (or score) of every label.
    thresholds : array-like, shape (L,), or float
        Tuned threshold of every label.
    classes : sequence of str
        The ``L`` label names, column order.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One axes: one F1 line per label with positives and one dot at its tuned threshold
        (legend: best F1 and F1 at the tuned threshold); a label without positive clips
        gets only a "no curve" legend entry.

    Raises
    ------
    DataError
        Arrays of mismatched shapes, ``y_true`` not 0/1, or non-finite scores.
    """
    y, s, t = _check(y_true, scores, thresholds, classes)
    _, _, at_f1 = _operating_points(y, s, t)
    fig = new_figure(7.0, 5.0)
    ax = fig.add_subplot()
    for j, (name, colour) in enumerate(zip(classes, _colours(len(classes)), strict=True)):
        if not y[:, j].any():
            ax.plot([], [], " ", label=f"{name}: no curve (no positive clip)")
            continue
        precision, recall, cuts = precision_recall_curve(y[:, j], s[:, j])
        precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
        with np.errstate(divide="ignore", invalid="ignore"):
            f1 = np.where(
                precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0
            )
        ax.plot(
            cuts,
            f1,
            drawstyle="steps-pre",
            color=colour,
            lw=1.5,
            label=f"{name} (best F1 {f1.max():.3f}; at t={t[j]:.2f}: {at_f1[j]:.3f})",
        )
        ax.scatter(
            [t[j]], [at_f1[j]], s=45, color=colour, edgecolors="black", zorder=3, linewidths=0.8
        )
    low = min(0.0, float(s.min()), float(t.min()))
    high = max(1.0, float(s.max()), float(t.max()))
    ax.set(xlim=(low, high), ylim=(0, 1.02), xlabel="threshold (score >= threshold)", ylabel="F1")
    ax.legend(loc="best", fontsize="small")
    ax.set_title(
        f"{title + ': ' if title else ''}F1 against threshold (dots: tuned thresholds)",
        fontsize="medium",
    )
    return fig


# ---------------------------------------------------------------------------- label structure
def plot_label_cooccurrence(
    y_true: ArrayLike, classes: Sequence[str], *, title: str = ""
) -> Figure:
    """Heatmap of how many clips hold each pair of labels, with the counts written in.

    Parameters
    ----------
    y_true : array-like of 0/1, shape (n, L)
        True label presence.
    classes : sequence of str
        The ``L`` label names, column order.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One axes with an ``L x L`` image of ``y_true.T @ y_true``: the diagonal holds each
        label's clip count, cell ``(i, j)`` the clips holding both ``i`` and ``j``.

    Raises
    ------
    DataError
        ``y_true`` not a 0/1 array with one column per class.
    """
    y = _targets(y_true, classes)
    counts = y.T @ y
    n = len(classes)
    size = max(4.0, 0.55 * n + 2.5)
    fig = new_figure(size + 1.0, size)
    ax = fig.add_subplot()
    image = ax.imshow(counts, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="clips")
    threshold = counts.max() / 2 if counts.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                f"{counts[i, j]:d}",
                ha="center",
                va="center",
                fontsize="small",
                color="white" if counts[i, j] > threshold else "black",
            )
    ax.set_xticks(np.arange(n), labels=list(classes), rotation=45, ha="right")
    ax.set_yticks(np.arange(n), labels=list(classes))
    ax.set_title(
        title or f"label co-occurrence ({len(y)} clips; diagonal: clips per label)",
        fontsize="medium",
    )
    return fig


def plot_label_confusion(
    y_true: ArrayLike,
    scores: ArrayLike,
    thresholds: ArrayLike | float,
    classes: Sequence[str],
    *,
    title: str = "",
) -> Figure:
    """Per-label outcome counts at the tuned thresholds, as stacked horizontal bars.

    Counts from :func:`sklearn.metrics.multilabel_confusion_matrix`.  Left: each label's
    positive clips split into found (TP) and missed (FN); right: its negative clips split
    into rejected (TN) and false alarms (FP).  Two panels, because TN usually dwarfs the rest.

    Parameters
    ----------
    y_true : array-like of 0/1, shape (n, L)
        True label presence.
    scores : array-like, shape (n, L)
        Probability (or score) of every label.
    thresholds : array-like, shape (L,), or float
        Tuned threshold of every label.
    classes : sequence of str
        The ``L`` label names, column order.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes with ``L`` bars per segment each (``2 L`` patches per axes; TP, FN on the
        first, TN, FP on the second), counts written inside non-empty segments, and one
        figure legend (TP, FN, TN, FP) below them.

    Raises
    ------
    DataError
        Arrays of mismatched shapes, ``y_true`` not 0/1, or non-finite scores.
    """
    y, s, t = _check(y_true, scores, thresholds, classes)
    predicted = (s >= t).astype(np.int64)
    confusion = multilabel_confusion_matrix(y, predicted, labels=np.arange(y.shape[1]))
    tn, fp, fn, tp = (confusion[:, i, j] for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)))
    names = [str(c) for c in classes]
    rows = np.arange(len(names))[::-1]  # first label on top
    fig = new_figure(11.0, 0.4 * len(names) + 1.8)
    axes = fig.subplots(1, 2, sharey=True)
    panels = (
        (axes[0], (("TP", tp, "tab:green"), ("FN", fn, "tab:orange")), "positive clips"),
        (axes[1], (("TN", tn, "tab:blue"), ("FP", fp, "tab:red")), "negative clips"),
    )
    for ax, segments, what in panels:
        left = np.zeros(len(names), dtype=np.int64)
        for name, values, colour in segments:
            bars = ax.barh(rows, values, left=left, color=colour, label=name)
            ax.bar_label(
                bars,
                labels=[str(v) if v else "" for v in values],
                label_type="center",
                fontsize="small",
            )
            left = left + values
        ax.set(xlabel=f"{what} per label", title=" / ".join(seg[0] for seg in segments))
    axes[0].set_yticks(rows, labels=names)
    handles = [h for ax in axes for h in ax.get_legend_handles_labels()[0]]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize="small")
    fig.suptitle(title or "per-label outcomes at the tuned thresholds")
    return fig


def label_set_names(y_true: ArrayLike, classes: Sequence[str], *, max_sets: int = 8) -> list[str]:
    """Name of every clip's label set, with the rarest sets grouped as ``"other"``.

    For colouring an embedding map by label set: ``codes, names = pandas.factorize(...)``
    gives :func:`emo_utils.reports.plots.plot_embedding_map` its labels and classes.

    Parameters
    ----------
    y_true : array-like of 0/1, shape (n, L)
        True label presence.
    classes : sequence of str
        The ``L`` label names, column order.
    max_sets : int, default 8
        How many of the most frequent label sets keep their own name (ties: the name that
        sorts first); the clips of every other set are named :data:`OTHER_SETS`.

    Returns
    -------
    list of str, length n
        The clip's labels joined by ``"+"`` in ``classes`` order (``"Music+Speech"``),
        :data:`NO_LABEL` for a clip without any label, or :data:`OTHER_SETS`.

    Raises
    ------
    ConfigError
        ``max_sets`` is not an integer >= 1.
    DataError
        ``y_true`` not a 0/1 array with one column per class.

    Examples
    --------
    >>> label_set_names([[1, 1], [0, 1], [0, 1], [0, 0]], ["Music", "Speech"], max_sets=2)
    ['other', 'Speech', 'Speech', '(none)']
    """
    if not isinstance(max_sets, int) or isinstance(max_sets, bool) or max_sets < 1:
        raise ConfigError("max_sets", max_sets, "must be an integer >= 1")
    y = _targets(y_true, classes).astype(bool)
    names = np.array([str(c) for c in classes], dtype=object)
    sets = ["+".join(names[row]) if row.any() else NO_LABEL for row in y]
    counts = pd.Series(sets, dtype=object).value_counts()
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = {name for name, _ in ranked[:max_sets]}
    return [name if name in kept else OTHER_SETS for name in sets]


def label_set_codes(
    y_true: ArrayLike, classes: Sequence[str], *, max_sets: int = 8
) -> tuple[np.ndarray, list[str]]:
    """The label set of every clip as an index into set names, for an embedding map.

    :func:`emo_utils.reports.plots.plot_embedding_map` takes them as its ``labels`` and
    ``classes``; with the default ``max_sets`` there are at most 10 names (the 8 most
    frequent sets, :data:`NO_LABEL`, :data:`OTHER_SETS`), one colour each.

    Parameters
    ----------
    y_true : array-like of 0/1, shape (n, L)
        True label presence.
    classes : sequence of str
        The ``L`` label names, column order.
    max_sets : int, default 8
        See :func:`label_set_names`.

    Returns
    -------
    codes : numpy.ndarray of int64, shape (n,)
        Index of every clip's set name in ``names``.
    names : list of str
        The set names of :func:`label_set_names`, most frequent first (ties by name),
        :data:`OTHER_SETS` last.

    Raises
    ------
    ConfigError, DataError
        As :func:`label_set_names`.

    Examples
    --------
    >>> codes, names = label_set_codes([[1, 1], [0, 1], [0, 1], [0, 0]], ["Music", "Speech"])
    >>> names, codes.tolist()
    (['Speech', '(none)', 'Music+Speech'], [2, 0, 0, 1])
    """
    sets = label_set_names(y_true, classes, max_sets=max_sets)
    counts = pd.Series(sets, dtype=object).value_counts()
    names = sorted(counts.index, key=lambda n: (n == OTHER_SETS, -counts[n], n))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[s] for s in sets], dtype=np.int64), names
