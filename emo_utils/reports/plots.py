"""Figure helpers and the evaluation plots of a run (plain arrays in, figures out).

Every plotting function takes plain arrays or DataFrames and returns a
:class:`matplotlib.figure.Figure` built with matplotlib's object API (no pyplot state), so
it works headless (no display, no backend switch) and a notebook shows the returned figure
inline.  Nothing here reads a run folder (:mod:`emo_utils.reports.run` does).

=================================  =======================================================
:func:`save_figure`                write a figure as PNG, atomically
:func:`plot_confusion_matrix`      counts and row-normalised confusion matrices side by side
:func:`classification_table`       per-class precision / recall / F1 / support (DataFrame)
:func:`plot_classification_table`  the same table as an image
:func:`plot_roc_curves`            one-vs-rest ROC curve and AUC of every class
:func:`plot_training_curves`       losses and metrics per epoch, one line per fold
:func:`plot_scores`                OOF score of every single model and every ensemble method
:func:`plot_embedding_map`         2-D PCA or t-SNE map of embeddings, coloured by class
=================================  =======================================================
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import ConfusionMatrixDisplay, auc, classification_report, roc_curve
from sklearn.preprocessing import StandardScaler

from ..errors import ConfigError, DataError
from ..fileio import atomic_path

__all__ = [
    "HORIZONTAL",
    "PROJECTIONS",
    "classification_table",
    "new_figure",
    "plot_classification_table",
    "plot_confusion_matrix",
    "plot_embedding_map",
    "plot_roc_curves",
    "plot_scores",
    "plot_training_curves",
    "save_figure",
]

_CMAP = "Blues"
#: Keyword arguments of ``Axes.boxplot`` that lay the boxes down (``orientation`` replaced
#: ``vert`` in matplotlib 3.10).
HORIZONTAL: dict[str, Any] = (
    {"orientation": "horizontal"}
    if tuple(int(p) for p in matplotlib.__version__.split(".")[:2]) >= (3, 10)
    else {"vert": False}
)


def new_figure(width: float, height: float) -> Figure:
    """An empty figure with constrained layout, detached from pyplot.

    Parameters
    ----------
    width, height : float
        Size in inches.

    Returns
    -------
    matplotlib.figure.Figure
    """
    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG file, atomically (temporary file + rename).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or os.PathLike
        Destination; its folder is created if needed.
    dpi : int, default 110
        Resolution.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


# ---------------------------------------------------------------------------- checks
def _labels(y: Sequence[int] | np.ndarray, n_classes: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{name}: expected a 1-d array of class indices, got {y.dtype} {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise DataError(
            f"{name}: class indices must be in [0, {n_classes}), got {y.min()}..{y.max()}"
        )
    return y


def _check_pair(
    y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    yt = _labels(y_true, len(classes), "y_true")
    yp = _labels(y_pred, len(classes), "y_pred")
    if yt.shape != yp.shape:
        raise DataError(f"y_true {yt.shape} and y_pred {yp.shape} differ in length")
    return yt, yp


# ---------------------------------------------------------------------------- evaluation
def plot_confusion_matrix(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    classes: Sequence[str],
    *,
    title: str = "",
) -> Figure:
    """Confusion matrix as counts (left) and normalised over each true class (right).

    Parameters
    ----------
    y_true, y_pred : sequence of int, shape (n,)
        True and predicted class indices.
    classes : sequence of str
        Class names in index order.
    title : str
        Figure title (e.g. the architecture).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    DataError
        Labels that are not class indices in ``[0, len(classes))``, or of unequal lengths.
    """
    yt, yp = _check_pair(y_true, y_pred, classes)
    n = len(classes)
    size = max(4.0, 0.55 * n + 2.5)
    fig = new_figure(2 * size + 1, size)
    axes = fig.subplots(1, 2)
    for ax, normalize, fmt, name in (
        (axes[0], None, "d", "counts"),
        (axes[1], "true", ".2f", "share of each true class (recall on the diagonal)"),
    ):
        ConfusionMatrixDisplay.from_predictions(
            yt,
            yp,
            labels=np.arange(n),
            display_labels=list(classes),
            normalize=normalize,
            values_format=fmt,
            cmap=_CMAP,
            xticks_rotation=45,
            ax=ax,
            colorbar=False,
        )
        ax.set_title(name)
    fig.suptitle(title or "confusion matrix")
    return fig


def classification_table(
    y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]
) -> pd.DataFrame:
    """Per-class precision, recall, F1 and support, then accuracy and macro/weighted averages.

    A thin wrapper over :func:`sklearn.metrics.classification_report` with
    ``output_dict=True``; classes never predicted score 0 (``zero_division=0``).

    Parameters
    ----------
    y_true, y_pred : sequence of int, shape (n,)
        True and predicted class indices.
    classes : sequence of str
        Class names in index order.

    Returns
    -------
    pandas.DataFrame
        Index: the class names, ``"accuracy"``, ``"macro avg"``, ``"weighted avg"``;
        columns ``precision, recall, f1-score, support``.
    """
    yt, yp = _check_pair(y_true, y_pred, classes)
    report = classification_report(
        yt,
        yp,
        labels=np.arange(len(classes)),
        target_names=list(classes),
        output_dict=True,
        zero_division=0,
    )
    accuracy = report.pop("accuracy", float(np.mean(yt == yp)) if len(yt) else 0.0)
    table = pd.DataFrame(report).T[["precision", "recall", "f1-score", "support"]]
    row = pd.DataFrame(
        {"precision": np.nan, "recall": np.nan, "f1-score": accuracy, "support": len(yt)},
        index=["accuracy"],
    )
    classes_part = table.loc[list(classes)]
    averages = table.drop(index=list(classes))
    table = pd.concat([classes_part, row, averages])
    table["support"] = table["support"].astype(int)
    return table


def plot_classification_table(table: pd.DataFrame, *, title: str = "") -> Figure:
    """Render a :func:`classification_table` as an image (F1 cells shaded by value).

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`classification_table`.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    n_rows = len(table)
    fig = new_figure(6.5, 0.32 * n_rows + 1.0)
    ax = fig.add_subplot()
    ax.axis("off")
    cells = [
        [
            ("" if pd.isna(v) else (f"{int(v)}" if col == "support" else f"{v:.3f}"))
            for col, v in row.items()
        ]
        for _, row in table.iterrows()
    ]
    shade = []
    cmap = matplotlib.colormaps[_CMAP]
    for _, row in table.iterrows():
        f1 = row["f1-score"]
        colour = "white" if pd.isna(f1) else cmap(0.15 + 0.6 * float(f1))
        shade.append(["white", "white", colour, "white"])
    tab = ax.table(
        cellText=cells,
        rowLabels=[str(i) for i in table.index],
        colLabels=list(table.columns),
        cellColours=shade,
        loc="center",
    )
    tab.scale(1.0, 1.2)
    ax.set_title(title or "per-class scores")
    return fig


