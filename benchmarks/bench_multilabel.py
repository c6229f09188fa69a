"""Multi-label demo: the preset's models and their ensembles against a classical MFCC baseline, on OOF.

Usage::

    .venv/bin/python benchmarks/bench_multilabel.py [--data DIR] [--run DIR] [--fresh] [--jobs N]

In one run:

1. **Pipeline.** Generates (or reuses) the multi-label demo folder
   (:func:`emo_utils.datasets.make_multilabel_demo`, default sizes: 240 training and 80 test
   clips) in ``--data`` (default ``data/demo_multilabel``, the folder of
   ``python -m emo_utils demo --task multilabel``) and runs the pipeline on it with the
   ``cpu_demo_multilabel`` preset (:func:`emo_utils.pipeline_demo.run_demo`) into ``--run``
   (default ``runs/bench_multilabel``).  A run folder that already holds the OOF predictions
   of every architecture and ``ensemble_report.json`` for the same config is reused as it
   is, so a rerun only recomputes the baseline; ``--fresh`` deletes the run folder first
   (the demo folder and its feature cache are deterministic and always reused).
2. **Classical baseline** on the same folds (``RUN/folds.csv``) and the same targets (its
   label lists encoded with the multilabel task and ``RUN/classes.json``, ``Silence`` for a
   clip without a source included).  Every clip is decoded with :mod:`emo_utils.audio` at
   the config's sample rate, the whole clip up to ``audio.max_duration`` (12 s) -- what
   the feature cache keeps -- and described by the mean and standard deviation over time of
   20 MFCCs and their deltas, spectral centroid, bandwidth, roll-off and flatness,
   zero-crossing rate and RMS level (in dB), plus the maximum over time, after a 0.5 s
   moving average, of the 20 MFCCs and the six spectral/level features.  Means and standard
   deviations of a 12 s clip hide a source that sounds during one second of it (the demo
   puts some sources only in the first or last second of a long clip); the maxima let the
   baseline see such a second too, as the CNNs' whole-clip max pooling does.  Features are
   extracted in parallel with joblib.  Per fold, a scikit-learn ``Pipeline``
   (``StandardScaler``, ``OneVsRestClassifier(LogisticRegression(max_iter=2000,
   class_weight="balanced"))``) is trained on the other folds and predicts the fold's
   probabilities.
3. **Table** of OOF macro-F1 and mAP of every model, every ensemble method, the best
   ensemble (highest macro-F1) and the baseline.  Macro-F1 is honest for all of them: the
   decisions are cut at thresholds cross-fitted over the folds
   (:func:`emo_utils.thresholds.cross_fit_thresholds` with the config's
   ``ensemble.threshold`` / ``ensemble.min_positives``; a row's thresholds never saw its
   label), exactly as :func:`emo_utils.ensemble.score_multilabel_ensembles` scores the
   ensembles (``mode`` at its fixed vote threshold).  Then the margin best ensemble -
   baseline in macro-F1 against the target of 0.10, and a per-label table (positives, OOF
   average precision and cross-fitted F1) to show where the models differ.

Two choices favour the run's models slightly: the best ensemble method is chosen by the same
OOF macro-F1 it is reported with (the pipeline's own pick, best by ``ensemble.metric`` = mAP,
is printed too), and each fold's OOF predictions come from the epoch that scored best on
that same validation fold (``train.monitor``).  The baseline has no such selection.

The preset's models are a from-scratch CNN (timm's tiny ``test_efficientnet``, on whole
12 s clips) and two classical models on the package's clip statistics (``classical:logreg``,
``classical:hgb``): the baseline here is a separate, hand-written model on its own features,
so the margin measures what the pipeline's ensemble adds over the usual classical recipe.
The first run trains 1 CNN x 5 folds x 60 epochs on the CPU (the whole pipeline took
6.5-8 minutes on the project's 2-core machine, longer under load); a rerun on the finished
run folder takes seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy.ndimage import uniform_filter1d
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, f1_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from emo_utils.audio import load_audio
from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.data.folds import read_folds
from emo_utils.ensemble.multilabel import make_multilabel_ensemble, score_multilabel_ensembles
from emo_utils.metrics import MULTILABEL_METRICS
from emo_utils.pipeline_demo import run_demo
from emo_utils.runs import RunDir
from emo_utils.tasks import get_task
from emo_utils.thresholds import cross_fit_thresholds

PRESET = "cpu_demo_multilabel"
#: The issue's target: best ensemble - baseline in OOF macro-F1.
TARGET_MARGIN = 0.10
N_MFCC = 20
#: Moving average before the maxima over time (seconds).
MAX_SMOOTHING_S = 0.5
BASELINE = "baseline (MFCC+spectral, OvR logreg)"


def _finished(run: RunDir, config: Config) -> bool:
    """Whether the run folder holds a finished pipeline run of ``config``."""
    archs = config.train.architectures
    if not (run.config_file.is_file() and run.ensemble_report_file(".json").is_file()):
        return False
    if not all(run.oof_file(a).is_file() for a in archs):
        return False
    run.check_config(config)  # a finished run of another config: refuse, do not mix
    return True


def pipeline_section(data: Path, run_path: Path, config: Config, fresh: bool, jobs: int) -> str:
    run = RunDir(run_path)
    if fresh and run_path.exists():
        shutil.rmtree(run_path)
    if _finished(run, config):
        return f"reused the finished run folder {run_path} (--fresh retrains)"
    t0 = time.perf_counter()
    result = run_demo(
        data,
        run_dir=run_path,
        config=config,
        submissions_dir=run_path / "submissions",
        n_jobs=jobs,
        progress=False,
    )
    held_out = ", ".join(f"{m} {v:.4f}" for m, v in result.test_scores.items())
    return (
        f"demo generated/reused and pipeline run in {time.perf_counter() - t0:.0f} s; "
        f"held-out test scores of its submission: {held_out}"
    )


def clip_features(
    path: str,
    *,
    sample_rate: int,
    max_duration: float,
    crop: str,
    res_type: str,
    n_fft: int,
    hop_length: int,
) -> np.ndarray:
    """The baseline's feature vector of one clip (see the module docstring)."""
    y = load_audio(
        path, sample_rate=sample_rate, max_duration=max_duration, crop=crop, res_type=res_type
    )
    # At least 9 frames (librosa.feature.delta's window); the demo's shortest clip has 16.
    y = librosa.util.fix_length(y, size=max(len(y), n_fft + 8 * hop_length))
    mag = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length))
    power = mag**2
    mfcc = librosa.feature.mfcc(
        S=librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sample_rate)),
        n_mfcc=N_MFCC,
    )
    delta = librosa.feature.delta(mfcc)
    spectral = np.vstack(
        [
            librosa.feature.spectral_centroid(S=mag, sr=sample_rate),
            librosa.feature.spectral_bandwidth(S=mag, sr=sample_rate),
            librosa.feature.spectral_rolloff(S=mag, sr=sample_rate),
            librosa.feature.spectral_flatness(S=mag),
            librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop_length),
            librosa.amplitude_to_db(librosa.feature.rms(S=mag, frame_length=n_fft), ref=1.0),
        ]
    )
    frames = np.vstack([mfcc, delta, spectral])  # (46, n_frames)
    peaks = np.vstack([mfcc, spectral])
    width = max(1, round(MAX_SMOOTHING_S * sample_rate / hop_length))
    smoothed = uniform_filter1d(peaks, size=min(width, peaks.shape[1]), axis=1, mode="nearest")
    parts = [frames.mean(axis=1), frames.std(axis=1), smoothed.max(axis=1)]
    return np.concatenate(parts).astype(np.float64)


