"""The competition endgame: vote over submission files, blend probability files, gather runs.

Kaggle users often train each architecture in its own kernel and combine at the end.
Three tools do that with the same honesty rules as the rest of the pipeline, for
single-label and multi-label competitions alike (the task is ``data.task`` of the
:class:`~emo_utils.config.DataConfig` given, so ``data_config.label_kind`` picks the rule):

* :func:`vote_submissions` -- vote over submission CSVs (the reference solution's "mode of
  my best submissions").  Single-label: each file votes for its label with its weight; the
  label with the largest summed weight wins.  **Tie-break**: when every input has its
  ``NAME.probabilities.csv`` beside it (:func:`~emo_utils.submission.write_submission`
  writes one), the tied label with the largest weighted sum of probabilities wins;
  otherwise, or if that is tied too, the label of the earliest file (in the order given)
  among the tied labels wins.  Multi-label: a per-label majority, tied labels decided by
  the probability files or else left out (see :func:`vote_submissions`).  The rule of each
  label kind is an entry of :data:`VOTE_RULES`.
* :func:`blend_probabilities` -- weighted ``mean``, ``geometric`` or ``rank`` mean of
  probability files (``*.probabilities.csv`` or ``RUN/predictions/ARCH.csv``);
  :func:`blend_submission` writes the submission (argmax, or multi-label decisions at 0.5
  or at a run's OOF-tuned thresholds) and the blended file.
* :func:`gather_runs` -- copy the architectures of runs trained on the same folds (same
  ``folds.csv``, byte for byte) into one run folder, so OOF ensemble selection, ``predict``
  and ``report`` work across them.  Runs with other folds are refused: their OOF
  predictions would leak when stacked or compared.

Every input is checked against ``test.csv`` (same ids, same order) and the sample
submission's columns; errors name the file and the first difference.

Examples
--------
>>> import numpy as np
>>> rank_mean(np.array([[[0.2, 0.8], [0.6, 0.4]]])).tolist()
[[0.0, 1.0], [1.0, 0.0]]
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .config import Config, DataConfig
from .data.competition import Competition, load_competition
from .data.labels import split_label_list
from .ensemble import (
    at_max,
    check_probas,
    check_weights,
    geometric_mean_proba,
    label_geometric_mean,
    label_mean,
    label_rank_mean,
    label_vote_shares,
    mean_proba,
    vote_shares,
)
from .errors import ConfigError, SubmissionError, TrainingError
from .fileio import atomic_path, read_csv, write_csv, write_json
from .runs import RunDir
from .submission import (
    make_label_sets_submission,
    make_submission,
    probabilities_path,
    validate_label_sets_submission,
    validate_submission,
)
from .tables import markdown_table

__all__ = [
    "BLENDS",
    "BLENDS_BY_KIND",
    "MULTILABEL_BLENDS",
    "VOTE_PROBABILITY_THRESHOLD",
    "VOTE_RULES",
    "BlendResult",
    "VoteResult",
    "VoteRule",
    "agreement_matrix",
    "blend_probabilities",
    "blend_submission",
    "decision_thresholds",
    "gather_runs",
    "label_set_agreement",
    "rank_mean",
    "vote_submissions",
]

_T = TypeVar("_T")

#: Config sections that must be equal in every gathered run (they define the inputs).
SHARED_SECTIONS = ("data", "audio", "features")
#: ``train`` fields that must be equal in every gathered run (they define the folds).
SHARED_TRAIN_FIELDS = ("n_folds", "seed", "use_groups")

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
def agreement_matrix(labels: pd.DataFrame) -> pd.DataFrame:
    """Fraction of rows on which each pair of inputs gives the same label.

    Parameters
    ----------
    labels : pandas.DataFrame
        One column of labels per input, one row per test row.

    Returns
    -------
    pandas.DataFrame
        Square, symmetric, ones on the diagonal; index and columns are ``labels.columns``.

    Examples
    --------
    >>> agreement_matrix(pd.DataFrame({"a": ["x", "y"], "b": ["x", "x"]})).to_numpy().tolist()
    [[1.0, 0.5], [0.5, 1.0]]
    """
    values = labels.to_numpy()
    same = (values[:, :, None] == values[:, None, :]).mean(axis=0)
    return pd.DataFrame(same, index=labels.columns, columns=labels.columns)


def label_set_agreement(
    votes: np.ndarray, names: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pairwise agreement of label sets: mean Jaccard similarity and share of identical rows.

    For one row, the Jaccard similarity of two label sets ``A`` and ``B`` is
    ``|A ∩ B| / |A ∪ B|``, and 1 when both are empty (both inputs say "no label").  With
    one label per row (single-label) both matrices are the fraction of rows with the same
    label, :func:`agreement_matrix`.

    Parameters
    ----------
    votes : numpy.ndarray, shape (n_inputs, n_rows, n_labels)
        1 (or True) where an input gives a row a label.
    names : sequence of str
        One name per input: the index and columns of the results.

    Returns
    -------
    jaccard : pandas.DataFrame
        Mean over the rows of the Jaccard similarity, per pair of inputs.
    identical : pandas.DataFrame
        Share of the rows on which the two inputs give the same label set.

    Examples
    --------
    >>> v = np.array([[[1, 1], [0, 0]], [[1, 0], [0, 0]]])  # 2 inputs, 2 rows, 2 labels
    >>> jaccard, identical = label_set_agreement(v, ["a", "b"])
    >>> jaccard.to_numpy().tolist(), identical.to_numpy().tolist()
    ([[1.0, 0.75], [0.75, 1.0]], [[1.0, 0.5], [0.5, 1.0]])
    """
    v = np.asarray(votes).astype(bool)
    if v.ndim != 3 or v.shape[0] != len(names):
        raise SubmissionError(
            f"votes: expected shape (n_inputs={len(names)}, n_rows, n_labels), got {v.shape}"
        )
    counts = v.astype(np.int64)
    inter = np.einsum("inl,jnl->ijn", counts, counts)
    sizes = counts.sum(axis=2)
    union = sizes[:, None, :] + sizes[None, :, :] - inter
    jaccard = np.where(union > 0, inter / np.maximum(union, 1), 1.0).mean(axis=2)
    identical = (v[:, None] == v[None, :]).all(axis=3).mean(axis=2)
    names = list(names)
    return (
        pd.DataFrame(jaccard, index=names, columns=names),
        pd.DataFrame(identical, index=names, columns=names),
    )


