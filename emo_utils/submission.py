"""The competition CSV: one row per ``test.csv`` row, validated, written atomically.

Rules (each one is tested):

* exactly one row per ``test.csv`` row, in its order, with its file names as written
  (duplicated names stay duplicated);
* labels are the competition's class strings; the columns are the sample submission's
  (``Competition.submission_columns``, default ``filename,emotion``);
* a test row whose audio could not be loaded still gets a row: the fallback label is the
  most frequent training class (the argmax of the class prior; ties go to the
  alphabetically first class), and the row is listed with its reason in a failures file;
* everything is checked before anything is written (:func:`validate_submission` raises
  :class:`~emo_utils.errors.SubmissionError`), and every file is written atomically.

Files written by :func:`write_submission` into ``out_dir`` (``NAME`` = ``<run>__<method>``):

* ``NAME.csv`` -- the submission;
* ``NAME.probabilities.csv`` -- file name and one probability column per class, in the
  submission's row order (fallback rows hold the training class prior);
* ``NAME.failures.csv`` -- ``row, <file name column>, reason, fallback`` of every fallback row
  (header only when there is none).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .config import DataConfig
from .data.competition import Competition, read_sample_submission_columns
from .data.labels import split_label_list
from .errors import SubmissionError
from .fileio import write_csv

__all__ = [
    "SUBMISSION_FORMATS",
    "SubmissionFiles",
    "class_prior",
    "failures_from_store",
    "fallback_label",
    "make_label_sets_submission",
    "make_submission",
    "probabilities_path",
    "submission_name",
    "validate_label_sets_submission",
    "validate_submission",
    "write_label_sets_submission",
    "write_submission",
]


@dataclass(frozen=True)
class SubmissionFiles:
    """Paths written by :func:`write_submission`."""

    submission: Path
    probabilities: Path
    failures: Path


def class_prior(competition: Competition) -> np.ndarray:
    """Share of each class among the training rows, in ``competition.classes`` order."""
    counts = competition.train["label"].value_counts()
    prior = np.array([counts.get(c, 0) for c in competition.classes], dtype=np.float64)
    return prior / prior.sum()


def fallback_label(competition: Competition) -> int:
    """Class index given to test rows without a prediction.

    The most frequent training class; on a tie, the lowest class index (the alphabetically
    first class name, since ``competition.classes`` is sorted).
    """
    return int(np.argmax(class_prior(competition)))


def failures_from_store(store: object) -> dict[int, str]:
    """``row -> reason`` of the failed rows of a :class:`~emo_utils.features.store.FeatureStore`.

    Rows rather than file names, because ``test.csv`` may list a name twice.
    """
    ok = np.asarray(store.ok)
    return {int(i): str(store.reasons[i]) for i in np.flatnonzero(~ok)}


def probabilities_path(submission: str | os.PathLike) -> Path:
    """``NAME.probabilities.csv``: the probabilities file beside the submission ``NAME.csv``.

    Examples
    --------
    >>> probabilities_path("submissions/demo__mode.csv").as_posix()
    'submissions/demo__mode.probabilities.csv'
    """
    path = Path(submission)
    return path.with_name(f"{path.stem}.probabilities.csv")


def submission_name(run_name: str, method: str) -> str:
    """``<run>__<method>``: the stem of the files that say which run and method made them."""
    for part, value in (("run name", run_name), ("method", method)):
        if not value or any(sep in value for sep in ("/", "\\", os.sep)):
            raise SubmissionError(f"{part} {value!r}: must be a non-empty name without '/'")
    return f"{run_name}__{method}"


def _label_indices(
    competition: Competition, labels: Sequence[int | str | None] | np.ndarray
) -> np.ndarray:
    """Class indices (``-1`` for missing) from indices or class names."""
    index = competition.label_index
    out = np.full(len(labels), -1, dtype=np.int64)
    for row, label in enumerate(labels):
        if label is None or (isinstance(label, float) and np.isnan(label)):
            continue
        if isinstance(label, str):
            if label not in index:
                raise SubmissionError(
                    f"row {row}: label {label!r} is not a class of the competition "
                    f"{list(competition.classes)}"
                )
            out[row] = index[label]
        else:
            value = int(label)
            if value != -1 and not 0 <= value < len(competition.classes):
                raise SubmissionError(
                    f"row {row}: class index {value} outside 0..{len(competition.classes) - 1}"
                )
            out[row] = value
    return out


def make_submission(
    competition: Competition,
    labels: Sequence[int | str | None] | np.ndarray,
    *,
    failures: Mapping[int, str] | None = None,
    fallback: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build (without writing) the submission and the failures table.

    Parameters
    ----------
    competition : Competition
        Gives the test rows, the classes and the submission columns.
    labels : sequence of int or str, length ``len(competition.test)``
        Predicted class index (or class name) of every test row; ``-1``/``None`` for rows
        without a prediction, which must be listed in ``failures``.
    failures : mapping of int to str, optional
        ``row -> reason`` of the test rows whose audio failed (see
        :func:`failures_from_store`); they get the fallback label whatever ``labels`` says.
    fallback : int, optional
        Fallback class index (default :func:`fallback_label`).

    Returns
    -------
    submission : pandas.DataFrame
        Columns ``competition.submission_columns``.
    failures : pandas.DataFrame
        Columns ``row, <file name column>, reason, fallback``.

    Raises
    ------
    SubmissionError
        Wrong number of labels, unknown label, a row without a prediction that is not a
        listed failure, or a failure row outside the test set.
    """
    n_test = len(competition.test)
    if len(labels) != n_test:
        raise SubmissionError(
            f"{len(labels)} predicted labels for {n_test} test.csv rows; need one per row"
        )
    failures = dict(failures or {})
    outside = sorted(r for r in failures if not 0 <= r < n_test)
    if outside:
        raise SubmissionError(f"failure rows {outside[:10]} are outside 0..{n_test - 1}")
    fallback = fallback_label(competition) if fallback is None else int(fallback)
    idx = _label_indices(competition, labels)
    rows = np.fromiter(failures, dtype=np.int64, count=len(failures))
    idx[rows] = fallback
    missing = np.flatnonzero(idx < 0)
    if missing.size:
        names = competition.test["filename"].iloc[missing[:10]].tolist()
        raise SubmissionError(
            f"{missing.size} test row(s) have no prediction and are not listed as failures: "
            f"rows {missing[:10].tolist()} ({names})"
        )
    fcol, lcol = competition.submission_columns
    filenames = competition.test["filename"].tolist()
    submission = pd.DataFrame(
        {fcol: filenames, lcol: [competition.classes[i] for i in idx]}, columns=[fcol, lcol]
    )
    order = sorted(failures)
    failed = pd.DataFrame(
        {
            "row": order,
            fcol: [filenames[r] for r in order],
            "reason": [failures[r] for r in order],
            "fallback": [competition.classes[fallback]] * len(order),
        },
        columns=["row", fcol, "reason", "fallback"],
    )
    return submission, failed


