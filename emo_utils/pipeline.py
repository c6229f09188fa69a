"""All stages in order: what the notebooks and ``python -m emo_utils run`` call.

Each stage function is resumable: run it again with the same arguments and it reuses what
is finished (cache chunks, folds, finished folds) and redoes only what is missing.

* :func:`preprocess` -- feature cache of both splits;
* :func:`train` -- cross-validated training (stops before any training if training files
  failed, unless ``data.skip_bad_train``);
* :func:`predict` -- test probabilities, OOF comparison of ensembles, submission CSV;
* :func:`run_pipeline` -- the three above, plus ``summary.json``;
* :func:`run_demo` -- generate the demo folder, run the pipeline, score on held-out answers;
* :func:`run_demo_rounds` -- :func:`run_demo`, then pseudo-label rounds, each from the one
  before (``train.pseudo_from``), with their OOF and held-out scores side by side
  (:func:`describe_rounds`).

The two demo runners live in :mod:`emo_utils.pipeline_demo` and are importable from here.

**Pseudo-label rounds** (``train.pseudo_from``): :func:`train` checks the parent before any
work (:func:`emo_utils.endgame.pseudo.check_parent`), caches the round's
``train.pseudo_splits`` (test, and ``data.unlabelled_dir`` when set) like the test set,
then, holding the run folder's lock, reads or makes the soft targets
(:func:`emo_utils.endgame.pseudo.pseudo_labels`; the parent's models see the parent's own
feature cache) and trains on them.  Clips without an input are skipped and counted in the
end-of-run report.

**Locks** (:mod:`emo_utils.locks`).  ``train``, ``predict``, ``predict_and_submit`` and
``run_pipeline`` hold the run folder's lock while they write it (``run_pipeline`` across
both stages; ``train`` from the moment its cache is ready, so every check before any work
runs first); the feature cache locks each split itself while it is built.  Two processes
on one run folder or one cache therefore take turns: the second waits, saying for whom,
then reuses what the first finished.  ``wait=False`` (``--no-wait``)
stops it at once with a :class:`~emo_utils.errors.LockError` naming the holder instead.
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
import torch

from .audio import unreadable_formats
from .config import Config
from .data.competition import Competition, load_competition
from .ensemble import (
    EnsembleReport,
    ensemble_options,
    evaluate_ensembles,
    make_ensemble,
    make_multilabel_ensemble,
)
from .errors import EmoUtilsWarning, SubmissionError
from .features import FeatureStore, default_cache_dir, require_valid_training
from .fileio import write_json
from .infer.predict import ModelLoader, predict_test
from .models import build_inputs
from .runs import RunDir
from .submission import (
    SUBMISSION_FORMATS,
    SubmissionFiles,
    failures_from_store,
)
from .tasks import get_task

__all__ = [
    "PipelineResult",
    "RunReport",
    "SubmissionOutcome",
    "describe_rounds",  # noqa: F822  (emo_utils.pipeline_demo's: see __getattr__)
    "predict",
    "predict_and_submit",
    "preprocess",
    "round_run_dir",  # noqa: F822  (emo_utils.pipeline_demo's: see __getattr__)
    "run_demo",  # noqa: F822  (emo_utils.pipeline_demo's: see __getattr__)
    "run_demo_rounds",  # noqa: F822  (emo_utils.pipeline_demo's: see __getattr__)
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
        Score on held-out answers (demo only), the competition metric.
    test_scores : dict
        Every metric of the task on the held-out answers (demo only).
    summary : dict
        Counts of skips, warnings and fallbacks by reason.
    seconds : float
    warnings : list of str
        Problems to show at the end of the run (a model at or below the majority-class
        baseline, from ``cv_report.json``).
    submission_method : str
        The ensemble method that wrote the submission (``"best"`` resolved; predict only).
    """

    run_dir: Path | None = None
    cv_scores: dict[str, float] = field(default_factory=dict)
    ensemble_scores: dict[str, float] = field(default_factory=dict)
    submission: Path | None = None
    test_score: float | None = None
    test_scores: dict[str, float] = field(default_factory=dict)
    metric: str = "accuracy"
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    submission_method: str = ""

    def describe(self) -> str:
        """Human-readable multi-line report."""
        out = list(self.lines)
        out.extend(f"WARNING: {w}" for w in self.warnings)
        width = max((len(arch) for arch in self.cv_scores), default=0)
        for arch, score in self.cv_scores.items():
            out.append(f"CV {self.metric} {arch:<{max(width, 24)}s} {score:.4f}")
        for method, score in self.ensemble_scores.items():
            out.append(f"OOF {self.metric} ensemble {method:<15s} {score:.4f}")
        if self.test_score is not None:
            out.append(f"held-out test {self.metric} of the submission: {self.test_score:.4f}")
            others = {m: v for m, v in self.test_scores.items() if m != self.metric}
            if others:
                out.append(
                    "held-out test, other metrics: "
                    + ", ".join(f"{m} {v:.4f}" for m, v in others.items())
                )
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
class RunReport:
    """The end-of-run report: problems counted by reason across stages.

    Pass one object to several stages (``report=``) to count their problems together;
    :func:`run_pipeline` does.  ``as_dict()`` is what ``RUN/summary.json`` holds.
    """

    counts: Counter = field(default_factory=Counter)
    items: list[dict[str, str]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def add(self, kind: str, file: str, reason: str) -> None:
        """Record one problem of ``kind`` with ``file``; it counts under its generic reason.

        The reason's stand-alone numbers are replaced by ``#`` for counting, so equal
        problems of different files count together; ``items`` keeps the reason as given.
        """
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
        """Show ``caught`` warnings again and record each new emo_utils warning once.

        A message ``"FILE: reason"`` is recorded as a ``"warning"`` of ``FILE``.
        """
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
        """``{"counts": {"kind: reason": n}, "items": [{"kind", "file", "reason"}]}``."""
        return {"counts": dict(self.counts), "items": self.items}


_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w.])")


