"""Resume files of a fold: reading and restoring ``checkpoint.pth``, loading best weights.

A damaged or foreign file raises :class:`~emo_utils.errors.CheckpointError` naming the
fold, the file and the fix.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from fastai.learner import Learner, load_model
from torch import nn

from ..errors import CheckpointError
from ..models.checkpoints import LOAD_ERRORS

__all__ = ["CHECKPOINT_FORMAT", "load_weights", "read_checkpoint", "restore_checkpoint"]

CHECKPOINT_FORMAT = 1


def load_weights(path: Path, model: nn.Module, device: torch.device | str | None) -> None:
    """Load a state dict saved by :class:`BestModelSaver`, or raise a :class:`CheckpointError`."""
    if not path.is_file():
        raise CheckpointError(
            f"{path}: best weights missing; delete {path.parent} to train the fold again"
        )
    try:
        load_model(path, model, None, with_opt=False, device=device)
    except LOAD_ERRORS as exc:
        raise CheckpointError(
            f"{path}: damaged or does not match the model ({exc}); delete {path.parent} "
            "to train the fold again"
        ) from exc


def read_checkpoint(path: Path, *, arch: str, fold: int, epochs: int) -> dict[str, Any]:
    """The state saved by :class:`EpochCheckpoint` in ``path``, checked against the fold.

    Parameters
    ----------
    path : pathlib.Path
        The fold's ``checkpoint.pth``.
    arch, fold : str, int
        The fold being resumed; the checkpoint must have been written for it.
    epochs : int
        ``train.epochs`` now; the checkpoint's one-cycle schedule must be for as many.

    Returns
    -------
    dict
        Model and optimiser state dicts, the finished ``epoch``, ``best`` score and
        ``best_epoch``, early-stopping ``wait`` and the RNG states.

    Raises
    ------
    CheckpointError
        If the file is damaged, not a checkpoint of this package, of another fold, or
        written for another number of epochs; the message names the fix (delete it).
    """
    what = f"{arch} fold {fold}: checkpoint {path}"
    fix = "delete it to restart the fold from its first epoch"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except LOAD_ERRORS as exc:
        raise CheckpointError(f"{what} is damaged ({exc}); {fix}") from exc
    keys = {"format", "arch", "fold", "epoch", "n_epoch", "model", "opt", "best", "best_epoch"}
    keys |= {"torch_rng", "python_rng", "train_dl_rng"}  # restored on resume
    if not isinstance(state, dict) or not keys <= set(state):
        raise CheckpointError(f"{what} is not a checkpoint of this package; {fix}")
    if (state["arch"], state["fold"]) != (arch, fold):
        raise CheckpointError(f"{what} belongs to {state['arch']} fold {state['fold']}; {fix}")
    if state["n_epoch"] != epochs:
        raise CheckpointError(
            f"{what} was written for train.epochs = {state['n_epoch']}, now {epochs}: the "
            f"one-cycle schedule differs; {fix}"
        )
    return state


def restore_checkpoint(
    state: dict[str, Any], learn: Learner, path: Path, arch: str, fold: int
) -> None:
    """Put ``learn`` back where the checkpoint ``state`` was saved.

    Loads the model (on the data's device) and optimiser state, then the torch, CUDA,
    Python and training-loader RNG states, so that a fit resumed at the next epoch (the
    caller passes ``start_epoch`` and the best score to the callbacks) trains as it would
    have without the interruption.  ``path``, ``arch`` and ``fold`` only name the checkpoint
    in the :class:`~emo_utils.errors.CheckpointError` raised when the state does not fit
    the model.
    """
    try:
        # Model on its device first: the optimiser state is loaded onto the parameters' device.
        learn.model.to(learn.dls.device)
        learn.model.load_state_dict(state["model"])
        learn.create_opt()
        learn.opt.load_state_dict(state["opt"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(
            f"{arch} fold {fold}: checkpoint {path} does not match the model ({exc}); "
            "delete it to restart the fold from its first epoch"
        ) from exc
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    random.setstate(state["python_rng"])
    learn.dls.train.rng.setstate(state["train_dl_rng"])
