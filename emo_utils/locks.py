"""Folder locks: one process at a time writes a feature-cache split or a run folder.

Two experiments on one dataset (the most common case) share its feature cache, and a
second command on a run folder that is still training is easy to start.  Every stage that
writes such a folder holds its lock while it writes:

* :func:`emo_utils.features.build_cache` locks ``CACHE/FEATURE_HASH/SPLIT`` while it
  computes, assembles or repairs that split (a finished, valid cache is opened without the
  lock: see *Readers* below);
* :func:`emo_utils.pipeline.train`, :func:`~emo_utils.pipeline.predict`,
  :func:`~emo_utils.pipeline.predict_and_submit` and :func:`~emo_utils.pipeline.run_pipeline`
  lock the run folder (:meth:`emo_utils.runs.RunDir.lock`).

Locks nest only one way: a run folder's lock may be held while a cache split is locked
(``predict`` builds the test split), never the other way round, so two processes cannot
wait for each other.

**The lock** is ``FOLDER/.emo_utils.lock``, an operating-system lock (``flock``) taken
through the :mod:`filelock` package.  The system releases it when its process ends, however
it ends (``kill -9`` included): a lock is never stale.  Beside it, ``.emo_utils.lock.json``
(written atomically once the lock is held, removed on release) says who holds it: pid,
host, start time and command.  A process killed while holding the lock leaves that file
behind; it is only ever read to describe a lock that is held, and a recorded process that
has ended (or whose pid now belongs to another process) is reported as such, never as the
holder.

**Waiting.**  By default a second process waits, printing at once and then every
``message_every`` seconds (to stderr) which process it waits for.  With ``wait=False``
(``--no-wait`` on the command line) it stops at once with a
:class:`~emo_utils.errors.LockError` naming the holder.

**Readers.**  Opening a *finished* cache (manifest, checksum) takes no lock: files are only
ever replaced atomically, a builder writes the manifest last and removes it first, and a
reader that finds anything missing or inconsistent takes the lock before it decides to
rebuild.  ``report`` and other readers of a run folder take no lock either.

**Within one process** the lock is re-entrant per thread (``run_pipeline`` holds the run
folder's lock across ``train`` and ``predict``, which take it again).

Locks are advisory: they only exclude other ``emo_utils`` processes.  On network file
systems without ``flock``, :mod:`filelock` falls back to its own scheme.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ._console import debug
from .errors import LockError
from .fileio import write_json

__all__ = [
    "INFO_NAME",
    "LOCK_NAME",
    "describe_holder",
    "folder_lock",
    "read_holder",
]

#: The lock file inside a locked folder.
LOCK_NAME = ".emo_utils.lock"
#: Who holds the lock: pid, host, start time, command (JSON, beside the lock file).
INFO_NAME = ".emo_utils.lock.json"
#: Seconds between two "still waiting" messages.
DEFAULT_MESSAGE_EVERY = 60.0
#: Seconds of one attempt to take the lock while waiting.
_ATTEMPT_SECONDS = 0.5

#: (folder, thread) -> [FileLock, depth]: the locks this process holds.
_held: dict[tuple[str, int], list[Any]] = {}
_held_guard = threading.Lock()


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state, start time in clock ticks)`` of a process from ``/proc`` (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _holder_record() -> dict[str, Any]:
    stat = _proc_stat(os.getpid())
    command = shlex.join(getattr(sys, "orig_argv", None) or sys.argv)
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command[:500],
        "process_start": stat[1] if stat else None,
        "token": uuid.uuid4().hex,
    }


def read_holder(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The holder record of a folder's lock (``.emo_utils.lock.json``), if readable.

    Parameters
    ----------
    folder : str or os.PathLike
        The locked folder.

    Returns
    -------
    dict or None
        ``pid``, ``host``, ``started`` (ISO 8601), ``command``; ``None`` when there is no
        readable record.  The record may be left by a process that has ended: see
        :func:`describe_holder`.
    """
    try:
        with open(Path(folder) / INFO_NAME, encoding="utf-8") as fh:
            info = json.load(fh)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("pid"), int) else None


