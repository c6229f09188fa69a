"""The run folder: the one owner of its layout, paths and readers.

A run folder is the contract between the stages (``docs/design.md``)::

    RUN/config.json                  the Config the run used (inference rebuilds from it)
    RUN/classes.json                 class names, index order
    RUN/folds.csv                    filename,label,fold[,group]  (written once)
    RUN/models/ARCH/fold{k}/model.pth, checkpoint.pth, log.csv, oof.csv, done.json
    RUN/oof/ARCH.csv                 filename,label,fold,<one probability column per class>
    RUN/cv_report.json, cv_report.md
    RUN/predictions/ARCH.csv         filename,<class probabilities>  (test, fold-averaged)
    RUN/ensemble_report.json, .md
    RUN/summary.json                 end-of-run counts of skips, warnings and fallbacks
    RUN/gathered.json                the runs a gathered run was copied from (``gather``)
    RUN/pseudo_labels.csv, .json     a pseudo-label round: the soft targets per fold, and how
                                     they were made (parent run, its ensemble method)
    RUN/report/                      figures written by ``python -m emo_utils report``
    RUN/.emo_utils.lock(.json)       the folder's lock while a stage writes it (:meth:`RunDir.lock`)

No other module spells these names: every stage asks a :class:`RunDir`.

Examples
--------
>>> run = RunDir("runs/demo")
>>> run.fold_dir("resnet18", 2).as_posix()
'runs/demo/models/resnet18/fold2'
>>> run.oof_file("resnet18").name
'resnet18.csv'
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import CheckpointError, ConfigError, DataError, TrainingError
from .fileio import read_csv, read_json, remove_temp_files, write_json
from .locks import folder_lock

if TYPE_CHECKING:
    from .config import Config

__all__ = ["OOF", "RunDir", "arch_file_name"]

#: Fields that may differ between runs sharing a folder (runtime only, no effect on results).
RUNTIME_FIELDS = frozenset({"train.num_workers"})


def arch_file_name(name: str) -> str:
    """An architecture or report name as one file-name part: ``:`` and ``/`` become ``+``.

    Registry names carry a family prefix and may hold a hub id (``classical:logreg``,
    ``hf:facebook/wav2vec2-base``); a colon is not allowed in Windows file names and reads
    as a URL scheme in Markdown links, a slash would make sub-folders.

    >>> arch_file_name("hf:facebook/wav2vec2-base")
    'hf+facebook+wav2vec2-base'
    >>> arch_file_name("resnest14d")
    'resnest14d'
    """
    return name.replace(":", "+").replace("/", "+").replace("\\", "+")


@dataclass
class OOF:
    """Aligned OOF predictions of several architectures (see :meth:`RunDir.load_oof`).

    Attributes
    ----------
    probas : numpy.ndarray, shape (n_models, n_samples, n_classes)
    y : numpy.ndarray of int64, shape (n_samples,) or (n_samples, n_classes)
        Class index of every clip, or its multi-hot targets (multi-label runs).
    folds : numpy.ndarray of int64, shape (n_samples,)
    filenames : list of str
    architectures : list of str
    classes : tuple of str
    """

    probas: np.ndarray
    y: np.ndarray
    folds: np.ndarray
    filenames: list[str]
    architectures: list[str]
    classes: tuple[str, ...]


class RunDir:
    """Every path and reader of one run folder.

    Parameters
    ----------
    path : str or os.PathLike
        The run folder (need not exist yet).
    """

    MODEL_FILE = "model.pth"
    CHECKPOINT_FILE = "checkpoint.pth"
    LOG_FILE = "log.csv"
    DONE_FILE = "done.json"
    FOLD_OOF_FILE = "oof.csv"

    def __init__(self, path: str | os.PathLike | RunDir) -> None:
        self.path = path.path if isinstance(path, RunDir) else Path(path)

    def __repr__(self) -> str:
        return f"RunDir({os.fspath(self.path)!r})"

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    @property
    def name(self) -> str:
        """The folder's name (used in submission file names)."""
        return self.path.name

    # ------------------------------------------------------------------ paths
    @property
    def config_file(self) -> Path:
        """``RUN/config.json``: the config the run used (inference rebuilds from it)."""
        return self.path / "config.json"

    @property
    def classes_file(self) -> Path:
        """``RUN/classes.json``: the class names, in class-index order."""
        return self.path / "classes.json"

    @property
    def folds_file(self) -> Path:
        """``RUN/folds.csv``: the fold of every training clip."""
        return self.path / "folds.csv"

    @property
    def models_dir(self) -> Path:
        """``RUN/models``: one ``ARCH/fold{k}`` folder per trained fold."""
        return self.path / "models"

    @property
    def oof_dir(self) -> Path:
        """``RUN/oof``: the out-of-fold predictions, one CSV per architecture."""
        return self.path / "oof"

    @property
    def predictions_dir(self) -> Path:
        """``RUN/predictions``: the test-set predictions, one CSV per architecture."""
        return self.path / "predictions"

    @property
    def report_dir(self) -> Path:
        """``RUN/report``: the plots and README of the run report."""
        return self.path / "report"

    @property
    def summary_file(self) -> Path:
        """``RUN/summary.json``: end-of-run counts of skips, warnings and fallbacks."""
        return self.path / "summary.json"

    @property
    def gathered_file(self) -> Path:
        """``RUN/gathered.json``: which input run each architecture was copied from."""
        return self.path / "gathered.json"

    def pseudo_labels_file(self, suffix: str = ".csv") -> Path:
        """``RUN/pseudo_labels.csv`` (or ``.json``) of a pseudo-label round.

        The CSV holds ``fold, split, filename, kept`` and one soft-target column per output,
        one row per clip and fold; the JSON (written last) says how they were made.
        """
        return self.path / f"pseudo_labels{suffix}"

    def cv_report_file(self, suffix: str = ".json") -> Path:
        """``cv_report.json`` or ``cv_report.md``."""
        return self.path / f"cv_report{suffix}"

    def ensemble_report_file(self, suffix: str = ".json") -> Path:
        """``ensemble_report.json`` or ``ensemble_report.md``."""
        return self.path / f"ensemble_report{suffix}"

    @property
    def thresholds_file(self) -> Path:
        """``RUN/thresholds.json``: multi-label decision thresholds tuned on OOF.

        ``{"classes": [...], "thresholds": {model or method: [one per class]}}``, written by
        the ensemble stage and applied to the test predictions.
        """
        return self.path / "thresholds.json"

    def fold_dir(self, arch: str, fold: int) -> Path:
        """``RUN/models/ARCH/fold{k}`` (``ARCH`` as :func:`arch_file_name` writes it)."""
        return self.models_dir / arch_file_name(arch) / f"fold{int(fold)}"

    def fold_file(self, arch: str, fold: int, name: str) -> Path:
        """A file of one fold folder, e.g. ``fold_file(arch, 0, RunDir.MODEL_FILE)``."""
        return self.fold_dir(arch, fold) / name

    def oof_file(self, arch: str) -> Path:
        """``RUN/oof/ARCH.csv``: the out-of-fold predictions of one architecture."""
        return self.oof_dir / f"{arch_file_name(arch)}.csv"

    def predictions_file(self, arch: str) -> Path:
        """``RUN/predictions/ARCH.csv``: the test-set predictions of one architecture."""
        return self.predictions_dir / f"{arch_file_name(arch)}.csv"

    def architecture_files(self, arch: str) -> list[Path]:
        """Every existing file of one architecture, sorted.

        Its fold folders (``models/ARCH/**``), ``oof/ARCH.csv`` and ``predictions/ARCH.csv``:
        what :func:`emo_utils.endgame.gather_runs` copies into another run folder.
        """
        folder = self.models_dir / arch_file_name(arch)
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        return files + [
            p for p in (self.oof_file(arch), self.predictions_file(arch)) if p.is_file()
        ]

    # ------------------------------------------------------------------ state
    def fold_done(self, arch: str, fold: int) -> bool:
        """Whether the fold finished (its ``done.json`` exists)."""
        return self.fold_file(arch, fold, self.DONE_FILE).is_file()

    def missing_folds(self, architectures: Sequence[str], n_folds: int) -> dict[str, list[int]]:
        """Architecture -> unfinished fold indices (only architectures with some)."""
        out = {}
        for arch in architectures:
            missing = [k for k in range(n_folds) if not self.fold_done(arch, k)]
            if missing:
                out[arch] = missing
        return out

    def require_trained(self, architectures: Sequence[str], n_folds: int) -> None:
        """Raise :class:`TrainingError` naming the unfinished folds, if any."""
        missing = self.missing_folds(architectures, n_folds)
        if missing:
            raise TrainingError(
                f"{self.models_dir}: unfinished folds {missing} (no {self.DONE_FILE}); "
                "train them first"
            )

    def trained_architectures(self) -> list[str]:
        """Architectures with an ``oof/ARCH.csv``, sorted by name (as :func:`arch_file_name`)."""
        return sorted(p.stem for p in self.oof_dir.glob("*.csv"))

    @contextlib.contextmanager
    def lock(
        self, *, wait: bool = True, notify: Callable[[str], Any] | None = None
    ) -> Iterator[RunDir]:
        """Hold the run folder's lock (created with the folder if missing).

        Training and prediction hold it while they write the folder, so two processes on
        one run folder take turns; re-entrant within a thread.  See :mod:`emo_utils.locks`.

        Parameters
        ----------
        wait : bool
            Wait while another process holds it (printing who, at once and then every
            minute), or raise at once.
        notify : callable, optional
            Receives the waiting messages (default: printed to stderr).

        Yields
        ------
        RunDir
            This run folder.

        Raises
        ------
        LockError
            ``wait=False`` and another process holds the lock (naming it).
        """
        with folder_lock(self.path, what="run folder", wait=wait, notify=notify):
            yield self

    def prepare(self) -> None:
        """Create the folder and remove temporary files left by a killed run."""
        self.path.mkdir(parents=True, exist_ok=True)
        for folder in (self.path, self.oof_dir, self.predictions_dir):
            remove_temp_files(folder)

    # ------------------------------------------------------------------ config and classes
    def read_config(self) -> Config:
        """The config the run was trained with (``config.json``).

        Raises
        ------
        ConfigError
            The run folder has no ``config.json`` (train it first).
        """
        from .config import Config

        if not self.config_file.is_file():
            raise ConfigError(
                "<run>", os.fspath(self.config_file), "no config.json here: train the run first"
            )
        return Config.from_file(self.config_file)

    def check_config(self, config: Config) -> None:
        """Refuse to mix two configs in one run folder.

        Passes when there is no ``config.json`` yet, or when the saved config equals
        ``config`` up to runtime settings (``train.num_workers``).

        Raises
        ------
        ConfigError
            Naming the first changed field, listing all of them.
        """
        if not self.config_file.is_file():
            return
        saved, current = self.read_config().to_dict(), config.to_dict()
        changed = [
            f"{section}.{name}"
            for section, values in current.items()
            for name, value in values.items()
            if f"{section}.{name}" not in RUNTIME_FIELDS and saved[section].get(name) != value
        ]
        if changed:
            section, name = changed[0].split(".")
            raise ConfigError(
                changed[0],
                current[section][name],
                f"differs from {self.config_file} (changed: {changed}); "
                "use a new run folder for a new config",
            )

    def read_classes(self) -> tuple[str, ...]:
        """Class names in index order (``classes.json``).

        Raises
        ------
        TrainingError
            No ``classes.json`` (the run is not trained).
        CheckpointError
            The file is damaged or not a JSON list of names.
        """
        path = self.classes_file
        if not path.is_file():
            raise TrainingError(f"{path}: not found; train the run first")
        try:
            classes = read_json(path)
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: cannot be read ({exc})") from exc
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise CheckpointError(f"{path}: expected a JSON list of class names, got {classes!r}")
        return tuple(classes)

    def write_run_files(self, config: Config, classes: Sequence[str]) -> None:
        """``config.json`` and ``classes.json``, once; refuse a folder made for other settings.

        Raises
        ------
        ConfigError
            The folder holds a run made with another config.
        TrainingError
            The folder holds a run made for other classes.
        """
        self.check_config(config)
        if not self.config_file.is_file():
            config.save(self.config_file)
        if self.classes_file.is_file():
            saved = self.read_classes()
            if list(saved) != list(classes):
                raise TrainingError(
                    f"{self.classes_file}: holds classes {list(saved)}, the data has "
                    f"{list(classes)}; use a new run folder"
                )
        else:
            write_json(self.classes_file, list(classes))

    # ------------------------------------------------------------------ reports
    def _read_report(self, path: Path) -> dict[str, Any] | None:
        if not path.is_file():
            return None
        try:
            report = read_json(path)
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: cannot be read ({exc}); rerun the stage") from exc
        return report if isinstance(report, dict) else {}

    def read_cv_report(self) -> dict[str, Any] | None:
        """``cv_report.json`` (``None`` before training finished; ``{}`` if not an object).

        Raises
        ------
        CheckpointError
            The file is damaged.
        """
        return self._read_report(self.cv_report_file(".json"))

    def read_ensemble_report(self) -> dict[str, Any] | None:
        """``ensemble_report.json`` (``None`` when absent; ``{}`` if not an object).

        Raises
        ------
        CheckpointError
            The file is damaged.
        """
        return self._read_report(self.ensemble_report_file(".json"))

    def read_thresholds(self, classes: Sequence[str]) -> dict[str, np.ndarray]:
        """``thresholds.json``: model or method name -> thresholds ``(n_classes,)``.

        Raises
        ------
        CheckpointError
            Missing, damaged, or made for other classes; naming the file and the fix.
        """
        path = self.thresholds_file
        fix = "run the predict stage again to tune the thresholds on the OOF predictions"
        try:
            data = read_json(path)
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: cannot read ({exc}); {fix}") from exc
        if not isinstance(data, dict) or list(data.get("classes", [])) != list(classes):
            raise CheckpointError(f"{path}: made for other classes than {list(classes)}; {fix}")
        out = {}
        for name, values in dict(data.get("thresholds", {})).items():
            arr = np.asarray(values, dtype=np.float64)
            if arr.shape != (len(classes),) or not np.all(np.isfinite(arr)):
                raise CheckpointError(f"{path}: thresholds of {name!r} are damaged; {fix}")
            out[str(name)] = arr
        return out

    # ------------------------------------------------------------------ fold results
    def read_done(self, arch: str, fold: int) -> dict[str, Any]:
        """The content of a fold's ``done.json``.

        Raises
        ------
        CheckpointError
            Missing or damaged, naming the file and the fix.
        """
        path = self.fold_file(arch, fold, self.DONE_FILE)
        try:
            info = read_json(path)
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"{arch} fold {fold}: cannot read {path} ({exc}); delete it to train the fold again"
            ) from exc
        if not isinstance(info, dict):
            raise CheckpointError(f"{arch} fold {fold}: {path} is not a JSON object")
        return info

    def read_fold_oof(self, arch: str, fold: int) -> pd.DataFrame:
        """A fold's ``oof.csv`` (``filename, label, fold, <class probabilities>``)."""
        path = self.fold_file(arch, fold, self.FOLD_OOF_FILE)
        try:
            return read_csv(path, dtype={"filename": str, "label": str}, keep_default_na=False)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise CheckpointError(
                f"{arch} fold {fold}: cannot read {path} ({exc}); delete "
                f"{self.fold_file(arch, fold, self.DONE_FILE)} to train the fold again"
            ) from exc

    def _encode_labels(
        self,
        labels: list[str],
        classes: tuple[str, ...],
        index: dict[str, int],
        encode: Callable[[list[str], Sequence[str]], np.ndarray] | None,
    ) -> np.ndarray:
        if encode is None:
            return np.array([index[label] for label in labels], dtype=np.int64)
        try:
            return np.asarray(encode(labels, classes)).astype(np.int64)
        except DataError as exc:
            raise CheckpointError(f"{self.oof_dir}: {exc}") from exc

    def load_oof(
        self,
        architectures: Sequence[str],
        classes: Sequence[str] | None = None,
        *,
        encode: Callable[[list[str], Sequence[str]], np.ndarray] | None = None,
    ) -> OOF:
        """Read ``oof/ARCH.csv`` of every architecture and align their rows by file name.

        Parameters
        ----------
        architectures : sequence of str
            Which files to read, in this order.
        classes : sequence of str, optional
            Class names in index order (default: ``classes.json``).
        encode : callable, optional
            ``encode(labels, classes) -> targets``, the task's
            (:meth:`emo_utils.tasks.Task.encode`) for targets other than one class index
            per clip (multi-label); default: the class index of each label.

        Raises
        ------
        TrainingError
            An architecture has no OOF file (not trained yet).
        CheckpointError
            A file lacks a column, has missing probabilities or unknown labels, or the
            files do not cover the same training files.
        """
        classes = tuple(classes) if classes is not None else self.read_classes()
        index = {c: i for i, c in enumerate(classes)}
        missing = [a for a in architectures if not self.oof_file(a).is_file()]
        if missing:
            raise TrainingError(
                f"{self.oof_dir}: no OOF predictions for {missing}; train them first"
            )
        frames: list[pd.DataFrame] = []
        for arch in architectures:
            path = self.oof_file(arch)
            df = read_csv(path, dtype={"filename": str, "label": str}, keep_default_na=False)
            absent = [c for c in ["filename", "label", "fold", *classes] if c not in df.columns]
            if absent:
                raise CheckpointError(
                    f"{path}: missing column(s) {absent}; found {list(df.columns)}"
                )
            probs = df[list(classes)].apply(pd.to_numeric, errors="coerce")
            if probs.isna().any().any():
                raise CheckpointError(f"{path}: missing or non-numeric probabilities")
            unknown = sorted(set(df["label"]) - set(index)) if encode is None else []
            if unknown:
                raise CheckpointError(f"{path}: labels not in classes.json: {unknown[:10]}")
            if df["filename"].duplicated().any():
                raise CheckpointError(f"{path}: a file name appears more than once")
            df[list(classes)] = probs
            frames.append(df.set_index("filename"))
        if not frames:
            raise TrainingError(f"{self.oof_dir}: no architectures given")
        order = frames[0].index
        for arch, df in zip(architectures, frames, strict=True):
            if set(df.index) != set(order):
                raise CheckpointError(
                    f"{self.oof_file(arch)}: covers different training files than "
                    f"{self.oof_file(architectures[0]).name}; retrain it with the run's folds.csv"
                )
        frames = [df.loc[order] for df in frames]
        first = frames[0]
        return OOF(
            probas=np.stack([df[list(classes)].to_numpy(np.float64) for df in frames]),
            y=self._encode_labels(first["label"].tolist(), classes, index, encode),
            folds=first["fold"].to_numpy(np.int64),
            filenames=[str(f) for f in order],
            architectures=list(architectures),
            classes=classes,
        )

    def load_predictions(
        self, architectures: Sequence[str], filenames: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Read back ``predictions/ARCH.csv``: architecture -> ``(n_test, n_classes)``.

        Parameters
        ----------
        architectures : sequence of str
        filenames : sequence of str, optional
            When given, every file must list exactly these names in this order.

        Raises
        ------
        CheckpointError
            A file is missing, lacks a class column or lists other file names.
        """
        classes = list(self.read_classes())
        out = {}
        for arch in architectures:
            path = self.predictions_file(arch)
            if not path.is_file():
                raise CheckpointError(f"{path}: not found; predict the test set first")
            df = read_csv(path, dtype={"filename": str}, keep_default_na=False, na_values=[""])
            absent = [c for c in ["filename", *classes] if c not in df.columns]
            if absent:
                raise CheckpointError(f"{path}: missing column(s) {absent}")
            if filenames is not None and df["filename"].tolist() != list(filenames):
                raise CheckpointError(f"{path}: file names differ from the test feature store")
            out[arch] = df[classes].to_numpy(np.float64)
        return out

    def fold_logs(self, arch: str | None = None) -> list[tuple[str, int, Path]]:
        """``(arch, fold, path)`` of every fold's ``log.csv``, sorted."""
        out = []
        pattern = "*" if arch is None else glob.escape(arch_file_name(arch))
        for arch_dir in sorted(self.models_dir.glob(pattern)):
            for fdir in sorted(arch_dir.glob("fold*")):
                number = fdir.name.removeprefix("fold")
                log = fdir / self.LOG_FILE
                if number.isdigit() and log.is_file():
                    out.append((arch or arch_dir.name, int(number), log))
        return out
