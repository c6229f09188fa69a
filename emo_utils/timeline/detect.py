"""``python -m emo_utils detect``: timelines, events and plots of files, optionally categorised.

:func:`detect_files` runs a trained *detector* run over audio files of any length (a
timeline per file, :func:`~.timelines.file_timeline`), detects events on the timelines
(:func:`~.events.detect_events`, with the ``timeline`` section of the detector's config,
overridable) and, in the two-stage mode, classifies the audio of every event with a
*categoriser* run (:func:`categorise_events`): e.g. laughter against everything else, then
the kind of laugh.  Either run may be single-label or multi-label.

Written to ``OUT`` (every file atomically)::

    OUT/NAME.timeline.csv    file,start,end,<detector class probabilities>  (or .parquet)
    OUT/NAME.timeline.png    spectrogram and class probabilities over time
    OUT/events.csv           file,onset,offset,label,score
                             [,category,category_score,<categoriser probabilities>]
    OUT/evaluation.csv       with --reference: event- and segment-based F1 per class
    OUT/detect.json          the runs and settings the timelines were made with

A rerun with the same runs, window and hop reuses the timelines already written (an
interrupted run over hours of audio resumes at the first file without one).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..audio import readable_extensions
from ..config import TimelineConfig
from ..errors import ConfigError, DataError
from ..fileio import read_csv, read_json, write_csv, write_json
from .buffer import WindowBuffer, stream_audio
from .classifier import RunClassifier
from .events import detect_events, evaluate_events, read_reference
from .timelines import TABLE_FORMATS, Timeline, file_timeline, write_timeline

__all__ = ["DetectResult", "audio_files", "categorise_events", "detect_files", "event_segments"]


def audio_files(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files given, and every readable audio file under the folders given (sorted).

    Raises
    ------
    DataError
        A path that does not exist, or no audio file at all.
    """
    extensions = set(readable_extensions())
    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            out.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
            )
        elif path.is_file():
            out.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    if not out:
        raise DataError(f"no audio files in {[os.fspath(p) for p in inputs]}")
    return list(dict.fromkeys(out))


def _stems(files: Sequence[Path]) -> list[str]:
    """Unique output names: the file name, numbered when two files share it."""
    seen: dict[str, int] = {}
    stems = []
    for f in files:
        k = seen.get(f.name, 0)
        seen[f.name] = k + 1
        stems.append(f.name if k == 0 else f"{f.name}.{k}")
    return stems


def event_segments(
    path: str | os.PathLike, intervals: np.ndarray, *, sample_rate: int
) -> Iterator[tuple[int, np.ndarray]]:
    """The audio of each ``[onset, offset)`` interval of a file, in one streamed pass.

    Parameters
    ----------
    path : str or os.PathLike
    intervals : numpy.ndarray, shape (n, 2)
        Seconds, any order (may overlap).
    sample_rate : int

    Yields
    ------
    index : int
        Row of ``intervals``.
    samples : numpy.ndarray of float32
        Mono audio at ``sample_rate``; only the events still open are held in memory.
    """
    bounds = np.round(np.asarray(intervals, dtype=np.float64).reshape(-1, 2) * sample_rate)
    order = np.argsort(bounds[:, 0], kind="stable")
    pieces: dict[int, list[np.ndarray]] = {}
    nxt, pos = 0, 0
    for block in stream_audio(path, sample_rate=sample_rate):
        end = pos + len(block)
        while nxt < len(order) and bounds[order[nxt], 0] < end:
            pieces[int(order[nxt])] = []
            nxt += 1
        for k in list(pieces):
            lo, hi = int(bounds[k, 0]), int(bounds[k, 1])
            a, b = max(lo, pos) - pos, min(hi, end) - pos
            if b > a:
                pieces[k].append(block[a:b])
            if hi <= end:
                yield k, np.concatenate(pieces.pop(k) or [np.zeros(0, np.float32)])
        pos = end
    for k in list(pieces) + [int(i) for i in order[nxt:]]:
        yield k, np.concatenate(pieces.pop(k, None) or [np.zeros(0, np.float32)])


def _pool(probs: np.ndarray, how: str) -> np.ndarray:
    return probs.max(axis=0) if how == "max" else probs.mean(axis=0)


