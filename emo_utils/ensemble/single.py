"""Single-label ensembles: combining several models' class probabilities, chosen on OOF.

(Multi-label ensembles are in :mod:`emo_utils.ensemble.multilabel`; both are importable
from ``emo_utils.ensemble``.)

Every combiner works on probabilities of shape ``(n_models, n_samples, n_classes)`` (one
softmax output per model, e.g. the fold-averaged test probabilities of each architecture,
or their out-of-fold probabilities), in the manner of scikit-learn's
:class:`~sklearn.ensemble.VotingClassifier` and :class:`~sklearn.ensemble.StackingClassifier`:

=============  ===========================================================================
``single``     the best single model on OOF (by the competition metric); its OOF score is
               that model's, and ``best`` falls back to it
``mode``       majority vote of the per-model labels (the reference solution's method);
               optional model weights; ties broken as described in :func:`mode_vote`
``mean``       weighted arithmetic mean of the probabilities ("soft" voting)
``geometric``  weighted geometric mean of the probabilities, renormalised
``rank``       weighted mean of each model's within-row class ranks (a Borda count),
               renormalised: :func:`rank_mean_proba`
``power``      weighted mean of ``p ** power``, renormalised: :func:`power_mean_proba`
``select``     greedy forward selection with replacement (Caruana et al. 2004) of the
               models maximising the competition metric of their mean
``weighted``   weights on the simplex minimising the log loss of the weighted mean
``stacking``   a small scikit-learn model fitted on the models' OOF probabilities
=============  ===========================================================================

``single``, ``select``, ``weighted`` and ``stacking`` learn from the OOF labels; the OOF
scores of ``select``, ``weighted`` and ``stacking`` are cross-fitted over the training
folds (never in-sample; :mod:`emo_utils.ensemble.selection`), and the test predictions use
what they learn on all OOF rows.

:data:`ENSEMBLES` maps each name to a factory ``(weights=None, **options) -> ensemble``;
an ensemble has ``fit(probas, y, folds=None)``, ``predict(probas)``,
``predict_proba(probas)`` and ``oof_predict(probas, y, folds)`` (labels for OOF scoring
that never used the scored rows' labels); the learnt ones also ``oof_predict_proba``.

:func:`score_ensembles` scores every single model and every method on OOF predictions with
the competition metric and returns an :class:`EnsembleReport`;
:func:`emo_utils.ensemble.evaluate_ensembles` does the same from a run folder.  ``best``
resolves to the method with the best OOF score, ties to the earliest method, ``single``
first: it never scores below the best single model.

This module is the single-label face of three modules, and every name here is theirs:
:mod:`emo_utils.ensemble.combiners` (validation and the votes and means),
:mod:`emo_utils.ensemble.estimators` (:data:`ENSEMBLES` and its estimators,
:func:`make_ensemble`) and :mod:`emo_utils.ensemble.scoring` (:func:`score_ensembles`,
:class:`EnsembleReport`, :func:`resolve_method`).

Examples
--------
>>> import numpy as np
>>> from emo_utils.ensemble import mode_vote
>>> probas = np.array([[[0.9, 0.1]], [[0.4, 0.6]], [[0.2, 0.8]]])  # 3 models, 1 sample
>>> mode_vote(probas).tolist()
[1]
"""

from __future__ import annotations

from .combiners import (
    DEFAULT_POWER,
    GEOMETRIC_EPS,
    at_max,
    check_power,
    check_probas,
    check_weights,
    geometric_mean_proba,
    mean_proba,
    mode_vote,
    power_mean_proba,
    rank_mean_proba,
    vote_shares,
)
from .estimators import _VOTING_PROBA as _VOTING_PROBA
from .estimators import (
    ENSEMBLES,
    SINGLE,
    STACKING_MODELS,
    Ensemble,
    LearnedEnsemble,
    StackingEnsemble,
    VotingEnsemble,
    make_ensemble,
)
from .estimators import _proba_method as _proba_method
from .estimators import _stack_features as _stack_features
from .estimators import _to_proba as _to_proba
from .scoring import EnsembleReport, resolve_method, score_ensembles, with_single

__all__ = [
    "DEFAULT_POWER",
    "ENSEMBLES",
    "GEOMETRIC_EPS",
    "SINGLE",
    "STACKING_MODELS",
    "Ensemble",
    "EnsembleReport",
    "LearnedEnsemble",
    "StackingEnsemble",
    "VotingEnsemble",
    "at_max",
    "check_power",
    "check_probas",
    "check_weights",
    "geometric_mean_proba",
    "make_ensemble",
    "mean_proba",
    "mode_vote",
    "power_mean_proba",
    "rank_mean_proba",
    "resolve_method",
    "score_ensembles",
    "vote_shares",
    "with_single",
]