# ---------------------------------------------------------------------------- voting rules
def _parse_single_label(
    table: pd.DataFrame, path: Path, competition: Competition, data_config: DataConfig
) -> np.ndarray:
    """One-hot votes ``(n_rows, n_classes)`` of a single-label submission's label column."""
    labels = table.iloc[:, 1].str.strip()
    unknown = sorted(set(labels) - set(competition.classes))
    if unknown:
        raise SubmissionError(
            f"{path}: labels {unknown[:10]} are not classes {list(competition.classes)}"
        )
    codes = labels.map(competition.label_index).to_numpy(np.int64)
    return np.eye(len(competition.classes), dtype=bool)[codes]


def _vote_single_label(
    votes: np.ndarray, *, weights: np.ndarray, probabilities: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Weighted mode per row with the module's tie-break.

    Returns ``(one-hot decisions, vote shares, number of tied rows)``.
    """
    codes = votes.argmax(axis=2)  # (n_files, n_rows): each file's label
    counts = vote_shares(votes.astype(np.float64), weights=weights)  # (n_rows, n_classes)
    tied = at_max(counts)
    n_ties = int((tied.sum(axis=1) > 1).sum())
    if probabilities is not None:
        soft = np.einsum("m,mnc->nc", weights, probabilities)
        tied &= at_max(np.where(tied, soft, -np.inf))
    # Earliest file whose label is still tied: the order given decides what is left.
    first = np.argmax(np.take_along_axis(tied, codes.T, axis=1), axis=1)
    winners = codes[first, np.arange(codes.shape[1])]
    return np.eye(votes.shape[2], dtype=np.int64)[winners], counts, n_ties


def _build_single_label(
    competition: Competition, decisions: np.ndarray, shares: np.ndarray, data_config: DataConfig
) -> pd.DataFrame:
    """The validated single-label submission of one-hot decisions."""
    submission, _ = make_submission(competition, decisions.argmax(axis=1))
    validate_submission(submission, competition, data_config=data_config)
    return submission


def _single_labels(decisions: np.ndarray, classes: Sequence[str]) -> list[str]:
    return [classes[i] for i in decisions.argmax(axis=1)]


def _parse_label_sets(
    table: pd.DataFrame, path: Path, competition: Competition, data_config: DataConfig
) -> np.ndarray:
    """Votes ``(n_rows, n_classes)`` of a multi-label submission.

    A label-list column is split on ``data_config.label_separator`` (blank parts ignored,
    an empty cell is the empty set); probability columns vote where a value reaches
    :data:`VOTE_PROBABILITY_THRESHOLD`.
    """
    classes = list(competition.classes)
    if table.shape[1] == 2:
        sep = data_config.label_separator
        index = competition.label_index
        out = np.zeros((len(table), len(classes)), dtype=bool)
        unknown: dict[str, int] = {}
        for row, text in enumerate(table.iloc[:, 1]):
            for label in split_label_list(text, sep):
                if label in index:
                    out[row, index[label]] = True
                else:
                    unknown.setdefault(label, row)
        if unknown:
            first = min(unknown.values())
            raise SubmissionError(
                f"{path}: labels {sorted(unknown)[:10]} are not classes {classes} (first at "
                f"row {first}; label lists are split on data.label_separator {sep!r})"
            )
        return out
    values = table.iloc[:, 1:].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~(np.isfinite(values) & (values >= 0) & (values <= 1)).all(axis=1)
    if bad.any():
        raise SubmissionError(
            f"{path}: label columns must hold probabilities in [0, 1]; row(s) "
            f"{np.flatnonzero(bad)[:10].tolist()} do not"
        )
    values = _in_class_order(values, table.columns[1:], competition, path)
    return values >= VOTE_PROBABILITY_THRESHOLD


def _vote_label_sets(
    votes: np.ndarray, *, weights: np.ndarray, probabilities: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-label weighted majority with the tie rule of :func:`vote_submissions`.

    Returns ``(0/1 decisions, vote shares, number of tied row-label cells)``.
    """
    shares = label_vote_shares(votes.astype(np.float64), weights=weights)
    half = np.isclose(shares, 0.5, rtol=0.0, atol=_HALF_ATOL)
    present = (shares > 0.5) & ~half
    if probabilities is not None:
        soft = np.average(probabilities, axis=0, weights=weights)
        present |= half & (soft > 0.5) & ~np.isclose(soft, 0.5, rtol=0.0, atol=_HALF_ATOL)
    return present.astype(np.int64), shares, int(half.sum())


def _build_label_sets(
    competition: Competition, decisions: np.ndarray, shares: np.ndarray, data_config: DataConfig
) -> pd.DataFrame:
    """The validated multi-label submission: label lists, or the vote shares per label."""
    submission, _, _ = make_label_sets_submission(
        competition, decisions, shares, separator=data_config.label_separator
    )
    validate_label_sets_submission(submission, competition, data_config=data_config)
    return submission


def _label_sets(decisions: np.ndarray, classes: Sequence[str]) -> list[list[str]]:
    return [[c for c, d in zip(classes, row, strict=True) if d] for row in decisions]


@dataclass(frozen=True)
class VoteRule:
    """How the submissions of one label kind are read, voted and written.

    Attributes
    ----------
    parse : callable
        ``(table, path, competition, data_config) -> votes``: a submission (already
        checked for columns and ids, read as strings) to its votes, bool ``(n_rows,
        n_classes)`` in ``competition.classes`` order; unknown labels or bad values raise
        :class:`SubmissionError` naming ``path``.
    vote : callable
        ``(votes, *, weights, probabilities) -> (decisions, shares, n_ties)``: votes
        ``(n_files, n_rows, n_classes)``, weights ``(n_files,)`` and, when every input has
        one, the probability files beside them (same shape as the votes, class order) ->
        0/1 decisions and weighted vote shares ``(n_rows, n_classes)`` and the tie count.
    build : callable
        ``(competition, decisions, shares, data_config) -> DataFrame``: the validated
        submission in the sample submission's format.
    labels : callable
        ``(decisions, classes) -> list``: the voted labels of every row, for
        :attr:`VoteResult.labels`.
    ties : str
        What decides ties when some input has no probability file (``"order"`` or
        ``"absent"``), for :attr:`VoteResult.tie_break`.
    """

    parse: Callable[[pd.DataFrame, Path, Competition, DataConfig], np.ndarray]
    vote: Callable[..., tuple[np.ndarray, np.ndarray, int]]
    build: Callable[[Competition, np.ndarray, np.ndarray, DataConfig], pd.DataFrame]
    labels: Callable[[np.ndarray, Sequence[str]], list]
    ties: str


#: Label kind (:attr:`emo_utils.tasks.Task.label_kind`, ``DataConfig.label_kind``) -> the
#: vote of that kind's submissions: ``"single"`` (mode per row) and ``"multi"`` (per-label
#: majority).  A new kind of submission is one entry here.
VOTE_RULES: dict[str, VoteRule] = {
    "single": VoteRule(
        parse=_parse_single_label,
        vote=_vote_single_label,
        build=_build_single_label,
        labels=_single_labels,
        ties="order",
    ),
    "multi": VoteRule(
        parse=_parse_label_sets,
        vote=_vote_label_sets,
        build=_build_label_sets,
        labels=_label_sets,
        ties="absent",
    ),
}


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
@dataclass
class VoteResult:
    """What :func:`vote_submissions` produced.

    Attributes
    ----------
    submission : pathlib.Path
        The voted submission file.
    inputs : list of pathlib.Path
        The submission files, in the order given.
    agreement : pandas.DataFrame
        Pairwise agreement of the inputs: the mean Jaccard similarity of their label sets
        (:func:`label_set_agreement`); single-label, the fraction of rows with the same
        label (:func:`agreement_matrix`).
    tie_break : str
        ``"probabilities"`` (every input had its probabilities file), else ``"order"``
        (single-label) or ``"absent"`` (multi-label: a tied label is left out).
    n_ties : int
        Single-label: rows whose top vote count was shared by several labels;
        multi-label: row-label cells with a vote share of exactly one half.
    labels : list
        The voted label of every row (single-label), or its list of labels (multi-label,
        in class order).
    identical : pandas.DataFrame, optional
        Pairwise share of rows with identical label sets.
    label_kind : str
        ``"single"`` or ``"multi"``.
    """

    submission: Path
    inputs: list[Path]
    agreement: pd.DataFrame
    tie_break: str
    n_ties: int
    labels: list = field(repr=False)
    identical: pd.DataFrame | None = field(default=None, repr=False)
    label_kind: str = "single"

    @staticmethod
    def _table(matrix: pd.DataFrame) -> list[str]:
        names = list(matrix.columns)
        rows = [[n, *(float(v) for v in matrix.loc[n])] for n in names]
        return markdown_table(["", *names], rows)

    def describe(self) -> str:
        """Human-readable report: output, tie-break, and the agreement matrices."""
        head = f"voted {len(self.inputs)} submissions into {self.submission}"
        if self.label_kind == "single" or self.identical is None:
            return "\n".join(
                [
                    head,
                    f"{self.n_ties} tied row(s), broken by {self.tie_break}",
                    "pairwise agreement (fraction of rows with the same label):",
                    *self._table(self.agreement),
                ]
            )
        return "\n".join(
            [
                head,
                f"{self.n_ties} tied label(s) (vote share exactly 1/2), decided by "
                f"{self.tie_break}",
                "pairwise agreement (mean Jaccard similarity of the label sets):",
                *self._table(self.agreement),
                "pairwise share of identical rows (same label set):",
                *self._table(self.identical),
            ]
        )


def _beside_probabilities(
    paths: Sequence[Path], competition: Competition, label_kind: str
) -> np.ndarray | None:
    """The ``NAME.probabilities.csv`` of every input, in class order, or None if one lacks it."""
    files = [probabilities_path(p) for p in paths]
    if not all(f.is_file() for f in files):
        return None
    probas, ids, _, columns = _load_probability_files(files, label_kind=label_kind)
    _check_ids(files[0], ids, competition.test["filename"].tolist(), "test.csv")
    return _in_class_order(probas, columns, competition, files[0])


def vote_submissions(
    paths: Sequence[str | os.PathLike],
    *,
    data_dir: str | os.PathLike,
    out: str | os.PathLike,
    weights: Sequence[float] | None = None,
    data_config: DataConfig | None = None,
) -> VoteResult:
    """Vote over submission files; write the validated result atomically.

    The rule is :data:`VOTE_RULES` ``[data_config.label_kind]``:

    * **single-label** (``"single"``): each file votes for its row's label with its
      weight; the label with the largest summed weight wins.  Ties: when every input has
      its ``NAME.probabilities.csv`` beside it, the tied label with the largest weighted
      sum of probabilities wins; otherwise, or if that ties too, the label of the earliest
      file (in the order given) among the tied labels.
    * **multi-label** (``"multi"``): label by label, each file votes for the labels of its
      row with its weight.  A label-list submission votes for the labels listed (split on
      ``data_config.label_separator``); a probability-column submission votes for the
      labels whose value is ``>= 0.5`` (:data:`VOTE_PROBABILITY_THRESHOLD`).  A label is
      in the output row when its vote share (the summed weight of the files that have it
      over the total weight) is **more than one half**, and out when it is less.  Ties
      (a share of exactly one half, up to float rounding): when every input has its
      ``NAME.probabilities.csv`` beside it, the label is in when its weighted sum of
      probabilities exceeds the weighted sum of one minus them (the weighted mean
      probability is above 0.5), and out otherwise (including a mean of exactly 0.5);
      without every probability file the tied label is **out**.  The order of the files
      does not matter.  The output has the sample submission's format: label lists joined
      by the separator (in class order, empty when no label won), or one column per label
      holding the label's **vote share** (so a 0.5 there is a tie, whatever the tie rule
      decided in :attr:`VoteResult.labels`).

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Submission CSVs (two or more), each with the sample submission's columns and
        ``test.csv``'s ids in its order.
    data_dir : str or os.PathLike
        Competition folder (``test.csv``, the sample submission, ``train.csv`` for classes).
    out : str or os.PathLike
        The voted submission CSV.
    weights : sequence of float, optional
        One non-negative weight per file (default: one vote each).
    data_config : DataConfig, optional
        File and column names, the task (``data.task``, which picks the rule) and the label
        separator of the competition (default: the reference competition's).

    Returns
    -------
    VoteResult

    Raises
    ------
    SubmissionError
        A file has other columns, other ids or another id order than ``test.csv`` (naming
        the file and the first differing row), a label that is not a class, or a value
        outside [0, 1] in a probability column.
    ConfigError
        Wrong number of weights.

    Examples
    --------
    The multi-label rule on vote shares alone (three files, one vote each):

    >>> votes = np.array([[[1, 1, 0]], [[1, 0, 0]], [[0, 1, 1]]], dtype=bool)
    >>> decisions, shares, ties = VOTE_RULES["multi"].vote(
    ...     votes, weights=np.ones(3), probabilities=None
    ... )
    >>> decisions.tolist(), ties
    ([[1, 1, 0]], 0)
    """
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise SubmissionError(f"vote needs two or more submission files, got {len(paths)}")
    competition, data_config = _competition(data_dir, data_config)
    kind = data_config.label_kind
    rule: VoteRule = _rule(VOTE_RULES, kind, "vote rule")
    w = check_weights(weights, len(paths))
    votes = np.stack(
        [rule.parse(_read_submission(p, competition), p, competition, data_config) for p in paths]
    )
    probabilities = _beside_probabilities(paths, competition, kind)
    decisions, shares, n_ties = rule.vote(votes, weights=w, probabilities=probabilities)
    submission = rule.build(competition, decisions, shares, data_config)
    write_csv(out, submission)
    jaccard, identical = label_set_agreement(votes, _names(paths))
    return VoteResult(
        submission=Path(out),
        inputs=paths,
        agreement=jaccard,
        tie_break="probabilities" if probabilities is not None else rule.ties,
        n_ties=n_ties,
        labels=rule.labels(decisions, competition.classes),
        identical=identical,
        label_kind=kind,
    )


# ---------------------------------------------------------------------------- blending
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
def _gathered_config(runs: Sequence[RunDir], configs: Sequence[Config]) -> Config:
    """The first input's config with every architecture; refuse runs that differ."""
    first_run, first = runs[0], configs[0].to_dict()
    for run, config in zip(runs[1:], configs[1:], strict=True):
        other = config.to_dict()
        for section in SHARED_SECTIONS:
            if other[section] != first[section]:
                changed = [k for k in first[section] if other[section].get(k) != first[section][k]]
                raise TrainingError(
                    f"cannot gather {run.config_file} with {first_run.config_file}: the "
                    f"{section} settings differ ({changed}); the models saw other inputs"
                )
        changed = [k for k in SHARED_TRAIN_FIELDS if other["train"][k] != first["train"][k]]
        if changed:
            raise TrainingError(
                f"cannot gather {run.config_file} with {first_run.config_file}: train "
                f"settings {changed} differ; OOF would leak: the folds differ"
            )
    archs = [a for config in configs for a in config.train.architectures]
    return configs[0].override({"train.architectures": archs, "ensemble.weights": []})


def gather_runs(
    runs: Sequence[str | os.PathLike | RunDir], *, into: str | os.PathLike | RunDir
) -> RunDir:
    """Copy the architectures of runs trained on the same folds into one run folder.

    The gathered folder holds ``config.json`` (the first input's, listing every
    architecture; ``ensemble.weights`` cleared), ``classes.json``, ``folds.csv``, every
    architecture's fold folders, OOF and test predictions (copied, not linked, each file
    atomically), and ``gathered.json`` (which input each architecture came from).  Running
    it again with the same inputs refreshes the copies.

    Parameters
    ----------
    runs : sequence of str, os.PathLike or RunDir
        Two or more trained run folders.
    into : str, os.PathLike or RunDir
        The gathered run folder (new, or made by an earlier gather of the same runs).

    Returns
    -------
    RunDir

    Raises
    ------
    TrainingError
        Fewer than two runs, an unfinished fold or missing OOF file, an architecture in two
        runs, different ``classes.json``, different data/audio/features settings, or
        ``folds.csv`` files that are not byte-identical ("OOF would leak").
    ConfigError
        ``into`` holds a run made with another config.
    """
    inputs = [RunDir(r) for r in runs]
    target = RunDir(into)
    if len(inputs) < 2:
        raise TrainingError(f"gather needs two or more run folders, got {len(inputs)}")
    if any(r.path.resolve() == target.path.resolve() for r in inputs):
        raise TrainingError(f"{target.path}: the gathered folder must not be one of the inputs")
    configs = [r.read_config() for r in inputs]
    first = inputs[0]
    for run in inputs:
        if not run.folds_file.is_file():
            raise TrainingError(f"{run.folds_file}: not found; train the run first")
    folds = first.folds_file.read_bytes()
    classes = first.read_classes()
    for run in inputs[1:]:
        if run.folds_file.read_bytes() != folds:
            raise TrainingError(
                f"OOF would leak: folds differ: {run.folds_file} is not byte-identical to "
                f"{first.folds_file}; only runs trained on the same folds can be gathered"
            )
        if run.read_classes() != classes:
            raise TrainingError(
                f"{run.classes_file}: classes {list(run.read_classes())} differ from "
                f"{first.classes_file}'s {list(classes)}"
            )
    owner: dict[str, RunDir] = {}
    for run, config in zip(inputs, configs, strict=True):
        for arch in config.train.architectures:
            if arch in owner:
                raise TrainingError(
                    f"architecture {arch!r} is in both {owner[arch].path} and {run.path}; "
                    "gather each architecture from one run only"
                )
            owner[arch] = run
        run.require_trained(config.train.architectures, config.train.n_folds)
        missing = [a for a in config.train.architectures if not run.oof_file(a).is_file()]
        if missing:
            raise TrainingError(f"{run.oof_dir}: no OOF predictions for {missing}")
    config = _gathered_config(inputs, configs)
    target.prepare()
    target.check_config(config)
    copies = [(first.folds_file, target.folds_file), (first.classes_file, target.classes_file)]
    for arch, run in owner.items():
        copies += [(f, target.path / f.relative_to(run.path)) for f in run.architecture_files(arch)]
    for src, dst in copies:
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
    write_json(
        target.gathered_file,
        {arch: os.fspath(run.path.resolve()) for arch, run in owner.items()},
    )
    if not target.config_file.is_file():
        config.save(target.config_file)  # last: the folder is a run once it has its config
    return target
