"""Identity-disjoint folds, the verification competition reader and the synthetic demo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from emo_utils.config import Config
from emo_utils.data.folds import load_or_create_folds, read_folds
from emo_utils.data.verification import load_verification, make_identity_folds
from emo_utils.datasets.verification import (
    make_verification_demo,
    synthesize_identity_clip,
    verification_demo_plan,
)
from emo_utils.errors import ConfigError, DataError, TrainingError
from emo_utils.tasks import get_task

CONFIG = Config().override(
    {"data.task": "verification", "data.label_column": "speaker", "train.n_folds": 3}
)


def test_identity_folds_are_disjoint_balanced_and_seeded():
    rng = np.random.default_rng(0)
    ids = np.repeat([f"id{i}" for i in range(30)], rng.integers(2, 7, size=30))
    folds = make_identity_folds(ids, n_folds=5, seed=1)
    per_identity = pd.DataFrame({"id": ids, "fold": folds}).groupby("id")["fold"].nunique()
    assert (per_identity == 1).all()  # every identity in exactly one fold
    sizes = np.bincount(folds, minlength=5)
    assert sizes.max() - sizes.min() <= 6  # balanced in clips (at most one identity apart)
    assert np.array_equal(folds, make_identity_folds(ids, n_folds=5, seed=1))
    assert not np.array_equal(folds, make_identity_folds(ids, n_folds=5, seed=2))


def test_too_few_identities_for_the_folds_is_a_training_error():
    with pytest.raises(TrainingError, match=r"only 2 identities have two or more clips"):
        make_identity_folds(["a", "a", "b", "b", "c"], n_folds=3, seed=0)
    with pytest.raises(ConfigError, match=r"train\.n_folds"):
        make_identity_folds(["a", "a", "b", "b"], n_folds=1, seed=0)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("vdemo") / "data"
    make_verification_demo(
        root,
        n_train_identities=6,
        n_test_identities=3,
        clips_per_identity=3,
        test_clips_per_identity=2,
        seed=3,
        n_jobs=1,
    )
    return root


def test_demo_keeps_train_and_test_identities_apart_and_the_truth_separate(demo):
    train = pd.read_csv(demo / "train.csv")
    trials = pd.read_csv(demo / "test.csv")
    answers = pd.read_csv(demo / "test_answers.csv")
    assert list(train.columns) == ["filename", "speaker", "session"]
    assert list(trials.columns) == ["id", "file_a", "file_b"]  # no truth in the test CSV
    assert answers["id"].tolist() == trials["id"].tolist()
    clips, _, _ = verification_demo_plan(
        n_train_identities=6,
        n_test_identities=3,
        clips_per_identity=3,
        test_clips_per_identity=2,
        seed=3,
    )
    owner = dict(zip(clips["filename"], clips["speaker"], strict=True))
    test_files = set(trials["file_a"]) | set(trials["file_b"])
    assert not {owner[f] for f in test_files} & set(train["speaker"])
    same = [owner[a] == owner[b] for a, b in zip(trials["file_a"], trials["file_b"], strict=True)]
    assert answers["same"].tolist() == [int(s) for s in same]
    assert sum(same) == 3  # one pair per test identity of two clips
    assert answers["same"].sum() == (answers["same"] == 0).sum()
    assert (demo / "train").is_dir()
    assert all((demo / "test" / f).is_file() for f in test_files)
    assert len(train) == 18


def test_demo_plan_does_not_depend_on_the_hash_seed():
    code = (
        "from emo_utils.datasets.verification import verification_demo_plan as p;"
        "c, t, _ = p(n_train_identities=4, n_test_identities=2, seed=5);"
        "print(c.to_csv(), t.to_csv())"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_demo_is_deterministic_and_reused(demo, tmp_path):
    again = make_verification_demo(
        tmp_path / "again",
        n_train_identities=6,
        n_test_identities=3,
        clips_per_identity=3,
        test_clips_per_identity=2,
        seed=3,
        n_jobs=1,
    )
    for name in sorted(p.name for p in (demo / "train").iterdir())[:3]:
        assert (again / "train" / name).read_bytes() == (demo / "train" / name).read_bytes()
    stamp = (demo / "train.csv").stat().st_mtime_ns
    make_verification_demo(
        demo,
        n_train_identities=6,
        n_test_identities=3,
        clips_per_identity=3,
        test_clips_per_identity=2,
        seed=3,
        n_jobs=1,
    )
    assert (demo / "train.csv").stat().st_mtime_ns == stamp


def test_reader_gives_identities_trials_and_metadata(demo):
    data = load_verification(demo, CONFIG)
    comp = data.competition
    assert len(comp.classes) == 6
    assert comp.submission_columns == ("id", "score")
    assert data.metadata.columns.tolist() == ["session"]
    trials = pd.read_csv(demo / "test.csv")
    assert data.trials["id"].tolist() == trials["id"].tolist()
    test = comp.test["filename"].tolist()
    assert [test[i] for (i,) in data.trials["rows_a"]] == trials["file_a"].tolist()
    assert [test[i] for (i,) in data.trials["rows_b"]] == trials["file_b"].tolist()
    assert len(test) == len(set(test)) == 6


def test_a_trial_side_may_enroll_several_files_with_the_separator(demo, tmp_path):
    """CryCeleb-style: an identity enrolled from several recordings, scored as one side."""
    data_dir = tmp_path / "data"
    shutil.copytree(demo, data_dir)
    files = pd.read_csv(demo / "test.csv")["file_a"].unique().tolist()
    (data_dir / "test.csv").write_text(
        "id,file_a,file_b\n"
        f"t0,{files[0]} ; {files[1]},{files[2]}\n"
        f"t1,{files[1]},{files[2]};{files[2]}\n"
    )
    config = CONFIG.override({"verification.file_separator": ";"})
    data = load_verification(data_dir, config)
    test = data.competition.test["filename"].tolist()
    assert test == files[:3]  # every file once, in order of first use
    assert data.trials["rows_a"].tolist() == [(0, 1), (1,)]
    assert data.trials["rows_b"].tolist() == [(2,), (2,)]  # a file listed twice counts once
    assert data.trials["file_a"].tolist()[0] == f"{files[0]} ; {files[1]}"  # as written
    # Without the separator a side is one file name, whatever it holds (a missing file:
    # its trials get the neutral score and the failures file names it).
    plain = load_verification(data_dir, CONFIG).competition.test["filename"].tolist()
    assert plain[0] == f"{files[0]} ; {files[1]}"


def test_reader_names_a_missing_trial_column_and_repeated_ids(demo, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.csv").write_text((demo / "train.csv").read_text())
    (bad / "test.csv").write_text("id,left,file_b\nx,a.wav,b.wav\n")
    with pytest.raises(DataError, match=r"verification\.file_a_column"):
        load_verification(bad, CONFIG)
    (bad / "test.csv").write_text("id,file_a,file_b\nx,a.wav,b.wav\nx,c.wav,d.wav\n")
    with pytest.raises(DataError, match=r"listed more than once: \['x'\]"):
        load_verification(bad, CONFIG)


def test_folds_of_the_task_are_saved_as_data_and_reused(demo, tmp_path):
    data = load_verification(demo, CONFIG)
    task = get_task("verification")
    path = tmp_path / "folds.csv"
    folds = load_or_create_folds(data.competition, path=path, config=CONFIG, splitter=task.split)
    saved = read_folds(path)
    assert saved["fold"].tolist() == folds["fold"].tolist()
    assert (saved.groupby("label")["fold"].nunique() == 1).all()
    again = load_or_create_folds(data.competition, path=path, config=CONFIG, splitter=task.split)
    assert again["fold"].tolist() == folds["fold"].tolist()


def test_demo_speakers_have_their_own_vowel_space_that_moves_their_spectrum():
    _, _, timbres = verification_demo_plan(n_train_identities=8, n_test_identities=2, seed=3)
    offsets = np.array([t["formant_offsets"] for t in timbres])
    assert offsets.shape == (10, 4)
    assert len({tuple(row) for row in offsets}) == 10  # every speaker its own formant factors
    assert (offsets > 0.6).all()
    assert (offsets < 1.6).all()
    # The same clip (content, noise, recording) with every formant raised 25 %: more energy
    # above 1.5 kHz, so the factors are heard, not only stored.
    base = {**timbres[0], "formant_offsets": [1.0] * 4, "bandwidth_scale": 1.0}
    high = {**base, "formant_offsets": [1.25] * 4}

    def high_share(timbre):
        y = synthesize_identity_clip(timbre=timbre, duration=1.5, rng=np.random.default_rng(0))
        power = np.abs(np.fft.rfft(y)) ** 2
        freqs = np.fft.rfftfreq(len(y), 1 / 16000)
        return power[freqs > 1500].sum() / power.sum()

    assert high_share(high) > high_share(base)
