"""Reading the training targets of ``train.csv``: one label per clip, or a set of labels.

:data:`LABEL_READERS` maps a task's label kind (:attr:`emo_utils.tasks.Task.label_kind`)
to the reader :func:`~emo_utils.data.competition.load_competition` applies:

``single``
    one label per row (``label_column``): stripped of surrounding whitespace; spellings
    that differ only in case are merged to their most common spelling, with a warning; a
    blank label is an error listing the rows.
``multi``
    a set of labels per row, either a label list in ``label_column`` split on
    ``data.label_separator`` (Freesound's ``fname,labels`` with ``"Bark,Dog"``, or
    space-separated), or one 0/1 column per label (``data.label_columns``, else the
    sample submission's label columns).  Labels are cleaned as for ``single`` (whitespace,
    case merging with a warning), repeated labels of a row are kept once, and an empty list
    is an error unless ``data.empty_label`` names a label for it (e.g. ``"Silence"``).

Either way a row's label is one string: the class name, or the sorted label names joined
by :data:`LABEL_JOIN` (``"Bark;Dog"``), which is what ``folds.csv`` and the OOF files hold.

Examples
--------
>>> split_labels("Bark;Dog")
['Bark', 'Dog']
>>> split_labels("")
[]
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from ..config import DataConfig
from ..errors import DataError, EmoUtilsWarning

__all__ = ["LABEL_JOIN", "LABEL_READERS", "join_labels", "split_label_list", "split_labels"]

#: Joins the sorted labels of a multi-label row in ``folds.csv`` and the OOF files.
LABEL_JOIN = ";"

#: ``(train DataFrame, csv path, DataConfig, sample submission columns, notes)``
#: -> ``(label per row, classes)``.
LabelReader = Callable[
    [pd.DataFrame, Path, DataConfig, Sequence[str], list[dict[str, str]]],
    tuple[pd.Series, tuple[str, ...]],
]


def split_label_list(text: object, separator: str) -> list[str]:
    """The labels of a label-list cell (a CSV's or a submission's).

    Split on ``separator``, each part stripped of surrounding whitespace, blank parts left
    out (an empty cell gives ``[]``).

    Examples
    --------
    >>> split_label_list(" Bark, Dog ,", ",")
    ['Bark', 'Dog']
    """
    return [part.strip() for part in str(text).split(separator) if part.strip()]


def split_labels(label: str) -> list[str]:
    """The labels of a row's label string (``LABEL_JOIN``-joined); ``[]`` for ``""``."""
    return [part for part in str(label).split(LABEL_JOIN) if part]


def join_labels(labels: Sequence[str]) -> str:
    """The label string of a set of labels: sorted, distinct, joined by :data:`LABEL_JOIN`."""
    return LABEL_JOIN.join(sorted(set(labels)))


def _canonical_spellings(
    labels: Sequence[str], path: Path, notes: list[dict[str, str]]
) -> dict[str, str]:
    """Map every spelling to the most common spelling of its case-folded form (with warnings)."""
    spellings: dict[str, Counter] = {}
    for label in labels:
        spellings.setdefault(label.casefold(), Counter())[label] += 1
    canonical = {}
    for counts in spellings.values():
        # Most common spelling wins; ties go to the alphabetically first one.
        best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        canonical.update({spelling: best for spelling in counts})
        if len(counts) > 1:
            reason = f"labels differing only in case merged to {best!r}: {sorted(counts)}"
            warnings.warn(f"{path}: {reason}", EmoUtilsWarning, stacklevel=4)
            notes.append({"file": str(path), "reason": reason})
    return canonical


