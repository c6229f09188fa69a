"""Embedding networks: any torch backbone of the model registry -> L2-normalised embeddings.

The model registry builds the backbone; :data:`EMBEDDING_POOLINGS`
(``verification.pooling``) turns it into an embedding head:

``backbone``
    the backbone's own pooled features and classifier layer, sized to
    ``verification.embedding_dim`` (timm's global average pooling -> linear);
``stats``
    statistics pooling (x-vector / ResNet speaker-embedding style): the backbone's feature
    map ``(B, C, H, T)`` keeps two frequency bins (:class:`StatsPoolNet`), its mean and
    standard deviation over time are concatenated, batch-normalised and projected to the
    embedding.

:data:`INPUT_NORMS` (``verification.input_norm``) optionally normalises every input
window first (after the per-channel dataset statistics): ``instance`` (every image
channel to zero mean and unit variance over the window, with a learnt affine) or ``cmn``
(cepstral-mean-style: every channel's every frequency bin minus its mean over time,
which removes a fixed channel colouring such as a microphone's response).
:class:`EmbeddingNet` normalises the output to unit length.  A loss with trainable parameters (ArcFace's class weights) rides along as
``loss_head``, so the optimiser trains it and the epoch checkpoints save it; inference
drops it (:func:`embedding_weights`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, ConfigError
from ._registry import build_model, resolve_architecture
from .normalize import NormalizedModel

__all__ = [
    "EMBEDDING_POOLINGS",
    "INPUT_NORMS",
    "EmbeddingNet",
    "StatsPoolNet",
    "TimeMeanNorm",
    "build_embedding_net",
    "check_embedding_architectures",
    "embedding_head",
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


class StatsPoolNet(nn.Module):
    """Statistics pooling over the backbone's feature map, then a linear projection.

    Parameters
    ----------
    body : torch.nn.Module
        A timm model (``forward_features``, ``reset_classifier``, ``num_features``); its
        classifier and global pooling are removed.
    embedding_dim : int
        Output size.
    freq_bins : int, default 2
        Frequency bins kept (adaptive average pooling of the map's frequency axis to this
        many): a 2-D CNN is blind to *where* in frequency a pattern lies once frequency is
        averaged away, and a speaker's formants and pitch are positions in frequency.

    Notes
    -----
    ``forward(x)``: ``x (B, C_in, H, T)`` -> features ``(B, C, H', T')`` -> ``(B, C,
    freq_bins, T')`` -> ``(B, C * freq_bins, T')`` -> ``[mean_t, std_t]``
    ``(B, 2 C freq_bins)`` -> BatchNorm -> Linear ``(B, embedding_dim)`` (the ResNet
    speaker-embedding recipe).
    """

    def __init__(self, body: nn.Module, embedding_dim: int, freq_bins: int = 2) -> None:
        super().__init__()
        body.reset_classifier(0, "")
        self.body = body
        self.freq_pool = nn.AdaptiveAvgPool2d((int(freq_bins), None))
        width = int(body.num_features) * int(freq_bins)
        self.norm = nn.BatchNorm1d(2 * width)
        self.proj = nn.Linear(2 * width, int(embedding_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings (not normalised) ``(B, embedding_dim)``."""
        features = self.freq_pool(self.body.forward_features(x)).flatten(1, 2)  # (B, C F, T')
        mean = features.mean(dim=-1)
        std = (features.var(dim=-1, unbiased=False) + 1e-5).sqrt()
        return self.proj(self.norm(torch.cat([mean, std], dim=1)))


class TimeMeanNorm(nn.Module):
    """Every channel's every frequency bin minus its mean over time (``(B, C, H, T)``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x - x.mean(-1)``, same shape."""
        return x - x.mean(dim=-1, keepdim=True)


def _backbone_pooling(body: nn.Module, embedding_dim: int) -> nn.Module:
    return body


def _stats_pooling(body: nn.Module, embedding_dim: int) -> nn.Module:
    return StatsPoolNet(body, embedding_dim)


#: ``verification.pooling`` -> ``head(backbone, embedding_dim)`` (the backbone has
#: ``embedding_dim`` outputs).
EMBEDDING_POOLINGS: dict[str, Callable[[nn.Module, int], nn.Module]] = {
    "backbone": _backbone_pooling,
    "stats": _stats_pooling,
}

