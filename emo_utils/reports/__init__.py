"""Stage 8: reports and plots that read a run folder or a competition (never compute features).

``plots`` draws figures from plain arrays (confusion matrices, ROC, training curves,
scores, embedding maps, :func:`save_figure`); ``run`` reads a trained run folder through
:class:`emo_utils.runs.RunDir` and writes ``RUN/report/`` (:func:`make_run_report`,
``python -m emo_utils report``); ``multilabel`` tabulates and plots multi-label
predictions (per-label table, PR and F1-threshold curves, co-occurrence, per-label outcomes,
label-set names); ``members`` lists a run's models with their family, input, OOF score
and ensemble weight; ``eda`` describes a competition folder; ``labels`` counts clips per label
for one label per clip or a set of labels per clip (training labels, a submission).  :func:`embed`
lives in :mod:`emo_utils.infer.embed` and is re-exported here for the notebooks.
May import every stage below it; nothing imports ``reports`` except ``pipeline``/``cli``.
"""

from ..infer.embed import embed
from .eda import (
    dataset_overview,
    plot_channel_grid,
    plot_class_balance,
    plot_durations,
    plot_formats,
    plot_signal_statistics,
    signal_statistics,
)
from .labels import LABEL_KINDS, clip_labels, label_counts, submission_label_counts
from .members import ensemble_members
from .multilabel import (
    label_set_codes,
    label_set_names,
    per_label_table,
    plot_label_confusion,
    plot_label_cooccurrence,
    plot_per_label_table,
    plot_pr_curves,
    plot_threshold_f1,
)
from .plots import (
    PROJECTIONS,
    classification_table,
    plot_classification_table,
    plot_confusion_matrix,
    plot_embedding_map,
    plot_roc_curves,
    plot_scores,
    plot_training_curves,
    save_figure,
)
from .run import REPORT_DIR, REPORT_KINDS, make_run_report, read_training_logs

__all__ = [
    "LABEL_KINDS",
    "PROJECTIONS",
    "REPORT_DIR",
    "REPORT_KINDS",
    "classification_table",
    "clip_labels",
    "dataset_overview",
    "embed",
    "ensemble_members",
    "label_counts",
    "label_set_codes",
    "label_set_names",
    "make_run_report",
    "per_label_table",
    "plot_channel_grid",
    "plot_class_balance",
    "plot_classification_table",
    "plot_confusion_matrix",
    "plot_durations",
    "plot_embedding_map",
    "plot_formats",
    "plot_label_confusion",
    "plot_label_cooccurrence",
    "plot_per_label_table",
    "plot_pr_curves",
    "plot_roc_curves",
    "plot_scores",
    "plot_signal_statistics",
    "plot_threshold_f1",
    "plot_training_curves",
    "read_training_logs",
    "save_figure",
    "signal_statistics",
    "submission_label_counts",
]
