"""Reading and validating a competition folder.

A competition folder holds ``train.csv`` (file name and label), ``test.csv`` (file names),
optionally ``sample_submission.csv``, and the audio under ``train/`` and ``test/`` (names
configurable in :class:`~emo_utils.config.DataConfig`).

Rules applied to the CSVs (each is tested and listed in the README):

* a missing column is an error naming the CSV and the column;
* labels are read by the task's label reader (:mod:`emo_utils.data.labels`: one label, or
  a label list / 0/1 columns for multi-label tasks): a blank label (an empty list without
  ``data.empty_label``) is an error listing the rows; labels are stripped of surrounding
  whitespace; labels that differ only in case are merged to their most common spelling
  with a warning;
* one file name with two different labels is an error;
* a file name repeated in ``train.csv`` with the same label is kept once, with a warning
  (so a clip can never sit in two folds or count twice in the OOF predictions);
* ``test.csv`` rows are kept exactly as given (order and duplicates), because the
  submission needs one row per test row;
* file names are looked up as written and, failing that, in the other Unicode normal form
  (NFC/NFD), since archives made on macOS store decomposed names;
* a file name that is an absolute path, holds a ``..`` component, or resolves through a
  symlink outside the data folder is an error listing every such row, before any work,
  unless ``data.allow_outside_paths`` (symlinks inside the folder are fine);
* an empty or non-UTF-8 CSV (train, test or sample submission) is an error naming the file
  and the problem.

Unlabelled clips (``data.unlabelled_dir``, optional) have no CSV: every file of the folder
and its sub-folders whose extension a decoder reads (:func:`emo_utils.audio.readable_extensions`)
is a row of ``Competition.unlabelled``, sorted by its path relative to the folder; hidden
files and folders (name starting with ``.``) are left out, other files are counted in one
warning.  A missing folder is an error naming ``data.unlabelled_dir``.
"""

from __future__ import annotations

import os
import unicodedata
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

import pandas as pd

from ..audio import readable_extensions
from ..config import DataConfig
from ..errors import DataError, EmoUtilsWarning
from .labels import LABEL_READERS

__all__ = [
    "Competition",
    "list_unlabelled",
    "load_competition",
    "read_sample_submission_columns",
    "resolve_audio_path",
]


@dataclass(frozen=True)
class Competition:
    """A validated competition folder.

    Attributes
    ----------
    root : pathlib.Path
        The data folder.
    train : pandas.DataFrame
        Columns ``filename`` (as in the CSV), ``label`` (cleaned) and ``path`` (resolved
        audio path), one row per distinct training file, in CSV order.
    test : pandas.DataFrame
        Columns ``filename`` and ``path``, one row per ``test.csv`` row, in CSV order.
    classes : tuple of str
        Sorted class names; class index ``i`` means ``classes[i]``.
    submission_columns : tuple of str
        ``(filename column, label column)`` of the submission, from the sample submission
        when present; multi-label: ``(filename column, label-list column)`` or the file
        name column and one probability column per class.
    notes : list of dict
        Warnings raised while reading (``{"file", "reason"}``), for the end-of-run report.
    unlabelled : pandas.DataFrame
        Columns ``filename`` (relative to ``data.unlabelled_dir``, ``/``-separated) and
        ``path``, one row per audio file of that folder (:func:`list_unlabelled`); empty
        when ``data.unlabelled_dir`` is not set.
    """

    root: Path
    train: pd.DataFrame
    test: pd.DataFrame
    classes: tuple[str, ...]
    submission_columns: tuple[str, ...]
    notes: list[dict[str, str]] = field(default_factory=list)
    unlabelled: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"filename": [], "path": []}, dtype=str)
    )

    @property
    def label_index(self) -> dict[str, int]:
        """Map from class name to class index."""
        return {c: i for i, c in enumerate(self.classes)}

    def train_targets(self) -> list[int]:
        """Class index of every training row."""
        index = self.label_index
        return [index[label] for label in self.train["label"]]


def _read_csv(path: Path, required: dict[str, str]) -> pd.DataFrame:
    """Read a CSV as strings; ``required`` maps each needed column to its config field."""
    if not path.is_file():
        raise DataError(f"{path}: CSV file not found")
    try:
        df = pd.read_csv(
            path, dtype=str, keep_default_na=False, skipinitialspace=False, encoding="utf-8"
        )
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: empty file (expected a header line and rows)") from exc
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not UTF-8 text (undecodable byte at offset {exc.start}, e.g. latin-1); "
            "save it as UTF-8"
        ) from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: cannot be parsed as CSV ({exc})") from exc
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        fields = ", ".join(f"{required[c]} = {c!r}" for c in missing)
        raise DataError(
            f"{path}: missing column(s) {missing}; found {list(df.columns)} (config {fields}; "
            "set it to the CSV's column name)"
        )
    first = next(iter(required))
    names = df[first].str.strip()
    blank = [i + 2 for i, name in enumerate(names) if name == ""]
    if blank:
        raise DataError(f"{path}: blank {first!r} on line(s) {blank[:20]}")
    return df


