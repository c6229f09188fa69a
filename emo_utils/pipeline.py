"""All stages in order: what the notebooks and ``python -m emo_utils run`` call.

Each stage function is resumable: run it again with the same arguments and it reuses what
is finished (cache chunks, folds, finished folds) and redoes only what is missing.

* :func:`preprocess` -- feature cache of both splits;
* :func:`train` -- cross-validated training (stops before any training if training files
  failed, unless ``data.skip_bad_train``);
* :func:`predict` -- test probabilities, OOF comparison of ensembles, submission CSV;
* :func:`run_pipeline` -- the three above, plus ``summary.json``;
* :func:`run_demo` -- generate the demo folder, run the pipeline, score on held-out answers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .features.store import FeatureStore, build_cache, require_valid_training
from .data.competition import Competition, load_competition
from .config import Config, check_run_config, load_run_config
from .errors import EmoUtilsWarning
from .fileio import write_json

__all__ = [
    "PipelineResult",
    "load_run_config",
    "predict",
    "preprocess",
    "run_demo",
    "run_pipeline",
    "train",
]


@dataclass
class PipelineResult:
    """What a stage produced, for printing and for notebooks.

    Attributes
    ----------
    run_dir : pathlib.Path or None
    cv_scores : dict
        Architecture -> OOF score (the configured metric).
    ensemble_scores : dict
        Method -> OOF score.
    submission : pathlib.Path or None
    test_score : float or None
        Score on held-out answers (demo only).
    summary : dict
        Counts of skips, warnings and fallbacks by reason.
    seconds : float
    """

    run_dir: Path | None = None
    cv_scores: dict[str, float] = field(default_factory=dict)
    ensemble_scores: dict[str, float] = field(default_factory=dict)
    submission: Path | None = None
    test_score: float | None = None
    metric: str = "accuracy"
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    lines: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """Human-readable multi-line report."""
        out = list(self.lines)
        for arch, score in self.cv_scores.items():
            out.append(f"CV {self.metric} {arch:<24s} {score:.4f}")
        for method, score in self.ensemble_scores.items():
            out.append(f"OOF {self.metric} ensemble {method:<15s} {score:.4f}")
        if self.test_score is not None:
            out.append(f"held-out test {self.metric} of the submission: {self.test_score:.4f}")
        if self.submission is not None:
            out.append(f"submission: {self.submission}")
        counts = self.summary.get("counts", {})
        if counts:
            out.append("end-of-run report (skips, warnings, fallbacks by reason):")
            out.extend(f"  {n:5d}  {reason}" for reason, n in sorted(counts.items()))
        if self.run_dir is not None:
            out.append(f"run folder: {self.run_dir}")
        out.append(f"took {self.seconds:.1f} s")
        return "\n".join(out)


@dataclass
class _Collector:
    """Counts problems by reason across stages (the end-of-run report)."""

    counts: Counter = field(default_factory=Counter)
    items: list[dict[str, str]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def add(self, kind: str, file: str, reason: str) -> None:
        self.counts[f"{kind}: {_generic(reason)}"] += 1
        self.items.append({"kind": kind, "file": file, "reason": reason})

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Record the warnings of a stage; show and count them when it ends, even on error."""
        caught: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", EmoUtilsWarning)
                yield
        finally:
            self.add_warnings(caught)

    def add_warnings(self, caught: list[warnings.WarningMessage]) -> None:
        for w in caught:
            # Re-emit so the user still sees them; count the emo_utils ones, each message
            # once (train and predict both read the CSVs and warn about the same rows).
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
            if issubclass(w.category, EmoUtilsWarning) and str(w.message) not in self.seen:
                text = str(w.message)
                self.seen.add(text)
                file, _, reason = text.partition(": ")
                self.add("warning", file if reason else "", _generic(reason or text))

    def as_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "items": self.items}


_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w.])")


def _generic(reason: str) -> str:
    """Reason with its stand-alone numbers replaced by ``#``, so equal problems count together.

    >>> _generic("2 NaN/inf sample(s), first at 0.250 s")
    '# NaN/inf sample(s), first at # s'
    """
    return _NUMBER.sub("#", reason)[:160]


def _cache_dir(data_dir: Path, cache_dir: str | os.PathLike | None) -> Path:
    return Path(cache_dir) if cache_dir is not None else Path(data_dir) / ".emo_cache"


def _stores(
    comp: Competition,
    cfg: Config,
    cache_dir: Path,
    n_jobs: int,
    progress: bool,
    splits: tuple[str, ...],
) -> dict[str, FeatureStore]:
    return {
        split: build_cache(comp, split, cfg, cache_dir, n_jobs=n_jobs, progress=progress)
        for split in splits
    }


def preprocess(
    data_dir: str | os.PathLike,
    config: Config,
    *,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
) -> PipelineResult:
    """Compute or reuse the feature cache of the train and test splits."""
    start = time.perf_counter()
    collector = _Collector()
    with collector.recording():
        comp = load_competition(data_dir, config.data)
        stores = _stores(
            comp, config, _cache_dir(Path(data_dir), cache_dir), n_jobs, progress, ("train", "test")
        )
    lines = []
    for split, store in stores.items():
        failed = store.failures()
        lines.append(
            f"{split}: {len(store)} clips, {len(failed)} failed, image {store.image_shape}"
        )
        for name, reason in failed:
            collector.add(f"{split} failed", name, reason)
    return PipelineResult(
        summary=collector.as_dict(),
        seconds=time.perf_counter() - start,
        lines=lines,
        metric=config.ensemble.metric,
    )


