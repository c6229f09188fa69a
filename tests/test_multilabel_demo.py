"""The synthetic multi-label competition folder (emo_utils.datasets.multilabel)."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from emo_utils.audio import audio_info, load_audio
from emo_utils.datasets import (
    MULTILABEL_DEMO_CLASSES,
    make_demo_dataset,
    make_multilabel_demo,
    multilabel,
)
from emo_utils.datasets.multilabel import (
    MIN_TRAIN_PER_LABEL,
    MULTILABEL_MARKER_NAME,
    SOURCES,
    multilabel_demo_plan,
    synthesize_scene,
)
from emo_utils.datasets.synthetic import SAMPLE_RATES
from emo_utils.errors import ConfigError, DataError
from emo_utils.fileio import read_json

N_TRAIN, N_TEST, SEED = 40, 10, 4
CLASSES = {"Chirp", "Music", "Speech", "Water"}
HEADERS = {
    "train.csv": ["fname", "labels"],
    "test.csv": ["fname"],
    "sample_submission.csv": ["fname", "labels"],
    "test_answers.csv": ["fname", "labels"],
}
SOUNDFILE_FORMAT = {".mp3": "MP3", ".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
SMALL = {"n_train": 24, "n_test": 2, "seed": 5, "formats": ["wav", "flac"], "n_jobs": 1}


def _make(path: Path, **kwargs) -> Path:
    params = {"n_train": N_TRAIN, "n_test": N_TEST, "seed": SEED, "n_jobs": 1, **kwargs}
    return make_multilabel_demo(path, **params)


@pytest.fixture(scope="module")
def ml_dir(tmp_path_factory) -> Path:
    return _make(tmp_path_factory.mktemp("ml_a"))


@pytest.fixture(scope="module")
def ml_dir_again(tmp_path_factory) -> Path:
    """The same parameters again, written by two worker processes."""
    return _make(tmp_path_factory.mktemp("ml_b"), n_jobs=2)


@pytest.fixture(scope="module")
def clips(ml_dir) -> dict[str, dict]:
    """The marker's per-clip plan, by file name."""
    return {c["fname"]: c for c in read_json(ml_dir / MULTILABEL_MARKER_NAME)["clips"]}


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _split(labels: str) -> list[str]:
    return labels.split(",") if labels else []


def _audio_files(root: Path) -> list[Path]:
    return sorted(p for split in ("train", "test") for p in (root / split).glob("*"))


