"""The verification task's stages: train, predict + ensemble + submission, demo, embed.

:func:`train_verification_run` reads a verification competition folder
(:mod:`emo_utils.data.verification`) and trains every fold
(:func:`emo_utils.train.verification.train_verification`).

:func:`predict_verification` embeds every distinct file of the test trials with every fold
model (cached per fold in ``test_embeddings.npz``, so a rerun resumes), scores each trial
by cosine similarity, puts each fold model's scores on the z-scale of its own OOF trial
scores (or, with ``verification.score_norm``, S-norm / adaptive S-norm against a cohort:
the fold's validation clips, training identities the fold model never trained on),
averages the folds of every architecture, compares the ensembles of
:data:`emo_utils.ensemble.verification.VERIFICATION_ENSEMBLES` on the OOF trials and
writes:

* ``SUBMISSIONS/<run>__<method>.csv``: ``id,score`` (the column names of
  ``verification.pair_id_column`` and ``score_column``), one row per trial, in the test
  CSV's order.  A trial whose file cannot be decoded gets a neutral score, the ensemble's
  score at its OOF equal-error threshold, and is listed with the reason in
  ``<run>__<method>.failures.csv`` (``row, id, file, reason, fallback``);
* ``RUN/predictions/test_scores.csv``: every architecture's and every method's trial
  scores (NaN where a file failed);
* ``RUN/ensemble_report.json`` / ``.md``: the OOF EER and minDCF of every architecture and
  every method, side by side, the weights, and the chosen method;
* ``RUN/report/``: the DET curves of every model and method, the same/different score
  histograms of the chosen method and a t-SNE map of OOF embeddings.

:func:`embed_files` (``python -m emo_utils embed``) writes one embedding per audio file with
one fold model of any trained run: the embedding network's output for verification runs,
the pooled features (the classifier's input) for the other tasks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import Config
from .data.competition import Competition
from .data.folds import read_folds
from .data.verification import load_verification
from .datasets import make_demo
from .ensemble.verification import (
    VerificationEnsembleReport,
    combine_scores,
    evaluate_verification_ensembles,
)
from .errors import ConfigError, DataError, TrainingError
from .features.build import build_cache
from .features.store import FeatureStore
from .fileio import atomic_path, read_json, write_csv, write_json, write_text
from .infer.embed import embed
from .infer.predict import predict_rows, tta_views, view_settings
from .models import select_device
from .models.checkpoints import load_fold_model
from .models.embedding_net import load_embedding_net
from .reports.plots import plot_embedding_map, save_figure
from .reports.verification import write_verification_plots
from .runs import RunDir
from .submission import submission_name
from .tables import markdown_table
from .tasks import get_task
from .train.verification import (
    OOF_EMBEDDINGS_FILE,
    VerificationCV,
    read_oof_trials,
    train_verification,
    z_normalize,
)
from .verification.metrics import eer_threshold, equal_error_rate, min_dcf
from .verification.scoring import enroll_sides, s_norm

__all__ = [
    "TEST_EMBEDDINGS_FILE",
    "VerificationResult",
    "embed_files",
    "predict_verification",
    "run_verification",
    "run_verification_demo",
    "train_verification_run",
]

#: Per-fold cache of the test files' embeddings (``emb``, ``names``, ``fingerprint``).
TEST_EMBEDDINGS_FILE = "test_embeddings.npz"


@dataclass
class VerificationResult:
    """What the verification stages produced, for printing and for notebooks.

    Attributes
    ----------
    run_dir : pathlib.Path
    cv_eer : dict of str to float
        Architecture -> OOF EER.
    ensemble : VerificationEnsembleReport or None
    method : str
        The ensemble method that wrote the submission.
    submission, failures : pathlib.Path or None
    n_failed : int
        Trials that got the neutral score.
    test_eer : dict of str to float
        Held-out EER of every architecture and method (demo only: the answers file).
    seconds : float
    """

    run_dir: Path
    cv_eer: dict[str, float] = field(default_factory=dict)
    ensemble: VerificationEnsembleReport | None = None
    method: str = ""
    submission: Path | None = None
    failures: Path | None = None
    n_failed: int = 0
    test_eer: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def describe(self) -> str:
        """The end-of-run summary lines."""
        lines = []
        if self.ensemble is not None:
            lines.append(
                f"best method on OOF: {self.ensemble.best}; submission written by: {self.method}"
            )
            for arch, eer in self.ensemble.member_eer.items():
                lines.append(f"OOF EER {arch:<28} {eer:.4f}")
            for name, eer in self.ensemble.method_eer.items():
                lines.append(f"OOF EER ensemble {name:<19} {eer:.4f}")
        for name, eer in self.test_eer.items():
            lines.append(f"held-out test EER {name:<18} {eer:.4f}")
        if self.submission is not None:
            lines.append(f"submission: {self.submission}")
            lines.append(f"trials with a neutral score (file not decoded): {self.n_failed}")
        lines.append(f"run folder: {self.run_dir}")
        lines.append(f"took {self.seconds:.1f} s")
        return "\n".join(lines)


def train_verification_run(
    data_dir: str | os.PathLike,
    *,
    run_dir: str | os.PathLike,
    config: Config,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> VerificationCV:
    """Read the competition folder and train every fold (see the module docstring)."""
    data = load_verification(data_dir, config)
    return train_verification(
        data,
        config,
        run_dir,
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        progress=progress,
        callbacks=callbacks,
    )


def _fold_done(run: RunDir, arch: str, fold: int) -> dict[str, Any]:
    path = run.fold_dir(arch, fold) / RunDir.DONE_FILE
    if not path.is_file():
        raise TrainingError(
            f"{arch} fold {fold}: not trained ({path} missing); train the run first"
        )
    return read_json(path)


def _fold_model(run: RunDir, arch: str, fold: int, device: Any) -> Any:
    done = _fold_done(run, arch, fold)
    norm = done["normalization"]
    return load_embedding_net(
        run.fold_dir(arch, fold) / RunDir.MODEL_FILE,
        arch=arch,
        embedding_dim=int(done["embedding_dim"]),
        mean=norm["mean"],
        std=norm["std"],
        in_chans=int(done["in_chans"]),
        pooling=done.get("pooling", "backbone"),
        input_norm=done.get("input_norm", "none"),
        device=device,
    )


def _test_embeddings(
    run: RunDir, config: Config, arch: str, fold: int, store: FeatureStore, device: Any
) -> np.ndarray:
    """Embeddings ``(n_files, d)`` of the test store's rows (NaN: failed), cached per fold."""
    path = run.fold_dir(arch, fold) / TEST_EMBEDDINGS_FILE
    names = np.array([str(f) for f in store.filenames])
    if path.is_file():
        try:
            with np.load(path) as saved:
                if (
                    str(saved["fingerprint"]) == store.fingerprint
                    and saved["names"].tolist() == names.tolist()
                ):
                    return saved["emb"].astype(np.float64)
        except (OSError, ValueError, KeyError):
            pass  # damaged or another test set: computed again below
    model = _fold_model(run, arch, fold, device)
    emb = predict_rows(
        model,
        store,
        np.arange(len(store)),
        task=get_task("verification"),
        **view_settings(config),
        batch_size=config.train.batch_size,
        device=device,
        mixed_precision=config.train.mixed_precision,
    )
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh, emb=emb.astype(np.float32), names=names, fingerprint=np.array(store.fingerprint)
        )
    return emb


