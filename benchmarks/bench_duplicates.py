"""Near-duplicate detection: planted copies found, threshold calibration, and how cost grows.

Usage::

    .venv/bin/python benchmarks/bench_duplicates.py [--demo-dir DIR] [--sizes 250 500 1000 2000]

Prints, all measured in this one run:

1. **Demo set** (``make_demo_dataset``, 350 train + 150 test clips, generated into a
   temporary folder unless ``--demo-dir`` names one) plus planted copies of 30 training
   clips (shifted, cut, gain-changed, re-encoded as mp3, resampled to 8 or 48 kHz, all at
   once): seconds to fingerprint and to search, planted pairs found, false pairs.
2. **Calibration** on 60 demo clips: chunk distances of transformed copies (99th
   percentile) against distances to other clips (1st percentile), the calibrated threshold
   and :data:`emo_utils.data.duplicates.DEFAULT_THRESHOLD`.
3. **Scaling** on ``n`` distinct voice-like clips (16 kHz wav, demo durations): fingerprint
   and search seconds per size (fastest of two runs), their ratio to the smallest size, the fitted growth exponent
   of the search, and an extrapolation to the real competition (5816 training clips) and to
   20000 clips; then the exact full-dimensional search against the default PCA-filtered one
   (same pairs, speed ratio) and ``index_step=2``.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import soundfile as sf

from emo_utils.data.duplicates import DEFAULT_THRESHOLD, calibrate_threshold, find_duplicates
from emo_utils.datasets.synthetic import demo_plan, make_demo_dataset, synthesize_voice

#: Scaling runs are repeated and the fastest kept (timeit's rule: slower runs measure noise).
REPEATS = 2


def _plant(sources: list[Path], out: Path, seed: int) -> list[tuple[str, str]]:
    """Write a transformed copy of every source; return ``(source, copy)`` pairs."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    pairs = []
    for k, src in enumerate(sources):
        y, sr = sf.read(src, dtype="float32", always_2d=True)
        y = y.mean(axis=1)
        kind = k % 6
        if kind == 0:  # time shift: leading silence
            z, rate, ext = (
                np.concatenate([np.zeros(int(rng.uniform(0.1, 0.9) * sr), np.float32), y]),
                sr,
                "wav",
            )
        elif kind == 1:  # cut the start
            z, rate, ext = y[int(rng.uniform(0.1, 0.5) * sr) :], sr, "flac"
        elif kind == 2:  # gain
            z, rate, ext = y * 10 ** (rng.uniform(-20, -3) / 20), sr, "wav"
        elif kind == 3:  # re-encoding
            z, rate, ext = y, sr, "mp3"
        elif kind == 4:  # resampling
            rate = int(rng.choice([8000, 48000]))
            z, ext = librosa.resample(y, orig_sr=sr, target_sr=rate), "wav"
        else:  # everything at once
            rate = 22050
            z = np.concatenate([np.zeros(int(0.3 * sr), np.float32), 2.0 * y])
            z, ext = np.clip(librosa.resample(z, orig_sr=sr, target_sr=rate), -1, 1), "mp3"
        path = out / f"copy{k}.{ext}"
        sf.write(path, z, rate)
        pairs.append((str(src), str(path)))
    return pairs


def demo_section(demo_dir: Path, work: Path, n_jobs: int) -> list[Path]:
    t0 = time.perf_counter()
    make_demo_dataset(demo_dir, n_train=350, n_test=150, seed=0)
    gen = time.perf_counter() - t0
    train = pd.read_csv(demo_dir / "train.csv", dtype=str)
    test = pd.read_csv(demo_dir / "test.csv", dtype=str)
    paths = [demo_dir / "train" / f for f in train["filename"]]
    paths += [demo_dir / "test" / f for f in test["filename"]]
    long_enough = [p for p in paths[: len(train)] if sf.info(p).duration >= 1.5]
    rng = np.random.default_rng(0)
    sources = [long_enough[i] for i in rng.choice(len(long_enough), size=30, replace=False)]
    planted = _plant(sources, work / "planted", seed=1)

    all_paths = paths + [Path(c) for _, c in planted]
    report = find_duplicates(all_paths, n_jobs=n_jobs, progress=False)
    found = {frozenset(p) for p in zip(report.pairs["file_a"], report.pairs["file_b"], strict=True)}
    expected = {frozenset(p) for p in planted}
    fp, search = report.seconds["fingerprint"], report.seconds["search"]
    print("== 1. demo set (make_demo_dataset 350 train + 150 test) + 30 planted copies")
    print(f"demo folder: {demo_dir} (generated/reused in {gen:.1f} s)")
    print(
        f"{len(all_paths)} clips, {report.n_chunks} indexed chunks: fingerprint {fp:.1f} s "
        f"({1000 * fp / len(all_paths):.1f} ms/clip), search {search:.1f} s, total {fp + search:.1f} s"
    )
    print(
        f"planted pairs found: {len(expected & found)}/{len(expected)}; "
        f"false pairs: {len(found - expected)}; clips merged: {report.n_merged}"
    )
    dist = report.pairs["distance"]
    if len(dist):
        print(
            f"pair distances: median {dist.median():.3f}, max {dist.max():.3f} "
            f"(threshold {report.threshold:.3f})"
        )
    return paths[: len(train)]


