"""Sound events from timelines, and their evaluation against reference events.

**Detection** (:func:`detect_events`), per file and class, in the DCASE post-processing order:

1. median filter of the window probabilities over ``median_filter`` windows
   (:func:`scipy.ndimage.median_filter`, edges repeated);
2. hysteresis thresholding: an event starts at a window whose probability reaches the class's
   onset threshold and lasts while it stays at or above ``threshold - hysteresis``;
3. gap merging: events of one class separated by less than ``min_gap`` seconds become one;
4. minimum length: events shorter than ``min_duration`` seconds are dropped.

Times come from :func:`~.timelines.segment_bounds`: an event spans its windows' segments
(midpoints between neighbouring window centres), so a class change is placed between the
last window of the old class and the first of the new one.  An event's ``score`` is the
largest filtered probability of its class inside it.

**Evaluation** (:func:`evaluate_events`), the DCASE metrics per class and overall (micro):

* *event-based*: a detected event matches a reference event of the same class and file when
  their onsets differ by at most ``collar`` seconds and their offsets by at most
  ``max(collar, offset_ratio * reference length)`` (DCASE: 200 ms, 20 %); events are
  matched one to one (maximum bipartite matching of :mod:`mir_eval.transcription`);
* *segment-based*: time is cut into ``segment``-second segments; a class is active in a
  segment when an event of it overlaps the segment; precision, recall and F1 of the
  (segment, class) activity (:func:`sklearn.metrics.precision_recall_fscore_support`).

Tables: events ``file,onset,offset,label,score``; reference ``file,onset,offset,label``.
"""

from __future__ import annotations

from collections.abc import Sequence

import mir_eval
import numpy as np
import pandas as pd
from scipy.ndimage import median_filter as _median
from sklearn.metrics import precision_recall_fscore_support

from ..config import TimelineConfig
from ..errors import DataError
from .timelines import segment_bounds

__all__ = [
    "EVENT_COLUMNS",
    "REFERENCE_COLUMNS",
    "detect_events",
    "evaluate_events",
    "hysteresis_runs",
    "read_reference",
]

EVENT_COLUMNS = ["file", "onset", "offset", "label", "score"]
REFERENCE_COLUMNS = ["file", "onset", "offset", "label"]


def hysteresis_runs(values: np.ndarray, *, high: float, low: float) -> list[tuple[int, int]]:
    """Runs of a sequence that reach ``high`` and last while at or above ``low``.

    Parameters
    ----------
    values : numpy.ndarray, shape (n,)
    high, low : float
        Onset and offset thresholds, ``low <= high``.

    Returns
    -------
    list of (int, int)
        ``(first, last + 1)`` indices of every run, in order.

    Examples
    --------
    >>> hysteresis_runs(np.array([0.1, 0.6, 0.45, 0.3, 0.45, 0.7]), high=0.5, low=0.4)
    [(1, 3), (5, 6)]
    """
    runs, start = [], None
    for i, v in enumerate(np.asarray(values, dtype=np.float64)):
        if start is None and v >= high:
            start = i
        elif start is not None and v < low:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(values)))
    return runs


def _merge(events: list[list], min_gap: float) -> list[list]:
    """Merge ``[onset, offset, score]`` events (sorted) closer than ``min_gap``."""
    out: list[list] = []
    for ev in events:
        if out and ev[0] - out[-1][1] < min_gap:
            out[-1][1] = max(out[-1][1], ev[1])
            out[-1][2] = max(out[-1][2], ev[2])
        else:
            out.append(list(ev))
    return out


