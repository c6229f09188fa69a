"""Stage 5: fastai training over the folds (data, learner, callbacks, the CV loop).

The only sub-package that imports fastai.  May import every stage below it.
"""

from .cv import CVResult, FoldResult, check_training_setup, train_cv

__all__ = ["CVResult", "FoldResult", "check_training_setup", "train_cv"]
