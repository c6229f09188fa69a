"""Benchmark: the cache builder's scheduler (``features/_parallel.py``) against plain joblib.

The issue asks whether the hand-written scheduler (this process computes from the first
chunk while loky workers start; a dispatcher thread feeds only workers that have warmed up)
is worth keeping over a plain ``joblib.Parallel`` over the chunks.  Both run through
:func:`emo_utils.features.build.build_cache` on the same generated corpus (the plain
version is registered as the ``"joblib-plain"`` entry of
:data:`emo_utils.features.build.CHUNK_ENGINES` by this script), with ``n_jobs=--jobs``,
writing the same cache; each build starts **cold** (joblib's worker pool shut down first:
what a fresh ``python -m emo_utils preprocess`` gets) and, separately, **warm** (the pool
left by the previous build, as in a notebook), alternating the order, ``--repeat`` times.
Prints the median seconds of each and the ratio (keep the scheduler only if it is more
than 10 % faster).

Usage::

    .venv/bin/python benchmarks/bench_parallel.py [--clips 480] [--jobs 2] [--repeat 3]
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
from joblib import Parallel, delayed
from joblib.externals.loky import get_reusable_executor

from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.datasets.synthetic import make_demo_dataset
from emo_utils.errors import EmoUtilsWarning
from emo_utils.features import build as build_module
from emo_utils.features.build import build_cache


def _plain_joblib(tasks, *, config, specs, n_workers, done) -> None:
    """Every chunk through one ``joblib.Parallel`` of ``n_workers + 1`` processes."""
    jobs = Parallel(n_jobs=n_workers + 1, return_as="generator_unordered")(
        delayed(build_module._worker_chunk)(*task) for task in tasks
    )
    for clips in jobs:
        done(clips)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=480, help="corpus size (default 480)")
    parser.add_argument("--jobs", type=int, default=2, help="n_jobs of build_cache (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="builds per engine and start")
    args = parser.parse_args(argv)
    build_module.CHUNK_ENGINES["joblib-plain"] = _plain_joblib
    root = Path(tempfile.mkdtemp(prefix="emo_bench_parallel_"))
    try:
        make_demo_dataset(root, n_train=args.clips, n_test=1, seed=0, n_jobs=1)
        base = Config()
        comp = load_competition(root, base.data)
        n_workers = build_module._worker_count(
            args.jobs, clips=args.clips, chunks=-(-args.clips // build_module.DEFAULT_CHUNK_SIZE)
        )
        print(
            f"{args.clips} clips, build_cache(n_jobs={args.jobs}): {n_workers} worker "
            f"process(es) besides the building one; {os.cpu_count()} CPUs, load average "
            f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}"
        )
        seconds: dict[tuple[str, str], list[float]] = {}
        frames = {}
        for r in range(args.repeat):
            engines = ["local", "joblib-plain"] if r % 2 == 0 else ["joblib-plain", "local"]
            for start in ("cold", "warm"):
                for engine in engines:
                    if start == "cold":
                        get_reusable_executor().shutdown(wait=True)
                    cache = root / f".cache-{engine}"
                    shutil.rmtree(cache, ignore_errors=True)
                    config = base.override({"features.engine": engine})
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", EmoUtilsWarning)
                        t0 = time.perf_counter()
                        store = build_cache(
                            comp,
                            "train",
                            config=config,
                            cache_dir=cache,
                            n_jobs=args.jobs,
                            progress=False,
                        )
                        seconds.setdefault((engine, start), []).append(time.perf_counter() - t0)
                    frames[engine] = (store.directory / "frames.npy").read_bytes()
        same = frames["local"] == frames["joblib-plain"]
        print(f"  caches byte-identical: {same}")
        print(f"  {'median seconds':20s} {'scheduler':>10s} {'plain joblib':>13s} {'ratio':>7s}")
        for start in ("cold", "warm"):
            a = float(np.median(seconds[("local", start)]))
            b = float(np.median(seconds[("joblib-plain", start)]))
            print(f"  {start + ' start':20s} {a:10.2f} {b:13.2f} {b / a:6.2f}x")
        print("  [keep the scheduler only if plain joblib is > 1.10x its time]")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
