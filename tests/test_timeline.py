"""Timelines of files of any length: windows, change points, bounded memory, saved files."""

from __future__ import annotations

import tracemalloc

import librosa
import numpy as np
import pandas as pd
import pytest
from audio_factory import write_long_wav, write_signal
from timeline_world import RATE, sequence_signal, tone_run

from emo_utils.errors import AudioError, ConfigError
from emo_utils.features import FeatureStore
from emo_utils.timeline import RunClassifier
from emo_utils.timeline.buffer import WindowBuffer, stream_audio
from emo_utils.timeline.timelines import (
    file_timeline,
    segment_bounds,
    window_samples,
    write_timeline,
)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return RunClassifier(tone_run(tmp_path_factory.getbasetemp()).run_dir)


# ---------------------------------------------------------------------------- the ring buffer
@pytest.mark.parametrize(("window", "hop"), [(10, 5), (10, 3), (10, 10), (10, 13), (7, 1)])
@pytest.mark.parametrize("n", [3, 10, 11, 37, 100])
def test_buffer_windows_match_the_cache_windows_for_any_piece_sizes(window, hop, n):
    x = np.arange(n, dtype=np.float32)
    buffer = WindowBuffer(window=window, hop=hop)
    rng = np.random.default_rng(n + window + hop)
    got, i = [], 0
    while i < n:
        k = int(rng.integers(0, 15))
        got += buffer.push(x[i : i + k])
        i += k
    got += buffer.flush()
    for w in got:
        np.testing.assert_array_equal(w.samples, x[w.start : w.end])
    if n < window:
        assert [(w.start, w.end) for w in got] == [(0, n)]
        return
    # The store's windows of an image of n frames: the same starts.
    image = np.zeros((1, 1, n), dtype=np.float32)
    store = FeatureStore.from_arrays(["x"], [image], window_frames=window)
    assert [w.start for w in got] == store.window_starts(0, hop=hop).tolist()
    assert all(w.end - w.start == window for w in got)


def test_buffer_memory_does_not_grow_with_the_stream():
    buffer = WindowBuffer(window=100, hop=50)
    n_windows = 0
    for _ in range(200):
        n_windows += len(buffer.push(np.ones(1234, dtype=np.float32)))
    assert buffer._buf.nbytes == 2 * 100 * 4
    assert n_windows == (200 * 1234 - 100) // 50 + 1


# ---------------------------------------------------------------------------- decoding
def test_streamed_decode_equals_the_whole_file_decode(tmp_path):
    y = sequence_signal([("low", 1.3), ("mid", 0.9)], seed=1)
    stereo = np.stack([y, 0.5 * y], axis=1)
    path = write_signal(
        tmp_path / "s.flac", librosa.resample(stereo.T, orig_sr=RATE, target_sr=22050).T, sr=22050
    )
    streamed = np.concatenate(list(stream_audio(path, sample_rate=RATE)))
    whole = librosa.load(path, sr=RATE)[0]
    assert abs(len(streamed) - len(whole)) <= 1
    n = min(len(streamed), len(whole))
    # soxr's streaming and one-shot resamplers agree to float precision away from the ends.
    np.testing.assert_allclose(streamed[100 : n - 100], whole[100 : n - 100], atol=2e-3)


def test_nan_samples_name_the_file_and_the_second(tmp_path):
    path = write_long_wav(tmp_path / "nan.wav", sr=8000, seconds=20, finite_seconds=12.5)
    with pytest.raises(AudioError, match=r"nan\.wav.*NaN/inf sample\(s\), first at 12\.500 s"):
        list(stream_audio(path, sample_rate=8000))


