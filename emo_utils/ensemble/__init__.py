"""Combining the predictions of several models, and choosing how on OOF predictions.

Two kinds of problem, one module each:

* :mod:`emo_utils.ensemble.single` -- single-label classification (softmax outputs,
  ``(n_models, n_samples, n_classes)``): :data:`ENSEMBLES`, :func:`score_ensembles`,
  :func:`evaluate_ensembles`, the votes and means the endgame reuses.
* :mod:`emo_utils.ensemble.multilabel` -- multi-label tagging (sigmoid outputs,
  ``(n_models, n_samples, n_labels)``): :data:`MULTILABEL_ENSEMBLES`,
  :func:`score_multilabel_ensembles`.
* :mod:`emo_utils.ensemble.run` -- :func:`evaluate_ensembles`, the ensemble stage of a run
  folder, for either kind (writes ``thresholds.json`` for multi-label runs).

Every name is importable from ``emo_utils.ensemble`` itself.
"""

from __future__ import annotations

from .multilabel import (
    MULTILABEL_ENSEMBLES,
    STACKING_EPS,
    KOfNVote,
    MultilabelAverage,
    MultilabelEnsemble,
    MultilabelStacking,
    check_multilabel_probas,
    default_k,
    k_of_n_vote,
    label_geometric_mean,
    label_mean,
    label_rank_mean,
    label_vote_shares,
    make_multilabel_ensemble,
    resolve_multilabel_method,
    score_multilabel_ensembles,
)
from .run import evaluate_ensembles
from .single import _VOTING_PROBA as _VOTING_PROBA
from .single import (
    ENSEMBLES,
    GEOMETRIC_EPS,
    STACKING_MODELS,
    Ensemble,
    EnsembleReport,
    StackingEnsemble,
    VotingEnsemble,
    at_max,
    check_probas,
    check_weights,
    geometric_mean_proba,
    make_ensemble,
    mean_proba,
    mode_vote,
    resolve_method,
    score_ensembles,
    vote_shares,
)
from .single import _proba_method as _proba_method
from .single import _stack_features as _stack_features
from .single import _to_proba as _to_proba

__all__ = [
    "ENSEMBLES",
    "GEOMETRIC_EPS",
    "MULTILABEL_ENSEMBLES",
    "STACKING_EPS",
    "STACKING_MODELS",
    "Ensemble",
    "EnsembleReport",
    "KOfNVote",
    "MultilabelAverage",
    "MultilabelEnsemble",
    "MultilabelStacking",
    "StackingEnsemble",
    "VotingEnsemble",
    "at_max",
    "check_multilabel_probas",
    "check_probas",
    "check_weights",
    "default_k",
    "evaluate_ensembles",
    "geometric_mean_proba",
    "k_of_n_vote",
    "label_geometric_mean",
    "label_mean",
    "label_rank_mean",
    "label_vote_shares",
    "make_ensemble",
    "make_multilabel_ensemble",
    "mean_proba",
    "mode_vote",
    "resolve_method",
    "resolve_multilabel_method",
    "score_ensembles",
    "score_multilabel_ensembles",
    "vote_shares",
]