def calibration_section(train_paths: list[Path]) -> None:
    t0 = time.perf_counter()
    cal = calibrate_threshold(train_paths, n_clips=60, seed=0)
    print("\n== 2. calibration on 60 demo clips (chunk distances, [0, 2])")
    print(cal.summary())
    print(
        f"DEFAULT_THRESHOLD = {DEFAULT_THRESHOLD}: margin to copies "
        f"{DEFAULT_THRESHOLD / cal.positive_q99:.2f}x, to distinct clips "
        f"{cal.negative_q01 / DEFAULT_THRESHOLD:.2f}x ({time.perf_counter() - t0:.1f} s)"
    )


def _synthetic_clips(out: Path, n: int, seed: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    plan = demo_plan(n_train=max(n, 35), n_test=1, seed=seed).iloc[:n]
    paths = []
    for row in plan.itertuples(index=False):
        path = out / f"{row.filename.rsplit('.', 1)[0]}.wav"
        if not path.exists():
            y = synthesize_voice(
                emotion=row.emotion,
                duration=row.duration,
                sample_rate=16000,
                channels=1,
                rng=np.random.default_rng(row.clip_seed),
            )
            sf.write(path, y, 16000)
        paths.append(path)
    return paths


def scaling_section(work: Path, sizes: list[int], n_jobs: int) -> None:
    print("\n== 3. scaling on distinct synthetic clips (16 kHz wav, demo durations)")
    pool = _synthetic_clips(work / "scaling", max(sizes), seed=11)
    rows = []
    for n in sizes:
        reps = [find_duplicates(pool[:n], n_jobs=n_jobs, progress=False) for _ in range(REPEATS)]
        fp = min(r.seconds["fingerprint"] for r in reps)
        search = min(r.seconds["search"] for r in reps)
        rows.append((n, reps[0].n_chunks, fp, search, len(reps[0].pairs)))
    base = rows[0]
    print(
        f"{'clips':>6} {'chunks':>8} {'fingerprint s':>14} {'ratio':>6} {'search s':>9} {'ratio':>6} {'pairs':>6}"
    )
    for n, chunks, fp, search, pairs in rows:
        print(
            f"{n:6d} {chunks:8d} {fp:14.1f} {fp / base[2]:6.1f} {search:9.2f} "
            f"{search / max(base[3], 1e-9):6.1f} {pairs:6d}"
        )
    (n1, _, _, s1, _), (n2, _, f2, s2, _) = rows[-2], rows[-1]
    exponent = math.log(max(s2, 1e-9) / max(s1, 1e-9)) / math.log(n2 / n1)
    print(
        f"clip count x{n2 / n1:.1f} -> search time x{s2 / max(s1, 1e-9):.1f} (exponent {exponent:.2f}; brute force is 2)"
    )
    for target in (5816, 20000):
        scale = target / n2
        fp = f2 * scale
        search_lin = s2 * scale ** max(exponent, 1.0)
        search_sq = s2 * scale**2
        print(
            f"extrapolated to {target} clips: fingerprint ~{fp:.0f} s, search ~{search_lin:.0f} s "
            f"(fitted exponent) / ~{search_sq:.0f} s (quadratic)"
        )

    n = sizes[len(sizes) // 2]
    timings = {}
    for label, kwargs in (
        ("PCA-filtered search (default)", {}),
        ("exact full-dimensional search", {"search_dims": None}),
        ("index_step=2", {"index_step": 2}),
    ):
        reps = [
            find_duplicates(pool[:n], n_jobs=n_jobs, progress=False, **kwargs)
            for _ in range(REPEATS)
        ]
        timings[label] = (min(r.seconds["search"] for r in reps), len(reps[0].pairs))
    ref = timings["PCA-filtered search (default)"][0]
    print(f"search variants on {n} clips:")
    for label, (secs, pairs) in timings.items():
        print(f"  {label:32s} {secs:7.2f} s  ({secs / ref:4.1f}x the default)  pairs {pairs}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--demo-dir", type=Path, default=None, help="demo folder to create or reuse"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--jobs", type=int, default=-1, help="joblib workers (-1: all cores)")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, n_jobs={args.jobs}")
    with tempfile.TemporaryDirectory(prefix="bench_duplicates-") as tmp:
        work = Path(tmp)
        train_paths = demo_section(args.demo_dir or work / "demo", work, args.jobs)
        calibration_section(train_paths)
        scaling_section(work, sorted(args.sizes), args.jobs)


if __name__ == "__main__":
    main()