def baseline_section(
    data: Path, run: RunDir, config: Config, jobs: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, tuple[str, ...], dict[str, float]]:
    """Features and OOF probabilities of the baseline on the run's folds."""
    folds = read_folds(run.folds_file)
    classes = run.read_classes()
    y = get_task("multilabel").encode(folds["label"].tolist(), classes).astype(np.int64)
    comp = load_competition(data, config.data)
    paths = dict(zip(comp.train["filename"], comp.train["path"], strict=True))
    au, fe = config.audio, config.features
    t0 = time.perf_counter()
    rows = Parallel(n_jobs=jobs)(
        delayed(clip_features)(
            paths[name],
            sample_rate=au.sample_rate,
            max_duration=au.max_duration,
            crop=au.crop,
            res_type=au.res_type,
            n_fft=fe.n_fft,
            hop_length=fe.hop_length,
        )
        for name in folds["filename"]
    )
    x = np.vstack(rows)
    t_features = time.perf_counter() - t0
    t0 = time.perf_counter()
    fold = folds["fold"].to_numpy()
    proba = np.full(y.shape, np.nan)
    for k in np.unique(fold):
        model = make_pipeline(
            StandardScaler(),
            OneVsRestClassifier(LogisticRegression(max_iter=2000, class_weight="balanced")),
        )
        model.fit(x[fold != k], y[fold != k])
        proba[fold == k] = model.predict_proba(x[fold == k])
    seconds = {
        "features": t_features,
        "fit": time.perf_counter() - t0,
        "n_features": x.shape[1],
    }
    return folds, y, proba, classes, seconds


