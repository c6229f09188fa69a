"""Benchmark: feature extraction of emo_utils against the usual notebook recipe.

Builds a generated corpus with :func:`emo_utils.datasets.synthetic.make_demo_dataset` (the real data's
mix: about 90 % mp3 and 10 % wav; 16/22.05/44.1/48 kHz; about 15 % stereo; 0.5-20 s, most
1-6 s; voice-like content) and measures, in one run and on the same clips:

(a) the usual recipe -- ``librosa.load(path, sr=rate)`` (whole file), zero-pad/crop to the
    duration, then ``librosa.feature.melspectrogram``, ``librosa.feature.chroma_stft`` and
    ``librosa.stft``, each computing its own STFT (and filter bank), dB conversion, the same
    resizing and normalisation as the package;
(b) this package -- :func:`emo_utils.audio.load_clip` (decodes only the needed window) and
    :func:`emo_utils.features.channels.compute_image` (one STFT, tuning estimated at the spectral peaks
    only, cached filter banks).

**Single process** (apples to apples): both recipes run in this process, one clip after the
other, alternating which goes first, with BLAS limited to one thread (what the usual recipe
gets from a busy 2-core machine at best); each clip is timed ``--repeat`` times per recipe.
The sum of the fastest times per clip (which filters out pauses caused by other processes)
and of the mean times are both printed, with their ratio.

**Torch backend** (``features.backend = "torch"``): the images of already decoded clips,
computed by the usual recipe's librosa calls, the exact numpy path (``compute_image``, BLAS
1 thread) and the torch backend batched (``--torch-batch`` clips per batch) on the CPU
(torch's own threads; ``--torch-threads``) and, when CUDA is present, on the GPU; the
max abs differences of mel dB, STFT dB and chroma (before resizing) and of the images to the
exact path.  Targets: torch CPU batched >= 1.5x the exact path on 2 cores; GPU >= 20x the
usual recipe.  ``--torch-only`` runs this part alone.

**End to end** (what a user gets): :func:`emo_utils.features.build.build_cache` over the whole corpus
with ``n_jobs=--jobs`` (processes, this one included), from a cold start (no worker process
is running before the call), writing the cache, against the usual recipe's single-process
mean.  Last, a re-run of
``build_cache`` on the unchanged cache, as a fraction of the first run.

Targets: >= 3x the usual recipe's clips per second with identical images; re-run < 5 % of
the first run.

Usage::

    .venv/bin/python benchmarks/bench_features.py [--clips 200] [--compare N] [--repeat 3]
        [--jobs -1] [--seed 0] [--out DIR] [--torch-batch 16] [--torch-threads 0]
        [--torch-only]

``build_cache`` starts a worker process only per 400 clips to compute (starting one costs
seconds of CPU); ``--clips 1000 --compare 200`` shows the parallel path.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import torch
from threadpoolctl import threadpool_limits

from emo_utils.audio import load_clip
from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.datasets.synthetic import make_demo_dataset
from emo_utils.errors import EmoUtilsWarning
from emo_utils.features.build import build_cache
from emo_utils.features.channels import CHANNELS, channel_specs, compute_image, normalize
from emo_utils.features.spectrum import Spectrum, resize_rows
from emo_utils.features.torch_backend import TorchSpectrum, compute_images_torch


def make_corpus(root: Path, *, n_clips: int, seed: int) -> Path:
    """A demo competition folder with ``n_clips`` training clips (generated in-process).

    Generated with one process so that no worker pool is left running: ``build_cache`` is
    then measured from a cold start.
    """
    return make_demo_dataset(root, n_train=n_clips, n_test=1, seed=seed, n_jobs=1)


def describe(paths: list[str], duration: float) -> str:
    """One line on the corpus: formats, rates, channels, durations."""
    infos = [sf.info(p) for p in paths]
    exts = [Path(p).suffix for p in paths]
    seconds = np.array([i.duration for i in infos])
    formats = ", ".join(f"{e} {exts.count(e)}" for e in sorted(set(exts)))
    rates = ", ".join(
        f"{r} {sum(i.samplerate == r for i in infos)}"
        for r in sorted({i.samplerate for i in infos})
    )
    stereo = sum(i.channels > 1 for i in infos)
    return (
        f"  formats: {formats}; rates (Hz): {rates}; stereo {stereo}\n"
        f"  durations {seconds.min():.1f}-{seconds.max():.1f} s, median {np.median(seconds):.1f}"
        f" s, mean {seconds.mean():.1f} s; {np.mean(seconds > duration):.0%} longer than "
        f"{duration:g} s"
    )


def usual_recipe(path: str, config: Config) -> np.ndarray:
    """The notebook recipe: full decode, three librosa calls with three STFTs."""
    a = config.audio
    y, _ = librosa.load(path, sr=a.sample_rate)
    return usual_features(librosa.util.fix_length(y, size=a.n_samples), config)


def usual_features(y: np.ndarray, config: Config) -> np.ndarray:
    """The notebook recipe's image of a decoded clip: three librosa calls, three STFTs."""
    sr, f = config.audio.sample_rate, config.features
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
    the fastest time per clip and the mean time per clip are summed.
    """
    recipes: tuple[Callable[[str, Config], np.ndarray], ...] = (usual_recipe, package_recipe)
    for p in paths[:3]:  # warm-up: imports, numba compilation, filter caches
        for fn in recipes:
            fn(p, config)
    best_sum = dict.fromkeys(recipes, 0.0)
    mean_sum = dict.fromkeys(recipes, 0.0)
    max_diff = 0.0
    identical = True
    with threadpool_limits(limits=1, user_api="blas"):
        for k, p in enumerate(paths):
            best = dict.fromkeys(recipes, np.inf)
            images = {}
            for r in range(repeat):
                order = recipes if (k + r) % 2 == 0 else recipes[::-1]
                for fn in order:
                    t0 = time.perf_counter()
                    images[fn] = fn(p, config)
                    seconds = time.perf_counter() - t0
                    best[fn] = min(best[fn], seconds)
                    mean_sum[fn] += seconds / repeat
            for fn in recipes:
                best_sum[fn] += best[fn]
            a, b = images[usual_recipe], images[package_recipe]
            max_diff = max(max_diff, float(np.max(np.abs(a - b))))
            identical = identical and a.shape == b.shape and np.array_equal(a, b)
    n = len(paths)
    return {
        "usual_best": n / best_sum[usual_recipe],
        "package_best": n / best_sum[package_recipe],
        "usual_mean": n / mean_sum[usual_recipe],
        "package_mean": n / mean_sum[package_recipe],
        "max_abs_diff": max_diff,
        "identical": identical,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compare_torch(
    clips: list[np.ndarray], config: Config, *, batch: int, repeat: int
) -> list[tuple[str, float, float]]:
    """Clips per second of the image computation by each engine, and max |diff| to exact.

    Returns ``(engine, clips per second (best of repeat), max abs image difference)`` rows;
    prints the spectra differences.
    """
    sr, f = config.audio.sample_rate, config.features
    specs = channel_specs(f.channels)
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    y = np.stack(clips)

    def run_exact() -> list[np.ndarray]:
        with threadpool_limits(limits=1, user_api="blas"):
            return [compute_image(c, sample_rate=sr, config=f) for c in clips]

    def run_usual() -> list[np.ndarray]:
        with threadpool_limits(limits=1, user_api="blas"):
            return [usual_features(c, config) for c in clips]

    def run_torch(device: torch.device) -> Callable[[], list[np.ndarray]]:
        def go() -> list[np.ndarray]:
            out = []
            for start in range(0, len(y), batch):
                out.extend(
                    compute_images_torch(
                        y[start : start + batch],
                        sample_rate=sr,
                        config=f,
                        specs=specs,
                        device=device,
                    )
                )
            _sync(device)
            return out

        return go

    engines: list[tuple[str, Callable[[], list[np.ndarray]]]] = [
        ("usual librosa recipe (BLAS 1 thread)", run_usual),
        ("exact numpy path (BLAS 1 thread)", run_exact),
        *((f"torch {d.type} batched ({batch} clips)", run_torch(d)) for d in devices),
    ]
    rows = []
    exact = run_exact()
    for name, fn in engines:
        fn()  # warm-up: filter banks, kernels, CUDA context
        best = np.inf
        for _ in range(repeat):
            t0 = time.perf_counter()
            images = fn()
            best = min(best, time.perf_counter() - t0)
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(images, exact, strict=True))
        rows.append((name, len(clips) / best, diff))
    for device in devices:
        spectra = TorchSpectrum(y[:batch], sample_rate=sr, config=f, device=device)
        worst = dict.fromkeys(("mel_db", "stft_db", "chroma"), 0.0)
        for b, clip in enumerate(y[:batch]):
            ref = Spectrum(clip, sample_rate=sr, config=f)
            for key in worst:
                got = getattr(spectra, key)[b].cpu().numpy()
                worst[key] = max(worst[key], float(np.max(np.abs(got - getattr(ref, key)))))
        print(
            f"  torch {device.type} vs exact, max |diff| over {min(batch, len(y))} clips: "
            f"mel {worst['mel_db']:.3g} dB, STFT {worst['stft_db']:.3g} dB, chroma "
            f"{worst['chroma']:.3g}   [targets 1e-3 dB, 1e-3]"
        )
    return rows


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200, help="corpus size (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--compare",
        type=int,
        default=0,
        help="clips of the single-process comparison (default all; build_cache always gets all)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timings per clip (default 3)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=-1,
        help="build_cache n_jobs: processes, this one included (default -1: all cores)",
    )
    parser.add_argument("--out", type=Path, default=None, help="keep the corpus in this folder")
    parser.add_argument(
        "--torch-batch", type=int, default=16, help="clips per torch batch (default 16)"
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="torch CPU threads (default 0: torch's default, one per core)",
    )
    parser.add_argument(
        "--torch-only", action="store_true", help="run the torch backend comparison only"
    )
    args = parser.parse_args(argv)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    root = args.out or Path(tempfile.mkdtemp(prefix="emo_bench_"))
    try:
        config = Config()
        print(f"corpus: {args.clips} clips (emo_utils.datasets.synthetic) in {root}")
        make_corpus(root, n_clips=args.clips, seed=args.seed)
        comp = load_competition(root, config.data)
        paths = comp.train["path"].tolist()
        print(describe(paths, config.audio.duration))
        f = config.features
        print(
            f"config: {config.audio.sample_rate} Hz, {config.audio.duration:g} s, n_fft "
            f"{f.n_fft}, hop {f.hop_length}, n_mels {f.n_mels}, channels {list(f.channels)}, "
            f"precision {f.precision}, cache {f.cache_dtype}; {os.cpu_count()} CPUs, "
            f"load average {_load()}"
        )
        compared = paths[: args.compare or len(paths)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmoUtilsWarning)
            clips = [load_clip(p, config=config.audio) for p in compared]
        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
        print(
            f"\n3. torch backend: images of the same {len(clips)} decoded clips, best of "
            f"{args.repeat} runs; torch {torch.__version__}, {torch.get_num_threads()} CPU "
            f"thread(s), {gpu}:"
        )
        rows = compare_torch(clips, config, batch=args.torch_batch, repeat=args.repeat)
        print(f"  {'clips per second':44s} {'':>10s} {'vs exact':>9s} {'vs usual':>9s}  max |diff|")
        for name, rate, diff in rows:
            print(
                f"  {name:44s} {rate:10.1f} {rate / rows[1][1]:8.2f}x {rate / rows[0][1]:8.2f}x"
                f"  {diff:.3g}"
            )
        print("  [targets: torch cpu >= 1.5x exact; torch cuda >= 20x usual]")
        if args.torch_only:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmoUtilsWarning)
            r = compare(compared, config, repeat=args.repeat)
            cache_dir = root / ".emo_cache_bench"
            shutil.rmtree(cache_dir, ignore_errors=True)  # a kept corpus: start from scratch
            load_before = _load()
            t0 = time.perf_counter()
            store = build_cache(
                comp, "train", config=config, cache_dir=cache_dir, n_jobs=args.jobs, progress=False
            )
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = build_cache(
                comp, "train", config=config, cache_dir=cache_dir, n_jobs=args.jobs, progress=False
            )
            rerun = time.perf_counter() - t0
        if again.stats["computed"]:
            raise SystemExit("the re-run recomputed clips: the cache was not reused")
        cached = store.stack(range(min(20, len(paths))))
        direct = np.stack([package_recipe(p, config) for p in paths[:20]])
        f16 = float(np.max(np.abs(cached - direct)))

        n = len(paths)
        end_to_end = n / first
        print(
            f"\n1. one process, the same {len(compared)} clips, BLAS 1 thread ({args.repeat} "
            "runs per clip):"
        )
        print(f"  {'clips per second':44s} {'fastest':>10s} {'mean':>10s}")
        print(f"  {'(a) usual recipe':44s} {r['usual_best']:10.1f} {r['usual_mean']:10.1f}")
        print(f"  {'(b) emo_utils':44s} {r['package_best']:10.1f} {r['package_mean']:10.1f}")
        print(
            f"  {'ratio (b)/(a)':44s} {r['package_best'] / r['usual_best']:9.2f}x "
            f"{r['package_mean'] / r['usual_mean']:9.2f}x   [target >= 3x]"
        )
        print(
            f"  {'max |a - b| of the float32 images':44s} {r['max_abs_diff']:10.3g}   "
            f"({'bit-identical' if r['identical'] else 'NOT bit-identical'})"
        )
        print(
            f"\n2. end to end: build_cache(n_jobs={args.jobs}) over all {n} clips, cold start "
            "(no worker process running), writes the cache:"
        )
        print(
            f"  {'(b) build_cache clips per second':44s} {end_to_end:10.1f}   "
            f"({first:.2f} s for {n} clips; load average before {load_before})"
        )
        print(f"  {'ratio to (a) one process, mean':44s} {end_to_end / r['usual_mean']:9.2f}x")
        print(f"  {'cached ' + f.cache_dtype + ' vs float32 images':44s} max |diff| {f16:.2g}")
        print(
            f"  {'re-run on the unchanged cache':44s} {rerun:10.3f} s   "
            f"{100 * rerun / first:.2f} % of the first run [target < 5 %]"
        )
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