def detect_events(
    timeline: pd.DataFrame,
    *,
    columns: Sequence[str],
    thresholds: Sequence[float] | np.ndarray | float,
    settings: TimelineConfig | None = None,
    durations: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Events of every file and class of a timeline table (see the module doc).

    Parameters
    ----------
    timeline : pandas.DataFrame
        ``file,start,end,<columns>``, windows in time order within each file.
    columns : sequence of str
        The class probability columns.
    thresholds : float or sequence of float, shape (len(columns),)
        Onset threshold of every class.
    settings : TimelineConfig, optional
        ``hysteresis``, ``median_filter``, ``min_gap``, ``min_duration`` and
        ``event_classes`` (default: the defaults of :class:`TimelineConfig`).
    durations : dict of str to float, optional
        Length of each file in seconds (default: the end of its last window).

    Returns
    -------
    pandas.DataFrame
        ``file,onset,offset,label,score``, sorted by file, onset and label.

    Raises
    ------
    DataError
        A threshold per class that does not match ``columns``, or an unknown class in
        ``event_classes``.
    """
    settings = settings or TimelineConfig()
    columns = list(columns)
    given = np.asarray(thresholds, dtype=np.float64)
    if given.ndim and given.shape != (len(columns),):
        raise DataError(f"{given.size} thresholds for {len(columns)} classes")
    high = np.broadcast_to(given, (len(columns),))
    unknown = sorted(set(settings.event_classes) - set(columns))
    if unknown:
        raise DataError(f"timeline.event_classes {unknown} are not classes of the run {columns}")
    wanted = [c for c in columns if not settings.event_classes or c in settings.event_classes]
    rows = []
    for name, part in timeline.groupby("file", sort=False):
        duration = (durations or {}).get(str(name))
        onsets, offsets = segment_bounds(part["start"], part["end"], duration=duration)
        for column in wanted:
            k = columns.index(column)
            p = part[column].to_numpy(dtype=np.float64)
            if settings.median_filter > 1:
                p = _median(p, size=settings.median_filter, mode="nearest")
            low = max(0.0, high[k] - settings.hysteresis)
            events = [
                [onsets[a], offsets[b - 1], float(p[a:b].max())]
                for a, b in hysteresis_runs(p, high=high[k], low=low)
            ]
            for onset, offset, score in _merge(events, settings.min_gap):
                if offset - onset >= settings.min_duration:
                    rows.append((str(name), float(onset), float(offset), column, score))
    table = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    return table.sort_values(["file", "onset", "label"], kind="stable").reset_index(drop=True)


def read_reference(table: pd.DataFrame, *, source: str = "reference") -> pd.DataFrame:
    """Check a reference event table (``file,onset,offset,label``) and return it sorted.

    Raises
    ------
    DataError
        Missing columns, non-numeric or negative times, or an offset not after its onset,
        naming ``source`` and the first bad row.
    """
    missing = [c for c in REFERENCE_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing} (needs {REFERENCE_COLUMNS})")
    out = table[REFERENCE_COLUMNS].copy()
    for col in ("onset", "offset"):
        out[col] = pd.to_numeric(out[col], errors="coerce")
    bad = out["onset"].isna() | out["offset"].isna() | (out["onset"] < 0)
    bad |= out["offset"] <= out["onset"]
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{source}: row {row + 2} needs numeric times with 0 <= onset < offset, "
            f"got {table.iloc[row].to_dict()}"
        )
    out["file"] = out["file"].astype(str)
    out["label"] = out["label"].astype(str)
    return out.sort_values(["file", "onset", "label"], kind="stable").reset_index(drop=True)


def _intervals(table: pd.DataFrame, file: str, label: str) -> np.ndarray:
    part = table[(table["file"] == file) & (table["label"] == label)]
    return part[["onset", "offset"]].to_numpy(dtype=np.float64).reshape(-1, 2)


def _event_counts(
    ref: np.ndarray, est: np.ndarray, *, collar: float, offset_ratio: float
) -> tuple[int, int, int]:
    """``(matched, n_reference, n_estimated)`` of one file and class."""
    if len(ref) == 0 or len(est) == 0:
        return 0, len(ref), len(est)
    pitches = np.full(max(len(ref), len(est)), 440.0)  # one class at a time: pitch unused
    matching = mir_eval.transcription.match_notes(
        ref,
        pitches[: len(ref)],
        est,
        pitches[: len(est)],
        onset_tolerance=collar,
        offset_ratio=offset_ratio,
        offset_min_tolerance=collar,
        strict=False,
    )
    return len(matching), len(ref), len(est)


def _activity(intervals: np.ndarray, n_segments: int, segment: float) -> np.ndarray:
    """Segments (of ``segment`` seconds) overlapped by any interval."""
    active = np.zeros(n_segments, dtype=bool)
    for onset, offset in intervals:
        first = int(np.floor(onset / segment))
        last = int(np.ceil(offset / segment))
        active[first : min(last, n_segments)] = True
    return active


def _prf(tp: int, n_ref: int, n_est: int) -> tuple[float, float, float]:
    precision = tp / n_est if n_est else 0.0
    recall = tp / n_ref if n_ref else 0.0
    f1 = 2 * tp / (n_ref + n_est) if n_ref + n_est else 0.0
    return precision, recall, f1


def evaluate_events(
    events: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    classes: Sequence[str] | None = None,
    settings: TimelineConfig | None = None,
    durations: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Event-based and segment-based precision, recall and F1 per class (see the module doc).

    Parameters
    ----------
    events : pandas.DataFrame
        Detected events, ``file,onset,offset,label[,score]``.
    reference : pandas.DataFrame
        Reference events, ``file,onset,offset,label`` (checked by :func:`read_reference`).
    classes : sequence of str, optional
        Classes to score (default: every label of either table).
    settings : TimelineConfig, optional
        ``collar``, ``offset_ratio`` and ``segment``.
    durations : dict of str to float, optional
        Length of each file (default: its last event's offset in either table).

    Returns
    -------
    pandas.DataFrame
        One row per class and a last row ``"overall"`` (micro: counts pooled over classes),
        columns ``class, n_reference, n_estimated, event_precision, event_recall,
        event_f1, segment_precision, segment_recall, segment_f1``.  Only files of the
        reference are scored.
    """
    settings = settings or TimelineConfig()
    reference = read_reference(reference)
    events = read_reference(events, source="events")
    files = list(dict.fromkeys(reference["file"]))
    events = events[events["file"].isin(files)]
    if classes is None:
        classes = sorted(set(reference["label"]) | set(events["label"]))
    rows, totals = [], np.zeros(3, dtype=np.int64)
    seg_ref_all, seg_est_all = [], []
    for label in classes:
        counts = np.zeros(3, dtype=np.int64)
        seg_ref, seg_est = [], []
        for file in files:
            ref = _intervals(reference, file, label)
            est = _intervals(events, file, label)
            counts += _event_counts(
                ref, est, collar=settings.collar, offset_ratio=settings.offset_ratio
            )
            end = (durations or {}).get(file)
            if end is None:
                both = pd.concat([reference, events])
                end = float(both.loc[both["file"] == file, "offset"].max())
            n_segments = max(1, int(np.ceil(end / settings.segment)))
            seg_ref.append(_activity(ref, n_segments, settings.segment))
            seg_est.append(_activity(est, n_segments, settings.segment))
        totals += counts
        seg_ref_all.append(np.concatenate(seg_ref))
        seg_est_all.append(np.concatenate(seg_est))
        sp, sr, sf1, _ = precision_recall_fscore_support(
            seg_ref_all[-1], seg_est_all[-1], average="binary", zero_division=0.0
        )
        rows.append((label, int(counts[1]), int(counts[2]), *_prf(*counts), sp, sr, sf1))
    if rows:
        sp, sr, sf1, _ = precision_recall_fscore_support(
            np.concatenate(seg_ref_all),
            np.concatenate(seg_est_all),
            average="binary",
            zero_division=0.0,
        )
    else:
        sp = sr = sf1 = 0.0
    rows.append(("overall", int(totals[1]), int(totals[2]), *_prf(*totals), sp, sr, sf1))
    return pd.DataFrame(
        rows,
        columns=[
            "class",
            "n_reference",
            "n_estimated",
            "event_precision",
            "event_recall",
            "event_f1",
            "segment_precision",
            "segment_recall",
            "segment_f1",
        ],
    )
