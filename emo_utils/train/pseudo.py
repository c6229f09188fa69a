"""Pseudo-label rounds, the training side: which unlabelled clips train which fold, on what.

A round (``train.pseudo_from``) trains every fold on its labelled training clips plus
pseudo-labelled clips (test clips, and the clips of ``data.unlabelled_dir``) whose targets
are the parent run's ensemble probabilities.  The rules that keep the scores honest:

* pseudo rows join the **training** part of a fold and never its validation part (in the
  fold's view of the run they sit in the fold :data:`PSEUDO_FOLD`, which no validation fold
  has), so OOF predictions, scores and ensembles are on the labelled clips alone;
* the round trains on the parent's ``folds.csv``, byte for byte (copied into the new run
  folder by :func:`install_parent_folds`; a different one is refused), so round-over-round
  OOF scores compare the same clips in the same folds;
* fold ``k``'s targets come from the parent's fold-``k`` models, combined by the parent's
  ensemble method fitted on the parent's OOF rows outside fold ``k``
  (:mod:`emo_utils.endgame.pseudo` makes them), so no label of fold ``k`` reaches the
  models validated on it through the pseudo-labels.

This module holds the targets (:class:`PseudoLabels`), writes and reads them
(``RUN/pseudo_labels.csv`` and ``.json``, so a resumed round trains on exactly the targets
it started with) and gives the rounds' OOF scores for the CV report (:func:`round_history`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CheckpointError, DataError, TrainingError
from ..features.concat import concat_stores
from ..fileio import atomic_path, read_csv, read_json, write_csv, write_json
from ..runs import RunDir
from ..tasks import Task

__all__ = [
    "PSEUDO_FOLD",
    "PseudoLabels",
    "install_parent_folds",
    "round_history",
]

#: The fold of pseudo rows in a fold's view of the run: never a validation fold.
PSEUDO_FOLD = -1
_KEYS = ["fold", "split", "filename", "kept"]


@dataclass
class PseudoLabels:
    """The soft targets of a pseudo-label round, per fold.

    Attributes
    ----------
    parent : pathlib.Path
        The parent run folder (``train.pseudo_from``).
    method : str
        The parent's ensemble method that made the targets (its submission's).
    splits : list of str
        The split of every clip (``"test"`` or ``"unlabelled"``).
    filenames : list of str
        The file name of every clip, as in its split's table.
    keep : numpy.ndarray of bool, shape (n_folds, n_clips)
        Whether fold ``k`` trains on the clip (:meth:`emo_utils.tasks.Task.pseudo_targets`).
    targets : numpy.ndarray of float32, shape (n_folds, n_clips, n_outputs)
        The clip's soft target in fold ``k``.
    columns : list of str
        The task's output columns (the target columns of the CSV).
    thresholds : list of list of float, optional
        Multi-label: the decision thresholds of every fold's targets.
    inputs : dict
        Input kind -> store with one row per clip, in this order (:meth:`with_inputs`);
        not saved.
    """

    parent: Path
    method: str
    splits: list[str]
    filenames: list[str]
    keep: np.ndarray
    targets: np.ndarray
    columns: list[str]
    thresholds: list[list[float]] | None = None
    inputs: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.parent = Path(self.parent)
        self.keep = np.asarray(self.keep, dtype=bool)
        self.targets = np.asarray(self.targets, dtype=np.float32)
        n = len(self.filenames)
        if len(self.splits) != n or self.keep.ndim != 2 or self.keep.shape[1] != n:
            raise DataError(
                f"PseudoLabels: {n} file names, {len(self.splits)} splits, keep of shape "
                f"{self.keep.shape}; expected (n_folds, {n})"
            )
        if self.targets.shape != (*self.keep.shape, len(self.columns)):
            raise DataError(
                f"PseudoLabels: targets of shape {self.targets.shape}, expected "
                f"{(*self.keep.shape, len(self.columns))}"
            )

    def __len__(self) -> int:
        return len(self.filenames)

    @property
    def n_folds(self) -> int:
        """Folds the targets are made for."""
        return int(self.keep.shape[0])

    def kept_per_fold(self) -> list[int]:
        """Clips each fold trains on."""
        return [int(k) for k in self.keep.sum(axis=1)]

    def split_counts(self) -> dict[str, int]:
        """Clips per split."""
        return {s: self.splits.count(s) for s in dict.fromkeys(self.splits)}

    # ------------------------------------------------------------------ files
    def to_frame(self) -> pd.DataFrame:
        """``fold, split, filename, kept, <columns>``: one row per fold and clip."""
        n = len(self)
        frames = []
        for k in range(self.n_folds):
            df = pd.DataFrame(
                {
                    "fold": np.full(n, k, dtype=np.int64),
                    "split": self.splits,
                    "filename": self.filenames,
                    "kept": self.keep[k].astype(np.int64),
                }
            )
            frames.append(
                pd.concat([df, pd.DataFrame(self.targets[k], columns=self.columns)], axis=1)
            )
        return pd.concat(frames, ignore_index=True)

    def info(self) -> dict[str, Any]:
        """What ``pseudo_labels.json`` holds: how the targets were made, and counts."""
        return {
            "parent": os.fspath(self.parent),
            "method": self.method,
            "n_folds": self.n_folds,
            "columns": list(self.columns),
            "clips": len(self),
            "splits": self.split_counts(),
            "kept": self.kept_per_fold(),
            "thresholds": self.thresholds,
        }

    def save(self, run: RunDir) -> None:
        """Write ``RUN/pseudo_labels.csv``, then ``RUN/pseudo_labels.json`` (the marker)."""
        write_csv(run.pseudo_labels_file(".csv"), self.to_frame())
        write_json(run.pseudo_labels_file(".json"), self.info())

    @classmethod
    def load(cls, run: RunDir) -> PseudoLabels | None:
        """The targets a round saved, or ``None`` before they were written (no JSON).

        Raises
        ------
        CheckpointError
            A damaged or inconsistent file, naming it.
        """
        marker, path = run.pseudo_labels_file(".json"), run.pseudo_labels_file(".csv")
        if not marker.is_file():
            return None
        fix = "use a new run folder for the round (its folds were trained on these targets)"
        try:
            info = read_json(marker)
            df = read_csv(path, dtype={"split": str, "filename": str}, keep_default_na=False)
            columns, n_folds = list(info["columns"]), int(info["n_folds"])
        except (OSError, ValueError, KeyError, TypeError, pd.errors.ParserError) as exc:
            raise CheckpointError(f"{path}: cannot be read ({exc}); {fix}") from exc
        absent = [c for c in [*_KEYS, *columns] if c not in df.columns]
        if absent:
            raise CheckpointError(f"{path}: missing column(s) {absent}; {fix}")
        parts = [df[df["fold"] == k].reset_index(drop=True) for k in range(n_folds)]
        first = parts[0][["split", "filename"]]
        if (
            sum(len(p) for p in parts) != len(df)
            or any(not p[["split", "filename"]].equals(first) for p in parts)
            or not np.isfinite(df[columns].to_numpy(np.float64)).all()
            or not df["kept"].isin([0, 1]).all()
        ):
            raise CheckpointError(
                f"{path}: every fold 0..{n_folds - 1} must list the same clips with finite "
                f"targets and kept 0/1; {fix}"
            )
        return cls(
            parent=Path(info["parent"]),
            method=str(info["method"]),
            splits=first["split"].tolist(),
            filenames=first["filename"].tolist(),
            keep=np.stack([p["kept"].to_numpy() == 1 for p in parts]),
            targets=np.stack([p[columns].to_numpy(np.float32) for p in parts]),
            columns=columns,
            thresholds=info.get("thresholds"),
        )

    # ------------------------------------------------------------------ inputs
    def with_inputs(
        self, inputs: Mapping[str, Mapping[str, Any]], *, require_ok: bool = True
    ) -> PseudoLabels:
        """Attach the stores of the clips: ``{split: {input kind: store}}`` -> :attr:`inputs`.

        Every kind present in all the splits used gets one store (no copy:
        :func:`~emo_utils.features.concat.concat_stores`) with one row per clip, in order.
        ``require_ok=False`` accepts clips without an input (their rows stay failed rows).

        Raises
        ------
        CheckpointError
            A clip is not in its split's store, or (``require_ok``) has no input there: the
            cache changed since the targets were made.
        """
        used = list(dict.fromkeys(self.splits))
        if not used:  # no clip: nothing to attach
            return dataclasses.replace(self, inputs={})
        missing = [s for s in used if s not in inputs]
        if missing:
            raise CheckpointError(f"pseudo-labels: no stores of the split(s) {missing}")
        kinds = [k for k in inputs[used[0]] if all(k in inputs[s] for s in used)]
        offsets, index = {}, {}
        total = 0
        for split in used:
            stores = inputs[split]
            first = next(iter(stores.values()))
            offsets[split], total = total, total + len(first)
            index[split] = {}
            for i, name in enumerate(first.filenames):
                index[split].setdefault(name, i)
        rows, bad = [], []
        for split, name in zip(self.splits, self.filenames, strict=True):
            row = index[split].get(name)
            ok = row is not None and (
                not require_ok or all(bool(inputs[split][k].ok[row]) for k in kinds)
            )
            if not ok:
                bad.append(f"{split}/{name}")
            rows.append(offsets[split] + (row or 0))
        if bad:
            raise CheckpointError(
                f"pseudo-labels: {len(bad)} clip(s) are missing from the {used} caches or have "
                f"no input there, e.g. {bad[:5]}; the cache changed since the targets were "
                "made: use a new run folder for the round"
            )
        joined = {
            kind: concat_stores([inputs[s][kind] for s in used]).select(np.asarray(rows))
            for kind in kinds
        }
        return dataclasses.replace(self, inputs=joined)


def install_parent_folds(run: RunDir, parent: str | os.PathLike | RunDir) -> None:
    """Give ``run`` the parent's ``folds.csv``: copied when absent, else checked byte for byte.

    Raises
    ------
    TrainingError
        The parent has no ``folds.csv``, or ``run`` has one that differs from it (OOF would
        not compare the same folds, and pseudo-labels would leak validation labels).
    """
    parent = RunDir(parent)
    if not parent.folds_file.is_file():
        raise TrainingError(
            f"train.pseudo_from: {parent.folds_file} not found; train the parent run first"
        )
    if run.folds_file.is_file():
        if run.folds_file.read_bytes() != parent.folds_file.read_bytes():
            raise TrainingError(
                f"OOF would leak: {run.folds_file} is not byte-identical to the parent's "
                f"{parent.folds_file}; a pseudo-label round trains on its parent's folds "
                "(use a new run folder)"
            )
        return
    with atomic_path(run.folds_file) as tmp:
        shutil.copyfile(parent.folds_file, tmp)


def round_history(
    parent: str | os.PathLike | RunDir, *, task: Task, classes: Sequence[str]
) -> list[dict[str, Any]]:
    """The OOF scores of the rounds before this one: ``[{"round", "run", "scores"}]``.

    The parent's own rounds when its ``cv_report.json`` lists them (it was a round itself),
    else the parent alone as round 0, scored from its OOF files under every metric of the
    task (as ``cv_report.json``'s ``overall``).
    """
    parent = RunDir(parent)
    report = parent.read_cv_report() or {}
    rounds = (report.get("pseudo") or {}).get("rounds")
    if rounds:
        return json.loads(json.dumps(rounds))
    archs = list(parent.read_config().train.architectures)
    oof = parent.load_oof(archs, classes, encode=task.encode)
    scores = {
        arch: {m: float(task.score(m, oof.y, oof.probas[i])) for m in task.metrics}
        for i, arch in enumerate(archs)
    }
    return [{"round": 0, "run": os.fspath(parent.path), "scores": scores}]
