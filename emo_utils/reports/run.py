"""Reports and plots: how a run did, and what a competition's data looks like.

Every plotting function takes plain arrays or DataFrames and returns a
:class:`matplotlib.figure.Figure` built with matplotlib's object API (no pyplot state), so
it works headless (no display, no backend switch) and a notebook shows the returned figure
inline.  :func:`save_figure` writes a figure as PNG atomically.

Run reports (:func:`make_run_report` writes all of them into ``RUN/report/``):

=============================  ===========================================================
:func:`plot_confusion_matrix`  counts and row-normalised confusion matrices side by side
:func:`classification_table`   per-class precision / recall / F1 / support (DataFrame)
:func:`plot_classification_table`  the same table as an image
:func:`plot_roc_curves`        one-vs-rest ROC curve and AUC of every class
:func:`read_training_logs`     every fold's ``log.csv`` as one long DataFrame
:func:`plot_training_curves`   losses and metrics per epoch, one line per fold
:func:`plot_scores`            OOF score of every single model and every ensemble method
:func:`embed`                  pooled features of a trained network, ``(n, d)``
:func:`plot_embedding_map`     2-D PCA or t-SNE map of embeddings, coloured by class
=============================  ===========================================================

Exploratory data analysis (used by the EDA notebook):

=============================  ===========================================================
:func:`dataset_overview`       per file: duration, rate, channels, format, label (headers only)
:func:`plot_class_balance`     clips per class
:func:`plot_durations`         duration histogram per split and per class
:func:`plot_formats`           sample rates, formats and channel counts
:func:`signal_statistics`      RMS loudness and zero-crossing rate of a sample of clips
:func:`plot_signal_statistics` their distributions per class
:func:`plot_channel_grid`      example images per class, every channel shown
=============================  ===========================================================
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import ConfusionMatrixDisplay, auc, classification_report, roc_curve
from sklearn.preprocessing import StandardScaler

from ..errors import AudioError, ConfigError, DataError, EmoUtilsWarning, TrainingError
from ..fileio import atomic_path, read_csv, read_json, write_csv, write_text

if TYPE_CHECKING:
    import torch

    from ..features.store import FeatureStore
    from ..data.competition import Competition
    from ..config import Config

__all__ = [
    "PROJECTIONS",
    "REPORT_DIR",
    "classification_table",
    "dataset_overview",
    "embed",
    "make_run_report",
    "plot_channel_grid",
    "plot_class_balance",
    "plot_classification_table",
    "plot_confusion_matrix",
    "plot_durations",
    "plot_embedding_map",
    "plot_formats",
    "plot_roc_curves",
    "plot_scores",
    "plot_signal_statistics",
    "plot_training_curves",
    "read_training_logs",
    "save_figure",
    "signal_statistics",
]

#: Sub-folder of the run folder that :func:`make_run_report` writes into.
REPORT_DIR = "report"

_CMAP = "Blues"
# Box plots lying down: ``orientation`` replaced ``vert`` in matplotlib 3.10.
_HORIZONTAL: dict[str, Any] = (
    {"orientation": "horizontal"}
    if tuple(int(p) for p in matplotlib.__version__.split(".")[:2]) >= (3, 10)
    else {"vert": False}
)


def _figure(width: float, height: float) -> Figure:
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
    """
    yt, yp = _check_pair(y_true, y_pred, classes)
    n = len(classes)
    size = max(4.0, 0.55 * n + 2.5)
    fig = _figure(2 * size + 1, size)
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
    """Render a :func:`classification_table` as an image (F1 cells shaded by value)."""
    n_rows = len(table)
    fig = _figure(6.5, 0.32 * n_rows + 1.0)
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
    fig = _figure(6.5, 5.5)
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


