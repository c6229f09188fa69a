"""The input normalisation built into a model, and where its statistics come from.

* :class:`NormalizedModel` -- ``(x - mean) / std`` followed by the network: the per-channel
  statistics are buffers, saved with the weights, so a trained model is fed raw cached
  windows and never depends on a silent default.
* :data:`IMAGE_NORMALIZATIONS` -- where the statistics come from
  (``train.image_normalization``); a new source is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import timm
import torch
from torch import nn

from ..errors import ConfigError, TrainingError

if TYPE_CHECKING:
    from ..features.store import FeatureStore

__all__ = ["IMAGE_NORMALIZATIONS", "NormalizedModel", "image_statistics"]


class NormalizedModel(nn.Module):
    """``model((x - mean) / std)`` with per-channel ``mean`` and ``std`` buffers.

    Parameters
    ----------
    model : torch.nn.Module
        The network (e.g. from :func:`build_model`).
    mean, std : sequence of float
        One value per image channel.

    Notes
    -----
    The input may be a fastai tensor subclass (``TensorImage``); it is turned into a plain
    tensor first so the network runs without fastai's per-operation type bookkeeping.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean_t = torch.as_tensor(np.asarray(mean, dtype=np.float32)).view(1, -1, 1, 1)
        std_t = torch.as_tensor(np.asarray(std, dtype=np.float32)).view(1, -1, 1, 1)
        if mean_t.shape != std_t.shape or bool((std_t <= 0).any()):
            raise TrainingError(f"NormalizedModel: bad statistics mean={mean}, std={std}")
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The wrapped model's output for ``(x - mean) / std``."""
        if type(x) is not torch.Tensor:
            x = x.as_subclass(torch.Tensor)
        return self.model((x - self.mean) / self.std)


# ---------------------------------------------------------------- normalisation statistics
Stats = tuple[np.ndarray, np.ndarray]


def _dataset_stats(*, store: FeatureStore, rows: Sequence[int], model: nn.Module) -> Stats:
    """Per-channel mean and std over every cached frame of the training rows."""
    if len(rows) == 0:
        raise TrainingError("image_normalization 'dataset': no training frames")
    return store.channel_statistics(rows)


def _pretrained_stats(*, store: FeatureStore, rows: Sequence[int], model: nn.Module) -> Stats:
    """The statistics the pretrained weights expect (timm's ``pretrained_cfg``, ImageNet's)."""
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    mean = np.asarray(cfg.get("mean", timm.data.IMAGENET_DEFAULT_MEAN), dtype=np.float64)
    std = np.asarray(cfg.get("std", timm.data.IMAGENET_DEFAULT_STD), dtype=np.float64)
    c = store.image_shape[0]
    if len(mean) != c:
        raise ConfigError(
            "train.image_normalization",
            "imagenet",
            f"has {len(mean)} channel statistics but the images have {c} channels; "
            "use 'dataset' or 'none'",
        )
    return mean, std


def _no_stats(*, store: FeatureStore, rows: Sequence[int], model: nn.Module) -> Stats:
    """Identity: mean 0, std 1."""
    c = store.image_shape[0]
    return np.zeros(c), np.ones(c)


#: ``train.image_normalization`` -> ``f(*, store, rows, model) -> (mean, std)`` per channel.
IMAGE_NORMALIZATIONS: dict[str, Callable[..., Stats]] = {
    "dataset": _dataset_stats,
    "imagenet": _pretrained_stats,
    "none": _no_stats,
}


def image_statistics(
    name: str, *, store: FeatureStore, rows: Sequence[int], model: nn.Module
) -> Stats:
    """Per-channel ``(mean, std)`` for ``train.image_normalization = name``.

    Parameters
    ----------
    name : {"dataset", "imagenet", "none"}
        ``"dataset"``: statistics of the training rows' cached images;
        ``"imagenet"``: those of the pretrained weights (timm's ``pretrained_cfg``);
        ``"none"``: identity.
    store : FeatureStore
        The cached training images.
    rows : sequence of int
        The store rows the fold trains on.
    model : torch.nn.Module
        The timm model (for its ``pretrained_cfg``).
    """
    try:
        fn = IMAGE_NORMALIZATIONS[name]
    except KeyError:
        raise ConfigError(
            "train.image_normalization", name, f"must be one of {sorted(IMAGE_NORMALIZATIONS)}"
        ) from None
    return fn(store=store, rows=rows, model=model)
