"""detect: timelines, events and plots of long recordings, then categorised and evaluated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from audio_factory import write_signal
from timeline_world import RATE, sequence_signal, tone_run

from emo_utils.cli import main as cli_main
from emo_utils.errors import ConfigError, DataError
from emo_utils.fileio import read_csv
from emo_utils.timeline.detect import audio_files, detect_files, event_segments

RECORDINGS = {
    "one.wav": [("quiet", 1.5), ("low", 3.0), ("quiet", 2.5), ("high", 2.5), ("quiet", 2.0)],
    "two.flac": [("mid", 2.5), ("quiet", 3.0), ("low", 2.0), ("mid", 3.0), ("quiet", 1.0)],
}
OVERRIDES = {"timeline.event_classes": ["high", "low", "mid"], "timeline.collar": 0.5}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return tone_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def long_recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long")
    rows = []
    for k, (name, parts) in enumerate(RECORDINGS.items()):
        write_signal(folder / "audio" / name, sequence_signal(parts, seed=20 + k), sr=RATE)
        t = 0.0
        for label, seconds in parts:
            if label != "quiet":
                rows.append((name, t, t + seconds, label))
            t += seconds
    reference = pd.DataFrame(rows, columns=["file", "onset", "offset", "label"])
    reference.to_csv(folder / "reference.csv", index=False)
    return folder, reference


@pytest.fixture(scope="module")
def detected(world, long_recordings, tmp_path_factory):
    folder, _ = long_recordings
    out = tmp_path_factory.mktemp("detections")
    result = detect_files(
        [folder / "audio"],
        run_dir=world.run_dir,
        out_dir=out,
        categorise=world.run_dir,
        reference=folder / "reference.csv",
        overrides=OVERRIDES,
    )
    return out, result


def test_detect_then_categorise_finds_the_events_of_long_recordings(detected, long_recordings):
    out, result = detected
    _, reference = long_recordings
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "detect.json",
        "evaluation.csv",
        "events.csv",
        "one.wav.timeline.csv",
        "one.wav.timeline.png",
        "two.flac.timeline.csv",
        "two.flac.timeline.png",
    ]
    events = read_csv(out / "events.csv")
    assert list(events.columns[:7]) == [
        "file", "onset", "offset", "label", "score", "category", "category_score",
    ]  # fmt: skip
    assert set(events["label"]) <= {"high", "low", "mid"}
    # Both scores: the detector's and the categoriser's (here the same run agrees with itself).
    assert (events["label"] == events["category"]).all()
    assert events["score"].between(0, 1).all()
    assert events["category_score"].between(0, 1).all()
    scores = result.evaluation.set_index("class")
    assert scores.loc["overall", "n_reference"] == len(reference) == 5
    assert scores.loc["overall", "event_f1"] >= 0.8
    assert scores.loc["overall", "segment_f1"] >= 0.85
    pd.testing.assert_frame_equal(read_csv(out / "evaluation.csv"), result.evaluation)


def test_a_rerun_reuses_the_timelines(world, long_recordings, detected):
    folder, _ = long_recordings
    out, first = detected
    again = detect_files(
        [folder / "audio"], run_dir=world.run_dir, out_dir=out, overrides=OVERRIDES
    )
    assert again.reused == 2
    pd.testing.assert_frame_equal(again.events, first.events[list(again.events.columns)])
    changed = detect_files(
        [folder / "audio" / "one.wav"],
        run_dir=world.run_dir,
        out_dir=out,
        overrides={**OVERRIDES, "timeline.hop": 0.25},
    )
    assert changed.reused == 0


def test_event_segments_cut_the_audio_of_each_event_in_one_pass(long_recordings):
    folder, _ = long_recordings
    path = folder / "audio" / "one.wav"
    y = sequence_signal(RECORDINGS["one.wav"], seed=20)
    intervals = np.array([[4.0, 6.0], [1.0, 5.0], [10.9, 12.0], [11.5, 20.0], [30.0, 31.0]])
    got = dict(event_segments(path, intervals, sample_rate=RATE))
    assert sorted(got) == [0, 1, 2, 3, 4]
    for k, (a, b) in enumerate(intervals):
        want = y[round(a * RATE) : round(b * RATE)]
        np.testing.assert_allclose(got[k], want, atol=1e-4)  # PCM_16 wav


def test_bad_inputs_and_settings_are_named(world, tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        audio_files([tmp_path / "missing.wav"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no audio files"):
        audio_files([tmp_path / "empty"])
    path = write_signal(tmp_path / "a.wav", sequence_signal([("low", 1.0)]), sr=RATE)
    with pytest.raises(ConfigError, match="only timeline"):
        detect_files([path], run_dir=world.run_dir, out_dir=tmp_path, overrides={"train.lr": 1})


def test_cli_detect_writes_the_outputs_and_prints_the_scores(
    world, long_recordings, tmp_path, capsys
):
    folder, _ = long_recordings
    code = cli_main(
        [
            "detect",
            "--run", str(world.run_dir),
            "--out", str(tmp_path / "out"),
            "--reference", str(folder / "reference.csv"),
            "--set", "timeline.event_classes=[high, low, mid]",
            "--set", "timeline.plot=false",
            str(folder / "audio" / "two.flac"),
        ]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "detect: 1 file(s)" in out
    assert "event-based F1" in out
    assert not list((tmp_path / "out").glob("*.png"))
    assert (tmp_path / "out" / "events.csv").is_file()
