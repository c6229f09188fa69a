"""How many clips hold each label, for one label per clip or a set of labels per clip.

A training row's label is one string (:mod:`emo_utils.data.labels`): the class name, or
for multi-label tasks the sorted label names joined by ``";"``
(:data:`~emo_utils.data.labels.LABEL_JOIN`).  :data:`LABEL_KINDS` maps a task's label kind
(:attr:`emo_utils.tasks.Task.label_kind`, ``config.data.label_kind``) to how such a string
splits into labels, so the EDA plots and the counts below serve both kinds.

================================  ========================================================
:func:`clip_labels`               the labels of every row's label string
:func:`label_counts`              clips holding each label, with their share
:func:`submission_label_counts`   test rows holding each label in a submission CSV
================================  ========================================================

Examples
--------
>>> label_counts(["Music;Speech", "Speech", ""], label_kind="multi")["clips"].to_dict()
{'Speech': 2, 'Music': 1, '(none)': 1}
>>> label_counts(["joy", "sad", "joy"])["clips"].to_dict()
{'joy': 2, 'sad': 1}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..data.labels import LABEL_JOIN, split_label_list
from ..errors import ConfigError, DataError

if TYPE_CHECKING:
    from ..config import DataConfig

__all__ = [
    "LABEL_KINDS",
    "NO_LABEL",
    "LabelKind",
    "clip_labels",
    "label_counts",
    "label_kind_of",
    "submission_label_counts",
]

#: Name :func:`label_counts` gives the clips without any label (multi-label only).
NO_LABEL = "(none)"


@dataclass(frozen=True)
class LabelKind:
    """How the reports read one kind of label string.

    Attributes
    ----------
    split : callable
        ``(label string, separator) -> labels`` of one row.
    noun : str
        What a label is called in titles: ``"class"`` or ``"label"``.
    note : str
        Appended to clip counts in titles (``""``, or that a clip may hold several labels).
    """

    split: Callable[[str, str], list[str]]
    noun: str
    note: str = ""


#: ``Task.label_kind`` -> :class:`LabelKind`.
LABEL_KINDS: dict[str, LabelKind] = {
    "single": LabelKind(split=lambda text, separator: [str(text)], noun="class"),
    "multi": LabelKind(
        split=split_label_list, noun="label", note="; a clip may hold several labels"
    ),
}


def label_kind_of(name: str) -> LabelKind:
    """The :class:`LabelKind` registered as ``name``; :class:`ConfigError` if unknown."""
    try:
        return LABEL_KINDS[name]
    except KeyError:
        raise ConfigError("label_kind", name, f"known: {sorted(LABEL_KINDS)}") from None


def clip_labels(
    labels: Sequence[str], *, label_kind: str = "single", separator: str = LABEL_JOIN
) -> list[list[str]]:
    """The labels of every row's label string.

    Parameters
    ----------
    labels : sequence of str
        One label string per clip (``competition.train["label"]``, a submission column).
    label_kind : {"single", "multi"}
        ``config.data.label_kind``: one label per string, or labels joined by ``separator``.
    separator : str
        Joins a multi-label row's labels (default ``";"``, the run files' join; a
        submission's is ``config.data.label_separator``).

    Returns
    -------
    list of list of str
        One list per row (multi-label: stripped, blanks dropped, possibly empty).

    Raises
    ------
    ConfigError
        Unknown ``label_kind``.
    """
    split = label_kind_of(label_kind).split
    return [split(text, separator) for text in labels]


def label_counts(
    labels: Sequence[str], *, label_kind: str = "single", separator: str = LABEL_JOIN
) -> pd.DataFrame:
    """How many clips hold each label.

    Parameters
    ----------
    labels : sequence of str
        One label string per clip.
    label_kind : {"single", "multi"}
        See :func:`clip_labels`.
    separator : str
        See :func:`clip_labels`.

    Returns
    -------
    pandas.DataFrame
        Index: the labels, most frequent first (``pandas.Series.value_counts`` order), then
        :data:`NO_LABEL` when some multi-label clips hold no label; columns ``clips`` (int)
        and ``share`` (of all clips; multi-label shares can sum to more than 1).
    """
    lists = clip_labels(labels, label_kind=label_kind, separator=separator)
    counts = pd.Series([label for row in lists for label in row], dtype=object).value_counts()
    empty = sum(not row for row in lists)
    if empty:
        counts = pd.concat([counts, pd.Series({NO_LABEL: empty})])
    counts.index.name = label_kind_of(label_kind).noun
    n = max(1, len(lists))
    return pd.DataFrame({"clips": counts.astype(np.int64), "share": counts / n})


def _count_label_column(submission: pd.DataFrame, config: DataConfig) -> pd.DataFrame:
    """One label (single) or one label list (multi) in the second column."""
    counts = label_counts(
        submission.iloc[:, 1].fillna("").astype(str).tolist(),
        label_kind=config.label_kind,
        separator=config.label_separator,
    )
    return counts.rename(columns={"clips": "test rows"})


def _count_probability_columns(submission: pd.DataFrame, config: DataConfig) -> pd.DataFrame:
    """One probability column per label: the decisions are not in the file."""
    proba = submission.iloc[:, 1:].apply(pd.to_numeric, errors="coerce")
    if proba.isna().to_numpy().any():
        raise DataError("submission: the label columns must hold numbers (probabilities)")
    out = pd.DataFrame(
        {
            "expected test rows": proba.sum(axis=0).astype(float),
            "mean probability": proba.mean(axis=0).astype(float),
        }
    )
    out.index.name = "label"
    return out.sort_values("expected test rows", ascending=False, kind="stable")


def submission_label_counts(submission: pd.DataFrame, config: DataConfig) -> pd.DataFrame:
    """Test rows per label of a submission, for one label per row or a label list per row.

    Parameters
    ----------
    submission : pandas.DataFrame
        The submission CSV read as strings (``dtype=str, keep_default_na=False``): the file
        name column, then the label column (a class, or labels joined by
        ``config.label_separator``), or one probability column per label.
    config : DataConfig
        ``config.data`` of the run: its label kind and label separator.

    Returns
    -------
    pandas.DataFrame
        One label column: :func:`label_counts` with ``clips`` renamed ``test rows``.
        Probability columns (multi-label submissions that hold no decisions): per label, the
        ``expected test rows`` (sum of the probabilities) and the ``mean probability``.

    Raises
    ------
    DataError
        Fewer than two columns, or probability columns that are not numbers.
    """
    if submission.shape[1] < 2:
        raise DataError(
            f"submission: expected a file name column and label column(s), got {list(submission)}"
        )
    count = _count_label_column if submission.shape[1] == 2 else _count_probability_columns
    return count(submission, config)
