"""Folds: stratified, seeded, grouped on request, written once and reused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from emo_utils.config import Config
from emo_utils.data.folds import load_or_create_folds, make_folds, read_folds
from emo_utils.errors import ConfigError, TrainingError

LABELS = ["a"] * 10 + ["b"] * 6 + ["c"] * 5


def test_every_clip_in_exactly_one_fold_and_classes_spread():
    folds = make_folds(LABELS, n_folds=5, seed=1)
    assert folds.shape == (len(LABELS),)
    assert set(folds.tolist()) == set(range(5))
    table = pd.crosstab(pd.Series(LABELS), folds)
    # Stratified: every fold validates every class at least once.
    assert (table.to_numpy() >= 1).all()
    # Balanced sizes.
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 1


def test_same_seed_same_folds_other_seed_other_folds():
    a = make_folds(LABELS, n_folds=5, seed=7)
    assert np.array_equal(a, make_folds(LABELS, n_folds=5, seed=7))
    assert not np.array_equal(a, make_folds(LABELS, n_folds=5, seed=8))


def test_class_with_fewer_clips_than_folds_is_a_clear_error():
    with pytest.raises(TrainingError, match=r"'c': 2.*fewer clips than folds.*n_folds") as info:
        make_folds(["a"] * 6 + ["b"] * 6 + ["c"] * 2, n_folds=3, seed=0)
    assert "Lower train.n_folds to 2" in str(info.value)


def test_groups_stay_together():
    labels = ["a"] * 12 + ["b"] * 12
    groups = [i // 2 for i in range(24)]  # pairs of near-duplicates
    folds = make_folds(labels, n_folds=3, seed=0, groups=groups)
    by_group = pd.Series(folds).groupby(pd.Series(groups)).nunique()
    assert (by_group == 1).all()
    assert set(folds.tolist()) == {0, 1, 2}


def test_groups_too_few_per_class_is_an_error():
    labels = ["a"] * 6 + ["b"] * 6
    groups = [0] * 6 + [1, 1, 1, 2, 2, 2]  # class a is one recording
    with pytest.raises(TrainingError, match="distinct groups"):
        make_folds(labels, n_folds=2, seed=0, groups=groups)


def test_folds_file_written_once_and_reused(tmp_path, training_data):
    competition, _ = training_data
    config = Config().override({"train.n_folds": 3, "train.seed": 3})
    first = load_or_create_folds(competition, path=tmp_path / "folds.csv", config=config)
    path = tmp_path / "folds.csv"
    assert list(pd.read_csv(path).columns) == ["filename", "label", "fold"]
    assert first["filename"].tolist() == competition.train["filename"].tolist()
    # A later call (another architecture, another seed) reads the file instead of redrawing.
    again = load_or_create_folds(
        competition, path=tmp_path / "folds.csv", config=config.override({"train.seed": 99})
    )
    assert again["fold"].tolist() == first["fold"].tolist()
    assert read_folds(path)["fold"].tolist() == first["fold"].tolist()


def test_folds_file_for_other_data_or_fold_count_is_refused(tmp_path, training_data):
    competition, _ = training_data
    config = Config().override({"train.n_folds": 3})
    load_or_create_folds(competition, path=tmp_path / "folds.csv", config=config)
    with pytest.raises(TrainingError, match=r"train\.n_folds = 4"):
        load_or_create_folds(
            competition, path=tmp_path / "folds.csv", config=config.override({"train.n_folds": 4})
        )
    fewer = dataclasses.replace(competition, train=competition.train.iloc[1:])
    with pytest.raises(TrainingError, match="does not match the training clips"):
        load_or_create_folds(fewer, path=tmp_path / "folds.csv", config=config)


def test_use_groups_reads_the_group_column(tmp_path, training_data):
    competition, _ = training_data
    train = competition.train.copy()
    train["group"] = [i // 2 for i in range(len(train))]
    grouped = dataclasses.replace(competition, train=train)
    config = Config().override({"train.n_folds": 2, "train.use_groups": True})
    df = load_or_create_folds(grouped, path=tmp_path / "folds.csv", config=config)
    assert "group" in df.columns
    assert (df.groupby("group")["fold"].nunique() == 1).all()
    with pytest.raises(ConfigError, match="use_groups"):
        load_or_create_folds(competition, path=tmp_path / "other" / "folds.csv", config=config)
