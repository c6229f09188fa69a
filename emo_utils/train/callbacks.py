"""fastai callbacks that make a fold's fit resumable and its files atomic.

Each overrides the events it needs: :class:`BestModelSaver` (best weights, atomic,
restored best score on resume), :class:`ResumableEarlyStopping`, :class:`AtomicCSVLogger`
(one line per epoch, rewritten atomically), :class:`EpochCheckpoint` (model, optimiser,
epoch, best score and RNG states after every epoch), :class:`StopOnNonFiniteLoss` (a NaN/inf
loss raises :class:`~emo_utils.errors.TrainingDiverged`), :class:`LazyProgressCallback` and
:class:`EpochLineLogger` (one plain line per epoch where no one watches a terminal).
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastai.callback.core import Callback, CancelFitException
from fastai.callback.mixup import MixUp
from fastai.callback.progress import CSVLogger, ProgressCallback
from fastai.callback.tracker import (
    EarlyStoppingCallback,
    SaveModelCallback,
    TerminateOnNaNCallback,
    TrackerCallback,
)
from fastai.distributed import DistributedDL
from fastai.learner import save_model
from fastai.torch_core import get_model
from fastcore.basics import noop

from ..errors import TrainingDiverged
from ..fileio import atomic_path, write_text
from .checkpoints import CHECKPOINT_FORMAT, load_weights
from .distributed import barrier, is_main

__all__ = [
    "AtomicCSVLogger",
    "BestModelSaver",
    "EpochCheckpoint",
    "EpochLineLogger",
    "LazyProgressCallback",
    "ResumableEarlyStopping",
    "StopOnNonFiniteLoss",
    "UnionMixUp",
]


class LazyProgressCallback(ProgressCallback):
    """fastai's progress bars, refreshing the loss shown in the bar every ``every`` batches.

    fastai's ``ProgressCallback`` reads the loss (``.item()``) after every batch, which makes
    the CPU wait for the GPU each time; reading it less often keeps the GPU queue full.
    """

    def __init__(self, every: int = 20) -> None:
        self.every = every

    @property
    def name(self) -> str:
        """``learn.progress``, like fastai's, so ``Learner.no_bar()`` finds it."""
        return "progress"

    def after_batch(self) -> None:
        """Advance the bar; show the smoothed loss on every ``every``-th batch only."""
        self.pbar.update(self.iter + 1)
        if hasattr(self, "smooth_loss") and self.iter % self.every == 0:
            self.pbar.comment = f"{self.smooth_loss.item():.4f}"


class EpochLineLogger(Callback):
    """One plain line per epoch (``epoch 1  train_loss 0.9  ...  time 00:02``), no bars.

    For output that no one watches live (a log file, CI): it replaces fastai's progress
    bars and per-epoch table, which redraw with carriage returns.
    """

    order = ProgressCallback.order

    def before_fit(self) -> None:
        """Print each epoch's log as one line (not during ``get_preds``)."""
        if hasattr(self, "gather_preds") or self.learn.logger is noop:
            return
        self.learn.logger = self._print_line

    def _print_line(self, log: Sequence[Any]) -> None:
        names = self.recorder.metric_names
        parts = [
            f"{n} {v:.6f}" if isinstance(v, float) else f"{n} {v}"
            for n, v in zip(names, log, strict=False)
        ]
        print("  ".join(parts), flush=True)


class StopOnNonFiniteLoss(TerminateOnNaNCallback):
    """fastai's ``TerminateOnNaNCallback``, raising a named error instead of cancelling silently.

    fastai cancels the fit, after which the fold would look finished.  This raises
    :class:`~emo_utils.errors.TrainingDiverged` naming the architecture, fold, epoch and
    batch, before the epoch's checkpoint is written.  The check reads the loss on the CPU
    (a GPU synchronisation), so on a GPU it runs every ``every`` training batches and on
    the last one of each epoch; the smoothed loss keeps a NaN/inf of any earlier batch.
    """

    order = 51  # after fastai's Recorder (50), which updates the smoothed loss

    def __init__(self, *, arch: str, fold: int, every: int = 1) -> None:
        self.arch, self.fold, self.every = arch, fold, max(1, every)

    def after_batch(self) -> None:
        """Raise :class:`~emo_utils.errors.TrainingDiverged` when the training loss is NaN/inf."""
        if not self.training:
            return
        last = self.iter == self.n_iter - 1
        if self.every > 1 and self.iter % self.every and not last:
            return
        loss = self.loss if self.every == 1 else self.smooth_loss
        if bool(torch.isfinite(loss.detach()).all()):
            return
        value = float(loss.detach().float().mean())
        where = "batch" if self.every == 1 else "by batch"
        raise TrainingDiverged(
            f"{self.arch} fold {self.fold}: training loss is {value} at epoch {self.epoch}, "
            f"{where} {self.iter + 1}/{self.n_iter}; the learning rate (train.lr = "
            f"{self.learn.lr}) is probably too high, or the input holds NaN/inf values. The "
            "fold is not marked done; lower train.lr in a new run folder (or fix the input) "
            "and run again"
        )


