"""Loading a trained fold model for inference: torch and the model registry, never fastai.

:func:`load_fold_model` rebuilds the architecture from the registry, wraps it in the
:class:`~emo_utils.models.normalize.NormalizedModel` whose statistics were saved with the
weights, and loads ``RUN/models/ARCH/fold{k}/model.pth``.  A family whose architecture
travels with the weights (``ModelFamily.from_state``: ``hf``) is rebuilt from the file
alone, without its hub or pretrained folder.
"""

from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError, TrainingError
from ..runs import RunDir
from ._registry import build_model, resolve_architecture, select_device
from .normalize import NormalizedModel

__all__ = ["LOAD_ERRORS", "load_fold_model"]

#: What ``torch.load`` raises on a truncated or corrupted file.
LOAD_ERRORS = (
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
)


def load_fold_model(
    run_dir: str | os.PathLike | RunDir,
    *,
    arch: str,
    fold: int,
    device: str | torch.device | None = None,
) -> nn.Module:
    """The best model of one fold, in eval mode, normalisation included.

    Parameters
    ----------
    run_dir : str, os.PathLike or RunDir
        A run folder written by :func:`emo_utils.train.train_cv`.
    arch : str
        Architecture name.
    fold : int
        Fold index.
    device : str or torch.device, optional
        Default: the GPU when there is one, else the CPU.

    Returns
    -------
    torch.nn.Module
        A :class:`~emo_utils.models.normalize.NormalizedModel`: feed raw cached windows
        (float32, ``(B, C, H, window_frames)``; waveform windows ``(B, 1, 1, T)`` for
        ``hf:`` models), get logits ``(B, n_classes)`` in ``classes.json`` order.

    Raises
    ------
    TrainingError
        The fold has not finished training.
    CheckpointError
        ``classes.json`` or ``model.pth`` is damaged or does not match the architecture.
    """
    run = RunDir(run_dir)
    fdir = run.fold_dir(arch, fold)
    if not run.fold_done(arch, fold):
        raise TrainingError(f"{fdir}: fold not finished (no {run.DONE_FILE}); train the run first")
    classes = run.read_classes()
    path = run.fold_file(arch, fold, run.MODEL_FILE)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        in_chans = int(state["mean"].numel())
    except (*LOAD_ERRORS, KeyError) as exc:
        raise CheckpointError(
            f"{arch} fold {fold}: {path} is damaged ({exc}); delete {fdir} and train the fold again"
        ) from exc
    family, name = resolve_architecture(arch)
    if family.from_state is not None:
        body_state = {
            k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")
        }
        body = family.from_state(name, state=body_state, n_outputs=len(classes))
    else:
        body = build_model(arch, len(classes), pretrained=False, in_chans=in_chans)
    model = NormalizedModel(body, np.zeros(in_chans), np.ones(in_chans))
    try:
        model.load_state_dict(state)
    except (RuntimeError, CheckpointError) as exc:
        raise CheckpointError(
            f"{arch} fold {fold}: {path} does not match {arch} with {len(classes)} classes ({exc})"
        ) from exc
    return model.to(select_device(device)).eval()
