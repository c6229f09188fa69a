"""Long demo recordings: held-out demo clips in noise, with a reference event table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from emo_utils.datasets import make_demo_dataset
from emo_utils.datasets.long import NOISE_LEVEL, make_detector_competition, make_long_recordings
from emo_utils.errors import DataError


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), n_train=35, n_test=6, n_jobs=1)


def test_long_recordings_place_known_clips_between_noise(demo, tmp_path):
    reference = pd.read_csv(
        make_long_recordings(demo, tmp_path, minutes=(0.5, 0.25), gap=(1.0, 2.0), seed=3)
    )
    answers = pd.read_csv(demo / "test_answers.csv")
    assert sorted(reference["file"].unique()) == ["long_00.wav", "long_01.wav"]
    assert set(reference["label"]) <= set(answers["emotion"])
    for name, minutes in (("long_00.wav", 0.5), ("long_01.wav", 0.25)):
        info = sf.info(tmp_path / name)
        assert info.samplerate == 16000
        assert info.frames == round(minutes * 60 * 16000)
        events = reference[reference["file"] == name]
        assert len(events) >= 1
        assert (events["onset"].to_numpy()[1:] >= events["offset"].to_numpy()[:-1] + 1.0).all()
        assert events["offset"].max() <= minutes * 60
        y, sr = sf.read(tmp_path / name)
        first = events.iloc[0]
        gap = y[: int(first["onset"] * sr)]
        clip = y[int(first["onset"] * sr) : int(first["offset"] * sr)]
        assert np.std(gap) < 3 * NOISE_LEVEL  # background only before the first clip
        assert np.std(clip) > np.std(gap)


def test_detector_competition_has_voice_and_background(demo, tmp_path):
    out = make_detector_competition(demo, tmp_path, n_background=4)
    train = pd.read_csv(out / "train.csv")
    assert train["emotion"].value_counts().to_dict() == {"voice": 35, "background": 4}
    assert all((out / "train" / f).is_file() for f in train["filename"])
    assert len(pd.read_csv(out / "test.csv")) == 10


def test_missing_demo_is_named(tmp_path):
    with pytest.raises(DataError, match="demo-data"):
        make_long_recordings(tmp_path, tmp_path / "out")
