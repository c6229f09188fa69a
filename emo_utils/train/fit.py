"""One fold's resumable fastai fit, shared by every task's fold trainer.

:func:`fit_fold` resumes from the fold's checkpoint when there is one, runs
``fit_one_cycle`` with the run's callbacks (best-epoch saving, early stopping, the per-epoch
checkpoint, the CSV log, the non-finite-loss stop), and, when every epoch already ran, loads
the saved best weights instead.  The classification / multi-label trainer
(:mod:`.cv`) and the verification trainer (:mod:`.verification`) call it with their own
learner and extra callbacks.

Under a multi-process launch (:mod:`.distributed`) the fit runs in fastai's
``DistributedTrainer`` on every rank; rank 0 alone writes the checkpoint, the best weights
and the log, and every rank ends with the saved best weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastai.callback.core import Callback
from fastai.callback.schedule import fit_one_cycle  # noqa: F401  (patches Learner.fit_one_cycle)

from ..config import TrainConfig
from ..errors import TrainingDiverged
from .callbacks import (
    AtomicCSVLogger,
    BestModelSaver,
    EpochCheckpoint,
    ResumableEarlyStopping,
    StopOnNonFiniteLoss,
)
from .checkpoints import load_weights, restore_checkpoint
from .distributed import distributed_fit, is_main

__all__ = ["FitResult", "fit_fold"]


@dataclass(frozen=True)
class FitResult:
    """What a fold's fit left: its best monitored score and epoch, and the epochs it ran.

    Attributes
    ----------
    best : float or None
        The best ``train.monitor`` score (the checkpoint's when no epoch ran here).
    best_epoch : int or None
        The epoch whose weights ``model_path`` holds.
    epochs_run : int
        ``train.epochs``, or fewer when early stopping ended the fit.
    """

    best: float | None
    best_epoch: int | None
    epochs_run: int


def fit_fold(
    learn: Any,
    *,
    state: dict[str, Any] | None,
    train_config: TrainConfig,
    lr_max: Any,
    ckpt_path: Path,
    model_path: Path,
    log_path: Path,
    arch: str,
    fold: int,
    progress: bool,
    callbacks: Sequence[Callback] = (),
    lower_is_better: bool = False,
) -> FitResult:
    """Fit (or finish fitting) one fold; its best weights end in ``model_path``.

    Parameters
    ----------
    learn : fastai.learner.Learner
        The fold's learner (model, data, loss, metrics).
    state : dict or None
        The fold's checkpoint (:func:`.checkpoints.read_checkpoint`), or ``None`` to start.
    train_config : TrainConfig
        ``epochs``, ``monitor``, ``early_stopping_patience``, ``weight_decay``.
    lr_max : float, slice or sequence
        ``fit_one_cycle``'s ``lr_max`` (one rate or one per parameter group).
    ckpt_path, model_path, log_path : pathlib.Path
        The per-epoch checkpoint, the best weights and the CSV log of the fold.
    arch : str
    fold : int
    progress : bool
        Print the resume line and the saver's lines.
    callbacks : sequence of fastai callbacks
        Added after the run's own.
    lower_is_better : bool
        The monitored metric is minimised (EER, minDCF, a loss).

    Returns
    -------
    FitResult

    Raises
    ------
    TrainingDiverged
        A non-finite loss; the fold's checkpoint and weights are deleted first, so a rerun
        starts the fold over.
    """
    tc = train_config
    start_epoch, best, best_epoch, wait = 0, None, None, 0
    if state is not None:
        restore_checkpoint(state, learn, ckpt_path, arch, fold)
        start_epoch, best, best_epoch = state["epoch"] + 1, state["best"], state["best_epoch"]
        wait = state.get("wait", 0)
        if progress:
            print(f"{arch} fold {fold}: resuming at epoch {start_epoch} of {tc.epochs}")
    saver = BestModelSaver(
        model_path,
        tc.monitor,
        start_epoch=start_epoch,
        best=best,
        best_epoch=best_epoch,
        verbose=progress,
    )
    stopper = None
    if tc.early_stopping_patience > 0:
        stopper = ResumableEarlyStopping(
            tc.monitor, tc.early_stopping_patience, start_epoch=start_epoch, best=best, wait=wait
        )
    if lower_is_better:
        saver.comp = np.less
        if stopper is not None:
            stopper.comp = np.less
    device = learn.dls.device
    patience_left = stopper is None or wait < tc.early_stopping_patience
    if start_epoch < tc.epochs and patience_left:
        cbs = [
            saver,
            *([stopper] if stopper else []),
            EpochCheckpoint(
                ckpt_path,
                arch=arch,
                fold=fold,
                saver=saver,
                stopper=stopper,
                start_epoch=start_epoch,
            ),
            AtomicCSVLogger(log_path, start_epoch=start_epoch),
            StopOnNonFiniteLoss(arch=arch, fold=fold, every=1 if device.type == "cpu" else 20),
            *callbacks,
        ]
        try:
            with distributed_fit(learn):
                learn.fit_one_cycle(
                    tc.epochs, lr_max=lr_max, wd=tc.weight_decay, start_epoch=start_epoch, cbs=cbs
                )
        except TrainingDiverged:
            # The weights of the diverging fit are worthless: a rerun starts the fold over.
            if is_main():
                ckpt_path.unlink(missing_ok=True)
                model_path.unlink(missing_ok=True)
            raise
    else:  # every epoch ran before the interruption: only the predictions are missing
        load_weights(model_path, learn.model, device)
    epochs_run = tc.epochs
    if stopper is not None and stopper.stopped_epoch is not None:
        epochs_run = stopper.stopped_epoch + 1
    elif not patience_left:
        epochs_run = start_epoch
    if saver.best is not None:  # the fit ran (else the best score is the checkpoint's)
        best = saver.best
    return FitResult(best=best, best_epoch=saver.best_epoch, epochs_run=epochs_run)