def _generic(reason: str) -> str:
    """Reason with its stand-alone numbers replaced by ``#``, so equal problems count together.

    >>> _generic("2 NaN/inf sample(s), first at 0.250 s")
    '# NaN/inf sample(s), first at # s'
    """
    return _NUMBER.sub("#", reason)[:160]


def _cache_dir(data_dir: Path, cache_dir: str | os.PathLike | None) -> Path:
    return Path(cache_dir) if cache_dir is not None else default_cache_dir(data_dir)


def _stores(
    comp: Competition,
    cfg: Config,
    cache_dir: Path,
    n_jobs: int,
    progress: bool,
    splits: tuple[str, ...],
    wait: bool,
) -> dict[str, dict[str, Any]]:
    return {
        split: build_inputs(
            comp,
            split,
            config=cfg,
            cache_dir=cache_dir,
            n_jobs=n_jobs,
            progress=progress,
            wait=wait,
        )
        for split in splits
    }


def _input_shape(store: Any) -> str:
    """What one row of an input store holds, for the preprocess summary."""
    describe = getattr(store, "describe", None)
    if callable(describe):  # frozen embeddings: one vector per model and layer
        return describe()
    if hasattr(store, "image_shape"):  # images and waveforms: one window
        rate = getattr(store, "sample_rate", None)
        return f"{store.image_shape}" + (f" at {rate} Hz" if rate else "")
    return f"{len(store.names)} values"  # clip statistics


