"""Events from hand-made timelines (smoothing, hysteresis, minimum length, merging) and
their DCASE evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emo_utils.config import TimelineConfig
from emo_utils.errors import DataError
from emo_utils.timeline.events import detect_events, evaluate_events, hysteresis_runs


def _timeline(probs: dict[str, list[float]], *, file: str = "f.wav", hop: float = 1.0):
    """Windows of 2 s every ``hop`` s whose segments are [i - 0.5, i + 0.5] * hop, shifted."""
    n = len(next(iter(probs.values())))
    start = np.arange(n) * hop
    table = pd.DataFrame({"file": file, "start": start, "end": start + 2 * hop})
    for name, values in probs.items():
        table[name] = values
    return table


def _events(table, thresholds=0.5, **settings):
    cols = [c for c in table.columns if c not in ("file", "start", "end")]
    defaults = {"median_filter": 1, "hysteresis": 0.0}
    return detect_events(
        table,
        columns=cols,
        thresholds=thresholds,
        settings=TimelineConfig(**{**defaults, **settings}),
    )


def test_a_single_event_spans_its_windows_segments():
    table = _timeline({"laugh": [0.1, 0.2, 0.9, 0.8, 0.7, 0.1, 0.0]})
    events = _events(table)
    # Window centres are 1, 2, ..., 7 s; segments cut at the midpoints 1.5, 2.5, ...
    assert events.to_dict("records") == [
        {"file": "f.wav", "onset": 2.5, "offset": 5.5, "label": "laugh", "score": 0.9}
    ]


def test_hysteresis_keeps_an_event_through_a_dip_and_needs_the_high_threshold_to_start():
    values = [0.1, 0.6, 0.45, 0.3, 0.45, 0.7, 0.2]
    assert hysteresis_runs(np.array(values), high=0.5, low=0.4) == [(1, 3), (5, 6)]
    assert hysteresis_runs(np.array(values), high=0.5, low=0.5) == [(1, 2), (5, 6)]
    table = _timeline({"cry": values})
    assert len(_events(table)) == 2
    assert _events(table, hysteresis=0.1)[["onset", "offset"]].values.tolist() == [
        [1.5, 3.5],
        [5.5, 6.5],
    ]
    # Never above the onset threshold: no event, however long it stays just below.
    assert _events(_timeline({"cry": [0.45] * 6}), hysteresis=0.3).empty


def test_median_filter_removes_one_window_spikes_and_fills_one_window_holes():
    spike = _timeline({"x": [0.0, 0.0, 0.9, 0.0, 0.0, 0.0]})
    assert len(_events(spike)) == 1
    assert _events(spike, median_filter=3).empty
    hole = _timeline({"x": [0.9, 0.9, 0.1, 0.9, 0.9, 0.9]})
    assert len(_events(hole)) == 2
    filled = _events(hole, median_filter=3)
    assert filled[["onset", "offset"]].values.tolist() == [[0.0, 7.0]]


def test_min_gap_merges_and_min_duration_drops():
    table = _timeline({"x": [0.9, 0.1, 0.9, 0.9, 0.1, 0.1, 0.1, 0.9, 0.1]})
    assert _events(table)[["onset", "offset"]].values.tolist() == [
        [0.0, 1.5],
        [2.5, 4.5],
        [7.5, 8.5],
    ]
    merged = _events(table, min_gap=1.0 + 1e-9)
    assert merged[["onset", "offset"]].values.tolist() == [[0.0, 4.5], [7.5, 8.5]]
    # Merging comes first, then the length filter (DCASE order).
    assert _events(table, min_gap=1.0 + 1e-9, min_duration=2.0)[["onset"]].values.tolist() == [
        [0.0]
    ]


def test_per_class_thresholds_classes_and_files():
    a = _timeline({"laugh": [0.7, 0.7, 0.1], "speech": [0.3, 0.3, 0.9]}, file="a.wav")
    b = _timeline({"laugh": [0.1, 0.35, 0.35], "speech": [0.9, 0.6, 0.6]}, file="b.wav")
    table = pd.concat([a, b], ignore_index=True)
    events = _events(table, thresholds=[0.3, 0.95])
    assert events[["file", "label"]].values.tolist() == [["a.wav", "laugh"], ["b.wav", "laugh"]]
    only = _events(table, thresholds=0.5, event_classes=("speech",))
    assert set(only["label"]) == {"speech"}
    assert only["file"].tolist() == ["a.wav", "b.wav"]
    with pytest.raises(DataError, match="not classes of the run"):
        _events(table, event_classes=("music",))
    with pytest.raises(DataError, match="3 thresholds for 2 classes"):
        _events(table, thresholds=[0.5, 0.5, 0.5])


def test_event_and_segment_f1_follow_the_dcase_tolerances():
    reference = pd.DataFrame(
        {
            "file": ["a.wav", "a.wav", "a.wav"],
            "onset": [1.0, 10.0, 20.0],
            "offset": [5.0, 12.0, 21.0],
            "label": ["laugh", "laugh", "cry"],
        }
    )
    events = pd.DataFrame(
        {
            "file": ["a.wav", "a.wav", "a.wav", "a.wav"],
            # onset 0.15 s late, offset within 20 % of 4 s: a match
            # onset 0.3 s late: no match (collar 0.2 s); a cry where there is none
            "onset": [1.15, 10.3, 20.1, 30.0],
            "offset": [4.3, 12.0, 21.0, 31.0],
            "label": ["laugh", "laugh", "cry", "cry"],
            "score": [0.9, 0.8, 0.7, 0.6],
        }
    )
    scores = evaluate_events(events, reference, durations={"a.wav": 32.0}).set_index("class")
    assert scores.loc["laugh", "event_f1"] == pytest.approx(0.5)  # 1 of 2 and 1 of 2
    assert scores.loc["cry", "event_precision"] == pytest.approx(0.5)
    assert scores.loc["cry", "event_recall"] == pytest.approx(1.0)
    assert scores.loc["overall", "event_f1"] == pytest.approx(2 * 2 / (3 + 4))
    # Segments of 1 s: laugh reference 1-5 and 10-12 (6 segments), estimated 1-5 and 10-12.
    assert scores.loc["laugh", "segment_f1"] == pytest.approx(1.0)
    assert scores.loc["cry", "segment_precision"] == pytest.approx(0.5)
    loose = evaluate_events(
        events, reference, settings=TimelineConfig(collar=0.5), durations={"a.wav": 32.0}
    ).set_index("class")
    assert loose.loc["laugh", "event_f1"] == pytest.approx(1.0)


def test_bad_reference_tables_are_named():
    bad = pd.DataFrame({"file": ["a"], "onset": [3.0], "offset": [2.0], "label": ["x"]})
    with pytest.raises(DataError, match=r"reference: row 2 needs .*onset < offset"):
        evaluate_events(bad, bad)
    with pytest.raises(DataError, match=r"missing column\(s\) \['label'\]"):
        evaluate_events(bad, bad.drop(columns="label"))
