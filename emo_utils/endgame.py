"""The competition endgame: vote over submission files, blend probability files, gather runs.

Kaggle users often train each architecture in its own kernel and combine at the end.
Three tools do that with the same honesty rules as the rest of the pipeline:

* :func:`vote_submissions` -- mode vote per row over submission CSVs (the reference
  solution's "mode of my best submissions").  Each file votes for its label with its
  weight; the label with the largest summed weight wins.  **Tie-break**: when every input
  has its ``NAME.probabilities.csv`` beside it (:func:`~emo_utils.submission.write_submission`
  writes one), the tied label with the largest weighted sum of probabilities wins;
  otherwise, or if that is tied too, the label of the earliest file (in the order given)
  among the tied labels wins.
* :func:`blend_probabilities` -- weighted ``mean``, ``geometric`` or ``rank`` mean of
  probability files (``*.probabilities.csv`` or ``RUN/predictions/ARCH.csv``);
  :func:`blend_submission` writes the argmax submission and the blended file.
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

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .config import Config, DataConfig
from .data.competition import Competition, load_competition
from .ensemble import (
    at_max,
    check_probas,
    check_weights,
    geometric_mean_proba,
    mean_proba,
    vote_shares,
)
from .errors import ConfigError, SubmissionError, TrainingError
from .fileio import atomic_path, read_csv, write_csv, write_json
from .runs import RunDir
from .submission import make_submission, probabilities_path, validate_submission
from .tables import markdown_table

__all__ = [
    "BLENDS",
    "VOTE_RULES",
    "BlendResult",
    "VoteResult",
    "agreement_matrix",
    "blend_probabilities",
    "blend_submission",
    "gather_runs",
    "rank_mean",
    "vote_submissions",
]

#: Config sections that must be equal in every gathered run (they define the inputs).
SHARED_SECTIONS = ("data", "audio", "features")
#: ``train`` fields that must be equal in every gathered run (they define the folds).
SHARED_TRAIN_FIELDS = ("n_folds", "seed", "use_groups")


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


def _read_submission(path: Path, competition: Competition) -> pd.Series:
    """The label column of one submission file, after checking columns and ids."""
    df = _read_table(path)
    columns = list(competition.submission_columns)
    if list(df.columns) != columns:
        raise SubmissionError(
            f"{path}: columns {list(df.columns)} differ from the sample submission's {columns}"
        )
    fcol, lcol = columns
    _check_ids(
        path, df[fcol].str.strip().tolist(), competition.test["filename"].tolist(), "test.csv"
    )
    return df[lcol].str.strip()


def _read_probabilities(path: Path) -> pd.DataFrame:
    """A probability file: an id column, then numeric, finite, non-negative columns."""
    df = _read_table(path)
    if df.shape[1] < 3:
        raise SubmissionError(
            f"{path}: expected an id column and one probability column per class (2 or "
            f"more), found {list(df.columns)}"
        )
    values = df.iloc[:, 1:].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values).all(axis=1) | (values < 0).any(axis=1)
    if bad.any():
        raise SubmissionError(
            f"{path}: missing, non-numeric, infinite or negative probabilities at row(s) "
            f"{np.flatnonzero(bad)[:10].tolist()}"
        )
    out = pd.DataFrame(values, columns=list(df.columns[1:]))
    out.insert(0, df.columns[0], df.iloc[:, 0].str.strip())
    return out


def _load_probability_files(
    paths: Sequence[str | os.PathLike],
) -> tuple[np.ndarray, list[str], str, list[str]]:
    """Stack probability files checked to share columns and ids.

    Returns ``(probas (n_files, n_rows, n_columns), ids, id column, value columns)``.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise SubmissionError("no probability files given")
    frames = [_read_probabilities(p) for p in paths]
    first = frames[0]
    for path, df in zip(paths[1:], frames[1:], strict=True):
        if list(df.columns) != list(first.columns):
            raise SubmissionError(
                f"{path}: columns {list(df.columns)} differ from {paths[0]}'s {list(first.columns)}"
            )
        _check_ids(path, df.iloc[:, 0].tolist(), first.iloc[:, 0].tolist(), str(paths[0]))
    stacked = np.stack([df.iloc[:, 1:].to_numpy(np.float64) for df in frames])
    return stacked, first.iloc[:, 0].tolist(), str(first.columns[0]), list(first.columns[1:])


