"""The ``sed`` family of the model registry: any timm CNN with a frame-level attention head.

``"sed:<timm name>"`` (e.g. ``"sed:resnest14d"``) is the timm backbone's last feature map
followed by a PANNs-style decision-level attention head (Kong et al. 2020, *PANNs*, the
``AttBlock`` of ``Cnn14_DecisionLevelAtt``), trained from clip labels like any other model
but able to say *when* in a window each class sounds:

1. the backbone's last feature map ``(B, C, F', T')`` (timm ``features_only``) is averaged
   over frequency, smoothed over time (max- plus average-pooling, kernel 3, as PANNs) and
   passed through a per-frame 1x1 convolution with ReLU (PANNs' ``fc1``), with dropout;
2. two 1x1 convolutions give per frame ``t`` and class ``c`` an attention score and a
   class logit: ``norm_att = softmax_t(tanh(att(x)))`` and ``cla = cla(x)``;
3. the clip output is ``sum_t norm_att[c, t] * cla[c, t]``.

Mapping to the task's loss.  The head is PANNs' ``AttBlock`` with ``activation="linear"``:
``cla`` are frame *logits*, and the clip output, a convex combination of them, is the clip's
logits.  :meth:`SedModel.forward` therefore returns ``(B, n_outputs)`` logits as every other
model does, and the task's own loss and activation apply unchanged: single-label runs
(``classification``) train them with softmax cross-entropy, multi-label runs with
binary cross-entropy on logits; OOF files, test predictions, ensembles and exports see a
plain classifier.  Frame-wise probabilities are the same activation applied to each frame's
logits (:func:`frame_probabilities`): softmax over classes per frame (single-label), sigmoid
per class and frame (multi-label).  Because the clip logits are an attention-weighted mean
of the frame logits, a class whose frames the attention weighs has a clip score driven by
those frames, and the training from clip labels teaches both the classifier and where to
look.

Frames are at the backbone's time resolution (``T' ~ W / 32`` for most CNNs, ``W`` the
image columns); :func:`frame_bounds` maps frame ``k`` back to seconds through the image's
time axis (column ``j`` of the centred STFT is centred at ``j * hop_length / rate``).

Why a family prefix rather than a config switch: the registry keys model families by name
prefix, builds and reloads a trained fold from the architecture name alone
(:func:`~emo_utils.models.load_fold_model`) and lets a run mix families
(``["sed:resnest14d", "resnest14d", "classical:logreg"]``); the head is then one
:func:`register_family` call, saved in the run's ``config.json`` through
``train.architectures``, off unless named.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import TrainingError
from ._registry import ModelFamily, register_family
from .normalize import NormalizedModel
from .timm import check_timm_name, create_timm_model, resolve_weights_file

__all__ = [
    "SED_DROPOUT",
    "AttentionPooling",
    "SedModel",
    "build_sed_model",
    "frame_bounds",
    "frame_logits",
    "frame_probabilities",
    "is_sed_model",
]

#: Dropout before and after the per-frame convolution (training only), as PANNs' 0.5 scaled
#: down for small data.
SED_DROPOUT = 0.2


class AttentionPooling(nn.Module):
    """PANNs' ``AttBlock`` with a linear classifier: frame logits pooled by attention.

    Parameters
    ----------
    in_features : int
        Channels per frame.
    n_outputs : int
        Classes.

    Notes
    -----
    ``forward(x)`` with ``x`` of shape ``(B, in_features, T)`` returns ``(clip, frames)``:
    ``clip`` ``(B, n_outputs)`` is ``sum_t softmax_t(tanh(att(x))) * cla(x)`` and
    ``frames`` ``(B, n_outputs, T)`` is ``cla(x)``, both logits.
    """

    def __init__(self, in_features: int, n_outputs: int) -> None:
        super().__init__()
        self.att = nn.Conv1d(in_features, n_outputs, kernel_size=1)
        self.cla = nn.Conv1d(in_features, n_outputs, kernel_size=1)
        for layer in (self.att, self.cla):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(clip logits (B, n_outputs), frame logits (B, n_outputs, T))``."""
        norm_att = torch.softmax(torch.tanh(self.att(x)), dim=-1)
        frames = self.cla(x)
        return (norm_att * frames).sum(dim=-1), frames


