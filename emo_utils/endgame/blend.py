"""Blending probability files made elsewhere: :func:`blend_probabilities`, :func:`blend_submission`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from ..config import DataConfig
from ..data.competition import Competition
from ..ensemble import (
    check_probas,
    check_weights,
    geometric_mean_proba,
    label_geometric_mean,
    label_mean,
    label_rank_mean,
    mean_proba,
)
from ..errors import ConfigError
from ..fileio import write_csv
from ..runs import RunDir
from ..submission import (
    make_label_sets_submission,
    make_submission,
    probabilities_path,
    validate_label_sets_submission,
    validate_submission,
)
from ._common import (
    _check_ids,
    _competition,
    _in_class_order,
    _load_probability_files,
    _rule,
)


def rank_mean(
    probas: np.ndarray, *, weights: Sequence[float] | np.ndarray | None = None
) -> np.ndarray:
    """Weighted mean of per-column ranks, each scaled to [0, 1].

    Every model's column is ranked over the rows (ties get their average rank), mapped
    to ``(rank - 1) / (n_rows - 1)`` (0.5 for a single row), then averaged over models.
    Rows do not sum to 1: these are scores, not probabilities.

    Parameters
    ----------
    probas : numpy.ndarray, shape (n_models, n_samples, n_classes)
    weights : sequence of float, optional

    Returns
    -------
    numpy.ndarray, shape (n_samples, n_classes)
    """
    p = check_probas(probas)
    ranks = rankdata(p, axis=1)
    n = p.shape[1]
    scaled = (ranks - 1) / (n - 1) if n > 1 else np.full_like(ranks, 0.5)
    return np.average(scaled, axis=0, weights=check_weights(weights, p.shape[0]))


#: Blend name -> function ``(probas, *, weights) -> (n_samples, n_classes)`` (single-label:
#: softmax rows; ``geometric`` renormalises them).
BLENDS: dict[str, Callable[..., np.ndarray]] = {
    "mean": mean_proba,
    "geometric": geometric_mean_proba,
    "rank": rank_mean,
}

#: The same names for multi-label (per-label sigmoid) probabilities, label by label
#: (:mod:`emo_utils.ensemble.multilabel`; ``geometric`` is not renormalised).
MULTILABEL_BLENDS: dict[str, Callable[..., np.ndarray]] = {
    "mean": label_mean,
    "geometric": label_geometric_mean,
    "rank": label_rank_mean,
}

#: Label kind -> its blends.
BLENDS_BY_KIND: dict[str, dict[str, Callable[..., np.ndarray]]] = {
    "single": BLENDS,
    "multi": MULTILABEL_BLENDS,
}


def blend_probabilities(
    paths: Sequence[str | os.PathLike],
    *,
    method: str = "mean",
    weights: Sequence[float] | None = None,
    label_kind: str = "single",
) -> pd.DataFrame:
    """Blend probability files into one table.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        ``*.probabilities.csv`` or ``RUN/predictions/ARCH.csv`` files: an id column, then
        one probability column per class; every file must have the same columns and the
        same ids in the same order.
    method : {"mean", "geometric", "rank"}
        Key of :data:`BLENDS_BY_KIND` ``[label_kind]``.
    weights : sequence of float, optional
        One non-negative weight per file.
    label_kind : {"single", "multi"}
        ``"multi"``: per-label probabilities in [0, 1], blended label by label
        (:data:`MULTILABEL_BLENDS`).

    Returns
    -------
    pandas.DataFrame
        The first file's id column, then the blended class columns.

    Raises
    ------
    SubmissionError
        A file is missing, unreadable, out of range, or differs from the first in columns
        or ids.
    ConfigError
        Unknown method or label kind, or wrong weights.
    """
    blends = _rule(BLENDS_BY_KIND, label_kind, "blends")
    if method not in blends:
        raise ConfigError("method", method, f"unknown blend; known: {list(blends)}")
    probas, ids, id_column, columns = _load_probability_files(paths, label_kind=label_kind)
    blended = blends[method](probas, weights=weights)
    out = pd.DataFrame(blended, columns=columns)
    out.insert(0, id_column, ids)
    return out


def decision_thresholds(
    thresholds: float | Sequence[float] | np.ndarray | str | os.PathLike | None,
    *,
    classes: Sequence[str],
    key: str,
) -> tuple[np.ndarray, str]:
    """Per-label decision thresholds of a multi-label blend, and where they came from.

    Parameters
    ----------
    thresholds : float, sequence of float, str, os.PathLike or None
        ``None``: 0.5 for every label; a number: that for every label; a sequence: one
        per class, in ``classes`` order; a path: a run's ``thresholds.json`` (or its run
        folder), read with :meth:`emo_utils.runs.RunDir.read_thresholds`.
    classes : sequence of str
        The competition's classes.
    key : str
        Which entry of ``thresholds.json`` (a model or ensemble method name of that run).

    Returns
    -------
    thresholds : numpy.ndarray, shape (n_classes,)
    source : str
        ``"default"`` (0.5), ``"given"`` or ``"PATH[key]"``.

    Raises
    ------
    ConfigError
        Wrong shape or non-finite values, a path that is neither ``thresholds.json`` nor a
        folder, or a ``key`` the file does not hold (the error lists those it holds).
    CheckpointError
        The file is missing, damaged or made for other classes.

    Examples
    --------
    >>> decision_thresholds(None, classes=["a", "b"], key="mean")[0].tolist()
    [0.5, 0.5]
    >>> decision_thresholds([0.3, 0.7], classes=["a", "b"], key="mean")
    (array([0.3, 0.7]), 'given')
    """
    n = len(classes)
    if thresholds is None:
        return np.full(n, 0.5), "default"
    if isinstance(thresholds, (str, os.PathLike)):
        path = Path(thresholds)
        if path.is_dir():
            run = RunDir(path)
        elif path.name == RunDir(path.parent).thresholds_file.name:
            run = RunDir(path.parent)
        else:
            raise ConfigError(
                "thresholds", str(path), "give a run's thresholds.json (or the run folder)"
            )
        table = run.read_thresholds(classes)
        if key not in table:
            raise ConfigError(
                "thresholds_key", key, f"not in {run.thresholds_file}; it holds {sorted(table)}"
            )
        return table[key], f"{run.thresholds_file}[{key}]"
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim == 0:
        t = np.full(n, float(t))
    if t.shape != (n,) or not np.all(np.isfinite(t)):
        raise ConfigError(
            "thresholds", thresholds, f"a finite number or one per class ({n}: {list(classes)})"
        )
    return t, "given"


@dataclass
class BlendResult:
    """Files written by :func:`blend_submission`.

    Attributes
    ----------
    submission, probabilities : pathlib.Path
        The submission and the blended ``NAME.probabilities.csv`` beside it.
    method : str
        The blend.
    inputs : list of pathlib.Path
        The probability files blended.
    thresholds : numpy.ndarray, optional
        Multi-label: the per-label decision thresholds applied (class order).
    thresholds_from : str, optional
        Multi-label: where they came from (see :func:`decision_thresholds`).
    """

    submission: Path
    probabilities: Path
    method: str
    inputs: list[Path]
    thresholds: np.ndarray | None = field(default=None, repr=False)
    thresholds_from: str | None = None

    def describe(self) -> str:
        """One line per written file (and the thresholds, multi-label)."""
        text = (
            f"blended {len(self.inputs)} probability files ({self.method}) into "
            f"{self.submission} and {self.probabilities}"
        )
        if self.thresholds is not None:
            values = ", ".join(f"{t:.3g}" for t in self.thresholds)
            text += f"\nlabels present at blended score >= thresholds [{values}] ({self.thresholds_from})"
        return text


def _no_thresholds(
    thresholds: object, *, classes: Sequence[str], key: str | None, method: str
) -> tuple[None, None]:
    """Single-label blends take the argmax: decision thresholds are refused."""
    if thresholds is not None or key is not None:
        raise ConfigError(
            "thresholds",
            thresholds if thresholds is not None else key,
            "decision thresholds apply to multi-label blends (data.task: multilabel); a "
            "single-label blend takes the most probable class",
        )
    return None, None


def _multi_thresholds(
    thresholds: float | Sequence[float] | np.ndarray | str | os.PathLike | None,
    *,
    classes: Sequence[str],
    key: str | None,
    method: str,
) -> tuple[np.ndarray, str]:
    """:func:`decision_thresholds`, the ``thresholds.json`` entry defaulting to ``method``."""
    return decision_thresholds(thresholds, classes=classes, key=key or method)


def _blend_single(
    competition: Competition, values: np.ndarray, cut: None, data_config: DataConfig
) -> pd.DataFrame:
    """The argmax submission of a single-label blend."""
    submission, _ = make_submission(competition, values.argmax(axis=1))
    validate_submission(submission, competition, data_config=data_config)
    return submission


def _blend_multi(
    competition: Competition, values: np.ndarray, cut: np.ndarray, data_config: DataConfig
) -> pd.DataFrame:
    """The multi-label submission of a blend: labels where the score reaches ``cut``."""
    submission, _, _ = make_label_sets_submission(
        competition,
        (values >= cut).astype(np.int64),
        values,
        separator=data_config.label_separator,
    )
    validate_label_sets_submission(submission, competition, data_config=data_config)
    return submission


#: Label kind -> (``(thresholds, *, classes, key, method) -> (thresholds, source)``, checked
#: before any file is read; ``(competition, blended values, thresholds, data_config) ->
#: submission``).
_BLEND_RULES: dict[str, tuple[Callable[..., tuple], Callable[..., pd.DataFrame]]] = {
    "single": (_no_thresholds, _blend_single),
    "multi": (_multi_thresholds, _blend_multi),
}


def blend_submission(
    paths: Sequence[str | os.PathLike],
    *,
    data_dir: str | os.PathLike,
    out: str | os.PathLike,
    method: str = "mean",
    weights: Sequence[float] | None = None,
    data_config: DataConfig | None = None,
    thresholds: float | Sequence[float] | np.ndarray | str | os.PathLike | None = None,
    thresholds_key: str | None = None,
) -> BlendResult:
    """Blend probability files and write the submission and its probabilities file.

    Single-label: the most probable class of the blend.  Multi-label
    (``data_config.label_kind == "multi"``): :data:`MULTILABEL_BLENDS` label by label, a
    label present where the blended score is ``>=`` its threshold (0.5 by default, or per
    label from a run's ``thresholds.json``: :func:`decision_thresholds`), written in the
    sample submission's format: label lists joined by ``data.label_separator``, or one
    column per label holding the blended scores (the thresholds do not change those).

    Parameters
    ----------
    paths, method, weights
        As :func:`blend_probabilities`.
    data_dir : str or os.PathLike
        Competition folder; the files must list ``test.csv``'s ids in order and one column
        per class.
    out : str or os.PathLike
        The submission CSV; the blend goes to ``NAME.probabilities.csv`` beside it.
    data_config : DataConfig, optional
        The competition's names, task and label separator.
    thresholds : float, sequence of float, str or os.PathLike, optional
        Multi-label only: the decision thresholds (:func:`decision_thresholds`), e.g.
        ``"RUN/thresholds.json"``; default 0.5 for every label.
    thresholds_key : str, optional
        The ``thresholds.json`` entry to apply (default: ``method``, whose thresholds the
        run tuned on its OOF blend of the same name).

    Returns
    -------
    BlendResult

    Raises
    ------
    ConfigError
        Thresholds given for a single-label competition, or bad thresholds.
    SubmissionError
        Files that do not match ``test.csv``, the classes or each other.
    """
    competition, data_config = _competition(data_dir, data_config)
    kind = data_config.label_kind
    resolve, make = _rule(_BLEND_RULES, kind, "blend")
    cut, source = resolve(
        thresholds, classes=competition.classes, key=thresholds_key, method=method
    )
    blend = blend_probabilities(paths, method=method, weights=weights, label_kind=kind)
    _check_ids(
        Path(paths[0]),
        blend.iloc[:, 0].tolist(),
        competition.test["filename"].tolist(),
        "test.csv",
    )
    values = _in_class_order(
        blend.iloc[:, 1:].to_numpy(np.float64), blend.columns[1:], competition, Path(paths[0])
    )
    submission = make(competition, values, cut, data_config)
    proba_df = pd.DataFrame(values, columns=list(competition.classes))
    proba_df.insert(0, competition.submission_columns[0], submission.iloc[:, 0].to_numpy())
    out = Path(out)
    write_csv(probabilities_path(out), proba_df)
    write_csv(out, submission)  # last: it exists only with its companion
    return BlendResult(
        submission=out,
        probabilities=probabilities_path(out),
        method=method,
        inputs=[Path(p) for p in paths],
        thresholds=cut,
        thresholds_from=source,
    )


# ---------------------------------------------------------------------------- gathering
