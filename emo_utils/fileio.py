"""Atomic file writing.

Every file the pipeline writes goes through these helpers: the bytes land in a temporary
file in the destination folder, are flushed to disk, and then replace the destination
with :func:`os.replace`.  A reader therefore sees either the old file, no file, or the
complete new file, never a half-written one, even when the process is killed.

The final file gets the usual permissions of a newly created file, ``0o666`` less the
process umask (``0o644`` under umask ``022``), not the ``0o600`` of the temporary file
(:func:`tempfile.mkstemp`); folders are made with ``0o777`` less the umask.

**Disk full.**  A write that fails for lack of space -- ``ENOSPC``, a quota (``EDQUOT``)
or the file size limit ``ulimit -f`` (``EFBIG``; CPython ignores ``SIGXFSZ`` from its
start, so such a write fails instead of killing the process) -- removes its temporary
file and raises one :class:`~emo_utils.errors.DiskFullError` naming the destination, the
bytes needed where known (``atomic_path(size=...)`` reserves them first with
:func:`os.posix_fallocate`) and the bytes free.  Libraries that hide the system error
(torch's ``iostream error`` / ``unexpected pos``, numpy's ``requested and written``) are
recognised by probing the file system when they fail: under 1 MiB free, or the temporary
file at the ``ulimit -f`` size.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from .errors import DiskFullError, EmoUtilsError

__all__ = [
    "atomic_path",
    "atomic_write",
    "current_umask",
    "free_bytes",
    "read_csv",
    "read_json",
    "remove_temp_files",
    "write_csv",
    "write_json",
    "write_text",
]

_TMP_PREFIX = ".tmp-"

#: errno values meaning "no room for this file" (EFBIG: see _too_large).
_FULL_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EFBIG: ""}
if hasattr(errno, "EDQUOT"):
    _FULL_ERRNOS[errno.EDQUOT] = "disk quota exceeded"
#: A write error that names no errno counts as "disk full" below this many free bytes.
_NEARLY_FULL = 1 << 20


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


def free_bytes(folder: str | os.PathLike) -> int | None:
    """Bytes an unprivileged process may still write on the file system of ``folder``.

    Parameters
    ----------
    folder : str or os.PathLike
        A path on the file system; the nearest existing parent is asked if it is missing.

    Returns
    -------
    int or None
        ``None`` when the system does not say.
    """
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        st = os.statvfs(folder)
    except AttributeError:  # pragma: no cover - Windows
        with contextlib.suppress(OSError):
            return shutil.disk_usage(folder).free
        return None
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _file_size_limit() -> int | None:
    """The soft ``ulimit -f`` (``RLIMIT_FSIZE``) in bytes, or ``None`` without one."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        out.append(e)
        todo += [e.__cause__, e.__context__]
    return out


def _too_large() -> str:
    limit = _file_size_limit()
    if limit is None:
        return "file too large for its file system"
    return f"file too large: the file size limit (`ulimit -f`) is {limit} bytes"


def _disk_full(exc: BaseException, path: Path, reason: str, size: int | None) -> DiskFullError:
    """The error to raise for ``reason`` (the free space is left out for a size limit)."""
    free = None if reason.startswith("file too large") else free_bytes(path.parent)
    return DiskFullError(path, needed=size, free=free, reason=reason)


def _full_reason(exc: BaseException, tmp: Path | None, folder: Path) -> str | None:
    """Why ``exc`` means "no room for the file", or ``None`` if it is another error.

    An ``OSError`` with ``ENOSPC``/``EDQUOT``/``EFBIG`` anywhere in the chain is one.  An
    ``OSError`` or ``RuntimeError`` without such an errno (torch and numpy hide it) is one
    when the file system is (nearly) full or the temporary file reached ``ulimit -f``.
    Call it before removing the temporary file.
    """
    if isinstance(exc, EmoUtilsError) or not isinstance(exc, Exception):
        return None
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, OSError) and e.errno in _FULL_ERRNOS:
            return _FULL_ERRNOS[e.errno] or _too_large()
    if not any(isinstance(e, (OSError, RuntimeError)) for e in chain):
        return None
    limit = _file_size_limit()
    if limit is not None and tmp is not None:
        with contextlib.suppress(OSError):
            if tmp.stat().st_size >= limit:
                return _too_large()
    free = free_bytes(folder)
    if free is not None and free < _NEARLY_FULL:
        return _FULL_ERRNOS[errno.ENOSPC]
    return None


