"""Stage 8: reports and plots that read a run folder or a competition (never compute features).

``run`` evaluates a trained run (confusion matrices, ROC, training curves, scores,
embedding maps, ``make_run_report``); ``eda`` describes a competition folder.
May import every stage below it; nothing imports ``reports`` except ``pipeline``/``cli``.
"""

from .run import (
    PROJECTIONS,
    REPORT_DIR,
    classification_table,
    dataset_overview,
    embed,
    make_run_report,
    plot_channel_grid,
    plot_class_balance,
    plot_classification_table,
    plot_confusion_matrix,
    plot_durations,
    plot_embedding_map,
    plot_formats,
    plot_roc_curves,
    plot_scores,
    plot_signal_statistics,
    plot_training_curves,
    read_training_logs,
    save_figure,
    signal_statistics,
)

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
