"""Stage 6: trained fold models -> probabilities, for OOF and test alike (no fastai).

May import: ``config``, ``errors``, ``fileio``, ``runs``, ``features``, ``tasks``, ``models``.
"""

from .predict import load_predictions, predict_test, tta_views

__all__ = ["load_predictions", "predict_test", "tta_views"]
