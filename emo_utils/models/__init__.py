"""Stage 4: the model registry (timm images, later waveform and classical families).

May import: ``config``, ``errors``, ``fileio``, ``runs``.  Never fastai.
"""

from .timm import NormalizedModel, build_model, check_architectures, resolve_weights_file

__all__ = ["NormalizedModel", "build_model", "check_architectures", "resolve_weights_file"]
