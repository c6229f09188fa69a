"""The exception family of ``emo_utils``.

Every error the package raises on purpose derives from :class:`EmoUtilsError`, so a
caller can catch the whole family with one ``except`` clause.  Messages always name the
offending value and, where there is one, the file (as librosa's ``ParameterError`` does).
"""

from __future__ import annotations

import os

__all__ = [
    "AudioError",
    "CacheError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DiskFullError",
    "EmoUtilsError",
    "EmoUtilsWarning",
    "LockError",
    "SubmissionError",
    "TrainingDiverged",
    "TrainingError",
]


class EmoUtilsError(Exception):
    """Base class of every error raised by ``emo_utils``."""


class ConfigError(EmoUtilsError, ValueError):
    """A configuration value is invalid.

    Parameters
    ----------
    field : str
        Dotted name of the field, e.g. ``"train.n_folds"``.
    value : object
        The offending value.
    reason : str
        Why the value is rejected.
    """

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"config field {field!r} = {value!r}: {reason}")


class DataError(EmoUtilsError, ValueError):
    """The competition folder or one of its CSV files is unusable."""


class AudioError(EmoUtilsError):
    """An audio file cannot be turned into a valid clip.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    reason : str
        Short, human-readable reason (e.g. ``"empty file (0 bytes)"``).
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class CacheError(EmoUtilsError):
    """The feature cache is missing, stale or holds failed training files."""


class TrainingError(EmoUtilsError):
    """Training cannot start or continue (unknown architecture, too few clips, ...)."""


class TrainingDiverged(TrainingError):
    """The training loss of a fold became NaN or infinite (learning rate too high, bad input)."""


class CheckpointError(TrainingError):
    """A saved checkpoint or model file is damaged or does not match the run."""


class SubmissionError(EmoUtilsError):
    """A submission would not match ``test.csv`` or the sample submission."""


class DiskFullError(EmoUtilsError):
    """A file could not be written: the disk (or a quota, or ``ulimit -f``) is full.

    Raised by :mod:`emo_utils.fileio` for every write of the package (cache, checkpoint,
    report, submission) after the temporary file is removed, so nothing partial is left;
    finished work (cache chunks, finished folds) stays, and rerunning the same command
    after freeing space resumes.

    Parameters
    ----------
    path : str or os.PathLike
        The file that could not be written.
    needed : int, optional
        Bytes the file needs, where known.
    free : int, optional
        Bytes free on its file system when the write failed, where known.
    reason : str
        What the system said (e.g. ``"no space left on device"``).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        needed: int | None = None,
        free: int | None = None,
        reason: str = "no space left on device",
    ) -> None:
        self.path = os.fspath(path)
        self.needed = needed
        self.free = free
        self.reason = reason
        space = []
        if needed is not None:
            space.append(f"needs {_size(needed)}")
        if free is not None:
            space.append(f"{_size(free)} free on its file system")
        detail = f" ({', '.join(space)})" if space else ""
        self.message = (
            f"{self.path}: cannot be written, {reason}{detail}; nothing partial was left. "
            "Free some space or raise the limit (or point the folder elsewhere: --cache, "
            "--run), then rerun the same command: finished work is kept and resumed"
        )
        super().__init__(self.message)

    def __str__(self) -> str:
        """The message, also when a library (fastai's callbacks) prefixed ``args``."""
        return self.message

    def __reduce__(self) -> tuple:
        """Pickle with the keyword arguments (errors of worker processes reach this one)."""
        return (
            _rebuild_disk_full,
            (self.path, self.needed, self.free, self.reason),
        )


def _rebuild_disk_full(
    path: str, needed: int | None, free: int | None, reason: str
) -> DiskFullError:
    return DiskFullError(path, needed=needed, free=free, reason=reason)


def _size(n: int) -> str:
    """``1536`` -> ``"1.5 KiB"``: bytes in the largest binary unit below them."""
    if n < 1024:
        return f"{n} bytes"
    value, units = n / 1024, ["KiB", "MiB", "GiB", "TiB"]
    while value >= 1024 and len(units) > 1:
        value /= 1024
        units.pop(0)
    unit = units[0]
    return f"{value:.1f} {unit}"


class LockError(EmoUtilsError):
    """Another process holds the lock of a folder (cache or run folder) and we must not wait.

    Parameters
    ----------
    path : str or os.PathLike
        The locked folder.
    what : str
        What the folder is (``"run folder"``, ``"feature cache (train)"``).
    holder : str
        Who holds the lock (pid, host, start time, command), as far as known.
    """

    def __init__(self, path: str | os.PathLike, what: str, holder: str) -> None:
        self.path = os.fspath(path)
        self.what = what
        self.holder = holder
        super().__init__(
            f"{self.path}: the {what} is in use by {holder}; wait for it to finish, or rerun "
            "without --no-wait (wait=False) to wait"
        )

    def __reduce__(self) -> tuple:
        """Pickle with the constructor's arguments."""
        return (type(self), (self.path, self.what, self.holder))


class EmoUtilsWarning(UserWarning):
    """Warning category of ``emo_utils`` (padded short clips, case-only label differences, ...)."""