def preprocess(
    data_dir: str | os.PathLike,
    *,
    config: Config,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    wait: bool = True,
) -> PipelineResult:
    """Compute or reuse the feature cache of the train and test splits (and ``unlabelled``).

    The ``unlabelled`` split (``data.unlabelled_dir``) is cached like the test set; its
    files that fail are counted in the end-of-run report.  ``wait=False``: stop with a :class:`~emo_utils.errors.LockError` instead of waiting
    while another process builds a split.
    """
    start = time.perf_counter()
    collector = RunReport()
    with collector.recording():
        comp = load_competition(data_dir, config.data)
        stores = _stores(
            comp,
            config,
            _cache_dir(Path(data_dir), cache_dir),
            n_jobs,
            progress,
            ("train", "test", *(("unlabelled",) if len(comp.unlabelled) else ())),
            wait,
        )
    lines = []
    for split, inputs in stores.items():
        failed = _input_failures(inputs)  # row -> reason: test.csv may list a file twice
        store = inputs["image"]
        extra = "".join(
            f", {kind} {_input_shape(s)}" for kind, s in inputs.items() if kind != "image"
        )
        lines.append(
            f"{split}: {len(store)} clips, {len(failed)} failed, image {store.image_shape}{extra}"
        )
        for row, reason in sorted(failed.items()):
            collector.add(f"{split} failed", store.filenames[row], reason)
    return PipelineResult(
        summary=collector.as_dict(),
        seconds=time.perf_counter() - start,
        lines=lines,
        metric=config.ensemble.metric,
    )


def train(
    data_dir: str | os.PathLike,
    *,
    run_dir: str | os.PathLike,
    config: Config,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    report: RunReport | None = None,
    wait: bool = True,
) -> PipelineResult:
    """Cross-validated training of every architecture in ``config.train.architectures``.

    Reuses the feature cache (computing what is missing) and every finished fold.  Holds
    the run folder's lock once the training cache is ready (every check before any work
    is done by then); with ``wait=False`` a folder in use stops it with a
    :class:`~emo_utils.errors.LockError`.  With ``train.pseudo_from`` it is a pseudo-label
    round (see the module docstring): ``RUN/pseudo_labels.csv`` holds its targets and
    ``cv_report.md`` its round-over-round OOF scores.
    """
    with contextlib.ExitStack() as locks:
        return _train(
            data_dir,
            run_dir=run_dir,
            config=config,
            cache_dir=cache_dir,
            n_jobs=n_jobs,
            progress=progress,
            report=report,
            wait=wait,
            locks=locks,
        )


