"""The demo runners: generate a demo folder, run the pipeline, score it on held-out answers.

* :func:`run_demo` -- generate the demo folder of ``config.data.task`` (once), run
  :func:`emo_utils.pipeline.run_pipeline` on it, and score the submission on the folder's
  ``test_answers.csv``;
* :func:`run_demo_rounds` -- :func:`run_demo`, then pseudo-label rounds, each from the one
  before (``train.pseudo_from``), each in its :func:`round_run_dir`, with their OOF and
  held-out scores side by side (:func:`describe_rounds`).

``python -m emo_utils demo`` calls these.  Every name here is importable from
``emo_utils.pipeline`` too.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .config import Config
from .datasets import demo_model_ids, make_demo, save_demo_model
from .errors import ConfigError
from .pipeline import PipelineResult, run_pipeline
from .runs import RunDir
from .submission import probabilities_path
from .tasks import get_task

__all__ = [
    "describe_rounds",
    "round_run_dir",
    "run_demo",
    "run_demo_rounds",
]


def _held_out_single(
    config: Config, submission: Path, answers: pd.DataFrame, classes: tuple[str, ...]
) -> dict[str, float]:
    """Every metric of a single-label submission against the answers."""
    from .metrics import METRICS

    sub = pd.read_csv(submission, dtype=str, keep_default_na=False)
    name_col, label_col = sub.columns
    truth = sub[name_col].map(dict(zip(answers.iloc[:, 0], answers.iloc[:, 1], strict=True)))
    task = get_task(config.data.task)
    return {m: float(METRICS[m](truth, sub[label_col])) for m in task.metrics}


def _held_out_multi(
    config: Config, submission: Path, answers: pd.DataFrame, classes: tuple[str, ...]
) -> dict[str, float]:
    """Every metric of a multi-label submission against the answers.

    Threshold-free metrics score the probabilities file; F1 scores the submitted labels.
    """
    from .data.labels import join_labels, split_label_list
    from .metrics import THRESHOLD_METRICS

    task = get_task(config.data.task)
    sep, empty = config.data.label_separator, config.data.empty_label

    def targets(texts: pd.Series) -> np.ndarray:
        lists = [split_label_list(t, sep) for t in texts]
        return task.encode([join_labels(x or ([empty] if empty else [])) for x in lists], classes)

    truth_by_name = dict(zip(answers.iloc[:, 0], answers.iloc[:, 1], strict=True))
    proba = pd.read_csv(probabilities_path(submission), keep_default_na=False)
    names = proba.iloc[:, 0].astype(str)
    y = targets(names.map(truth_by_name))
    p = proba[list(classes)].to_numpy(np.float64)
    sub = pd.read_csv(submission, dtype=str, keep_default_na=False)
    # A label-list submission holds the decisions; probability columns are cut at 0.5.
    decisions = targets(sub.iloc[:, 1]) if len(sub.columns) == 2 else task.decode(p)
    return {
        m: task.score(m, y, decisions if m in THRESHOLD_METRICS else p, thresholds=0.5)
        for m in task.metrics
    }


#: ``Task.label_kind`` -> scorer of a demo submission against ``test_answers.csv``.
_HELD_OUT_SCORERS = {"single": _held_out_single, "multi": _held_out_multi}


def run_demo(
    data_dir: str | os.PathLike,
    *,
    run_dir: str | os.PathLike,
    config: Config,
    n_train: int | None = None,
    n_test: int | None = None,
    submissions_dir: str | os.PathLike = "submissions",
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    wait: bool = True,
) -> PipelineResult:
    """Generate the demo folder (once), run the pipeline, score the submission on held-out answers.

    The demo of ``config.data.task`` (:data:`emo_utils.datasets.DEMO_DATASETS`): the single-label emotion
    demo, or the multi-label tagging demo.  ``n_train`` / ``n_test`` default to the
    generator's defaults.  The held-out scores of every task metric are in
    ``result.test_scores``; ``result.test_score`` is the competition metric's.
    """
    start = time.perf_counter()
    data_dir = make_demo(
        config.data.task, data_dir, n_train=n_train, n_test=n_test, progress=progress
    )
    config = _with_demo_models(config, Path(data_dir))
    result = run_pipeline(
        data_dir,
        run_dir=run_dir,
        config=config,
        submissions_dir=submissions_dir,
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        progress=progress,
        wait=wait,
    )
    answers = pd.read_csv(Path(data_dir) / "test_answers.csv", dtype=str, keep_default_na=False)
    classes = RunDir(run_dir).read_classes()
    scorer = _HELD_OUT_SCORERS[get_task(config.data.task).label_kind]
    result.test_scores = scorer(config, result.submission, answers, tuple(classes))
    result.test_score = result.test_scores[config.ensemble.metric]
    result.seconds = time.perf_counter() - start
    return result


def _with_demo_models(config: Config, data_dir: Path) -> Config:
    """Write the tiny random models the config names (``hf:emo-utils/tiny-wav2vec2``, ...).

    They go to ``train.weights_dir``, or, when that is empty, to ``DATA/models``, whose
    absolute path becomes the run's ``train.weights_dir``
    (:mod:`emo_utils.datasets.tiny_models`).
    """
    ids = demo_model_ids(config.train.architectures)
    if not ids:
        return config
    weights_dir = config.train.weights_dir or os.fspath((data_dir / "models").resolve())
    for model_id in ids:
        save_demo_model(model_id, weights_dir)
    return config.override({"train.weights_dir": weights_dir})


def round_run_dir(run_dir: str | os.PathLike, number: int) -> Path:
    """The run folder of round ``number`` of :func:`run_demo_rounds`.

    >>> round_run_dir("runs/demo", 0).as_posix(), round_run_dir("runs/demo", 2).as_posix()
    ('runs/demo', 'runs/demo_round2')
    """
    run_dir = Path(run_dir)
    return run_dir if number == 0 else run_dir.with_name(f"{run_dir.name}_round{number}")


def run_demo_rounds(
    data_dir: str | os.PathLike,
    *,
    run_dir: str | os.PathLike,
    config: Config,
    rounds: int = 2,
    n_train: int | None = None,
    n_test: int | None = None,
    submissions_dir: str | os.PathLike = "submissions",
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    wait: bool = True,
) -> list[PipelineResult]:
    """:func:`run_demo`, then ``rounds - 1`` pseudo-label rounds, each from the one before.

    Round 0 runs in ``run_dir`` with ``config``; round ``r`` in :func:`round_run_dir`
    (``RUN_round{r}``) with ``train.pseudo_from`` set to round ``r - 1``'s folder
    (absolute).  Every round is trained, predicted and scored on the held-out answers, on
    the same folds; :func:`describe_rounds` puts them side by side.
    """
    if rounds < 1:
        raise ConfigError("--rounds", rounds, "must be an integer >= 1")
    results: list[PipelineResult] = []
    for number in range(rounds):
        cfg = config
        if number:
            parent = round_run_dir(run_dir, number - 1).resolve()
            cfg = config.override({"train.pseudo_from": os.fspath(parent)})
        results.append(
            run_demo(
                data_dir,
                run_dir=round_run_dir(run_dir, number),
                config=cfg,
                n_train=n_train,
                n_test=n_test,
                submissions_dir=submissions_dir,
                cache_dir=cache_dir,
                n_jobs=n_jobs,
                progress=progress,
                wait=wait,
            )
        )
    return results


def describe_rounds(results: list[PipelineResult]) -> str:
    """A Markdown table: per round, every model's OOF score, the submission's OOF and held-out.

    Columns: the round, its run folder, the OOF score (the competition metric) of every
    architecture, the OOF score of the ensemble method that wrote the submission (and its
    name), and the submission's held-out score.  Every round is scored on the same
    labelled clips and folds.
    """
    from .tables import markdown_table

    metric = results[0].metric if results else "score"
    archs = list(dict.fromkeys(a for r in results for a in r.cv_scores))
    rows = []
    for number, r in enumerate(results):
        method = r.submission_method
        rows.append(
            [
                number,
                os.fspath(r.run_dir) if r.run_dir else "",
                *(r.cv_scores.get(a) for a in archs),
                f"{r.ensemble_scores[method]:.4f} ({method})"
                if method in r.ensemble_scores
                else "",
                r.test_score,
            ]
        )
    header = ["round", "run", *(f"OOF {a}" for a in archs), "OOF submission", "held-out"]
    return "\n".join([f"round-over-round ({metric}):", *markdown_table(header, rows)])
