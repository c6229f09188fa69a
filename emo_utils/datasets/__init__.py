"""Dataset generators (sklearn's ``make_classification`` pattern): audio the project makes itself.

``synthetic`` writes the demo competition folder of voice-like emotional clips;
``multilabel`` writes a Freesound-style multi-label tagging folder (speech, music, chirps,
water) with planted label noise and near-duplicates.  Imports only ``errors``, ``fileio``,
``_console`` and third-party audio libraries.
"""

from .multilabel import MULTILABEL_DEMO_CLASSES, make_multilabel_demo
from .synthetic import make_demo_dataset

__all__ = ["MULTILABEL_DEMO_CLASSES", "make_demo_dataset", "make_multilabel_demo"]
