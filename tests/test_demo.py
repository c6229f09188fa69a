"""The built-in demo competition folder (emo_utils.datasets.synthetic)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from emo_utils.data.competition import load_competition
from emo_utils.datasets.synthetic import (
    DEMO_CLASSES,
    MARKER_NAME,
    SAMPLE_RATES,
    demo_label_counts,
    demo_plan,
    make_demo_dataset,
    synthesize_voice,
)
from emo_utils.errors import ConfigError, DataError

REAL_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "ia-for-ai"
KNOWN_HEADERS = {
    "train.csv": ["filename", "emotion"],
    "test.csv": ["filename"],
    "sample_submission.csv": ["filename", "emotion"],
}
EMOTIONS = {"anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"}
N_TRAIN, N_TEST, SEED = 40, 15, 3
SOUNDFILE_FORMAT = {".mp3": "MP3", ".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


def _make(path: Path, **kwargs) -> Path:
    params = {"n_train": N_TRAIN, "n_test": N_TEST, "seed": SEED, "n_jobs": 1, **kwargs}
    return make_demo_dataset(path, **params)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    return _make(tmp_path_factory.mktemp("demo_a"))


@pytest.fixture(scope="module")
def demo_dir_again(tmp_path_factory) -> Path:
    """The same parameters again, written by two worker processes."""
    return _make(tmp_path_factory.mktemp("demo_b"), n_jobs=2)


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _audio_files(root: Path) -> list[Path]:
    return sorted(p for split in ("train", "test") for p in (root / split).iterdir())


def _mtimes(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- CSVs
@pytest.mark.parametrize("name", sorted(KNOWN_HEADERS))
def test_csv_headers_match_the_known_schema(demo_dir, name):
    assert list(_csv(demo_dir / name).columns) == KNOWN_HEADERS[name]


@pytest.mark.parametrize("name", sorted(KNOWN_HEADERS))
def test_csv_headers_match_the_real_competition(demo_dir, name):
    real = REAL_DIR / name
    if not real.is_file():
        pytest.skip(f"real competition CSV not available: {real}")
    assert list(_csv(demo_dir / name).columns) == list(pd.read_csv(real, nrows=0).columns)


def test_classes_are_the_seven_emotions_with_enough_clips_for_5_fold_cv(demo_dir):
    counts = Counter(_csv(demo_dir / "train.csv")["emotion"])
    assert set(counts) == EMOTIONS == set(DEMO_CLASSES)
    assert min(counts.values()) >= 5
    assert counts == Counter(demo_label_counts(N_TRAIN))


def test_label_counts_follow_the_real_imbalance():
    counts = demo_label_counts(350)
    assert sum(counts.values()) == 350
    assert max(counts, key=counts.get) == "neutral"
    assert counts["neutral"] > 0.4 * 350
    # Same ranking as the real train.csv: neutral > joy > surprise > anger > sadness > fear > disgust.
    assert list(counts) == ["neutral", "joy", "surprise", "anger", "sadness", "fear", "disgust"]
    assert list(counts.values()) == sorted(counts.values(), reverse=True)


def test_label_counts_keep_five_per_class_for_small_sets():
    for n in (35, 36, 40, 57):
        counts = demo_label_counts(n)
        assert sum(counts.values()) == n
        assert min(counts.values()) >= 5
    with pytest.raises(ConfigError, match="n"):
        demo_label_counts(34)


def test_file_names_are_numeric_unique_and_train_test_disjoint(demo_dir):
    train = _csv(demo_dir / "train.csv")["filename"]
    test = _csv(demo_dir / "test.csv")["filename"]
    assert len(train) == N_TRAIN
    assert len(test) == N_TEST
    assert all(re.fullmatch(r"\d+\.(mp3|wav)", name) for name in [*train, *test])
    assert train.is_unique
    assert test.is_unique
    assert not set(train) & set(test)
    # Exactly the listed files, and no temporary files left behind.
    assert sorted(p.name for p in (demo_dir / "train").iterdir()) == sorted(train)
    assert sorted(p.name for p in (demo_dir / "test").iterdir()) == sorted(test)


def test_answers_and_sample_submission_cover_the_test_rows(demo_dir):
    test = _csv(demo_dir / "test.csv")
    answers = _csv(demo_dir / "test_answers.csv")
    sample = _csv(demo_dir / "sample_submission.csv")
    assert list(answers.columns) == ["filename", "emotion"]
    assert answers["filename"].tolist() == test["filename"].tolist()
    assert set(answers["emotion"]) <= EMOTIONS
    assert sample["filename"].tolist() == test["filename"].tolist()
    assert set(sample["emotion"]) <= EMOTIONS


def test_folder_loads_as_a_competition(demo_dir):
    comp = load_competition(demo_dir)
    assert comp.classes == tuple(sorted(EMOTIONS))
    assert len(comp.train) == N_TRAIN
    assert len(comp.test) == N_TEST
    assert all(Path(p).is_file() for p in [*comp.train["path"], *comp.test["path"]])
    assert comp.submission_columns == ("filename", "emotion")


# --------------------------------------------------------------------------- audio
def test_audio_mixes_formats_rates_channels_and_durations(demo_dir):
    infos = {p: sf.info(p) for p in _audio_files(demo_dir)}
    suffixes = Counter(p.suffix for p in infos)
    assert set(suffixes) == {".mp3", ".wav"}
    assert suffixes[".mp3"] > suffixes[".wav"]
    for path, info in infos.items():
        assert info.format == SOUNDFILE_FORMAT[path.suffix], path
        assert info.samplerate in SAMPLE_RATES, path
        assert 0.5 <= info.duration <= 20.0, path
    rates = {info.samplerate for info in infos.values()}
    assert len(rates) >= 3
    channels = Counter(info.channels for info in infos.values())
    assert set(channels) == {1, 2}
    assert channels[1] > channels[2]
    assert max(info.duration for info in infos.values()) > 8.0  # a few long clips


def test_audio_is_audible_and_not_clipped(demo_dir):
    for path in _audio_files(demo_dir)[:20]:
        y, _ = sf.read(path, dtype="float32")
        assert np.isfinite(y).all(), path
        assert 0.005 < np.max(np.abs(y)) <= 1.0, path
        assert np.std(y) > 1e-3, path


@pytest.mark.parametrize(
    "formats", [["flac", "ogg"], {"mp3": 0.5, "wav": 0.2, "flac": 0.15, "ogg": 0.15}]
)
def test_requested_formats_are_written_and_readable(tmp_path, formats):
    root = make_demo_dataset(tmp_path, n_jobs=1, n_train=35, n_test=7, seed=1, formats=formats)
    files = _audio_files(root)
    assert {p.suffix for p in files} == {f".{name}" for name in formats}
    for path in files:
        info = sf.info(path)
        assert info.format == SOUNDFILE_FORMAT[path.suffix], path
        y, sr = sf.read(path)
        assert len(y) == round(info.duration * sr)
    names = _csv(root / "train.csv")["filename"]
    assert {Path(n).suffix for n in names} <= {f".{name}" for name in formats}


def test_unknown_format_or_too_few_clips_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="aac"):
        make_demo_dataset(tmp_path, n_jobs=1, n_train=35, n_test=5, formats={"aac": 1.0})
    with pytest.raises(ConfigError, match="n"):
        make_demo_dataset(tmp_path, n_train=20, n_test=5)
    with pytest.raises(ConfigError, match="n_test"):
        make_demo_dataset(tmp_path, n_jobs=1, n_train=35, n_test=0)
    assert not any(tmp_path.iterdir())


def test_synthesize_voice_shapes():
    mono = synthesize_voice(
        emotion="anger", duration=1.5, sample_rate=22050, rng=np.random.default_rng(0)
    )
    stereo = synthesize_voice(
        emotion="sadness", duration=0.5, sample_rate=48000, channels=2, rng=np.random.default_rng(0)
    )
    assert mono.shape == (33075,)
    assert mono.dtype == np.float32
    assert stereo.shape == (24000, 2)
    assert not np.array_equal(stereo[:, 0], stereo[:, 1])
    with pytest.raises(ConfigError, match="emotion"):
        synthesize_voice(
            emotion="boredom", duration=1.0, sample_rate=16000, rng=np.random.default_rng(0)
        )


# --------------------------------------------------------------------------- determinism
def test_same_seed_gives_the_same_folder(demo_dir, demo_dir_again):
    for name in ("train.csv", "test.csv", "sample_submission.csv", "test_answers.csv"):
        assert (demo_dir / name).read_bytes() == (demo_dir_again / name).read_bytes(), name
    files = _audio_files(demo_dir)
    assert [p.relative_to(demo_dir) for p in files] == [
        p.relative_to(demo_dir_again) for p in _audio_files(demo_dir_again)
    ]
    for path in files:
        twin = demo_dir_again / path.relative_to(demo_dir)
        if path.suffix in (".wav", ".mp3"):
            assert path.read_bytes() == twin.read_bytes(), path
        a, sr_a = sf.read(path)
        b, sr_b = sf.read(twin)
        assert sr_a == sr_b
        np.testing.assert_array_equal(a, b)


def test_different_seed_gives_different_clips():
    a = demo_plan(n_train=N_TRAIN, n_test=N_TEST, seed=SEED)
    b = demo_plan(n_train=N_TRAIN, n_test=N_TEST, seed=SEED + 1)
    assert not a["filename"].equals(b["filename"])
    assert not a["emotion"].equals(b["emotion"])
    y1 = synthesize_voice(
        emotion="joy", duration=1.0, sample_rate=16000, rng=np.random.default_rng(1)
    )
    y2 = synthesize_voice(
        emotion="joy", duration=1.0, sample_rate=16000, rng=np.random.default_rng(2)
    )
    assert not np.allclose(y1, y2)


# --------------------------------------------------------------------------- resume
def test_second_call_with_same_parameters_writes_nothing(demo_dir):
    before = _mtimes(demo_dir)
    assert _make(demo_dir) == demo_dir
    assert _mtimes(demo_dir) == before


def test_missing_clip_is_regenerated_and_the_rest_reused(tmp_path):
    root = make_demo_dataset(tmp_path, n_jobs=1, n_train=35, n_test=3, seed=5, formats=["wav"])
    victim = _audio_files(root)[0]
    original = victim.read_bytes()
    victim.unlink()
    before = _mtimes(root)
    make_demo_dataset(root, n_jobs=1, n_train=35, n_test=3, seed=5, formats=["wav"])
    after = _mtimes(root)
    assert victim.read_bytes() == original
    untouched = [p for p in before if p.parent.name in ("train", "test")]
    assert untouched
    assert all(after[p] == before[p] for p in untouched)


def test_changed_parameters_replace_the_folder(tmp_path):
    root = make_demo_dataset(tmp_path, n_jobs=1, n_train=35, n_test=3, seed=5, formats=["wav"])
    old = set(_audio_files(root))
    make_demo_dataset(root, n_jobs=1, n_train=36, n_test=4, seed=6, formats=["wav"])
    new = set(_audio_files(root))
    listed = set(_csv(root / "train.csv")["filename"]) | set(_csv(root / "test.csv")["filename"])
    assert {p.name for p in new} == listed
    assert len(new) == 40
    assert all(not p.exists() for p in old if p.name not in listed)
    assert (root / MARKER_NAME).is_file()


def test_overwrite_regenerates_every_file(tmp_path):
    root = make_demo_dataset(tmp_path, n_jobs=1, n_train=35, n_test=3, seed=5, formats=["wav"])
    before = _mtimes(root)
    make_demo_dataset(root, n_jobs=1, n_train=35, n_test=3, seed=5, formats=["wav"], overwrite=True)
    after = _mtimes(root)
    assert set(after) == set(before)
    assert all(after[p] != before[p] for p in before)


def test_a_real_competition_folder_is_never_overwritten(tmp_path):
    (tmp_path / "train.csv").write_text("filename,emotion\n1.mp3,joy\n")
    for overwrite in (False, True):
        with pytest.raises(DataError, match=r"train\.csv"):
            make_demo_dataset(tmp_path, n_jobs=1, n_train=35, n_test=3, overwrite=overwrite)
    assert (tmp_path / "train.csv").read_text() == "filename,emotion\n1.mp3,joy\n"


# --------------------------------------------------------------------------- learnability
def test_emotions_are_learnable_but_not_trivially():
    """MFCC mean/std + logistic regression beats the majority class, but is far from perfect."""
    plan = demo_plan(n_train=210, n_test=1, seed=0).iloc[:210]
    features, labels = [], []
    for row in plan.itertuples():
        y = synthesize_voice(
            emotion=row.emotion,
            duration=min(row.duration, 3.0),
            sample_rate=16000,
            rng=np.random.default_rng(row.clip_seed),
        )
        mfcc = librosa.feature.mfcc(y=y, sr=16000, n_mfcc=20)
        features.append(np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]))
        labels.append(row.emotion)
    labels = np.array(labels)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    predicted = cross_val_predict(model, np.array(features), labels, cv=cv)
    accuracy = np.mean(predicted == labels)
    majority = np.mean(labels == "neutral")
    recall = [np.mean(predicted[labels == c] == c) for c in DEMO_CLASSES]
    assert accuracy > majority + 0.08
    assert np.mean(recall) > 2.0 / len(DEMO_CLASSES)  # balanced accuracy: twice chance
    assert accuracy < 0.95
