"""Benchmark: the opt-in int8 ONNX engine against the fp32 ONNX export of a trained run.

Usage::

    .venv/bin/python benchmarks/bench_onnx_int8.py [--run runs/demo --data data/demo]
        [--root data/bench_timeline] [--long FILE] [--variants minmax,minmax-tensor,
        percentile,entropy] [--repeat 2]

Without ``--run`` it uses (or builds, as ``bench_timeline.py`` does, about 7 minutes on 2
cores) the emotion run of ``bench_timeline.py`` under ``--root`` (``cpu_demo``: resnest14d +
resnet18, 5 folds) on its demo competition; ``--run`` needs ``--data``, the competition
folder the run was trained on.  The long recording defaults to ``bench_timeline.py``'s
10-minute one (``ROOT/long/ten/long_00.wav``, made when missing).

Every quantisation variant (:data:`VARIANTS`: calibration method, per-channel or
per-tensor weights) is written into a scratch copy of the run (hard links to its files,
so the run itself is untouched) by :func:`~emo_utils.infer.onnx_export.export_onnx_int8`
(each fold calibrated on :data:`~emo_utils.infer.calibration.CALIBRATION_WINDOWS` windows
of its own training rows).  Then, in one process, for the fp32 ``"onnx"`` engine and every
variant's ``"onnx-int8"`` engine it prints:

* the real-time factor of a timeline of the long recording (seconds of audio per second
  of compute; best of ``--repeat``, engines alternating; ``RunClassifier``, shared STFT
  frames, the ``bench_timeline.py`` path) and its ratio to fp32;
* against fp32 on that timeline's windows: the largest and mean absolute probability
  difference and the share of windows with the same predicted class;
* the OOF accuracy and macro F1 of every architecture (each fold's model on its own
  validation rows) and the held-out accuracy and macro F1 of the test split against
  ``test_answers.csv`` (the demo's answers, when the folder has them), per architecture
  and for the run's submission ensemble method;
* the load average with each figure (other processes skew timings; ratios in one run
  are what count).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from bench_timeline import _trained
from sklearn.metrics import accuracy_score, f1_score

from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.datasets import make_demo_dataset
from emo_utils.datasets.long import make_long_recordings
from emo_utils.features import build_cache
from emo_utils.infer.onnx_export import ENGINES, export_onnx, export_onnx_int8
from emo_utils.infer.predict import predict_rows, predict_test, view_settings
from emo_utils.runs import RunDir
from emo_utils.timeline import RunClassifier
from emo_utils.timeline.timelines import file_timeline

#: Variant name -> (calibration method, per-channel weights).
VARIANTS: dict[str, tuple[str, bool]] = {
    "minmax": ("minmax", True),
    "minmax-tensor": ("minmax", False),
    "percentile": ("percentile", True),
    "entropy": ("entropy", True),
}


def _load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def _scratch_run(run: Path, into: Path) -> Path:
    """A copy of ``run`` whose files are hard links (the run's own files are never written)."""
    shutil.copytree(run, into, copy_function=os.link)
    return into


def _oof_scores(run: RunDir, config: Config, store, engine: str) -> dict[str, tuple[float, float]]:
    """Architecture -> (OOF accuracy, OOF macro F1): each fold's model on its validation rows."""
    folds = pd.read_csv(run.folds_file)
    index = {name: i for i, name in enumerate(store.filenames)}
    rows = np.array([index[n] for n in folds["filename"]])
    classes = list(run.read_classes())
    truth = folds["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    scores = {}
    for arch in config.train.architectures:
        predicted = np.zeros(len(folds), dtype=np.int64)
        for fold in range(config.train.n_folds):
            mask = folds["fold"].to_numpy() == fold
            model = ENGINES[engine](run, arch=arch, fold=fold)
            probs = predict_rows(
                model,
                store,
                rows[mask],
                task=config.data.task,
                batch_size=2 * config.train.batch_size,
                device="cpu",
                **view_settings(config),
            )
            predicted[mask] = probs.argmax(1)
        scores[arch] = (
            accuracy_score(truth, predicted),
            f1_score(truth, predicted, average="macro"),
        )
    return scores


def _held_out(
    run: RunDir, clf: RunClassifier, test_store, engine: str, answers: pd.DataFrame
) -> dict[str, tuple[float, float]]:
    """Name -> (held-out accuracy, macro F1) per architecture and for the run's ensemble."""
    probs = predict_test(
        test_store, run_dir=run, device="cpu", progress=False, write=False, loader=ENGINES[engine]
    )
    truth = pd.Series(test_store.filenames).map(dict(answers.itertuples(index=False))).to_numpy()
    classes = np.array(clf.classes)
    scored = dict(probs)
    stacked = np.stack([probs[arch] for arch in clf.architectures])
    scored[f"ensemble ({clf.method})"] = clf._ensemble.predict_proba(stacked)
    return {
        name: (
            accuracy_score(truth, classes[p.argmax(1)]),
            f1_score(truth, classes[p.argmax(1)], average="macro"),
        )
        for name, p in scored.items()
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("data/bench_timeline"))
    parser.add_argument("--run", type=Path, default=None, help="a trained run (e.g. runs/demo)")
    parser.add_argument("--data", type=Path, default=None, help="its competition folder")
    parser.add_argument("--long", type=Path, default=None, help="the long recording")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--repeat", type=int, default=2, help="timelines per engine (best)")
    parser.add_argument("--jobs", type=int, default=-1)
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {sorted(VARIANTS)}")
    if args.run is None:
        args.data = make_demo_dataset(args.root / "demo", n_jobs=args.jobs)
        args.run = _trained(
            args.data, args.root / "runs" / "emotion", Config.preset("cpu_demo"), args.jobs
        )
    elif args.data is None:
        parser.error("--run needs --data (the competition folder it was trained on)")
    if args.long is None:
        args.long = args.root / "long" / "ten" / "long_00.wav"
        if not args.long.is_file():
            make_long_recordings(args.data, args.long.parent, minutes=(10.0,), seed=2)
    run = RunDir(args.run)
    config = run.read_config()
    lines = [f"machine: {os.cpu_count()} cores, {_load()} at the start"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(run, progress=False)
    competition = load_competition(args.data, config.data)
    train_store = build_cache(competition, "train", config=config, progress=False)
    answers_file = args.data / "test_answers.csv"
    answers = pd.read_csv(answers_file, dtype=str) if answers_file.is_file() else None
    test_store = build_cache(competition, "test", config=config, progress=False)

    with tempfile.TemporaryDirectory(prefix="bench_int8_", dir=args.run.parent) as tmp:
        engines = {"fp32": (run, "onnx")}
        for name in variants:
            method, per_channel = VARIANTS[name]
            scratch = RunDir(_scratch_run(args.run, Path(tmp) / name))
            began = time.perf_counter()
            export_onnx_int8(
                scratch,
                store=train_store,
                method=method,
                per_channel=per_channel,
                force=True,
                progress=False,
            )
            lines.append(
                f"quantised {name} ({method}, per-{'channel' if per_channel else 'tensor'}): "
                f"{time.perf_counter() - began:.0f} s for "
                f"{len(config.train.architectures) * config.train.n_folds} folds ({_load()})"
            )
            engines[f"int8 {name}"] = (scratch, "onnx-int8")
        classifiers = {
            label: RunClassifier(r, engine=engine) for label, (r, engine) in engines.items()
        }
        best = dict.fromkeys(classifiers, 0.0)
        probs: dict[str, np.ndarray] = {}
        duration = 0.0
        for rep in range(args.repeat):
            order = list(classifiers) if rep % 2 == 0 else list(classifiers)[::-1]
            for label in order:
                began = time.perf_counter()
                timeline = file_timeline(classifiers[label], args.long, spectrogram=False)
                spent = time.perf_counter() - began
                duration = timeline.duration
                best[label] = max(best[label], timeline.duration / spent)
                probs.setdefault(label, timeline.probabilities)
        lines.append(
            f"timelines of {args.long} ({duration / 60:.1f} min, {len(probs['fp32'])} windows), "
            f"best of {args.repeat}; {_load()}"
        )
        reference = probs["fp32"]
        header = f"  {'engine':22s} {'RTF':>7s} {'x fp32':>7s} {'max|dp|':>8s} {'mean|dp|':>9s} {'agree':>7s}"
        lines.append(header)
        for label in classifiers:
            diff = np.abs(probs[label] - reference)
            agree = float(np.mean(probs[label].argmax(1) == reference.argmax(1)))
            lines.append(
                f"  {label:22s} {best[label]:7.1f} {best[label] / best['fp32']:7.2f} "
                f"{diff.max():8.4f} {diff.mean():9.5f} {100 * agree:6.2f}%"
            )
        lines.append("scores (accuracy / macro F1): OOF per architecture; held-out test split")
        for label, (r, engine) in engines.items():
            oof = _oof_scores(RunDir(r), config, train_store, engine)
            parts = [f"OOF {a} {acc:.4f}/{f1:.4f}" for a, (acc, f1) in oof.items()]
            if answers is not None:
                held = _held_out(RunDir(r), classifiers[label], test_store, engine, answers)
                parts += [f"held-out {a} {acc:.4f}/{f1:.4f}" for a, (acc, f1) in held.items()]
            lines.append(f"  {label:14s} " + "; ".join(parts))
    lines.append(f"machine at the end: {_load()}")
    print(
        f"run: {args.run} ({', '.join(config.train.architectures)}, {config.train.n_folds} folds)"
    )
    for line in lines:
        print(line, flush=True)


if __name__ == "__main__":
    main()
