"""The one-command local demo: dev server, worker, a recording streamed in real time, results.

``python -m emo_utils serve demo`` (or :func:`run_demo`): starts ``temporal server start-dev``
with a database file in the demo folder, a worker in this process serving a trained run
(with no ``--run``, a small one is trained first on generated demo data), replays a
recording made of the demo's test clips as a live stream of 5-s pieces, and prints every
piece's stored result and the latency from the end of a piece to its result.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from ..audio import load_audio
from ..fileio import atomic_path
from .connect import ServeOptions, connect
from .devserver import DevServer
from .store import query_results

__all__ = [
    "DEMO_OVERRIDES",
    "demo_recording",
    "format_results",
    "prepare_demo_run",
    "run_demo",
]

#: The small CPU run the demo trains when given none: logistic regression on clip statistics
#: (``classical:logreg``), seconds on 2 cores and, unlike a CNN trained for a few epochs
#: from scratch on 70 clips, better than chance, so the demo's labels mean something.
#: ``--run`` serves any trained run (CNNs included) the same way.
DEMO_OVERRIDES = {
    "train.architectures": ["classical:logreg"],
    "train.n_folds": 2,
}


def prepare_demo_run(
    workdir: Path, *, progress: bool = True, overrides: dict | None = None
) -> Path:
    """Generate a small demo competition in ``workdir/data`` and train ``workdir/run`` on it.

    ``overrides`` of the ``cpu_demo`` preset: default :data:`DEMO_OVERRIDES`.
    """
    from ..config import Config
    from ..datasets.synthetic import make_demo_dataset
    from ..pipeline import train

    data = make_demo_dataset(workdir / "data", n_train=70, n_test=12, progress=progress)
    config = Config.preset("cpu_demo").override(DEMO_OVERRIDES if overrides is None else overrides)
    train(data, run_dir=workdir / "run", config=config, progress=progress)
    return workdir / "run"


def demo_recording(data_dir: Path, out: Path, *, seconds: float, sample_rate: int = 16000) -> Path:
    """Concatenate the test clips of a demo competition into one ``seconds``-long wav file."""
    test = pd.read_csv(data_dir / "test.csv")
    parts, total = [], 0
    size = round(seconds * sample_rate)
    for name in test["filename"]:
        y = load_audio(data_dir / "test" / name, sample_rate=sample_rate)
        parts.append(y)
        total += len(y)
        if total >= size:
            break
    y = np.concatenate(parts)
    y = np.tile(y, int(np.ceil(size / len(y))))[:size]
    with atomic_path(out) as tmp:
        sf.write(tmp, y, sample_rate, format="WAV", subtype="PCM_16")
    return out


async def _serve_and_stream(
    run_dir: Path,
    recording: Path,
    options: ServeOptions,
    *,
    recording_id: str,
    workdir: Path,
    chunk_s: float,
    realtime: bool,
) -> None:
    from .client import stream_file
    from .worker import run_worker

    stop, ready = asyncio.Event(), asyncio.Event()
    worker = asyncio.create_task(
        run_worker(run_dir=run_dir, options=options, stop=stop, ready=ready)
    )
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({worker, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if worker.done():  # it failed before polling: raise its error
        waiter.cancel()
        await worker
    try:
        client = await connect(options)
        summary = await stream_file(
            client,
            recording,
            task_queue=options.task_queue,
            spool_dir=workdir / "spool",
            chunk_s=chunk_s,
            recording=recording_id,
            realtime=realtime,
        )
        print(f"stream {summary.recording}: {summary.pieces} pieces, {summary.failed} failed")
    finally:
        stop.set()
        await worker


def run_demo(
    *,
    workdir: str | os.PathLike = "serve_demo",
    run_dir: str | os.PathLike | None = None,
    seconds: float = 30.0,
    chunk_s: float = 5.0,
    realtime: bool = True,
    recording: str | os.PathLike | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Run the demo; return (and print) the stream's stored results.

    Parameters
    ----------
    workdir : str or os.PathLike
        Folder of the demo's files: the server database, results store, spool, recording.
    run_dir : str or os.PathLike, optional
        A trained run to serve (default: train a small one in ``workdir/run``).
    seconds : float
        Length of the streamed recording.
    chunk_s : float
        Seconds per piece.
    realtime : bool
        Stream at the recording's pace (False: as fast as the worker keeps up).
    recording : str or os.PathLike, optional
        The audio file to stream (default: ``seconds`` of the demo competition's test
        clips, generated if missing).
    progress : bool
        Progress output while the demo data and run are made.

    Returns
    -------
    pandas.DataFrame
        :func:`~.store.query_results` of the streamed recording.
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    run = Path(run_dir) if run_dir is not None else prepare_demo_run(workdir, progress=progress)
    if recording is None:
        data = workdir / "data"
        if not (data / "test.csv").is_file():
            from ..datasets.synthetic import make_demo_dataset

            make_demo_dataset(data, n_train=35, n_test=12, progress=progress)
        recording = demo_recording(data, workdir / "demo_stream.wav", seconds=seconds)
    store_url = f"sqlite:///{workdir / 'results.sqlite'}"
    recording_id = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"  # a new stream every run
    with DevServer(db_filename=workdir / "temporal.db") as server:
        print(f"Temporal dev server on {server.address} (state in {server.db_filename})")
        options = ServeOptions(
            address=server.address, store_url=store_url, task_queue="emo-utils-demo"
        )
        asyncio.run(
            _serve_and_stream(
                run,
                Path(recording),
                options,
                recording_id=recording_id,
                workdir=workdir,
                chunk_s=chunk_s,
                realtime=realtime,
            )
        )
    results = query_results(store_url, recording=recording_id)
    print(format_results(results))
    lat = results["latency_s"].dropna()
    if len(lat):
        print(
            f"latency from the end of a piece to its stored result: "
            f"p50 {np.percentile(lat, 50):.3f} s, p95 {np.percentile(lat, 95):.3f} s"
        )
    print(f"results store: {store_url}")
    return results


def format_results(results: pd.DataFrame) -> str:
    """One line per stored piece: recording, piece, position, label or failure, latency."""
    if results.empty:
        return "no results"
    rows = []
    for r in results.itertuples(index=False):
        what = (
            f"{r.label:<10} p={max(r.probabilities.values()):.2f}"
            if r.status == "ok"
            else f"FAILED: {r.reason}"
        )
        latency = "" if pd.isna(r.latency_s) else f"  latency {r.latency_s:.3f} s"
        rows.append(f"{r.recording}  piece {r.piece:>4}  {r.start_s:7.1f} s  {what}{latency}")
    return "\n".join(rows)