def _fold_test_scores(
    run: RunDir, config: Config, arch: str, fold: int, emb: np.ndarray, trials: pd.DataFrame
) -> np.ndarray:
    """One fold model's trial scores on the z-scale (or S-normalised)."""
    vc = config.verification
    left, right = enroll_sides(emb, trials["rows_a"]), enroll_sides(emb, trials["rows_b"])
    raw = np.einsum("ij,ij->i", left, right)  # both sides L2-normalised: their cosine
    if vc.score_norm == "none":
        done = _fold_done(run, arch, fold)
        return z_normalize(raw, done["score_mean"], done["score_std"])
    cohort = np.load(run.fold_dir(arch, fold) / OOF_EMBEDDINGS_FILE).astype(np.float64)
    top_k = min(vc.cohort_top_k, len(cohort)) if vc.score_norm == "as_norm" else None
    return s_norm(raw, left, right, cohort, top_k=top_k)


def _oof(run: RunDir, config: Config) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The OOF trials (``fold, file_a, file_b, same``) and every architecture's z-scores."""
    tc = config.train
    keys, zscores = None, {}
    for arch in tc.architectures:
        trials = read_oof_trials(run, arch, tc.n_folds)
        these = trials[["fold", "file_a", "file_b", "same"]]
        if keys is None:
            keys = these
        elif not these.equals(keys):
            raise TrainingError(
                f"{arch}: its OOF trials differ from {tc.architectures[0]}'s; were the folds "
                "trained with another folds.csv? Retrain it in this run folder"
            )
        zscores[arch] = trials["zscore"].to_numpy()
    return keys, zscores