def _train(
    data_dir: str | os.PathLike,
    *,
    run_dir: str | os.PathLike,
    config: Config,
    cache_dir: str | os.PathLike | None,
    n_jobs: int,
    progress: bool,
    report: RunReport | None,
    wait: bool,
    locks: contextlib.ExitStack,
) -> PipelineResult:
    """:func:`train`; the run folder's lock, once taken, stays in ``locks`` (to hold it on)."""
    from .data.duplicates import duplicate_groups_for
    from .train import check_training_setup, train_cv
    from .train.distributed import is_main, main_first

    start = time.perf_counter()
    collector = report or RunReport()
    run = RunDir(run_dir)
    run.check_config(config)
    cache = _cache_dir(Path(data_dir), cache_dir)
    lines: list[str] = []
    with collector.recording():
        comp = load_competition(data_dir, config.data)
        check_training_setup(comp, config)  # architectures, weights, folds: before any work
        parent = _pseudo_parent(comp, config, run)  # a round's parent: checked before any work
        # Each cache locks itself; stops before work on unreadable files.  Several
        # processes (accelerate launch): rank 0 builds, the others then read.
        with main_first():
            inputs = build_inputs(
                comp,
                "train",
                config=config,
                cache_dir=cache,
                n_jobs=n_jobs,
                progress=progress and is_main(),
                wait=wait,
            )
        store = inputs["image"]
        # Failed training files stop the run before the run folder exists (train_cv checks
        # again); the lock below creates the folder.
        for one in inputs.values():
            require_valid_training(one, skip_bad=config.data.skip_bad_train)
        caches = {"cache_dir": cache, "n_jobs": n_jobs, "progress": progress, "wait": wait}
        with main_first():
            round_inputs = _round_inputs(comp, config, **caches) if parent is not None else {}
        if is_main():  # the run folder's writer (the other ranks of a launch write nothing)
            locks.enter_context(run.lock(wait=wait))  # the run folder's first write is below
        run.check_config(config)  # again: another process may have started this folder
        with main_first():  # rank 0 makes the round's targets, the others read them back
            pseudo = _round_labels(run, comp, config, round_inputs, caches, collector, lines)
        groups = None
        if config.train.use_groups:
            # Fingerprint only the clips that have an image; train_cv drops the others (or
            # stops, without data.skip_bad_train) and picks their groups by file name.
            usable = dataclasses.replace(comp, train=comp.train[store.ok].reset_index(drop=True))
            with main_first():
                found = duplicate_groups_for(
                    usable,
                    config,
                    cache,
                    n_jobs=n_jobs,
                    progress=progress,
                )
            groups = dict(zip(usable.train["filename"], found, strict=True))
        result = train_cv(
            comp,
            inputs,
            run_dir=run,
            config=config,
            progress=progress,
            groups=groups,
            pseudo=pseudo,
        )
    for name, reason in result.skipped_files:
        collector.add("train skipped", name, reason)
    scores = {arch: float(s) for arch, s in result.scores(config.ensemble.metric).items()}
    return PipelineResult(
        run_dir=run.path,
        cv_scores=scores,
        metric=config.ensemble.metric,
        summary=collector.as_dict(),
        seconds=time.perf_counter() - start,
        lines=lines + _round_lines(result.report.get("pseudo"), config.ensemble.metric),
        warnings=list(result.report.get("warnings", [])),
    )


def _pseudo_parent(comp: Competition, config: Config, run: RunDir) -> RunDir | None:
    """The checked parent run of a pseudo-label round, or ``None`` (``train.pseudo_from`` empty)."""
    if not config.train.pseudo_from:
        return None
    from .endgame.pseudo import check_parent

    return check_parent(config.train.pseudo_from, config=config, classes=comp.classes, run=run)


def _round_inputs(comp: Competition, config: Config, **caches: Any) -> dict[str, dict[str, Any]]:
    """``{split: inputs}`` of the round's ``train.pseudo_splits`` that have clips (cached)."""
    tables = {"test": comp.test, "unlabelled": comp.unlabelled}
    return {
        split: build_inputs(comp, split, config=config, **caches)
        for split in config.train.pseudo_splits
        if len(tables[split])
    }


def _round_labels(
    run: RunDir,
    comp: Competition,
    config: Config,
    round_inputs: dict[str, dict[str, Any]],
    caches: dict[str, Any],
    collector: RunReport,
    lines: list[str],
) -> Any:
    """The round's targets (read back or made), skipped clips counted; ``None``: no round.

    Called holding the run folder's lock (the targets are written into it).
    """
    if not config.train.pseudo_from:
        return None
    from .endgame.pseudo import check_parent, pseudo_labels

    # Again under the lock: another process may have written this folder's folds.csv.
    parent = check_parent(config.train.pseudo_from, config=config, classes=comp.classes, run=run)
    parent_config = parent.read_config()

    def parent_inputs(splits: Any) -> dict[str, dict[str, Any]]:
        # The parent's models read the parent's features (its own cache key).
        return {s: build_inputs(comp, s, config=parent_config, **caches) for s in splits}

    labels, skipped = pseudo_labels(
        run,
        config=config,
        inputs=round_inputs,
        parent_inputs=parent_inputs,
        progress=caches["progress"],
    )
    for split, name, reason in skipped:
        collector.add(f"pseudo-label skipped ({split})", name, reason)
    counts = ", ".join(f"{s} {n}" for s, n in labels.split_counts().items()) or "none"
    lines.append(
        f"pseudo-labels: {len(labels)} clips ({counts}) from {parent.path} "
        f"(its {labels.method} ensemble, per fold), kept per fold {labels.kept_per_fold()}"
    )
    return labels


