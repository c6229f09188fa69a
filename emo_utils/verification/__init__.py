"""Verification (same source or not?): trial metrics and pair scoring.

Pure NumPy / scikit-learn functions on embeddings and trial scores, used by the
``verification`` task, its training, ensembles and reports:

* :mod:`.metrics`: equal error rate and the NIST-normalised minimum detection cost;
* :mod:`.scoring`: cosine scores, enrollment by mean embedding, S-norm, trial sampling.

May import: ``errors``, ``fileio``.
"""

from .metrics import (
    VERIFICATION_METRICS,
    OperatingPoints,
    check_trials,
    equal_error_rate,
    get_verification_metric,
    min_dcf,
    operating_points,
)

__all__ = [
    "VERIFICATION_METRICS",
    "OperatingPoints",
    "check_trials",
    "equal_error_rate",
    "get_verification_metric",
    "min_dcf",
    "operating_points",
]
