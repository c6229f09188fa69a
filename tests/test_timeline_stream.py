"""Streaming: chunks of any size give the offline timeline's windows and probabilities;
bad chunks get clear errors and the stream keeps working."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
from audio_factory import write_signal
from timeline_world import RATE, sequence_signal, tone_run

from emo_utils.cli import main as cli_main
from emo_utils.errors import AudioError
from emo_utils.timeline import RunClassifier
from emo_utils.timeline.stream import StreamClassifier, stream_file
from emo_utils.timeline.timelines import file_timeline

PARTS = [("low", 1.7), ("high", 1.4), ("quiet", 1.1), ("mid", 1.25)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return tone_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def classifier(world):
    return RunClassifier(world.run_dir)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    y = sequence_signal(PARTS, seed=11)
    path = write_signal(tmp_path_factory.mktemp("stream") / "rec.wav", y, sr=RATE, subtype="PCM_16")
    return path, y


def _stream(stream, pieces, **kwargs):
    out = []
    for piece in pieces:
        out += stream.push(piece, **kwargs)
    return out + stream.close()


def _random_pieces(x, seed, largest):
    rng = np.random.default_rng(seed)
    cuts = np.cumsum(rng.integers(1, largest, size=len(x)))
    cuts = cuts[cuts < len(x)]
    return np.split(x, cuts)


def test_stream_of_bytes_equals_the_offline_timeline(classifier, recording):
    path, _ = recording
    offline = file_timeline(classifier, path, spectrogram=False)
    pcm = np.fromfile(path, dtype="<i2", offset=44)  # the PCM_16 wav's samples
    raw = pcm.tobytes()
    pieces = [raw[a:b] for a, b in _byte_cuts(len(raw), seed=1)]
    got = _stream(StreamClassifier(classifier, pcm="int16"), pieces)
    assert [[w.start, w.end] for w in got] == offline.table[["start", "end"]].values.tolist()
    np.testing.assert_allclose(
        np.stack([w.probabilities for w in got]), offline.probabilities, rtol=0, atol=1e-6
    )
    labels = [w.label for w in got]
    assert labels == list(np.array(offline.columns)[offline.probabilities.argmax(axis=1)])


def _byte_cuts(n, seed):
    """Random cuts of n bytes into whole int16 samples (1 to 9000 samples per piece)."""
    rng = np.random.default_rng(seed)
    start = 0
    while start < n:
        end = min(n, start + 2 * int(rng.integers(1, 9000)))
        yield start, end
        start = end


def test_stream_file_equals_the_offline_timeline_for_any_chunk(classifier, recording):
    path, _ = recording
    offline = file_timeline(classifier, path, hop=0.3, spectrogram=False)
    for chunk in (0.05, 3.0):
        got = list(stream_file(classifier, path, chunk=chunk, hop=0.3))
        assert [w.start for w in got] == pytest.approx(offline.table["start"].tolist())
        np.testing.assert_allclose(
            np.stack([w.probabilities for w in got]), offline.probabilities, rtol=0, atol=1e-6
        )


def test_a_stream_at_another_rate_is_resampled_like_a_file(classifier, recording, tmp_path):
    _, y = recording
    y8 = librosa.resample(y, orig_sr=RATE, target_sr=8000).astype(np.float32)
    path = write_signal(tmp_path / "rec8k.wav", y8, sr=8000, subtype="FLOAT")
    offline = file_timeline(classifier, path, spectrogram=False)
    stereo = np.stack([y8, y8], axis=1)  # mixed to mono like the file
    got = _stream(
        StreamClassifier(classifier, sample_rate=8000),
        _random_pieces(stereo, 2, 5000),
        sample_rate=8000,
    )
    assert len(got) == len(offline.table)
    np.testing.assert_allclose(
        np.stack([w.probabilities for w in got]), offline.probabilities, rtol=0, atol=1e-4
    )


#: Bad chunks, the keyword arguments they come with, and the error each gets.
BAD_CHUNKS = [
    (np.full(800, np.nan, dtype=np.float32), {}, r"NaN/inf samples; chunk dropped"),
    (np.zeros(0, dtype=np.float32), {}, r"empty chunk"),
    (np.zeros(800, dtype=np.float32), {"sample_rate": 44100}, r"44100 Hz in a 16000 Hz"),
    (b"\x00\x01\x02", {}, r"3 bytes is not whole int16 frames"),
    (np.array(["a", "b"]), {}, r"dtype <U1 is not audio"),
    (np.zeros((2, 2, 2), dtype=np.float32), {}, r"shape \(2, 2, 2\)"),
]


def test_bad_chunks_get_clear_errors_and_the_stream_keeps_working(classifier, recording):
    _, y = recording
    pieces = _random_pieces(y[: round(2.2 * RATE)], 3, 7000)
    clean = _stream(StreamClassifier(classifier), pieces)
    assert len(clean) == 4  # 0, 0.5, 1.0 and the end-aligned 1.2 s
    stream = StreamClassifier(classifier)
    got = []
    for k, piece in enumerate(pieces):
        for bad, kwargs, reason in BAD_CHUNKS if k in (0, 2) else []:
            with pytest.raises(AudioError, match=reason):
                stream.push(bad, **kwargs)
        got += stream.push(piece)
    got += stream.close()
    assert [w.start for w in got] == [w.start for w in clean]
    np.testing.assert_allclose(
        np.stack([w.probabilities for w in got]),
        np.stack([w.probabilities for w in clean]),
        rtol=0,
        atol=1e-6,
    )


def test_latency_is_one_window_and_memory_two_windows(classifier, recording):
    _, y = recording
    stream = StreamClassifier(classifier)
    hop = classifier.window_samples // 2
    emitted_at = []
    for k, piece in enumerate(np.split(y, np.arange(400, len(y), 400))):
        for w in stream.push(piece):
            emitted_at.append((w.end, min(len(y), (k + 1) * 400) / RATE))
            assert w.seconds < 5.0
    # Each window comes with the piece that completes it, not later.
    assert all(0 <= got - end < 400 / RATE + 1e-9 for end, got in emitted_at)
    assert stream._buffer._buf.nbytes == 2 * classifier.window_samples * 4
    assert len(emitted_at) == (len(y) - classifier.window_samples) // hop + 1


def test_cli_stream_prints_one_line_per_window(world, recording, capsys):
    path, _ = recording
    code = cli_main(
        ["detect", "--run", str(world.run_dir), "--stream", "--chunk", "0.5", str(path)]
    )
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    offline = file_timeline(RunClassifier(world.run_dir), path, spectrogram=False)
    assert len(lines) == len(offline.table)
    first = lines[0].split()
    assert first[:3] == ["rec.wav", "0.00", "1.00"]
    assert first[3] == "low"
    assert lines[-1].split()[3] == "mid"
