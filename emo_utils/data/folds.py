"""Cross-validation folds, stored as data.

The fold of every training clip is drawn once with scikit-learn's
:class:`~sklearn.model_selection.StratifiedKFold` (or
:class:`~sklearn.model_selection.StratifiedGroupKFold` when clips come in groups, e.g.
near-duplicates that must stay together), written to ``RUN/folds.csv``
(``filename,label,fold[,group]``) and reused by every architecture of the run, so their
out-of-fold predictions are comparable and can be ensembled.

Examples
--------
>>> from emo_utils.data.folds import make_folds
>>> make_folds(["a", "a", "b", "b"], n_folds=2, seed=0).tolist()
[1, 0, 0, 1]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from ..config import Config
from ..errors import ConfigError, TrainingError
from ..fileio import write_csv
from .competition import Competition

__all__ = ["check_fold_counts", "load_or_create_folds", "make_folds", "read_folds"]

#: Name of the folds file inside a run folder.


def check_fold_counts(
    labels: Sequence[object], *, n_folds: int, groups: Sequence[object] | None = None
) -> None:
    """Fail unless every class has at least ``n_folds`` clips (or distinct groups).

    :func:`make_folds` calls it; the pipeline also calls it on ``train.csv``'s labels before
    any work starts.

    Raises
    ------
    ConfigError
        ``n_folds`` is not an integer >= 2.
    TrainingError
        No labels, ``groups`` of the wrong length, or a class with fewer clips (groups) than
        folds; the message names ``train.n_folds`` and the classes.
    """
    labels = np.asarray(labels, dtype=object)
    if not isinstance(n_folds, int) or isinstance(n_folds, bool) or n_folds < 2:
        raise ConfigError("train.n_folds", n_folds, "must be an integer >= 2")
    if labels.ndim != 1 or len(labels) == 0:
        raise TrainingError("make_folds: needs a non-empty 1-d sequence of labels")
    counts = pd.Series(labels).value_counts()
    if groups is not None:
        groups = np.asarray(groups, dtype=object)
        if groups.shape != labels.shape:
            raise TrainingError(
                f"make_folds: {len(groups)} groups for {len(labels)} labels; need one per clip"
            )
        counts = (
            pd.DataFrame({"label": labels, "group": groups}).groupby("label")["group"].nunique()
        )
    unit = "clips" if groups is None else "distinct groups"
    too_few = {str(k): int(v) for k, v in counts.items() if v < n_folds}
    if too_few:
        largest = int(counts.min())  # the most folds every class can fill
        if largest >= 2:
            advice = f"Lower train.n_folds to {largest} or add clips of those classes."
        else:
            single = sorted(str(k) for k, v in counts.items() if v < 2)
            advice = (
                f"Class(es) {single} have a single {unit[:-1]}, so not even 2 folds work: "
                "drop those rows or merge the class into another, or add clips of it."
            )
        raise TrainingError(
            f"train.n_folds = {n_folds}, but class(es) {too_few} have fewer {unit} than folds: "
            f"every fold needs at least one of each class. {advice}"
        )


def make_folds(
    labels: Sequence[object],
    *,
    n_folds: int,
    seed: int,
    groups: Sequence[object] | None = None,
) -> np.ndarray:
    """Assign every clip to one of ``n_folds`` validation folds, stratified by label.

    Parameters
    ----------
    labels : sequence
        Class label (name or index) of every clip.
    n_folds : int
        Number of folds (>= 2).
    seed : int
        Shuffling seed: the same labels, groups and seed always give the same folds.
    groups : sequence, optional
        Group of every clip; clips of one group always share a fold
        (:class:`~sklearn.model_selection.StratifiedGroupKFold`).

    Returns
    -------
    numpy.ndarray of int64, shape (n_clips,)
        Fold index in ``[0, n_folds)`` of every clip; clip ``i`` is validated in fold
        ``folds[i]`` and trained on in every other fold.

    Raises
    ------
    TrainingError
        A class has fewer clips (or, with groups, fewer groups) than folds, so some fold
        would have no validation clip of it.
    """
    check_fold_counts(labels, n_folds=n_folds, groups=groups)
    labels = np.asarray(labels, dtype=object)
    if groups is not None:
        groups = np.asarray(groups, dtype=object)
    # Only the label order matters to the splitters, not the label values.
    codes = pd.factorize(labels, sort=True)[0]
    folds = np.full(len(labels), -1, dtype=np.int64)
    if groups is None:
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(codes)), codes)
    else:
        group_codes = pd.factorize(groups, sort=True)[0]
        splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(codes)), codes, group_codes)
    for k, (_, valid) in enumerate(splits):
        folds[valid] = k
    return folds


def read_folds(path: str | os.PathLike) -> pd.DataFrame:
    """Read a folds file (``filename,label,fold[,group]``), checking its columns.

    Raises
    ------
    TrainingError
        The file is missing, unreadable or lacks a column.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"{path}: folds file not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TrainingError(
            f"{path}: cannot be read ({exc}); delete it to draw the folds again"
        ) from exc
    missing = [c for c in ("filename", "label", "fold") if c not in df.columns]
    if missing:
        raise TrainingError(
            f"{path}: missing column(s) {missing}; delete it to draw the folds again"
        )
    try:
        df["fold"] = df["fold"].astype(np.int64)
    except ValueError as exc:
        raise TrainingError(f"{path}: column 'fold' holds non-integers ({exc})") from exc
    return df