# ---------------------------------------------------------------------------- training logs
def read_training_logs(run_dir: str | os.PathLike, arch: str | None = None) -> pd.DataFrame:
    """Every fold's ``models/ARCH/fold{k}/log.csv`` (fastai ``CSVLogger``) as one table.

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run folder.
    arch : str, optional
        Only this architecture.

    Returns
    -------
    pandas.DataFrame
        Columns ``arch, fold, epoch, train_loss, valid_loss``, the metric columns of the
        logs, and ``seconds`` (fastai's ``time`` column ``mm:ss`` converted).  Empty when no
        log exists yet.  Unreadable logs are skipped with a warning.
    """
    models = Path(run_dir) / "models"
    pattern = f"{arch}/fold*/log.csv" if arch else "*/fold*/log.csv"
    frames = []
    for path in sorted(models.glob(pattern)):
        fold_name = path.parent.name
        if not fold_name[4:].isdigit():
            continue
        try:
            df = read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            warnings.warn(f"{path}: skipped, cannot be read ({exc})", EmoUtilsWarning, stacklevel=2)
            continue
        if "epoch" not in df.columns:
            warnings.warn(f"{path}: skipped, no 'epoch' column", EmoUtilsWarning, stacklevel=2)
            continue
        if "time" in df.columns:
            df["seconds"] = df.pop("time").map(_seconds)
        df.insert(0, "fold", int(fold_name[4:]))
        df.insert(0, "arch", path.parent.parent.name)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["arch", "fold", "epoch", "train_loss", "valid_loss"])
    return pd.concat(frames, ignore_index=True)


def _seconds(value: Any) -> float:
    """fastai's ``mm:ss`` (or ``hh:mm:ss``) duration in seconds; NaN when unparsable."""
    try:
        parts = [float(p) for p in str(value).split(":")]
    except ValueError:
        return float("nan")
    total = 0.0
    for p in parts:
        total = 60 * total + p
    return total


def plot_training_curves(logs: pd.DataFrame, *, title: str = "") -> Figure:
    """Loss and every metric per epoch, one line per fold.

    Parameters
    ----------
    logs : pandas.DataFrame
        From :func:`read_training_logs` (one architecture, or several: then each
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
    fig = _figure(4.0 * n_cols, 3.3 * len(archs))
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
    """
    missing = [c for c in ("name", "kind", metric) if c not in table.columns]
    if missing:
        raise DataError(f"plot_scores: missing column(s) {missing}; found {list(table.columns)}")
    rows = table.sort_values(metric, ascending=True)
    fig = _figure(7.0, 0.4 * len(rows) + 1.5)
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
def _timm_backbone(model: torch.nn.Module) -> torch.nn.Module:
    """The innermost module with timm's ``get_classifier`` (the network inside wrappers)."""
    found = [
        m
        for m in model.modules()
        if hasattr(m, "get_classifier") and hasattr(m, "forward_features")
    ]
    if not found:
        raise TrainingError(
            f"embed: {type(model).__name__} holds no timm model (nothing with get_classifier)"
        )
    return found[-1]


