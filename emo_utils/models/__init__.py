"""Stage 4: the model registry and everything needed to run a trained model, without fastai.

``_registry`` maps name prefixes to model families (``timm`` is the default family:
plain timm names work); ``timm`` registers that family; ``normalize`` holds the
normalisation built into every model; ``checkpoints`` loads a trained fold for inference.
May import: ``config``, ``errors``, ``fileio``, ``runs``.  Never fastai.
"""

from . import timm as _timm  # noqa: F401  (registers the timm family)
from ._registry import (
    MODEL_FAMILIES,
    ModelFamily,
    build_model,
    check_architectures,
    check_local_weights,
    check_normalization,
    register_family,
    resolve_architecture,
    select_device,
)
from .checkpoints import load_fold_model
from .normalize import IMAGE_NORMALIZATIONS, NormalizedModel, image_statistics
from .timm import resolve_weights_file

__all__ = [
    "IMAGE_NORMALIZATIONS",
    "MODEL_FAMILIES",
    "ModelFamily",
    "NormalizedModel",
    "build_model",
    "check_architectures",
    "check_local_weights",
    "check_normalization",
    "image_statistics",
    "load_fold_model",
    "register_family",
    "resolve_architecture",
    "resolve_weights_file",
    "select_device",
]