def _failure_reasons(store: FeatureStore, trials: pd.DataFrame) -> dict[int, tuple[str, str]]:
    """Trial row -> (file, reason) for every trial with a file that has no image."""
    reasons = dict(enumerate(store.reasons))
    out = {}
    names = dict(enumerate(store.filenames))
    for i, (a, b) in enumerate(zip(trials["rows_a"], trials["rows_b"], strict=True)):
        bad = next((int(r) for r in (*a, *b) if reasons[int(r)]), None)
        if bad is not None:
            out[i] = (str(names[bad]), reasons[bad])
    return out


def _ensemble_markdown(
    report: VerificationEnsembleReport, dcf: dict[str, float], method: str
) -> str:
    rows = [
        [m, "model", f"{report.member_eer[m]:.4f}", f"{dcf[m]:.4f}", ""] for m in report.members
    ]
    rows += [
        [
            n,
            "ensemble",
            f"{report.method_eer[n]:.4f}",
            f"{dcf[n]:.4f}",
            ", ".join(
                f"{m} {w:.2f}" for m, w in zip(report.members, report.weights[n], strict=True)
            ),
        ]
        for n in report.method_eer
    ]
    return (
        "# Verification ensembles (OOF)\n\n"
        "Scores of every fold model z-normalised by its own OOF trial scores; `weighted` is "
        "cross-fitted (each fold's trials combined with weights chosen on the other folds). "
        f"Lower is better. Best on OOF: `{report.best}`; submission: `{method}`.\n\n"
        + "\n".join(markdown_table(["name", "kind", "OOF EER", "OOF minDCF", "weights"], rows))
        + "\n"
    )


def _report_plots(
    run: RunDir, config: Config, keys: pd.DataFrame, zscores: dict, report: Any, method: str
) -> None:
    scores = {**zscores, **{f"ensemble {n}": s for n, s in report.oof_scores.items()}}
    write_verification_plots(
        run.report_dir, keys["same"].to_numpy(), scores, main=f"ensemble {method}"
    )
    arch = config.train.architectures[0]
    folds = read_folds(run.folds_file)
    parts, labels = [], []
    for fold in range(config.train.n_folds):
        path = run.fold_dir(arch, fold) / OOF_EMBEDDINGS_FILE
        valid = folds[folds["fold"] == fold]["label"].tolist()
        emb = np.load(path)
        if len(emb) == len(valid):
            parts.append(emb)
            labels += valid
    if not parts:
        return
    emb, labels = np.concatenate(parts), np.asarray(labels)
    shown = sorted(set(labels))[:12]  # a readable number of identities
    keep = np.isin(labels, shown)
    if keep.sum() < 5:
        return
    codes = np.searchsorted(np.asarray(shown), labels[keep])
    fig = plot_embedding_map(
        emb[keep],
        codes,
        shown,
        method="tsne",
        seed=config.train.seed,
        title=f"OOF embeddings of {arch} (t-SNE, {len(shown)} identities)",
    )
    save_figure(fig, run.report_dir / "embedding_map.png")