class BestModelSaver(SaveModelCallback):
    """``SaveModelCallback`` writing the best weights atomically to ``file``.

    On resume (``start_epoch > 0``) the best score of the interrupted fit is restored, and
    skipped epochs are ignored, so only a better epoch replaces the saved weights.  At the
    end of the fit the best weights are loaded back into the model.
    """

    def __init__(
        self,
        file: str | os.PathLike,
        monitor: str,
        *,
        start_epoch: int = 0,
        best: float | None = None,
        best_epoch: int | None = None,
        verbose: bool = True,
    ) -> None:
        super().__init__(monitor=monitor, fname=Path(file).stem, with_opt=False)
        self.file = Path(file)
        self.start_epoch, self.resume_best, self.best_epoch = start_epoch, best, best_epoch
        self.verbose = verbose

    def before_fit(self) -> None:
        """Reset the tracker as fastai does, then restore the interrupted fit's best score."""
        super().before_fit()
        if self.resume_best is not None:
            self.best = self.resume_best

    def after_epoch(self) -> None:
        """Save the weights when this epoch beats the best score (or none are saved yet).

        Epochs before ``start_epoch`` (skipped on resume) are ignored.
        """
        if self.epoch < self.start_epoch:
            return
        TrackerCallback.after_epoch(self)
        if self.new_best or not self.file.exists():
            self.best_epoch = self.epoch
            if self.verbose:
                print(
                    f"Better model found at epoch {self.epoch} with {self.monitor} value: {self.best}."
                )
            self._save(self.fname)

    def _save(self, name: str) -> None:
        if not is_main():  # rank 0 writes the run folder
            return
        with atomic_path(self.file) as tmp:
            save_model(tmp, self.learn.model, None, with_opt=False)
        self.last_saved_path = self.file

    def after_fit(self, **kwargs: Any) -> None:
        """Load the best saved weights back into the model (every rank: rank 0's file)."""
        barrier()  # rank 0 has written its last save
        load_weights(self.file, self.learn.model, self.dls.device)


class ResumableEarlyStopping(EarlyStoppingCallback):
    """``EarlyStoppingCallback`` that ignores skipped epochs and restores its state on resume."""

    def __init__(
        self,
        monitor: str,
        patience: int,
        *,
        start_epoch: int = 0,
        best: float | None = None,
        wait: int = 0,
    ) -> None:
        super().__init__(monitor=monitor, patience=patience)
        self.start_epoch, self.resume_best, self.resume_wait = start_epoch, best, wait
        self.stopped_epoch: int | None = None

    def before_fit(self) -> None:
        """Reset the tracker as fastai does, then restore the interrupted fit's best and wait."""
        super().before_fit()
        if self.resume_best is not None:
            self.best, self.wait = self.resume_best, self.resume_wait

    def after_epoch(self) -> None:
        """Run fastai's patience check, except on epochs before ``start_epoch``.

        When it stops the fit, the epoch is kept in ``stopped_epoch``.
        """
        if self.epoch < self.start_epoch:
            return
        try:
            super().after_epoch()
        except CancelFitException:
            self.stopped_epoch = self.epoch
            raise