def _per_label_f1(y: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    decisions = (scores >= thresholds).astype(np.int64)
    return f1_score(y, decisions, average=None, zero_division=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/demo_multilabel"))
    parser.add_argument("--run", type=Path, default=Path("runs/bench_multilabel"))
    parser.add_argument(
        "--fresh", action="store_true", help="delete the run folder first and retrain"
    )
    parser.add_argument("--jobs", type=int, default=-1, help="joblib workers (-1: all cores)")
    args = parser.parse_args()
    config = Config.preset(PRESET)
    ec = config.ensemble
    t_start = time.perf_counter()
    print(f"cores: {os.cpu_count()}, n_jobs={args.jobs}, preset {PRESET}")

    print("== 1. pipeline")
    print(pipeline_section(args.data, args.run, config, args.fresh, args.jobs))
    run = RunDir(args.run)

    print("\n== 2. classical baseline on the run's folds")
    folds, y_folds, base_proba, classes, secs = baseline_section(args.data, run, config, args.jobs)
    task = get_task("multilabel")
    archs = list(config.train.architectures)
    oof = run.load_oof(archs, classes, encode=task.encode)
    order = pd.Index(folds["filename"]).get_indexer(oof.filenames)
    if (order < 0).any() or len(order) != len(folds):
        raise SystemExit(f"{run.folds_file} and the OOF files cover different clips")
    y, f, base = y_folds[order], folds["fold"].to_numpy()[order], base_proba[order]
    if not np.array_equal(y, oof.y.astype(np.int64)) or not np.array_equal(f, oof.folds):
        raise SystemExit("folds.csv and the OOF files disagree on labels or folds")
    print(
        f"{len(y)} clips, {len(np.unique(f))} folds, {len(classes)} labels {list(classes)}; "
        f"{secs['n_features']} features per clip: extraction {secs['features']:.1f} s "
        f"({1000 * secs['features'] / len(y):.0f} ms/clip), fitting {secs['fit']:.1f} s"
    )

    tune = {"mode": ec.threshold, "min_positives": ec.min_positives}
    report, _ = score_multilabel_ensembles(
        oof.probas,
        y,
        model_names=archs,
        folds=f,
        metric=ec.metric,
        method=ec.method,
        metrics=["f1_macro", "map"],
        methods=task.ensembles,
        weights=ec.weights or None,
        k=ec.vote_k or None,
        threshold_mode=ec.threshold,
        min_positives=ec.min_positives,
        seed=config.train.seed,
    )
    table = report.table[["name", "kind", "f1_macro", "map"]].copy()
    ensembles = table[table["kind"] == "ensemble"]
    best = ensembles.loc[ensembles["f1_macro"].idxmax()].to_dict()
    base_t = cross_fit_thresholds(y, base, f, **tune)
    base_f1 = MULTILABEL_METRICS["f1_macro"](y, base, thresholds=base_t)
    base_map = MULTILABEL_METRICS["map"](y, base)

    print("\n== 3. OOF scores (macro-F1 at cross-fitted thresholds; mAP threshold-free)")
    print(f"{'':44s} {'macro-F1':>9s} {'mAP':>7s}")
    for r in table.itertuples(index=False):
        kind = "model" if r.kind == "model" else "ensemble"
        print(f"{kind + ' ' + r.name:44s} {r.f1_macro:9.4f} {r.map:7.4f}")
    print(
        f"{'best ensemble (' + best['name'] + ')':44s} {best['f1_macro']:9.4f} {best['map']:7.4f}"
    )
    print(f"{BASELINE:44s} {base_f1:9.4f} {base_map:7.4f}")
    margin = best["f1_macro"] - base_f1
    verdict = "met" if margin >= TARGET_MARGIN else "MISSED"
    print(
        f"\nmargin best ensemble - baseline: macro-F1 {margin:+.4f} "
        f"(target >= +{TARGET_MARGIN:.2f}: {verdict}); mAP {best['map'] - base_map:+.4f}"
    )
    pick = table.set_index("name").loc[report.best_method].to_dict()
    print(
        f"the pipeline's pick (best OOF {report.metric}): {report.best_method}, macro-F1 "
        f"{pick['f1_macro']:.4f}, margin {pick['f1_macro'] - base_f1:+.4f}"
    )

    print("\n== 4. per label: OOF average precision / F1 at cross-fitted thresholds")
    ens = make_multilabel_ensemble(
        best["name"],
        weights=ec.weights or None,
        k=ec.vote_k or None,
        threshold_mode=ec.threshold,
        min_positives=ec.min_positives,
        seed=config.train.seed,
    )
    best_scores = ens.oof_predict_proba(oof.probas, y, f)
    columns = {a: oof.probas[i] for i, a in enumerate(archs)}
    columns[f"ens:{best['name']}"] = best_scores
    columns["baseline"] = base
    print(f"{'label':10s} {'pos':>4s}  " + "  ".join(f"{n:>20s}" for n in columns))
    f1s = {}
    for name, s in columns.items():
        if name == f"ens:{best['name']}" and best["name"] == "mode":
            t = ens.decision_threshold(len(archs))
        else:
            t = cross_fit_thresholds(y, s, f, **tune)
        f1s[name] = _per_label_f1(y, s, t)
    for j, label in enumerate(classes):
        cells = [
            f"AP {average_precision_score(y[:, j], s[:, j]):.3f} F1 {f1s[n][j]:.3f}"
            for n, s in columns.items()
        ]
        print(f"{label:10s} {int(y[:, j].sum()):4d}  " + "  ".join(f"{c:>20s}" for c in cells))
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
