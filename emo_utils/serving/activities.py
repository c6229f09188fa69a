"""The serving activities: plan a recording's pieces, classify and store a piece, store a failure.

A recording file's pieces are planned on the run's timeline windows (:meth:`ServingActivities.
plan_pieces`) and each stores its windows with its result, so the pieces of a recording
together give the timeline ``detect`` computes for the file (:func:`~.store.query_timeline`).
A stream's piece is classified as a whole (its windows pooled).

Every activity gets audio by reference (:class:`~.messages.ChunkRef`) and writes its result
to the store itself (:func:`~.store.store_result`, idempotent on (workflow id, piece)), so
a retry after a worker died between storing and reporting stores nothing twice.  Audio that
cannot be decoded is stored as a failure with its reason at once (no retries); any other
error is raised, and Temporal retries the piece (the workflow stores a failure when the
attempts run out).
"""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
from temporalio import activity

from ..audio import audio_info, load_audio
from ..errors import AudioError
from .classifier import PieceClassifier, WindowProbabilities
from .messages import ChunkRef, PieceOutcome, PieceRequest, RecordingInput
from .store import PieceResult, WindowResult, store_result

__all__ = ["ServingActivities", "chunk_path", "read_piece"]


def chunk_path(uri: str) -> Path:
    """The local path of a chunk reference: a plain path or a ``file://`` URI.

    Raises
    ------
    AudioError
        Another URI scheme (only local files are served).
    """
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # a one-letter scheme is a Windows drive
        raise AudioError(uri, f"unsupported URI scheme {parsed.scheme!r} (file paths only)")
    return Path(uri)


def read_piece(chunk: ChunkRef, *, sample_rate: int) -> np.ndarray:
    """Decode the samples of one piece.

    Parameters
    ----------
    chunk : ChunkRef
        Where the piece is.
    sample_rate : int
        Rate to decode to.

    Returns
    -------
    numpy.ndarray, shape (n,), float32
        Mono samples.

    Raises
    ------
    AudioError
        The file is missing or cannot be decoded, or holds nothing at ``read_offset_s``.
    """
    return load_audio(
        chunk_path(chunk.uri),
        sample_rate=sample_rate,
        max_duration=chunk.duration_s,
        offset=chunk.read_offset_s or None,
    )


