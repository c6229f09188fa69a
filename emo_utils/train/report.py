"""The cross-validation report of a run: ``cv_report.json`` and its Markdown rendering.

The report holds the majority-class baseline (the score of always predicting the most
frequent class, scikit-learn's ``DummyClassifier(strategy="most_frequent")``, under each
metric) and a warning for every model whose OOF score is at or below it.  A pseudo-label
round's report also holds its ``pseudo`` section: the parent, the clips kept per fold and
the OOF scores of every round so far side by side (:func:`pseudo_section`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..data.duplicates import describe_groups
from ..tables import markdown_table
from ..tasks import Task

__all__ = [
    "baseline_warnings",
    "cv_report",
    "majority_baseline",
    "pseudo_section",
    "report_markdown",
]


def _predicts(base: dict[str, Any]) -> str:
    """What the baseline predicts, for messages (old reports have only ``class``)."""
    if "class" in base:
        return f"always predicting {base['class']!r}"
    return str(base.get("predicts", ""))


def majority_baseline(
    targets: np.ndarray, *, task: Task, classes: Sequence[str]
) -> tuple[dict[str, float], dict[str, str]]:
    """Scores of a model that ignores the audio, under each of the task's metrics.

    Single-label: always the most frequent class; multi-label: every label at its training
    frequency (:meth:`~emo_utils.tasks.Task.baseline`).

    Parameters
    ----------
    targets : numpy.ndarray
        Encoded targets (class indices) of every clip.
    task : Task
        Scores the constant prediction (:meth:`~emo_utils.tasks.Task.score`).
    classes : sequence of str
        The task's output columns.

    Returns
    -------
    scores : dict of str to float
        Metric -> baseline score.
    info : dict of str to str
        What the baseline is (:meth:`~emo_utils.tasks.Task.baseline`): ``predicts`` and,
        single-label, ``strategy`` and ``class``; multi-label, its ``name``.
    """
    probs, info = task.baseline(np.asarray(targets), classes)
    return {name: task.score(name, targets, probs) for name in task.metrics}, info


def baseline_warnings(report: dict[str, Any]) -> list[str]:
    """One message per architecture and metric whose OOF score is at or below the baseline.

    Parameters
    ----------
    report : dict
        The content of ``cv_report.json`` (:func:`cv_report`).

    Returns
    -------
    list of str
        Empty when every model beats the majority-class baseline under every metric.
    """
    base = report.get("baseline")
    if not base:
        return []
    out = []
    for arch, r in report["architectures"].items():
        for m in report["metrics"]:
            score = r["overall"][m]
            if not score > base["scores"][m]:  # NaN counts as at or below
                out.append(
                    f"{arch}: OOF {m} {score:.4f} is at or below the "
                    f"{base.get('name', 'majority-class baseline')} "
                    f"{base['scores'][m]:.4f} ({_predicts(base)}); the model "
                    "learned nothing useful (learning rate, epochs, labels or features)"
                )
    return out


def cv_report(
    fold_results: dict[str, list[Any]],
    oofs: dict[str, pd.DataFrame],
    *,
    task: Task,
    targets: np.ndarray,
    classes: Sequence[str],
    monitor: str,
    n_folds: int,
    groups: pd.Series | None = None,
    pseudo: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of ``cv_report.json``: overall, per-fold and per-class OOF scores.

    Parameters
    ----------
    fold_results : dict
        Architecture -> its :class:`~emo_utils.train.cv.FoldResult` list.
    oofs : dict
        Architecture -> OOF frame (``filename, label, fold, <outputs>``) in ``targets`` order.
    task : Task
        Scores the probabilities (:meth:`~emo_utils.tasks.Task.score`).
    targets : numpy.ndarray
        Encoded targets of every clip.
    classes : sequence of str
    monitor : str
        The metric that chose the best epoch.
    n_folds : int
    groups : pandas.Series, optional
        Near-duplicate group of every clip, summarised when given.
    pseudo : dict, optional
        A pseudo-label round's summary (``emo_utils.train.cv``): becomes the report's
        ``pseudo`` section (:func:`pseudo_section`).
    """
    archs = {}
    columns = task.output_columns(classes)
    for arch, results in fold_results.items():
        probs = oofs[arch][columns].to_numpy()
        per_fold = pd.DataFrame([r.scores for r in results])
        archs[arch] = {
            "overall": {name: task.score(name, targets, probs) for name in task.metrics},
            "fold_mean": per_fold.mean().to_dict(),
            "fold_std": per_fold.std(ddof=0).to_dict(),
            "folds": [
                {
                    "fold": r.fold,
                    "n_train": r.n_train,
                    "n_valid": r.n_valid,
                    "best_epoch": r.best_epoch,
                    "best_score": r.best_score,
                    "epochs_run": r.epochs_run,
                    **r.scores,
                }
                for r in results
            ],
            "per_class": task.per_class(targets, probs, classes),
        }
    report = {
        "task": task.name,
        "monitor": monitor,
        "metrics": list(task.metrics),
        "classes": list(classes),
        "n_clips": len(targets),
        "n_folds": n_folds,
        "architectures": archs,
    }
    if len(targets):
        scores, info = majority_baseline(targets, task=task, classes=columns)
        report["baseline"] = {**info, "scores": scores}
    report["warnings"] = baseline_warnings(report)
    if groups is not None:
        report["groups"] = describe_groups(groups)
    if pseudo is not None:
        report["pseudo"] = pseudo_section(pseudo, {a: r["overall"] for a, r in archs.items()})
    return report