def plot_roc_curves(
    y_true: Sequence[int],
    proba: np.ndarray,
    classes: Sequence[str],
    *,
    title: str = "",
) -> Figure:
    """One-vs-rest ROC curve and AUC of every class (:func:`sklearn.metrics.roc_curve`).

    Parameters
    ----------
    y_true : sequence of int, shape (n,)
        True class indices.
    proba : numpy.ndarray, shape (n, n_classes)
        Class probabilities (or any scores; higher means more likely).
    classes : sequence of str
        Class names in index order.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Classes without both positive and negative samples are listed as "no curve".
    """
    proba = np.asarray(proba, dtype=float)
    yt = _labels(y_true, len(classes), "y_true")
    if proba.shape != (len(yt), len(classes)):
        raise DataError(f"proba: expected shape {(len(yt), len(classes))}, got {proba.shape}")
    fig = new_figure(6.5, 5.5)
    ax = fig.add_subplot()
    aucs = []
    colours = matplotlib.colormaps["tab10"]
    for i, name in enumerate(classes):
        positive = yt == i
        if positive.all() or not positive.any():
            ax.plot([], [], " ", label=f"{name}: no curve (one class only)")
            continue
        fpr, tpr, _ = roc_curve(positive, proba[:, i])
        score = auc(fpr, tpr)
        aucs.append(score)
        colour = colours(i % 10)
        ax.plot(fpr, tpr, color=colour, lw=1.5, label=f"{name} (AUC {score:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance (AUC 0.5)")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate")
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize="small")
    macro = f"macro AUC {np.mean(aucs):.3f}" if aucs else "no AUC"
    ax.set_title(f"{title + ': ' if title else ''}one-vs-rest ROC, {macro}")
    return fig