def embed(
    model: torch.nn.Module,
    images: np.ndarray,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Pooled features (the classifier's input) of a trained network for a batch of images.

    The network is run as a whole (so any normalisation wrapper, e.g. the
    :class:`~emo_utils.models.timm.NormalizedModel` of :func:`emo_utils.train.cv.load_fold_model`,
    still applies) and the input of the timm model's classifier
    (``model.get_classifier()``, i.e. ``forward_head(pre_logits=True)``) is recorded.

    Parameters
    ----------
    model : torch.nn.Module
        A timm model, or a module wrapping one.
    images : numpy.ndarray, shape (n, C, H, W)
        Raw cached windows (what the model is fed in training), float32.
    batch_size : int
        Images per forward pass.
    device : str or torch.device, optional
        Default: the device of the model's parameters.

    Returns
    -------
    numpy.ndarray of float32, shape (n, d)
        ``d`` is the timm model's ``num_features``.
    """
    import torch

    backbone = _timm_backbone(model)
    head = backbone.get_classifier()
    if not isinstance(head, torch.nn.Module):
        raise TrainingError(f"embed: {type(backbone).__name__}.get_classifier() is not a module")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise DataError(f"embed: images must have shape (n, C, H, W), got {images.shape}")
    captured: list[torch.Tensor] = []

    def hook(_module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        captured.append(torch.flatten(inputs[0], 1).float().cpu())

    was_training = model.training
    model.eval()
    model.to(device)
    handle = head.register_forward_pre_hook(hook)
    try:
        with torch.inference_mode():
            for lo in range(0, len(images), batch_size):
                model(torch.from_numpy(images[lo : lo + batch_size]).to(device))
    finally:
        handle.remove()
        model.train(was_training)
    if not captured:
        return np.zeros((0, int(getattr(backbone, "num_features", 0))), np.float32)
    return torch.cat(captured).numpy().astype(np.float32)


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
        From :func:`embed`; standardised per dimension before projecting.
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
    fig = _figure(7.5, 6.0)
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


# ---------------------------------------------------------------------------- run report
def _run_config(run_dir: Path) -> Config | None:
    from ..config import Config

    path = run_dir / "config.json"
    return Config.from_dict(read_json(path)) if path.is_file() else None


def _oof_architectures(run_dir: Path, config: Config | None) -> list[str]:
    present = sorted(p.stem for p in (run_dir / "oof").glob("*.csv"))
    if config is None:
        return present
    ordered = [a for a in config.train.architectures if a in present]
    return ordered + [a for a in present if a not in ordered]


def _read_oof(path: Path, classes: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    df = read_csv(path, dtype={"filename": str, "label": str}, keep_default_na=False)
    missing = [c for c in ("filename", "label", *classes) if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(df["label"]) - set(index))
    if unknown:
        raise DataError(f"{path}: labels not in classes.json: {unknown[:10]}")
    return df, df["label"].map(index).to_numpy(np.int64), df[list(classes)].to_numpy(float)


def _report_scores(run_dir: Path, config: Config | None) -> tuple[pd.DataFrame, str, str] | None:
    """``(rows name/kind/<metrics>, metric, submission method)`` from ``ensemble_report.json``.

    Tolerates a ``{"rows": [...]}`` report (:mod:`emo_utils.ensemble`) and a
    ``{"model_scores": {...}, "ensemble_scores": {...}}`` one; ``None`` when there is no
    usable report (the scores are then recomputed from the OOF files).
    """
    path = run_dir / "ensemble_report.json"
    if not path.is_file():
        return None
    report = read_json(path)
    if not isinstance(report, Mapping):
        report = {}
    metric = report.get("metric") or (config.ensemble.metric if config else "accuracy")
    method = report.get("submission_method") or report.get("method") or ""
    table = None
    rows = report.get("rows")
    if isinstance(rows, list) and rows:
        table = pd.DataFrame(rows)
    models = report.get("model_scores") or report.get("models")
    methods = report.get("ensemble_scores") or report.get("ensembles")
    if table is None and isinstance(models, Mapping) and isinstance(methods, Mapping):
        table = pd.DataFrame(
            [{"name": k, "kind": "model", metric: float(v)} for k, v in models.items()]
            + [{"name": k, "kind": "ensemble", metric: float(v)} for k, v in methods.items()]
        )
    if table is None or not {"name", "kind", metric} <= set(table.columns):
        warnings.warn(
            f"{path}: unrecognised structure, scores recomputed", EmoUtilsWarning, stacklevel=3
        )
        return None
    return table, str(metric), str(method)


def _ensemble_outputs(
    run_dir: Path, config: Config | None, archs: Sequence[str], classes: Sequence[str]
) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, pd.DataFrame, str]:
    """The submission method's OOF labels and probabilities, and every model's and method's score.

    Returns ``(method, y, predicted labels, probabilities, score table, metric)``; the
    scores come from ``ensemble_report.json`` when it is there, else
    :func:`emo_utils.ensemble.score_ensembles` computes them.
    """
    from ..config import Config
    from ..ensemble import ENSEMBLES, load_oof, make_ensemble, resolve_method, score_ensembles

    config = config or Config()
    ec = config.ensemble
    oof = load_oof(run_dir, archs, classes)
    weights = list(ec.weights) if ec.weights and len(ec.weights) == len(archs) else None
    saved = _report_scores(run_dir, config)
    if saved is not None and saved[2] in ENSEMBLES:
        table, metric, method = saved
    else:
        scored = score_ensembles(
            oof.probas,
            oof.y,
            model_names=list(archs),
            folds=oof.folds,
            metric=ec.metric,
            method=ec.method,
            weights=weights,
            stacking_model=ec.stacking_model,
            seed=config.train.seed,
        )
        table, metric = (saved[0], saved[1]) if saved is not None else (scored.table, ec.metric)
        method = resolve_method(ec.method, scored.best_method)
    ens = make_ensemble(
        method, weights=weights, stacking_model=ec.stacking_model, seed=config.train.seed
    )
    pred = ens.oof_predict(oof.probas, oof.y, oof.folds)
    if hasattr(ens, "oof_predict_proba"):  # learnt combiners: honest out-of-fold probabilities
        proba = ens.oof_predict_proba(oof.probas, oof.y, oof.folds)
    else:
        proba = ens.fit(oof.probas, oof.y).predict_proba(oof.probas)
    return method, oof.y, pred, proba, table, metric


def _embedding_report(
    run_dir: Path,
    config: Config,
    arch: str,
    fold: int,
    classes: Sequence[str],
    store: FeatureStore,
    *,
    method: str,
    device: str | torch.device | None,
) -> Figure:
    from ..data.folds import read_folds
    from ..train.cv import load_fold_model

    folds = read_folds(run_dir / "folds.csv")
    row_of = {name: i for i, name in enumerate(store.filenames)}
    keep = [
        i for i, name in enumerate(folds["filename"]) if name in row_of and store.ok[row_of[name]]
    ]
    if len(keep) < 3:
        raise DataError(f"{run_dir / 'folds.csv'}: fewer than 3 clips found in the feature store")
    folds = folds.iloc[keep].reset_index(drop=True)
    rows = [row_of[name] for name in folds["filename"]]
    model = load_fold_model(run_dir, arch, fold, device=device)
    # A few hundred windows at a time: the whole training set may not fit in memory.
    vectors = np.concatenate(
        [
            embed(model, store.stack(rows[lo : lo + 256], config.audio.crop), device=device)
            for lo in range(0, len(rows), 256)
        ]
    )
    index = {c: i for i, c in enumerate(classes)}
    labels = folds["label"].map(index).to_numpy(np.int64)
    valid = folds["fold"].to_numpy() == fold
    return plot_embedding_map(
        vectors,
        labels,
        classes,
        method=method,
        highlight=valid,
        seed=config.train.seed,
        title=f"{arch} fold {fold} pooled features, {method}",
    )


def make_run_report(
    run_dir: str | os.PathLike,
    *,
    store: FeatureStore | None = None,
    competition: Competition | None = None,
    cache_dir: str | os.PathLike | None = None,
    embeddings: bool = True,
    embedding_method: str = "pca",
    embedding_arch: str | None = None,
    embedding_fold: int = 0,
    device: str | torch.device | None = None,
) -> dict[str, Path]:
    """Write every plot of a run folder as PNG into ``RUN/report/``.

    Reads ``classes.json``, ``config.json``, ``oof/ARCH.csv``, ``models/ARCH/fold*/log.csv``,
    ``ensemble_report.json`` (scores are recomputed from the OOF files when it is absent)
    and, for the embedding map, ``folds.csv`` and a fold's ``model.pth``.

    Files written (``ARCH`` for every architecture with OOF predictions, ``METHOD`` the
    ensemble method that writes the submission):

    * ``confusion_ARCH.png``, ``confusion_ensemble_METHOD.png`` -- counts and normalised;
    * ``classes_ARCH.png`` / ``.csv``, ``classes_ensemble_METHOD.png`` / ``.csv`` --
      per-class precision, recall, F1;
    * ``roc_ARCH.png``, ``roc_ensemble_METHOD.png`` -- one-vs-rest ROC curves with AUC;
    * ``training_ARCH.png`` -- loss and metrics per epoch of every fold;
    * ``scores.png`` -- OOF score of every single model and every ensemble method;
    * ``embeddings_ARCH_fold{k}.png`` -- 2-D map of the pooled features of one fold's
      model on every training clip (solid: that fold's validation clips);
    * ``README.md`` -- the list of images, for browsing.

    Parameters
    ----------
    run_dir : str or os.PathLike
        A run folder written by :func:`emo_utils.train.cv.train_cv`.
    store : FeatureStore, optional
        Training images for the embedding map.  Without it, ``competition`` is used to
        open the feature cache (:func:`emo_utils.features.store.build_cache`, computing what is
        missing); without either the map is skipped with a warning.
    competition : Competition, optional
        See ``store``.
    cache_dir : path-like, optional
        Feature cache folder for ``competition`` (default its ``.emo_cache``).
    embeddings : bool, default True
        Draw the embedding map.
    embedding_method : {"pca", "tsne"}
        Projection of the map (:data:`PROJECTIONS`).
    embedding_arch : str, optional
        Architecture of the map (default: the best single model on OOF).
    embedding_fold : int, default 0
        Fold whose model draws the map.
    device : str or torch.device, optional
        Where the model runs (default: the GPU when there is one).

    Returns
    -------
    dict of str to pathlib.Path
        Name (file stem) -> written file.

    Raises
    ------
    TrainingError
        No ``classes.json`` or no OOF predictions in ``run_dir``.
    """
    from ..ensemble import read_classes

    run_dir = Path(run_dir)
    out = run_dir / REPORT_DIR
    classes = read_classes(run_dir)
    config = _run_config(run_dir)
    archs = _oof_architectures(run_dir, config)
    if not archs:
        raise TrainingError(f"{run_dir / 'oof'}: no OOF predictions; train the run first")
    if embedding_method not in PROJECTIONS:
        raise ConfigError("embedding_method", embedding_method, f"known: {sorted(PROJECTIONS)}")
    written: dict[str, Path] = {}

    def save(name: str, fig: Figure) -> None:
        written[name] = save_figure(fig, out / f"{name}.png")

    def evaluation(
        tag: str, title: str, y: np.ndarray, pred: np.ndarray, proba: np.ndarray
    ) -> None:
        save(f"confusion_{tag}", plot_confusion_matrix(y, pred, classes, title=title))
        table = classification_table(y, pred, classes)
        save(f"classes_{tag}", plot_classification_table(table, title=title))
        write_csv(out / f"classes_{tag}.csv", table.rename_axis("class").reset_index())
        save(f"roc_{tag}", plot_roc_curves(y, proba, classes, title=title))

    for arch in archs:
        _, y, proba = _read_oof(run_dir / "oof" / f"{arch}.csv", classes)
        evaluation(arch, f"{arch} (out-of-fold)", y, proba.argmax(axis=1), proba)
        logs = read_training_logs(run_dir, arch)
        if not logs.empty:
            save(f"training_{arch}", plot_training_curves(logs, title=f"{arch} training"))

    method, y, pred, proba, table, metric = _ensemble_outputs(run_dir, config, archs, classes)
    evaluation(f"ensemble_{method}", f"ensemble '{method}' (out-of-fold)", y, pred, proba)
    save("scores", plot_scores(table, metric=metric, chosen=method))

    if embeddings:
        models = table[table["kind"] == "model"]
        arch = embedding_arch or (
            str(models.loc[models[metric].astype(float).idxmax(), "name"])
            if len(models)
            else archs[0]
        )
        if store is None and competition is not None and config is not None:
            from ..features.store import build_cache

            store = build_cache(competition, "train", config, cache_dir, progress=False)
        if store is None or config is None:
            reason = "no config.json" if config is None else "give a store or a competition"
            warnings.warn(
                f"{run_dir}: embedding map skipped ({reason})", EmoUtilsWarning, stacklevel=2
            )
        else:
            fig = _embedding_report(
                run_dir,
                config,
                arch,
                embedding_fold,
                classes,
                store,
                method=embedding_method,
                device=device,
            )
            save(f"embeddings_{arch}_fold{embedding_fold}", fig)

    lines = [f"# Report of `{run_dir.name}`", ""]
    folds_csv = run_dir / "folds.csv"
    if folds_csv.is_file():
        folds = pd.read_csv(folds_csv, dtype=str, keep_default_na=False)
        if "group" in folds.columns:
            from ..data.duplicates import describe_groups

            g = describe_groups(folds["group"].tolist())
            lines += [
                f"Folds keep near-duplicates together: {g['n_clips']} clips in {g['n_groups']} "
                f"groups; {g['n_duplicate_groups']} group(s) of near-duplicates, "
                f"{g['n_merged']} clip(s) merged into another clip's group.",
                "",
            ]
    lines += [f"## {name}\n\n![{name}]({path.name})\n" for name, path in written.items()]
    write_text(out / "README.md", "\n".join(lines))
    return written


# ---------------------------------------------------------------------------- EDA
def _overview_row(path: str) -> dict[str, Any]:
    from ..audio import audio_info

    try:
        info = audio_info(path)
    except AudioError as exc:
        return {"error": exc.reason}
    return {
        "format": info.format,
        "subtype": info.subtype,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "frames": info.frames,
        "duration": info.duration,
        "error": "",
    }


def dataset_overview(
    competition: Competition, *, splits: Sequence[str] = ("train", "test")
) -> pd.DataFrame:
    """One row per audio file, from the file headers only (fast: nothing is decoded).

    Parameters
    ----------
    competition : Competition
        From :func:`emo_utils.data.competition.load_competition`.
    splits : sequence of {"train", "test"}
        Which tables to list.

    Returns
    -------
    pandas.DataFrame
        Columns ``split, filename, label`` (empty for test), ``path, extension, format,
        subtype, sample_rate, channels, frames, duration`` (seconds), ``size_bytes`` and
        ``error`` (why the header cannot be read, else empty).
    """
    frames = []
    for split in splits:
        if split not in ("train", "test"):
            raise ConfigError("splits", split, "must be 'train' or 'test'")
        table = getattr(competition, split)
        rows = [_overview_row(str(p)) for p in table["path"]]
        df = pd.DataFrame(rows, index=table.index)
        df.insert(0, "path", table["path"].astype(str))
        df.insert(0, "label", table["label"] if "label" in table.columns else "")
        df.insert(0, "filename", table["filename"])
        df.insert(0, "split", split)
        df["extension"] = [Path(p).suffix.lower().lstrip(".") for p in df["path"]]
        df["size_bytes"] = [os.path.getsize(p) if os.path.isfile(p) else -1 for p in df["path"]]
        frames.append(df)
    columns = [
        "split",
        "filename",
        "label",
        "path",
        "extension",
        "format",
        "subtype",
        "sample_rate",
        "channels",
        "frames",
        "duration",
        "size_bytes",
        "error",
    ]
    out = pd.concat(frames, ignore_index=True)
    for c in columns:
        if c not in out.columns:
            out[c] = np.nan
    return out[columns]


def plot_class_balance(overview: pd.DataFrame, *, title: str = "") -> Figure:
    """Training clips per class, with their share (from :func:`dataset_overview` or any
    table with a ``label`` column)."""
    if "split" in overview.columns:
        labels = overview.loc[overview["split"] == "train", "label"]
    else:
        labels = overview["label"]
    counts = labels.value_counts()
    fig = _figure(7.0, 0.35 * len(counts) + 1.5)
    ax = fig.add_subplot()
    bars = ax.barh(counts.index[::-1].astype(str), counts.to_numpy()[::-1], color="tab:blue")
    share = counts.to_numpy()[::-1] / max(1, counts.sum())
    ax.bar_label(
        bars,
        labels=[f"{n} ({s:.0%})" for n, s in zip(counts.to_numpy()[::-1], share, strict=True)],
        padding=3,
    )
    ax.set_xlim(0, counts.max() * 1.2)
    ax.set(xlabel="training clips", title=title or f"class balance ({counts.sum()} clips)")
    return fig


def plot_durations(overview: pd.DataFrame, *, title: str = "") -> Figure:
    """Histogram of clip durations per split (left) and per class (right, box plots)."""
    data = overview[overview["duration"].notna()]
    fig = _figure(12.0, 4.0)
    left, right = fig.subplots(1, 2)
    bins = np.linspace(0, max(1.0, float(data["duration"].max())), 40)
    for split, rows in data.groupby("split"):
        left.hist(rows["duration"], bins=bins, alpha=0.6, label=f"{split} ({len(rows)})")
    left.set(xlabel="seconds", ylabel="clips", title="durations")
    left.legend()
    train = data[data["split"] == "train"]
    classes = sorted(train["label"].unique())
    if classes:
        right.boxplot([train.loc[train["label"] == c, "duration"] for c in classes], **_HORIZONTAL)
        right.set_yticks(np.arange(1, len(classes) + 1), classes)
    right.set(xlabel="seconds", title="training durations per class")
    if title:
        fig.suptitle(title)
    return fig


def plot_formats(overview: pd.DataFrame, *, title: str = "") -> Figure:
    """Bar charts of sample rates, file formats and channel counts, per split."""
    data = overview[overview["error"].fillna("") == ""]
    fig = _figure(13.0, 3.8)
    axes = fig.subplots(1, 3)
    for ax, column, name in (
        (axes[0], "sample_rate", "sample rate (Hz)"),
        (axes[1], "extension", "file format"),
        (axes[2], "channels", "channels"),
    ):
        counts = data.groupby([column, "split"]).size().unstack("split", fill_value=0)
        counts.index = counts.index.astype(str)
        x = np.arange(len(counts))
        width = 0.8 / max(1, counts.shape[1])
        for k, split in enumerate(counts.columns):
            bars = ax.bar(x + k * width, counts[split], width=width, label=split)
            ax.bar_label(bars, fontsize="x-small")
        ax.set_xticks(x + 0.4 - width / 2, counts.index, rotation=30)
        ax.set(title=name, ylabel="clips")
        ax.legend(fontsize="small")
    fig.suptitle(
        title
        or f"formats ({int(data.shape[0])} readable files, {int((overview['error'].fillna('') != '').sum())} unreadable)"
    )
    return fig


def _clip_statistics(path: str, sample_rate: int, max_duration: float) -> dict[str, float] | str:
    import librosa

    from ..audio import load_audio

    try:
        y = load_audio(path, sample_rate=sample_rate, max_duration=max_duration)
    except AudioError as exc:
        return exc.reason
    if len(y) < 2:
        return "too short"
    rms = librosa.feature.rms(y=y)[0]
    zcr = librosa.feature.zero_crossing_rate(y)[0]
    rms_db = librosa.amplitude_to_db(rms, ref=1.0, amin=1e-5)
    return {
        "rms_db": float(np.mean(rms_db)),
        "rms_db_max": float(np.max(rms_db)),
        "zcr": float(np.mean(zcr)),
    }


def signal_statistics(
    competition: Competition,
    *,
    n_per_class: int = 30,
    sample_rate: int = 16000,
    max_duration: float = 10.0,
    seed: int = 0,
    n_jobs: int = -1,
) -> pd.DataFrame:
    """Loudness (RMS in dBFS) and zero-crossing rate of a random sample of training clips.

    Uses :func:`librosa.feature.rms` and :func:`librosa.feature.zero_crossing_rate` on at
    most ``n_per_class`` clips per class (the first ``max_duration`` seconds of each).

    Returns
    -------
    pandas.DataFrame
        Columns ``filename, label, rms_db`` (mean frame RMS in dBFS), ``rms_db_max``,
        ``zcr`` (mean share of sign changes per frame); unreadable clips are left out.
    """
    from joblib import Parallel, delayed

    train = competition.train
    shuffled = train.sample(frac=1.0, random_state=seed)
    sample = shuffled.groupby("label", sort=True).head(n_per_class).sort_values("label")
    results = Parallel(n_jobs=n_jobs)(
        delayed(_clip_statistics)(str(p), sample_rate, max_duration) for p in sample["path"]
    )
    rows = [
        {"filename": f, "label": lab, **r}
        for f, lab, r in zip(sample["filename"], sample["label"], results, strict=True)
        if isinstance(r, dict)
    ]
    return pd.DataFrame(rows, columns=["filename", "label", "rms_db", "rms_db_max", "zcr"])


def plot_signal_statistics(stats: pd.DataFrame, *, title: str = "") -> Figure:
    """Box plots per class of the columns of :func:`signal_statistics`."""
    columns = [
        ("rms_db", "mean RMS loudness (dBFS)"),
        ("rms_db_max", "peak frame RMS (dBFS)"),
        ("zcr", "zero-crossing rate"),
    ]
    classes = sorted(stats["label"].unique())
    fig = _figure(13.0, 0.35 * len(classes) + 2.0)
    axes = fig.subplots(1, len(columns), sharey=True)
    for ax, (column, name) in zip(axes, columns, strict=True):
        ax.boxplot([stats.loc[stats["label"] == c, column] for c in classes], **_HORIZONTAL)
        ax.set_yticks(np.arange(1, len(classes) + 1), classes)
        ax.set(title=name)
    fig.suptitle(title or f"signal statistics ({len(stats)} clips)")
    return fig


def plot_channel_grid(
    store: FeatureStore,
    labels: Sequence[str],
    channel_names: Sequence[str],
    *,
    per_class: int = 1,
    classes: Sequence[str] | None = None,
    seed: int = 0,
    title: str = "",
) -> Figure:
    """Example images of every class, each channel in its own panel.

    Parameters
    ----------
    store : FeatureStore
        Cached images (first window of each clip is shown).
    labels : sequence of str, shape (len(store),)
        Class of every store row.
    channel_names : sequence of str
        Name of every image channel (``config.features.channels``).
    per_class : int, default 1
        Examples per class (drawn at random among the valid rows).
    classes : sequence of str, optional
        Which classes, in this order (default: sorted labels).
    seed : int
        Random choice of the examples.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One row per class and example, one column per channel (mel bins / chroma / STFT
        rows upward, time to the right).
    """
    labels = np.asarray(labels, dtype=object)
    if len(labels) != len(store):
        raise DataError(f"plot_channel_grid: {len(labels)} labels for {len(store)} store rows")
    n_channels = store.image_shape[0]
    if len(channel_names) != n_channels:
        raise DataError(
            f"plot_channel_grid: {len(channel_names)} channel names for {n_channels} channels"
        )
    classes = list(classes) if classes is not None else sorted(set(labels))
    rng = np.random.default_rng(seed)
    ok = store.ok
    picks = []
    for c in classes:
        rows = np.flatnonzero((labels == c) & ok)
        for i in rng.choice(rows, size=min(per_class, len(rows)), replace=False):
            picks.append((c, int(i)))
    if not picks:
        raise DataError("plot_channel_grid: no valid image for the requested classes")
    fig = _figure(3.2 * n_channels, 1.9 * len(picks) + 0.6)
    axes = np.atleast_2d(fig.subplots(len(picks), n_channels, squeeze=False))
    for r, (c, i) in enumerate(picks):
        image = store.window(i, "start")
        for k in range(n_channels):
            ax = axes[r, k]
            ax.imshow(image[k], origin="lower", aspect="auto", cmap="magma")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(channel_names[k])
            if k == 0:
                ax.set_ylabel(f"{c}\n{store.filenames[i]}", fontsize="small")
    fig.suptitle(title or "feature images per class")
    return fig
