"""detect: timelines, events and plots of long recordings, then categorised and evaluated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from audio_factory import write_competition, write_signal
from timeline_world import (
    CONFIG,
    RATE,
    TONES,
    sequence_signal,
    tone_run,
    tone_signal,
    train_run,
)

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


@pytest.fixture(scope="module")
def tag_run(tmp_path_factory):
    """A multi-label categoriser: which tones sound (one or two at once), logistic regression."""
    data = tmp_path_factory.mktemp("tags")
    rng = np.random.default_rng(7)
    tones = sorted(TONES)
    train = {}
    for j in range(54):
        # One tone, two at once, or (every third clip of the last 18) background alone.
        size = 0 if j >= 36 and j % 3 == 0 else 1 + j % 2
        labels = sorted(rng.choice(tones, size=size, replace=False))
        level = rng.uniform(0.3, 0.5) / max(1, len(labels))  # a mixture as loud as one tone
        y = sum(
            (
                tone_signal(t, seconds=1.2, seed=300 + 10 * j + k, amplitude=level)
                for k, t in enumerate(labels)
            ),
            start=tone_signal("quiet", seconds=1.2, seed=300 + 10 * j),
        )
        write_signal(data / "train" / f"tag_{j}.wav", y.astype(np.float32), sr=RATE)
        train[f"tag_{j}.wav"] = ",".join(labels)
    write_signal(data / "test" / "t0.wav", tone_signal("low", seconds=1.2, seed=1), sr=RATE)
    write_competition(data, train=train, test=["t0.wav"], label_column="labels")
    config = CONFIG.override(
        {
            "data.task": "multilabel",
            "data.label_column": "labels",
            "data.empty_label": "quiet",
            "train.architectures": ["classical:logreg"],
            "train.n_folds": 3,
        }
    )
    train_run(data, data, config)
    return data / "run"


def test_a_multi_label_categoriser_tags_each_detected_event(
    world, long_recordings, tag_run, tmp_path
):
    """Detect with a single-label run, categorise with a multi-label one (tones present)."""
    folder, _ = long_recordings
    result = detect_files(
        [folder / "audio"],
        run_dir=world.run_dir,
        out_dir=tmp_path / "out",
        categorise=tag_run,
        overrides=OVERRIDES,
    )
    events = result.events
    assert len(events) >= 4
    assert {"category_high", "category_low", "category_mid"} <= set(events.columns)
    # Each event's tags: the classes at their OOF thresholds, space-separated; the tone that
    # sounds there is among them and the most probable tone, and the score is the largest
    # tag probability (``quiet``, the background, is tagged too where windows at an event's
    # edges hold only background: max pooling).
    for event in events.itertuples():
        assert event.label in event.category.split(), (event.label, event.category)
        tones = {t: getattr(event, f"category_{t}") for t in ("high", "low", "mid")}
        assert max(tones, key=tones.get) == event.label
        every = [*tones.values(), event.category_quiet]
        assert event.category_score == pytest.approx(max(every))