def categorise_events(
    events: pd.DataFrame,
    files: Mapping[str, Path],
    *,
    categoriser: RunClassifier,
    settings: TimelineConfig | None = None,
) -> pd.DataFrame:
    """Add the categoriser's class of every event (the second stage of detect-then-categorise).

    The audio of an event is cut into the categoriser's windows (``settings.window`` and
    ``hop``; an event shorter than a window is one padded window), classified, and pooled
    over its windows with the categoriser's ``ensemble.pool`` (mean for single-label, max
    for multi-label runs).

    Parameters
    ----------
    events : pandas.DataFrame
        ``file,onset,offset,label,score``.
    files : mapping of str to pathlib.Path
        ``file`` value -> audio file.
    categoriser : RunClassifier
    settings : TimelineConfig, optional
        Window and hop (default: the categoriser's training window, half of it).

    Returns
    -------
    pandas.DataFrame
        ``events`` plus ``category`` (single-label: the most probable class; multi-label:
        the classes at or above their OOF-tuned thresholds, space-separated),
        ``category_score`` (the probability of the category; multi-label: the largest) and
        one column per categoriser class (``category_<class>``).
    """
    settings = settings or TimelineConfig()
    columns = categoriser.columns
    rate = categoriser.sample_rate
    window = round((settings.window or categoriser.window_seconds) * rate)
    window = max(1, min(window, categoriser.window_samples))
    hop = max(1, round((settings.hop or window / rate / 2) * rate))
    pool = categoriser.config.ensemble.pool or (
        "max" if categoriser.thresholds is not None else "mean"
    )
    probs = np.full((len(events), len(columns)), np.nan)
    for name, part in events.groupby("file", sort=False):
        rows = part.index.to_numpy()
        intervals = part[["onset", "offset"]].to_numpy(dtype=np.float64)
        for k, y in event_segments(files[str(name)], intervals, sample_rate=rate):
            if len(y) == 0:
                continue
            buffer = WindowBuffer(window=window, hop=hop)
            windows = np.stack([w.samples for w in buffer.push(y) + buffer.flush()])
            probs[rows[k]] = _pool(categoriser.classify_windows(windows=windows), pool)
    out = events.copy()
    if categoriser.thresholds is not None:
        on = probs >= categoriser.thresholds
        out["category"] = [" ".join(np.array(columns)[r]) for r in on]
        out["category_score"] = np.nanmax(probs, axis=1) if len(probs) else []
    else:
        best = np.nan_to_num(probs, nan=-1.0).argmax(axis=1)
        out["category"] = [columns[i] for i in best]
        out["category_score"] = probs[np.arange(len(probs)), best] if len(probs) else []
    for j, c in enumerate(columns):
        out[f"category_{c}"] = probs[:, j]
    return out


@dataclass
class DetectResult:
    """What :func:`detect_files` wrote and found.

    Attributes
    ----------
    events : pandas.DataFrame
        The event table (``events.csv``).
    timelines : dict of str to pathlib.Path
        ``file`` value -> its timeline table.
    written : list of pathlib.Path
        Every file written.
    evaluation : pandas.DataFrame or None
        Event- and segment-based scores per class, with a reference.
    reused : int
        Timelines read back from an earlier run instead of computed.
    """

    events: pd.DataFrame
    timelines: dict[str, Path]
    written: list[Path]
    evaluation: pd.DataFrame | None = None
    reused: int = 0


def _settings(classifier: RunClassifier, overrides: Mapping[str, object]) -> TimelineConfig:
    bad = [k for k in overrides if not str(k).startswith("timeline.")]
    if bad:
        raise ConfigError(bad[0], overrides[bad[0]], "detect takes only timeline.* overrides")
    return classifier.config.override(dict(overrides)).timeline


