"""When each class sounds: sliding-window timelines of files of any length.

:func:`file_timeline` decodes a file block by block (:func:`~.buffer.stream_audio`), cuts it
into windows (:class:`~.buffer.WindowBuffer`: ``window`` seconds every ``hop`` seconds,
default the run's ``audio.duration`` with 50 % overlap) and classifies them in batches with a
:class:`~.classifier.RunClassifier`, so memory does not grow with the file (only the table,
one row per window, and a coarse spectrogram for the plot do).

The timeline table has one row per window: ``file,start,end,<class probabilities>``
(seconds).  Runs whose models have the frame-level attention head (``sed:<name>``,
:attr:`RunClassifier.frame_level`) give finer rows, one per backbone frame (see
:func:`frame_rows`): the same columns, consecutive ``start``/``end`` spans that tile the
file from 0 to its end, each frame taken from the window in which it is most central.  :func:`segment_bounds` gives the span each window stands for when windows are
read as a sequence (events, change points): from the midpoint between its centre and the
previous window's centre to the midpoint with the next one, the first from 0 and the last
to the end of the file.  :func:`write_timeline` saves the table (CSV, or Parquet) and a PNG
of the spectrogram with the class probabilities over time, every file atomically.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..fileio import atomic_path, write_csv
from .buffer import Window, WindowBuffer, stream_audio
from .classifier import FrameProbabilities, RunClassifier

__all__ = [
    "TABLE_FORMATS",
    "Timeline",
    "classify_stream",
    "classify_windows",
    "file_timeline",
    "frame_rows",
    "plot_timeline",
    "segment_bounds",
    "window_samples",
    "write_timeline",
]

#: Seconds per column of the plot's spectrogram.
SPECTROGRAM_HOP = 0.05
#: Mel bands of the plot's spectrogram.
SPECTROGRAM_MELS = 64


def window_samples(
    classifier: RunClassifier, *, window: float | None = None, hop: float | None = None
) -> tuple[int, int]:
    """``(window, hop)`` in samples at the classifier's rate.

    Parameters
    ----------
    classifier : RunClassifier
    window : float, optional
        Seconds, ``0 < window <= audio.duration`` (shorter windows are padded as short
        clips are); default (``None`` or 0) ``audio.duration``.
    hop : float, optional
        Seconds between window starts, > 0; default (``None`` or 0) half the window.

    Raises
    ------
    ConfigError
        A window longer than the run's, or a negative value.
    """
    full = classifier.window_seconds
    window = window or full
    if not 0 < window <= full + 1e-9:
        raise ConfigError("timeline.window", window, f"must be in (0, audio.duration = {full}]")
    hop = hop or window / 2
    if hop <= 0:
        raise ConfigError("timeline.hop", hop, "must be > 0 seconds")
    rate = classifier.sample_rate
    return max(1, min(classifier.window_samples, round(window * rate))), max(1, round(hop * rate))


def classify_stream(
    classifier: RunClassifier,
    blocks: Iterable[np.ndarray],
    *,
    window: int,
    hop: int,
    batch_windows: int = 32,
    frames: bool = False,
    shared: bool = True,
) -> Iterator[tuple[list[Window], np.ndarray | FrameProbabilities]]:
    """Classify the windows of a stream of mono blocks at the classifier's rate, a batch at a time.

    Parameters
    ----------
    frames : bool
        Frame-wise probabilities (:meth:`RunClassifier.classify_frames`) instead of one
        row per window.
    shared : bool
        Window rows: overlapping windows share their STFT frames (see
        :func:`classify_windows`).

    Yields
    ------
    windows : list of Window
        Consecutive windows (the last batch includes the :meth:`WindowBuffer.flush` one).
    probabilities : numpy.ndarray of shape (len(windows), n_outputs), or FrameProbabilities
        With ``frames``: ``probabilities`` of shape ``(len(windows), n_frames, n_outputs)``.
    """

    def classify(batch: list[Window]) -> np.ndarray | FrameProbabilities:
        if frames:
            return _classify_frames(classifier, batch)
        return classify_windows(classifier, batch, shared=shared)

    buffer = WindowBuffer(window=window, hop=hop)
    pending: list[Window] = []
    for block in blocks:
        pending.extend(buffer.push(block))
        while len(pending) >= batch_windows:
            batch, pending = pending[:batch_windows], pending[batch_windows:]
            yield batch, classify(batch)
    pending.extend(buffer.flush())
    for start in range(0, len(pending), batch_windows):
        batch = pending[start : start + batch_windows]
        yield batch, classify(batch)


def classify_windows(
    classifier: RunClassifier, windows: list[Window], *, shared: bool = True
) -> np.ndarray:
    """Probabilities ``(len(windows), n_outputs)`` of windows of one stream.

    ``shared=True`` (timelines and streams): :meth:`RunClassifier.classify_stream_windows`,
    overlapping windows sharing their STFT frames; ``False``: each window featurised alone
    (:meth:`RunClassifier.classify_windows`, the reference the fast path is tested
    against).  Windows of different lengths (a stream shorter than one window) are
    classified one at a time.
    """
    if any(len(w.samples) != len(windows[0].samples) for w in windows):
        return np.concatenate([classify_windows(classifier, [w], shared=shared) for w in windows])
    samples = np.stack([w.samples for w in windows])
    if shared:
        starts = np.array([w.start for w in windows], dtype=np.int64)
        return classifier.classify_stream_windows(windows=samples, starts=starts)
    return classifier.classify_windows(windows=samples)


def _classify_frames(classifier: RunClassifier, windows: list[Window]) -> FrameProbabilities:
    if all(len(w.samples) == len(windows[0].samples) for w in windows):
        return classifier.classify_frames(windows=np.stack([w.samples for w in windows]))
    parts = [classifier.classify_frames(windows=w.samples[None]) for w in windows]
    return FrameProbabilities(
        starts=parts[0].starts,
        ends=parts[0].ends,
        probabilities=np.concatenate([p.probabilities for p in parts]),
    )


def frame_rows(
    *,
    starts: np.ndarray,
    ends: np.ndarray,
    frames: FrameProbabilities,
    duration: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frame rows of a timeline from the frame-wise probabilities of its windows.

    Window ``i`` stands for its segment (:func:`segment_bounds`: between the midpoints of
    its centre and its neighbours' centres, the first from 0, the last to ``duration``);
    it gives the frames whose centres fall in that segment (when none does, the frame
    holding the segment's midpoint), the first stretched back to the segment's start, the
    last to its end, every one clipped to the segment.  The rows therefore tile
    ``[0, duration]`` in time order, and every frame comes from the window in which it is
    most central (farthest from the window's edges and padding).

    Parameters
    ----------
    starts, ends : numpy.ndarray, shape (n_windows,)
        Window starts and ends in seconds (a short last window ends where the audio does).
    frames : FrameProbabilities
        Frame bounds (seconds from the window start) and probabilities
        ``(n_windows, n_frames, n_outputs)``.
    duration : float
        Seconds of audio.

    Returns
    -------
    row_starts, row_ends : numpy.ndarray of float64, shape (n_rows,)
    probabilities : numpy.ndarray of float64, shape (n_rows, n_outputs)
    """
    starts = np.asarray(starts, dtype=np.float64)
    n_out = frames.probabilities.shape[-1]
    if len(starts) == 0:
        return np.zeros(0), np.zeros(0), np.zeros((0, n_out))
    onsets, offsets = segment_bounds(starts, ends, duration=duration)
    centres = (frames.starts + frames.ends) / 2
    row_starts, row_ends, probs = [], [], []
    for i, start in enumerate(starts):
        on, off = onsets[i], offsets[i]
        if off <= on:
            continue
        c = start + centres
        keep = np.flatnonzero((c >= on) & (c < off))
        if keep.size == 0:
            keep = np.array([int(np.argmin(np.abs(c - (on + off) / 2)))])
        s = np.clip(start + frames.starts[keep], on, off)
        e = np.clip(start + frames.ends[keep], on, off)
        s[0], e[-1] = on, off
        row_starts.append(s)
        row_ends.append(e)
        probs.append(frames.probabilities[i, keep])
    return np.concatenate(row_starts), np.concatenate(row_ends), np.concatenate(probs)