def predict_verification(
    data_dir: str | os.PathLike,
    *,
    run_dir: str | os.PathLike,
    submissions_dir: str | os.PathLike = "submissions",
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
) -> VerificationResult:
    """Score the test trials, compare the ensembles on OOF and write the submission."""
    start = time.perf_counter()
    run = RunDir(run_dir)
    config = run.read_config()
    if config.data.task != "verification":
        raise ConfigError(
            "data.task", config.data.task, f"{run.config_file}: not a verification run"
        )
    data = load_verification(data_dir, config)
    tc, vc = config.train, config.verification
    task = get_task("verification")
    with run.lock():
        store = build_cache(
            data.competition,
            "test",
            config=config,
            cache_dir=cache_dir,
            n_jobs=n_jobs,
            progress=progress,
        )
        device = select_device()
        trials = data.trials
        members = {}
        for arch in tc.architectures:
            per_fold = [
                _fold_test_scores(
                    run,
                    config,
                    arch,
                    fold,
                    _test_embeddings(run, config, arch, fold, store, device),
                    trials,
                )
                for fold in range(tc.n_folds)
            ]
            members[arch] = np.mean(per_fold, axis=0)
        keys, zscores = _oof(run, config)
        labels, folds = keys["same"].to_numpy(), keys["fold"].to_numpy()
        report = evaluate_verification_ensembles(labels, zscores, folds, methods=task.ensembles)
        method = report.best if config.ensemble.method == "best" else config.ensemble.method
        z_test = np.column_stack([members[m] for m in report.members])
        test_scores = {n: combine_scores(z_test, w) for n, w in report.weights.items()}
        neutral = eer_threshold(labels, report.oof_scores[method])
        failed = _failure_reasons(store, trials)
        final = test_scores[method].copy()
        missing = ~np.isfinite(final)
        unexplained = sorted(set(np.flatnonzero(missing)) - set(failed))
        if unexplained:
            raise TrainingError(f"{len(unexplained)} trial(s) got no score without a failed file")
        final[list(failed)] = neutral
        stem = submission_name(run.name, method)
        out_dir = Path(submissions_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        id_col, score_col = data.competition.submission_columns
        order = sorted(failed)
        failures = pd.DataFrame(
            {
                "row": order,
                id_col: [trials["id"].iloc[i] for i in order],
                "file": [failed[i][0] for i in order],
                "reason": [failed[i][1] for i in order],
                "fallback": [neutral] * len(order),
            }
        )
        failures_path = out_dir / f"{stem}.failures.csv"
        write_csv(failures_path, failures)
        submission = pd.DataFrame({id_col: trials["id"], score_col: final})
        if len(submission) != len(trials) or not np.isfinite(final).all():
            raise TrainingError("verification submission: a trial has no finite score")
        submission_path = out_dir / f"{stem}.csv"
        write_csv(submission_path, submission)
        table = pd.DataFrame(
            {"id": trials["id"], **members, **{f"ensemble {n}": s for n, s in test_scores.items()}}
        )
        run.predictions_dir.mkdir(parents=True, exist_ok=True)
        write_csv(run.predictions_dir / "test_scores.csv", table)
        dcf = {
            name: min_dcf(labels, s, p_target=vc.p_target, c_miss=vc.c_miss, c_fa=vc.c_fa)
            for name, s in {**zscores, **report.oof_scores}.items()
        }
        write_json(
            run.ensemble_report_file(".json"),
            {
                "task": "verification",
                "members": report.members,
                "member_eer": report.member_eer,
                "method_eer": report.method_eer,
                "min_dcf": dcf,
                "weights": report.weights,
                "best": report.best,
                "method": method,
                "neutral_score": neutral,
                "n_failed": len(failed),
            },
        )
        write_text(run.ensemble_report_file(".md"), _ensemble_markdown(report, dcf, method))
        _report_plots(run, config, keys, zscores, report, method)
    if progress:
        print(f"submission: {submission_path} ({len(submission)} trials, {len(failed)} neutral)")
    return VerificationResult(
        run_dir=run.path,
        cv_eer=dict(report.member_eer),
        ensemble=report,
        method=method,
        submission=submission_path,
        failures=failures_path,
        n_failed=len(failed),
        seconds=time.perf_counter() - start,
    )


def run_verification(
    data_dir: str | os.PathLike,
    *,
    run_dir: str | os.PathLike,
    config: Config,
    submissions_dir: str | os.PathLike = "submissions",
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
) -> VerificationResult:
    """Train (or resume) every fold, then :func:`predict_verification`."""
    start = time.perf_counter()
    train_verification_run(
        data_dir,
        run_dir=run_dir,
        config=config,
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        progress=progress,
    )
    result = predict_verification(
        data_dir,
        run_dir=run_dir,
        submissions_dir=submissions_dir,
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        progress=progress,
    )
    result.seconds = time.perf_counter() - start
    return result


def held_out_eer(data_dir: str | os.PathLike, run_dir: str | os.PathLike) -> dict[str, float]:
    """Held-out EER of every model and method from ``test_answers.csv`` (``id,same``)."""
    answers = pd.read_csv(Path(data_dir) / "test_answers.csv", dtype={"id": str})
    table = pd.read_csv(RunDir(run_dir).predictions_dir / "test_scores.csv", dtype={"id": str})
    merged = table.merge(answers, on="id", how="inner")
    out = {}
    for column in table.columns[1:]:
        ok = np.isfinite(merged[column].to_numpy())
        out[column] = equal_error_rate(merged["same"].to_numpy()[ok], merged[column].to_numpy()[ok])
    return out


def run_verification_demo(
    data_dir: str | os.PathLike,
    *,
    run_dir: str | os.PathLike,
    config: Config,
    submissions_dir: str | os.PathLike = "submissions",
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    **demo_options: Any,
) -> VerificationResult:
    """Generate the verification demo (once), run it, score the trials on the held-out answers."""
    start = time.perf_counter()
    data_dir = make_demo("verification", data_dir, progress=progress, **demo_options)
    result = run_verification(
        data_dir,
        run_dir=run_dir,
        config=config,
        submissions_dir=submissions_dir,
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        progress=progress,
    )
    result.test_eer = held_out_eer(data_dir, run_dir)
    result.seconds = time.perf_counter() - start
    return result


# ---------------------------------------------------------------------------- embed
def _files_store(
    files: Sequence[str | os.PathLike], config: Config, cache_dir: Path, progress: bool
) -> FeatureStore:
    paths = [str(Path(f).resolve()) for f in files]
    if not paths:
        raise DataError("embed: no audio file given")
    root = Path(os.path.commonpath([os.path.dirname(p) for p in paths]))
    table = pd.DataFrame({"filename": [str(f) for f in files], "path": paths})
    comp = Competition(
        root=root,
        train=pd.DataFrame({"filename": [], "label": [], "path": []}, dtype=str),
        test=table,
        classes=(),
        submission_columns=(),
    )
    return build_cache(
        comp, "test", config=config, cache_dir=cache_dir, n_jobs=1, progress=progress
    )


def embed_files(
    run_dir: str | os.PathLike,
    files: Sequence[str | os.PathLike],
    *,
    out: str | os.PathLike,
    arch: str | None = None,
    fold: int = 0,
    cache_dir: str | os.PathLike | None = None,
    chunk_size: int = 256,
    progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> Path:
    """Write one embedding per file (``file, ok, reason, e0 ... e{d-1}``) to the CSV ``out``.

    Parameters
    ----------
    run_dir : str or os.PathLike
        A trained run of any task.
    files : sequence of path-like
        Audio files (one output row each, in order).
    out : str or os.PathLike
        The CSV to write (atomically, at the end).
    arch : str, optional
        Default: the run's first architecture (a torch model on images).
    fold : int
        Which fold model embeds (fold models of one architecture embed in different spaces).
    cache_dir : str or os.PathLike, optional
        Feature cache of the files (default: ``OUT.cache`` beside ``out``).
    chunk_size : int
        Files per saved chunk: a rerun after an interruption reuses the finished chunks
        (``OUT.parts/``), and the feature cache resumes as every cache does.
    progress : bool
        Print what is computed and reused.
    on_chunk : callable, optional
        Called with the index of every chunk computed (not reused).

    Returns
    -------
    pathlib.Path
        ``out``.  Rows of files that cannot be decoded have ``ok`` False, the reason, and
        empty embeddings.
    """
    run = RunDir(run_dir)
    config = run.read_config()
    arch = arch or config.train.architectures[0]
    if arch not in config.train.architectures:
        raise ConfigError(
            "--arch", arch, f"not an architecture of {run.path}: {list(config.train.architectures)}"
        )
    out = Path(out)
    cache = Path(cache_dir) if cache_dir is not None else out.with_name(out.name + ".cache")
    store = _files_store(files, config, cache, progress)
    device = select_device()
    task = get_task(config.data.task)
    model = (
        _fold_model(run, arch, fold, device)
        if task.outputs_embeddings
        else load_fold_model(run, arch=arch, fold=fold, device=device)
    )
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    rows = np.arange(len(store))
    chunks = []
    for index, start in enumerate(range(0, len(rows), chunk_size)):
        part = rows[start : start + chunk_size]
        path = parts / f"chunk{index:05d}.npz"
        names = np.array([store.filenames[i] for i in part])
        if path.is_file():
            try:
                with np.load(path) as saved:
                    if (
                        saved["names"].tolist() == names.tolist()
                        and str(saved["fingerprint"]) == store.fingerprint
                    ):
                        chunks.append(saved["emb"])
                        continue
            except (OSError, ValueError, KeyError):
                pass
        if task.outputs_embeddings:
            emb = predict_rows(
                model,
                store,
                part,
                task=task,
                crop=config.audio.crop,
                batch_size=config.train.batch_size,
                device=device,
            )
        else:
            images, owner = tta_views(store, part, crop=config.audio.crop)
            emb = np.full((len(part), 0), np.nan)
            if len(images):
                vectors = embed(model, images, device=device)
                emb = np.full((len(part), vectors.shape[1]), np.nan)
                emb[np.searchsorted(part, owner)] = vectors
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh, emb=emb.astype(np.float32), names=names, fingerprint=np.array(store.fingerprint)
            )
        chunks.append(emb)
        if on_chunk is not None:
            on_chunk(index)
    width = max((c.shape[1] for c in chunks), default=0)
    emb = np.concatenate(
        [c if c.shape[1] == width else np.full((len(c), width), np.nan) for c in chunks]
    )
    table = pd.DataFrame(emb, columns=[f"e{i}" for i in range(width)])
    table.insert(0, "reason", store.reasons)
    table.insert(0, "ok", store.ok)
    table.insert(0, "file", [str(f) for f in files])
    write_csv(out, table)
    for path in parts.glob("chunk*.npz"):
        path.unlink()
    parts.rmdir()
    if progress:
        print(
            f"embeddings of {int(store.ok.sum())} of {len(store)} files ({width} values each, {arch} fold {fold}): {out}"
        )
    return out
