"""The model registry: model families keyed by name prefix, as timm's ``hf-hub:``.

A name in ``train.architectures`` is ``"<prefix>:<model>"`` for a registered family, or a
plain timm name (``"resnest50d"``, ``"timm:resnest50d"`` is the same).  Each family
declares what its models take as input (``"image"``: cached feature images ``(B, C, H, W)``;
``"features"``: per-clip statistics vectors, :mod:`emo_utils.features.statistics`;
``"waveform"``: cached mono clips ``(B, 1, 1, T)``, :mod:`emo_utils.features.waveform`;
``"embeddings"``: frozen transformers embeddings, :mod:`emo_utils.models.embeddings`),
which trainer fits them (``"fastai"``: torch modules in the fastai loop; ``"sklearn"``:
scikit-learn estimators), the sample rate it needs (``None``: any), and a builder; optional
hooks check a run's settings before any work, check a built model against its input store,
prepare a model for fine-tuning (frozen parts, layer-wise parameter groups) and rebuild a
trained model from its saved weights alone.  :func:`check_architectures` and
:func:`build_model` consult the registry, so a new family is one :func:`register_family`
call in one file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import TrainingError

__all__ = [
    "DEFAULT_FAMILY",
    "MODEL_FAMILIES",
    "ModelFamily",
    "build_model",
    "check_architectures",
    "check_local_weights",
    "check_normalization",
    "check_setups",
    "input_normalization",
    "model_input",
    "model_inputs",
    "register_family",
    "resolve_architecture",
    "select_device",
]

#: The family of names without a registered prefix.
DEFAULT_FAMILY = "timm"


@dataclass(frozen=True)
class ModelFamily:
    """One registry entry.

    Attributes
    ----------
    prefix : str
        The name prefix (``"timm"`` for ``"timm:resnet18"``).
    input : {"image", "features", "waveform", "embeddings"}
        What the models are fed (a key of the inputs the pipeline builds:
        :data:`emo_utils.models.INPUT_BUILDERS`).
    build : callable
        ``build(name, *, n_outputs, pretrained, weights_dir, in_chans)``: for the
        ``"fastai"`` trainer an ``nn.Module`` mapping an input batch to ``(B, n_outputs)``
        logits; for ``"sklearn"`` an unfitted scikit-learn estimator.
    check : callable
        ``check(name) -> str | None``: a problem with the name (unknown model), or None.
    check_weights : callable
        ``check_weights(name, weights_dir)``: raise :class:`TrainingError` when local
        pretrained weights are missing.
    sample_rate : int or None
        Sample rate the model needs (``None``: any, e.g. images).
    normalizations : tuple of str or None
        The ``train.image_normalization`` names that make sense for its inputs (``None``:
        every entry of :data:`~emo_utils.models.normalize.IMAGE_NORMALIZATIONS`).
    trainer : {"fastai", "sklearn"}
        Which fold trainer fits its models (:mod:`emo_utils.train.cv`) and which predictor
        runs them (:mod:`emo_utils.infer.predict`).
    input_normalization : str or None
        The :data:`~emo_utils.models.normalize.IMAGE_NORMALIZATIONS` entry its models always
        get, whatever ``train.image_normalization`` says (``None``: that field).  ``"none"``
        for models that normalise their input themselves (``hf``: the feature extractor's).
    check_setup : callable or None
        ``check_setup(name, config)``: raise :class:`TrainingError` when the model cannot
        take the run's input (``hf``: the feature extractor's sample rate and length against
        the config), before any work.
    check_input : callable or None
        ``check_input(arch, model, store)``: raise :class:`TrainingError` when a built (or
        loaded) model cannot take the store it is about to be fed (sample rate, window).
    training_groups : callable or None
        ``training_groups(model, train_config) -> list of parameter lists``: prepares a
        built model for fine-tuning (``hf``: freezes the feature encoder when
        ``train.freeze_feature_encoder``) and returns its trainable parameters grouped from
        the bottom layer to the head, for ``train.layer_decay``.  ``None``: one group.
    from_state : callable or None
        ``from_state(name, *, state, n_outputs) -> nn.Module``: the untrained network
        rebuilt from a saved state dict alone (the body's entries, prefix removed), for
        families whose architecture travels with the weights (``hf``: the transformers
        config), so a trained fold loads offline without the hub or the pretrained folder.
        ``None``: ``build(name, pretrained=False)``.
    select_input : callable or None
        ``select_input(store, name) -> store``: the part of the family's input store a model
        reads (``hfemb``: the embeddings of its model and layer).  ``None``: the whole store.
    frame_level : bool
        Its models also give frame-wise outputs (``sed``: :mod:`emo_utils.models.sed`), which
        their ONNX export does not carry: timelines run them on torch.
    """

    prefix: str
    input: str
    build: Callable[..., Any]
    check: Callable[[str], str | None]
    check_weights: Callable[[str, str | os.PathLike], object]
    sample_rate: int | None = None
    normalizations: tuple[str, ...] | None = None
    trainer: str = "fastai"
    input_normalization: str | None = None
    check_setup: Callable[[str, Any], None] | None = None
    check_input: Callable[[str, nn.Module, Any], None] | None = None
    training_groups: Callable[[nn.Module, Any], list[list[nn.Parameter]]] | None = None
    from_state: Callable[..., nn.Module] | None = None
    select_input: Callable[[Any, str], Any] | None = None
    frame_level: bool = False


#: prefix -> :class:`ModelFamily`.  The single source of truth for architecture names.
MODEL_FAMILIES: dict[str, ModelFamily] = {}


def register_family(family: ModelFamily) -> ModelFamily:
    """Add ``family`` to :data:`MODEL_FAMILIES` under its prefix."""
    MODEL_FAMILIES[family.prefix] = family
    return family


def resolve_architecture(arch: str) -> tuple[ModelFamily, str]:
    """``(family, model name inside the family)`` of an architecture name.

    >>> family, name = resolve_architecture("timm:resnet18")
    >>> family.prefix, name
    ('timm', 'resnet18')
    """
    prefix, sep, rest = arch.partition(":")
    if sep and prefix in MODEL_FAMILIES:
        return MODEL_FAMILIES[prefix], rest
    return MODEL_FAMILIES[DEFAULT_FAMILY], arch


def check_architectures(architectures: Sequence[str]) -> None:
    """Fail unless every name resolves to a model of its family.

    Raises
    ------
    TrainingError
        Naming ``train.architectures`` and every unknown name with its family's hint.
    """
    problems = []
    for arch in architectures:
        family, name = resolve_architecture(arch)
        problem = family.check(name)
        if problem:
            problems.append(problem)
    if problems:
        raise TrainingError("train.architectures: " + "; ".join(problems))


def check_normalization(architectures: Sequence[str], name: str) -> None:
    """Fail unless every architecture's family accepts ``train.image_normalization = name``.

    Raises
    ------
    TrainingError
        Naming the architecture and the names its family accepts.
    """
    for arch in architectures:
        family, _ = resolve_architecture(arch)
        if family.input_normalization is not None:  # the family's own, whatever the field
            continue
        if family.normalizations is not None and name not in family.normalizations:
            raise TrainingError(
                f"train.image_normalization: {name!r} does not apply to {arch!r} "
                f"({family.prefix} models accept {list(family.normalizations)})"
            )


def input_normalization(arch: str, name: str) -> str:
    """The image normalisation ``arch`` is trained with when ``train.image_normalization = name``.

    ``name``, unless the family always uses its own (:attr:`ModelFamily.input_normalization`).
    """
    own = resolve_architecture(arch)[0].input_normalization
    return name if own is None else own


def model_input(arch: str, inputs: Mapping[str, Any]) -> Any:
    """The store ``arch`` reads from ``{input kind: store}``.

    Its family's input store, narrowed by :attr:`ModelFamily.select_input` when set.
    """
    family, name = resolve_architecture(arch)
    store = inputs[family.input]
    return store if family.select_input is None else family.select_input(store, name)


def check_setups(architectures: Sequence[str], config: Any) -> None:
    """Run every family's :attr:`ModelFamily.check_setup` on its names (before any work).

    Raises
    ------
    TrainingError
        From the hooks: a model that cannot take the run's input.
    """
    for arch in architectures:
        family, name = resolve_architecture(arch)
        if family.check_setup is not None:
            family.check_setup(name, config)


def check_local_weights(architectures: Sequence[str], weights_dir: str | os.PathLike) -> None:
    """Fail before any work when local pretrained weights are missing for a name."""
    for arch in architectures:
        family, name = resolve_architecture(arch)
        family.check_weights(name, weights_dir)


def build_model(
    arch: str,
    n_classes: int,
    *,
    pretrained: bool,
    weights_dir: str | os.PathLike = "",
    in_chans: int = 3,
) -> nn.Module:
    """The network of ``arch`` with ``n_classes`` outputs (logits), from its family's builder.

    Raises
    ------
    TrainingError
        Unknown name, missing local weights, or weights that cannot be loaded.
    """
    check_architectures([arch])
    family, name = resolve_architecture(arch)
    return family.build(
        name,
        n_outputs=int(n_classes),
        pretrained=pretrained,
        weights_dir=weights_dir,
        in_chans=int(in_chans),
    )


def model_inputs(architectures: Sequence[str]) -> list[str]:
    """The inputs (``ModelFamily.input``) the architectures need, in first-use order."""
    return list(dict.fromkeys(resolve_architecture(a)[0].input for a in architectures))


def select_device(device: str | torch.device | None = None) -> torch.device:
    """``device``, or the GPU when there is one, else the CPU (training and inference alike)."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