# ---------------------------------------------------------------------------- timelines
@pytest.mark.parametrize(
    "parts",
    [
        [("low", 3.0), ("high", 3.2), ("mid", 2.9), ("quiet", 1.0)],
        [("mid", 3.1), ("high", 2.7), ("low", 3.3)],
        [("high", 3.1), ("mid", 2.7), ("quiet", 3.3)],
    ],
)
def test_class_changes_are_placed_within_one_hop(classifier, tmp_path, parts):
    path = write_signal(tmp_path / "seq.wav", sequence_signal(parts, seed=5), sr=RATE)
    timeline = file_timeline(classifier, path)
    hop = timeline.hop
    assert hop == pytest.approx(0.5)  # default: half the training window
    labels = np.array(timeline.columns)[timeline.probabilities.argmax(axis=1)]
    onsets, _ = segment_bounds(
        timeline.table["start"], timeline.table["end"], duration=timeline.duration
    )
    found = [(onsets[i], labels[i]) for i in range(1, len(labels)) if labels[i] != labels[i - 1]]
    truth = list(zip(np.cumsum([s for _, s in parts])[:-1], [c for c, _ in parts[1:]], strict=True))
    assert [c for _, c in found] == [c for _, c in truth]
    assert labels[0] == parts[0][0]
    for (at, _), (true_at, _) in zip(found, truth, strict=True):
        assert abs(at - true_at) <= hop


def test_timeline_table_layout_and_window_settings(classifier, tmp_path):
    path = write_signal(tmp_path / "a.wav", sequence_signal([("low", 2.3)]), sr=RATE)
    table = file_timeline(classifier, path, window=0.8, hop=0.25, spectrogram=False).table
    assert list(table.columns) == ["file", "start", "end", *classifier.columns]
    assert (table["file"] == "a.wav").all()
    assert table["start"].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
    np.testing.assert_allclose(table["end"] - table["start"], 0.8)
    np.testing.assert_allclose(table[classifier.columns].sum(axis=1), 1.0, atol=1e-9)
    short = write_signal(tmp_path / "short.wav", sequence_signal([("mid", 0.4)]), sr=RATE)
    row = file_timeline(classifier, short, spectrogram=False).table
    assert row[["start", "end"]].to_numpy().tolist() == [[0.0, 0.4]]
    with pytest.raises(ConfigError, match=r"timeline\.window"):
        window_samples(classifier, window=1.5)
    with pytest.raises(ConfigError, match=r"timeline\.hop"):
        window_samples(classifier, hop=-1)


def test_write_timeline_saves_the_table_and_plot(classifier, tmp_path):
    path = write_signal(tmp_path / "b.wav", sequence_signal([("low", 1.5), ("high", 1.5)]), sr=RATE)
    timeline = file_timeline(classifier, path)
    assert timeline.spectrogram.shape == (64, 60)  # 3 s at 0.05 s per column
    written = write_timeline(timeline, tmp_path / "out", stem="b")
    assert [p.name for p in written] == ["b.timeline.csv", "b.timeline.png"]
    pd.testing.assert_frame_equal(pd.read_csv(written[0]), timeline.table, atol=1e-12)
    assert written[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "out").glob(".tmp*"))
    with pytest.raises(ConfigError, match="known"):
        write_timeline(timeline, tmp_path / "out", stem="b", table_format="xlsx")


def _peak(classifier, path, **options):
    tracemalloc.start()
    try:
        timeline = file_timeline(classifier, path, hop=60.0, batch_windows=2, **options)
        return timeline, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_file(classifier, tmp_path):
    short = write_long_wav(tmp_path / "short.wav", sr=8000, seconds=300, freq=300.0)
    long = write_long_wav(tmp_path / "long.wav", sr=8000, seconds=600, freq=300.0)
    _, short_peak = _peak(classifier, short, spectrogram=False)
    timeline, long_peak = _peak(classifier, long, spectrogram=False)
    assert timeline.duration == pytest.approx(600, abs=1e-3)
    assert len(timeline.table) == 11  # 0, 60, ..., 540 s and the end-aligned window
    assert timeline.table["end"].iloc[-1] == pytest.approx(600, abs=1e-3)
    # Twice the audio, the same peak: at most batch_windows windows wait for the
    # classifier (the table's rows are all that grows).
    assert long_peak < short_peak + 256 * 1024, (short_peak, long_peak)
    whole_file_bytes = 600 * RATE * 4  # the file decoded whole at the run's rate
    assert long_peak < whole_file_bytes / 4, f"peak {long_peak / 1e6:.1f} MB"
    # The plot's coarse spectrogram (64 float16 mel bands every 0.05 s: 2.5 KB per second
    # of audio, joined once at the end) is what grows with the plot; the rest is per block.
    plotted, with_plot = _peak(classifier, long)
    assert plotted.spectrogram.nbytes == 64 * 12000 * 2
    assert with_plot < long_peak + 2 * plotted.spectrogram.nbytes + (2 << 20)
