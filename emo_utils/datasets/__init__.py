"""Dataset generators (sklearn's ``make_classification`` pattern): audio the project makes itself.

``synthetic`` writes the demo competition folder of voice-like emotional clips.  Imports
only ``errors``, ``fileio`` and third-party audio libraries.
"""

from .synthetic import make_demo_dataset

__all__ = ["make_demo_dataset"]