def plot_training_curves(logs: pd.DataFrame, *, title: str = "") -> Figure:
    """Loss and every metric per epoch, one line per fold.

    Parameters
    ----------
    logs : pandas.DataFrame
        From :func:`emo_utils.reports.read_training_logs` (one architecture, or several: then each
        architecture gets its own row of panels).
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        First column: training (solid) and validation (dashed) loss; then one column per
        metric (validation).
    """
    if logs.empty:
        raise DataError("plot_training_curves: no training log rows")
    fixed = {"arch", "fold", "epoch", "train_loss", "valid_loss", "seconds"}
    metrics = [c for c in logs.columns if c not in fixed and pd.api.types.is_numeric_dtype(logs[c])]
    archs = list(dict.fromkeys(logs["arch"])) if "arch" in logs.columns else [""]
    n_cols = 1 + len(metrics)
    fig = new_figure(4.0 * n_cols, 3.3 * len(archs))
    axes = np.atleast_2d(fig.subplots(len(archs), n_cols, squeeze=False))
    colours = matplotlib.colormaps["tab10"]
    for r, arch in enumerate(archs):
        part = logs[logs["arch"] == arch] if arch else logs
        for fold, rows in part.groupby("fold"):
            colour = colours(int(fold) % 10)
            rows = rows.sort_values("epoch")
            for col, style in (("train_loss", "-"), ("valid_loss", "--")):
                if col in rows:
                    axes[r, 0].plot(
                        rows["epoch"],
                        rows[col],
                        style,
                        color=colour,
                        label=f"fold {fold} {col.split('_')[0]}",
                    )
            for c, metric in enumerate(metrics, start=1):
                axes[r, c].plot(
                    rows["epoch"], rows[metric], "-o", ms=3, color=colour, label=f"fold {fold}"
                )
        axes[r, 0].set(
            title=f"{arch + ': ' if arch else ''}loss (solid train, dashed valid)", xlabel="epoch"
        )
        for c, metric in enumerate(metrics, start=1):
            axes[r, c].set(title=f"{arch + ': ' if arch else ''}{metric}", xlabel="epoch")
        for ax in axes[r]:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[r, -1].legend(fontsize="x-small", loc="best")
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------- scores
def plot_scores(
    table: pd.DataFrame, *, metric: str, chosen: str | None = None, title: str = ""
) -> Figure:
    """Horizontal bar chart of the OOF score of every single model and ensemble method.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``name``, ``kind`` (``"model"`` or ``"ensemble"``) and ``metric``, e.g. the
        rows of ``ensemble_report.json``.
    metric : str
        The score column to plot.
    chosen : str, optional
        The ensemble method that writes the submission; its bar is outlined and labelled.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Best score on top.

    Raises
    ------
    DataError
        ``table`` lacks ``name``, ``kind`` or ``metric``.
    """
    missing = [c for c in ("name", "kind", metric) if c not in table.columns]
    if missing:
        raise DataError(f"plot_scores: missing column(s) {missing}; found {list(table.columns)}")
    rows = table.sort_values(metric, ascending=True)
    fig = new_figure(7.0, 0.4 * len(rows) + 1.5)
    ax = fig.add_subplot()
    colour = {"model": "tab:blue", "ensemble": "tab:orange"}
    labels = []
    for name, kind in zip(rows["name"], rows["kind"], strict=True):
        mark = ", submission" if kind == "ensemble" and name == chosen else ""
        labels.append(f"{name} ({kind}{mark})")
    bars = ax.barh(labels, rows[metric], color=[colour.get(k, "tab:grey") for k in rows["kind"]])
    for bar, name, kind in zip(bars, rows["name"], rows["kind"], strict=True):
        if kind == "ensemble" and name == chosen:
            bar.set_edgecolor("black")
            bar.set_linewidth(2)
    ax.bar_label(bars, fmt="%.4f", padding=3, fontsize="small")
    low, high = float(rows[metric].min()), float(rows[metric].max())
    ax.set_xlim(max(0.0, low - 0.1 * (1 - low) - 0.05), min(1.05, high + 0.08))
    ax.set(
        xlabel=f"out-of-fold {metric}",
        title=title or f"OOF {metric}: single models and ensembles",
    )
    return fig


