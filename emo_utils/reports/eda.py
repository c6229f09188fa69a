"""Exploratory data analysis of a competition folder (used by the EDA notebook).

=================================  =======================================================
:func:`dataset_overview`           per file: duration, rate, channels, format, label (headers only)
:func:`plot_class_balance`         clips per class (label)
:func:`plot_durations`             duration histogram per split and per class (label)
:func:`plot_formats`               sample rates, formats and channel counts
:func:`signal_statistics`          RMS loudness and zero-crossing rate of a sample of clips
:func:`plot_signal_statistics`     their distributions per class (label)
:func:`plot_channel_grid`          example images per class (label), every channel shown
=================================  =======================================================

Multi-label competitions (a set of labels per clip, ``label_kind="multi"``, i.e.
``config.data.label_kind``): everything "per class" is per label, a clip counting for every
label it holds (:mod:`emo_utils.reports.labels`).  The figures follow
:mod:`emo_utils.reports.plots` (object API, no pyplot state).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import AudioError, ConfigError, DataError
from .labels import clip_labels, label_counts, label_kind_of
from .plots import HORIZONTAL, new_figure

if TYPE_CHECKING:
    from ..data.competition import Competition
    from ..features import FeatureStore

__all__ = [
    "dataset_overview",
    "plot_channel_grid",
    "plot_class_balance",
    "plot_durations",
    "plot_formats",
    "plot_signal_statistics",
    "signal_statistics",
]


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
    splits : sequence of {"train", "test"}, default ("train", "test")
        Which tables to list.

    Returns
    -------
    pandas.DataFrame
        Columns ``split, filename, label`` (empty for test; multi-label: the labels joined
        by ``";"``), ``path, extension, format,
        subtype, sample_rate, channels, frames, duration`` (seconds), ``size_bytes`` and
        ``error`` (why the header cannot be read, else empty).

    Raises
    ------
    ConfigError
        A split other than ``"train"`` or ``"test"``.
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


def _per_label(table: pd.DataFrame, label_kind: str) -> pd.DataFrame:
    """``table`` with one row per (clip, label): a multi-label clip repeats for each label.

    One label per clip: ``table`` unchanged.  Clips without any label are left out.
    """
    lists = clip_labels(table["label"].tolist(), label_kind=label_kind)
    return table.assign(label=lists).explode("label").dropna(subset=["label"])


def plot_class_balance(
    overview: pd.DataFrame, *, label_kind: str = "single", title: str = ""
) -> Figure:
    """Training clips per class (per label), with their share of the clips.

    Parameters
    ----------
    overview : pandas.DataFrame
        From :func:`dataset_overview` (its training rows are counted), or any table with a
        ``label`` column.
    label_kind : {"single", "multi"}
        ``config.data.label_kind``; multi-label: a clip counts for every label it holds, so
        the shares can sum to more than 100 %.
    title : str
        Figure title (default: the number of clips).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if "split" in overview.columns:
        labels = overview.loc[overview["split"] == "train", "label"]
    else:
        labels = overview["label"]
    table = label_counts(labels.tolist(), label_kind=label_kind)
    counts, share = table["clips"].to_numpy()[::-1], table["share"].to_numpy()[::-1]
    kind = label_kind_of(label_kind)
    fig = new_figure(7.0, 0.35 * len(table) + 1.5)
    ax = fig.add_subplot()
    bars = ax.barh(table.index[::-1].astype(str), counts, color="tab:blue")
    ax.bar_label(
        bars, labels=[f"{n} ({s:.0%})" for n, s in zip(counts, share, strict=True)], padding=3
    )
    ax.set_xlim(0, counts.max() * 1.2)
    ax.set(
        xlabel="training clips",
        title=title or f"{kind.noun} balance ({len(labels)} clips{kind.note})",
    )
    return fig