def _check_rows(
    submission: pd.DataFrame,
    fcol: str,
    competition: Competition,
    data_config: DataConfig | None,
) -> None:
    """One row per ``test.csv`` row, with its file names in its order (re-read from disk)."""
    expected = competition.test["filename"].tolist()
    source = "test.csv"
    if data_config is not None:
        test_csv = competition.root / data_config.test_csv
        if test_csv.is_file():
            on_disk = pd.read_csv(test_csv, dtype=str, keep_default_na=False)
            on_disk.columns = [str(c).strip() for c in on_disk.columns]
            expected = on_disk[data_config.filename_column].str.strip().tolist()
            source = str(test_csv)
    if len(submission) != len(expected):
        raise SubmissionError(
            f"submission has {len(submission)} rows; {source} has {len(expected)}"
        )
    names = submission[fcol].astype(str).tolist()
    wrong = [i for i, (a, b) in enumerate(zip(names, expected, strict=True)) if a != b]
    if wrong:
        i = wrong[0]
        raise SubmissionError(
            f"submission file names differ from {source} at {len(wrong)} row(s), first at "
            f"row {i}: {names[i]!r} != {expected[i]!r}"
        )


def _expected_columns(
    competition: Competition, data_config: DataConfig | None
) -> tuple[list[str], str]:
    """The submission columns (the sample submission's on disk when there is one) and where from."""
    columns = list(competition.submission_columns)
    where = "submission"
    if data_config is not None:
        sample = competition.root / data_config.sample_submission
        if sample.is_file():
            columns = list(read_sample_submission_columns(sample, data_config))
            where = str(sample)
    return columns, where


