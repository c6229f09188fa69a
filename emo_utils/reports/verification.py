"""Verification plots: DET curves and same/different score histograms (arrays in, figures out).

:func:`plot_det_curves` draws scikit-learn's :class:`~sklearn.metrics.DetCurveDisplay`
(miss rate against false-alarm rate on normal-deviate axes) of one or more scorers with
their EER in the legend; :func:`plot_score_histograms` overlays the score distributions of
same-identity and different-identity trials with the EER threshold.
:func:`write_verification_plots` saves both as PNGs (atomically).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from sklearn.metrics import DetCurveDisplay

from ..verification.metrics import check_trials, eer_threshold, equal_error_rate
from .plots import new_figure, save_figure

__all__ = ["plot_det_curves", "plot_score_histograms", "write_verification_plots"]

#: File names of :func:`write_verification_plots`.
DET_FILE = "det_curve.png"
HISTOGRAM_FILE = "score_histograms.png"


def plot_det_curves(
    labels: ArrayLike, scores: Mapping[str, ArrayLike], *, title: str = ""
) -> Figure:
    """The DET curve of every scorer of ``scores`` on the same trials.

    Parameters
    ----------
    labels : array-like of shape (n_trials,)
        1 for same identity, 0 for different.
    scores : mapping of str to array-like of shape (n_trials,)
        Scorer name -> its trial scores.
    title : str
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = new_figure(5.5, 5.0)
    ax = fig.add_subplot()
    for name, s in scores.items():
        y, s = check_trials(labels, s)
        eer = equal_error_rate(y, s)
        DetCurveDisplay.from_predictions(y, s, ax=ax, name=f"{name} (EER {eer:.2%})")
    ax.set_title(title or "DET curve")
    ax.grid(True, alpha=0.3)
    return fig


def plot_score_histograms(labels: ArrayLike, scores: ArrayLike, *, title: str = "") -> Figure:
    """Histograms of same-identity and different-identity trial scores, EER threshold marked.

    Parameters
    ----------
    labels : array-like of shape (n_trials,)
        1 for same identity, 0 for different.
    scores : array-like of shape (n_trials,)
    title : str
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    y, s = check_trials(labels, scores)
    fig = new_figure(6.0, 3.8)
    ax = fig.add_subplot()
    bins = np.histogram_bin_edges(s, bins=40)
    ax.hist(s[~y], bins=bins, alpha=0.6, density=True, label=f"different ({int((~y).sum())})")
    ax.hist(s[y], bins=bins, alpha=0.6, density=True, label=f"same ({int(y.sum())})")
    ax.axvline(
        eer_threshold(y, s),
        color="k",
        linestyle="--",
        label=f"EER threshold (EER {equal_error_rate(y, s):.2%})",
    )
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    ax.set_title(title or "Trial scores")
    ax.legend()
    return fig


def write_verification_plots(
    folder: str | os.PathLike,
    labels: ArrayLike,
    scores: Mapping[str, ArrayLike],
    *,
    main: str | None = None,
) -> dict[str, Path]:
    """Write the DET curves of ``scores`` and the histograms of ``main`` as PNGs in ``folder``.

    Parameters
    ----------
    folder : str or os.PathLike
        Destination folder (created if needed).
    labels : array-like of shape (n_trials,)
    scores : mapping of str to array-like of shape (n_trials,)
        Scorer name -> trial scores (every scorer on the same trials).
    main : str, optional
        The scorer whose histograms are drawn; default: the first.

    Returns
    -------
    dict of str to pathlib.Path
        ``{"det": ..., "histograms": ...}``.
    """
    folder = Path(folder)
    main = main or next(iter(scores))
    det = plot_det_curves(labels, scores)
    hist = plot_score_histograms(labels, scores[main], title=f"Trial scores: {main}")
    return {
        "det": save_figure(det, folder / DET_FILE),
        "histograms": save_figure(hist, folder / HISTOGRAM_FILE),
    }
