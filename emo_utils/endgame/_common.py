"""Shared by the endgame modules: reading and checking submission and probability files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from ..config import DataConfig
from ..data.competition import Competition, load_competition
from ..errors import ConfigError, SubmissionError
from ..fileio import read_csv

_T = TypeVar("_T")


#: A multi-label probability-column submission votes for a label where its value reaches
#: this (``>=``), the fixed cut of every vote input without its own thresholds.
VOTE_PROBABILITY_THRESHOLD = 0.5

#: Float tolerance of "exactly one half" in the multi-label tie rule (shares and mean
#: probabilities are compared with it, as :func:`~emo_utils.ensemble.at_max` does).
_HALF_ATOL = 1e-12

#: Label kind -> (largest allowed probability, how the range is named in errors).  Single-
#: label files need only be non-negative (their rows are compared, not thresholded);
#: multi-label values are per-label probabilities in [0, 1].
_PROBABILITY_RANGE: dict[str, tuple[float, str]] = {
    "single": (np.inf, "negative"),
    "multi": (1.0, "negative or above 1"),
}


# ---------------------------------------------------------------------------- reading
def _competition(
    data_dir: str | os.PathLike, data_config: DataConfig | None
) -> tuple[Competition, DataConfig]:
    data_config = data_config or DataConfig()
    return load_competition(data_dir, data_config), data_config


def _check_ids(path: Path, ids: list[str], expected: list[str], source: str) -> None:
    """Raise :class:`SubmissionError` naming ``path`` and the first row that differs."""
    if ids == expected:
        return
    for row, (got, want) in enumerate(zip(ids, expected, strict=False)):
        if got != want:
            raise SubmissionError(
                f"{path}: id {got!r} at row {row} differs from {source}'s {want!r} "
                "(same ids in the same order needed)"
            )
    raise SubmissionError(f"{path}: has {len(ids)} rows; {source} has {len(expected)}")


def _read_table(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path}: file not found")
    try:
        return read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{path}: cannot be parsed as CSV ({exc})") from exc


def _read_submission(path: Path, competition: Competition) -> pd.DataFrame:
    """One submission file as strings, after checking its columns and ids."""
    df = _read_table(path)
    columns = list(competition.submission_columns)
    if list(df.columns) != columns:
        raise SubmissionError(
            f"{path}: columns {list(df.columns)} differ from the sample submission's {columns}"
        )
    ids = df[columns[0]].str.strip()
    _check_ids(path, ids.tolist(), competition.test["filename"].tolist(), "test.csv")
    df[columns[0]] = ids
    return df


def _read_probabilities(path: Path, *, label_kind: str = "single") -> pd.DataFrame:
    """A probability file: an id column, then numeric, finite, in-range columns."""
    df = _read_table(path)
    if df.shape[1] < 3:
        raise SubmissionError(
            f"{path}: expected an id column and one probability column per class (2 or "
            f"more), found {list(df.columns)}"
        )
    upper, named = _PROBABILITY_RANGE[label_kind]
    values = df.iloc[:, 1:].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values).all(axis=1) | (values < 0).any(axis=1) | (values > upper).any(1)
    if bad.any():
        raise SubmissionError(
            f"{path}: missing, non-numeric, infinite or {named} probabilities at row(s) "
            f"{np.flatnonzero(bad)[:10].tolist()}"
        )
    out = pd.DataFrame(values, columns=list(df.columns[1:]))
    out.insert(0, df.columns[0], df.iloc[:, 0].str.strip())
    return out


def _load_probability_files(
    paths: Sequence[str | os.PathLike], *, label_kind: str = "single"
) -> tuple[np.ndarray, list[str], str, list[str]]:
    """Stack probability files checked to share columns and ids.

    Returns ``(probas (n_files, n_rows, n_columns), ids, id column, value columns)``.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise SubmissionError("no probability files given")
    frames = [_read_probabilities(p, label_kind=label_kind) for p in paths]
    first = frames[0]
    for path, df in zip(paths[1:], frames[1:], strict=True):
        if list(df.columns) != list(first.columns):
            raise SubmissionError(
                f"{path}: columns {list(df.columns)} differ from {paths[0]}'s {list(first.columns)}"
            )
        _check_ids(path, df.iloc[:, 0].tolist(), first.iloc[:, 0].tolist(), str(paths[0]))
    stacked = np.stack([df.iloc[:, 1:].to_numpy(np.float64) for df in frames])
    return stacked, first.iloc[:, 0].tolist(), str(first.columns[0]), list(first.columns[1:])


def _in_class_order(
    values: np.ndarray, columns: Sequence[str], competition: Competition, path: Path
) -> np.ndarray:
    """``values[..., columns]`` reordered to ``competition.classes``; other columns: error."""
    columns = list(columns)
    if sorted(columns) != sorted(competition.classes):
        raise SubmissionError(
            f"{path}: columns {columns} are not the classes {list(competition.classes)}"
        )
    return values[..., [columns.index(c) for c in competition.classes]]


def _names(paths: Sequence[Path]) -> list[str]:
    """Short, distinct names of the input files (file names, else full paths)."""
    names = [p.name for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


# ---------------------------------------------------------------------------- agreement
def _rule(registry: dict[str, _T], label_kind: str, what: str) -> _T:
    """``registry[label_kind]``, or a ConfigError naming the kinds it knows."""
    try:
        return registry[label_kind]
    except KeyError:
        raise ConfigError(
            "data.task",
            label_kind,
            f"no {what} for label kind {label_kind!r}; known: {sorted(registry)}",
        ) from None


# ---------------------------------------------------------------------------- voting
