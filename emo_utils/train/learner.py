"""The fastai ``Learner`` of one fold: optimiser, the task's loss and metrics, precision."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from fastai.callback.fp16 import AMPMode, MixedPrecision
from fastai.callback.mixup import MixUp
from fastai.callback.progress import ProgressCallback
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.optimizer import OptimWrapper
from fastcore.basics import noop
from torch import nn

from .._console import interactive
from ..config import TrainConfig
from ..tasks import Task, get_task
from .callbacks import EpochLineLogger, LazyProgressCallback, UnionMixUp

__all__ = ["layer_learning_rates", "make_learner"]


def layer_learning_rates(lr: float, decay: float, n_groups: int) -> np.ndarray:
    """``lr * decay ** (n_groups - 1 - g)`` for parameter groups ``g`` from the bottom up.

    The last group (the head) trains at ``lr``, each group below at ``decay`` times the rate
    of the one above (``train.layer_decay``).

    >>> layer_learning_rates(1.0, 0.5, 3).tolist()
    [0.25, 0.5, 1.0]
    """
    return float(lr) * float(decay) ** np.arange(n_groups - 1, -1, -1, dtype=np.float64)


def make_learner(
    dls: DataLoaders,
    model: nn.Module,
    *,
    config: TrainConfig,
    task: Task | str,
    n_classes: int,
    train_targets: Sequence[int] | np.ndarray,
    path: str | os.PathLike = ".",
    progress: bool = True,
    param_groups: Sequence[Sequence[nn.Parameter]] | None = None,
) -> Learner:
    """The fastai ``Learner`` of one fold.

    AdamW (``OptimWrapper``), the task's loss (:meth:`~emo_utils.tasks.Task.make_loss`;
    single-label: cross-entropy with label smoothing and optional balanced class weights
    from the fold's training targets) and metrics (:meth:`~emo_utils.tasks.Task.fastai_metrics`),
    fastai's ``MixUp`` when ``config.mixup > 0`` (multi-label targets: mixed, or their
    union with ``mixup_targets = "union"``, :class:`~emo_utils.train.callbacks.UnionMixUp`)
    and mixed precision (bf16 where
    supported, else fp16) when ``config.mixed_precision`` and the data is on a GPU.
    ``progress=False`` removes the progress bars and the per-epoch table; where no one
    watches (:func:`emo_utils._console.interactive` is false: a log file, CI) the bars are
    replaced by one plain line per epoch.  ``param_groups`` (non-empty lists of the
    model's trainable parameters, bottom to head) become the optimiser's parameter groups
    (fastai's ``splitter``), so ``fit_one_cycle(lr_max=array)`` gives each its own rate;
    default: every trainable parameter in one group.
    """
    task = get_task(task) if isinstance(task, str) else task
    loss = task.make_loss(
        config=config, targets=np.asarray(train_targets), n_classes=n_classes, device=dls.device
    )
    mixup = UnionMixUp if config.mixup_targets == "union" else MixUp
    cbs = [mixup(config.mixup)] if config.mixup > 0 else []
    extra = {}
    if param_groups is not None:
        groups = [list(g) for g in param_groups]
        extra["splitter"] = lambda _model: groups
    learn = Learner(
        dls,
        model,
        loss_func=loss,
        opt_func=partial(OptimWrapper, opt=torch.optim.AdamW),
        lr=config.lr,
        wd=config.weight_decay,
        metrics=task.fastai_metrics(),
        path=Path(path),
        model_dir=".",
        cbs=cbs,
        **extra,
    )
    if config.mixed_precision and dls.device.type == "cuda":
        mode = AMPMode.BF16 if torch.cuda.is_bf16_supported() else AMPMode.FP16
        learn.add_cb(MixedPrecision(amp_mode=mode))
    learn.remove_cb(ProgressCallback)
    if progress:
        learn.add_cb(LazyProgressCallback() if interactive() else EpochLineLogger())
    else:
        learn.logger = noop
    return learn
