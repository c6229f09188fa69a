"""Stage 6: trained fold models -> probabilities, for OOF and test alike (no fastai).

``predict`` holds the one function from a model to probabilities (:func:`predict_rows`)
and the test-set loop over folds; ``embed`` the pooled backbone features of a model.
May import: ``config``, ``errors``, ``fileio``, ``runs``, ``features``, ``tasks``, ``models``.
"""

from .predict import predict_rows, predict_test, tta_views, view_settings

__all__ = ["predict_rows", "predict_test", "tta_views", "view_settings"]
