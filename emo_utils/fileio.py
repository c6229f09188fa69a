"""Atomic file writing.

Every file the pipeline writes goes through these helpers: the bytes land in a temporary
file in the destination folder, are flushed to disk, and then replace the destination
with :func:`os.replace`.  A reader therefore sees either the old file, no file, or the
complete new file, never a half-written one, even when the process is killed.

The final file gets the usual permissions of a newly created file, ``0o666`` less the
process umask (``0o644`` under umask ``022``), not the ``0o600`` of the temporary file
(:func:`tempfile.mkstemp`); folders are made with ``0o777`` less the umask.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

__all__ = [
    "atomic_path",
    "atomic_write",
    "current_umask",
    "read_csv",
    "read_json",
    "remove_temp_files",
    "write_csv",
    "write_json",
    "write_text",
]

_TMP_PREFIX = ".tmp-"


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows.

    Linux shows it in ``/proc/self/status``; elsewhere it is read by setting and restoring
    it with :func:`os.umask` (not atomic with respect to other threads creating files).

    Returns
    -------
    int
        The umask, e.g. ``0o022``.
    """
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/self/status", encoding="ascii") as fh,
    ):
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place on success.

    Use this for libraries that insist on writing to a file name themselves
    (``torch.save``, ``np.save``, ``matplotlib``'s ``savefig``).  On an exception the
    temporary file is removed and ``path`` is untouched.

    Parameters
    ----------
    path : str or os.PathLike
        Final destination.  Its parent folder is created if needed.

    Yields
    ------
    pathlib.Path
        Temporary file name in the same folder, with the same suffix as ``path``.  When
        moved into place it gets mode ``0o666`` less the process umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=_TMP_PREFIX + path.name + ".", suffix=path.suffix, dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file for writing and atomically move it to ``path`` on success.

    Parameters
    ----------
    path : str or os.PathLike
        Final destination.
    mode : {"w", "wb"}
        Text or binary mode.
    **open_kwargs
        Passed to :func:`open` (e.g. ``encoding``, ``newline``).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    if mode == "w":
        open_kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as fh:
        yield fh


def remove_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writes left in ``folder`` (not recursive).

    A process killed while writing leaves its ``.tmp-*`` file behind (the destination is
    untouched).  Call this only for a folder no other process is writing to at the moment,
    e.g. before redoing the work of that folder.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    removed = []
    for tmp in Path(folder).glob(_TMP_PREFIX + "*"):
        if tmp.is_file():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    with atomic_write(path) as fh:
        fh.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (NumPy scalars and arrays allowed)."""
    write_text(path, json.dumps(obj, indent=2, default=_json_default, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file written by :func:`write_json`."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def write_csv(path: str | os.PathLike, df: pd.DataFrame, **to_csv_kwargs: Any) -> None:
    """Atomically write a DataFrame as CSV (``index=False`` unless given)."""
    to_csv_kwargs.setdefault("index", False)
    with atomic_write(path, newline="") as fh:
        df.to_csv(fh, **to_csv_kwargs)


def read_csv(path: str | os.PathLike, **read_csv_kwargs: Any) -> pd.DataFrame:
    """:func:`pandas.read_csv` that reads back floats exactly as :func:`write_csv` wrote them.

    pandas < 3 parses floats with a fast parser that can be one unit in the last place off;
    ``float_precision="round_trip"`` makes OOF and test probabilities read back bit-exact
    (pandas 3 does so by default and deprecates the option).
    """
    if int(pd.__version__.split(".")[0]) < 3:
        read_csv_kwargs.setdefault("float_precision", "round_trip")
    return pd.read_csv(path, **read_csv_kwargs)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")
