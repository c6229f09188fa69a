"""Cross-validation folds, stored as data.

The fold of every training clip is drawn once with scikit-learn's
:class:`~sklearn.model_selection.StratifiedKFold` (or
:class:`~sklearn.model_selection.StratifiedGroupKFold` when clips come in groups, e.g.
near-duplicates that must stay together), written to ``RUN/folds.csv``
(``filename,label,fold[,group]``) and reused by every architecture of the run, so their
out-of-fold predictions are comparable and can be ensembled.

Multi-label targets (a 0/1 array ``Y (n_clips, n_labels)``) are split by
:func:`make_multilabel_folds` with ``iterstrat``'s ``MultilabelStratifiedKFold`` (iterative
stratification, Sechidis et al. 2011), at group level when clips come in groups.

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
from numpy.typing import ArrayLike
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from ..config import Config
from ..errors import ConfigError, TrainingError
from ..fileio import write_csv
from .competition import Competition

__all__ = [
    "check_fold_counts",
    "check_multilabel_fold_counts",
    "load_or_create_folds",
    "make_folds",
    "make_multilabel_folds",
    "read_folds",
]


def _check_n_folds(n_folds: object) -> None:
    if not isinstance(n_folds, int) or isinstance(n_folds, bool) or n_folds < 2:
        raise ConfigError("train.n_folds", n_folds, "must be an integer >= 2")


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
    _check_n_folds(n_folds)
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


# ---------------------------------------------------------------------------- multi-label
def _multilabel_targets(y: ArrayLike) -> np.ndarray:
    """``y`` as a boolean ``(n_clips, n_labels)`` array, or a :class:`TrainingError`."""
    arr = np.asarray(y)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise TrainingError(
            "make_multilabel_folds: needs a non-empty 2-d 0/1 array (n_clips, n_labels), "
            f"got shape {arr.shape}"
        )
    if arr.dtype.kind not in "biuf" or not np.isin(arr, (0, 1)).all():
        raise TrainingError(
            f"make_multilabel_folds: Y must hold only 0 and 1 (one column per label), got "
            f"dtype {arr.dtype} with values {np.unique(arr)[:5].tolist()}"
        )
    return arr.astype(bool)


def _group_codes(groups: Sequence[object], n_clips: int) -> np.ndarray:
    groups = np.asarray(groups, dtype=object)
    if groups.shape != (n_clips,):
        raise TrainingError(
            f"make_multilabel_folds: {len(groups)} groups for {n_clips} clips; need one per clip"
        )
    codes = pd.factorize(groups, sort=True)[0]
    if (codes < 0).any():
        raise TrainingError(
            f"make_multilabel_folds: clip {int(np.argmax(codes < 0))} has no group (NaN/None); "
            "every clip needs one"
        )
    return codes


def _group_presence(y: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """One row per group: a label is present when any clip of the group holds it."""
    presence = np.zeros((int(codes.max()) + 1, y.shape[1]), dtype=bool)
    np.logical_or.at(presence, codes, y)
    return presence


def check_multilabel_fold_counts(
    y: ArrayLike,
    *,
    n_folds: int,
    groups: Sequence[object] | None = None,
    classes: Sequence[str] | None = None,
) -> None:
    """Fail unless every label has at least ``n_folds`` positive clips (or distinct groups).

    The multi-label counterpart of :func:`check_fold_counts`; :func:`make_multilabel_folds`
    calls it.

    Parameters
    ----------
    y : array-like of 0/1, shape (n_clips, n_labels)
        Label presence of every clip.
    n_folds : int
        Number of folds (>= 2).
    groups : sequence, optional
        Group of every clip; then a label counts the distinct groups holding it.
    classes : sequence of str, optional
        Label names in column order, used in the message (default: column indices).

    Raises
    ------
    ConfigError
        ``n_folds`` is not an integer >= 2.
    TrainingError
        ``y`` is not a non-empty 2-d 0/1 array, ``groups`` or ``classes`` of the wrong
        length, or a label with fewer positive clips (groups) than folds; the message names
        ``train.n_folds``, the labels, and a fold count that works (or, for labels with a
        single clip or group, says to drop or merge them).
    """
    _check_n_folds(n_folds)
    y = _multilabel_targets(y)
    if classes is not None and len(classes) != y.shape[1]:
        raise TrainingError(
            f"make_multilabel_folds: {len(classes)} class names for {y.shape[1]} label columns"
        )
    names = [str(c) for c in classes] if classes is not None else list(range(y.shape[1]))
    if groups is not None:
        y = _group_presence(y, _group_codes(groups, len(y)))
    counts = dict(zip(names, y.sum(axis=0).astype(int).tolist(), strict=True))
    unit = "positive clips" if groups is None else "distinct groups holding them"
    what = "label(s)" if classes is not None else "label column(s)"
    too_few = {k: v for k, v in counts.items() if v < n_folds}
    if not too_few:
        return
    largest = min(counts.values())  # the most folds every label can fill
    if largest >= 2:
        advice = f"Lower train.n_folds to {largest} or add clips of those labels."
    else:
        single = {k: v for k, v in counts.items() if v < 2}
        one = "positive clips" if groups is None else "groups holding them"
        advice = (
            f"{what.capitalize()} {single} have fewer than 2 {one}, so not even 2 folds "
            "work: drop those labels (or their clips) or merge them into another label, "
            "or add clips of them."
        )
    raise TrainingError(
        f"train.n_folds = {n_folds}, but {what} {too_few} have fewer {unit} than folds: "
        f"every fold needs at least one positive of each label. {advice}"
    )


def make_multilabel_folds(
    y: ArrayLike,
    *,
    n_folds: int,
    seed: int,
    groups: Sequence[object] | None = None,
) -> np.ndarray:
    """Assign every clip to one of ``n_folds`` folds, stratified over all labels at once.

    ``iterstrat``'s ``MultilabelStratifiedKFold(n_folds, shuffle=True, random_state=seed)``
    (iterative stratification): the labels are handled rarest first, each label's clips
    going to the fold that still lacks the most of it.  With groups the split is drawn over
    groups (a group holds a label when any of its clips does) and every clip gets its
    group's fold, so a group never spans two folds.

    Parameters
    ----------
    y : array-like of 0/1, shape (n_clips, n_labels)
        Label presence of every clip.
    n_folds : int
        Number of folds (>= 2).
    seed : int
        Shuffling and tie-breaking seed: the same ``y``, groups and seed always give the
        same folds.
    groups : sequence, optional
        Group of every clip (e.g. near-duplicates); clips of one group always share a fold.

    Returns
    -------
    numpy.ndarray of int64, shape (n_clips,)
        Fold index in ``[0, n_folds)`` of every clip.

    Raises
    ------
    ConfigError
        ``n_folds`` is not an integer >= 2.
    TrainingError
        See :func:`check_multilabel_fold_counts`.

    Notes
    -----
    Iterative stratification is greedy: a label's clips that were already placed on behalf
    of a rarer label are never moved.  Each label's count per fold is usually within one
    clip (group) of ``count / n_folds``, but that is not guaranteed: with many folds and
    labels that share many clips, the most common label (handled last) can be off by two or
    more in some fold.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([[1, 0], [1, 1], [0, 1], [1, 0], [0, 1], [1, 1]])
    >>> folds = make_multilabel_folds(y, n_folds=2, seed=0)
    >>> [y[folds == k].sum(axis=0).tolist() for k in range(2)]
    [[2, 2], [2, 2]]
    """
    check_multilabel_fold_counts(y, n_folds=n_folds, groups=groups)
    # Imported here: iterstrat subclasses private scikit-learn classes, so a scikit-learn
    # release that moves them breaks only multi-label folds, not the whole package.
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    y = _multilabel_targets(y)
    if groups is None:
        rows, owner = y, np.arange(len(y))
    else:
        owner = _group_codes(groups, len(y))
        rows = _group_presence(y, owner)
    if rows.shape[1] == 1:  # the splitter needs >= 2 columns; the complement balances the same
        rows = np.hstack([rows, ~rows])
    splitter = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    row_fold = np.full(len(rows), -1, dtype=np.int64)
    for k, (_, valid) in enumerate(splitter.split(np.zeros((len(rows), 1)), rows)):
        row_fold[valid] = k
    return row_fold[owner]


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