class _Spectrogram:
    """A coarse log-mel spectrogram accumulated block by block (non-overlapping frames)."""

    def __init__(self, sample_rate: int) -> None:
        self.rate = sample_rate
        self.frame = max(16, round(SPECTROGRAM_HOP * sample_rate))
        self.mel = librosa.filters.mel(
            sr=sample_rate, n_fft=self.frame, n_mels=SPECTROGRAM_MELS, fmax=sample_rate / 2
        )
        self.window = np.hanning(self.frame).astype(np.float32)
        self.carry = np.zeros(0, dtype=np.float32)
        self.columns: list[np.ndarray] = []

    def push(self, block: np.ndarray) -> None:
        y = np.concatenate([self.carry, block]) if len(self.carry) else block
        n = len(y) // self.frame
        self.carry = y[n * self.frame :].copy()
        if n:
            frames = y[: n * self.frame].reshape(n, self.frame) * self.window
            power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
            mel = power @ self.mel.T
            self.columns.append(librosa.power_to_db(mel.T, ref=1.0, top_db=None).astype(np.float16))

    def result(self) -> np.ndarray:
        if not self.columns:
            return np.zeros((SPECTROGRAM_MELS, 0), dtype=np.float16)
        return np.concatenate(self.columns, axis=1)


@dataclass
class Timeline:
    """The timeline of one file.

    Attributes
    ----------
    table : pandas.DataFrame
        ``file,start,end,<class probabilities>``: one row per window, in time order (one
        per frame when :attr:`frames`, :func:`frame_rows`).
    columns : list of str
        The probability columns.
    duration : float
        Seconds of audio decoded.
    hop : float
        Seconds between window starts.
    spectrogram : numpy.ndarray of shape (SPECTROGRAM_MELS, n_columns) or None
        Log-mel dB, one column per :data:`SPECTROGRAM_HOP` seconds (for the plot).
    frames : bool
        Rows are the frames of a frame-level (SED) run rather than windows.
    """

    table: pd.DataFrame
    columns: list[str]
    duration: float
    hop: float
    spectrogram: np.ndarray | None = None
    frames: bool = False

    @property
    def probabilities(self) -> np.ndarray:
        """``(n_rows, n_outputs)`` float64 (rows: windows, or frames)."""
        return self.table[self.columns].to_numpy(dtype=np.float64)


