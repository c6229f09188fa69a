"""Combining the predictions of several models, and choosing how on OOF predictions.

Two kinds of problem, one module each:

* :mod:`emo_utils.ensemble.single` -- single-label classification (softmax outputs,
  ``(n_models, n_samples, n_classes)``): :data:`ENSEMBLES`, :func:`score_ensembles`,
  :func:`evaluate_ensembles`, the votes and means the endgame reuses.  It gathers three
  modules: :mod:`~emo_utils.ensemble.combiners` (the votes and means),
  :mod:`~emo_utils.ensemble.estimators` (:data:`ENSEMBLES`, :func:`make_ensemble`) and
  :mod:`~emo_utils.ensemble.scoring` (:func:`score_ensembles`, :class:`EnsembleReport`,
  which the multi-label scorer returns too).
* :mod:`emo_utils.ensemble.multilabel` -- multi-label tagging (sigmoid outputs,
  ``(n_models, n_samples, n_labels)``): :data:`MULTILABEL_ENSEMBLES`,
  :func:`score_multilabel_ensembles`.  It gathers three modules:
  :mod:`~emo_utils.ensemble.multilabel_combiners` (the k-of-n vote and per-label means),
  :mod:`~emo_utils.ensemble.multilabel_estimators` (:data:`MULTILABEL_ENSEMBLES`,
  :func:`make_multilabel_ensemble`) and :mod:`~emo_utils.ensemble.multilabel_scoring`
  (:func:`score_multilabel_ensembles`).
* :mod:`emo_utils.ensemble.selection` -- the task-independent core of the ensembles that
  learn weights from OOF labels (``single``, ``select``, ``weighted``): forward selection
  (Caruana et al. 2004), weight optimisation, and the nested cross-fitting that keeps their
  OOF scores honest.
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
    MultilabelLearned,
    MultilabelStacking,
    check_multilabel_probas,
    default_k,
    k_of_n_vote,
    label_geometric_mean,
    label_mean,
    label_power_mean,
    label_rank_mean,
    label_vote_shares,
    make_multilabel_ensemble,
    resolve_multilabel_method,
    score_multilabel_ensembles,
)
from .run import ensemble_options, evaluate_ensembles
from .selection import (
    DEFAULT_ROUNDS,
    MIN_WEIGHT,
    WEIGHT_LEARNERS,
    LearnedMean,
    LearnerOptions,
    WeightLearner,
    best_single,
    check_selection_options,
    cross_fit_weights,
    forward_selection,
    optimize_weights,
    weighted_mean,
)
from .single import _VOTING_PROBA as _VOTING_PROBA
from .single import (
    DEFAULT_POWER,
    ENSEMBLES,
    GEOMETRIC_EPS,
    SINGLE,
    STACKING_MODELS,
    Ensemble,
    EnsembleReport,
    LearnedEnsemble,
    StackingEnsemble,
    VotingEnsemble,
    at_max,
    check_power,
    check_probas,
    check_weights,
    geometric_mean_proba,
    make_ensemble,
    mean_proba,
    mode_vote,
    power_mean_proba,
    rank_mean_proba,
    resolve_method,
    score_ensembles,
    vote_shares,
    with_single,
)
from .single import _proba_method as _proba_method
from .single import _stack_features as _stack_features
from .single import _to_proba as _to_proba

__all__ = [
    "DEFAULT_POWER",
    "DEFAULT_ROUNDS",
    "ENSEMBLES",
    "GEOMETRIC_EPS",
    "MIN_WEIGHT",
    "MULTILABEL_ENSEMBLES",
    "SINGLE",
    "STACKING_EPS",
    "STACKING_MODELS",
    "WEIGHT_LEARNERS",
    "Ensemble",
    "EnsembleReport",
    "KOfNVote",
    "LearnedEnsemble",
    "LearnedMean",
    "LearnerOptions",
    "MultilabelAverage",
    "MultilabelEnsemble",
    "MultilabelLearned",
    "MultilabelStacking",
    "StackingEnsemble",
    "VotingEnsemble",
    "WeightLearner",
    "at_max",
    "best_single",
    "check_multilabel_probas",
    "check_power",
    "check_probas",
    "check_selection_options",
    "check_weights",
    "cross_fit_weights",
    "default_k",
    "ensemble_options",
    "evaluate_ensembles",
    "forward_selection",
    "geometric_mean_proba",
    "k_of_n_vote",
    "label_geometric_mean",
    "label_mean",
    "label_power_mean",
    "label_rank_mean",
    "label_vote_shares",
    "make_ensemble",
    "make_multilabel_ensemble",
    "mean_proba",
    "mode_vote",
    "optimize_weights",
    "power_mean_proba",
    "rank_mean_proba",
    "resolve_method",
    "resolve_multilabel_method",
    "score_ensembles",
    "score_multilabel_ensembles",
    "vote_shares",
    "weighted_mean",
    "with_single",
]