def pseudo_section(pseudo: dict[str, Any], overall: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The ``pseudo`` section of a round's report: its summary and every round's OOF scores.

    Parameters
    ----------
    pseudo : dict
        ``parent``, ``run``, ``method``, ``metric``, ``clips``, ``splits``, ``kept`` (clips
        per fold), ``threshold``, ``power``, ``architectures`` (those trained on the pseudo
        rows) and ``history``: the earlier rounds, ``[{"round", "run", "scores"}]``.
    overall : dict
        Architecture -> this round's OOF score per metric.

    Returns
    -------
    dict
        ``pseudo`` without ``history``, plus ``round`` (this round's number) and ``rounds``:
        the earlier rounds and this one, each ``{"round", "run", "scores": {arch: {metric:
        score}}}``.  Every round is scored on the same labelled clips and folds.
    """
    history = list(pseudo.get("history", []))
    number = (history[-1]["round"] + 1) if history else 1
    section = {k: v for k, v in pseudo.items() if k != "history"}
    section["round"] = number
    section["rounds"] = [
        *history,
        {"round": number, "run": pseudo.get("run", ""), "scores": overall},
    ]
    return section


def _pseudo_markdown(section: dict[str, Any], metrics: list[str]) -> list[str]:
    """The CV report's pseudo-label section: the round, its clips, round-over-round OOF."""
    metric = section.get("metric") if section.get("metric") in metrics else metrics[0]
    rounds = section["rounds"]
    archs = list(dict.fromkeys(a for r in rounds for a in r["scores"]))
    threshold = section.get("threshold")
    splits = ", ".join(f"{s} {n}" for s, n in section.get("splits", {}).items()) or "none"
    lines = [
        "",
        f"## Pseudo-labels (round {section['round']})",
        "",
        f"Soft targets of {section['clips']} clips ({splits}) from the parent run "
        f"`{section['parent']}` (its `{section['method']}` ensemble; fold k's targets come "
        "from the parent's fold-k models, combined as the parent's ensemble fitted on its "
        "OOF rows outside fold k), threshold "
        f"{'default' if threshold is None else threshold}, power {section['power']}. "
        f"Trained on them: {', '.join(section['architectures']) or 'no model'}. They join "
        "the training part of every fold and never a validation part: the scores above are "
        "on the labelled clips alone, in the parent's folds (a fold's `n_train` in "
        "`cv_report.json` counts its pseudo rows).",
        "",
        *markdown_table(
            ["fold", "pseudo rows kept"],
            [[k, n] for k, n in enumerate(section["kept"])],
        ),
        "",
        f"### Round-over-round OOF {metric}",
        "",
    ]
    rows = []
    for arch in archs:
        values = [r["scores"].get(arch, {}).get(metric) for r in rounds]
        known = len(values) > 1 and None not in values[-2:]
        change = f"{values[-1] - values[-2]:+.4f}" if known else ""
        rows.append([arch, *values, change])
    header = [f"round {r['round']}" for r in rounds]
    lines += markdown_table(["architecture", *header, "change"], rows)
    lines += ["", "Runs: " + "; ".join(f"round {r['round']} `{r['run']}`" for r in rounds) + "."]
    return lines


def report_markdown(report: dict[str, Any]) -> str:
    """``cv_report.md``: the report of :func:`cv_report` as Markdown tables."""
    metrics = report["metrics"]
    lines = [
        "# Cross-validation report",
        "",
        f"{report['n_clips']} clips, {report['n_folds']} folds, {len(report['classes'])} classes; "
        f"best epoch chosen by `{report['monitor']}`.",
        *(
            [
                "",
                f"Folds keep near-duplicate groups together: {g['n_duplicate_groups']} groups of "
                f"duplicates, {g['n_merged']} clips merged into another clip's group "
                f"({g['n_groups']} groups in all).",
            ]
            if (g := report.get("groups"))
            else []
        ),
        "",
        "## Out-of-fold scores",
        "",
        *markdown_table(
            ["architecture", *metrics],
            [[a, *(r["overall"][m] for m in metrics)] for a, r in report["architectures"].items()],
        ),
    ]
    if base := report.get("baseline"):
        lines += [
            "",
            f"Baseline ({_predicts(base)}): "
            + ", ".join(f"{m} {base['scores'][m]:.4f}" for m in metrics)
            + ".",
        ]
    if report.get("pseudo"):
        lines += _pseudo_markdown(report["pseudo"], metrics)
    if report.get("warnings"):
        lines += ["", "## Warnings", "", *(f"- **{w}**" for w in report["warnings"])]
    for arch, r in report["architectures"].items():
        fold_rows = [
            [f["fold"], f["n_valid"], f["best_epoch"], *(f[m] for m in metrics)] for f in r["folds"]
        ]
        fold_rows.append(["mean", "", "", *(r["fold_mean"][m] for m in metrics)])
        fold_rows.append(["std", "", "", *(r["fold_std"][m] for m in metrics)])
        lines += [
            "",
            f"## {arch}",
            "",
            "### Folds",
            "",
            *markdown_table(["fold", "n_valid", "best epoch", *metrics], fold_rows),
            "",
            "### Per class (out-of-fold)",
            "",
            *markdown_table(
                ["class", *(keys := list(next(iter(r["per_class"].values()), {})))],
                [[c, *(v[k] for k in keys)] for c, v in r["per_class"].items()],
            ),
        ]
    return "\n".join(lines) + "\n"