class ServingActivities:
    """The activities of one worker process, around one classifier and one results store.

    Parameters
    ----------
    classifier : PieceClassifier
        Loaded once, before the worker starts (:func:`~.classifier.run_classifier`).
    store_url : str
        SQLAlchemy URL of the results store.
    identity : str, optional
        Stored with every result (default ``pid@host``).
    """

    def __init__(
        self, classifier: PieceClassifier, *, store_url: str, identity: str | None = None
    ) -> None:
        self.classifier = classifier
        self.store_url = store_url
        self.identity = identity or f"{os.getpid()}@{socket.gethostname()}"

    def _result(self, request: PieceRequest, **fields: object) -> PieceResult:
        chunk = request.chunk
        return PieceResult(
            workflow_id=request.workflow_id,
            piece=chunk.piece,
            recording=request.recording,
            source=chunk.uri,
            start_s=chunk.start_s,
            end_s=None if chunk.duration_s is None else chunk.start_s + chunk.duration_s,
            arrived_at=chunk.arrived_at,
            worker=self.identity,
            **fields,
        )

    @activity.defn(name="classify_piece")
    def classify_piece(self, request: PieceRequest) -> PieceOutcome:
        """Classify one piece and store its result (or its decoding failure)."""
        activity.heartbeat()
        piece = request.chunk.piece
        rate = self.classifier.sample_rate
        windows: list[WindowResult] = []
        try:
            y = read_piece(request.chunk, sample_rate=rate)
            activity.heartbeat()
            if request.chunk.timeline:
                timeline = self.classifier.timeline(y, sample_rate=rate)
                probs = self.classifier.pool(timeline.probabilities)
                windows = self._windows(request.chunk, timeline)
            else:
                probs = self.classifier.classify(y, sample_rate=rate)
        except AudioError as exc:  # undecodable or unusable audio: no retry will help
            failed = self._result(request, status="failed", reason=str(exc))
            stored = store_result(self.store_url, failed)
            return PieceOutcome(piece, "failed", reason=str(exc), newly_stored=stored)
        classes = self.classifier.classes
        if not np.isfinite(probs).all() or any(
            not np.isfinite(list(w.probabilities.values())).all() for w in windows
        ):
            reason = "the models gave non-finite probabilities"
            stored = store_result(
                self.store_url, self._result(request, status="failed", reason=reason)
            )
            return PieceOutcome(piece, "failed", reason=reason, newly_stored=stored)
        label = classes[int(np.argmax(probs))]
        result = self._result(
            request,
            status="ok",
            label=label,
            probabilities={c: float(p) for c, p in zip(classes, probs, strict=True)},
        )
        return PieceOutcome(
            piece, "ok", label=label, newly_stored=store_result(self.store_url, result, windows)
        )

    def _windows(self, chunk: ChunkRef, timeline: WindowProbabilities) -> list[WindowResult]:
        """The piece's timeline windows, in seconds from the recording's start."""
        rate = self.classifier.sample_rate
        return [
            WindowResult(
                chunk.start_s + start / rate,
                chunk.start_s + end / rate,
                dict(zip(self.classifier.classes, map(float, row), strict=True)),
            )
            for start, end, row in zip(
                timeline.starts, timeline.ends, timeline.probabilities, strict=True
            )
        ]

    @activity.defn(name="store_failure")
    def store_failure(self, request: PieceRequest) -> PieceOutcome:
        """Store ``request.reason`` as the piece's result (its attempts ran out)."""
        stored = store_result(
            self.store_url, self._result(request, status="failed", reason=request.reason)
        )
        return PieceOutcome(
            request.chunk.piece, "failed", reason=request.reason, newly_stored=stored
        )

    @activity.defn(name="plan_pieces")
    def plan_pieces(self, recording: RecordingInput) -> list[ChunkRef]:
        """The pieces of a recording file, planned on the run's timeline windows.

        The file's timeline windows (``window`` samples every ``hop``, as
        :func:`emo_utils.timeline.timelines.file_timeline` cuts them) are split into pieces of
        ``round(piece_s / hop)`` consecutive windows: a piece starts at its first window and
        reads to the end of its last one (one window minus one hop beyond the next piece's
        start); the last piece reads to the end of the file and also gets the window aligned
        to the file's end.  So the windows the pieces store are the file's timeline, as long
        as the file holds the samples its header claims.  A file shorter than one window, or
        whose header cannot be read, is one piece (its classification stores why it failed).
        """
        whole = ChunkRef(0, recording.uri, arrived_at=recording.arrived_at, timeline=True)
        try:
            duration = audio_info(chunk_path(recording.uri)).duration
        except AudioError:
            return [whole]
        rate, window, hop = self.classifier.sample_rate, self.classifier.window, self.classifier.hop
        total = round(duration * rate)
        n_windows = (total - window) // hop + 1 if total >= window else 0
        per_piece = max(1, round(recording.piece_s * rate / hop))
        n = max(1, math.ceil(n_windows / per_piece))
        if n == 1:
            return [whole]
        return [
            ChunkRef(
                k,
                recording.uri,
                start_s=k * per_piece * hop / rate,
                read_offset_s=k * per_piece * hop / rate,
                duration_s=None if k == n - 1 else ((per_piece - 1) * hop + window) / rate,
                arrived_at=recording.arrived_at,
                timeline=True,
            )
            for k in range(n)
        ]

    @property
    def all(self) -> list:
        """Every activity, for ``Worker(activities=...)``."""
        return [self.classify_piece, self.store_failure, self.plan_pieces]