def plot_durations(
    overview: pd.DataFrame, *, label_kind: str = "single", title: str = ""
) -> Figure:
    """Histogram of clip durations per split (left) and per class (right, box plots).

    Parameters
    ----------
    overview : pandas.DataFrame
        From :func:`dataset_overview`.
    label_kind : {"single", "multi"}
        ``config.data.label_kind``; multi-label: one box per label, of the clips holding it.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    data = overview[overview["duration"].notna()]
    fig = new_figure(12.0, 4.0)
    left, right = fig.subplots(1, 2)
    bins = np.linspace(0, max(1.0, float(data["duration"].max())), 40)
    for split, rows in data.groupby("split"):
        left.hist(rows["duration"], bins=bins, alpha=0.6, label=f"{split} ({len(rows)})")
    left.set(xlabel="seconds", ylabel="clips", title="durations")
    left.legend()
    train = _per_label(data[data["split"] == "train"], label_kind)
    classes = sorted(train["label"].unique())
    if classes:
        right.boxplot([train.loc[train["label"] == c, "duration"] for c in classes], **HORIZONTAL)
        right.set_yticks(np.arange(1, len(classes) + 1), classes)
    right.set(xlabel="seconds", title=f"training durations per {label_kind_of(label_kind).noun}")
    if title:
        fig.suptitle(title)
    return fig


def plot_formats(overview: pd.DataFrame, *, title: str = "") -> Figure:
    """Bar charts of sample rates, file formats and channel counts, per split.

    Parameters
    ----------
    overview : pandas.DataFrame
        From :func:`dataset_overview`; unreadable files are left out and counted.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    data = overview[overview["error"].fillna("") == ""]
    fig = new_figure(13.0, 3.8)
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
    label_kind: str = "single",
) -> pd.DataFrame:
    """Loudness (RMS in dBFS) and zero-crossing rate of a random sample of training clips.

    Uses :func:`librosa.feature.rms` and :func:`librosa.feature.zero_crossing_rate` on at
    most ``n_per_class`` clips per class (the first ``max_duration`` seconds of each).
    Multi-label: at most ``n_per_class`` clips per label; a clip drawn for several labels
    is decoded once and has one row per label.

    Parameters
    ----------
    competition : Competition
        From :func:`emo_utils.data.competition.load_competition`.
    n_per_class : int, default 30
        Clips drawn at random per class.
    sample_rate : int, default 16000
        Decoding rate (Hz).
    max_duration : float, default 10.0
        Seconds decoded from the start of each clip.
    seed : int
        Random choice of the clips.
    n_jobs : int, default -1
        Worker processes (joblib's convention; -1: every core).
    label_kind : {"single", "multi"}
        ``config.data.label_kind``.

    Returns
    -------
    pandas.DataFrame
        Columns ``filename, label`` (the class, or one label of the clip), ``rms_db`` (mean
        frame RMS in dBFS), ``rms_db_max``, ``zcr`` (mean share of sign changes per frame);
        unreadable clips are left out.
    """
    from joblib import Parallel, delayed

    train = competition.train
    shuffled = _per_label(train.sample(frac=1.0, random_state=seed), label_kind)
    sample = shuffled.groupby("label", sort=True).head(n_per_class).sort_values("label")
    paths = list(dict.fromkeys(str(p) for p in sample["path"]))  # each clip decoded once
    decoded = Parallel(n_jobs=n_jobs)(
        delayed(_clip_statistics)(p, sample_rate, max_duration) for p in paths
    )
    results = dict(zip(paths, decoded, strict=True))
    rows = [
        {"filename": f, "label": lab, **results[str(p)]}
        for f, lab, p in zip(sample["filename"], sample["label"], sample["path"], strict=True)
        if isinstance(results[str(p)], dict)
    ]
    return pd.DataFrame(rows, columns=["filename", "label", "rms_db", "rms_db_max", "zcr"])


def plot_signal_statistics(stats: pd.DataFrame, *, title: str = "") -> Figure:
    """Box plots per class of the columns of :func:`signal_statistics`.

    Parameters
    ----------
    stats : pandas.DataFrame
        From :func:`signal_statistics`.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    columns = [
        ("rms_db", "mean RMS loudness (dBFS)"),
        ("rms_db_max", "peak frame RMS (dBFS)"),
        ("zcr", "zero-crossing rate"),
    ]
    classes = sorted(stats["label"].unique())
    fig = new_figure(13.0, 0.35 * len(classes) + 2.0)
    axes = fig.subplots(1, len(columns), sharey=True)
    for ax, (column, name) in zip(axes, columns, strict=True):
        ax.boxplot([stats.loc[stats["label"] == c, column] for c in classes], **HORIZONTAL)
        ax.set_yticks(np.arange(1, len(classes) + 1), classes)
        ax.set(title=name)
    fig.suptitle(title or f"signal statistics ({stats['filename'].nunique()} clips)")
    return fig


def plot_channel_grid(
    store: FeatureStore,
    labels: Sequence[str],
    channel_names: Sequence[str],
    *,
    per_class: int = 1,
    classes: Sequence[str] | None = None,
    seed: int = 0,
    label_kind: str = "single",
    title: str = "",
) -> Figure:
    """Example images of every class (label), each channel in its own panel.

    Parameters
    ----------
    store : FeatureStore
        Cached images (first window of each clip is shown).
    labels : sequence of str, shape (len(store),)
        Class of every store row (multi-label: its labels joined by ``";"``, as
        ``competition.train["label"]``).
    channel_names : sequence of str
        Name of every image channel (``config.features.channels``).
    per_class : int, default 1
        Examples per class (drawn at random among the valid rows).
    classes : sequence of str, optional
        Which classes, in this order (default: sorted labels).
    seed : int
        Random choice of the examples.
    label_kind : {"single", "multi"}
        ``config.data.label_kind``; multi-label: the examples of a label are drawn among
        the clips holding it.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One row per class and example, one column per channel (mel bins / chroma / STFT
        rows upward, time to the right).

    Raises
    ------
    DataError
        ``labels`` or ``channel_names`` do not match the store, or no valid image is found.
    """
    lists = clip_labels(list(labels), label_kind=label_kind)
    if len(lists) != len(store):
        raise DataError(f"plot_channel_grid: {len(lists)} labels for {len(store)} store rows")
    n_channels = store.image_shape[0]
    if len(channel_names) != n_channels:
        raise DataError(
            f"plot_channel_grid: {len(channel_names)} channel names for {n_channels} channels"
        )
    classes = list(classes) if classes is not None else sorted({c for row in lists for c in row})
    rng = np.random.default_rng(seed)
    ok = store.ok
    picks = []
    for c in classes:
        rows = np.flatnonzero(np.array([c in row for row in lists], dtype=bool) & ok)
        for i in rng.choice(rows, size=min(per_class, len(rows)), replace=False):
            picks.append((c, int(i)))
    if not picks:
        raise DataError("plot_channel_grid: no valid image for the requested classes")
    fig = new_figure(3.2 * n_channels, 1.9 * len(picks) + 0.6)
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
    fig.suptitle(title or f"feature images per {label_kind_of(label_kind).noun}")
    return fig