def validate_submission(
    submission: pd.DataFrame,
    competition: Competition,
    *,
    data_config: DataConfig | None = None,
) -> None:
    """Check a submission against ``test.csv`` and the sample submission's columns.

    Checks: the columns equal ``competition.submission_columns`` (and the header of the
    sample submission on disk, when ``data_config`` is given and the file exists); one row
    per ``test.csv`` row; the file names equal ``test.csv``'s in order (re-read from disk
    when ``data_config`` is given); no missing label; every label is a class.

    Raises
    ------
    SubmissionError
        Naming the first failed check.
    """
    columns, where = _expected_columns(competition, data_config)
    if list(submission.columns) != columns:
        raise SubmissionError(
            f"submission columns {list(submission.columns)} differ from {columns} ({where})"
        )
    if len(columns) != 2:
        raise SubmissionError(f"a single-label submission has 2 columns; {where} has {columns}")
    fcol, lcol = columns
    _check_rows(submission, fcol, competition, data_config)
    labels = submission[lcol]
    blank = labels.isna() | (labels.astype(str).str.strip() == "")
    if blank.any():
        raise SubmissionError(
            f"submission has {int(blank.sum())} missing label(s), first at row "
            f"{int(np.flatnonzero(blank)[0])}"
        )
    unknown = sorted(set(labels.astype(str)) - set(competition.classes))
    if unknown:
        raise SubmissionError(
            f"submission labels {unknown[:10]} are not classes {list(competition.classes)}"
        )


def write_submission(
    competition: Competition,
    labels: Sequence[int | str | None] | np.ndarray,
    *,
    out_dir: str | os.PathLike,
    run_name: str,
    method: str,
    failures: Mapping[int, str] | None = None,
    probabilities: np.ndarray | None = None,
    data_config: DataConfig | None = None,
    fallback: int | None = None,
    prior: np.ndarray | None = None,
) -> SubmissionFiles:
    """Validate and atomically write the submission, its probabilities and its failures.

    Parameters
    ----------
    competition : Competition
    labels : sequence of int or str, length ``len(competition.test)``
        Predicted class of every test row (``-1``/``None`` for failed rows).
    out_dir : str or os.PathLike
        Folder of the files (created if needed), e.g. ``submissions/``.
    run_name, method : str
        Name the files ``<run_name>__<method>.*``.
    failures : mapping of int to str, optional
        ``row -> reason`` of failed test rows; they get the fallback label.
    probabilities : numpy.ndarray, shape (n_test, n_classes), optional
        Ensemble probabilities; failed rows (any values, NaN allowed) are replaced by the
        training class prior.  Default: one-hot of the labels.
    data_config : DataConfig, optional
        Re-read ``test.csv`` and the sample submission from disk for validation.
    fallback : int, optional
        Class index of the failed rows (the task's :meth:`~emo_utils.tasks.Task.fallback`);
        default :func:`fallback_label`.
    prior : numpy.ndarray, shape (n_classes,), optional
        Probabilities written for the failed rows; default :func:`class_prior`.

    Returns
    -------
    SubmissionFiles
        Paths of the submission, probabilities and failures files.

    Raises
    ------
    SubmissionError
        The submission would not match ``test.csv`` or the sample submission; nothing is
        written then.
    """
    submission, failed = make_submission(competition, labels, failures=failures, fallback=fallback)
    validate_submission(submission, competition, data_config=data_config)
    n_test, n_classes = len(competition.test), len(competition.classes)
    if probabilities is None:
        index = competition.label_index
        probabilities = np.eye(n_classes)[[index[c] for c in submission.iloc[:, 1]]]
    probabilities = np.array(probabilities, dtype=np.float64)
    if probabilities.shape != (n_test, n_classes):
        raise SubmissionError(
            f"probabilities have shape {probabilities.shape}; expected ({n_test}, {n_classes})"
        )
    prior = class_prior(competition) if prior is None else np.asarray(prior, dtype=np.float64)
    probabilities[failed["row"].to_numpy(np.int64)] = prior
    if not np.all(np.isfinite(probabilities)):
        bad = np.flatnonzero(~np.isfinite(probabilities).all(axis=1))
        raise SubmissionError(f"probabilities of rows {bad[:10].tolist()} are not finite")
    return _write_files(
        competition,
        submission,
        failed,
        probabilities,
        out_dir=out_dir,
        stem=submission_name(run_name, method),
    )


