"""Multi-label folds: every label balanced per fold, groups whole, seeded, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emo_utils.data.folds import check_multilabel_fold_counts, make_multilabel_folds
from emo_utils.errors import ConfigError, TrainingError

CLASSES = ["Speech", "Music", "Singing", "Crowd", "Applause", "Siren"]


def make_targets(n: int = 300, seed: int = 0) -> np.ndarray:
    """A multi-label set: two common labels, two labels correlated with them, a rare one.

    ``Singing`` only occurs with ``Music``, ``Applause`` mostly with ``Crowd``, and
    ``Siren`` is on exactly 15 clips; some clips have no label at all.
    """
    rng = np.random.default_rng(seed)
    y = np.zeros((n, len(CLASSES)), dtype=np.int64)
    y[:, 0] = rng.random(n) < 0.5
    y[:, 1] = rng.random(n) < 0.35
    y[:, 2] = y[:, 1] & (rng.random(n) < 0.6)
    y[:, 3] = rng.random(n) < 0.2
    y[:, 4] = (y[:, 3] & (rng.random(n) < 0.5)) | (rng.random(n) < 0.03)
    y[rng.choice(n, 15, replace=False), 5] = 1
    return y


Y = make_targets()


def per_fold(y: np.ndarray, folds: np.ndarray, n_folds: int) -> np.ndarray:
    """Positive count of every label (columns) in every fold (rows)."""
    return np.stack([y[folds == k].sum(axis=0) for k in range(n_folds)])


def test_the_generated_set_is_what_the_tests_claim():
    counts = Y.sum(axis=0)
    assert counts[5] == 15
    assert (Y[:, 2] <= Y[:, 1]).all()  # Singing implies Music
    assert np.corrcoef(Y[:, 3], Y[:, 4])[0, 1] > 0.5
    assert (Y.sum(axis=1) == 0).any()


@pytest.mark.parametrize("n_folds", [3, 5])
@pytest.mark.parametrize("seed", range(10))
def test_every_label_within_one_clip_of_its_ideal_share(seed, n_folds):
    folds = make_multilabel_folds(Y, n_folds=n_folds, seed=seed)
    assert folds.shape == (len(Y),)
    assert folds.dtype == np.int64
    assert set(folds.tolist()) == set(range(n_folds))
    ideal = Y.sum(axis=0) / n_folds
    deviation = np.abs(per_fold(Y, folds, n_folds) - ideal)
    assert deviation.max() <= 1.0, f"worst label {CLASSES[deviation.max(axis=0).argmax()]}"
    # Fold sizes are balanced too (all-negative clips fill the smallest folds).
    sizes = np.bincount(folds, minlength=n_folds)
    assert sizes.max() - sizes.min() <= 2


def test_same_seed_same_folds_other_seed_other_folds():
    a = make_multilabel_folds(Y, n_folds=5, seed=7)
    assert np.array_equal(a, make_multilabel_folds(Y, n_folds=5, seed=7))
    assert not np.array_equal(a, make_multilabel_folds(Y, n_folds=5, seed=8))


def test_booleans_and_a_single_label_column_work():
    folds = make_multilabel_folds(Y.astype(bool), n_folds=4, seed=1)
    assert np.array_equal(folds, make_multilabel_folds(Y, n_folds=4, seed=1))
    single = make_multilabel_folds(Y[:, [5]], n_folds=5, seed=0)
    assert per_fold(Y[:, [5]], single, 5).ravel().tolist() == [3, 3, 3, 3, 3]


def _recordings(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clips cut from recordings of 1-4 clips each; a recording's clips share its labels,
    except that a clip may lack one of them (the sound is not in every cut)."""
    rng = np.random.default_rng(seed)
    per_recording = make_targets(n=120, seed=seed + 1)
    sizes = rng.integers(1, 5, len(per_recording))
    groups = np.repeat(np.arange(len(per_recording)), sizes)
    y = per_recording[groups].copy()
    y[rng.random(y.shape) < 0.1] = 0
    order = rng.permutation(len(y))  # clips of a recording are not adjacent in train.csv
    return y[order], np.array([f"rec{g:03d}" for g in groups[order]], dtype=object)