class SedModel(nn.Module):
    """A timm feature backbone with :class:`AttentionPooling` (see the module docstring).

    Parameters
    ----------
    backbone : torch.nn.Module
        A timm ``features_only`` model whose last output is a ``(B, C, F', T')`` feature map.
    channels : int
        ``C``.
    n_outputs : int
        Classes.
    dropout : float
        Dropout before and after the per-frame convolution.

    Attributes
    ----------
    pretrained_cfg : dict
        The backbone's timm ``pretrained_cfg`` (``train.image_normalization = "imagenet"``
        reads its mean and std).
    """

    def __init__(
        self, backbone: nn.Module, *, channels: int, n_outputs: int, dropout: float = SED_DROPOUT
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Conv1d(channels, channels, kernel_size=1)
        self.head = AttentionPooling(channels, n_outputs)
        self.dropout = float(dropout)
        self.pretrained_cfg = dict(getattr(backbone, "pretrained_cfg", {}) or {})

    def _frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` images -> ``(B, channels, T')`` per-frame features."""
        fmap = self.backbone(x)[-1]
        if fmap.ndim != 4:
            raise TrainingError(
                f"sed: the backbone's last feature map has shape {tuple(fmap.shape)}, "
                "not (B, C, F, T); use a CNN backbone"
            )
        h = fmap.mean(dim=2)
        h = F.max_pool1d(h, 3, stride=1, padding=1) + F.avg_pool1d(h, 3, stride=1, padding=1)
        h = F.dropout(h, p=self.dropout, training=self.training)
        h = F.relu(self.fc(h))
        return F.dropout(h, p=self.dropout, training=self.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Clip logits ``(B, n_outputs)`` of images ``(B, C, H, W)``."""
        return self.head(self._frame_features(x))[0]

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Frame logits ``(B, T', n_outputs)`` of images ``(B, C, H, W)``."""
        return self.head(self._frame_features(x))[1].transpose(1, 2)


def is_sed_model(model: nn.Module) -> bool:
    """Whether ``model`` (bare, or inside a :class:`NormalizedModel`) has the SED head."""
    body = model.model if isinstance(model, NormalizedModel) else model
    return isinstance(body, SedModel)


def frame_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Frame logits ``(B, T', n_outputs)`` of a SED model, its input normalisation included.

    Parameters
    ----------
    model : torch.nn.Module
        A :class:`SedModel`, bare or as :func:`~emo_utils.models.load_fold_model` returns it
        (inside a :class:`NormalizedModel`: ``x`` are raw cached images).
    x : torch.Tensor, shape (B, C, H, W)

    Raises
    ------
    TrainingError
        ``model`` has no SED head.
    """
    if isinstance(model, NormalizedModel):
        body, x = model.model, (x - model.mean) / model.std
    else:
        body = model
    if not isinstance(body, SedModel):
        raise TrainingError(f"{type(body).__name__} has no frame-level head (use 'sed:<name>')")
    return body.frame_logits(x)


def frame_probabilities(
    model: nn.Module, x: torch.Tensor, *, activation: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Frame-wise probabilities ``(B, T', n_outputs)``: the task's activation of each frame.

    Parameters
    ----------
    model : torch.nn.Module
        As for :func:`frame_logits`.
    x : torch.Tensor, shape (B, C, H, W)
    activation : callable
        The task's :meth:`~emo_utils.tasks.Task.activation` (over the last axis).
    """
    return activation(frame_logits(model, x))


def frame_bounds(
    n_frames: int, *, n_columns: int, hop_length: int, sample_rate: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seconds from the window start that each of ``n_frames`` backbone frames covers.

    Frame ``k`` stands for image columns ``[k W / T', (k + 1) W / T')``; column ``j`` of
    the centred STFT covers ``[(j - 1/2) h, (j + 1/2) h)`` seconds (``h = hop_length /
    sample_rate``).  The first frame starts at 0.

    Parameters
    ----------
    n_frames : int
        ``T'``, frames of the head's output.
    n_columns : int
        ``W``, columns of the image the model read.
    hop_length : int
        ``features.hop_length``.
    sample_rate : int
        Rate of the audio the image was computed from.

    Returns
    -------
    starts, ends : numpy.ndarray of float64, shape (n_frames,)
        Consecutive: ``ends[k] == starts[k + 1]``.

    Examples
    --------
    >>> starts, ends = frame_bounds(2, n_columns=5, hop_length=100, sample_rate=1000)
    >>> starts.tolist(), ends.tolist()
    ([0.0, 0.2], [0.2, 0.45])
    """
    edges = (np.arange(n_frames + 1) * (n_columns / n_frames) - 0.5) * hop_length / sample_rate
    edges = np.maximum(edges, 0.0)
    return edges[:-1], edges[1:]


def check_sed_name(name: str) -> str | None:
    """``None`` when ``name`` is a timm architecture, else the problem (``sed:`` prefixed)."""
    problem = check_timm_name(name)
    return None if problem is None else f"sed: {problem}"


def build_sed_model(
    name: str,
    *,
    n_outputs: int,
    pretrained: bool,
    weights_dir: str | os.PathLike = "",
    in_chans: int = 3,
) -> SedModel:
    """A :class:`SedModel` on the timm backbone ``name``.

    Parameters
    ----------
    name : str
        A timm CNN name (``timm.list_models()``) that supports ``features_only``.
    n_outputs : int
        Classes (outputs of the clip and frame logits).
    pretrained, weights_dir, in_chans
        As for :func:`~emo_utils.models.timm.build_timm_model` (the backbone's weights).

    Raises
    ------
    TrainingError
        Unknown name, missing or unloadable weights, or a backbone without a feature map.
    """
    try:
        backbone = create_timm_model(
            name,
            pretrained=pretrained,
            weights_dir=weights_dir,
            features_only=True,
            out_indices=(-1,),
            in_chans=int(in_chans),
        )
    except (RuntimeError, AssertionError, ValueError) as exc:
        raise TrainingError(
            f"train.architectures: sed:{name} needs a timm CNN with features_only ({exc})"
        ) from exc
    return SedModel(
        backbone, channels=int(backbone.feature_info.channels()[-1]), n_outputs=int(n_outputs)
    )


register_family(
    ModelFamily(
        prefix="sed",
        input="image",
        build=build_sed_model,
        check=check_sed_name,
        check_weights=resolve_weights_file,
        frame_level=True,
    )
)
