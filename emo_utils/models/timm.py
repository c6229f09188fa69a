"""The timm family of the model registry: any timm image model by name.

:func:`build_timm_model` builds any timm architecture by name (body + timm's own classifier
head), with pretrained weights from the timm hub (online) or a local file/folder (offline
Kaggle kernels) through timm's ``pretrained_cfg_overlay=dict(file=...)``.  Registered as
the default family: plain names and ``"timm:<name>"`` both reach it.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import timm
from torch import nn

from ..errors import TrainingError
from ._registry import ModelFamily, register_family

__all__ = [
    "WEIGHT_FILE_NAMES",
    "build_timm_model",
    "check_timm_name",
    "create_timm_model",
    "resolve_weights_file",
]

#: Weight file names looked up, in order, inside a model's own folder.
WEIGHT_FILE_NAMES = ("model.safetensors", "pytorch_model.bin", "model.pth", "pytorch_model.pth")
_WEIGHT_SUFFIXES = (".safetensors", ".pth", ".bin", ".pt")


def check_timm_name(arch: str) -> str | None:
    """``None`` when ``arch`` is a timm architecture, else the problem as a message.

    A pretrained tag is allowed (``efficientnet_b0.ra_in1k``); the message suggests the
    closest timm names.
    """
    if timm.is_model(arch):
        return None
    close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.6)
    hint = f"; did you mean {close}?" if close else ""
    return f"{arch!r} is not a timm model{hint} (timm.list_models() lists every name)"


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


def build_timm_model(
    arch: str,
    *,
    n_outputs: int,
    pretrained: bool,
    weights_dir: str | os.PathLike = "",
    in_chans: int = 3,
) -> nn.Module:
    """A timm model with an ``n_outputs`` classifier head.

    Parameters
    ----------
    arch : str
        Any timm model name (``timm.list_models()``), e.g. ``"efficientnet_b0"``.
    n_outputs : int
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
        Maps ``(B, in_chans, H, W)`` float images to ``(B, n_outputs)`` logits.

    Raises
    ------
    TrainingError
        Unknown architecture, missing local weights, or weights that cannot be loaded.
    """
    return create_timm_model(
        arch,
        pretrained=pretrained,
        weights_dir=weights_dir,
        num_classes=int(n_outputs),
        in_chans=int(in_chans),
    )


def create_timm_model(
    arch: str, *, pretrained: bool, weights_dir: str | os.PathLike = "", **kwargs: object
) -> nn.Module:
    """``timm.create_model(arch, **kwargs)`` with the weights of :func:`build_timm_model`.

    Pretrained weights come from the timm hub when ``weights_dir`` is empty, else from the
    local file found by :func:`resolve_weights_file`; ``kwargs`` go to timm
    (``num_classes``, ``in_chans``, ``features_only``, ...).

    Raises
    ------
    TrainingError
        Unknown architecture, missing local weights, or weights that cannot be loaded.
    """
    problem = check_timm_name(arch)
    if problem:
        raise TrainingError(f"train.architectures: {problem}")
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


register_family(
    ModelFamily(
        prefix="timm",
        input="image",
        build=build_timm_model,
        check=check_timm_name,
        check_weights=resolve_weights_file,
    )
)