def file_timeline(
    classifier: RunClassifier,
    path: str | os.PathLike,
    *,
    window: float | None = None,
    hop: float | None = None,
    batch_windows: int = 32,
    spectrogram: bool = True,
    name: str | None = None,
    frames: bool | None = None,
    shared: bool = True,
) -> Timeline:
    """The sliding-window timeline of a file of any length, in bounded memory.

    Parameters
    ----------
    classifier : RunClassifier
        The trained run.
    path : str or os.PathLike
        Any readable audio file.
    window, hop : float, optional
        Seconds (see :func:`window_samples`; defaults: ``audio.duration``, half of it).
    batch_windows : int
        Windows per call of :meth:`RunClassifier.classify_windows`.
    spectrogram : bool
        Also keep a coarse log-mel spectrogram (:attr:`Timeline.spectrogram`) for the plot.
    name : str, optional
        The ``file`` column (default: the file name).
    frames : bool, optional
        One row per frame of the run's frame-level head (:func:`frame_rows`) rather than
        per window; default :attr:`RunClassifier.frame_level` (``False`` for runs without
        the head, whose frames are their windows).
    shared : bool
        Overlapping windows share their STFT frames (the fast path, equal within float32
        rounding); ``False`` featurises each window alone (:func:`classify_windows`).

    Returns
    -------
    Timeline

    Raises
    ------
    AudioError
        The file cannot be decoded, or holds NaN/inf samples.
    ConfigError
        Bad ``window`` or ``hop``.
    """
    w, h = window_samples(classifier, window=window, hop=hop)
    rate = classifier.sample_rate
    spec = _Spectrogram(rate) if spectrogram else None
    total = [0]

    def blocks() -> Iterator[np.ndarray]:
        for block in stream_audio(path, sample_rate=rate):
            total[0] += len(block)
            if spec is not None:
                spec.push(block)
            yield block

    frames = classifier.frame_level if frames is None else bool(frames)
    starts, ends, probs = [], [], []
    for batch, p in classify_stream(
        classifier,
        blocks(),
        window=w,
        hop=h,
        batch_windows=batch_windows,
        frames=frames,
        shared=shared,
    ):
        starts.extend(win.start for win in batch)
        ends.extend(win.end for win in batch)
        probs.append(p)
    starts_s = np.asarray(starts, dtype=np.float64) / rate
    ends_s = np.asarray(ends, dtype=np.float64) / rate
    if frames and probs:
        per_window = FrameProbabilities(
            starts=probs[0].starts,
            ends=probs[0].ends,
            probabilities=np.concatenate([p.probabilities for p in probs]),
        )
        starts_s, ends_s, values = frame_rows(
            starts=starts_s, ends=ends_s, frames=per_window, duration=total[0] / rate
        )
    else:
        values = np.concatenate(probs) if probs else np.zeros((0, len(classifier.columns)))
    table = pd.DataFrame(values, columns=classifier.columns)
    table.insert(0, "end", ends_s)
    table.insert(0, "start", starts_s)
    table.insert(0, "file", name or Path(path).name)
    return Timeline(
        table=table,
        columns=list(classifier.columns),
        duration=total[0] / rate,
        hop=h / rate,
        spectrogram=None if spec is None else spec.result(),
        frames=frames,
    )