def _alive(info: dict[str, Any]) -> bool | None:
    """Whether the recorded process still runs: True, False, or None (cannot tell)."""
    if info.get("host") != socket.gethostname() or os.name == "nt":
        return None
    pid = int(info["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return None
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, start = stat
    if state == "Z":  # ended, not yet collected by its parent
        return False
    recorded = info.get("process_start")
    return not (isinstance(recorded, int) and recorded != start)  # pid reused by another


def _who(info: dict[str, Any]) -> str:
    return (
        f"pid {info['pid']} on {info.get('host', '?')} since {info.get('started', '?')} "
        f"(command: {info.get('command', '?')})"
    )


#: A held lock without a usable record: its holder is taking or releasing it.
_UNRECORDED = "no record of it yet: it is just taking or releasing the lock"


def describe_holder(folder: str | os.PathLike) -> str:
    """Who holds the lock of ``folder``, in words, for a message.

    Parameters
    ----------
    folder : str or os.PathLike
        A folder whose lock is held by another process.

    Returns
    -------
    str
        ``"pid 123 on host since 2026-01-01T10:00:00+01:00 (command: ...)"`` when the
        record names a running process (or one on another host, which cannot be checked);
        otherwise a sentence saying that the holder has no record (it is taking or releasing
        the lock) and, if a record of an ended process is left, that this process has ended.
    """
    info = read_holder(folder)
    if info is None:
        return f"another process ({_UNRECORDED})"
    alive = _alive(info)
    if alive is False:
        return f"another process ({_UNRECORDED}; the last recorded holder, {_who(info)}, has ended)"
    if alive is None and info.get("host") != socket.gethostname():
        return f"{_who(info)} (on another host: not checked whether it still runs)"
    return _who(info)


def _print_waiting(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _acquire(
    lock: FileLock,
    folder: Path,
    what: str,
    *,
    wait: bool,
    message_every: float,
    notify: Callable[[str], Any],
) -> None:
    try:
        lock.acquire(timeout=0)
        return
    except Timeout:
        pass
    if not wait:
        raise LockError(folder, what, describe_holder(folder))
    began = last = time.monotonic()
    notify(f"{folder}: waiting for the {what}, in use by {describe_holder(folder)}")
    while True:
        try:
            lock.acquire(timeout=_ATTEMPT_SECONDS)
        except Timeout:
            now = time.monotonic()
            if now - last >= message_every:
                last = now
                notify(
                    f"{folder}: still waiting ({now - began:.0f} s) for the {what}, in use by "
                    f"{describe_holder(folder)}"
                )
        else:
            debug(f"{folder}: {what} lock taken after {time.monotonic() - began:.1f} s")
            return


@contextlib.contextmanager
def folder_lock(
    folder: str | os.PathLike,
    *,
    what: str = "folder",
    wait: bool = True,
    message_every: float = DEFAULT_MESSAGE_EVERY,
    notify: Callable[[str], Any] | None = None,
) -> Iterator[Path]:
    """Hold the lock of ``folder`` (created if missing) inside the ``with`` block.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to lock; ``folder / LOCK_NAME`` is the lock file.
    what : str
        What the folder is, for messages (``"run folder"``, ``"feature cache (train)"``).
    wait : bool
        Wait while another process holds the lock (default), or raise at once.
    message_every : float
        Seconds between two "still waiting" messages (the first is shown at once).
    notify : callable, optional
        Receives each waiting message; default: print it to stderr.

    Yields
    ------
    pathlib.Path
        The folder.

    Raises
    ------
    LockError
        ``wait=False`` and another process holds the lock; the message names it (pid,
        host, start time, command).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = (os.path.realpath(folder), threading.get_ident())
    with _held_guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
    if entry is not None:  # re-entered by this thread
        try:
            yield folder
        finally:
            with _held_guard:
                entry[1] -= 1
        return

    lock = FileLock(os.fspath(folder / LOCK_NAME))
    _acquire(
        lock,
        folder,
        what,
        wait=wait,
        message_every=message_every,
        notify=notify or _print_waiting,
    )
    info_path = folder / INFO_NAME
    record = _holder_record()
    try:
        previous = read_holder(folder)
        if previous is not None and previous.get("pid") != os.getpid():
            debug(f"{folder}: took over the {what} lock (last holder: {_who(previous)})")
        write_json(info_path, record)
        with _held_guard:
            _held[key] = [lock, 1]
        debug(f"{folder}: {what} locked")
        yield folder
    finally:
        with _held_guard:
            _held.pop(key, None)
        mine = read_holder(folder)
        if mine is not None and mine.get("token") == record["token"]:
            with contextlib.suppress(OSError):
                info_path.unlink()
        lock.release()
        debug(f"{folder}: {what} unlocked")