def _reserve(fd: int, size: int, path: Path) -> None:
    """Allocate ``size`` bytes for the open file ``fd`` (destination ``path``), or fail now.

    Where :func:`os.posix_fallocate` is missing the free space is compared instead.  File
    systems that cannot allocate ahead are left to fail (or not) while writing.
    """
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno in _FULL_ERRNOS:
                raise
        return
    free = free_bytes(path.parent)  # pragma: no cover - macOS, Windows
    if free is not None and free < size:  # pragma: no cover
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, size: int | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place on success.

    Use this for libraries that insist on writing to a file name themselves
    (``torch.save``, ``np.save``, ``matplotlib``'s ``savefig``).  On an exception the
    temporary file is removed and ``path`` is untouched.

    Parameters
    ----------
    path : str or os.PathLike
        Final destination.  Its parent folder is created if needed.
    size : int, optional
        Bytes the file will have, where known: they are allocated before the temporary
        path is yielded (:func:`os.posix_fallocate`), so a full disk fails at once, naming
        the space needed.  A writer that opens the file with ``"r+b"`` keeps the
        allocation (no later write can find the disk full); ``"wb"`` truncates it (then it
        was a check).

    Yields
    ------
    pathlib.Path
        Temporary file name in the same folder, with the same suffix as ``path``.  When
        moved into place it gets mode ``0o666`` less the process umask.

    Raises
    ------
    DiskFullError
        No room for the file (``ENOSPC``, a quota, ``ulimit -f``); the temporary file is
        removed first.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=_TMP_PREFIX + path.name + ".", suffix=path.suffix, dir=path.parent
        )
    except OSError as exc:
        reason = _full_reason(exc, None, path.parent)
        if reason is None:
            raise
        raise _disk_full(exc, path, reason, size) from exc
    tmp_path = Path(tmp)
    try:
        try:
            if size:
                _reserve(fd, int(size), path)
        finally:
            os.close(fd)
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    except BaseException as exc:
        reason = _full_reason(exc, tmp_path, path.parent)
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if reason is None:
            raise
        raise _disk_full(exc, path, reason, size) from exc


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


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; move it into place on success.

    For writers that fill a whole folder (``save_pretrained``).  On an exception the
    temporary folder is removed and ``path`` is untouched.  An existing ``path`` (an older
    or incomplete copy) is replaced only once the new folder is complete.

    Parameters
    ----------
    path : str or os.PathLike
        Final folder.  Its parent folder is created if needed.

    Yields
    ------
    pathlib.Path
        An empty temporary folder in the same parent folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX + path.name + ".", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX + path.name + ".old.", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


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

    pandas' default float parser can be one unit in the last place off (seen with pandas
    2.x and 3.0: OOF probabilities read back differed from the ones written);
    ``float_precision="round_trip"`` makes OOF and test probabilities read back bit-exact.
    pandas 3.1 deprecates the option (its default parser rounds correctly), so the
    deprecation warning is silenced, and a pandas without the option gets its default.
    """
    if "float_precision" in read_csv_kwargs:
        return pd.read_csv(path, **read_csv_kwargs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*float_precision.*")
        try:
            return pd.read_csv(path, float_precision="round_trip", **read_csv_kwargs)
        except TypeError as exc:  # a pandas that no longer knows the option
            if "float_precision" not in str(exc):
                raise
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
