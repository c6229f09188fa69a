"""Stage 3: the competition's CSVs, near-duplicate groups and the cross-validation folds.

May import: ``config``, ``errors``, ``fileio``, ``audio`` (duplicates decode audio).
"""

from .competition import Competition, load_competition
from .folds import (
    check_fold_counts,
    check_multilabel_fold_counts,
    load_or_create_folds,
    make_folds,
    make_multilabel_folds,
    read_folds,
)

__all__ = [
    "Competition",
    "check_fold_counts",
    "check_multilabel_fold_counts",
    "load_competition",
    "load_or_create_folds",
    "make_folds",
    "make_multilabel_folds",
    "read_folds",
]