def segment_bounds(
    starts: np.ndarray, ends: np.ndarray, *, duration: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The span each window of a timeline stands for (see the module doc).

    Parameters
    ----------
    starts, ends : numpy.ndarray, shape (n,)
        Window starts and ends in seconds, increasing.
    duration : float, optional
        End of the audio (default the last window's end).

    Returns
    -------
    onsets, offsets : numpy.ndarray of float64, shape (n,)
        Consecutive and touching: ``offsets[i] == onsets[i + 1]``; from 0 to ``duration``.

    Notes
    -----
    Rows that already tile the audio from 0 (every ``ends[i] == starts[i + 1]``: the frame
    rows of a frame-level run, :func:`frame_rows`, or windows with ``hop == window``) are
    their own segments, the last one extended to ``duration``; for equal-length windows this
    is what the midpoints give.
    """
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    if len(starts) == 0:
        return starts.copy(), ends.copy()
    end = float(ends[-1] if duration is None else max(duration, ends[-1]))
    if starts[0] == 0 and np.allclose(ends[:-1], starts[1:], rtol=0, atol=1e-9):
        return starts.copy(), np.concatenate([ends[:-1], [end]])
    centers = (starts + ends) / 2
    mids = (centers[1:] + centers[:-1]) / 2
    return np.concatenate([[0.0], mids]), np.concatenate([mids, [end]])


def plot_timeline(timeline: Timeline, *, title: str = "") -> object:
    """A figure: the spectrogram over the class probabilities of every window, in time.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..reports.plots import new_figure

    fig = new_figure(12, 5.5)
    spec_ax, prob_ax = fig.subplots(2, 1, sharex=True, height_ratios=[1, 1.2])
    if timeline.spectrogram is not None and timeline.spectrogram.shape[1]:
        s = timeline.spectrogram.astype(np.float32)
        spec_ax.imshow(
            s,
            origin="lower",
            aspect="auto",
            extent=(0, s.shape[1] * SPECTROGRAM_HOP, 0, s.shape[0]),
            cmap="magma",
            vmin=float(s.max()) - 80,
        )
    spec_ax.set_ylabel("mel band")
    spec_ax.set_title(title or str(timeline.table["file"].iloc[0] if len(timeline.table) else ""))
    onsets, offsets = segment_bounds(
        timeline.table["start"], timeline.table["end"], duration=timeline.duration
    )
    for column in timeline.columns:
        values = timeline.table[column].to_numpy(dtype=np.float64)
        xs = np.ravel(np.column_stack([onsets, offsets]))
        prob_ax.plot(xs, np.repeat(values, 2), label=column, linewidth=1.2)
    prob_ax.set_ylim(-0.02, 1.02)
    prob_ax.set_xlim(0, max(timeline.duration, 1e-3))
    prob_ax.set_xlabel("time (s)")
    prob_ax.set_ylabel("probability")
    prob_ax.legend(loc="upper right", fontsize="small", ncol=min(4, len(timeline.columns)))
    return fig


def _write_parquet(path: Path, table: pd.DataFrame) -> None:
    if importlib.util.find_spec("pyarrow") is None:
        raise ConfigError("timeline.table_format", "parquet", "needs pyarrow (pip install pyarrow)")
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


#: ``timeline.table_format`` -> ``(suffix, writer(path, table))``.
TABLE_FORMATS = {
    "csv": (".timeline.csv", write_csv),
    "parquet": (".timeline.parquet", _write_parquet),
}


def write_timeline(
    timeline: Timeline,
    out_dir: str | os.PathLike,
    *,
    stem: str,
    table_format: str = "csv",
    plot: bool = True,
) -> list[Path]:
    """Save a timeline's table (``STEM.timeline.csv`` or ``.parquet``) and PNG (``STEM.timeline.png``).

    Returns
    -------
    list of pathlib.Path
        The files written (atomically).
    """
    try:
        suffix, writer = TABLE_FORMATS[table_format]
    except KeyError:
        raise ConfigError(
            "timeline.table_format", table_format, f"known: {sorted(TABLE_FORMATS)}"
        ) from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table_path = out / f"{stem}{suffix}"
    writer(table_path, timeline.table)
    written = [table_path]
    if plot:
        from ..reports.plots import save_figure

        written.append(save_figure(plot_timeline(timeline), out / f"{stem}.timeline.png"))
    return written