def _training_subset(
    comp: Competition, store: FeatureStore, config: Config, collector: _Collector
) -> tuple[Competition, FeatureStore]:
    """Stop on failed training files, or drop them (``data.skip_bad_train``) and count them."""
    require_valid_training(store, skip_bad=config.data.skip_bad_train)
    ok = store.ok
    if ok.all():
        return comp, store
    for name, reason in store.failures():
        collector.add("train skipped", name, reason)
    rows = np.flatnonzero(ok)
    train = comp.train.iloc[rows].reset_index(drop=True)
    return dataclasses.replace(comp, train=train), store.select(rows)


def train(
    data_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    config: Config,
    *,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    _collector: _Collector | None = None,
) -> PipelineResult:
    """Cross-validated training of every architecture in ``config.train.architectures``.

    Reuses the feature cache (computing what is missing) and every finished fold.
    """
    from .data.duplicates import duplicate_groups_for
    from .train.cv import check_training_setup, train_cv

    start = time.perf_counter()
    collector = _collector or _Collector()
    run_dir = Path(run_dir)
    check_run_config(run_dir, config)
    with collector.recording():
        comp = load_competition(data_dir, config.data)
        check_training_setup(comp, config)  # architectures, weights, folds: before any work
        store = build_cache(
            comp,
            "train",
            config,
            _cache_dir(Path(data_dir), cache_dir),
            n_jobs=n_jobs,
            progress=progress,
        )
        comp, store = _training_subset(comp, store, config, collector)
        groups = None
        if config.train.use_groups:
            groups = duplicate_groups_for(
                comp,
                config,
                _cache_dir(Path(data_dir), cache_dir),
                n_jobs=n_jobs,
                progress=progress,
            )
        result = train_cv(comp, store, config, run_dir, progress=progress, groups=groups)
    scores = {arch: float(s) for arch, s in result.scores(config.ensemble.metric).items()}
    return PipelineResult(
        run_dir=run_dir,
        cv_scores=scores,
        metric=config.ensemble.metric,
        summary=collector.as_dict(),
        seconds=time.perf_counter() - start,
    )


def predict(
    data_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    method: str | None = None,
    submissions_dir: str | os.PathLike = "submissions",
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    _collector: _Collector | None = None,
) -> PipelineResult:
    """Predict the test set with every fold of every model and write the submission.

    The config is rebuilt from the run folder's ``config.json``; ``method`` overrides
    ``ensemble.method``.
    """
    from .infer.predict import predict_and_submit

    start = time.perf_counter()
    collector = _collector or _Collector()
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    if method is not None:
        config = config.override({"ensemble.method": method})
    with collector.recording():
        comp = load_competition(data_dir, config.data)
        store = build_cache(
            comp,
            "test",
            config,
            _cache_dir(Path(data_dir), cache_dir),
            n_jobs=n_jobs,
            progress=progress,
        )
        outcome = predict_and_submit(
            comp, store, run_dir, config, submissions_dir=submissions_dir, progress=progress
        )
    for name, reason in store.failures():
        collector.add("test fallback row", name, reason)
    summary = collector.as_dict()
    write_json(run_dir / "summary.json", summary)
    return PipelineResult(
        run_dir=run_dir,
        cv_scores=outcome.model_scores,
        ensemble_scores=outcome.ensemble_scores,
        submission=outcome.submission,
        metric=config.ensemble.metric,
        summary=summary,
        seconds=time.perf_counter() - start,
        lines=[
            f"best method on OOF: {outcome.best_method}; submission written by: {outcome.method}"
        ],
    )


def run_pipeline(
    data_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    config: Config,
    *,
    submissions_dir: str | os.PathLike = "submissions",
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
) -> PipelineResult:
    """Preprocess, train and predict; write ``summary.json`` in the run folder."""
    start = time.perf_counter()
    collector = _Collector()
    kwargs = {
        "cache_dir": cache_dir,
        "n_jobs": n_jobs,
        "progress": progress,
        "_collector": collector,
    }
    train(data_dir, run_dir, config, **kwargs)
    result = predict(data_dir, run_dir, submissions_dir=submissions_dir, **kwargs)
    result.seconds = time.perf_counter() - start
    return result


def run_demo(
    data_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    config: Config,
    *,
    n_train: int = 350,
    n_test: int = 150,
    submissions_dir: str | os.PathLike = "submissions",
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
) -> PipelineResult:
    """Generate the demo folder (once), run the pipeline, score the submission on held-out answers."""
    from .datasets.synthetic import make_demo_dataset
    from .metrics import METRICS

    start = time.perf_counter()
    data_dir = make_demo_dataset(data_dir, n_train=n_train, n_test=n_test, progress=progress)
    result = run_pipeline(
        data_dir,
        run_dir,
        config,
        submissions_dir=submissions_dir,
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        progress=progress,
    )
    answers = pd.read_csv(Path(data_dir) / "test_answers.csv", dtype=str, keep_default_na=False)
    submission = pd.read_csv(result.submission, dtype=str, keep_default_na=False)
    name_col, label_col = submission.columns
    truth = submission[name_col].map(dict(zip(answers.iloc[:, 0], answers.iloc[:, 1], strict=True)))
    result.test_score = float(METRICS[config.ensemble.metric](truth, submission[label_col]))
    result.seconds = time.perf_counter() - start
    return result