def _round_lines(section: dict[str, Any] | None, metric: str) -> list[str]:
    """One line per architecture: its OOF ``metric`` in every round so far."""
    if not section:
        return []
    rounds = section["rounds"]
    out = [f"round-over-round OOF {metric} (round {', '.join(str(r['round']) for r in rounds)}):"]
    for arch in dict.fromkeys(a for r in rounds for a in r["scores"]):
        values = [r["scores"].get(arch, {}).get(metric) for r in rounds]
        text = " -> ".join("-" if v is None else f"{v:.4f}" for v in values)
        out.append(f"  {arch:<24s} {text}")
    return out


def _baseline_warnings(run: RunDir, ensemble_scores: dict[str, float], metric: str) -> list[str]:
    """``cv_report.json``'s warnings, plus ensembles at or below the majority-class baseline."""
    report = run.read_cv_report()
    if report is None:
        return []
    out = list(report.get("warnings", []))
    baseline = report.get("baseline", {})
    base = baseline.get("scores", {}).get(metric)
    name = baseline.get("name", "majority-class baseline")
    if base is not None:
        out += [
            f"ensemble {method}: OOF {metric} {score:.4f} is at or below the {name} {base:.4f}"
            for method, score in ensemble_scores.items()
            if not score > base
        ]
    return out


def predict(
    data_dir: str | os.PathLike,
    *,
    run_dir: str | os.PathLike,
    method: str | None = None,
    submissions_dir: str | os.PathLike = "submissions",
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    report: RunReport | None = None,
    wait: bool = True,
    reuse_predictions: bool = False,
    loader: ModelLoader | None = None,
) -> PipelineResult:
    """Predict the test set with every fold of every model and write the submission.

    The config is rebuilt from the run folder's ``config.json``; ``method`` overrides
    ``ensemble.method``; ``loader`` (default :func:`emo_utils.models.load_fold_model`)
    loads each torch fold model, e.g. ``emo_utils.infer.onnx_export.load_onnx_fold_model``
    for the ONNX engine.  Holds the run folder's lock (``wait=False``: a folder in use
    stops it with a :class:`~emo_utils.errors.LockError`).  ``reuse_predictions`` reads the
    test predictions an earlier ``predict`` wrote (``RUN/predictions``) instead of running
    the models: the submissions of other ensemble methods in seconds.
    """
    start = time.perf_counter()
    collector = report or RunReport()
    run = RunDir(run_dir)
    config = run.read_config()
    if method is not None:
        config = config.override({"ensemble.method": method})
    with contextlib.ExitStack() as locked:
        with collector.recording():
            comp = load_competition(data_dir, config.data)
            locked.enter_context(run.lock(wait=wait))
            inputs = build_inputs(
                comp,
                "test",
                config=config,
                cache_dir=_cache_dir(Path(data_dir), cache_dir),
                n_jobs=n_jobs,
                progress=progress,
                wait=wait,
            )
            outcome = predict_and_submit(
                comp,
                inputs,
                run_dir=run,
                config=config,
                submissions_dir=submissions_dir,
                progress=progress,
                reuse_predictions=reuse_predictions,
                loader=loader,
            )
        for row, reason in sorted(_input_failures(inputs).items()):
            collector.add("test fallback row", inputs["image"].filenames[row], reason)
        summary = collector.as_dict()
        write_json(run.summary_file, summary)  # still under the lock
    return PipelineResult(
        run_dir=run.path,
        cv_scores=outcome.model_scores,
        ensemble_scores=outcome.ensemble_scores,
        submission=outcome.submission,
        metric=config.ensemble.metric,
        summary=summary,
        seconds=time.perf_counter() - start,
        lines=[
            f"best method on OOF: {outcome.best_method}; submission written by: {outcome.method}"
        ],
        warnings=_baseline_warnings(run, outcome.ensemble_scores, config.ensemble.metric),
        submission_method=outcome.method,
    )


