"""Clients of the serving workflows: submit recording files, feed a stream, read results.

:class:`StreamFeeder` sends a live stream's pieces to its :class:`~.workflows.StreamWorkflow`
as ``add_chunk`` signals carrying references (the audio itself is written to a spool folder
first, never put in a payload).  :func:`stream_file` replays a file as such a stream, in real
time or as fast as possible.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
from temporalio.client import Client, WorkflowHandle

from ..audio import audio_info, load_audio
from ..errors import DataError
from ..fileio import atomic_path
from .messages import ChunkRef, RecordingInput, StreamInput, StreamSummary, TimeoutSettings
from .workflows import RecordingWorkflow, StreamWorkflow

__all__ = [
    "StreamFeeder",
    "recording_id",
    "stream_file",
    "stream_workflow_id",
    "submit_files",
]


def recording_id(path: str | os.PathLike) -> str:
    """A recording id from a file name: its stem, characters outside ``[A-Za-z0-9._-]`` as ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", Path(path).stem) or "recording"


def stream_workflow_id(recording: str) -> str:
    """The workflow id (and results key) of a stream."""
    return f"stream-{recording}"


class StreamFeeder:
    """Feeds one stream's pieces to its workflow (started by the first piece).

    Parameters
    ----------
    client : temporalio.client.Client
    recording : str
        Stream id; the workflow id is :func:`stream_workflow_id` of it.
    task_queue : str
    pieces_per_run : int
        See :class:`~.messages.StreamInput`.
    timeouts : TimeoutSettings, optional
    """

    def __init__(
        self,
        client: Client,
        recording: str,
        *,
        task_queue: str,
        pieces_per_run: int = 500,
        timeouts: TimeoutSettings | None = None,
    ) -> None:
        self.client = client
        self.recording = recording
        self.workflow_id = stream_workflow_id(recording)
        self.task_queue = task_queue
        self.pieces_per_run = pieces_per_run
        self.timeouts = timeouts or TimeoutSettings()
        self.handle: WorkflowHandle | None = None

    async def send(self, chunk: ChunkRef) -> None:
        """Send one piece (signal-with-start: the first one starts the workflow)."""
        if chunk.arrived_at is None:
            chunk.arrived_at = time.time()
        start = StreamInput(
            self.recording, pieces_per_run=self.pieces_per_run, timeouts=self.timeouts
        )
        self.handle = await self.client.start_workflow(
            StreamWorkflow.run,
            start,
            id=self.workflow_id,
            task_queue=self.task_queue,
            start_signal="add_chunk",
            start_signal_args=[chunk],
        )

    async def end(self, total_pieces: int) -> None:
        """The stream has ``total_pieces`` pieces; the workflow ends once they are stored."""
        handle = self.handle or self.client.get_workflow_handle(self.workflow_id)
        await handle.signal(StreamWorkflow.end_stream, total_pieces)

    async def result(self) -> StreamSummary:
        """Wait for the workflow (across continue-as-new) to finish."""
        handle = self.client.get_workflow_handle(self.workflow_id, result_type=StreamSummary)
        return await handle.result()


async def stream_file(
    client: Client,
    path: str | os.PathLike,
    *,
    task_queue: str,
    spool_dir: str | os.PathLike,
    chunk_s: float = 5.0,
    recording: str | None = None,
    realtime: bool = True,
    pieces_per_run: int = 500,
    timeouts: TimeoutSettings | None = None,
    wait: bool = True,
) -> StreamSummary | None:
    """Replay an audio file as a live stream of ``chunk_s``-second pieces.

    Piece ``k`` is written to ``spool_dir/RECORDING/piece_K.wav`` (atomically, at the file's
    native rate) and signalled when its audio has "arrived": at ``(k + 1) * chunk_s``
    seconds after the start with ``realtime``, at once otherwise.  Its ``arrived_at`` is that
    moment, so stored results measure the latency from the end of a piece to its result.

    Parameters
    ----------
    client : temporalio.client.Client
    path : str or os.PathLike
        The recording.
    task_queue : str
    spool_dir : str or os.PathLike
        Folder the workers can read (shared disk or the same machine).
    chunk_s : float
        Seconds per piece (5-15 s in the reference design).
    recording : str, optional
        Stream id (default :func:`recording_id` of ``path``).
    realtime : bool
        Pace the pieces like a live stream.
    pieces_per_run, timeouts
        See :class:`~.messages.StreamInput`.
    wait : bool
        Wait for every piece to be stored and return the summary.

    Returns
    -------
    StreamSummary or None
        None without ``wait``.
    """
    if chunk_s <= 0:
        raise DataError(f"chunk length must be > 0 s, got {chunk_s}")
    recording = recording or recording_id(path)
    rate = audio_info(path).sample_rate
    y = load_audio(path, sample_rate=rate)
    size = max(1, round(chunk_s * rate))
    n = max(1, int(np.ceil(len(y) / size)))
    folder = Path(spool_dir) / recording
    folder.mkdir(parents=True, exist_ok=True)
    feeder = StreamFeeder(
        client, recording, task_queue=task_queue, pieces_per_run=pieces_per_run, timeouts=timeouts
    )
    t0 = time.monotonic()
    for k in range(n):
        piece = y[k * size : (k + 1) * size]
        if realtime:
            await asyncio.sleep(max(0.0, t0 + (k * size + len(piece)) / rate - time.monotonic()))
        target = folder / f"piece_{k:06d}.wav"
        with atomic_path(target) as tmp:
            sf.write(tmp, piece, rate, format="WAV", subtype="FLOAT")
        await feeder.send(
            ChunkRef(
                k, os.fspath(target.resolve()), start_s=k * chunk_s, duration_s=len(piece) / rate
            )
        )
    await feeder.end(n)
    return await feeder.result() if wait else None


async def submit_files(
    client: Client,
    files: Sequence[str | os.PathLike],
    *,
    task_queue: str,
    piece_s: float = 5.0,
    timeouts: TimeoutSettings | None = None,
    wait: bool = True,
) -> list[StreamSummary] | list[str]:
    """Start one :class:`~.workflows.RecordingWorkflow` per file (id ``recording-STEM``).

    The workflows are started concurrently (one start request each, not waiting for the
    previous one's answer), so workers get the first files while the last ones are sent.

    Returns
    -------
    list of StreamSummary, or list of str
        The summaries in ``files`` order with ``wait``, else the workflow ids.
    """

    async def start(f: str | os.PathLike) -> WorkflowHandle:
        recording = recording_id(f)
        request = RecordingInput(
            recording,
            os.fspath(Path(f).resolve()),
            piece_s=piece_s,
            arrived_at=time.time(),
            timeouts=timeouts or TimeoutSettings(),
        )
        return await client.start_workflow(
            RecordingWorkflow.run, request, id=f"recording-{recording}", task_queue=task_queue
        )

    handles = list(await asyncio.gather(*(start(f) for f in files)))
    if not wait:
        return [h.id for h in handles]
    return list(await asyncio.gather(*(h.result() for h in handles)))