# ---------------------------------------------------------------------------- embeddings
def _pca(x: np.ndarray, seed: int) -> np.ndarray:
    return PCA(n_components=2, random_state=seed).fit_transform(x)


def _tsne(x: np.ndarray, seed: int) -> np.ndarray:
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    reduced = PCA(n_components=min(50, *x.shape), random_state=seed).fit_transform(x)
    # Barnes-Hut pays off only for large sets; exact t-SNE is much faster below ~1000 points.
    method = "exact" if len(x) <= 1000 else "barnes_hut"
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", method=method, random_state=seed)
    return tsne.fit_transform(reduced)


#: Name -> ``fn(x (n, d), seed) -> (n, 2)``: the 2-D maps of :func:`plot_embedding_map`.
PROJECTIONS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {"pca": _pca, "tsne": _tsne}


def plot_embedding_map(
    embeddings: np.ndarray,
    labels: Sequence[int],
    classes: Sequence[str],
    *,
    method: str = "pca",
    highlight: np.ndarray | None = None,
    seed: int = 0,
    title: str = "",
) -> Figure:
    """2-D map of per-clip embeddings, coloured by class.

    Parameters
    ----------
    embeddings : numpy.ndarray, shape (n, d)
        From :func:`emo_utils.infer.embed.embed`; standardised per dimension before projecting.
    labels : sequence of int, shape (n,)
        True class index of every clip.
    classes : sequence of str
        Class names in index order.
    method : {"pca", "tsne"}
        Name in :data:`PROJECTIONS`; PCA is fast and deterministic, t-SNE separates clusters
        better but is slower.
    highlight : numpy.ndarray of bool, shape (n,), optional
        Clips to draw as solid dots (e.g. the validation clips the model never saw); the
        others are drawn as faint small dots.
    seed : int
        Random state of the projection.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ConfigError
        ``method`` is not in :data:`PROJECTIONS`.
    DataError
        Fewer than 3 clips, or embeddings and labels of different lengths.
    """
    if method not in PROJECTIONS:
        raise ConfigError("method", method, f"unknown projection; known: {sorted(PROJECTIONS)}")
    x = np.asarray(embeddings, dtype=np.float64)
    y = _labels(labels, len(classes), "labels")
    if x.ndim != 2 or len(x) != len(y):
        raise DataError(f"embeddings {x.shape} need one row per label ({len(y)})")
    if len(x) < 3:
        raise DataError(f"plot_embedding_map: needs at least 3 clips, got {len(x)}")
    xy = PROJECTIONS[method](StandardScaler().fit_transform(x), seed)
    solid = np.ones(len(x), bool) if highlight is None else np.asarray(highlight, bool)
    fig = new_figure(7.5, 6.0)
    ax = fig.add_subplot()
    colours = matplotlib.colormaps["tab10"]
    for i, name in enumerate(classes):
        colour = colours(i % 10)
        mine = y == i
        if (mine & ~solid).any():
            ax.scatter(*xy[mine & ~solid].T, s=8, alpha=0.25, color=colour)
        ax.scatter(
            *xy[mine & solid].T, s=22, alpha=0.9, color=colour, label=f"{name} ({int(mine.sum())})"
        )
    ax.legend(fontsize="small", markerscale=1.2, loc="best")
    ax.set(xlabel=f"{method} 1", ylabel=f"{method} 2")
    note = "" if highlight is None else " (solid: validation clips, faint: training clips)"
    ax.set_title((title or f"embeddings, {method}") + note, fontsize="medium")
    return fig
