"""The serving workflows: one per live stream or recording file.

A stream receives its pieces as ``add_chunk`` signals carrying :class:`~.messages.ChunkRef`
references (a repeated piece index is ignored), classifies and stores them strictly in index
order, one ``classify_piece`` activity each, and ends after the ``end_stream`` signal once
every piece up to its count is stored.  It continues as new every
``StreamInput.pieces_per_run`` pieces (or when the server suggests it), carrying the pieces
not classified yet, so a stream of any length keeps a bounded history under one workflow id
(the results key).  A piece whose attempts run out is stored as a failure with the error and
the stream goes on.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from .messages import (
        ChunkRef,
        PieceOutcome,
        PieceRequest,
        RecordingInput,
        StreamInput,
        StreamSummary,
        TimeoutSettings,
    )

__all__ = ["RecordingWorkflow", "StreamWorkflow", "classify_in_workflow"]


def _cause(exc: BaseException) -> str:
    """The innermost message of an activity failure."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc) or type(exc).__name__


def _classify_options(timeouts: TimeoutSettings) -> dict:
    """Timeouts and retries of one ``classify_piece`` activity."""
    return {
        "result_type": PieceOutcome,
        "start_to_close_timeout": timedelta(seconds=timeouts.start_to_close_s),
        "heartbeat_timeout": timedelta(seconds=timeouts.heartbeat_s),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(milliseconds=200),
            maximum_interval=timedelta(seconds=5),
            maximum_attempts=timeouts.max_attempts,
        ),
    }


async def _store_failure(
    request: PieceRequest, exc: ActivityError, timeouts: TimeoutSettings
) -> PieceOutcome:
    """Store why a piece's attempts ran out (the ``store_failure`` activity)."""
    request.reason = f"classification failed after {timeouts.max_attempts} attempts: {_cause(exc)}"
    return await workflow.execute_activity(
        "store_failure",
        request,
        result_type=PieceOutcome,
        start_to_close_timeout=timedelta(seconds=60),
    )


async def classify_in_workflow(
    recording: str, chunk: ChunkRef, timeouts: TimeoutSettings
) -> PieceOutcome:
    """Run ``classify_piece`` for one piece; when its attempts run out, store the failure."""
    request = PieceRequest(workflow.info().workflow_id, recording, chunk)
    try:
        return await workflow.execute_activity(
            "classify_piece", request, **_classify_options(timeouts)
        )
    except ActivityError as exc:
        return await _store_failure(request, exc, timeouts)


@workflow.defn(name="StreamWorkflow")
class StreamWorkflow:
    """A live stream: pieces arrive as signals, results are stored once each, in order."""

    def __init__(self) -> None:
        self._pending: dict[int, ChunkRef] = {}
        self._next = 0
        self._total: int | None = None
        self._failed = 0

    @workflow.signal(name="add_chunk")
    def add_chunk(self, chunk: ChunkRef) -> None:
        """One more piece (ignored if its index was classified or received already)."""
        if chunk.piece >= self._next and chunk.piece not in self._pending:
            self._pending[chunk.piece] = chunk

    @workflow.signal(name="end_stream")
    def end_stream(self, total_pieces: int) -> None:
        """The stream has ``total_pieces`` pieces (indices ``0 .. total_pieces - 1``)."""
        self._total = total_pieces

    @workflow.query(name="next_piece")
    def next_piece(self) -> int:
        """Index of the next piece to classify (every earlier one is stored)."""
        return self._next

    def _finished(self) -> bool:
        return self._total is not None and self._next >= self._total

    @workflow.run
    async def run(self, start: StreamInput) -> StreamSummary:
        """Classify pieces in order until the stream ends; continue as new periodically."""
        self._next = start.next_piece
        for chunk in start.pending:
            self.add_chunk(chunk)
        if start.total_pieces is not None:
            self._total = start.total_pieces
        done = 0
        while True:
            await workflow.wait_condition(lambda: self._next in self._pending or self._finished())
            if self._finished():
                break
            outcome = await classify_in_workflow(
                start.recording, self._pending.pop(self._next), start.timeouts
            )
            self._failed += outcome.status == "failed"
            self._next += 1
            done += 1
            if done >= start.pieces_per_run or workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    StreamInput(
                        recording=start.recording,
                        next_piece=self._next,
                        pending=sorted(self._pending.values(), key=lambda c: c.piece),
                        total_pieces=self._total,
                        pieces_per_run=start.pieces_per_run,
                        timeouts=start.timeouts,
                    )
                )
        return StreamSummary(start.recording, self._next, self._failed)


@workflow.defn(name="RecordingWorkflow")
class RecordingWorkflow:
    """A recording file: split into pieces, every piece classified (concurrently) and stored."""

    @workflow.run
    async def run(self, recording: RecordingInput) -> StreamSummary:
        """Plan the pieces, classify them all, return the counts."""
        # A local activity: reading a header needs no task-queue round trip of its own.
        chunks = await workflow.execute_local_activity(
            "plan_pieces",
            recording,
            result_type=list[ChunkRef],
            start_to_close_timeout=timedelta(seconds=60),
        )
        requests = [
            PieceRequest(workflow.info().workflow_id, recording.recording, chunk)
            for chunk in chunks
        ]
        handles = [
            workflow.start_activity(
                "classify_piece", request, **_classify_options(recording.timeouts)
            )
            for request in requests
        ]
        failed = 0
        for request, handle in zip(requests, handles, strict=True):
            try:
                outcome = await handle
            except ActivityError as exc:
                outcome = await _store_failure(request, exc, recording.timeouts)
            failed += outcome.status == "failed"
        return StreamSummary(recording.recording, len(chunks), failed)
