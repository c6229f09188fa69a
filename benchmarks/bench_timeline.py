"""Timelines, streaming and detect-then-categorise on long demo recordings.

Usage::

    .venv/bin/python benchmarks/bench_timeline.py [--root DIR] [--run RUN [--data DATA]]
        [--quick] [--int8] [--jobs N]

In one run it prints:

* the real-time factor of timelines on CPU (seconds of audio per second of compute) for a
  10-minute recording, with the emotion run and with the detector run (the issue's target:
  >= 50 for the demo models on the 2-core machine), for the previous per-window path (every
  window featurised alone, torch checkpoints: ``file_timeline(..., shared=False)`` with
  ``RunClassifier(engine="torch")``) and the fast one (shared STFT frames, the ONNX export of
  the CNN folds on ONNX Runtime) in the same run, with their ratio and the largest
  difference of their probabilities, and the load average of the machine;
* with ``--int8``: the same real-time factor with the emotion run's opt-in int8 engine
  (``RunClassifier(engine="onnx-int8")``; the int8 export is written first where missing,
  calibrated on the training cache of the run's competition: the bench's own demo, or
  ``--data`` with ``--run``), its ratio to the fp32 fast path measured just before it, the
  share of windows whose predicted class is the fp32 path's and the largest probability
  difference;
* the peak traced memory (``tracemalloc``: numpy and Python allocations) of timelines of a
  10-minute and a 60-minute recording with the detector (the target: independent of the
  file's length);
* the streaming latency per window (p50/p95 of the classification time of each window as
  the 0.5 s chunk that completes it arrives);
* event-based and segment-based F1 of detect-then-categorise on three long demo recordings
  (1, 2 and 3 minutes of held-out demo clips in background noise), against their reference.

What it builds under ``--root`` (default ``data/bench_timeline/``), reused when present: the demo
competition, an emotion run (``cpu_demo`` preset: resnest14d + resnet18, 5 folds, 6 epochs,
about 7 minutes on 2 cores; ``--quick``: resnet18, 2 folds, 2 epochs; ``--run`` uses a
trained run instead), a detector run (``voice`` against ``background`` noise, 1 s windows,
``classical:logreg`` on clip statistics, 3 folds: seconds; events with
:data:`DETECT_SETTINGS`), and the long recordings.
The bench's own emotion run is exported to ONNX (``export_onnx``, kept when up to date);
a ``--run`` is used as it is (its ONNX export, where it has one).
Timings depend on the machine's load.
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from emo_utils.config import Config, TimelineConfig
from emo_utils.datasets import make_demo_dataset
from emo_utils.datasets.long import make_detector_competition, make_long_recordings
from emo_utils.infer.onnx_export import export_onnx, export_onnx_int8
from emo_utils.pipeline import run_pipeline
from emo_utils.runs import RunDir
from emo_utils.timeline import RunClassifier
from emo_utils.timeline.detect import detect_files
from emo_utils.timeline.events import evaluate_events
from emo_utils.timeline.stream import stream_file
from emo_utils.timeline.timelines import file_timeline

#: The detector's event settings: 1 s windows every 0.25 s; pauses inside a clip (< 0.75 s)
#: merged, blips shorter than 0.5 s dropped.
DETECT_SETTINGS = {
    "timeline.event_classes": ["voice"],
    "timeline.hop": 0.25,
    "timeline.min_gap": 0.75,
    "timeline.min_duration": 0.5,
}


def _trained(data: Path, run: Path, config: Config, jobs: int) -> Path:
    """Train (or reuse) a run through the whole pipeline."""
    if not RunDir(run).ensemble_report_file(".json").is_file():
        run_pipeline(
            data,
            run_dir=run,
            config=config,
            submissions_dir=run.parent / "submissions",
            n_jobs=jobs,
            progress=False,
        )
    return run


def _rtf(
    classifier: RunClassifier, path: Path, *, shared: bool = True
) -> tuple[float, float, np.ndarray]:
    """``(real-time factor, seconds, probabilities)`` of one timeline (no plot)."""
    began = time.perf_counter()
    timeline = file_timeline(classifier, path, spectrogram=False, shared=shared)
    spent = time.perf_counter() - began
    return timeline.duration / spent, spent, timeline.probabilities


def _load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def _peak(classifier: RunClassifier, path: Path) -> float:
    """Peak traced MB of one timeline (no plot)."""
    tracemalloc.start()
    try:
        file_timeline(classifier, path, spectrogram=False)
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("data/bench_timeline"))
    parser.add_argument("--run", type=Path, default=None, help="a trained emotion run")
    parser.add_argument("--data", type=Path, default=None, help="--run's competition folder")
    parser.add_argument("--quick", action="store_true", help="a small emotion run")
    parser.add_argument(
        "--int8", action="store_true", help="also the emotion run's opt-in int8 engine"
    )
    parser.add_argument("--jobs", type=int, default=-1)
    args = parser.parse_args()
    root = args.root
    demo = make_demo_dataset(root / "demo", n_jobs=args.jobs)
    emotion_config = Config.preset("cpu_demo")
    if args.quick:
        emotion_config = emotion_config.override(
            {"train.architectures": ["resnet18"], "train.n_folds": 2, "train.epochs": 2}
        )
    name = "emotion_quick" if args.quick else "emotion"
    emotion = args.run or _trained(demo, root / "runs" / name, emotion_config, args.jobs)
    detector_data = make_detector_competition(demo, root / "detector_data")
    detector_config = Config.preset("cpu_demo").override(
        {
            "audio.duration": 1.0,
            "audio.max_duration": 1.0,
            "train.architectures": ["classical:logreg"],
            "train.n_folds": 3,
            "ensemble.method": "mean",
        }
    )
    detector = _trained(detector_data, root / "runs" / "detector_1s", detector_config, args.jobs)
    long = root / "long"
    if not (long / "events" / "reference.csv").is_file():
        make_long_recordings(demo, long / "events", minutes=(1.0, 2.0, 3.0), seed=1)
    if not (long / "ten" / "reference.csv").is_file():
        make_long_recordings(demo, long / "ten", minutes=(10.0,), seed=2)
    if not (long / "sixty" / "reference.csv").is_file():
        make_long_recordings(demo, long / "sixty", minutes=(60.0,), seed=3)

    if args.run is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx(emotion, progress=False)
    if args.int8:
        if args.run is not None and args.data is None:
            parser.error("--int8 with --run needs --data (the run's competition folder)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx_int8(emotion, data_dir=args.data or demo, progress=False)
    emotion_clf = RunClassifier(emotion)
    detector_clf = RunClassifier(detector)
    ten, sixty = long / "ten" / "long_00.wav", long / "sixty" / "long_00.wav"
    lines = [f"machine: {os.cpu_count()} cores, {_load()} at the start"]
    archs = ", ".join(emotion_clf.architectures)
    n_models = len(emotion_clf.architectures) * emotion_clf.config.train.n_folds
    for label, run, clf in (
        ("emotion", emotion, emotion_clf),
        ("detector", detector, detector_clf),
    ):
        old_rtf, old_spent, old_p = _rtf(RunClassifier(run, engine="torch"), ten, shared=False)
        rtf, spent, p = _rtf(clf, ten)
        lines.append(
            f"real-time factor, 10-minute file, {label} run: {rtf:8.1f}  ({spent:.1f} s; "
            f"per-window path {old_rtf:.1f} ({old_spent:.1f} s): x{rtf / old_rtf:.2f}; "
            f"largest probability difference {np.abs(p - old_p).max():.1e}; {_load()})"
        )
        if label == "emotion" and args.int8:
            q_rtf, q_spent, q = _rtf(RunClassifier(run, engine="onnx-int8"), ten)
            agree = np.mean(q.argmax(axis=1) == p.argmax(axis=1))
            lines.append(
                f"real-time factor, 10-minute file, emotion run, int8 engine: {q_rtf:8.1f}  "
                f"({q_spent:.1f} s; x{q_rtf / rtf:.2f} the fp32 fast path; same class in "
                f"{100 * agree:.2f} % of {len(q)} windows; largest probability difference "
                f"{np.abs(q - p).max():.1e}; {_load()})"
            )
    peak10, peak60 = _peak(detector_clf, ten), _peak(detector_clf, sixty)
    lines.append(f"peak traced memory, 10-minute file (detector):  {peak10:6.1f} MB")
    lines.append(f"peak traced memory, 60-minute file (detector):  {peak60:6.1f} MB")
    latencies = [
        1000 * w.seconds
        for w in stream_file(emotion_clf, long / "events" / "long_00.wav", chunk=0.5)
    ]
    lines.append(
        f"streaming latency per window (emotion, chunk 0.5 s): p50 {np.percentile(latencies, 50):.0f} ms, "
        f"p95 {np.percentile(latencies, 95):.0f} ms over {len(latencies)} windows"
    )
    began = time.perf_counter()
    result = detect_files(
        [long / "events"],
        run_dir=detector,
        out_dir=root / "detections",
        categorise=emotion,
        reference=long / "events" / "reference.csv",
        overrides=DETECT_SETTINGS,
    )
    spent = time.perf_counter() - began
    overall = result.evaluation.iloc[-1]
    reference = pd.read_csv(long / "events" / "reference.csv").assign(label="voice")
    detection = {
        collar: evaluate_events(
            result.events, reference, settings=TimelineConfig(collar=collar)
        ).iloc[-1]
        for collar in (0.2, 0.5)
    }
    ref = result.evaluation.iloc[:-1]
    lines.append(
        f"detect-then-categorise, 6 minutes of long demo recordings ({spent:.0f} s): "
        f"event-based F1 {overall['event_f1']:.4f}, segment-based F1 {overall['segment_f1']:.4f} "
        f"({int(overall['n_reference'])} reference events, {int(overall['n_estimated'])} detected)"
    )
    lines.append(
        "  per class event F1: "
        + ", ".join(f"{r['class']} {r['event_f1']:.2f}" for _, r in ref.iterrows())
    )
    for collar, scores in detection.items():
        lines.append(
            f"  detection alone (voice vs background), collar {collar} s: event-based F1 "
            f"{scores['event_f1']:.4f}, segment-based F1 {scores['segment_f1']:.4f} "
            f"({int(scores['n_estimated'])} events)"
        )
    engines = sorted({type(m).__name__ for ms in emotion_clf._models.values() for m in ms})
    print(f"emotion run: {emotion} ({archs}; {n_models} fold models, {', '.join(engines)})")
    print(f"detector run: {detector} (classical:logreg, voice vs background)")
    lines.append(f"machine at the end: {_load()}")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