class AtomicCSVLogger(CSVLogger):
    """fastai's ``CSVLogger``, rewriting ``file`` atomically after every epoch.

    On resume the rows of the epochs before ``start_epoch`` are kept and skipped epochs are
    neither logged nor shown.
    """

    def __init__(self, file: str | os.PathLike, *, start_epoch: int = 0) -> None:
        super().__init__(fname=Path(file), append=False)
        self.file, self.start_epoch = Path(file), start_epoch
        self.lines: list[str] = []

    def before_fit(self) -> None:
        """Start the log (header, plus the kept rows on resume) and take over the logger.

        Does nothing during ``get_preds``.
        """
        if hasattr(self, "gather_preds"):
            return
        self.lines = [",".join(self.recorder.metric_names)]
        if self.start_epoch > 0 and self.file.is_file():
            for line in self.file.read_text(encoding="utf-8").splitlines()[1:]:
                epoch = line.split(",", 1)[0]
                if epoch.isdigit() and int(epoch) < self.start_epoch:
                    self.lines.append(line)
        self.old_logger, self.learn.logger = self.logger, self._write_line

    def _write_line(self, log: Sequence[Any]) -> None:
        if int(log[0]) < self.start_epoch:
            return
        self.lines.append(",".join(str(t) for t in log))
        if is_main():
            write_text(self.file, "\n".join(self.lines) + "\n")
        self.old_logger(log)

    def after_fit(self) -> None:
        """Give the learner its previous logger back (not during ``get_preds``)."""
        if hasattr(self, "gather_preds"):
            return
        self.learn.logger = self.old_logger


class EpochCheckpoint(Callback):
    """Write ``checkpoint.pth`` atomically after every finished epoch.

    It holds the model, optimiser, epoch, best score, early-stopping wait and RNG states.
    """

    order = EarlyStoppingCallback.order + 1

    def __init__(
        self,
        file: str | os.PathLike,
        *,
        arch: str,
        fold: int,
        saver: BestModelSaver,
        stopper: ResumableEarlyStopping | None = None,
        start_epoch: int = 0,
    ) -> None:
        self.file, self.arch, self.fold = Path(file), arch, fold
        self.saver, self.stopper, self.start_epoch = saver, stopper, start_epoch

    def after_epoch(self) -> None:
        """Save the state after this epoch (not for epochs before ``start_epoch``).

        Rank 0 writes it; the model's weights are saved without a ``DistributedDataParallel``
        wrapper, so a resume in one process or several reads the same file.
        """
        if self.epoch < self.start_epoch or not is_main():
            return
        train_dl = self.dls.train
        if isinstance(train_dl, DistributedDL):  # a multi-process fit: the loader it wraps
            train_dl = train_dl.dl
        state = {
            "format": CHECKPOINT_FORMAT,
            "arch": self.arch,
            "fold": self.fold,
            "epoch": self.epoch,
            "n_epoch": self.n_epoch,
            "model": get_model(self.learn.model).state_dict(),
            "opt": _plain(self.learn.opt.state_dict()),
            "best": float(self.saver.best),
            "best_epoch": self.saver.best_epoch,
            "wait": self.stopper.wait if self.stopper is not None else 0,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python_rng": random.getstate(),
            "train_dl_rng": train_dl.rng.getstate(),
        }
        with atomic_path(self.file) as tmp:
            torch.save(state, tmp)


def _plain(obj: Any) -> Any:
    """``obj`` with NumPy scalars turned into Python numbers, recursively.

    fastai's scheduled hyper-parameters are NumPy scalars, which
    ``torch.load(weights_only=True)`` refuses; as Python numbers the checkpoint loads.
    """
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


class UnionMixUp(MixUp):
    """fastai's ``MixUp`` whose multi-label targets are the union of both clips' labels.

    The images are mixed as in ``MixUp`` (the batch's own clip keeps the larger weight
    ``lam >= 0.5``, a shuffled clip is mixed in at ``1 - lam``); the target of a mixed clip is
    the element-wise maximum of the two clips' targets instead of their mix
    (``train.mixup_targets = "union"``): a sound mixed in at 30 % is still present.  A clip
    mixed in at less than ``min_weight`` is barely audible, so its labels are not added
    (the target stays the batch clip's).  Class-index targets (single label) are left to
    ``MixUp``, which mixes the losses.

    Parameters
    ----------
    alpha : float
        ``Beta(alpha, alpha)`` of the mixing weights, as ``MixUp``.
    min_weight : float
        Smallest weight of the mixed-in clip whose labels join the target.
    """

    def __init__(self, alpha: float = 0.4, min_weight: float = 0.2) -> None:
        super().__init__(alpha)
        self.min_weight = min_weight

    def before_batch(self) -> None:
        """Mix the batch as ``MixUp`` does, then set the targets to the union."""
        original = self.yb
        super().before_batch()
        if not self.stack_y:
            audible = (1 - self.lam) >= self.min_weight  # (B,): the mixed-in clip's weight
            self.learn.yb = tuple(
                torch.where(audible.view(-1, *([1] * (b.ndim - 1))), torch.maximum(a, b), b)
                for a, b in zip(self.yb1, original, strict=True)
            )
