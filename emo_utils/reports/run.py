"""The report of a trained run: every plot of a run folder, written into ``RUN/report/``.

Reads the run folder only through :class:`emo_utils.runs.RunDir` and never computes
features: the embedding map uses a finished feature cache, or is skipped with a note.

============================  ============================================================
:func:`read_training_logs`    every fold's ``log.csv`` as one long DataFrame
:func:`make_run_report`       confusion matrices, per-class tables, ROC curves, training
                              curves, score bars and the embedding map of a run, plus a
                              ``README.md`` (``python -m emo_utils report``)
============================  ============================================================
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import CacheError, ConfigError, DataError, EmoUtilsWarning, TrainingError
from ..fileio import read_csv, write_csv, write_text
from ..runs import OOF, RunDir
from ..tables import markdown_table
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

__all__ = ["REPORT_DIR", "make_run_report", "read_training_logs"]

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
    present = run.trained_architectures()
    ordered = [a for a in config.train.architectures if a in present]
    return ordered + [a for a in present if a not in ordered]


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
    from ..ensemble import ENSEMBLES, make_ensemble, resolve_method, score_ensembles

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
            metric=ec.metric,
            method=ec.method,
            weights=weights,
            stacking_model=ec.stacking_model,
            seed=config.train.seed,
        )
        table, metric = (saved[0], saved[1]) if saved is not None else (scored.table, ec.metric)
        method = resolve_method(ec.method, scored.best_method)
    ens = make_ensemble(
        method, weights=weights, stacking_model=ec.stacking_model, seed=config.train.seed
    )
    pred = ens.oof_predict(oof.probas, oof.y, oof.folds)
    if hasattr(ens, "oof_predict_proba"):  # learnt combiners: honest out-of-fold probabilities
        proba = ens.oof_predict_proba(oof.probas, oof.y, oof.folds)
    else:
        proba = ens.fit(oof.probas, oof.y).predict_proba(oof.probas)
    return method, pred, proba, table, metric


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
    classes: Sequence[str],
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
    index = {c: i for i, c in enumerate(classes)}
    labels = folds["label"].map(index).to_numpy(np.int64)
    valid = folds["fold"].to_numpy() == fold
    return plot_embedding_map(
        vectors,
        labels,
        classes,
        method=method,
        highlight=valid,
        seed=config.train.seed,
        title=f"{arch} fold {fold} pooled features, {method}",
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
    ensemble method that writes the submission):

    * ``confusion_ARCH.png``, ``confusion_ensemble_METHOD.png`` -- counts and normalised;
    * ``classes_ARCH.png`` / ``.csv``, ``classes_ensemble_METHOD.png`` / ``.csv`` --
      per-class precision, recall, F1;
    * ``roc_ARCH.png``, ``roc_ensemble_METHOD.png`` -- one-vs-rest ROC curves with AUC;
    * ``training_ARCH.png`` -- loss and metrics per epoch of every fold;
    * ``scores.png`` -- OOF score of every single model and every ensemble method;
    * ``embeddings_ARCH_fold{k}.png`` -- 2-D map of the pooled features of one fold's
      model on every training clip (solid: that fold's validation clips);
    * ``README.md`` -- the OOF score table and every image, for browsing.

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
        No ``config.json`` in ``run_dir``, or an unknown ``embedding_method``.
    """
    run = RunDir(run_dir)
    out = run.report_dir
    classes = run.read_classes()
    if not run.trained_architectures():
        raise TrainingError(f"{run.oof_dir}: no OOF predictions; train the run first")
    config = run.read_config()
    archs = _ordered_architectures(run, config)
    if embedding_method not in PROJECTIONS:
        raise ConfigError("embedding_method", embedding_method, f"known: {sorted(PROJECTIONS)}")
    written: dict[str, Path] = {}
    notes: list[str] = []

    def save(name: str, fig: Figure) -> None:
        written[name] = save_figure(fig, out / f"{name}.png")

    def evaluation(
        tag: str, title: str, y: np.ndarray, pred: np.ndarray, proba: np.ndarray
    ) -> None:
        save(f"confusion_{tag}", plot_confusion_matrix(y, pred, classes, title=title))
        table = classification_table(y, pred, classes)
        save(f"classes_{tag}", plot_classification_table(table, title=title))
        write_csv(out / f"classes_{tag}.csv", table.rename_axis("class").reset_index())
        save(f"roc_{tag}", plot_roc_curves(y, proba, classes, title=title))

    oof = run.load_oof(archs, classes)
    for arch, proba in zip(archs, oof.probas, strict=True):
        evaluation(arch, f"{arch} (out-of-fold)", oof.y, proba.argmax(axis=1), proba)
        logs = read_training_logs(run, arch=arch)
        if not logs.empty:
            save(f"training_{arch}", plot_training_curves(logs, title=f"{arch} training"))

    method, pred, proba, table, metric = _ensemble_outputs(run, config, oof)
    evaluation(f"ensemble_{method}", f"ensemble '{method}' (out-of-fold)", oof.y, pred, proba)
    save("scores", plot_scores(table, metric=metric, chosen=method))

    if embeddings:
        models = table[table["kind"] == "model"]
        arch = embedding_arch or (
            str(models.loc[models[metric].astype(float).idxmax(), "name"])
            if len(models)
            else archs[0]
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
                classes,
                train_store,
                method=embedding_method,
                device=device,
            )
            save(f"embeddings_{arch}_fold{embedding_fold}", fig)

    lines = [f"# Report of `{run.name}`", "", *_groups_note(run)]
    lines += _scores_section(table, metric, method)
    lines += notes
    lines += [f"## {name}\n\n![{name}]({path.name})\n" for name, path in written.items()]
    write_text(out / "README.md", "\n".join(lines))
    return written
