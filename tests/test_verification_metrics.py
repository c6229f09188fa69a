"""EER and minDCF against a brute-force threshold sweep; DET and histogram PNGs."""

from __future__ import annotations

import numpy as np
import pytest

from emo_utils.errors import ConfigError, DataError
from emo_utils.reports.verification import write_verification_plots
from emo_utils.verification import equal_error_rate, min_dcf


def _sweep(labels, scores):
    """(p_miss, p_fa) at "accept nothing" and at every distinct score, by direct counting."""
    labels, scores = np.asarray(labels, bool), np.asarray(scores, float)
    target, non = scores[labels], scores[~labels]
    points = [(1.0, 0.0)]
    for t in sorted(set(scores.tolist()), reverse=True):
        p_miss = sum(1 for s in target if s < t) / len(target)
        p_fa = sum(1 for s in non if s >= t) / len(non)
        points.append((p_miss, p_fa))
    return points


def _brute_eer(labels, scores):
    points = _sweep(labels, scores)
    for k, (p_miss, p_fa) in enumerate(points):
        if p_miss <= p_fa:
            if p_miss == p_fa:
                return p_fa
            m0, f0 = points[k - 1]
            t = (m0 - f0) / ((m0 - f0) - (p_miss - p_fa))
            return f0 + t * (p_fa - f0)
    raise AssertionError("the sweep never crossed the diagonal")


def _brute_min_dcf(labels, scores, p_target, c_miss, c_fa):
    costs = [c_miss * p_target * m + c_fa * (1 - p_target) * f for m, f in _sweep(labels, scores)]
    return min(costs) / min(c_miss * p_target, c_fa * (1 - p_target))


HAND_MADE = {
    # name: (labels, scores, expected EER worked out by hand)
    "perfect separation": ([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], 0.0),
    "perfect separation, one trial each": ([1, 0], [0.3, -0.3], 0.0),
    "all scores tied": ([1, 1, 0, 0, 0], [0.5] * 5, 0.5),
    "a tie across the classes": ([1, 1, 0, 0], [0.5, 0.7, 0.5, 0.2], 0.25),
    "point on the diagonal": ([1, 1, 1, 0, 0, 0], [0.9, 0.8, 0.3, 0.4, 0.2, 0.1], 1 / 3),
    "fully reversed": ([1, 0], [0.1, 0.9], 1.0),
}


@pytest.mark.parametrize("case", HAND_MADE, ids=list(HAND_MADE))
def test_eer_of_hand_made_trials_matches_hand_and_brute_force(case):
    labels, scores, expected = HAND_MADE[case]
    assert equal_error_rate(labels, scores) == pytest.approx(expected, abs=1e-12)
    assert equal_error_rate(labels, scores) == pytest.approx(_brute_eer(labels, scores), abs=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_eer_and_min_dcf_match_brute_force_on_random_trials_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    labels = rng.random(n) < 0.3
    labels[:2] = [True, False]
    # Two decimals: many tied scores, inside and across the classes.
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)
    assert equal_error_rate(labels, scores) == pytest.approx(_brute_eer(labels, scores), abs=1e-12)
    for p_target, c_miss, c_fa in [(0.01, 1, 1), (0.05, 1, 1), (0.5, 1, 1), (0.2, 10, 1)]:
        expected = _brute_min_dcf(labels, scores, p_target, c_miss, c_fa)
        got = min_dcf(labels, scores, p_target=p_target, c_miss=c_miss, c_fa=c_fa)
        assert got == pytest.approx(expected, abs=1e-12)


def test_min_dcf_of_perfect_and_of_uninformative_scores():
    assert min_dcf([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], p_target=0.05) == 0.0
    # Identical scores: no threshold beats the better trivial system.
    assert min_dcf([1, 0, 0, 1], [0.3] * 4, p_target=0.05) == pytest.approx(1.0)


def test_eer_is_invariant_to_monotone_rescaling_and_permutation():
    rng = np.random.default_rng(3)
    labels = rng.random(200) < 0.4
    scores = rng.normal(labels, 1.0)
    perm = rng.permutation(200)
    eer = equal_error_rate(labels, scores)
    assert 0.1 < eer < 0.5
    assert equal_error_rate(labels[perm], np.exp(3 * scores[perm])) == pytest.approx(eer)


@pytest.mark.parametrize(
    ("labels", "scores", "reason"),
    [
        ([1, 1], [0.1, 0.2], "need target and non-target"),
        ([1, 0], [0.1, np.nan], "non-finite"),
        ([1, 2], [0.1, 0.2], "0/1"),
        ([1, 0, 1], [0.1, 0.2], "must be 1-d and equal"),
    ],
)
def test_bad_trials_raise_a_data_error_naming_the_reason(labels, scores, reason):
    with pytest.raises(DataError, match=reason):
        equal_error_rate(labels, scores)


def test_min_dcf_rejects_a_prior_outside_zero_one():
    with pytest.raises(ConfigError, match=r"p_target"):
        min_dcf([1, 0], [0.9, 0.1], p_target=1.0)


def test_det_curve_and_histograms_are_written_as_png(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.random(300) < 0.3
    scores = {"model": rng.normal(labels * 2.0, 1.0), "baseline": rng.normal(labels * 0.5, 1.0)}
    paths = write_verification_plots(tmp_path / "report", labels, scores)
    assert sorted(p.name for p in paths.values()) == ["det_curve.png", "score_histograms.png"]
    for path in paths.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [
        "det_curve.png",
        "score_histograms.png",
    ]
