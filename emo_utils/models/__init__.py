"""Stage 4: the model registry and everything needed to run a trained model, without fastai.

``_registry`` maps name prefixes to model families (``timm`` is the default family:
plain timm names work); ``timm`` registers that family, ``classical`` the scikit-learn
models on clip statistics, ``hf`` the transformers waveform classifiers, ``embeddings`` the
``hfemb`` family (frozen transformers embeddings and a scikit-learn head), ``sed`` any timm
CNN with a frame-level attention head; ``inputs`` builds
the input stores (images, statistics, waveforms, embeddings) the architectures need; ``normalize`` holds the normalisation built into every model;
``checkpoints`` loads a trained fold for inference.
May import: ``config``, ``errors``, ``fileio``, ``runs``, ``features``.  Never fastai.
"""

from . import classical as _classical  # noqa: F401  (registers the classical family)
from . import embeddings as _embeddings  # noqa: F401  (registers the hfemb family)
from . import hf as _hf  # noqa: F401  (registers the hf family)
from . import sed as _sed  # noqa: F401  (registers the sed family)
from . import timm as _timm  # noqa: F401  (registers the timm family)
from ._registry import (
    MODEL_FAMILIES,
    ModelFamily,
    build_model,
    check_architectures,
    check_local_weights,
    check_normalization,
    check_setups,
    input_normalization,
    model_input,
    model_inputs,
    register_family,
    resolve_architecture,
    select_device,
)
from .checkpoints import load_fold_model
from .inputs import INPUT_BUILDERS, build_inputs
from .normalize import IMAGE_NORMALIZATIONS, NormalizedModel, image_statistics
from .timm import resolve_weights_file

__all__ = [
    "IMAGE_NORMALIZATIONS",
    "INPUT_BUILDERS",
    "MODEL_FAMILIES",
    "ModelFamily",
    "NormalizedModel",
    "build_inputs",
    "build_model",
    "check_architectures",
    "check_local_weights",
    "check_normalization",
    "check_setups",
    "image_statistics",
    "input_normalization",
    "load_fold_model",
    "model_input",
    "model_inputs",
    "register_family",
    "resolve_architecture",
    "resolve_weights_file",
    "select_device",
]