def detect_files(
    inputs: Sequence[str | os.PathLike],
    *,
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    categorise: str | os.PathLike | None = None,
    reference: str | os.PathLike | pd.DataFrame | None = None,
    overrides: Mapping[str, object] | None = None,
    device: str | None = None,
    engine: str = "auto",
    log: Callable[[str], None] | None = None,
) -> DetectResult:
    """Timelines, events and plots of audio files; optionally categorised and evaluated.

    Parameters
    ----------
    inputs : sequence of path-like
        Audio files and folders (searched recursively).
    run_dir : path-like
        The detector run.
    out_dir : path-like
        Where everything is written (see the module doc).
    categorise : path-like, optional
        A second run that classifies the audio of every detected event.
    reference : path-like or pandas.DataFrame, optional
        Reference events ``file,onset,offset,label`` (file = the audio file's name): the
        events are scored against it (their ``category`` when categorised, else their
        ``label``) and ``evaluation.csv`` written.
    overrides : mapping, optional
        ``timeline.*`` fields over the detector's config (the categoriser uses the same
        window settings only when given here, else its own training window).
    device : str, optional
        Torch device (default: the GPU when there is one).
    engine : str
        What runs the CNN fold models of both runs (``RunClassifier``'s ``engine``:
        ``"auto"``, ``"torch"``, ``"onnx"``, ``"onnx-int8"``).
    log : callable, optional
        Receives one line per file (default: nothing).

    Returns
    -------
    DetectResult
    """
    say = log or (lambda _line: None)
    overrides = dict(overrides or {})
    files = audio_files(inputs)
    detector = RunClassifier(run_dir, device=device, engine=engine)
    settings = _settings(detector, overrides)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key = {
        "run": os.fspath(Path(run_dir).resolve()),
        "method": detector.method,
        "window": settings.window,
        "hop": settings.hop,
        "table_format": settings.table_format,
        "engine": engine,
    }
    state_file = out / "detect.json"
    previous = read_json(state_file) if state_file.is_file() else None
    reusable = isinstance(previous, dict) and previous.get("timelines") == key
    write_json(state_file, {"timelines": key, "categorise": categorise and os.fspath(categorise)})
    thresholds = (
        np.full(len(detector.columns), settings.threshold)
        if settings.threshold
        else detector.oof_thresholds()
    )
    suffix = TABLE_FORMATS[settings.table_format][0]
    tables, durations, paths, timelines, written = [], {}, {}, {}, []
    reused = 0
    for path, stem in zip(files, _stems(files), strict=True):
        table_path = out / f"{stem}{suffix}"
        if reusable and table_path.is_file():
            table = (
                read_csv(table_path)
                if settings.table_format == "csv"
                else pd.read_parquet(table_path)
            )
            table["file"] = table["file"].astype(str)
            reused += 1
            say(f"{stem}: timeline reused ({len(table)} rows)")
            duration = float(table["end"].max()) if len(table) else 0.0
        else:
            timeline: Timeline = file_timeline(
                detector,
                path,
                window=settings.window,
                hop=settings.hop,
                batch_windows=settings.batch_windows,
                spectrogram=settings.plot,
                name=stem,
            )
            written += write_timeline(
                timeline, out, stem=stem, table_format=settings.table_format, plot=settings.plot
            )
            table, duration = timeline.table, timeline.duration
            rows = "frames" if timeline.frames else "windows"
            say(f"{stem}: {duration:.1f} s, {len(table)} {rows}")
        tables.append(table)
        durations[stem] = duration
        paths[stem] = path
        timelines[stem] = table_path
    events = detect_events(
        pd.concat(tables, ignore_index=True),
        columns=detector.columns,
        thresholds=thresholds,
        settings=settings,
        durations=durations,
    )
    if categorise is not None:
        categoriser = RunClassifier(categorise, device=device, engine=engine)
        window = {k: v for k, v in overrides.items() if k in ("timeline.window", "timeline.hop")}
        events = categorise_events(
            events,
            paths,
            categoriser=categoriser,
            settings=categoriser.config.override(window).timeline,
        )
    events_file = out / "events.csv"
    write_csv(events_file, events)
    written.append(events_file)
    say(f"{len(events)} events in {events_file}")
    evaluation = None
    if reference is not None:
        ref = reference if isinstance(reference, pd.DataFrame) else read_csv(reference)
        ref = read_reference(
            ref,
            source=os.fspath(reference) if not isinstance(reference, pd.DataFrame) else "reference",
        )
        scored = events.assign(label=events["category"]) if categorise is not None else events
        evaluation = evaluate_events(
            scored[scored["label"] != ""],
            ref,
            classes=sorted(set(ref["label"])),
            settings=settings,
            durations=durations,
        )
        evaluation_file = out / "evaluation.csv"
        write_csv(evaluation_file, evaluation)
        written.append(evaluation_file)
    return DetectResult(events, timelines, written, evaluation, reused)
