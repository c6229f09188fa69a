"""Safety of long runs on real data: file permissions, blown-up training, plain logs.

Files written atomically get the permissions a plain ``open`` would give (umask-aware); a
NaN/inf training loss stops the fold with a :class:`~emo_utils.errors.TrainingError` and
leaves it not done; a model at or below the majority-class baseline is warned about; where
stdout is not a terminal, training prints one plain line per epoch and no bar redraws.
"""

from __future__ import annotations

import os
import re
import stat
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TRAINED_RUN_CONFIG
from fastai.callback.core import Callback

from emo_utils.errors import TrainingDiverged, TrainingError
from emo_utils.fileio import atomic_path, write_json, write_text
from emo_utils.pipeline import PipelineResult
from emo_utils.runs import RunDir
from emo_utils.tasks import get_task
from emo_utils.train import train_cv
from emo_utils.train.cv import _check_probabilities
from emo_utils.train.report import cv_report, report_markdown

ARCH = "test_resnet"


@pytest.fixture
def umask():
    """Set the process umask for one test; restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize(
    ("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)]
)
def test_written_files_and_folders_respect_the_umask(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    write_text(tmp_path / "sub" / "a.txt", "x")
    write_json(tmp_path / "b.json", {"a": 1})
    with atomic_path(tmp_path / "c.pth") as tmp:
        torch.save({"a": 1}, tmp)
    for name in ("sub/a.txt", "b.json", "c.pth"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == file_mode, name
    assert stat.S_IMODE(os.stat(tmp_path / "sub").st_mode) == dir_mode
    assert not list(tmp_path.glob("**/.tmp-*"))


# ---------------------------------------------------------------------- blown-up training
class InjectInf(Callback):
    """Put an infinite value into one training batch (stands in for bad input)."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def before_batch(self) -> None:
        if self.training and (self.epoch, self.iter) == self.at:
            x = self.xb[0].clone()
            x[0, 0, 0, 0] = float("inf")
            self.learn.xb = (x,)


def _assert_fold_not_done(run_dir, fold: int = 0) -> None:
    fdir = RunDir(run_dir).fold_dir(ARCH, fold)
    assert not (fdir / RunDir.DONE_FILE).exists()
    assert not (fdir / RunDir.FOLD_OOF_FILE).exists()
    assert not (fdir / RunDir.CHECKPOINT_FILE).exists()
    assert not (fdir / RunDir.MODEL_FILE).exists()
    assert not RunDir(run_dir).fold_done(ARCH, fold)


def test_absurd_learning_rate_stops_the_fold_naming_it(training_data, tmp_path):
    competition, store = training_data
    config = TRAINED_RUN_CONFIG.override({"train.lr": 1e6, "train.mixup": 0.0})
    with pytest.raises(TrainingError, match=r"test_resnet fold 0: training loss is") as info:
        train_cv(competition, store, run_dir=tmp_path / "run", config=config, progress=False)
    message = str(info.value)
    assert isinstance(info.value, TrainingDiverged)
    assert re.search(r"at epoch \d+, batch \d+/\d+", message)
    for part in ("learning rate", "train.lr = 1000000.0", "not marked done"):
        assert part in message
    _assert_fold_not_done(tmp_path / "run")


def test_inf_in_a_batch_stops_at_that_epoch_and_batch_and_a_rerun_retrains(training_data, tmp_path):
    competition, store = training_data
    config = TRAINED_RUN_CONFIG
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"fold 0: .* at epoch 1, batch 1/2;"):
        train_cv(
            competition,
            store,
            run_dir=run_dir,
            config=config,
            progress=False,
            callbacks=[InjectInf(epoch=1, batch=0)],
        )
    _assert_fold_not_done(run_dir)
    result = train_cv(competition, store, run_dir=run_dir, config=config, progress=False)
    assert result.trained == [(ARCH, 0), (ARCH, 1), (ARCH, 2)]
    assert np.isfinite(result.oof_probabilities(ARCH)).all()


def test_nan_oof_probabilities_are_never_written(tmp_path):
    probs = np.array([[0.2, 0.8], [np.nan, np.nan]])
    with pytest.raises(TrainingError, match=r"a fold 3: .*oof.csv: 1 of 2 out-of-fold rows"):
        _check_probabilities(probs, n_outputs=2, arch="a", fold=3, file=tmp_path / "oof.csv")
    with pytest.raises(TrainingError, match="expected 2 columns"):
        _check_probabilities(np.zeros((2, 0)), n_outputs=2, arch="a", fold=3, file=tmp_path)


def _report(probs: np.ndarray, targets: np.ndarray) -> dict:
    task = get_task("classification")
    classes = ["angry", "happy", "sad"]
    oof = pd.DataFrame(probs, columns=classes)
    result = SimpleNamespace(
        fold=0, n_train=0, n_valid=len(targets), best_epoch=0, best_score=0.0, epochs_run=1,
        scores={m: task.score(m, targets, probs) for m in task.metrics},
    )  # fmt: skip
    return cv_report(
        {ARCH: [result]}, {ARCH: oof}, task=task, targets=targets, classes=classes,
        monitor="f1_macro", n_folds=1,
    )  # fmt: skip


def test_a_model_predicting_the_majority_class_is_warned_about():
    targets = np.array([0, 0, 0, 0, 1, 1, 2])
    majority = np.tile([0.6, 0.3, 0.1], (len(targets), 1))  # always "angry"
    report = _report(majority, targets)
    assert report["baseline"]["class"] == "angry"
    assert report["baseline"]["scores"]["accuracy"] == pytest.approx(4 / 7)
    assert len(report["warnings"]) == len(report["metrics"])
    assert all("at or below the majority-class baseline" in w for w in report["warnings"])
    assert "## Warnings" in report_markdown(report)
    described = PipelineResult(warnings=report["warnings"]).describe()
    assert "WARNING: test_resnet: OOF accuracy 0.5714 is at or below" in described

    perfect = np.eye(3)[targets]
    good = _report(perfect, targets)
    assert good["warnings"] == []
    assert "## Warnings" not in report_markdown(good)