@dataclass
class SubmissionOutcome:
    """What :func:`predict_and_submit` produced.

    Attributes
    ----------
    submission : pathlib.Path
        The submission CSV.
    files : SubmissionFiles
        Submission, probabilities and failures files.
    method : str
        The method that wrote the submission (``"best"`` resolved).
    best_method : str
        The method with the best OOF score.
    report : EnsembleReport
        OOF scores of every model and method.
    probabilities : dict
        Architecture -> test probabilities ``(n_test, n_classes)`` (NaN for failed rows).
    labels : numpy.ndarray
        Class index of every test row after the fallback.
    n_fallback : int
        Test rows that got the fallback label.
    """

    submission: Path
    files: SubmissionFiles
    method: str
    best_method: str
    report: EnsembleReport
    probabilities: dict[str, np.ndarray] = field(repr=False)
    labels: np.ndarray = field(repr=False)
    n_fallback: int = 0

    @property
    def model_scores(self) -> dict[str, float]:
        """Architecture -> OOF score (competition metric)."""
        return self.report.model_scores

    @property
    def ensemble_scores(self) -> dict[str, float]:
        """Method -> OOF score (competition metric)."""
        return self.report.ensemble_scores

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary: submission path, methods, fallback count and OOF scores."""
        return {
            "submission": str(self.submission),
            "method": self.method,
            "best_method": self.best_method,
            "n_fallback": self.n_fallback,
            "model_scores": self.model_scores,
            "ensemble_scores": self.ensemble_scores,
        }


def _combine_single(
    run: RunDir,
    config: Config,
    report: EnsembleReport,
    oof: Any,
    stacked: np.ndarray,
    ok: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Class index (``-1`` where not ``ok``) and probabilities of the single-label ensemble."""
    ensemble = make_ensemble(
        report.method,
        weights=config.ensemble.weights or None,
        stacking_model=config.ensemble.stacking_model,
        seed=config.train.seed,
        **ensemble_options(config),
    )
    # Every ensemble is fitted on all OOF predictions (voting only checks them).
    ensemble.fit(oof.probas, oof.y, oof.folds)
    labels = np.full(stacked.shape[1], -1, dtype=np.int64)
    proba = np.full(stacked.shape[1:], np.nan)
    if ok.any():
        labels[ok] = ensemble.predict(stacked[:, ok])
        proba[ok] = ensemble.predict_proba(stacked[:, ok])
    return labels, proba


