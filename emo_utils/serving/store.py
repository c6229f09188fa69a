"""The results store: one row per (workflow id, piece index), in any SQLAlchemy database.

Rows are written once: :func:`store_result` inserts and treats a row that is already there
(an activity retried after its worker died between storing and reporting) as done, so every
piece ends with exactly one result whatever Temporal retries.  A piece of a recording file
also stores its timeline windows (``serve_windows``), in the same transaction as its result,
and :func:`query_timeline` reads a recording's windows back as the timeline table
``detect`` writes (``file,start,end,<classes>``).  SQLite is the default
(``sqlite:///serve_results.sqlite``); any SQLAlchemy URL works (``postgresql://...``).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..errors import DataError

__all__ = [
    "DEFAULT_STORE_URL",
    "RESULT_COLUMNS",
    "PieceResult",
    "WindowResult",
    "engine",
    "query_results",
    "query_timeline",
    "store_result",
]

#: Where results go unless ``--store`` says otherwise.
DEFAULT_STORE_URL = "sqlite:///serve_results.sqlite"

_metadata = sa.MetaData()

_results = sa.Table(
    "serve_results",
    _metadata,
    sa.Column("workflow_id", sa.String(255), primary_key=True),
    sa.Column("piece", sa.Integer, primary_key=True),
    sa.Column("recording", sa.String(255), nullable=False, index=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("start_s", sa.Float, nullable=False),
    sa.Column("end_s", sa.Float, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("label", sa.String(255), nullable=True),
    sa.Column("probabilities", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("arrived_at", sa.Float, nullable=True),
    sa.Column("stored_at", sa.Float, nullable=False),
    sa.Column("worker", sa.String(255), nullable=True),
)

_windows = sa.Table(
    "serve_windows",
    _metadata,
    sa.Column("workflow_id", sa.String(255), primary_key=True),
    sa.Column("piece", sa.Integer, primary_key=True),
    sa.Column("window", sa.Integer, primary_key=True),
    sa.Column("recording", sa.String(255), nullable=False, index=True),
    sa.Column("start_s", sa.Float, nullable=False),
    sa.Column("end_s", sa.Float, nullable=False),
    sa.Column("probabilities", sa.Text, nullable=False),
)

#: The columns of :func:`query_results`, in order.
RESULT_COLUMNS = tuple(c.name for c in _results.columns)


@dataclass(frozen=True)
class PieceResult:
    """One stored piece: its class probabilities, or why it failed.

    Attributes
    ----------
    workflow_id, piece : str, int
        The key: the workflow that classified it and the piece's index in its recording.
    recording : str
        Recording (or stream) id, what results are queried by.
    source : str
        The audio reference the piece was read from.
    start_s, end_s : float, float or None
        The piece's position in the recording, seconds (``end_s`` None: to the file's end).
    status : {"ok", "failed"}
    label : str or None
        Most probable class (``"ok"`` rows).
    probabilities : dict of str to float
        Class -> probability (``"ok"`` rows; empty for failures).
    reason : str
        Why the piece failed (``"failed"`` rows).
    arrived_at : float or None
        Unix time the piece's audio became available (the stream client's clock).
    worker : str
        The Temporal worker identity that classified it.
    """

    workflow_id: str
    piece: int
    recording: str
    source: str
    start_s: float
    end_s: float | None
    status: str
    label: str | None = None
    probabilities: Mapping[str, float] = field(default_factory=dict)
    reason: str = ""
    arrived_at: float | None = None
    worker: str = ""

    def __post_init__(self) -> None:
        if self.status not in ("ok", "failed"):
            raise DataError(f"result status must be 'ok' or 'failed', got {self.status!r}")


@dataclass(frozen=True)
class WindowResult:
    """One timeline window of a stored piece.

    Attributes
    ----------
    start_s, end_s : float
        The window's position in the recording, seconds.
    probabilities : dict of str to float
        Class -> probability.
    """

    start_s: float
    end_s: float
    probabilities: Mapping[str, float]


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    """Put a SQLite connection in write-ahead-log mode.

    One sync per commit (the default rollback journal needs several), and readers
    (``serve results``) never block the workers' writes.
    """
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


@functools.lru_cache(maxsize=8)
def engine(url: str) -> sa.Engine:
    """The engine of ``url`` (one per process), its table created if missing.

    A SQLite file is used in write-ahead-log mode (still synced at every commit).

    Raises
    ------
    DataError
        ``url`` is not a database URL SQLAlchemy can open.
    """
    try:
        eng = sa.create_engine(url)
        if eng.dialect.name == "sqlite":
            sa.event.listen(eng, "connect", _sqlite_wal)
        _metadata.create_all(eng)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, sa.exc.OperationalError) as exc:
        raise DataError(f"results store {url!r}: {exc}") from exc
    return eng


def store_result(url: str, result: PieceResult, windows: Sequence[WindowResult] = ()) -> bool:
    """Insert ``result`` (and its ``windows``) unless its (workflow id, piece) is already stored.

    The piece's row and its windows are one transaction: both are stored, or neither.

    Returns
    -------
    bool
        True if this call stored it, False if it was already there (kept unchanged).
    """
    row = {
        "workflow_id": result.workflow_id,
        "piece": int(result.piece),
        "recording": result.recording,
        "source": result.source,
        "start_s": float(result.start_s),
        "end_s": None if result.end_s is None else float(result.end_s),
        "status": result.status,
        "label": result.label,
        "probabilities": json.dumps(dict(result.probabilities)) if result.probabilities else None,
        "reason": result.reason or None,
        "arrived_at": result.arrived_at,
        "stored_at": time.time(),
        "worker": result.worker or None,
    }
    rows = [
        {
            "workflow_id": result.workflow_id,
            "piece": int(result.piece),
            "window": k,
            "recording": result.recording,
            "start_s": float(w.start_s),
            "end_s": float(w.end_s),
            "probabilities": json.dumps(dict(w.probabilities)),
        }
        for k, w in enumerate(windows)
    ]
    try:
        with engine(url).begin() as conn:
            conn.execute(_results.insert().values(**row))
            if rows:
                conn.execute(_windows.insert(), rows)
    except IntegrityError:
        return False
    return True


def query_results(
    url: str,
    *,
    recording: str | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
    stored_since: float | None = None,
) -> pd.DataFrame:
    """Stored results, ordered by recording, workflow and piece.

    Parameters
    ----------
    url : str
        SQLAlchemy URL of the store.
    recording : str, optional
        Only this recording.
    start_s, end_s : float, optional
        Only pieces that start at or after ``start_s`` / before ``end_s`` seconds into their
        recording.
    stored_since : float, optional
        Only results stored at or after this Unix time.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`RESULT_COLUMNS`, plus ``latency_s`` (``stored_at - arrived_at``);
        ``probabilities`` decoded to dicts.
    """
    query = sa.select(_results)
    if recording is not None:
        query = query.where(_results.c.recording == recording)
    if start_s is not None:
        query = query.where(_results.c.start_s >= start_s)
    if end_s is not None:
        query = query.where(_results.c.start_s < end_s)
    if stored_since is not None:
        query = query.where(_results.c.stored_at >= stored_since)
    query = query.order_by(_results.c.recording, _results.c.workflow_id, _results.c.piece)
    with engine(url).connect() as conn:
        df = pd.DataFrame(conn.execute(query).mappings().all(), columns=list(RESULT_COLUMNS))
    df["probabilities"] = [json.loads(p) if isinstance(p, str) else {} for p in df["probabilities"]]
    df["latency_s"] = df["stored_at"] - df["arrived_at"].astype(float)
    return df


def query_timeline(url: str, *, recording: str) -> pd.DataFrame:
    """The stored timeline windows of a recording, as a timeline table.

    Parameters
    ----------
    url : str
        SQLAlchemy URL of the store.
    recording : str
        The recording's id.

    Returns
    -------
    pandas.DataFrame
        ``file,start,end,<classes>`` (seconds; ``file`` is the recording id), one row per
        window in time order: for a recording submitted with the run that ``detect`` uses,
        the table :func:`emo_utils.timeline.timelines.file_timeline` gives for the file
        (feed it to :func:`emo_utils.timeline.events.detect_events`).  Empty when nothing is
        stored; the windows of failed pieces are missing (their rows in
        :func:`query_results` say why).
    """
    query = (
        sa.select(_windows)
        .where(_windows.c.recording == recording)
        .order_by(_windows.c.workflow_id, _windows.c.piece, _windows.c.window)
    )
    with engine(url).connect() as conn:
        rows = conn.execute(query).mappings().all()
    probs = pd.DataFrame([json.loads(r["probabilities"]) for r in rows])
    table = pd.DataFrame(
        {
            "file": [recording] * len(rows),
            "start": [r["start_s"] for r in rows],
            "end": [r["end_s"] for r in rows],
        }
    )
    return pd.concat([table, probs], axis=1)
