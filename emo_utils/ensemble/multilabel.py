"""Multi-label ensembles: combining several models' per-label sigmoid probabilities.

Every combiner works on probabilities of shape ``(n_models, n_samples, n_labels)`` (one
sigmoid output per model and label, each in ``[0, 1]``) and a 0/1 target matrix ``Y`` of
shape ``(n_samples, n_labels)``:

=============  ===========================================================================
``single``     the best single model by its OOF score (the competition metric, F1 at
               cross-fitted thresholds); ``best`` falls back to it
``mode``       k-of-n vote: each model decides every label at its own thresholds; a label
               is present when at least ``k`` of the ``n`` models say so (default: a
               strict majority, ``k = ceil((n + 1) / 2)``); optional model weights
``mean``       weighted arithmetic mean of the probabilities, per label
``geometric``  weighted geometric mean of the probabilities, per label (not renormalised:
               labels are independent, unlike single-label classes)
``rank``       weighted mean of each model's per-label ranks over the rows, scaled to [0, 1]
``power``      weighted power mean ``(mean p ** power) ** (1 / power)``, per label
``select``     greedy forward selection with replacement (Caruana et al. 2004) of the
               models maximising the competition metric of their mean
``weighted``   weights on the simplex minimising the binary cross-entropy of the mean
``stacking``   one scikit-learn ``LogisticRegression`` per label on the models' logits of
               that label; its OOF output is cross-validated over the OOF folds
=============  ===========================================================================

``select`` and ``weighted`` reuse :mod:`emo_utils.ensemble.selection` (their OOF output is
cross-fitted over the folds: nested); the test set gets the weights learnt on all OOF rows.

:data:`MULTILABEL_ENSEMBLES` maps each name to a factory ``(weights=None, **options) ->
ensemble``; an ensemble has ``fit(probas, Y, folds=None)``, ``predict_proba(probas)``
(``(n_samples, n_labels)`` scores in ``[0, 1]``), ``predict(probas, thresholds=None)`` (0/1
decisions) and ``oof_predict_proba(probas, Y, folds)`` (scores of the OOF rows that never
used the scored rows' labels).

:func:`score_multilabel_ensembles` scores every single model and every method on OOF
probabilities and returns the single-label :class:`~emo_utils.ensemble.EnsembleReport`
with the thresholds to apply to the test set.

This module is the multi-label face of three modules, and every name here is theirs:
:mod:`emo_utils.ensemble.multilabel_combiners` (validation, the k-of-n vote and the
per-label means), :mod:`emo_utils.ensemble.multilabel_estimators`
(:data:`MULTILABEL_ENSEMBLES` and its estimators, :func:`make_multilabel_ensemble`,
:func:`resolve_multilabel_method`) and :mod:`emo_utils.ensemble.multilabel_scoring`
(:func:`score_multilabel_ensembles`).

Examples
--------
>>> import numpy as np
>>> probas = np.array([[[0.9, 0.2]], [[0.6, 0.7]], [[0.1, 0.8]]])  # 3 models, 1 row, 2 labels
>>> k_of_n_vote(probas).tolist()  # 2 of 3 models say yes to both labels
[[1, 1]]
>>> k_of_n_vote(probas, k=3).tolist()
[[0, 0]]
"""

from __future__ import annotations

from .multilabel_combiners import (
    check_multilabel_probas,
    default_k,
    k_of_n_vote,
    label_geometric_mean,
    label_mean,
    label_power_mean,
    label_rank_mean,
    label_vote_shares,
)
from .multilabel_estimators import (
    MULTILABEL_ENSEMBLES,
    KOfNVote,
    MultilabelAverage,
    MultilabelEnsemble,
    MultilabelLearned,
    MultilabelStacking,
    make_multilabel_ensemble,
    resolve_multilabel_method,
)
from .multilabel_estimators import STACKING_EPS as STACKING_EPS
from .multilabel_scoring import score_multilabel_ensembles

__all__ = [
    "MULTILABEL_ENSEMBLES",
    "KOfNVote",
    "MultilabelAverage",
    "MultilabelEnsemble",
    "MultilabelLearned",
    "MultilabelStacking",
    "check_multilabel_probas",
    "default_k",
    "k_of_n_vote",
    "label_geometric_mean",
    "label_mean",
    "label_power_mean",
    "label_rank_mean",
    "label_vote_shares",
    "make_multilabel_ensemble",
    "resolve_multilabel_method",
    "score_multilabel_ensembles",
]
