"""The competition endgame: vote over submission files, blend probability files, gather runs.

Kaggle users often train each architecture in its own kernel and combine at the end.
Three tools do that with the same honesty rules as the rest of the pipeline, for
single-label and multi-label competitions alike (the task is ``data.task`` of the
:class:`~emo_utils.config.DataConfig` given, so ``data_config.label_kind`` picks the rule):

* :func:`vote_submissions` -- vote over submission CSVs (the reference solution's "mode of
  my best submissions").  Single-label: each file votes for its label with its weight; the
  label with the largest summed weight wins.  **Tie-break**: when every input has its
  ``NAME.probabilities.csv`` beside it (:func:`~emo_utils.submission.write_submission`
  writes one), the tied label with the largest weighted sum of probabilities wins;
  otherwise, or if that is tied too, the label of the earliest file (in the order given)
  among the tied labels wins.  Multi-label: a per-label majority, tied labels decided by
  the probability files or else left out (see :func:`vote_submissions`).  The rule of each
  label kind is an entry of :data:`VOTE_RULES`.
* :func:`blend_probabilities` -- weighted ``mean``, ``geometric`` or ``rank`` mean of
  probability files (``*.probabilities.csv`` or ``RUN/predictions/ARCH.csv``);
  :func:`blend_submission` writes the submission (argmax, or multi-label decisions at 0.5
  or at a run's OOF-tuned thresholds) and the blended file.
* :func:`gather_runs` -- copy the architectures of runs trained on the same folds (same
  ``folds.csv``, byte for byte) into one run folder, so OOF ensemble selection, ``predict``
  and ``report`` work across them.  Runs with other folds are refused: their OOF
  predictions would leak when stacked or compared.
* :func:`pseudo_labels` -- a pseudo-label round's soft targets: test (and unlabelled) clips
  labelled per fold by a parent run's fold models and ensemble (:func:`check_parent` refuses
  a parent with other folds or classes); ``train --pseudo-from PARENT`` trains on them.

One module per job: :mod:`~emo_utils.endgame.vote`, :mod:`~emo_utils.endgame.blend`,
:mod:`~emo_utils.endgame.gather`, :mod:`~emo_utils.endgame.pseudo`; every name is importable
from ``emo_utils.endgame``.

Every input is checked against ``test.csv`` (same ids, same order) and the sample
submission's columns; errors name the file and the first difference.

Examples
--------
>>> import numpy as np
>>> rank_mean(np.array([[[0.2, 0.8], [0.6, 0.4]]])).tolist()
[[0.0, 1.0], [1.0, 0.0]]
"""

from __future__ import annotations

from ._common import (
    VOTE_PROBABILITY_THRESHOLD,
)
from .blend import (
    BLENDS,
    BLENDS_BY_KIND,
    MULTILABEL_BLENDS,
    BlendResult,
    blend_probabilities,
    blend_submission,
    decision_thresholds,
    rank_mean,
)
from .gather import (
    gather_runs,
)
from .pseudo import (
    check_parent,
    make_pseudo_labels,
    pseudo_candidates,
    pseudo_labels,
)
from .vote import (
    VOTE_RULES,
    VoteResult,
    VoteRule,
    agreement_matrix,
    label_set_agreement,
    vote_submissions,
)

__all__ = [
    "BLENDS",
    "BLENDS_BY_KIND",
    "MULTILABEL_BLENDS",
    "VOTE_PROBABILITY_THRESHOLD",
    "VOTE_RULES",
    "BlendResult",
    "VoteResult",
    "VoteRule",
    "agreement_matrix",
    "blend_probabilities",
    "blend_submission",
    "check_parent",
    "decision_thresholds",
    "gather_runs",
    "label_set_agreement",
    "make_pseudo_labels",
    "pseudo_candidates",
    "pseudo_labels",
    "rank_mean",
    "vote_submissions",
]
