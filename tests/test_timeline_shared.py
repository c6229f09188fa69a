"""The fast timeline path: shared STFT frames, ONNX Runtime fold models and the exact
statistics kernels give the probabilities of the per-window path."""

from __future__ import annotations

import shutil
import warnings

import librosa
import numpy as np
import pytest
from audio_factory import write_signal
from timeline_world import RATE, sequence_signal, tone_run

from emo_utils.config import Config, StatisticsConfig
from emo_utils.errors import ConfigError
from emo_utils.features import compute_image
from emo_utils.features.shared import window_images, window_powers
from emo_utils.features.statistics import _chroma, _Frames, clip_statistics, clips_statistics
from emo_utils.infer.onnx_export import OnnxFoldModel, export_onnx
from emo_utils.timeline import RunClassifier
from emo_utils.timeline.timelines import file_timeline

PARTS = [("low", 2.3), ("quiet", 0.9), ("high", 1.7), ("mid", 2.1), ("low", 1.2)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return tone_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def classifier(world):
    return RunClassifier(world.run_dir, engine="torch")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    y = sequence_signal(PARTS, seed=5)
    y[RATE * 3 : RATE * 3 + 5000] = 0  # digital silence: frames of zeros inside the file
    return write_signal(tmp_path_factory.mktemp("shared") / "rec.wav", y, sr=RATE)


def _signal(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * 16000)) / 16000
    y = 0.3 * np.sin(2 * np.pi * 440.0 * t) + 0.05 * rng.standard_normal(len(t))
    y[16000:20000] = 0
    return y.astype(np.float32)


@pytest.mark.parametrize(
    ("overrides", "hop", "shares"),
    [
        ({}, 40000, False),  # cpu_demo, the default 50 % overlap: no frame in common
        ({}, 512 * 39, True),  # hops of whole STFT hops: all but the edge frames shared
        ({"features.channels": ["mel", "mfcc", "delta"], "features.top_db": 40.0}, 8192, True),
        ({"features.normalization": "minmax", "features.precision": "float64"}, 1000, False),
    ],
)
def test_shared_frames_give_each_windows_own_image(overrides, hop, shares):
    config = Config.preset("cpu_demo").override(overrides)
    features, length = config.features, config.audio.n_samples
    y = _signal(20.0, seed=3)
    starts = np.arange(0, len(y) - length + 1, hop)[:9]
    windows = np.stack([y[s : s + length] for s in starts])
    got = window_images(windows, starts, sample_rate=16000, config=features)
    for image, w in zip(got, windows, strict=True):
        want = compute_image(w, sample_rate=16000, config=features)
        np.testing.assert_allclose(image, want, rtol=0, atol=1e-5)
    _, n_unique = window_powers(windows.astype(np.float32), starts, config=features)
    frames = len(starts) * (1 + length // features.hop_length)
    assert (n_unique < 0.75 * frames) == shares


@pytest.mark.parametrize("hop", [None, 0.256])  # half a window; 16 STFT hops (frames shared)
def test_fast_timeline_equals_the_per_window_timeline(classifier, recording, hop):
    fast = file_timeline(classifier, recording, hop=hop, spectrogram=False)
    slow = file_timeline(classifier, recording, hop=hop, spectrogram=False, shared=False)
    assert fast.table[["start", "end"]].equals(slow.table[["start", "end"]])
    assert len(fast.table) > 10
    np.testing.assert_allclose(fast.probabilities, slow.probabilities, rtol=0, atol=1e-5)
    assert (fast.probabilities.argmax(axis=1) == slow.probabilities.argmax(axis=1)).all()


def test_onnx_fold_models_give_the_checkpoints_probabilities(
    world, classifier, recording, tmp_path
):
    run = tmp_path / "run"
    shutil.copytree(world.run_dir, run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(run, progress=False)
    onnx = RunClassifier(run)  # engine "auto": the exported models
    models = [m for arch in onnx.architectures for m in onnx._models[arch]]
    assert sum(isinstance(m, OnnxFoldModel) for m in models) == onnx.config.train.n_folds
    got = file_timeline(onnx, recording, spectrogram=False)
    want = file_timeline(classifier, recording, spectrogram=False, shared=False)
    np.testing.assert_allclose(got.probabilities, want.probabilities, rtol=0, atol=1e-5)


def test_an_unknown_engine_is_a_config_error(world):
    with pytest.raises(ConfigError, match="tensorrt"):
        RunClassifier(world.run_dir, engine="tensorrt")


def test_statistics_chroma_and_mfcc_equal_librosa():
    config = StatisticsConfig()
    y = _signal(4.0, seed=8)
    for clip in (y[:16000], y[12000:28000], np.zeros(16000, np.float32)):
        frames = _Frames(clip, 16000, config)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # silence: no tuning peaks
            chroma = librosa.feature.chroma_stft(S=frames.power, sr=16000)
        mel = librosa.feature.melspectrogram(S=frames.power, sr=16000)
        mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=config.n_mfcc)
        np.testing.assert_array_equal(_chroma(frames), chroma)
        np.testing.assert_array_equal(frames.mfcc, mfcc)


def test_statistics_of_a_batch_equal_each_clips_own():
    config = StatisticsConfig()
    y = _signal(6.0, seed=9)
    clips = np.stack([y[s : s + 16000] for s in range(0, len(y) - 16000 + 1, 4000)])
    clips[-1] = 0  # a silent clip: no tuning peaks, constant descriptors
    got = clips_statistics(clips, sample_rate=16000, config=config)
    want = np.stack([clip_statistics(c, sample_rate=16000, config=config) for c in clips])
    assert got.shape == want.shape == (len(clips), len(want[0]))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
