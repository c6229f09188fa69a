"""The report of a trained run: every plot of a run folder, written into ``RUN/report/``.

Reads the run folder only through :class:`emo_utils.runs.RunDir` and never computes
features: the embedding map uses a finished feature cache, or is skipped with a note.

============================  ============================================================
:func:`read_training_logs`    every fold's ``log.csv`` as one long DataFrame
:func:`make_run_report`       the evaluation plots of every model and of the submission's
                              ensemble, training curves, score bars and the embedding map
                              of a run, plus a ``README.md`` (``python -m emo_utils report``)
============================  ============================================================

What the evaluation plots are depends on the task's label kind
(:attr:`emo_utils.tasks.Task.label_kind`), looked up in :data:`REPORT_KINDS`:
``"single"`` (one class per clip: confusion matrices, per-class tables, ROC curves, the
embedding map coloured by class) and ``"multi"`` (a set of labels per clip: per-label
tables, precision-recall and F1-threshold curves and per-label errors at the OOF-tuned
thresholds of ``thresholds.json``, label co-occurrence, the embedding map coloured by label
set).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import (
    CacheError,
    CheckpointError,
    ConfigError,
    DataError,
    EmoUtilsWarning,
    TrainingError,
)
from ..fileio import read_csv, write_csv, write_text
from ..models import resolve_architecture
from ..runs import OOF, RunDir, arch_file_name
from ..tables import markdown_table
from ..tasks import Task, get_task
from .multilabel import (
    label_set_codes,
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

if TYPE_CHECKING:
    import torch

    from ..config import Config
    from ..data.competition import Competition
    from ..features import FeatureStore

__all__ = ["REPORT_DIR", "REPORT_KINDS", "make_run_report", "read_training_logs"]

#: Name of the sub-folder of the run folder that :func:`make_run_report` writes into
#: (:attr:`emo_utils.runs.RunDir.report_dir` owns it).
REPORT_DIR: str = RunDir(".").report_dir.name


# ---------------------------------------------------------------------------- training logs
def read_training_logs(run_dir: str | os.PathLike, *, arch: str | None = None) -> pd.DataFrame:
    """Every fold's ``log.csv`` (fastai ``CSVLogger``) as one table.

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run folder.
    arch : str, optional
        Only this architecture.

    Returns
    -------
    pandas.DataFrame
        Columns ``arch, fold, epoch, train_loss, valid_loss``, the metric columns of the
        logs, and ``seconds`` (fastai's ``time`` column ``mm:ss`` converted).  Empty when no
        log exists yet.  Unreadable logs are skipped with a warning.
    """
    frames = []
    for name, fold, path in RunDir(run_dir).fold_logs(arch):
        try:
            df = read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            warnings.warn(f"{path}: skipped, cannot be read ({exc})", EmoUtilsWarning, stacklevel=2)
            continue
        if "epoch" not in df.columns:
            warnings.warn(f"{path}: skipped, no 'epoch' column", EmoUtilsWarning, stacklevel=2)
            continue
        if "time" in df.columns:
            df["seconds"] = df.pop("time").map(_seconds)
        df.insert(0, "fold", fold)
        df.insert(0, "arch", name)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["arch", "fold", "epoch", "train_loss", "valid_loss"])
    return pd.concat(frames, ignore_index=True)


def _seconds(value: Any) -> float:
    """Seconds of a fastai ``mm:ss`` (or ``hh:mm:ss``) duration; NaN when unparsable."""
    try:
        parts = [float(p) for p in str(value).split(":")]
    except ValueError:
        return float("nan")
    total = 0.0
    for p in parts:
        total = 60 * total + p
    return total


# ---------------------------------------------------------------------------- run report
def _ordered_architectures(run: RunDir, config: Config) -> list[str]:
    """Trained architectures, in the config's order, then any others by name."""
    present = run.trained_architectures()  # file names: arch_file_name of the names
    ordered = [a for a in config.train.architectures if arch_file_name(a) in present]
    named = {arch_file_name(a) for a in ordered}
    return ordered + [a for a in present if a not in named]


def _report_scores(run: RunDir) -> tuple[pd.DataFrame, str, str] | None:
    """``(rows name/kind/<metrics>, metric, submission method)`` of ``ensemble_report.json``.

    Reads the ``{"metric": ..., "submission_method": ..., "rows": [...]}`` report that
    :func:`emo_utils.ensemble.evaluate_ensembles` writes; ``None`` when there is none or
    it does not have that structure (the scores are then recomputed from the OOF files).
    """
    report = run.read_ensemble_report()
    if report is None:
        return None
    path = run.ensemble_report_file(".json")
    rows = report.get("rows")
    metric = report.get("metric")
    table = pd.DataFrame(rows) if isinstance(rows, list) and rows else None
    if table is None or not isinstance(metric, str) or not {"name", "kind", metric} <= set(table):
        warnings.warn(
            f"{path}: unrecognised structure, scores recomputed", EmoUtilsWarning, stacklevel=3
        )
        return None
    return table, metric, str(report.get("submission_method") or "")


def _ensemble_outputs(
    run: RunDir, config: Config, oof: OOF
) -> tuple[str, np.ndarray, np.ndarray, pd.DataFrame, str]:
    """The submission method's OOF labels and probabilities, and every model's and method's score.

    Returns ``(method, predicted labels, probabilities, score table, metric)``; the
    scores come from ``ensemble_report.json`` when it is there, else
    :func:`emo_utils.ensemble.score_ensembles` computes them.
    """
    from ..ensemble import (
        ENSEMBLES,
        ensemble_options,
        make_ensemble,
        resolve_method,
        score_ensembles,
    )

    ec = config.ensemble
    archs = oof.architectures
    weights = list(ec.weights) if ec.weights and len(ec.weights) == len(archs) else None
    saved = _report_scores(run)
    if saved is not None and saved[2] in ENSEMBLES:
        table, metric, method = saved
    else:
        scored = score_ensembles(
            oof.probas,
            oof.y,
            model_names=list(archs),
            folds=oof.folds,
            method=ec.method,
            weights=weights,
            stacking_model=ec.stacking_model,
            seed=config.train.seed,
            **ensemble_options(config),
        )
        table, metric = (saved[0], saved[1]) if saved is not None else (scored.table, ec.metric)
        method = resolve_method(ec.method, scored.best_method)
    ens = make_ensemble(
        method,
        weights=weights,
        stacking_model=ec.stacking_model,
        seed=config.train.seed,
        **ensemble_options(config),
    )
    pred = ens.oof_predict(oof.probas, oof.y, oof.folds)
    if hasattr(ens, "oof_predict_proba"):  # learnt combiners: honest out-of-fold probabilities
        proba = ens.oof_predict_proba(oof.probas, oof.y, oof.folds)
    else:
        proba = ens.fit(oof.probas, oof.y).predict_proba(oof.probas)
    return method, pred, proba, table, metric


def _multilabel_ensemble_outputs(
    run: RunDir, config: Config, task: Task, oof: OOF
) -> tuple[str, np.ndarray, pd.DataFrame, str]:
    """The submission method's honest OOF scores, and every model's and method's score.

    Returns ``(method, scores (n, n_labels), score table, metric)``; the scores come from
    ``ensemble_report.json`` when it is there, else
    :func:`emo_utils.ensemble.score_multilabel_ensembles` computes them.  The method's OOF
    scores are :meth:`oof_predict_proba` (``mode``: vote shares with each model voting at
    cross-fitted thresholds; ``stacking``: cross-validated over the folds).
    """
    from ..ensemble import (
        MULTILABEL_ENSEMBLES,
        ensemble_options,
        make_multilabel_ensemble,
        score_multilabel_ensembles,
    )

    ec = config.ensemble
    archs = oof.architectures
    options: dict[str, Any] = {
        "weights": list(ec.weights) if ec.weights and len(ec.weights) == len(archs) else None,
        "k": ec.vote_k or None,
        "threshold_mode": ec.threshold,
        "min_positives": ec.min_positives,
        "seed": config.train.seed,
        **ensemble_options(config),
    }
    saved = _report_scores(run)
    if saved is not None and saved[2] in MULTILABEL_ENSEMBLES:
        table, metric, method = saved
    else:
        scored, _ = score_multilabel_ensembles(
            oof.probas,
            oof.y,
            model_names=list(archs),
            folds=oof.folds,
            method=ec.method,
            metrics=task.metrics,
            methods=task.ensembles,
            **options,
        )
        table, metric = (saved[0], saved[1]) if saved is not None else (scored.table, ec.metric)
        method = scored.method
    ens = make_multilabel_ensemble(method, **options)
    return method, ens.oof_predict_proba(oof.probas, oof.y, oof.folds), table, metric


def _training_store(
    config: Config,
    store: FeatureStore | None,
    competition: Competition | None,
    cache_dir: str | os.PathLike | None,
) -> tuple[FeatureStore | None, str]:
    """The training images for the embedding map, or ``None`` and why not (never computes)."""
    if store is not None:
        return store, ""
    if competition is None:
        return None, (
            "no feature cache given (`store=` or `competition=` in Python, "
            "`--data` on the command line)"
        )
    from ..features import open_cache

    try:
        return open_cache(competition, "train", config=config, cache_dir=cache_dir), ""
    except CacheError as exc:
        return None, f"no finished feature cache of the training split ({exc})"


def _embedding_report(
    run: RunDir,
    config: Config,
    arch: str,
    fold: int,
    kind: _KindReport,
    store: FeatureStore,
    *,
    method: str,
    device: str | torch.device | None,
) -> Figure:
    from ..data.folds import read_folds
    from ..infer.embed import embed
    from ..models import load_fold_model

    folds = read_folds(run.folds_file)
    row_of = {name: i for i, name in enumerate(store.filenames)}
    keep = [
        i for i, name in enumerate(folds["filename"]) if name in row_of and store.ok[row_of[name]]
    ]
    if len(keep) < 3:
        raise DataError(f"{run.folds_file}: fewer than 3 clips found in the feature store")
    folds = folds.iloc[keep].reset_index(drop=True)
    rows = [row_of[name] for name in folds["filename"]]
    model = load_fold_model(run, arch=arch, fold=fold, device=device)
    # A few hundred windows at a time: the whole training set may not fit in memory.
    vectors = np.concatenate(
        [
            embed(model, store.stack(rows[lo : lo + 256], config.audio.crop), device=device)
            for lo in range(0, len(rows), 256)
        ]
    )
    labels, names = kind.colours(folds["label"])
    valid = folds["fold"].to_numpy() == fold
    return plot_embedding_map(
        vectors,
        labels,
        names,
        method=method,
        highlight=valid,
        seed=config.train.seed,
        title=f"{arch} fold {fold} pooled features, {method}{kind.embedding_note}",
    )


def _groups_note(run: RunDir) -> list[str]:
    """A sentence on the near-duplicate groups of ``folds.csv``, when it has groups."""
    if not run.folds_file.is_file():
        return []
    from ..data.duplicates import describe_groups
    from ..data.folds import read_folds

    folds = read_folds(run.folds_file)
    if "group" not in folds.columns:
        return []
    g = describe_groups(folds["group"].tolist())
    return [
        f"Folds keep near-duplicates together: {g['n_clips']} clips in {g['n_groups']} "
        f"groups; {g['n_duplicate_groups']} group(s) of near-duplicates, "
        f"{g['n_merged']} clip(s) merged into another clip's group.",
        "",
    ]


def _scores_section(table: pd.DataFrame, metric: str, method: str) -> list[str]:
    """The score table as Markdown: one row per model and ensemble method, best first."""
    columns = [
        "name",
        "kind",
        metric,
        *(c for c in table.columns if c not in ("name", "kind", metric)),
    ]
    ordered = table[columns].sort_values(metric, ascending=False, kind="stable")
    rows = [
        [None if isinstance(v, float) and np.isnan(v) else v for v in row]
        for row in ordered.astype(object).itertuples(index=False)
    ]
    return [
        "## Out-of-fold scores",
        "",
        *markdown_table(columns, rows),
        "",
        f"The submission is written by the ensemble method **{method}**.",
        "",
    ]


# ---------------------------------------------------------------------------- label kinds
@dataclass
class _Report:
    """What the evaluation part of a report needs: the run, its settings, the figures so far."""

    run: RunDir
    config: Config
    task: Task
    classes: tuple[str, ...]
    archs: list[str]
    written: dict[str, Path] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        """``RUN/report/``."""
        return self.run.report_dir

    def save(self, name: str, fig: Figure) -> None:
        """Write ``fig`` as ``RUN/report/NAME.png`` (:func:`arch_file_name`) and list it."""
        self.written[name] = save_figure(fig, self.out / f"{arch_file_name(name)}.png")


class _KindReport:
    """The evaluation figures of one label kind (an entry of :data:`REPORT_KINDS`).

    :func:`make_run_report` calls, in order: :meth:`load_oof`, :meth:`labels`,
    :meth:`model` per architecture, :meth:`ensemble`, :meth:`colours` (embedding map) and
    :meth:`readme`.
    """

    #: Appended to the embedding map's title.
    embedding_note: ClassVar[str] = ""

    def __init__(self, report: _Report) -> None:
        self.report = report

    def load_oof(self) -> OOF:
        """Every architecture's OOF predictions, with the targets the plots compare."""
        raise NotImplementedError

    def labels(self, oof: OOF) -> None:
        """Figures of the true labels alone (none by default)."""

    def model(self, arch: str, proba: np.ndarray, oof: OOF) -> None:
        """Figures of one architecture's OOF probabilities."""
        raise NotImplementedError

    def ensemble(self, oof: OOF) -> tuple[str, pd.DataFrame, str]:
        """Figures of the submission's ensemble; returns ``(method, score table, metric)``."""
        raise NotImplementedError

    def colours(self, labels: pd.Series) -> tuple[np.ndarray, list[str]]:
        """Colour index of every ``folds.csv`` label and the colour names of the map."""
        raise NotImplementedError

    def readme(self) -> list[str]:
        """Markdown lines after the score table (none by default)."""
        return []


class _SingleLabelReport(_KindReport):
    """One class per clip: confusion matrices, per-class tables and ROC curves."""

    def load_oof(self) -> OOF:
        r = self.report
        return r.run.load_oof(r.archs, r.classes)

    def _evaluation(
        self, tag: str, title: str, y: np.ndarray, pred: np.ndarray, proba: np.ndarray
    ) -> None:
        r, classes = self.report, self.report.classes
        r.save(f"confusion_{tag}", plot_confusion_matrix(y, pred, classes, title=title))
        table = classification_table(y, pred, classes)
        r.save(f"classes_{tag}", plot_classification_table(table, title=title))
        write_csv(
            r.out / f"classes_{arch_file_name(tag)}.csv", table.rename_axis("class").reset_index()
        )
        r.save(f"roc_{tag}", plot_roc_curves(y, proba, classes, title=title))

    def model(self, arch: str, proba: np.ndarray, oof: OOF) -> None:
        self._evaluation(arch, f"{arch} (out-of-fold)", oof.y, proba.argmax(axis=1), proba)

    def ensemble(self, oof: OOF) -> tuple[str, pd.DataFrame, str]:
        r = self.report
        method, pred, proba, table, metric = _ensemble_outputs(r.run, r.config, oof)
        self._evaluation(
            f"ensemble_{method}", f"ensemble '{method}' (out-of-fold)", oof.y, pred, proba
        )
        return method, table, metric

    def colours(self, labels: pd.Series) -> tuple[np.ndarray, list[str]]:
        index = {c: i for i, c in enumerate(self.report.classes)}
        return labels.map(index).to_numpy(np.int64), list(self.report.classes)


#: Where the decision thresholds of a model or method came from (README wording).
_FROM_FILE = "thresholds.json"
_DEFAULT = 0.5


def _read_thresholds(run: RunDir, classes: Sequence[str]) -> tuple[dict[str, np.ndarray], str]:
    """``thresholds.json`` (name -> per-label thresholds), or ``{}`` and why not."""
    path = run.thresholds_file
    if not path.is_file():
        return {}, (
            f"`{path.name}` is absent (the ensemble stage writes it: `python -m emo_utils "
            "predict`, or `emo_utils.ensemble.evaluate_ensembles`)"
        )
    try:
        return run.read_thresholds(classes), ""
    except CheckpointError as exc:
        warnings.warn(f"{exc}; labels decided at 0.5", EmoUtilsWarning, stacklevel=4)
        return {}, f"`{path.name}` cannot be used ({exc})"


class _MultiLabelReport(_KindReport):
    """A set of labels per clip: per-label scores at the OOF-tuned thresholds.

    The thresholds of every model and method are the ones ``thresholds.json`` holds (tuned
    on all OOF rows by the ensemble stage, applied to the test predictions), 0.5 where the
    file or the name is missing; the README says which.
    """

    embedding_note = ", by label set"

    def __init__(self, report: _Report) -> None:
        super().__init__(report)
        self.thresholds, self.missing = _read_thresholds(report.run, report.classes)
        #: Display name -> (thresholds, source) of every evaluated model and method.
        self.used: dict[str, tuple[np.ndarray, str]] = {}
        self.method = ""
        self.method_table: pd.DataFrame | None = None

    def load_oof(self) -> OOF:
        r = self.report
        return r.run.load_oof(r.archs, r.classes, encode=r.task.encode)

    def labels(self, oof: OOF) -> None:
        self.report.save(
            "label_cooccurrence",
            plot_label_cooccurrence(
                oof.y,
                self.report.classes,
                title=f"training labels: co-occurrence ({len(oof.y)} clips; diagonal: "
                "clips per label)",
            ),
        )

    def _thresholds_of(self, name: str) -> tuple[np.ndarray, str]:
        if name in self.thresholds:
            return self.thresholds[name], _FROM_FILE
        reason = "no thresholds.json" if self.missing else "not in thresholds.json"
        return np.full(len(self.report.classes), _DEFAULT), f"{_DEFAULT} ({reason})"

    def _evaluation(
        self, tag: str, name: str, title: str, y: np.ndarray, scores: np.ndarray
    ) -> pd.DataFrame:
        r, classes = self.report, self.report.classes
        t, source = self._thresholds_of(name)
        self.used[name] = (t, source)
        table = per_label_table(y, scores, t, classes)
        r.save(f"labels_{tag}", plot_per_label_table(table, title=title))
        write_csv(r.out / f"labels_{arch_file_name(tag)}.csv", table.reset_index())
        r.save(f"pr_{tag}", plot_pr_curves(y, scores, t, classes, title=title))
        r.save(f"f1_threshold_{tag}", plot_threshold_f1(y, scores, t, classes, title=title))
        r.save(
            f"label_errors_{tag}",
            plot_label_confusion(
                y, scores, t, classes, title=f"{title}: per-label outcomes at the thresholds"
            ),
        )
        return table

    def model(self, arch: str, proba: np.ndarray, oof: OOF) -> None:
        self._evaluation(arch, arch, f"{arch} (out-of-fold)", oof.y, proba)

    def ensemble(self, oof: OOF) -> tuple[str, pd.DataFrame, str]:
        r = self.report
        method, scores, table, metric = _multilabel_ensemble_outputs(r.run, r.config, r.task, oof)
        self.method = method
        self.method_table = self._evaluation(
            f"ensemble_{method}", method, f"ensemble '{method}' (out-of-fold)", oof.y, scores
        )
        return method, table, metric

    def colours(self, labels: pd.Series) -> tuple[np.ndarray, list[str]]:
        classes = self.report.classes
        return label_set_codes(self.report.task.encode(labels.tolist(), classes), classes)

    def readme(self) -> list[str]:
        classes = list(self.report.classes)
        ec = self.report.config.ensemble
        if self.missing:
            source = f"{self.missing}: every label is decided at {_DEFAULT}."
        else:
            source = (
                f"From `{_FROM_FILE}`: tuned on all out-of-fold rows by the ensemble stage "
                f"(`ensemble.threshold` {ec.threshold}, labels with fewer than "
                f"{ec.min_positives} positive clips at the global threshold); the test "
                "predictions are cut at the same thresholds.  The per-label tables score the "
                "rows the thresholds were tuned on, so their F1 is optimistic; the F1 of the "
                "score table above uses cross-fitted thresholds."
            )
            if "mode" in self.used:
                source += (
                    "  `mode` decides on the vote share at k / n (not tuned), each model "
                    "voting at its own cross-fitted thresholds, so its table is honest."
                )
        rows = [[name, src, *t.tolist()] for name, (t, src) in self.used.items()]
        lines = [
            "## Decision thresholds",
            "",
            f"Every per-label table, operating point and FP/FN count uses these. {source}",
            "",
            *markdown_table(["name", "source", *classes], rows),
            "",
        ]
        if self.method_table is not None:
            table = self.method_table.reset_index()
            cells = [
                [None if isinstance(v, float) and np.isnan(v) else v for v in row]
                for row in table.astype(object).itertuples(index=False)
            ]
            lines += [
                f"## Per-label scores of the submission (ensemble **{self.method}**, out-of-fold)",
                "",
                *markdown_table(list(table.columns), cells),
                "",
            ]
        return lines


#: ``Task.label_kind`` -> the evaluation part of the run report.
REPORT_KINDS: dict[str, Callable[[_Report], _KindReport]] = {
    "single": _SingleLabelReport,
    "multi": _MultiLabelReport,
}


def make_run_report(
    run_dir: str | os.PathLike,
    *,
    store: FeatureStore | None = None,
    competition: Competition | None = None,
    cache_dir: str | os.PathLike | None = None,
    embeddings: bool = True,
    embedding_method: str = "pca",
    embedding_arch: str | None = None,
    embedding_fold: int = 0,
    device: str | torch.device | None = None,
) -> dict[str, Path]:
    """Write every plot of a run folder as PNG into ``RUN/report/``, with a ``README.md``.

    Only reads: ``classes.json``, ``config.json``, ``oof/ARCH.csv``, the folds' ``log.csv``,
    ``ensemble_report.json`` (scores are recomputed from the OOF files when it is absent)
    and, for the embedding map, ``folds.csv``, a fold's ``model.pth`` and a finished
    feature cache of the training split.

    Files written (``ARCH`` for every architecture with OOF predictions, ``METHOD`` the
    ensemble method that writes the submission, ``TAG`` either ``ARCH`` or
    ``ensemble_METHOD``).  Single-label runs (one class per clip):

    * ``confusion_TAG.png`` -- counts and normalised confusion matrices;
    * ``classes_TAG.png`` / ``.csv`` -- per-class precision, recall, F1;
    * ``roc_TAG.png`` -- one-vs-rest ROC curves with AUC.

    Multi-label runs (a set of labels per clip, ``Task.label_kind == "multi"``), every
    decision at the OOF-tuned thresholds of ``thresholds.json`` of that model or method
    (0.5 when the file or the name is missing; ``README.md`` says which):

    * ``label_cooccurrence.png`` -- clips holding each pair of training labels;
    * ``labels_TAG.png`` / ``.csv`` -- per-label precision, recall, F1, AP, support, FP,
      FN and threshold (:func:`emo_utils.reports.multilabel.per_label_table`);
    * ``pr_TAG.png`` -- precision-recall curve per label, thresholds marked;
    * ``f1_threshold_TAG.png`` -- F1 against the threshold per label;
    * ``label_errors_TAG.png`` -- TP / FN and TN / FP counts per label.

    Both kinds:

    * ``training_ARCH.png`` -- loss and metrics per epoch of every fold;
    * ``scores.png`` -- OOF score of every single model and every ensemble method;
    * ``embeddings_ARCH_fold{k}.png`` -- 2-D map of the pooled features of one fold's
      model on every training clip (solid: that fold's validation clips), coloured by
      class, or by label set (:func:`emo_utils.reports.multilabel.label_set_names`);
    * ``README.md`` -- the OOF score table and every image, for browsing; multi-label:
      also the thresholds used and the per-label table of the submission's method.

    Parameters
    ----------
    run_dir : str or os.PathLike
        A run folder written by :func:`emo_utils.train.cv.train_cv`.
    store : FeatureStore, optional
        Training images for the embedding map.  Without it, the finished feature cache of
        ``competition`` is opened (:func:`emo_utils.features.open_cache`; nothing is
        computed).  Without either, or without a finished cache, the map is skipped with a
        warning and a note in ``README.md``.
    competition : Competition, optional
        See ``store``.
    cache_dir : path-like, optional
        Feature cache folder of ``competition`` (default its ``.emo_cache``).
    embeddings : bool, default True
        Draw the embedding map.
    embedding_method : {"pca", "tsne"}
        Projection of the map (:data:`emo_utils.reports.plots.PROJECTIONS`).
    embedding_arch : str, optional
        Architecture of the map (default: the best single model on OOF).
    embedding_fold : int, default 0
        Fold whose model draws the map.
    device : str or torch.device, optional
        Where the model runs (default: the GPU when there is one).

    Returns
    -------
    dict of str to pathlib.Path
        Name (file stem) -> written PNG file.

    Raises
    ------
    TrainingError
        No ``classes.json`` or no OOF predictions in ``run_dir``.
    ConfigError
        No ``config.json`` in ``run_dir``, an unknown ``embedding_method``, or a task whose
        label kind has no entry in :data:`REPORT_KINDS`.
    """
    run = RunDir(run_dir)
    classes = run.read_classes()
    if not run.trained_architectures():
        raise TrainingError(f"{run.oof_dir}: no OOF predictions; train the run first")
    config = run.read_config()
    archs = _ordered_architectures(run, config)
    if embedding_method not in PROJECTIONS:
        raise ConfigError("embedding_method", embedding_method, f"known: {sorted(PROJECTIONS)}")
    task = get_task(config.data.task)
    if task.label_kind not in REPORT_KINDS:
        raise ConfigError(
            "data.task",
            config.data.task,
            f"no run report for label kind {task.label_kind!r}; known: {sorted(REPORT_KINDS)}",
        )
    report = _Report(run=run, config=config, task=task, classes=classes, archs=archs)
    kind = REPORT_KINDS[task.label_kind](report)
    save, written = report.save, report.written
    notes: list[str] = []

    oof = kind.load_oof()
    kind.labels(oof)
    for arch, proba in zip(archs, oof.probas, strict=True):
        kind.model(arch, proba, oof)
        logs = read_training_logs(run, arch=arch)
        if not logs.empty:
            save(f"training_{arch}", plot_training_curves(logs, title=f"{arch} training"))

    method, table, metric = kind.ensemble(oof)
    save("scores", plot_scores(table, metric=metric, chosen=method))

    # The map shows a network's pooled features: only image models have them.
    image_archs = [a for a in archs if resolve_architecture(a)[0].input == "image"]
    if embeddings and not image_archs:
        notes += ["Embedding map skipped: the run has no image model.", ""]
    elif embeddings:
        models = table[(table["kind"] == "model") & table["name"].isin(image_archs)]
        arch = embedding_arch or (
            str(models.loc[models[metric].astype(float).idxmax(), "name"])
            if len(models)
            else image_archs[0]
        )
        train_store, reason = _training_store(config, store, competition, cache_dir)
        if train_store is None:
            warnings.warn(
                f"{run.path}: embedding map skipped ({reason})", EmoUtilsWarning, stacklevel=2
            )
            notes += [f"Embedding map skipped: {reason}.", ""]
        else:
            fig = _embedding_report(
                run,
                config,
                arch,
                embedding_fold,
                kind,
                train_store,
                method=embedding_method,
                device=device,
            )
            save(f"embeddings_{arch}_fold{embedding_fold}", fig)

    lines = [f"# Report of `{run.name}`", "", *_groups_note(run)]
    lines += _scores_section(table, metric, method)
    lines += kind.readme()
    lines += notes
    lines += [f"## {name}\n\n![{name}]({path.name})\n" for name, path in written.items()]
    write_text(report.out / "README.md", "\n".join(lines))
    return written