def _check_submission_columns(
    columns: tuple[str, ...], classes: tuple[str, ...], path: Path, label_kind: str
) -> tuple[str, ...]:
    """The submission columns, checked against the task's label kind and the classes.

    Single-label: file name and label.  Multi-label: file name and a label-list column, or
    file name and one probability column per class (every class, no other).
    """
    if len(columns) == 2:
        return columns
    if label_kind == "multi" and sorted(columns[1:]) == sorted(classes):
        return columns
    expected = (
        "2 columns (file name, label)"
        if label_kind == "single"
        else f"2 columns (file name, label list) or the file name and one column per label {list(classes)}"
    )
    raise DataError(f"{path}: expected {expected}, found {list(columns)}")


def read_sample_submission_columns(path: Path, config: DataConfig) -> tuple[str, ...]:
    """Columns of the sample submission, or ``(filename_column, label_column)`` if absent.

    Raises
    ------
    DataError
        The file is empty, not UTF-8, not CSV, or has fewer than two columns.
    """
    if not path.is_file():
        return (config.filename_column, config.label_column)
    try:
        header = pd.read_csv(path, nrows=0, encoding="utf-8").columns
    except pd.errors.EmptyDataError as exc:
        raise DataError(
            f"{path}: sample submission is empty (expected a header line such as "
            f"'{config.filename_column},{config.label_column}'); fix or delete it"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: sample submission is not UTF-8 text (undecodable byte at offset "
            f"{exc.start}, e.g. latin-1); save it as UTF-8"
        ) from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: sample submission cannot be parsed as CSV ({exc})") from exc
    if len(header) < 2:
        raise DataError(
            f"{path}: expected a file name column and label column(s), found {list(header)}"
        )
    return tuple(str(c).strip() for c in header)


def resolve_audio_path(folder: Path, filename: str) -> Path:
    """Path of ``filename`` in ``folder``, trying both Unicode normal forms.

    Returns the path as written when neither form exists (the loader then reports the
    missing file).
    """
    candidate = folder / filename
    if candidate.exists():
        return candidate
    for form in ("NFC", "NFD"):
        alt = folder / unicodedata.normalize(form, filename)
        if alt.exists():
            return alt
    return candidate


def _outside_reason(name: str, folder: Path, bases: tuple[str, ...]) -> str | None:
    """Why ``name`` (a CSV file name) leads outside the data folder, or None."""
    pure = Path(name)
    if pure.is_absolute() or PureWindowsPath(name).is_absolute() or name.startswith(("/", "\\")):
        return "absolute path"
    if ".." in pure.parts or ".." in PureWindowsPath(name).parts:
        return "'..' component"
    target = resolve_audio_path(folder, name)
    if not os.path.lexists(target):
        return None  # missing files fail later with "file not found"
    real = os.path.realpath(target)
    if not any(real == base or real.startswith(base + os.sep) for base in bases):
        return "symlink resolving outside the data folder"
    return None


def _check_inside(csv: Path, names: pd.Series, folder: Path, root: Path) -> None:
    """Refuse CSV rows whose file lies outside the data folder (or the audio folder).

    Raises
    ------
    DataError
        Naming the CSV, every such row (line number, name, why) and
        ``data.allow_outside_paths``.
    """
    bases = tuple(dict.fromkeys(os.path.realpath(p) for p in (root, folder)))
    bad = []
    for i, name in enumerate(names):
        reason = _outside_reason(name, folder, bases)
        if reason is not None:
            bad.append(f"line {i + 2} {name!r} ({reason})")
    if bad:
        raise DataError(
            f"{csv}: {len(bad)} row(s) name files outside the data folder {root}: "
            f"{'; '.join(bad)}. File names must be relative paths inside the data folder; "
            "set data.allow_outside_paths: true only if you trust this CSV."
        )


def list_unlabelled(folder: str | os.PathLike) -> tuple[pd.DataFrame, Counter]:
    """The audio files of an unlabelled folder, and the other files by extension.

    Parameters
    ----------
    folder : str or os.PathLike
        Searched with its sub-folders; hidden files and folders (``.`` first) are left out.

    Returns
    -------
    table : pandas.DataFrame
        Columns ``filename`` (the path relative to ``folder``, ``/``-separated) and ``path``,
        one row per file whose extension a decoder reads, sorted by ``filename``.
    others : collections.Counter
        Extension (lower case, ``""`` for none) -> number of the files left out.

    Raises
    ------
    DataError
        ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: unlabelled folder not found (data.unlabelled_dir)")
    readable = set(readable_extensions())
    names: list[str] = []
    others: Counter = Counter()
    for base, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            suffix = Path(name).suffix.lower()
            if suffix in readable:
                names.append(Path(base, name).relative_to(folder).as_posix())
            else:
                others[suffix] += 1
    names.sort()
    table = pd.DataFrame({"filename": names, "path": [str(folder / n) for n in names]}, dtype=str)
    return table, others


def _unlabelled(root: Path, config: DataConfig, notes: list[dict[str, str]]) -> pd.DataFrame:
    """``Competition.unlabelled`` of ``data.unlabelled_dir`` (empty when it is not set)."""
    if not config.unlabelled_dir:
        return pd.DataFrame({"filename": [], "path": []}, dtype=str)
    folder = root / config.unlabelled_dir
    table, others = list_unlabelled(folder)
    if others:
        kinds = ", ".join(f"{ext or '(none)'}: {n}" for ext, n in sorted(others.items()))
        reason = (
            f"{sum(others.values())} file(s) with an extension no decoder reads were left "
            f"out of the unlabelled clips ({kinds})"
        )
        warnings.warn(f"{folder}: {reason}", EmoUtilsWarning, stacklevel=3)
        notes.append({"file": str(folder), "reason": reason})
    return table


def load_competition(data_dir: str | os.PathLike, config: DataConfig | None = None) -> Competition:
    """Read and validate a competition folder.

    Parameters
    ----------
    data_dir : str or os.PathLike
        Folder with the CSVs and audio folders.
    config : DataConfig, optional
        File and column names; defaults to the reference competition's.

    Returns
    -------
    Competition

    Raises
    ------
    DataError
        Missing folder, CSV or column; empty or non-UTF-8 CSV; blank label; conflicting
        labels for one file; file names leading outside the data folder; a
        ``data.unlabelled_dir`` that is not a folder.
    """
    config = config or DataConfig()
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found")
    notes: list[dict[str, str]] = []
    fcol = config.filename_column

    train_csv = root / config.train_csv
    sample_columns = read_sample_submission_columns(root / config.sample_submission, config)
    raw = _read_csv(train_csv, {fcol: "data.filename_column"})
    labels, classes = LABEL_READERS[config.label_kind](
        raw, train_csv, config, sample_columns, notes
    )
    train = pd.DataFrame({"filename": raw[fcol].str.strip(), "label": labels})
    train_names = train["filename"].copy()  # every CSV row, for the path check's line numbers

    per_file = train.groupby("filename", sort=False)["label"].unique()
    conflicts = {name: sorted(labels) for name, labels in per_file.items() if len(labels) > 1}
    if conflicts:
        shown = "; ".join(f"{name!r}: {labels}" for name, labels in list(conflicts.items())[:10])
        raise DataError(f"{train_csv}: {len(conflicts)} file(s) with conflicting labels: {shown}")
    duplicated = train["filename"][train["filename"].duplicated()].unique().tolist()
    if duplicated:
        reason = (
            f"{len(duplicated)} file name(s) listed more than once, kept once: {duplicated[:10]}"
        )
        warnings.warn(f"{train_csv}: {reason}", EmoUtilsWarning, stacklevel=2)
        notes.append({"file": str(train_csv), "reason": reason})
        train = train.drop_duplicates("filename").reset_index(drop=True)

    test_csv = root / config.test_csv
    test = _read_csv(test_csv, {fcol: "data.filename_column"})
    test = pd.DataFrame({"filename": test[fcol].str.strip()})

    train_dir = root / config.train_audio_dir
    test_dir = root / config.test_audio_dir
    train["path"] = [str(resolve_audio_path(train_dir, name)) for name in train["filename"]]
    test["path"] = [str(resolve_audio_path(test_dir, name)) for name in test["filename"]]

    if not config.allow_outside_paths:
        _check_inside(train_csv, train_names, train_dir, root)
        _check_inside(test_csv, test["filename"], test_dir, root)

    if len(classes) < 2:
        raise DataError(f"{train_csv}: needs at least 2 classes, found {list(classes)}")
    columns = _check_submission_columns(
        sample_columns, classes, root / config.sample_submission, config.label_kind
    )
    return Competition(
        root=root,
        train=train,
        test=test,
        classes=classes,
        submission_columns=columns,
        notes=notes,
        unlabelled=_unlabelled(root, config, notes),
    )
