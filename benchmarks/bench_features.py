"""Benchmark: feature extraction of emo_utils against the usual notebook recipe.

Builds a generated corpus (wav, mp3, flac and ogg; 16-48 kHz; mono and stereo; 0.5-20 s, most
1-6 s) and measures, in one run and on the same clips:

(a) the usual recipe -- ``librosa.load(path, sr=rate)`` (whole file), zero-pad/crop to the
    duration, then ``librosa.feature.melspectrogram``, ``librosa.feature.chroma_stft`` and
    ``librosa.stft``, each computing its own STFT (and filter bank), dB conversion, the same
    resizing and normalisation as the package;
(b) this package -- :func:`emo_utils.audio.load_clip` (decodes only the needed window) and
    :func:`emo_utils.features.compute_image` (one STFT, cached filter banks).

Both run in this process, one clip after the other, alternating which recipe goes first, with
BLAS limited to one thread (as in joblib workers); each clip is timed ``--repeat`` times per
recipe and the fastest kept, so pauses caused by other processes do not favour either side.
The package is also timed as a user runs it: :func:`emo_utils.cache.build_cache` over the
whole corpus with ``--jobs`` workers (pool started beforehand; its start-up is printed
separately), which also writes the cache.  Last, a re-run of ``build_cache`` on the unchanged
cache, as a fraction of the first run.

Targets: >= 3x the usual recipe's clips per second with identical images; re-run < 5 % of
the first run.  The single-process ratio is bounded by the work both recipes share (decoding
the window, one STFT, and the tuning estimate of ``chroma_stft``, about a third of the
package's time); the rest of the target comes from the parallel workers.

Usage::

    python benchmarks/bench_features.py [--clips 200] [--repeat 3] [--jobs -1] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import joblib
import librosa
import numpy as np
import pandas as pd
import soundfile as sf
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from emo_utils.audio import load_clip
from emo_utils.cache import build_cache
from emo_utils.competition import load_competition
from emo_utils.config import Config
from emo_utils.errors import EmoUtilsWarning
from emo_utils.features import CHANNELS, compute_image, normalize, resize_rows

FORMATS = {"wav": {"subtype": "PCM_16"}, "mp3": {}, "flac": {}, "ogg": {}}
RATES = (16000, 22050, 44100, 48000)


def _duration(rng: np.random.Generator) -> float:
    """0.5-20 s, most 1-6 s (like the reference competition's clips)."""
    u = rng.random()
    if u < 0.1:
        return float(rng.uniform(0.5, 1.0))
    if u < 0.8:
        return float(rng.uniform(1.0, 6.0))
    return float(rng.uniform(6.0, 20.0))


def _voice(rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    """A harmonic tone with a pitch contour, syllable envelope and noise."""
    n = round(sr * seconds)
    t = np.arange(n) / sr
    f0 = rng.uniform(90, 260) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.2, 1.5) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(2, 5) * t)) ** 2
    y = y * envelope + 0.05 * rng.standard_normal(n)
    return (rng.uniform(0.05, 0.6) * y / np.max(np.abs(y))).astype(np.float32)


