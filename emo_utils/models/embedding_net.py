"""Embedding networks: any torch backbone of the model registry -> L2-normalised embeddings.

The model registry builds the backbone with ``verification.embedding_dim`` outputs, which
for timm models is the pooled features followed by a linear projection (the classifier
layer, sized to the embedding); :class:`EmbeddingNet` normalises its output to unit
length.  A loss with trainable parameters (ArcFace's class weights) rides along as
``loss_head``, so the optimiser trains it and the epoch checkpoints save it; inference
drops it (:func:`embedding_weights`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, ConfigError
from ._registry import build_model, resolve_architecture
from .normalize import NormalizedModel

__all__ = [
    "EmbeddingNet",
    "check_embedding_architectures",
    "embedding_weights",
    "load_embedding_net",
]


class EmbeddingNet(nn.Module):
    """``normalize(net(x))``: unit-length embeddings ``(B, embedding_dim)``.

    Parameters
    ----------
    net : torch.nn.Module
        The backbone with its projection, e.g. a :class:`NormalizedModel` around
        :func:`build_model` ``(arch, embedding_dim)``.
    loss_head : torch.nn.Module, optional
        The loss's trainable part (not used by :meth:`forward`).
    """

    def __init__(self, net: nn.Module, loss_head: nn.Module | None = None) -> None:
        super().__init__()
        self.net = net
        self.loss_head = loss_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings of the batch, L2-normalised, float32."""
        return F.normalize(self.net(x).float(), dim=-1)


def check_embedding_architectures(architectures: Sequence[str]) -> None:
    """Every architecture must be a torch model on cached images (``image`` input, fastai).

    Raises
    ------
    ConfigError
        Naming ``train.architectures`` and the architecture that cannot give embeddings.
    """
    for arch in architectures:
        family, _ = resolve_architecture(arch)
        if family.trainer != "fastai" or family.input != "image":
            raise ConfigError(
                "train.architectures",
                arch,
                "the verification task trains torch models on cached images (timm names); "
                f"the {family.prefix!r} family cannot be one",
            )


def embedding_weights(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict without the loss head's entries (what inference loads)."""
    return {k: v for k, v in state.items() if not k.startswith("loss_head.")}


def load_embedding_net(
    path: str | os.PathLike,
    *,
    arch: str,
    embedding_dim: int,
    mean: Sequence[float],
    std: Sequence[float],
    in_chans: int,
    device: torch.device | str = "cpu",
) -> EmbeddingNet:
    """The embedding network saved in ``path`` (a fold's ``model.pth``), in eval mode.

    Raises
    ------
    CheckpointError
        The file is missing, damaged or does not fit the architecture.
    """
    body = build_model(arch, embedding_dim, pretrained=False, in_chans=in_chans)
    model = EmbeddingNet(NormalizedModel(body, mean, std))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(embedding_weights(state))
    except (OSError, RuntimeError, KeyError, EOFError) as exc:
        raise CheckpointError(
            f"{path}: cannot load the embedding network of {arch} ({exc}); delete its fold "
            "folder to train it again"
        ) from exc
    return model.to(device).eval()