def _combine_multi(
    run: RunDir,
    config: Config,
    report: EnsembleReport,
    oof: Any,
    stacked: np.ndarray,
    ok: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """0/1 labels and probabilities of the multi-label ensemble, at the OOF-tuned thresholds.

    ``thresholds.json`` (written by the ensemble stage) holds the thresholds of every model
    and method; the ``mode`` vote's models vote at their own.
    """
    ec = config.ensemble
    thresholds = run.read_thresholds(oof.classes)
    ensemble = make_multilabel_ensemble(
        report.method,
        weights=ec.weights or None,
        k=ec.vote_k or None,
        threshold_mode=ec.threshold,
        min_positives=ec.min_positives,
        seed=config.train.seed,
        **ensemble_options(config),
    )
    # Fitted on all OOF rows; ``single`` scores the models over the OOF folds.
    ensemble.fit(oof.probas, oof.y, oof.folds)
    labels = np.zeros(stacked.shape[1:], dtype=np.int64)
    proba = np.full(stacked.shape[1:], np.nan)
    if ok.any():
        proba[ok] = ensemble.predict_proba(stacked[:, ok])
        labels[ok] = (proba[ok] >= thresholds[report.method]).astype(np.int64)
    return labels, proba


#: ``Task.label_kind`` -> how the models' test probabilities become the submission's labels.
_COMBINERS = {"single": _combine_single, "multi": _combine_multi}


def predict_and_submit(
    competition: Competition,
    store: FeatureStore | dict[str, Any],
    *,
    run_dir: str | os.PathLike | RunDir,
    config: Config | None = None,
    submissions_dir: str | os.PathLike = "submissions",
    method: str | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    reuse_predictions: bool = False,
    loader: ModelLoader | None = None,
    wait: bool = True,
) -> SubmissionOutcome:
    """Predict the test set, compare ensembles on OOF, and write the submission.

    Holds the run folder's lock while it reads and writes the run (re-entrant: ``predict``
    already holds it).

    Parameters
    ----------
    competition : Competition
        The competition (test rows, classes, submission columns).
    store : FeatureStore or dict
        Test images, one row per ``test.csv`` row, or ``{input: store}`` for every input
        the run's models need (:func:`emo_utils.models.build_inputs`).
    run_dir : str or os.PathLike
        The trained run folder.
    config : Config, optional
        Default: the run's ``config.json``.
    submissions_dir : str or os.PathLike
        Where ``<run>__<method>.csv`` and its companions go.
    method : str, optional
        Overrides ``ensemble.method`` (``"best"`` allowed).
    device, progress, loader
        Passed to :func:`predict_test`.
    reuse_predictions : bool
        Read ``RUN/predictions/ARCH.csv`` instead of running the models (fails if absent).
    wait : bool
        Wait while another process holds the run folder's lock (default), or raise a
        :class:`~emo_utils.errors.LockError` at once.

    Returns
    -------
    SubmissionOutcome
    """
    run = RunDir(run_dir)
    with run.lock(wait=wait):
        return _predict_and_submit(
            competition,
            store,
            run=run,
            config=config,
            submissions_dir=submissions_dir,
            method=method,
            device=device,
            progress=progress,
            reuse_predictions=reuse_predictions,
            loader=loader,
        )


def _input_failures(inputs: dict[str, Any]) -> dict[int, str]:
    """``row -> reason`` of the rows that failed in any input (the image's reason first)."""
    failures: dict[int, str] = {}
    for store in inputs.values():
        for row, reason in failures_from_store(store).items():
            failures.setdefault(row, reason)
    return failures


def _predict_and_submit(
    competition: Competition,
    store: FeatureStore | dict[str, Any],
    *,
    run: RunDir,
    config: Config | None,
    submissions_dir: str | os.PathLike,
    method: str | None,
    device: str | torch.device | None,
    progress: bool,
    reuse_predictions: bool,
    loader: ModelLoader | None,
) -> SubmissionOutcome:
    config = config or run.read_config()
    if method is not None:
        config = config.override({"ensemble.method": method})
    classes = run.read_classes()
    if tuple(classes) != tuple(competition.classes):
        raise SubmissionError(
            f"{run.classes_file}: classes {list(classes)} differ from the "
            f"competition's {list(competition.classes)}"
        )
    inputs = dict(store) if isinstance(store, dict) else {"image": store}
    for kind, one in inputs.items():
        if list(one.filenames) != competition.test["filename"].tolist():
            raise SubmissionError(f"the test {kind} store's file names differ from test.csv's rows")
    store = next(iter(inputs.values()))
    archs = list(config.train.architectures)
    report = evaluate_ensembles(run, config=config)
    if reuse_predictions:
        probabilities = run.load_predictions(archs, store.filenames)
    else:
        probabilities = predict_test(
            inputs, run_dir=run, config=config, device=device, progress=progress, loader=loader
        )
    stacked = np.stack([probabilities[a] for a in archs])  # (n_models, n_test, n_classes)
    ok = np.isfinite(stacked).all(axis=(0, 2))
    task = get_task(config.data.task)
    oof = run.load_oof(archs, classes, encode=task.encode)
    prior = task.prior(task.encode(competition.train["label"].tolist(), classes), len(classes))
    failures = _input_failures(inputs)
    # Rows the models could not score for another reason also fall back, with a reason.
    for row in np.flatnonzero(~ok):
        failures.setdefault(int(row), "no test probabilities")
    combine = _COMBINERS[task.label_kind]
    labels, proba = combine(run, config, report, oof, stacked, ok)
    fallback = task.fallback(prior)
    files = SUBMISSION_FORMATS[task.submission_format](
        competition,
        labels,
        out_dir=submissions_dir,
        run_name=run.name,
        method=report.method,
        failures=failures,
        probabilities=proba,
        data_config=config.data,
        fallback=fallback,
        prior=prior,
    )
    labels[list(failures)] = fallback
    return SubmissionOutcome(
        submission=files.submission,
        files=files,
        method=report.method,
        best_method=report.best_method,
        report=report,
        probabilities=probabilities,
        labels=labels,
        n_fallback=len(failures),
    )


def _check_test_split(data_dir: str | os.PathLike, config: Config) -> None:
    """Before training: the test CSV, its paths and the sample submission are valid.

    Test files in a format no backend reads do not stop the run: they are announced
    now (one warning) and get fallback rows in the submission after training.

    Raises
    ------
    DataError
        From :func:`~emo_utils.data.competition.load_competition` (CSV columns, encodings,
        paths outside the data folder, the sample submission's columns).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoUtilsWarning)  # train() reports the CSV warnings
        comp = load_competition(data_dir, config.data)
    bad = unreadable_formats(comp.test["path"])
    if bad:
        n = sum(len(files) for files in bad.values())
        warnings.warn(
            f"{n} test file(s) in format(s) no backend reads ({', '.join(sorted(bad))}) "
            "will get fallback rows in the submission; convert them (e.g. `ffmpeg -i clip.wv "
            "clip.flac`) for real predictions",
            EmoUtilsWarning,
            stacklevel=3,
        )


def run_pipeline(
    data_dir: str | os.PathLike,
    *,
    run_dir: str | os.PathLike,
    config: Config,
    submissions_dir: str | os.PathLike = "submissions",
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    wait: bool = True,
) -> PipelineResult:
    """Preprocess, train and predict; write ``summary.json`` in the run folder.

    The run folder's lock is held from training's first write to the submission (so a
    second ``run`` on the folder waits for all of it); ``wait=False`` stops at once with a
    :class:`~emo_utils.errors.LockError` if it is in use.
    """
    start = time.perf_counter()
    collector = RunReport()
    kwargs = {
        "cache_dir": cache_dir,
        "n_jobs": n_jobs,
        "progress": progress,
        "report": collector,
        "wait": wait,
    }
    _check_test_split(data_dir, config)
    with contextlib.ExitStack() as locks:  # the run folder's lock, from train to predict
        trained = _train(data_dir, run_dir=run_dir, config=config, locks=locks, **kwargs)
        result = predict(data_dir, run_dir=run_dir, submissions_dir=submissions_dir, **kwargs)
    result.lines = trained.lines + result.lines  # e.g. a pseudo-label round's summary
    result.seconds = time.perf_counter() - start
    return result


#: Names of :mod:`emo_utils.pipeline_demo` still importable from here.  That module imports
#: this one, so they are looked up when first asked for (PEP 562), never at import time.
_DEMO_NAMES = frozenset({"describe_rounds", "round_run_dir", "run_demo", "run_demo_rounds"})


def __getattr__(name: str) -> Any:
    """The demo runners' names (:data:`_DEMO_NAMES`), from :mod:`emo_utils.pipeline_demo`."""
    if name in _DEMO_NAMES:
        from . import pipeline_demo

        return getattr(pipeline_demo, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
