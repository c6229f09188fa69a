"""The payloads workflows, activities and clients exchange: references and small summaries.

Audio never travels in a payload (Temporal warns at 256 KB and refuses 2 MB): a piece is a
:class:`ChunkRef`, a path or ``file://`` URI plus where to read in it.  Standard library only,
so the workflow sandbox imports it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "ChunkRef",
    "PieceOutcome",
    "PieceRequest",
    "RecordingInput",
    "StreamInput",
    "StreamSummary",
    "TimeoutSettings",
]


@dataclass
class ChunkRef:
    """One piece of a recording, by reference.

    Attributes
    ----------
    piece : int
        Index of the piece in its recording (0, 1, ...): with the workflow id, its result key.
    uri : str
        Path or ``file://`` URI of the audio holding the piece.
    start_s : float
        Where the piece starts in the recording, seconds.
    read_offset_s : float
        Where to start reading in ``uri``, seconds (0 for a file that is the piece).
    duration_s : float or None
        Seconds to read from there (None: to the end of the file).
    arrived_at : float or None
        Unix time the piece became available (stream clients set it; latency is measured
        from it).
    timeline : bool
        A piece of a recording file planned on the run's timeline windows
        (:meth:`~.activities.ServingActivities.plan_pieces`): its windows are stored too, so
        the recording's pieces together give the file's timeline.
    """

    piece: int
    uri: str
    start_s: float = 0.0
    read_offset_s: float = 0.0
    duration_s: float | None = None
    arrived_at: float | None = None
    timeline: bool = False


@dataclass
class TimeoutSettings:
    """Activity timeouts and retries of the serving workflows.

    Attributes
    ----------
    start_to_close_s : float
        Longest one attempt of a piece's classification may take.
    heartbeat_s : float
        A worker that stops heartbeating this long (killed, cut off) loses the attempt and it
        is retried on another worker.
    max_attempts : int
        Attempts of a piece before it is stored as a failure (undecodable audio is stored at
        once, without retries).
    """

    start_to_close_s: float = 120.0
    heartbeat_s: float = 10.0
    max_attempts: int = 5


@dataclass
class StreamInput:
    """The state a stream workflow starts from (also what continue-as-new carries on).

    Attributes
    ----------
    recording : str
        Stream id the results are stored under.
    next_piece : int
        The next piece to classify (pieces are classified and stored in index order).
    pending : list of ChunkRef
        Pieces received but not classified yet.
    total_pieces : int or None
        Set by the ``end_stream`` signal: the stream ends once these are classified.
    pieces_per_run : int
        Pieces one workflow run classifies before it continues as new (bounded history);
        it continues earlier when the server suggests it.
    timeouts : TimeoutSettings
    """

    recording: str
    next_piece: int = 0
    pending: list[ChunkRef] = field(default_factory=list)
    total_pieces: int | None = None
    pieces_per_run: int = 500
    timeouts: TimeoutSettings = field(default_factory=TimeoutSettings)


@dataclass
class RecordingInput:
    """One recording file, classified piece by piece.

    Attributes
    ----------
    recording : str
        Id its results are stored under.
    uri : str
        Path or ``file://`` URI of the file.
    piece_s : float
        Seconds per piece, rounded to a whole number of timeline hops (each piece classifies
        the windows that start in it, so it reads one window minus one hop beyond its end;
        the last piece reads to the file's end).
    arrived_at : float or None
        Unix time the file was submitted.
    timeouts : TimeoutSettings
    """

    recording: str
    uri: str
    piece_s: float = 5.0
    arrived_at: float | None = None
    timeouts: TimeoutSettings = field(default_factory=TimeoutSettings)


@dataclass
class PieceRequest:
    """One piece for the classify activity (or, with a reason, a failure to store).

    Attributes
    ----------
    workflow_id : str
        With ``chunk.piece``, the result's key.
    recording : str
    chunk : ChunkRef
    reason : str
        Why the piece failed (only for the ``store_failure`` activity).
    """

    workflow_id: str
    recording: str
    chunk: ChunkRef
    reason: str = ""


@dataclass
class PieceOutcome:
    """What the classify activity reports back (the full result is in the store).

    Attributes
    ----------
    piece : int
    status : {"ok", "failed"}
    label : str or None
    reason : str
    newly_stored : bool
        False when an earlier attempt had stored it already.
    """

    piece: int
    status: str
    label: str | None = None
    reason: str = ""
    newly_stored: bool = True


@dataclass
class StreamSummary:
    """What a finished stream or recording workflow returns.

    Attributes
    ----------
    recording : str
    pieces : int
        Pieces classified (stored ok or as failures).
    failed : int
        Of those, stored as failures.
    """

    recording: str
    pieces: int
    failed: int
