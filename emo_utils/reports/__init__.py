"""Stage 8: reports and plots that read a run folder or a competition (never compute features).

``plots`` draws figures from plain arrays (confusion matrices, ROC, training curves,
scores, embedding maps, :func:`save_figure`); ``run`` reads a trained run folder through
:class:`emo_utils.runs.RunDir` and writes ``RUN/report/`` (:func:`make_run_report`,
``python -m emo_utils report``); ``eda`` describes a competition folder.  :func:`embed`
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
from .run import REPORT_DIR, make_run_report, read_training_logs

__all__ = [
    "PROJECTIONS",
    "REPORT_DIR",
    "classification_table",
    "dataset_overview",
    "embed",
    "make_run_report",
    "plot_channel_grid",
    "plot_class_balance",
    "plot_classification_table",
    "plot_confusion_matrix",
    "plot_durations",
    "plot_embedding_map",
    "plot_formats",
    "plot_roc_curves",
    "plot_scores",
    "plot_signal_statistics",
    "plot_training_curves",
    "read_training_logs",
    "save_figure",
    "signal_statistics",
]
