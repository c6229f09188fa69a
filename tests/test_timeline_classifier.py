"""RunClassifier: a trained run folder classifies windows and files with the training features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from timeline_world import CLASSES, tone_run, tone_signal

from emo_utils.audio import load_clip
from emo_utils.errors import AudioError
from emo_utils.submission import probabilities_path
from emo_utils.timeline import RunClassifier


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return tone_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def classifier(world):
    return RunClassifier(world.run_dir)


def test_loads_the_runs_classes_and_submission_method(world, classifier):
    assert classifier.classes == CLASSES
    assert classifier.method == world.result.submission_method
    assert classifier.columns == list(classifier.classes)
    assert classifier.window_samples == classifier.sample_rate * 1


def test_clip_probabilities_equal_the_runs_own_test_predictions(world, classifier):
    submitted = pd.read_csv(probabilities_path(world.result.submission))
    assert len(submitted) == 2 * len(CLASSES)
    for _, row in submitted.iterrows():
        got = classifier.classify_clip(world.data / "test" / row["filename"])
        want = row[list(classifier.columns)].to_numpy(dtype=np.float64)
        # The CNN is bit-identical; the statistics of the classical model differ in the
        # last float32 bits (the cache computes them with single-threaded BLAS).
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_window_of_a_test_clip_scores_as_the_clip(world, classifier):
    path = world.data / "test" / "t_low_1.wav"
    window = load_clip(path, config=classifier.config.audio)
    assert window.shape == (classifier.window_samples,)
    by_window = classifier.classify_windows(windows=window[None])
    np.testing.assert_allclose(by_window[0], classifier.classify_clip(path), rtol=0, atol=1e-12)


def test_windows_are_classified_independently_of_their_batch(classifier):
    windows = np.stack(
        [tone_signal(label, seconds=1.0, seed=77 + k) for k, label in enumerate(CLASSES)]
    )
    together = classifier.classify_windows(windows=windows)
    assert together.shape == (4, 4)
    np.testing.assert_allclose(together.sum(axis=1), 1.0, atol=1e-9)
    for k in range(4):
        alone = classifier.classify_windows(windows=windows[k : k + 1])
        np.testing.assert_allclose(alone[0], together[k], rtol=0, atol=1e-6)
    predicted = [classifier.columns[i] for i in together.argmax(axis=1)]
    assert predicted == list(CLASSES)


def test_short_windows_are_padded_like_short_clips(classifier):
    half = tone_signal("mid", seconds=0.5, seed=3)
    padded = np.zeros(classifier.window_samples, dtype=np.float32)
    padded[: len(half)] = half  # audio.pad = "zero"
    np.testing.assert_allclose(
        classifier.classify_windows(windows=half[None]),
        classifier.classify_windows(windows=padded[None]),
        rtol=0,
        atol=1e-12,
    )


@pytest.mark.parametrize(
    ("windows", "reason"),
    [
        (np.zeros(16000), r"shape \(n, samples\)"),
        (np.zeros((1, 0)), r"0 < samples"),
        (np.zeros((1, 16001)), r"samples <= 16000"),
        (np.full((1, 100), np.nan), r"NaN/inf"),
    ],
)
def test_bad_windows_get_a_clear_error(classifier, windows, reason):
    with pytest.raises(AudioError, match=reason):
        classifier.classify_windows(windows=windows)


def test_classify_file_gives_one_row_per_window(world, classifier):
    table = classifier.classify_file(world.data / "train" / "high_0.wav")
    assert list(table.columns) == ["start", "end", *classifier.columns]
    assert table["start"].tolist() == [0.0]  # the cache keeps audio.max_duration = 1 s
    assert table[list(classifier.columns)].to_numpy().argmax(axis=1).tolist() == [0]  # high


def test_oof_thresholds_are_tuned_per_class(classifier):
    thresholds = classifier.oof_thresholds()
    assert thresholds.shape == (len(CLASSES),)
    assert ((thresholds > 0) & (thresholds < 1)).all()