def read_single_labels(
    train: pd.DataFrame,
    path: Path,
    config: DataConfig,
    sample_columns: Sequence[str],
    notes: list[dict[str, str]],
) -> tuple[pd.Series, tuple[str, ...]]:
    """One label per row, from ``label_column``; see the module docstring."""
    if config.label_column not in train.columns:
        raise DataError(
            f"{path}: missing column(s) {[config.label_column]}; found {list(train.columns)} "
            f"(config data.label_column = {config.label_column!r}; set it to the CSV's column "
            "name)"
        )
    labels = train[config.label_column].str.strip()
    blank = [i + 2 for i, label in enumerate(labels) if label == ""]
    if blank:
        raise DataError(f"{path}: blank label on line(s) {blank[:20]} ({len(blank)} in all)")
    labels = labels.map(_canonical_spellings(labels.tolist(), path, notes))
    return labels, tuple(sorted(labels.unique()))


def _label_lists(train: pd.DataFrame, path: Path, config: DataConfig) -> list[list[str]]:
    """The label list of every row, from ``label_column`` split on ``label_separator``."""
    return [split_label_list(text, config.label_separator) for text in train[config.label_column]]


def _column_lists(train: pd.DataFrame, path: Path, columns: Sequence[str]) -> list[list[str]]:
    """The label list of every row, from 0/1 columns (one per label)."""
    missing = [c for c in columns if c not in train.columns]
    if missing:
        raise DataError(
            f"{path}: missing label column(s) {missing} (data.label_columns or the sample "
            f"submission's columns); found {list(train.columns)}"
        )
    values = train[list(columns)].apply(lambda col: col.str.strip())
    bad = [
        f"line {i + 2} column {col!r}: {values.at[i, col]!r}"
        for col in columns
        for i in values.index[~values[col].isin(["0", "1", "0.0", "1.0"])]
    ]
    if bad:
        raise DataError(
            f"{path}: label columns must hold 0 or 1; {len(bad)} cell(s) do not: {bad[:10]}"
        )
    present = values.isin(["1", "1.0"])
    return [[c for c in columns if present.at[i, c]] for i in values.index]


def read_label_sets(
    train: pd.DataFrame,
    path: Path,
    config: DataConfig,
    sample_columns: Sequence[str],
    notes: list[dict[str, str]],
) -> tuple[pd.Series, tuple[str, ...]]:
    """A set of labels per row (label list or 0/1 columns); see the module docstring."""
    if config.label_columns:
        lists = _column_lists(train, path, config.label_columns)
    elif config.label_column in train.columns:
        lists = _label_lists(train, path, config)
    elif len(sample_columns) > 2:
        lists = _column_lists(train, path, sample_columns[1:])
    else:
        raise DataError(
            f"{path}: no labels found: neither the label-list column {config.label_column!r} "
            "(data.label_column) nor 0/1 label columns (data.label_columns, or a sample "
            f"submission with one column per label); found {list(train.columns)}"
        )
    flat = [label for labels in lists for label in labels]
    canonical = _canonical_spellings(flat, path, notes)
    clashing = sorted({label for label in canonical.values() if LABEL_JOIN in label})
    if clashing:
        raise DataError(
            f"{path}: label(s) {clashing[:10]} contain {LABEL_JOIN!r}, which joins the labels "
            "of a clip in the run files; rename them"
        )
    empty = [i + 2 for i, labels in enumerate(lists) if not labels]
    if empty and not config.empty_label:
        raise DataError(
            f"{path}: {len(empty)} row(s) have no label, on line(s) {empty[:20]}; set "
            "data.empty_label to the label such clips get (e.g. Silence), or drop the rows"
        )
    joined = [
        join_labels([canonical[label] for label in labels] or [config.empty_label])
        for labels in lists
    ]
    if empty:
        reason = (
            f"{len(empty)} row(s) without a label given data.empty_label {config.empty_label!r}"
        )
        notes.append({"file": str(path), "reason": reason})
    classes = tuple(sorted({label for text in joined for label in split_labels(text)}))
    return pd.Series(joined, index=train.index, dtype=object), classes


#: Label kind (:attr:`emo_utils.tasks.Task.label_kind`) -> reader.
LABEL_READERS: dict[str, LabelReader] = {"single": read_single_labels, "multi": read_label_sets}
