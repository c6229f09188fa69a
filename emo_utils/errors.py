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
    "EmoUtilsError",
    "EmoUtilsWarning",
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


class EmoUtilsWarning(UserWarning):
    """Warning category of ``emo_utils`` (padded short clips, case-only label differences, ...)."""