def _write_files(
    competition: Competition,
    submission: pd.DataFrame,
    failed: pd.DataFrame,
    probabilities: np.ndarray,
    *,
    out_dir: str | os.PathLike,
    stem: str,
) -> SubmissionFiles:
    """Atomically write ``STEM.probabilities.csv``, ``STEM.failures.csv``, then ``STEM.csv``."""
    fcol = competition.submission_columns[0]
    proba_df = pd.DataFrame(probabilities, columns=list(competition.classes))
    proba_df.insert(0, fcol, submission[fcol].to_numpy())
    out_dir = Path(out_dir)
    files = SubmissionFiles(
        submission=out_dir / f"{stem}.csv",
        probabilities=probabilities_path(out_dir / f"{stem}.csv"),
        failures=out_dir / f"{stem}.failures.csv",
    )
    write_csv(files.probabilities, proba_df)
    write_csv(files.failures, failed)
    write_csv(files.submission, submission)  # last: it exists only with its companions
    return files


def make_label_sets_submission(
    competition: Competition,
    decisions: np.ndarray,
    probabilities: np.ndarray,
    *,
    failures: Mapping[int, str] | None = None,
    fallback: np.ndarray | None = None,
    prior: np.ndarray | None = None,
    separator: str = ",",
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Build (without writing) a multi-label submission, its failures and probabilities.

    Parameters
    ----------
    competition : Competition
        Test rows, classes and submission columns: ``(file name, label list)`` writes the
        present labels joined by ``separator`` (sorted; ``""`` when none is present),
        ``(file name, *classes)`` writes one probability column per label in the sample
        submission's order.
    decisions : numpy.ndarray, shape (n_test, n_classes)
        1 where a label is present (thresholded ensemble output); rows of ``failures`` are
        ignored.
    probabilities : numpy.ndarray, shape (n_test, n_classes)
        The ensemble's probabilities (NaN allowed in failure rows).
    failures : mapping of int to str, optional
        ``row -> reason`` of the test rows without model output.
    fallback : numpy.ndarray, shape (n_classes,), optional
        0/1 labels of the failure rows (:meth:`emo_utils.tasks.Task.fallback`); default none.
    prior : numpy.ndarray, shape (n_classes,), optional
        Probabilities written for the failure rows; default ``fallback``.
    separator : str
        Joins the labels of the label-list column (``data.label_separator``).

    Returns
    -------
    submission, failures, probabilities : DataFrame, DataFrame, numpy.ndarray

    Raises
    ------
    SubmissionError
        Wrong shapes, a failure row outside the test set, or non-finite probabilities in a
        row that is not a listed failure.
    """
    n_test, n_classes = len(competition.test), len(competition.classes)
    decisions = np.asarray(decisions)
    proba = np.array(probabilities, dtype=np.float64)
    for name, arr in (("decisions", decisions), ("probabilities", proba)):
        if arr.shape != (n_test, n_classes):
            raise SubmissionError(
                f"{name} have shape {arr.shape}; expected ({n_test}, {n_classes}): one row per "
                "test.csv row, one column per label"
            )
    failures = dict(failures or {})
    outside = sorted(r for r in failures if not 0 <= r < n_test)
    if outside:
        raise SubmissionError(f"failure rows {outside[:10]} are outside 0..{n_test - 1}")
    fallback = np.zeros(n_classes, np.int64) if fallback is None else np.asarray(fallback)
    prior = fallback.astype(np.float64) if prior is None else np.asarray(prior, np.float64)
    rows = np.fromiter(failures, dtype=np.int64, count=len(failures))
    present = (decisions > 0).astype(np.int64)
    present[rows] = fallback
    proba[rows] = prior
    bad = np.flatnonzero(~np.isfinite(proba).all(axis=1))
    if bad.size:
        names = competition.test["filename"].iloc[bad[:10]].tolist()
        raise SubmissionError(
            f"{bad.size} test row(s) have no probabilities and are not listed as failures: "
            f"rows {bad[:10].tolist()} ({names})"
        )
    fcol = competition.submission_columns[0]
    filenames = competition.test["filename"].tolist()
    classes = list(competition.classes)
    if len(competition.submission_columns) == 2:
        lcol = competition.submission_columns[1]
        texts = [
            separator.join(c for c, p in zip(classes, row, strict=True) if p) for row in present
        ]
        submission = pd.DataFrame({fcol: filenames, lcol: texts}, columns=[fcol, lcol])
    else:
        label_columns = list(competition.submission_columns[1:])
        order = [classes.index(c) for c in label_columns]
        submission = pd.DataFrame(proba[:, order], columns=label_columns)
        submission.insert(0, fcol, filenames)
    fallback_text = separator.join(c for c, p in zip(classes, fallback, strict=True) if p)
    order = sorted(failures)
    failed = pd.DataFrame(
        {
            "row": order,
            fcol: [filenames[r] for r in order],
            "reason": [failures[r] for r in order],
            "fallback": [fallback_text] * len(order),
        },
        columns=["row", fcol, "reason", "fallback"],
    )
    return submission, failed, proba


def validate_label_sets_submission(
    submission: pd.DataFrame,
    competition: Competition,
    *,
    data_config: DataConfig | None = None,
) -> None:
    """Check a multi-label submission against ``test.csv`` and the sample submission.

    Checks: the columns (the sample submission's on disk when ``data_config`` is given);
    one row per ``test.csv`` row with its file names in order; label lists hold only
    classes (split on ``data_config.label_separator``); probability columns are finite
    numbers in [0, 1].

    Raises
    ------
    SubmissionError
        Naming the first failed check.
    """
    columns, where = _expected_columns(competition, data_config)
    if list(submission.columns) != columns:
        raise SubmissionError(
            f"submission columns {list(submission.columns)} differ from {columns} ({where})"
        )
    _check_rows(submission, columns[0], competition, data_config)
    if len(columns) == 2:
        sep = data_config.label_separator if data_config is not None else ","
        found = {
            label
            for text in submission[columns[1]].fillna("").astype(str)
            for label in split_label_list(text, sep)
        }
        unknown = sorted(found - set(competition.classes))
        if unknown:
            raise SubmissionError(
                f"submission labels {unknown[:10]} are not classes {list(competition.classes)}"
            )
        return
    values = submission[columns[1:]].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise SubmissionError(
            f"submission probabilities must be numbers in [0, 1]; row {row} is not"
        )


def write_label_sets_submission(
    competition: Competition,
    decisions: np.ndarray,
    *,
    out_dir: str | os.PathLike,
    run_name: str,
    method: str,
    probabilities: np.ndarray,
    failures: Mapping[int, str] | None = None,
    data_config: DataConfig | None = None,
    fallback: np.ndarray | None = None,
    prior: np.ndarray | None = None,
) -> SubmissionFiles:
    """Validate and atomically write a multi-label submission and its companions.

    The same three files as :func:`write_submission` (``NAME.csv``,
    ``NAME.probabilities.csv`` with one column per class, ``NAME.failures.csv``); the rows
    and columns are built by :func:`make_label_sets_submission` and checked by
    :func:`validate_label_sets_submission` before anything is written.

    Parameters
    ----------
    competition : Competition
    decisions : numpy.ndarray, shape (n_test, n_classes)
        1 where a label is present.
    out_dir : str or os.PathLike
    run_name, method : str
        Name the files ``<run_name>__<method>.*``.
    probabilities : numpy.ndarray, shape (n_test, n_classes)
    failures : mapping of int to str, optional
    data_config : DataConfig, optional
        The label separator, and ``test.csv`` / the sample submission re-read for validation.
    fallback, prior : numpy.ndarray, shape (n_classes,), optional
        Labels and probabilities of the failure rows.

    Returns
    -------
    SubmissionFiles
    """
    sep = data_config.label_separator if data_config is not None else ","
    submission, failed, proba = make_label_sets_submission(
        competition,
        decisions,
        probabilities,
        failures=failures,
        fallback=fallback,
        prior=prior,
        separator=sep,
    )
    validate_label_sets_submission(submission, competition, data_config=data_config)
    return _write_files(
        competition,
        submission,
        failed,
        proba,
        out_dir=out_dir,
        stem=submission_name(run_name, method),
    )


#: ``Task.submission_format`` -> the writer of that format.  A task whose submission rows
#: differ (a score per pair) registers its writer here.  ``"label"``: one class per row
#: (:func:`write_submission`); ``"labels"``: a label list or one probability column per
#: label (:func:`write_label_sets_submission`).
SUBMISSION_FORMATS: dict[str, Callable[..., SubmissionFiles]] = {
    "label": write_submission,
    "labels": write_label_sets_submission,
}