def make_corpus(root: Path, *, n_clips: int, seed: int) -> Path:
    """A competition folder (train.csv, train/) with ``n_clips`` generated clips."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_clips):
        fmt = list(FORMATS)[i % len(FORMATS)]
        sr = int(rng.choice(RATES))
        y = _voice(rng, sr, _duration(rng))
        if rng.random() < 0.15:
            y = np.stack([y, 0.8 * y], axis=1)
        name = f"{i:05d}.{fmt}"
        (root / "train").mkdir(parents=True, exist_ok=True)
        sf.write(root / "train" / name, y, sr, **FORMATS[fmt])
        rows.append({"filename": name, "emotion": "ab"[i % 2]})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    pd.DataFrame({"filename": [r["filename"] for r in rows[:2]]}).to_csv(
        root / "test.csv", index=False
    )
    return root


def usual_recipe(path: str, config: Config) -> np.ndarray:
    """The notebook recipe: full decode, three librosa calls with three STFTs."""
    a, f = config.audio, config.features
    y, sr = librosa.load(path, sr=a.sample_rate)
    y = librosa.util.fix_length(y, size=a.n_samples)
    stft_kw = {"n_fft": f.n_fft, "hop_length": f.hop_length, "win_length": f.win_length or None}
    mel = librosa.feature.melspectrogram(
        y=y, sr=sr, n_mels=f.n_mels, fmin=f.fmin, fmax=f.fmax or None, **stft_kw
    )
    chroma = librosa.feature.chroma_stft(y=y, sr=sr, n_chroma=f.n_chroma, **stft_kw)
    stft = np.abs(librosa.stft(y, **stft_kw))
    top_db = f.top_db or None
    channels = {
        "mel": librosa.power_to_db(mel, ref=1.0, top_db=top_db),
        "chroma": chroma,
        "stft": librosa.amplitude_to_db(stft, ref=1.0, top_db=top_db),
    }
    return np.stack(
        [
            normalize(
                resize_rows(channels[name], height=f.n_mels),
                method=f.normalization,
                fixed_range=CHANNELS[name].fixed_range(config=f),
            )
            for name in f.channels
        ]
    ).astype(np.float32)


def package_recipe(path: str, config: Config) -> np.ndarray:
    """This package: decode the window, one STFT, cached filter banks."""
    y = load_clip(path, config=config.audio)
    return compute_image(y, sample_rate=config.audio.sample_rate, config=config.features)


def compare(paths: list[str], config: Config, *, repeat: int) -> dict[str, float]:
    """Interleaved timing of both recipes on every clip, and the max abs difference.

    Each clip is run ``repeat`` times by each recipe (alternating which goes first).  Both
    the fastest time per clip (which filters out pauses caused by other processes) and the
    mean time (wall clock, comparable with ``build_cache``) are summed.
    """
    for p in paths[:3]:  # warm-up: imports, numba compilation, filter caches
        usual_recipe(p, config)
        package_recipe(p, config)
    t_usual = t_package = 0.0
    wall = {usual_recipe: 0.0, package_recipe: 0.0}
    max_diff = 0.0
    identical = True
    with threadpool_limits(limits=1, user_api="blas"):
        for k, p in enumerate(paths):
            best = {usual_recipe: np.inf, package_recipe: np.inf}
            images = {}
            for r in range(repeat):
                first = (k + r) % 2 == 0
                order = (usual_recipe, package_recipe) if first else (package_recipe, usual_recipe)
                for fn in order:
                    t0 = time.perf_counter()
                    images[fn] = fn(p, config)
                    seconds = time.perf_counter() - t0
                    best[fn] = min(best[fn], seconds)
                    wall[fn] += seconds / repeat
            t_usual += best[usual_recipe]
            t_package += best[package_recipe]
            a, b = images[usual_recipe], images[package_recipe]
            max_diff = max(max_diff, float(np.max(np.abs(a - b))))
            identical = identical and a.shape == b.shape and np.array_equal(a, b)
    return {
        "usual_cps": len(paths) / t_usual,
        "package_cps": len(paths) / t_package,
        "usual_wall_cps": len(paths) / wall[usual_recipe],
        "package_wall_cps": len(paths) / wall[package_recipe],
        "max_abs_diff": max_diff,
        "identical": identical,
    }


def _warm_worker(path: str, config: Config) -> int:
    """Import everything a cache worker needs and compute one image (numba, lazy imports)."""
    package_recipe(path, config)
    return os.getpid()


def warm_up_workers(path: str, config: Config, n_jobs: int) -> float:
    """Start joblib's worker pool (reused by build_cache) and return the seconds it took."""
    t0 = time.perf_counter()
    n = joblib.cpu_count() if n_jobs < 0 else n_jobs
    Parallel(n_jobs=n_jobs)(delayed(_warm_worker)(path, config) for _ in range(2 * n))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200, help="corpus size (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="timings per clip (best kept)")
    parser.add_argument("--jobs", type=int, default=-1, help="build_cache workers (default all)")
    parser.add_argument("--out", type=Path, default=None, help="keep the corpus in this folder")
    args = parser.parse_args(argv)

    root = args.out or Path(tempfile.mkdtemp(prefix="emo_bench_"))
    try:
        print(f"corpus: {args.clips} clips in {root}")
        make_corpus(root, n_clips=args.clips, seed=args.seed)
        config = Config()
        comp = load_competition(root, config.data)
        paths = comp.train["path"].tolist()
        seconds = [sf.info(p).duration for p in paths]
        print(
            f"  formats {sorted({Path(p).suffix for p in paths})}, rates {list(RATES)}, "
            f"durations {min(seconds):.1f}-{max(seconds):.1f} s (median {np.median(seconds):.1f})"
        )
        print(
            f"config: {config.audio.sample_rate} Hz, {config.audio.duration} s, "
            f"n_fft {config.features.n_fft}, hop {config.features.hop_length}, "
            f"n_mels {config.features.n_mels}, channels {list(config.features.channels)}, "
            f"precision {config.features.precision}, cache {config.features.cache_dtype}"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmoUtilsWarning)
            r = compare(paths, config, repeat=args.repeat)
            startup = warm_up_workers(paths[0], config, args.jobs)
            cache_dir = root / ".emo_cache_bench"
            t0 = time.perf_counter()
            store = build_cache(comp, "train", config, cache_dir, n_jobs=args.jobs, progress=False)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = build_cache(comp, "train", config, cache_dir, n_jobs=args.jobs, progress=False)
            rerun = time.perf_counter() - t0
        if again.stats["computed"]:
            raise SystemExit("the re-run recomputed clips: the cache was not reused")
        cached = store.stack(range(20))
        direct = np.stack([package_recipe(p, config) for p in paths[:20]])
        f16 = float(np.max(np.abs(cached - direct)))

        usual, single = r["usual_cps"], r["package_cps"]
        usual_wall, single_wall = r["usual_wall_cps"], r["package_wall_cps"]
        parallel = len(paths) / first
        print("\nclips per second (same clips, same run, BLAS 1 thread):")
        print(f"  {'':44s} {'best of ' + str(args.repeat):>12s} {'mean':>12s}")
        print(f"  {'(a) usual recipe, one process':44s} {usual:12.1f} {usual_wall:12.1f}")
        print(f"  {'(b) emo_utils, one process':44s} {single:12.1f} {single_wall:12.1f}")
        print(
            f"  {'    ratio (b)/(a)':44s} {single / usual:11.2f}x {single_wall / usual_wall:11.2f}x"
            "   [target >= 3x]"
        )
        print(
            f"  {f'(b) emo_utils build_cache, n_jobs={args.jobs}':44s} {'':12s} {parallel:12.1f}"
            f"   {parallel / usual_wall:.2f}x (a) mean"
        )
        print(
            f"      (worker pool started before it: {startup:.1f} s; counting it: "
            f"{len(paths) / (first + startup):.1f} clips/s)"
        )
        print(
            f"  max |a - b| of the float32 images          : {r['max_abs_diff']:.3g}   "
            f"({'bit-identical' if r['identical'] else 'NOT bit-identical'})"
        )
        print(
            f"  cached {config.features.cache_dtype} vs float32 images         : max |diff| {f16:.2g}"
        )
        print("\nbuild_cache:")
        print(f"  first run                                  : {first:8.2f} s")
        print(
            f"  re-run on the unchanged cache              : {rerun:8.3f} s   "
            f"{100 * rerun / first:.2f} % of the first run [target < 5 %]"
        )
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
