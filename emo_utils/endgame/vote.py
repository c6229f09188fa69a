"""Voting over submission files made elsewhere: :func:`vote_submissions` and its rules."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import DataConfig
from ..data.competition import Competition
from ..data.labels import split_label_list
from ..ensemble import (
    at_max,
    check_weights,
    label_vote_shares,
    vote_shares,
)
from ..errors import SubmissionError
from ..fileio import write_csv
from ..submission import (
    make_label_sets_submission,
    make_submission,
    probabilities_path,
    validate_label_sets_submission,
    validate_submission,
)
from ..tables import markdown_table
from ._common import (
    _HALF_ATOL,
    VOTE_PROBABILITY_THRESHOLD,
    _check_ids,
    _competition,
    _in_class_order,
    _load_probability_files,
    _names,
    _read_submission,
    _rule,
)


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
