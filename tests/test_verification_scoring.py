"""Pair scoring: cosine scores, enrollment by mean embedding, S-norm, OOF trial sampling."""

from __future__ import annotations

import numpy as np
import pytest

from emo_utils.verification.scoring import cosine_scores, enroll, s_norm, sample_trials


def test_enrollment_is_the_normalised_mean_of_normalised_clip_embeddings():
    clips = np.array([[3.0, 0.0], [0.0, 0.5], [0.0, -2.0], [0.0, 4.0]])
    owners = ["b", "b", "a", "a"]
    # "a": (0,-1) + (0,1) -> zero vector stays zero; "b": (1,0) + (0,1) -> (1,1)/sqrt2,
    # whatever the clips' norms (3 and 0.5).
    got = enroll(clips, owners)
    assert got.round(6).tolist() == [[0.0, 0.0], [0.707107, 0.707107]]


def test_enrolled_identity_scores_higher_than_its_worst_clip():
    rng = np.random.default_rng(0)
    centre = rng.normal(size=16)
    clips = centre + rng.normal(scale=1.5, size=(5, 16))
    probe = centre + rng.normal(scale=1.5, size=16)
    e = np.vstack([clips, probe])
    per_clip = cosine_scores(e, np.arange(5), np.full(5, 5))
    model = enroll(clips, ["x"] * 5)
    enrolled = cosine_scores(np.vstack([model, probe]), [0], [1])[0]
    assert enrolled > per_clip.min()
    assert enrolled == pytest.approx(float(model[0] @ probe / np.linalg.norm(probe)), abs=1e-12)


def test_cosine_scores_ignore_norms():
    e = np.array([[1.0, 1.0], [5.0, 5.0], [-2.0, 2.0]])
    assert cosine_scores(e, [0, 0], [1, 2]).round(12).tolist() == [1.0, 0.0]


def test_s_norm_equals_the_definition_and_adaptive_uses_the_top_cohort_scores():
    rng = np.random.default_rng(1)
    left, right, cohort = rng.normal(size=(4, 8)), rng.normal(size=(4, 8)), rng.normal(size=(30, 8))
    e = np.vstack([left, right])
    raw = cosine_scores(e, np.arange(4), np.arange(4, 8))

    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    ca, cb = unit(left) @ unit(cohort).T, unit(right) @ unit(cohort).T
    expected = 0.5 * ((raw - ca.mean(1)) / ca.std(1) + (raw - cb.mean(1)) / cb.std(1))
    assert s_norm(raw, left, right, cohort) == pytest.approx(expected)
    top_a, top_b = np.sort(ca, 1)[:, -5:], np.sort(cb, 1)[:, -5:]
    expected_top = 0.5 * (
        (raw - top_a.mean(1)) / top_a.std(1) + (raw - top_b.mean(1)) / top_b.std(1)
    )
    assert s_norm(raw, left, right, cohort, top_k=5) == pytest.approx(expected_top)


def test_oof_trials_hold_every_same_pair_and_a_seeded_sample_of_different_pairs():
    ids = ["a"] * 3 + ["b"] * 2 + ["c"] * 4 + ["d"] * 1
    a, b, label = sample_trials(ids, ratio=2.0, seed=0)
    ids = np.asarray(ids)
    same = {(int(i), int(j)) for i, j, y in zip(a, b, label, strict=True) if y == 1}
    expected_same = {(i, j) for i in range(10) for j in range(i + 1, 10) if ids[i] == ids[j]}
    assert same == expected_same  # 3 + 1 + 6 pairs
    assert (label == 0).sum() == 2 * len(expected_same)
    assert (ids[a] == ids[b]).tolist() == (label == 1).tolist()
    assert (a < b).all()
    assert len(set(zip(a.tolist(), b.tolist(), strict=True))) == len(a)  # no pair twice
    again = sample_trials(ids, ratio=2.0, seed=0)
    other = sample_trials(ids, ratio=2.0, seed=1)
    assert all((x == y).all() for x, y in zip(again, (a, b, label), strict=True))
    assert not (other[1] == b).all() or not (other[0] == a).all()


def test_trial_sampling_takes_every_different_pair_when_fewer_exist():
    a, b, label = sample_trials(["a", "a", "b"], ratio=10.0, seed=0)
    assert sorted(zip(a.tolist(), b.tolist(), label.tolist(), strict=True)) == [
        (0, 1, 1),
        (0, 2, 0),
        (1, 2, 0),
    ]
