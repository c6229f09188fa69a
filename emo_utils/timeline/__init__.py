"""Long recordings and live audio: a trained run as a window classifier.

* :mod:`.classifier` -- :class:`RunClassifier`: a run folder loaded once (its config, classes,
  every fold model of every architecture and the ensemble its submission uses), classifying
  waveform windows or a file with the features the run was trained on.

Layer 10 (like ``reports``): it combines models with :mod:`emo_utils.ensemble` (layer 9), so
it cannot live in ``infer`` (layer 7).  Never imports fastai.
"""

from .classifier import INPUT_KINDS, RunClassifier, WindowInput

__all__ = ["INPUT_KINDS", "RunClassifier", "WindowInput"]
