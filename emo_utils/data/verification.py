"""Verification competitions: identity-labelled training clips, trial pairs, identity folds.

The folder of a verification competition::

    DATA/
      train.csv     file,identity[,more]   data.filename_column, data.label_column; other
                                            columns (e.g. a recording period) kept as metadata
      test.csv      id,file_a,file_b        data.test_csv; verification.pair_id_column,
                                            file_a_column, file_b_column
      train/ test/                          audio (data.train_audio_dir, data.test_audio_dir)

:func:`load_verification` reads it into a :class:`~emo_utils.data.competition.Competition`
whose ``train`` rows are the clips labelled with their identity (``label``) and whose
``test`` rows are the distinct files of the trials, in order of first use, so the feature
cache and the model registry work on it unchanged; the trials themselves come back beside
it.

Folds (:func:`make_identity_folds`) are identity-disjoint: every clip of an identity is in
the same fold, so validation always scores identities the model never saw, as the
challenge does.  They are drawn with scikit-learn's
:class:`~sklearn.model_selection.GroupKFold` (folds balanced in clips) after a seeded
shuffle of the identities, and saved as ``RUN/folds.csv`` like every task's folds
(:func:`emo_utils.data.folds.load_or_create_folds`).

Examples
--------
>>> make_identity_folds(["a", "a", "b", "b", "c", "c"], n_folds=3, seed=0).tolist()
[0, 0, 2, 2, 1, 1]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from ..config import Config
from ..errors import ConfigError, DataError, TrainingError
from .competition import (
    Competition,
    _check_inside,
    _read_csv,
    resolve_audio_path,
)
from .labels import read_single_labels

__all__ = [
    "VerificationData",
    "check_identity_fold_counts",
    "load_verification",
    "make_identity_folds",
]


def check_identity_fold_counts(identities: Sequence[object], *, n_folds: int) -> None:
    """Fail unless there are at least ``n_folds`` identities with two clips each.

    Every validation fold needs a same-identity trial, so every fold needs an identity
    with at least two clips.

    Raises
    ------
    ConfigError
        ``n_folds`` is not an integer >= 2.
    TrainingError
        Fewer identities with two or more clips than folds (the message says how many).
    """
    if not isinstance(n_folds, int) or isinstance(n_folds, bool) or n_folds < 2:
        raise ConfigError("train.n_folds", n_folds, "must be an integer >= 2")
    counts = pd.Series(np.asarray(identities, dtype=object)).value_counts()
    usable = int((counts >= 2).sum())
    if usable < n_folds:
        raise TrainingError(
            f"train.n_folds = {n_folds}, but only {usable} identities have two or more clips: "
            "every validation fold needs a same-identity trial. Lower train.n_folds or add "
            "clips."
        )


def make_identity_folds(identities: Sequence[object], *, n_folds: int, seed: int) -> np.ndarray:
    """Identity-disjoint folds, balanced in clips and seeded.

    Parameters
    ----------
    identities : sequence, length n_clips
        Identity of every clip.
    n_folds : int
        Number of folds (>= 2, at most the number of identities with two clips).
    seed : int
        The same identities and seed always give the same folds.

    Returns
    -------
    numpy.ndarray of int64, shape (n_clips,)
        Fold of every clip; all clips of one identity share it.
    """
    check_identity_fold_counts(identities, n_folds=n_folds)
    names, codes = np.unique(np.asarray(identities, dtype=object).astype(str), return_inverse=True)
    # GroupKFold assigns the largest groups first and breaks ties by group code: a seeded
    # relabelling of the identities makes the folds depend on the seed.
    shuffled = np.random.default_rng(seed).permutation(len(names))[codes]
    folds = np.full(len(codes), -1, dtype=np.int64)
    for k, (_, valid) in enumerate(GroupKFold(n_splits=n_folds).split(codes, groups=shuffled)):
        folds[valid] = k
    return folds


@dataclass(frozen=True)
class VerificationData:
    """A verification competition folder, read and checked.

    Attributes
    ----------
    competition : Competition
        ``train``: ``filename, label`` (the identity), ``path``; ``test``: ``filename,
        path``, one row per distinct trial file; ``classes``: the sorted identities;
        ``submission_columns``: ``(pair id column, score column)``.
    trials : pandas.DataFrame
        ``id, file_a, file_b`` (the test CSV's trials in order) plus ``rows_a, rows_b``:
        the rows of ``competition.test`` of the files of each side (one file, or several
        with ``verification.file_separator``), as tuples.
    metadata : pandas.DataFrame
        The other columns of ``train.csv``, one row per training clip.
    """

    competition: Competition
    trials: pd.DataFrame
    metadata: pd.DataFrame


def _side_files(value: str, separator: str) -> tuple[str, ...]:
    """The file names of one trial side: the whole value, or its ``separator``-split parts."""
    if not separator:
        return (value,) if value else ()
    return tuple(dict.fromkeys(p.strip() for p in value.split(separator) if p.strip()))


def load_verification(data_dir: str | os.PathLike, config: Config) -> VerificationData:
    """Read and validate a verification competition folder (see the module docstring).

    Raises
    ------
    DataError
        Missing folder, CSV or column; blank identity; a file listed twice in ``train.csv``
        with two identities; blank or repeated trial ids; a trial of a file with itself;
        file names leading outside the data folder (unless ``data.allow_outside_paths``).
    """
    dc, vc = config.data, config.verification
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found")
    notes: list[dict[str, str]] = []
    train_csv = root / dc.train_csv
    raw = _read_csv(
        train_csv,
        {dc.filename_column: "data.filename_column", dc.label_column: "data.label_column"},
    )
    labels, classes = read_single_labels(raw, train_csv, dc, (), notes)
    train = pd.DataFrame({"filename": raw[dc.filename_column].str.strip(), "label": labels})
    metadata = raw.drop(columns=[dc.filename_column, dc.label_column]).reset_index(drop=True)
    per_file = train.groupby("filename", sort=False)["label"].nunique()
    conflicts = per_file[per_file > 1].index.tolist()
    if conflicts:
        raise DataError(f"{train_csv}: file(s) listed with two identities: {conflicts[:10]}")
    keep = ~train["filename"].duplicated()
    train, metadata = train[keep].reset_index(drop=True), metadata[keep].reset_index(drop=True)
    if len(classes) < 2:
        raise DataError(f"{train_csv}: needs at least 2 identities, found {list(classes)}")

    test_csv = root / dc.test_csv
    columns = {
        vc.pair_id_column: "verification.pair_id_column",
        vc.file_a_column: "verification.file_a_column",
        vc.file_b_column: "verification.file_b_column",
    }
    pairs = _read_csv(test_csv, columns)
    trials = pd.DataFrame(
        {
            "id": pairs[vc.pair_id_column].str.strip(),
            "file_a": pairs[vc.file_a_column].str.strip(),
            "file_b": pairs[vc.file_b_column].str.strip(),
        }
    )
    sides = {
        side: [_side_files(v, vc.file_separator) for v in trials[side]]
        for side in ("file_a", "file_b")
    }
    blank = [
        i + 2
        for i, (a, b) in enumerate(zip(sides["file_a"], sides["file_b"], strict=True))
        if not a or not b
    ]
    if blank:
        raise DataError(f"{test_csv}: blank file name on line(s) {blank[:20]}")
    repeated = trials["id"][trials["id"].duplicated()].unique().tolist()
    if repeated:
        raise DataError(f"{test_csv}: trial id(s) listed more than once: {repeated[:10]}")
    # Keep the order of first use: trial by trial, a before b.
    files = list(
        dict.fromkeys(
            f for a, b in zip(sides["file_a"], sides["file_b"], strict=True) for f in (*a, *b)
        )
    )
    test = pd.DataFrame({"filename": files})
    row = {name: i for i, name in enumerate(files)}
    for side, rows in (("file_a", "rows_a"), ("file_b", "rows_b")):
        trials[rows] = [tuple(row[f] for f in names) for names in sides[side]]

    train_dir, test_dir = root / dc.train_audio_dir, root / dc.test_audio_dir
    train["path"] = [str(resolve_audio_path(train_dir, n)) for n in train["filename"]]
    test["path"] = [str(resolve_audio_path(test_dir, n)) for n in test["filename"]]
    if not dc.allow_outside_paths:
        _check_inside(train_csv, train["filename"], train_dir, root)
        _check_inside(test_csv, test["filename"], test_dir, root)
    competition = Competition(
        root=root,
        train=train,
        test=test,
        classes=classes,
        submission_columns=(vc.pair_id_column, vc.score_column),
        notes=notes,
    )
    return VerificationData(competition=competition, trials=trials, metadata=metadata)
