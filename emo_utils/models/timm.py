"""timm models by name, local pretrained weights, and the normalisation built into a model.

* :func:`build_model` -- any timm architecture by name (body + timm's own classifier head),
  with pretrained weights from the timm hub (online) or a local file/folder (offline
  Kaggle kernels) through timm's ``pretrained_cfg_overlay=dict(file=...)``.
* :class:`NormalizedModel` -- ``(x - mean) / std`` followed by the network: the per-channel
  statistics are buffers, saved with the weights, so a trained model is fed raw cached
  windows and never depends on a silent default.
* :data:`IMAGE_NORMALIZATIONS` -- where the statistics come from (``train.image_normalization``).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import timm
import torch
from torch import nn

from ..features.store import FeatureStore
from ..errors import ConfigError, TrainingError

__all__ = [
    "IMAGE_NORMALIZATIONS",
    "WEIGHT_FILE_NAMES",
    "NormalizedModel",
    "build_model",
    "check_architectures",
    "image_statistics",
    "resolve_weights_file",
]

#: Weight file names looked up, in order, inside a model's own folder.
WEIGHT_FILE_NAMES = ("model.safetensors", "pytorch_model.bin", "model.pth", "pytorch_model.pth")
_WEIGHT_SUFFIXES = (".safetensors", ".pth", ".bin", ".pt")


def check_architectures(architectures: Sequence[str]) -> None:
    """Fail unless every name is a timm architecture (a pretrained tag is allowed).

    Raises
    ------
    TrainingError
        Naming each unknown architecture with the closest timm names.
    """
    problems = []
    for arch in architectures:
        if not timm.is_model(arch):
            close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.6)
            hint = f"; did you mean {close}?" if close else ""
            problems.append(f"{arch!r} is not a timm model{hint}")
    if problems:
        raise TrainingError(
            "train.architectures: " + "; ".join(problems) + " (timm.list_models() lists every name)"
        )


def resolve_weights_file(arch: str, weights_dir: str | os.PathLike) -> Path:
    """The local pretrained weights file of ``arch`` under ``weights_dir``.

    ``weights_dir`` may be the weights file itself, or a folder holding, tried in order:
    ``<arch>.safetensors`` / ``.pth`` / ``.bin`` / ``.pt``; a sub-folder ``<arch>`` or
    ``<arch>.<tag>`` (Hugging Face style, e.g. ``efficientnet_b0.ra_in1k``) with one of
    :data:`WEIGHT_FILE_NAMES` or a single weights file; or one of
    :data:`WEIGHT_FILE_NAMES` directly (the folder of a single model).

    Raises
    ------
    TrainingError
        ``weights_dir`` does not exist or holds no weights for ``arch``.
    """
    root = Path(weights_dir)
    if root.is_file():
        return root
    if not root.is_dir():
        raise TrainingError(f"train.weights_dir: {root} does not exist (needed for {arch!r})")
    base = arch.split(".")[0]
    candidates = [root / f"{name}{suffix}" for name in (arch, base) for suffix in _WEIGHT_SUFFIXES]
    folders = [root / arch, root / base, *sorted(root.glob(f"{base}.*"))]
    for folder in folders:
        if folder.is_dir():
            candidates += [folder / name for name in WEIGHT_FILE_NAMES]
            found = [p for p in sorted(folder.iterdir()) if p.suffix in _WEIGHT_SUFFIXES]
            if len(found) == 1:
                candidates.append(found[0])
    candidates += [root / name for name in WEIGHT_FILE_NAMES]
    for path in candidates:
        if path.is_file():
            return path
    tried = sorted({str(p.relative_to(root)) for p in candidates})
    raise TrainingError(
        f"train.weights_dir: no pretrained weights for {arch!r} in {root} (looked for {tried}); "
        "add the file, or set train.pretrained = false"
    )


def build_model(
    arch: str,
    n_classes: int,
    *,
    pretrained: bool,
    weights_dir: str | os.PathLike = "",
    in_chans: int = 3,
) -> nn.Module:
    """A timm model with an ``n_classes`` classifier head.

    Parameters
    ----------
    arch : str
        Any timm model name (``timm.list_models()``), e.g. ``"efficientnet_b0"``.
    n_classes : int
        Outputs of the classifier head (logits).
    pretrained : bool
        Start from pretrained weights: downloaded by timm when ``weights_dir`` is empty,
        else read from the local file found by :func:`resolve_weights_file`.  timm drops a
        classifier of the wrong size and adapts the first convolution to ``in_chans``.
    weights_dir : str or os.PathLike
        Local weights file or folder (offline kernels).
    in_chans : int
        Image channels.

    Returns
    -------
    torch.nn.Module
        Maps ``(B, in_chans, H, W)`` float images to ``(B, n_classes)`` logits.

    Raises
    ------
    TrainingError
        Unknown architecture, missing local weights, or weights that cannot be loaded.
    """
    check_architectures([arch])
    kwargs: dict = {"num_classes": int(n_classes), "in_chans": int(in_chans)}
    source = "the timm hub"
    if pretrained and weights_dir:
        path = resolve_weights_file(arch, weights_dir)
        kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        source = str(path)
    try:
        return timm.create_model(arch, pretrained=pretrained, **kwargs)
    except (OSError, RuntimeError) as exc:
        if not pretrained:
            raise
        raise TrainingError(
            f"{arch}: cannot load pretrained weights from {source} ({exc}); offline, put the "
            "weights file in train.weights_dir"
        ) from exc


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
        if type(x) is not torch.Tensor:
            x = x.as_subclass(torch.Tensor)
        return self.model((x - self.mean) / self.std)


# ---------------------------------------------------------------- normalisation statistics
Stats = tuple[np.ndarray, np.ndarray]


def _dataset_stats(*, store: FeatureStore, rows: Sequence[int], model: nn.Module) -> Stats:
    """Per-channel mean and std over every cached frame of the training rows."""
    c = store.image_shape[0]
    total, total_sq, n = np.zeros(c), np.zeros(c), 0
    for i in rows:
        off, length = int(store.offsets[i]), int(store.lengths[i])
        block = np.asarray(store.frames[off : off + length], dtype=np.float64)  # (T, C, H)
        total += block.sum(axis=(0, 2))
        total_sq += np.square(block).sum(axis=(0, 2))
        n += block.shape[0] * block.shape[2]
    if n == 0:
        raise TrainingError("image_normalization 'dataset': no training frames")
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
    std[std < 1e-6] = 1.0  # constant channel: centre it only
    return mean, std


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