def _names(paths: Sequence[Path]) -> list[str]:
    """Short, distinct names of the input files (file names, else full paths)."""
    names = [p.name for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


# ---------------------------------------------------------------------------- voting
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


def _vote_single_label(
    labels: pd.DataFrame,
    *,
    classes: Sequence[str],
    weights: np.ndarray,
    probabilities: np.ndarray | None,
) -> tuple[list[str], int]:
    """Weighted mode per row with the module's tie-break; returns ``(labels, n_ties)``."""
    index = {c: i for i, c in enumerate(classes)}
    codes = labels.apply(lambda col: col.map(index)).to_numpy(np.int64).T  # (n_files, n_rows)
    one_hot = np.eye(len(classes))[codes]  # each file votes for its label
    counts = vote_shares(one_hot, weights=weights)  # (n_rows, n_classes)
    tied = at_max(counts)
    n_ties = int((tied.sum(axis=1) > 1).sum())
    if probabilities is not None:
        soft = np.einsum("m,mnc->nc", weights, probabilities)
        tied &= at_max(np.where(tied, soft, -np.inf))
    # Earliest file whose label is still tied: the order given decides what is left.
    first = np.argmax(np.take_along_axis(tied, codes.T, axis=1), axis=1)
    winners = codes[first, np.arange(codes.shape[1])]
    return [classes[i] for i in winners], n_ties


#: Submission format (``Task.submission_format``) -> the per-row vote of that format.  A
#: multi-label format (space-separated labels, per-label majority) registers its rule here.
VOTE_RULES: dict[str, Callable[..., tuple[list[str], int]]] = {"label": _vote_single_label}


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
        Pairwise fraction of rows with the same label (:func:`agreement_matrix`).
    tie_break : str
        ``"probabilities"`` (every input had its probabilities file) or ``"order"``.
    n_ties : int
        Rows whose top vote count was shared by several labels.
    labels : list of str
        The voted label of every row.
    """

    submission: Path
    inputs: list[Path]
    agreement: pd.DataFrame
    tie_break: str
    n_ties: int
    labels: list[str] = field(repr=False)

    def describe(self) -> str:
        """Human-readable report: output, tie-break, and the agreement matrix."""
        names = list(self.agreement.columns)
        rows = [[n, *(float(v) for v in self.agreement.loc[n])] for n in names]
        return "\n".join(
            [
                f"voted {len(self.inputs)} submissions into {self.submission}",
                f"{self.n_ties} tied row(s), broken by {self.tie_break}",
                "pairwise agreement (fraction of rows with the same label):",
                *markdown_table(["", *names], rows),
            ]
        )


def vote_submissions(
    paths: Sequence[str | os.PathLike],
    *,
    data_dir: str | os.PathLike,
    out: str | os.PathLike,
    weights: Sequence[float] | None = None,
    data_config: DataConfig | None = None,
    submission_format: str = "label",
) -> VoteResult:
    """Mode vote per row over submission files; write the validated result atomically.

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
        File and column names of the competition (default: the reference competition's).
    submission_format : str
        Key of :data:`VOTE_RULES` (``"label"``: one label per row).

    Returns
    -------
    VoteResult

    Raises
    ------
    SubmissionError
        A file has other columns, other ids or another id order than ``test.csv`` (naming
        the file and the first differing row), or a label that is not a class.
    ConfigError
        Wrong number of weights, or an unknown ``submission_format``.
    """
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise SubmissionError(f"vote needs two or more submission files, got {len(paths)}")
    if submission_format not in VOTE_RULES:
        raise ConfigError(
            "submission_format", submission_format, f"known formats: {sorted(VOTE_RULES)}"
        )
    competition, data_config = _competition(data_dir, data_config)
    w = check_weights(weights, len(paths))
    names = _names(paths)
    labels = pd.DataFrame(
        {n: _read_submission(p, competition) for n, p in zip(names, paths, strict=True)}
    )
    for name, path in zip(names, paths, strict=True):
        unknown = sorted(set(labels[name]) - set(competition.classes))
        if unknown:
            raise SubmissionError(
                f"{path}: labels {unknown[:10]} are not classes {list(competition.classes)}"
            )
    proba_files = [probabilities_path(p) for p in paths]
    probabilities = None
    if all(f.is_file() for f in proba_files):
        probas, ids, _, columns = _load_probability_files(proba_files)
        _check_ids(proba_files[0], ids, competition.test["filename"].tolist(), "test.csv")
        if sorted(columns) != sorted(competition.classes):
            raise SubmissionError(
                f"{proba_files[0]}: columns {columns} are not the classes "
                f"{list(competition.classes)}"
            )
        probabilities = probas[:, :, [columns.index(c) for c in competition.classes]]
    voted, n_ties = VOTE_RULES[submission_format](
        labels, classes=competition.classes, weights=w, probabilities=probabilities
    )
    submission, _ = make_submission(competition, voted)
    validate_submission(submission, competition, data_config=data_config)
    write_csv(out, submission)
    return VoteResult(
        submission=Path(out),
        inputs=paths,
        agreement=agreement_matrix(labels),
        tie_break="probabilities" if probabilities is not None else "order",
        n_ties=n_ties,
        labels=voted,
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


#: Blend name -> function ``(probas, *, weights) -> (n_samples, n_classes)``.
BLENDS: dict[str, Callable[..., np.ndarray]] = {
    "mean": mean_proba,
    "geometric": geometric_mean_proba,
    "rank": rank_mean,
}


def blend_probabilities(
    paths: Sequence[str | os.PathLike],
    *,
    method: str = "mean",
    weights: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Blend probability files into one table.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        ``*.probabilities.csv`` or ``RUN/predictions/ARCH.csv`` files: an id column, then
        one probability column per class; every file must have the same columns and the
        same ids in the same order.
    method : {"mean", "geometric", "rank"}
        Key of :data:`BLENDS`.
    weights : sequence of float, optional
        One non-negative weight per file.

    Returns
    -------
    pandas.DataFrame
        The first file's id column, then the blended class columns.

    Raises
    ------
    SubmissionError
        A file is missing, unreadable, or differs from the first in columns or ids.
    ConfigError
        Unknown method or wrong weights.
    """
    if method not in BLENDS:
        raise ConfigError("method", method, f"unknown blend; known: {list(BLENDS)}")
    probas, ids, id_column, columns = _load_probability_files(paths)
    blended = BLENDS[method](probas, weights=weights)
    out = pd.DataFrame(blended, columns=columns)
    out.insert(0, id_column, ids)
    return out


@dataclass
class BlendResult:
    """Files written by :func:`blend_submission`."""

    submission: Path
    probabilities: Path
    method: str
    inputs: list[Path]

    def describe(self) -> str:
        """One line per written file."""
        return (
            f"blended {len(self.inputs)} probability files ({self.method}) into "
            f"{self.submission} and {self.probabilities}"
        )


def blend_submission(
    paths: Sequence[str | os.PathLike],
    *,
    data_dir: str | os.PathLike,
    out: str | os.PathLike,
    method: str = "mean",
    weights: Sequence[float] | None = None,
    data_config: DataConfig | None = None,
) -> BlendResult:
    """Blend probability files and write the argmax submission and its probabilities file.

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

    Returns
    -------
    BlendResult
    """
    competition, data_config = _competition(data_dir, data_config)
    blend = blend_probabilities(paths, method=method, weights=weights)
    _check_ids(
        Path(paths[0]),
        blend.iloc[:, 0].tolist(),
        competition.test["filename"].tolist(),
        "test.csv",
    )
    columns = list(blend.columns[1:])
    if sorted(columns) != sorted(competition.classes):
        raise SubmissionError(
            f"{paths[0]}: columns {columns} are not the classes {list(competition.classes)}"
        )
    values = blend[list(competition.classes)].to_numpy(np.float64)
    submission, _ = make_submission(competition, values.argmax(axis=1))
    validate_submission(submission, competition, data_config=data_config)
    proba_df = pd.DataFrame(values, columns=list(competition.classes))
    proba_df.insert(0, competition.submission_columns[0], submission.iloc[:, 0].to_numpy())
    out = Path(out)
    write_csv(probabilities_path(out), proba_df)
    write_csv(out, submission)  # last: it exists only with its companion
    return BlendResult(
        submission=out, probabilities=probabilities_path(out), method=method, inputs=list(paths)
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
