"""Pooled features of a trained network: the input of its classifier (no fastai).

:func:`embed` feeds raw cached windows through the whole model (so a normalisation
wrapper still applies) and records what the timm classifier receives; the reports draw
these vectors as a 2-D map (:func:`emo_utils.reports.plot_embedding_map`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError, TrainingError

if TYPE_CHECKING:
    import torch

__all__ = ["embed"]


def _timm_backbone(model: torch.nn.Module) -> torch.nn.Module:
    """The innermost module with timm's ``get_classifier`` (the network inside wrappers)."""
    found = [
        m
        for m in model.modules()
        if hasattr(m, "get_classifier") and hasattr(m, "forward_features")
    ]
    if not found:
        raise TrainingError(
            f"embed: {type(model).__name__} holds no timm model (nothing with get_classifier)"
        )
    return found[-1]


def embed(
    model: torch.nn.Module,
    images: np.ndarray,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Pooled features (the classifier's input) of a trained network for a batch of images.

    The network is run as a whole (so any normalisation wrapper, e.g. the
    :class:`~emo_utils.models.NormalizedModel` of a loaded fold model, still applies)
    and the input of the timm model's classifier (``model.get_classifier()``, i.e.
    ``forward_head(pre_logits=True)``) is recorded.

    Parameters
    ----------
    model : torch.nn.Module
        A timm model, or a module wrapping one.
    images : numpy.ndarray, shape (n, C, H, W)
        Raw cached windows (what the model is fed in training), float32.
    batch_size : int, default 64
        Images per forward pass.
    device : str or torch.device, optional
        Default: the device of the model's parameters.

    Returns
    -------
    numpy.ndarray of float32, shape (n, d)
        ``d`` is the timm model's ``num_features``.

    Raises
    ------
    TrainingError
        ``model`` holds no timm model, or its classifier is not a module.
    DataError
        ``images`` is not 4-dimensional.
    """
    import torch

    backbone = _timm_backbone(model)
    head = backbone.get_classifier()
    if not isinstance(head, torch.nn.Module):
        raise TrainingError(f"embed: {type(backbone).__name__}.get_classifier() is not a module")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise DataError(f"embed: images must have shape (n, C, H, W), got {images.shape}")
    captured: list[torch.Tensor] = []

    def hook(_module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        captured.append(torch.flatten(inputs[0], 1).float().cpu())

    was_training = model.training
    model.eval()
    model.to(device)
    handle = head.register_forward_pre_hook(hook)
    try:
        with torch.inference_mode():
            for lo in range(0, len(images), batch_size):
                model(torch.from_numpy(images[lo : lo + batch_size]).to(device))
    finally:
        handle.remove()
        model.train(was_training)
    if not captured:
        return np.zeros((0, int(getattr(backbone, "num_features", 0))), np.float32)
    return torch.cat(captured).numpy().astype(np.float32)