#: ``verification.input_norm`` -> ``module(in_chans)`` applied to the standardised input.
INPUT_NORMS: dict[str, Callable[[int], nn.Module]] = {
    "none": lambda in_chans: nn.Identity(),
    "instance": lambda in_chans: nn.InstanceNorm2d(in_chans, affine=True),
    "cmn": lambda in_chans: TimeMeanNorm(),
}


def build_embedding_net(
    *,
    arch: str,
    embedding_dim: int,
    mean: Sequence[float],
    std: Sequence[float],
    in_chans: int,
    pooling: str = "backbone",
    input_norm: str = "none",
    pretrained: bool = False,
    weights_dir: str | os.PathLike = "",
    loss_head: nn.Module | None = None,
) -> EmbeddingNet:
    """The embedding network of ``arch``: standardise -> input norm -> backbone -> pooling.

    Parameters
    ----------
    arch : str
        Architecture of the model registry (a timm name for ``pooling = "stats"``).
    embedding_dim : int
        Embedding size.
    mean, std : sequence of float
        Per-channel input statistics (:class:`NormalizedModel`).
    in_chans : int
        Image channels.
    pooling : str
        Key of :data:`EMBEDDING_POOLINGS`.
    input_norm : str
        Key of :data:`INPUT_NORMS`.
    pretrained : bool
        Load the backbone's pretrained weights.
    weights_dir : str or os.PathLike
        Local weights folder of the model registry.
    loss_head : torch.nn.Module, optional
        The loss's trainable part (:class:`EmbeddingNet`).

    Returns
    -------
    EmbeddingNet
        ``forward(x (B, in_chans, H, T)) -> (B, embedding_dim)``, unit length.

    Raises
    ------
    ConfigError
        An unknown pooling or input norm.
    """
    body = build_model(
        arch, embedding_dim, pretrained=pretrained, weights_dir=weights_dir, in_chans=in_chans
    )
    net = embedding_head(
        body,
        embedding_dim=embedding_dim,
        in_chans=in_chans,
        pooling=pooling,
        input_norm=input_norm,
    )
    return EmbeddingNet(NormalizedModel(net, mean, std), loss_head=loss_head)


def embedding_head(
    body: nn.Module, *, embedding_dim: int, in_chans: int, pooling: str, input_norm: str
) -> nn.Module:
    """``body`` (:func:`build_model`, ``embedding_dim`` outputs) with pooling and input norm.

    ``pooling`` and ``input_norm`` are keys of :data:`EMBEDDING_POOLINGS` and
    :data:`INPUT_NORMS`.

    With ``input_norm = "none"`` no module is added, so the weights' names are those of a
    plain backbone (runs trained before the input norms existed load unchanged).

    Raises
    ------
    ConfigError
        An unknown pooling or input norm.
    """
    for field, value, registry in (
        ("verification.pooling", pooling, EMBEDDING_POOLINGS),
        ("verification.input_norm", input_norm, INPUT_NORMS),
    ):
        if value not in registry:
            raise ConfigError(field, value, f"must be one of {sorted(registry)}")
    head = EMBEDDING_POOLINGS[pooling](body, int(embedding_dim))
    if input_norm == "none":
        return head
    return nn.Sequential(INPUT_NORMS[input_norm](int(in_chans)), head)


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
    pooling: str = "backbone",
    input_norm: str = "none",
    device: torch.device | str = "cpu",
) -> EmbeddingNet:
    """The embedding network saved in ``path`` (a fold's ``model.pth``), in eval mode.

    ``pooling`` and ``input_norm`` are those it was trained with (its ``done.json``).

    Raises
    ------
    CheckpointError
        The file is missing, damaged or does not fit the architecture.
    """
    model = build_embedding_net(
        arch=arch,
        embedding_dim=embedding_dim,
        mean=mean,
        std=std,
        in_chans=in_chans,
        pooling=pooling,
        input_norm=input_norm,
    )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(embedding_weights(state))
    except (OSError, RuntimeError, KeyError, EOFError) as exc:
        raise CheckpointError(
            f"{path}: cannot load the embedding network of {arch} ({exc}); delete its fold "
            "folder to train it again"
        ) from exc
    return model.to(device).eval()