@pytest.mark.parametrize("seed", range(3))
def test_groups_stay_whole_and_are_stratified_by_their_labels(seed):
    y, groups = _recordings()
    folds = make_multilabel_folds(y, n_folds=4, seed=seed, groups=groups)
    assert (pd.Series(folds).groupby(groups).nunique() == 1).all()
    # Stratified at group level: a group holds a label when any of its clips does.
    presence = pd.DataFrame(y).groupby(groups).max().to_numpy()
    group_fold = pd.Series(folds).groupby(groups).first().to_numpy()
    deviation = np.abs(per_fold(presence, group_fold, 4) - presence.sum(axis=0) / 4)
    assert deviation.max() <= 1.0
    assert (per_fold(y, folds, 4) >= 1).all()
    again = make_multilabel_folds(y, n_folds=4, seed=seed, groups=list(groups))
    assert np.array_equal(folds, again)


def test_too_few_positives_names_the_labels_and_a_fold_count_that_works():
    with pytest.raises(TrainingError, match=r"train\.n_folds = 20.*'Siren': 15") as info:
        check_multilabel_fold_counts(Y, n_folds=20, classes=CLASSES)
    message = str(info.value)
    assert "fewer positive clips than folds" in message
    assert "Lower train.n_folds to 15" in message
    assert "Speech" not in message
    # make_multilabel_folds checks before splitting; without names, columns are indices.
    with pytest.raises(TrainingError, match=r"label column\(s\) \{5: 15\}"):
        make_multilabel_folds(Y, n_folds=16, seed=0)
    check_multilabel_fold_counts(Y, n_folds=15, classes=CLASSES)


def test_a_label_on_a_single_clip_or_none_says_drop_or_merge():
    y = Y.copy()
    y[:, 5] = 0
    y[0, 5] = 1
    y = np.hstack([y, np.zeros((len(y), 1), dtype=y.dtype)])
    with pytest.raises(TrainingError, match="not even 2 folds") as info:
        check_multilabel_fold_counts(y, n_folds=3, classes=[*CLASSES, "Bell"])
    message = str(info.value)
    assert "{'Siren': 1, 'Bell': 0}" in message
    assert "drop those labels" in message
    assert "merge them" in message
    assert "Lower train.n_folds" not in message


def test_groups_count_distinct_groups_per_label():
    y = np.zeros((12, 2), dtype=int)
    y[:6, 0] = 1
    y[6:, 1] = 1
    groups = [0] * 6 + [1, 1, 2, 2, 3, 3]  # label 0 is one recording cut six times
    with pytest.raises(TrainingError, match="distinct groups") as info:
        check_multilabel_fold_counts(y, n_folds=2, groups=groups, classes=["a", "b"])
    assert "{'a': 1}" in str(info.value)
    assert "not even 2 folds" in str(info.value)
    check_multilabel_fold_counts(y, n_folds=2)  # six clips each: fine without groups
    with pytest.raises(TrainingError, match=r"Lower train\.n_folds to 3"):
        check_multilabel_fold_counts(y, n_folds=4, groups=[*range(6), 6, 6, 7, 7, 8, 8])


@pytest.mark.parametrize("n_folds", [1, 0, 2.0, True, "5", None])
def test_n_folds_must_be_an_integer_of_at_least_two(n_folds):
    with pytest.raises(ConfigError, match=r"train\.n_folds"):
        check_multilabel_fold_counts(Y, n_folds=n_folds)
    with pytest.raises(ConfigError, match=r"train\.n_folds"):
        make_multilabel_folds(Y, n_folds=n_folds, seed=0)


@pytest.mark.parametrize(
    ("y", "match"),
    [
        (np.zeros((0, 3)), "non-empty 2-d"),
        (np.ones(10), "non-empty 2-d"),
        (np.full((10, 2), 2), "only 0 and 1"),
        (np.array([["a", "b"]] * 4), "only 0 and 1"),
    ],
)
def test_targets_must_be_a_2d_zero_one_array(y, match):
    with pytest.raises(TrainingError, match=match):
        make_multilabel_folds(y, n_folds=2, seed=0)


def test_groups_and_classes_must_match_the_targets():
    with pytest.raises(TrainingError, match="5 groups for 300 clips"):
        make_multilabel_folds(Y, n_folds=3, seed=0, groups=range(5))
    with pytest.raises(TrainingError, match="clip 3 has no group"):
        make_multilabel_folds(Y, n_folds=3, seed=0, groups=[0, 1, 2, None, *range(4, 300)])
    with pytest.raises(TrainingError, match="2 class names for 6 label columns"):
        check_multilabel_fold_counts(Y, n_folds=3, classes=["a", "b"])
