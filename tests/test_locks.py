"""Folder locks (:mod:`emo_utils.locks`): who holds them, waiting, ``--no-wait``, ``kill -9``.

The holder of a lock is another real process (``python -c`` holding
:func:`~emo_utils.locks.folder_lock`), since the operating-system lock only excludes other
processes (and other threads).  Two whole ``run`` commands at once are tested in
``tests/test_cli.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from emo_utils.cli import main as cli_main
from emo_utils.config import Config
from emo_utils.datasets import make_demo_dataset
from emo_utils.errors import LockError
from emo_utils.features import build_cache
from emo_utils.locks import INFO_NAME, LOCK_NAME, describe_holder, folder_lock, read_holder
from emo_utils.pipeline import predict, preprocess
from emo_utils.runs import RunDir

HOLDER = """
import sys, time
from emo_utils.locks import folder_lock
with folder_lock(sys.argv[1], what="test folder"):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold(folder: Path, seconds: float = 60.0, *extra: str) -> subprocess.Popen:
    """A process holding ``folder``'s lock for ``seconds``; returns once it holds it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), str(seconds), *extra],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    line = proc.stdout.readline()
    assert line.strip() == "locked", line
    return proc


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@pytest.fixture
def holder(tmp_path):
    procs = []

    def start(folder: Path, seconds: float = 60.0, *extra: str) -> subprocess.Popen:
        procs.append(_hold(folder, seconds, *extra))
        return procs[-1]

    yield start
    for proc in procs:
        _end(proc)


def test_no_wait_stops_at_once_naming_pid_host_start_and_command(tmp_path, holder):
    folder = tmp_path / "run"
    proc = holder(folder, 60.0, "--marker-argument")
    began = time.monotonic()
    with pytest.raises(LockError) as info, folder_lock(folder, what="run folder", wait=False):
        pass
    assert time.monotonic() - began < 5
    message = str(info.value)
    assert message.startswith(f"{folder}: the run folder is in use by pid {proc.pid} on ")
    assert socket.gethostname() in message
    assert re.search(r"since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", message)
    assert "--marker-argument" in message  # the holder's command
    assert "without --no-wait" in message
    assert info.value.path == str(folder)
    assert f"pid {proc.pid}" in info.value.holder
    record = read_holder(folder)
    assert record["pid"] == proc.pid
    assert {"host", "started", "command"} <= set(record)


def test_a_waiting_process_says_for_whom_at_once_and_periodically_then_proceeds(tmp_path, holder):
    folder = tmp_path / "cache"
    proc = holder(folder, 1.5)
    messages: list[str] = []
    began = time.monotonic()
    with folder_lock(
        folder, what="feature cache (train)", message_every=0.3, notify=messages.append
    ):
        waited = time.monotonic() - began
        assert read_holder(folder)["pid"] == os.getpid()
    assert proc.wait(timeout=30) == 0
    assert waited > 0.5
    assert messages[0].startswith(f"{folder}: waiting for the feature cache (train), in use by")
    assert f"pid {proc.pid}" in messages[0]
    assert len(messages) >= 2
    assert all("still waiting" in m for m in messages[1:])
    assert f"pid {proc.pid}" in messages[1]  # (the last may fall while it releases the lock)
    # Released: the record is removed, the lock file stays (waiters share its inode).
    assert not (folder / INFO_NAME).exists()
    assert (folder / LOCK_NAME).exists()


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path, holder):
    folder = tmp_path / "run"
    proc = holder(folder)
    with pytest.raises(LockError):
        RunDir(folder).lock(wait=False).__enter__()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The killed holder's record stays behind, but the operating system freed its lock.
    assert read_holder(folder)["pid"] == proc.pid
    assert "has ended" in describe_holder(folder)
    began = time.monotonic()
    with RunDir(folder).lock(wait=False) as run:
        assert run.path == folder
        assert read_holder(folder)["pid"] == os.getpid()
    assert time.monotonic() - began < 5
    assert not (folder / INFO_NAME).exists()


def test_the_record_of_an_ended_process_does_not_name_it_as_the_holder(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                           capture_output=True, text=True)  # fmt: skip
    dead_pid = int(ended.stdout)
    record = {"pid": dead_pid, "host": socket.gethostname(), "started": "2026-01-01T00:00:00",
              "command": "python -m emo_utils run", "process_start": None}  # fmt: skip
    (folder / INFO_NAME).write_text(json.dumps(record))
    text = describe_holder(folder)
    assert text.startswith("another process (no record of it yet: it is just taking or releas")
    assert f"the last recorded holder, pid {dead_pid}" in text
    assert "has ended" in text
    # A pid reused by another process: the recorded start time does not match.
    record.update(pid=os.getpid(), process_start=-1)
    (folder / INFO_NAME).write_text(json.dumps(record))
    if Path(f"/proc/{os.getpid()}/stat").exists():
        assert "has ended" in describe_holder(folder)
    # A live holder on another host cannot be checked, and says so.
    record.update(host="elsewhere.example", process_start=None)
    (folder / INFO_NAME).write_text(json.dumps(record))
    assert "on another host" in describe_holder(folder)
    # No record (a holder that has not written it yet), or a damaged one.
    (folder / INFO_NAME).write_text("{not json")
    assert describe_holder(folder) == (
        "another process (no record of it yet: it is just taking or releasing the lock)"
    )


def test_reentrant_in_a_thread_exclusive_across_threads(tmp_path):
    folder = tmp_path / "run"
    seen: list[str] = []
    with folder_lock(folder):
        with folder_lock(folder, wait=False):  # the same thread again: no deadlock
            pass
        assert read_holder(folder)["pid"] == os.getpid()  # still held after the inner exit

        def other() -> None:
            try:
                with folder_lock(folder, wait=False):
                    seen.append("acquired")
            except LockError:
                seen.append("refused")

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert seen == ["refused"]
    with folder_lock(folder, wait=False):
        pass


# ---------------------------------------------------------------------- the stages
CONFIG = Config().override(
    {"audio.duration": 2.0, "audio.max_duration": 2.0, "features.n_mels": 32}
)


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    return make_demo_dataset(
        tmp_path_factory.mktemp("locks") / "data", n_train=35, n_test=6, progress=False
    )


def test_a_cache_being_built_stops_no_wait_callers_but_finished_caches_open_freely(
    demo_data, tmp_path, holder
):
    from emo_utils.data.competition import load_competition

    comp = load_competition(demo_data, CONFIG.data)
    cache = tmp_path / "cache"
    split = cache / CONFIG.feature_hash() / "train"
    proc = holder(split)
    with pytest.raises(
        LockError, match=rf"the feature cache \(train\) is in use by pid {proc.pid}"
    ):
        build_cache(comp, "train", config=CONFIG, cache_dir=cache, n_jobs=1, progress=False,
                    wait=False)  # fmt: skip
    with pytest.raises(LockError, match=rf"pid {proc.pid}"):
        preprocess(demo_data, config=CONFIG, cache_dir=cache, n_jobs=1, progress=False, wait=False)
    assert not (split / "chunks").exists()  # no work was done
    _end(proc)
    built = build_cache(comp, "train", config=CONFIG, cache_dir=cache, n_jobs=1, progress=False)
    assert built.stats["computed"] == len(comp.train)
    # A finished cache is read without the lock, even while another process holds it.
    proc = holder(split)
    store = build_cache(comp, "train", config=CONFIG, cache_dir=cache, n_jobs=1, progress=False,
                        wait=False)  # fmt: skip
    assert store.stats["reused"] == len(comp.train)
    assert read_holder(split)["pid"] == proc.pid


def test_no_wait_on_the_command_line_names_the_holder(demo_data, tmp_path, holder, capsys):
    run = tmp_path / "run"
    CONFIG.save(tmp_path / "config.json")
    proc = holder(run)
    args = ["train", "--data", str(demo_data), "--run", str(run), "--cache", str(tmp_path / "c")]
    args += ["--config", str(tmp_path / "config.json"), "--jobs", "1", "--no-wait"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert re.search(
        rf"error: {re.escape(str(run))}: the run folder is in use by pid {proc.pid} ", err
    )
    assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME, INFO_NAME]  # nothing written
    # predict takes the run folder's lock too
    (run / "config.json").write_text(json.dumps(CONFIG.to_dict()))
    with pytest.raises(LockError, match=rf"pid {proc.pid}"):
        predict(demo_data, run_dir=run, cache_dir=tmp_path / "c", progress=False, wait=False)


def test_locks_and_cache_files_respect_the_umask(demo_data, tmp_path):
    """Gap filled for issue 18's permissions: lock files, holder records, cache files."""
    import stat

    from emo_utils.data.competition import load_competition

    comp = load_competition(demo_data, CONFIG.data)
    old = os.umask(0o027)
    try:
        with folder_lock(tmp_path / "run"):
            record_mode = stat.S_IMODE((tmp_path / "run" / INFO_NAME).stat().st_mode)
        build_cache(comp, "test", config=CONFIG, cache_dir=tmp_path / "cache", n_jobs=1,
                    progress=False)  # fmt: skip
    finally:
        os.umask(old)
    assert record_mode == 0o640
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "run" / LOCK_NAME).stat().st_mode) == 0o640
    written = list((tmp_path / "cache").rglob("*"))
    assert any(p.name == "frames.npy" for p in written)
    for path in written:
        want = 0o750 if path.is_dir() else 0o640
        assert stat.S_IMODE(path.stat().st_mode) == want, path