def _mtimes(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def _power(y: np.ndarray, sr: int, start: float, stop: float) -> float:
    mono = y.mean(axis=1) if y.ndim == 2 else y
    return float(np.mean(mono[round(start * sr) : round(stop * sr)].astype(float) ** 2))


# --------------------------------------------------------------------------- CSVs
@pytest.mark.parametrize("name", sorted(HEADERS))
def test_csv_headers(ml_dir, name):
    assert list(_csv(ml_dir / name).columns) == HEADERS[name]


def test_labels_are_sorted_known_and_quoted_when_several(ml_dir):
    train = _csv(ml_dir / "train.csv")
    answers = _csv(ml_dir / "test_answers.csv")
    for labels in [*train["labels"], *answers["labels"]]:
        names = _split(labels)
        assert names == sorted(set(names))
        assert set(names) <= CLASSES
    assert tuple(sorted(CLASSES)) == MULTILABEL_DEMO_CLASSES
    rows = list(csv.reader((ml_dir / "train.csv").read_text().splitlines()))[1:]
    assert all(len(row) == 2 for row in rows)  # "Music,Speech" is one quoted field
    text = (ml_dir / "train.csv").read_text()
    assert re.search(r'^[0-9a-f]{8}\.\w+,"\w+(,\w+)+"$', text, flags=re.M)
    assert re.search(r"^[0-9a-f]{8}\.\w+,$", text, flags=re.M)  # a clip with no source


def test_every_label_has_enough_clips_and_some_clips_have_none(ml_dir, clips):
    train = _csv(ml_dir / "train.csv")
    answers = _csv(ml_dir / "test_answers.csv")
    written = Counter(name for labels in train["labels"] for name in _split(labels))
    originals = [c for c in clips.values() if c["split"] == "train" and not c["duplicate_of"]]
    clean = Counter(name for c in originals for name in _split(c["labels"]))
    test = Counter(name for labels in answers["labels"] for name in _split(labels))
    assert set(written) == set(clean) == set(test) == CLASSES
    assert min(written.values()) >= MIN_TRAIN_PER_LABEL
    assert min(clean.values()) >= MIN_TRAIN_PER_LABEL
    assert min(test.values()) >= 2
    assert (train["labels"] == "").any()
    assert all(len(c["sources"]) <= 3 for c in clips.values())


def test_answers_and_sample_submission_cover_the_test_rows_in_order(ml_dir, clips):
    test = _csv(ml_dir / "test.csv")
    answers = _csv(ml_dir / "test_answers.csv")
    sample = _csv(ml_dir / "sample_submission.csv")
    assert len(test) == N_TEST
    assert answers["fname"].tolist() == test["fname"].tolist()
    assert sample["fname"].tolist() == test["fname"].tolist()
    assert set(sample["labels"]) == {"Speech"}
    # The answers are the clean labels: exactly the planted sources.
    for fname, labels in zip(answers["fname"], answers["labels"], strict=True):
        assert _split(labels) == sorted({s["label"] for s in clips[fname]["sources"]})


def test_file_names_are_hex_unique_and_listed(ml_dir):
    train = _csv(ml_dir / "train.csv")["fname"]
    test = _csv(ml_dir / "test.csv")["fname"]
    assert len(train) == N_TRAIN
    assert all(re.fullmatch(r"[0-9a-f]{8}\.(wav|flac|ogg|mp3)", n) for n in [*train, *test])
    assert train.is_unique
    assert test.is_unique
    assert not set(train) & set(test)
    assert train.tolist() == sorted(train)
    # Exactly the listed files, and no temporary files left behind.
    assert sorted(p.name for p in (ml_dir / "train").iterdir()) == sorted(train)
    assert sorted(p.name for p in (ml_dir / "test").iterdir()) == sorted(test)
    assert not (ml_dir / ".multilabel_demo_plan.json").exists()


# --------------------------------------------------------------------------- audio
def test_audio_matches_the_plan(ml_dir, clips):
    files = _audio_files(ml_dir)
    assert {p.suffix for p in files} == {".wav", ".flac", ".ogg", ".mp3"}
    for path in files:
        clip = clips[path.name]
        info = audio_info(path)
        assert info.format == SOUNDFILE_FORMAT[path.suffix], path
        assert info.sample_rate == clip["sample_rate"] in SAMPLE_RATES, path
        assert info.channels == clip["channels"], path
        assert info.frames == round(clip["duration"] * clip["sample_rate"]), path
        assert 0.5 <= info.duration <= 12.0, path
    plan = list(clips.values())
    assert {c["channels"] for c in plan} == {1, 2}
    assert len({c["sample_rate"] for c in plan}) >= 3
    assert 0.25 < np.mean([c["duration"] > 5 for c in plan]) < 0.55
    for path in files[:12]:
        y, _ = sf.read(path, dtype="float32")
        assert np.isfinite(y).all(), path
        assert 0.0 < np.max(np.abs(y)) <= 0.96, path


@pytest.mark.parametrize("label", sorted(SOURCES))
def test_a_source_in_the_last_second_is_audible_there(label):
    sr, duration = 22050, 8.0
    source = {"label": label, "onset": 7.3, "offset": 7.95, "snr_db": 3.0}
    y = synthesize_scene(sources=[source], duration=duration, sample_rate=sr, seed=11)
    background = _power(y, sr, 0.5, 6.5)
    assert _power(y, sr, 7.3, 7.95) > 2.5 * background
    assert _power(y, sr, 3.0, 4.0) < 1.5 * background


def test_an_edge_source_in_a_written_clip_is_audible(ml_dir, clips):
    """A clip of the folder whose source sounds only in the last second, read from disk."""
    checked = 0
    for clip in clips.values():
        d = clip["duration"]
        last = [s for s in clip["sources"] if s["onset"] >= d - 1.0]
        if not last or clip["duplicate_of"]:
            continue
        # A quiet stretch: no source (nor its reverb tail) within it.
        busy = sorted((s["onset"], s["offset"] + 0.7) for s in clip["sources"])
        gaps, t = [], 0.0
        for a, b in busy:
            gaps.append((t, a))
            t = max(t, b)
        quiet = [(a, b) for a, b in gaps if b - a >= 0.8]
        if not quiet:
            continue
        y, sr = sf.read(ml_dir / clip["split"] / clip["fname"], dtype="float32")
        a, b = quiet[0]
        background = _power(y, sr, a + 0.05, b - 0.05)
        for s in last:
            others = [o for o in clip["sources"] if o is not s and o["offset"] > s["onset"]]
            if not others:
                assert _power(y, sr, s["onset"], s["offset"]) > 2.0 * background, clip
                checked += 1
    assert checked >= 1


def test_synthesize_scene_shapes_and_checks():
    sources = [{"label": "Music", "onset": 0.1, "offset": 0.9, "snr_db": 10.0}]
    mono = synthesize_scene(sources=sources, duration=1.5, sample_rate=16000, seed=0)
    stereo = synthesize_scene(sources=sources, duration=0.5, sample_rate=48000, channels=2, seed=0)
    silent = synthesize_scene(sources=[], duration=1.0, sample_rate=22050, seed=0)
    assert mono.shape == (24000,)
    assert mono.dtype == np.float32
    assert stereo.shape == (24000, 2)
    assert not np.array_equal(stereo[:, 0], stereo[:, 1])
    assert silent.shape == (22050,)
    assert 0 < np.std(silent) < 0.05
    with pytest.raises(ConfigError, match="label"):
        synthesize_scene(
            sources=[{**sources[0], "label": "Dog"}], duration=1.0, sample_rate=16000, seed=0
        )
    with pytest.raises(ConfigError, match="onset"):
        synthesize_scene(
            sources=[{**sources[0], "onset": 0.9, "offset": 0.1}],
            duration=1.0,
            sample_rate=16000,
            seed=0,
        )


# --------------------------------------------------------------------------- label noise
def test_label_noise_follows_the_configured_rate_in_train_only():
    plan = multilabel_demo_plan(n_train=2000, n_test=200, seed=1, label_noise=0.2)
    train, test = plan[plan["split"] == "train"], plan[plan["split"] == "test"]
    changed = train["labels"] != train["csv_labels"]
    assert 0.17 < changed.mean() < 0.23
    assert (changed == (train["noise"] != "")).all()
    for clean, noisy, noise in zip(
        train.loc[changed, "labels"],
        train.loc[changed, "csv_labels"],
        train.loc[changed, "noise"],
        strict=True,
    ):
        diff = set(_split(clean)) ^ set(_split(noisy))
        assert len(diff) == 1
        kind, label = noise.split()
        assert diff == {label}
        assert (label in _split(noisy)) == (kind == "added")
    assert (test["labels"] == test["csv_labels"]).all()
    assert (test["noise"] == "").all()
    # Without noise the written labels are the planted sources.
    quiet = multilabel_demo_plan(n_train=300, n_test=20, seed=1, label_noise=0.0)
    assert (quiet["labels"] == quiet["csv_labels"]).all()
    rates = Counter(name for labels in quiet["labels"] for name in _split(labels))
    assert rates["Chirp"] < rates["Water"] < rates["Speech"]
    assert 0.05 < rates["Chirp"] / len(quiet) < 0.2


# --------------------------------------------------------------------------- duplicates
def test_duplicates_share_labels_and_audio_with_their_original(ml_dir, clips):
    train = _csv(ml_dir / "train.csv").set_index("fname")["labels"]
    copies = [c for c in clips.values() if c["duplicate_of"]]
    assert len(copies) == round(0.05 * N_TRAIN)
    for copy in copies:
        original = clips[copy["duplicate_of"]]
        assert copy["split"] == original["split"] == "train"
        assert not original["duplicate_of"]
        assert copy["fname"] != original["fname"]
        assert train[copy["fname"]] == train[original["fname"]]
        assert copy["labels"] == original["labels"]
        assert copy["format"] != original["format"] or copy["gain_db"] < 0
        a = load_audio(ml_dir / "train" / copy["fname"], sample_rate=16000)
        b = load_audio(ml_dir / "train" / original["fname"], sample_rate=16000)
        assert len(a) == len(b)
        assert np.corrcoef(a, b)[0, 1] > 0.9
        level = 20 * np.log10(np.std(a) / np.std(b))
        assert abs(level - copy["gain_db"]) < 1.0


def test_duplicate_share_on_a_larger_plan():
    plan = multilabel_demo_plan(n_train=400, n_test=20, seed=2, duplicates=0.1)
    copies = plan[plan["duplicate_of"] != ""]
    assert len(copies) == 40
    assert (copies["split"] == "train").all()
    by_name = plan.set_index("fname")
    originals = by_name.loc[copies["duplicate_of"]]
    assert originals["duplicate_of"].eq("").all()
    assert copies["csv_labels"].tolist() == originals["csv_labels"].tolist()
    assert copies["clip_seed"].tolist() == originals["clip_seed"].tolist()
    assert (copies["format"].to_numpy() != originals["format"].to_numpy()).mean() > 0.4


# --------------------------------------------------------------------------- determinism
def test_same_seed_gives_the_same_folder(ml_dir, ml_dir_again):
    for name in [*HEADERS, MULTILABEL_MARKER_NAME]:
        assert (ml_dir / name).read_bytes() == (ml_dir_again / name).read_bytes(), name
    files = _audio_files(ml_dir)
    assert [p.relative_to(ml_dir) for p in files] == [
        p.relative_to(ml_dir_again) for p in _audio_files(ml_dir_again)
    ]
    for path in files:
        twin = ml_dir_again / path.relative_to(ml_dir)
        if path.suffix in (".wav", ".flac", ".mp3"):
            assert path.read_bytes() == twin.read_bytes(), path
        else:
            np.testing.assert_array_equal(sf.read(path)[0], sf.read(twin)[0])


def test_different_seed_gives_a_different_plan():
    a = multilabel_demo_plan(n_train=N_TRAIN, n_test=N_TEST, seed=SEED)
    b = multilabel_demo_plan(n_train=N_TRAIN, n_test=N_TEST, seed=SEED + 1)
    assert not a["fname"].equals(b["fname"])
    assert not a["labels"].equals(b["labels"])


# --------------------------------------------------------------------------- resume
def test_second_call_with_same_parameters_writes_nothing(ml_dir):
    before = _mtimes(ml_dir)
    assert _make(ml_dir) == ml_dir
    assert _mtimes(ml_dir) == before


def test_missing_clip_is_regenerated_and_the_rest_reused(tmp_path, capsys):
    root = make_multilabel_demo(tmp_path, **SMALL)
    victim = _audio_files(root)[3]
    original = victim.read_bytes()
    victim.unlink()
    before = _mtimes(root)
    capsys.readouterr()
    make_multilabel_demo(root, progress=True, **SMALL)
    assert "1 written, 25 reused" in capsys.readouterr().out
    after = _mtimes(root)
    assert victim.read_bytes() == original
    untouched = [p for p in before if p.parent.name in ("train", "test")]
    assert len(untouched) == 25
    assert all(after[p] == before[p] for p in untouched)
    assert (root / MULTILABEL_MARKER_NAME).is_file()


def test_an_interrupted_run_is_completed(tmp_path, monkeypatch):
    written = []
    real_write = multilabel._write_clip

    def write_then_die(path, *args):
        if len(written) == 5:
            raise KeyboardInterrupt
        real_write(path, *args)
        written.append(Path(path))

    monkeypatch.setattr(multilabel, "_write_clip", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        make_multilabel_demo(tmp_path, **SMALL)
    assert not (tmp_path / MULTILABEL_MARKER_NAME).exists()
    assert not (tmp_path / "train.csv").exists()
    assert sorted(_audio_files(tmp_path)) == sorted(written)
    before = _mtimes(tmp_path)
    monkeypatch.undo()
    make_multilabel_demo(tmp_path, **SMALL)
    after = _mtimes(tmp_path)
    assert all(after[p] == before[p] for p in written)
    assert len(_audio_files(tmp_path)) == 26
    assert (tmp_path / MULTILABEL_MARKER_NAME).is_file()
    assert not (tmp_path / ".multilabel_demo_plan.json").exists()


def test_changed_parameters_replace_the_folder(tmp_path):
    root = make_multilabel_demo(tmp_path, **SMALL)
    old = set(_audio_files(root))
    make_multilabel_demo(root, **{**SMALL, "seed": 6, "n_test": 3})
    listed = set(_csv(root / "train.csv")["fname"]) | set(_csv(root / "test.csv")["fname"])
    new = set(_audio_files(root))
    assert {p.name for p in new} == listed
    assert len(new) == 27
    assert all(not p.exists() for p in old if p.name not in listed)
    assert read_json(root / MULTILABEL_MARKER_NAME)["params"]["seed"] == 6


def test_a_foreign_folder_is_never_overwritten(tmp_path):
    (tmp_path / "train.csv").write_text("fname,labels\na.wav,Music\n")
    for overwrite in (False, True):
        with pytest.raises(DataError, match=r"train\.csv"):
            make_multilabel_demo(tmp_path, overwrite=overwrite, **SMALL)
    assert (tmp_path / "train.csv").read_text() == "fname,labels\na.wav,Music\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.csv"]


def test_the_single_label_demo_folder_is_not_taken_over(tmp_path):
    make_demo_dataset(tmp_path, n_train=35, n_test=1, formats=["wav"], n_jobs=1)
    before = _mtimes(tmp_path)
    with pytest.raises(DataError, match="make_multilabel_demo"):
        make_multilabel_demo(tmp_path, **SMALL)
    assert _mtimes(tmp_path) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n_train", 10),
        ("n_train", 30.5),
        ("n_test", 1),
        ("seed", -1),
        ("label_noise", 1.5),
        ("label_noise", "lots"),
        ("duplicates", 0.5),
        ("formats", {"aac": 1.0}),
    ],
)
def test_bad_parameters_are_refused_before_writing(tmp_path, field, value):
    with pytest.raises(ConfigError, match=field if field != "formats" else "aac"):
        make_multilabel_demo(tmp_path, **{**SMALL, field: value})
    assert not any(tmp_path.iterdir())