def load_or_create_folds(
    competition: Competition,
    *,
    path: str | os.PathLike,
    config: Config,
    groups: Sequence[object] | None = None,
    splitter: Callable[..., np.ndarray] | None = None,
) -> pd.DataFrame:
    """The folds of a run: read ``RUN/folds.csv``, or draw and write it the first time.

    Parameters
    ----------
    competition : Competition
        Its ``train`` rows (``filename``, ``label``) are the clips to split.
    path : str or os.PathLike
        The folds file (``RunDir.folds_file``).
    config : Config
        Uses ``train.n_folds``, ``train.seed`` and ``train.use_groups``.
    groups : sequence, optional
        Group of every training row (with ``train.use_groups``); default: the ``group``
        column of ``competition.train``.
    splitter : callable, optional
        ``splitter(labels, *, n_folds, seed, groups) -> fold per clip``: the task's
        (:meth:`emo_utils.tasks.Task.split`); default :func:`make_folds`.

    Returns
    -------
    pandas.DataFrame
        Columns ``filename``, ``label``, ``fold`` (and ``group`` when used), one row per
        training clip, in ``competition.train`` order.

    Raises
    ------
    TrainingError
        Too few clips of a class, or an existing folds file that does not match the
        training rows or ``train.n_folds``.
    ConfigError
        ``train.use_groups`` without any group information.
    """
    path = Path(path)
    splitter = splitter or make_folds
    train = competition.train[["filename", "label"]].reset_index(drop=True)
    n_folds = config.train.n_folds
    if path.is_file():
        return _check_saved_folds(read_folds(path), train, n_folds, path)
    if config.train.use_groups:
        if groups is None:
            if "group" not in competition.train.columns:
                raise ConfigError(
                    "train.use_groups",
                    True,
                    "needs a group per training clip (a 'group' column in competition.train "
                    "or the groups argument)",
                )
            groups = competition.train["group"].tolist()
    else:
        groups = None
    df = train.copy()
    df["fold"] = splitter(
        df["label"].tolist(), n_folds=n_folds, seed=config.train.seed, groups=groups
    )
    if groups is not None:
        df["group"] = [str(g) for g in groups]
    write_csv(path, df)
    return df


def _check_saved_folds(
    saved: pd.DataFrame, train: pd.DataFrame, n_folds: int, path: Path
) -> pd.DataFrame:
    hint = "use a new run folder (or delete it to draw new folds, which invalidates trained models)"
    if saved["filename"].duplicated().any():
        dup = saved["filename"][saved["filename"].duplicated()].tolist()[:5]
        raise TrainingError(f"{path}: file name(s) listed twice {dup}; {hint}")
    by_name = saved.set_index("filename")
    missing = sorted(set(train["filename"]) - set(by_name.index))
    extra = sorted(set(by_name.index) - set(train["filename"]))
    if missing or extra:
        raise TrainingError(
            f"{path}: does not match the training clips ({len(missing)} missing, e.g. "
            f"{missing[:3]}; {len(extra)} unknown, e.g. {extra[:3]}); {hint}"
        )
    aligned = by_name.loc[train["filename"]].reset_index()
    relabelled = (aligned["label"].to_numpy() != train["label"].to_numpy()).nonzero()[0]
    if len(relabelled):
        names = aligned["filename"].iloc[relabelled[:3]].tolist()
        raise TrainingError(f"{path}: labels differ from train.csv for {names}; {hint}")
    found = sorted(set(aligned["fold"].tolist()))
    if found != list(range(n_folds)):
        raise TrainingError(f"{path}: holds folds {found} but train.n_folds = {n_folds}; {hint}")
    return aligned
