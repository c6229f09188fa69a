"""Multi-label metrics, OOF-tuned thresholds and multi-label ensembles (numpy/sklearn only)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, label_ranking_average_precision_score

from emo_utils.ensemble import (
    MULTILABEL_ENSEMBLES,
    EnsembleReport,
    KOfNVote,
    MultilabelStacking,
    default_k,
    k_of_n_vote,
    label_geometric_mean,
    label_mean,
    label_rank_mean,
    label_vote_shares,
    make_multilabel_ensemble,
    resolve_multilabel_method,
    score_multilabel_ensembles,
)
from emo_utils.errors import ConfigError, DataError, TrainingError
from emo_utils.metrics import (
    METRICS,
    MULTILABEL_METRICS,
    get_multilabel_metric,
    per_label_report,
)
from emo_utils.thresholds import cross_fit_thresholds, tune_thresholds

# Hand-checked case: 4 rows, 3 labels (row 3 has no positive label).
Y = np.array(
    [
        [1, 0, 1],
        [0, 1, 0],
        [1, 1, 0],
        [0, 0, 0],
    ]
)
S = np.array(
    [
        [0.9, 0.2, 0.6],
        [0.5, 0.8, 0.4],
        [0.4, 0.7, 0.45],
        [0.2, 0.1, 0.55],
    ]
)


# ---------------------------------------------------------------------------- metrics
def test_f1_at_half():
    # label 0: predicted [1,1,0,0] vs [1,0,1,0] -> tp 1, fp 1, fn 1 -> F1 1/2
    # label 1: predicted [0,1,1,0] = truth -> F1 1
    # label 2: predicted [1,0,0,1] vs [1,0,0,0] -> tp 1, fp 1 -> F1 2/3
    assert MULTILABEL_METRICS["f1_macro"](Y, S) == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    # micro: tp 4, fp 2, fn 1 -> 2*4 / (2*4 + 2 + 1)
    assert MULTILABEL_METRICS["f1_micro"](Y, S, thresholds=0.5) == pytest.approx(8 / 11)


def test_f1_per_label_and_per_row_thresholds():
    # label 0 at 0.45: [1,1,0,0] still (0.4 < 0.45); at 0.35: [1,1,1,0] -> tp 2, fp 1 -> 4/5
    t = np.array([0.35, 0.5, 0.58])  # label 2 at 0.58: [1,0,0,0] -> F1 1
    assert MULTILABEL_METRICS["f1_macro"](Y, S, thresholds=t) == pytest.approx((0.8 + 1 + 1) / 3)
    per_row = np.broadcast_to(t, S.shape)
    assert MULTILABEL_METRICS["f1_macro"](Y, S, thresholds=per_row) == pytest.approx(
        (0.8 + 1 + 1) / 3
    )
    with pytest.raises(DataError, match=r"thresholds.*\(2,\)"):
        MULTILABEL_METRICS["f1_micro"](Y, S, thresholds=np.array([0.5, 0.5]))


def test_a_single_label_is_scored_as_one_label_not_as_two_classes():
    # scikit-learn reads an (n, 1) matrix as a binary column vector with classes 0 and 1;
    # the F1 of one label must be that label's F1, not the mean (or accuracy) over 0 and 1.
    y, s = Y[:, :1], S[:, :1]  # tp 1, fp 1, fn 1 at 0.5 -> F1 0.5 (accuracy would be 0.5 too)
    y, s = np.vstack([y, [[0], [0]]]), np.vstack([s, [[0.1], [0.1]]])  # accuracy 4/6
    for name in ("f1_macro", "f1_micro"):
        assert MULTILABEL_METRICS[name](y, s) == pytest.approx(0.5)
    report = per_label_report(y, s, 0.5, ["a"])
    assert (report["a"]["f1"], report["a"]["support"], report["a"]["fp"]) == (0.5, 2, 1)
    assert MULTILABEL_METRICS["lwlrap"](y, s) == 1.0  # a lone label always ranks first


def test_map_is_the_mean_average_precision_of_labels_with_positives():
    # label 0 ranking .9(+) .5(-) .4(+) .2(-): AP = (1/1 + 2/3) / 2 = 5/6; labels 1, 2: AP 1
    assert MULTILABEL_METRICS["map"](Y, S) == pytest.approx((5 / 6 + 1 + 1) / 3)
    y = np.column_stack([Y, np.zeros(4, dtype=int)])  # a 4th label without positives: skipped
    s = np.column_stack([S, [0.9, 0.9, 0.9, 0.9]])
    assert MULTILABEL_METRICS["map"](y, s) == pytest.approx((5 / 6 + 1 + 1) / 3)
    with pytest.raises(DataError, match="no label has a positive"):
        MULTILABEL_METRICS["map"](np.zeros((3, 2), dtype=int), np.full((3, 2), 0.5))


def test_roc_auc_skips_labels_without_positives_or_negatives():
    # label 0: pairs (.9>.5, .9>.2, .4<.5, .4>.2) -> 3/4; labels 1 and 2 separate -> 1
    expected = (0.75 + 1 + 1) / 3
    assert MULTILABEL_METRICS["roc_auc"](Y, S) == pytest.approx(expected)
    y = np.column_stack([Y, np.zeros(4, dtype=int), np.ones(4, dtype=int)])
    s = np.column_stack([S, [0.1, 0.9, 0.3, 0.2], [0.1, 0.9, 0.3, 0.2]])
    out = MULTILABEL_METRICS["roc_auc"](y, s)
    assert out == pytest.approx(expected)  # the two one-class labels do not count, no NaN
    with pytest.raises(DataError, match="both positive and negative"):
        MULTILABEL_METRICS["roc_auc"](np.array([[1, 0], [1, 0]]), np.full((2, 2), 0.5))


def _reference_lwlrap(y: np.ndarray, s: np.ndarray) -> float:
    """Freesound's definition: precision at the rank of every positive (sample, label)."""
    precisions = []
    for truth, scores in zip(y, s, strict=True):
        positives = np.flatnonzero(truth)
        for j in positives:
            rank = np.sum(scores >= scores[j])  # labels ranked at or above label j
            hits = np.sum(scores[positives] >= scores[j])  # of which positives
            precisions.append(hits / rank)
    return float(np.mean(precisions))


def test_lwlrap_hand_value_and_reference():
    # rows 0, 1: every positive ranked above every negative -> 1, 1, 1
    # row 2: label 1 (.7) rank 1 -> 1; label 0 (.4) rank 3 behind .7 and .45, 2 hits -> 2/3
    # row 3: no positive -> left out.  lwlrap = (1 + 1 + 1 + 1 + 2/3) / 5
    assert MULTILABEL_METRICS["lwlrap"](Y, S) == pytest.approx(14 / 15)
    assert _reference_lwlrap(Y, S) == pytest.approx(14 / 15)
    # plain LRAP averages rows (and scores the empty row 1): a different number
    assert label_ranking_average_precision_score(Y, S) == pytest.approx(23 / 24)
    rng = np.random.default_rng(0)
    for _ in range(5):
        y = (rng.random((12, 6)) < 0.3).astype(int)
        s = rng.random((12, 6))  # continuous: no ties
        assert MULTILABEL_METRICS["lwlrap"](y, s) == pytest.approx(_reference_lwlrap(y, s))
    with pytest.raises(DataError, match="no sample has a positive"):
        MULTILABEL_METRICS["lwlrap"](np.zeros((2, 3), dtype=int), np.full((2, 3), 0.5))


@pytest.mark.parametrize("name", sorted(MULTILABEL_METRICS))
def test_every_multilabel_metric_is_a_float_in_0_1(name):
    rng = np.random.default_rng(1)
    y = (rng.random((30, 5)) < 0.4).astype(int)
    y[0], y[1] = 1, 0
    s = np.clip(y * 0.3 + rng.random((30, 5)) * 0.7, 0, 1)
    value = get_multilabel_metric(name)(y, s, thresholds=np.full(5, 0.5))
    assert isinstance(value, float)
    assert 0.0 <= value <= 1.0


def test_unknown_multilabel_metric_and_bad_inputs():
    with pytest.raises(ConfigError, match="lrap"):
        get_multilabel_metric("lrap")
    with pytest.raises(DataError, match="shape"):
        MULTILABEL_METRICS["map"](Y, S[:, :2])
    with pytest.raises(DataError, match=r"0 or 1.*2"):
        MULTILABEL_METRICS["map"](Y * 2, S)
    with pytest.raises(DataError, match=r"\[0, 1\].*1\.9"):
        MULTILABEL_METRICS["map"](Y, S + 1.0 * (S > 0.85))
    with pytest.raises(DataError, match="shape"):
        MULTILABEL_METRICS["map"](Y[:, 0], S[:, 0])


def test_single_label_metrics_are_untouched():
    assert tuple(sorted(METRICS)) == ("accuracy", "f1_macro", "f1_weighted")


def test_per_label_report():
    report = per_label_report(Y, S, np.array([0.5, 0.5, 0.58]), ["a", "b", "c"])
    assert list(report) == ["a", "b", "c"]
    assert report["a"] == {
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "ap": pytest.approx(5 / 6),
        "support": 2,
        "fp": 1,
        "fn": 1,
        "threshold": 0.5,
    }
    assert report["c"]["fp"] == 0  # 0.55 < 0.58
    assert report["c"]["threshold"] == 0.58
    assert report["b"]["f1"] == 1.0
    empty = per_label_report(np.zeros((2, 1), dtype=int), np.array([[0.7], [0.1]]), 0.5, ["z"])
    assert np.isnan(empty["z"]["ap"])
    assert empty["z"]["fp"] == 1
    with pytest.raises(DataError, match="2 names for 3 labels"):
        per_label_report(Y, S, 0.5, ["a", "b"])


# ---------------------------------------------------------------------------- thresholds
def _separable(rng, n, neg, pos, rate=0.5):
    y = (rng.random(n) < rate).astype(int)
    s = np.where(y == 1, rng.uniform(*pos, n), rng.uniform(*neg, n))
    return y, s


def test_tuned_thresholds_recover_a_separating_threshold_per_label():
    rng = np.random.default_rng(0)
    y0, s0 = _separable(rng, 60, (0.05, 0.3), (0.7, 0.95))  # gap holds 0.5
    y1, s1 = _separable(rng, 60, (0.0, 0.15), (0.25, 0.35))  # gap below 0.5
    y2, s2 = _separable(rng, 60, (0.6, 0.8), (0.9, 1.0))  # gap above 0.5
    y, s = np.column_stack([y0, y1, y2]), np.column_stack([s0, s1, s2])
    t = tune_thresholds(y, s)
    assert t.shape == (3,)
    assert t[0] == 0.5  # every threshold of the gap is perfect: the one closest to 0.5
    assert s1[y1 == 0].max() < t[1] <= s1[y1 == 1].min()
    assert t[1] == s1[y1 == 1].min()  # the upper end of the gap is the closest to 0.5
    assert s2[y2 == 0].max() < t[2] <= s2[y2 == 1].min()
    assert t[2] == pytest.approx(np.ceil(s2[y2 == 0].max() * 100) / 100)  # the first grid step
    assert f1_score(y, (s >= t).astype(int), average=None).tolist() == [1.0, 1.0, 1.0]


def test_tuned_threshold_is_the_best_f1_among_every_candidate():
    rng = np.random.default_rng(3)
    y = (rng.random((80, 4)) < 0.3).astype(int)
    s = np.clip(0.35 * y + rng.random((80, 4)) * 0.65, 0, 1)
    t = tune_thresholds(y, s, min_positives=1)

    def f1(truth, scores, c):  # F1 of (truth, scores >= c) for every candidate c at once
        pred = scores[..., None] >= c
        tp = np.sum(pred & (truth[..., None] == 1), axis=tuple(range(truth.ndim)))
        return 2 * tp / (pred.sum(axis=tuple(range(truth.ndim))) + truth.sum())

    for j in range(4):
        best = f1_score(y[:, j], s[:, j] >= t[j])
        candidates = np.concatenate([s[:, j], np.linspace(0.01, 0.99, 99)])
        assert best == pytest.approx(f1(y[:, j], s[:, j], candidates).max())
    g = tune_thresholds(y, s, mode="global")
    assert np.unique(g).size == 1
    best = f1_score(y, s >= g[0], average="micro")
    candidates = np.concatenate([s.ravel(), np.linspace(0.01, 0.99, 99)])
    assert best == pytest.approx(f1(y, s, candidates).max())


def test_rare_labels_fall_back_to_the_global_threshold():
    rng = np.random.default_rng(1)
    y0, s0 = _separable(rng, 50, (0.0, 0.3), (0.35, 0.6))
    rare_y = np.zeros(50, dtype=int)
    rare_y[[3, 7]] = 1
    rare_s = np.where(rare_y == 1, 0.97, rng.uniform(0.0, 0.9, 50))  # own optimum: ~0.9+
    y, s = np.column_stack([y0, rare_y]), np.column_stack([s0, rare_s])
    t = tune_thresholds(y, s, min_positives=5)
    own = tune_thresholds(y, s, min_positives=2)
    global_t = tune_thresholds(y, s, mode="global")
    assert t[1] == global_t[1] != own[1]
    assert rare_s[rare_y == 0].max() < own[1] <= 0.97
    assert t[0] == own[0]  # 25-ish positives: its own threshold
    # no positive at all: every threshold scores 0, the tie rule gives 0.5
    assert tune_thresholds(np.zeros((5, 1), dtype=int), np.full((5, 1), 0.7)).tolist() == [0.5]


def test_threshold_ties_go_to_the_candidate_closest_to_one_half():
    y = np.array([[0], [1]])
    s = np.array([[0.2], [0.9]])
    assert tune_thresholds(y, s, min_positives=1, grid=[0.3, 0.45, 0.7, 0.9]).tolist() == [0.45]
    assert tune_thresholds(y, s, min_positives=1, grid=[0.4, 0.6]).tolist() == [0.4]  # lower


def test_threshold_validation():
    with pytest.raises(ConfigError, match="threshold_mode"):
        tune_thresholds(Y, S, mode="micro")
    with pytest.raises(ConfigError, match="min_positives"):
        tune_thresholds(Y, S, min_positives=-1)
    with pytest.raises(DataError, match="grid"):
        tune_thresholds(Y, S, grid=[])
    with pytest.raises(DataError, match="shape"):
        tune_thresholds(Y, S.T)
    with pytest.raises(DataError, match=r"folds.*\(4,\).*\(3,\)"):
        cross_fit_thresholds(Y, S, [0, 1, 1])
    with pytest.raises(DataError, match="at least 2 distinct folds"):
        cross_fit_thresholds(Y, S, [0, 0, 0, 0])


def test_cross_fit_never_tunes_on_the_scored_fold():
    # fold 0: positives .8-.9, negatives .2-.35 (gap holds 0.5);
    # fold 1: positives .6-.65, negatives .51-.55 (gap (.55, .6]).
    # All rows together separate at (.55, .6]: in-sample tuning is perfect (F1 1).
    s = np.array([0.8, 0.85, 0.9, 0.3, 0.35, 0.2, 0.6, 0.62, 0.65, 0.55, 0.52, 0.51])[:, None]
    y = np.array([1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0])[:, None]
    folds = np.repeat([0, 1], 6)
    in_sample = tune_thresholds(y, s, min_positives=1)
    assert in_sample.tolist() == [0.56]
    assert MULTILABEL_METRICS["f1_micro"](y, s, thresholds=in_sample) == 1.0
    crossed = cross_fit_thresholds(y, s, folds, min_positives=1)
    assert crossed.shape == (12, 1)
    # fold 0 rows get fold 1's threshold (0.56: fine for them); fold 1 rows get fold 0's
    # (0.5), under which their three negatives are false positives: tp 6, fp 3 -> F1 0.8.
    assert crossed[:6, 0].tolist() == [0.56] * 6
    assert crossed[6:, 0].tolist() == [0.5] * 6
    assert MULTILABEL_METRICS["f1_micro"](y, s, thresholds=crossed) == pytest.approx(0.8)


def test_cross_fit_thresholds_ignore_the_scored_folds_labels():
    rng = np.random.default_rng(5)
    y = (rng.random((60, 3)) < 0.4).astype(int)
    s = np.clip(0.3 * y + 0.7 * rng.random((60, 3)), 0, 1)
    folds = np.arange(60) % 3
    base = cross_fit_thresholds(y, s, folds, min_positives=2)
    for k in range(3):
        flipped = y.copy()
        flipped[folds == k] = 1 - flipped[folds == k]
        other = cross_fit_thresholds(flipped, s, folds, min_positives=2)
        np.testing.assert_array_equal(other[folds == k], base[folds == k])
        expected = tune_thresholds(y[folds != k], s[folds != k], min_positives=2)
        np.testing.assert_array_equal(base[folds == k], np.broadcast_to(expected, (20, 3)))


# ---------------------------------------------------------------------------- ensembles
# 3 models, 2 rows, 2 labels.  Votes at 0.5: m0 [[1,0],[1,0]], m1 [[1,1],[0,0]], m2 [[0,1],[0,1]]
P = np.array(
    [
        [[0.9, 0.2], [0.6, 0.4]],
        [[0.6, 0.7], [0.3, 0.45]],
        [[0.1, 0.8], [0.2, 0.9]],
    ]
)


def test_k_of_n_vote():
    assert default_k(3) == 2
    assert k_of_n_vote(P, k=1).tolist() == [[1, 1], [1, 1]]
    assert k_of_n_vote(P, k=2).tolist() == [[1, 1], [0, 0]]
    assert k_of_n_vote(P).tolist() == [[1, 1], [0, 0]]  # majority of 3 = 2
    assert k_of_n_vote(P, k=3).tolist() == [[0, 0], [0, 0]]
    with pytest.raises(ConfigError, match=r"ensemble\.k"):
        k_of_n_vote(P, k=4)


def test_k_of_n_vote_with_weights_and_model_thresholds():
    # weighted shares [3, 1, 1] / 5: [[.8, .4], [.6, .2]]
    w = [3.0, 1.0, 1.0]
    np.testing.assert_allclose(label_vote_shares(P, weights=w), [[0.8, 0.4], [0.6, 0.2]])
    assert k_of_n_vote(P, k=2, weights=w).tolist() == [[1, 0], [0, 0]]  # share >= 2/3
    assert k_of_n_vote(P, k=1, weights=w).tolist() == [[1, 1], [1, 0]]  # share >= 1/3
    # equal weights of any scale count like one vote each (no float-rounding surprise)
    assert k_of_n_vote(P, k=2, weights=[0.1, 0.1, 0.1]).tolist() == [[1, 1], [0, 0]]
    # model 0 at 0.95 on label 0: its votes vanish -> counts [[1, 2], [0, 1]]
    t = np.array([[0.95, 0.5], [0.5, 0.5], [0.5, 0.5]])
    assert k_of_n_vote(P, k=2, thresholds=t).tolist() == [[0, 1], [0, 0]]
    with pytest.raises(DataError, match="thresholds"):
        k_of_n_vote(P, thresholds=np.full((2, 2), 0.5))


def test_mode_ensemble_predicts_vote_shares_decided_at_k_over_n():
    ens = MULTILABEL_ENSEMBLES["mode"]().fit(P)
    np.testing.assert_allclose(ens.predict_proba(P), [[2 / 3, 2 / 3], [1 / 3, 1 / 3]])
    assert ens.decision_threshold(3) == pytest.approx(2 / 3)
    assert ens.predict(P).tolist() == [[1, 1], [0, 0]]
    assert MULTILABEL_ENSEMBLES["mode"](k=1).predict(P).tolist() == [[1, 1], [1, 1]]
    tuned = KOfNVote(tune="per_label")
    with pytest.raises(TrainingError):
        tuned.predict_proba(P)


def test_mean_geometric_rank():
    w = [2.0, 1.0, 1.0]
    np.testing.assert_allclose(label_mean(P), P.mean(axis=0))
    np.testing.assert_allclose(label_mean(P, weights=w)[0, 0], (1.8 + 0.6 + 0.1) / 4)
    geo = label_geometric_mean(np.array([[[0.25, 1.0]], [[1.0, 0.04]]]))
    np.testing.assert_allclose(geo, [[0.5, 0.2]])  # per label, rows not renormalised to 1
    assert label_geometric_mean(np.array([[[0.0, 0.5]], [[1.0, 0.5]]]))[0, 0] < 1e-5
    one = np.array([[[0.2, 0.3], [0.9, 0.1], [0.5, 0.2]]])  # 1 model, 3 rows
    np.testing.assert_allclose(label_rank_mean(one), [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    two = np.concatenate([one, 1 - one])  # the second model ranks the rows backwards
    np.testing.assert_allclose(label_rank_mean(two), np.full((3, 2), 0.5))
    for name in ("mean", "geometric", "rank"):
        ens = MULTILABEL_ENSEMBLES[name](weights=w).fit(P)
        proba = ens.predict_proba(P)
        assert proba.shape == (2, 2)
        assert np.all((proba >= 0) & (proba <= 1))
        np.testing.assert_array_equal(ens.oof_predict_proba(P, None, None), proba)
        assert ens.predict(P).tolist() == (proba >= 0.5).astype(int).tolist()


def _stacking_data(seed=0, n=90, n_labels=3):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, n_labels)) < 0.4).astype(int)
    noise = rng.normal(size=(3, n, n_labels))
    p = 1 / (1 + np.exp(-(2.0 * (y - 0.5) * np.array([1.5, 1.0, 0.3])[:, None, None] + noise)))
    return p, y, np.arange(n) % 3


def test_stacking_oof_is_cross_validated_never_in_sample():
    p, y, folds = _stacking_data()
    stack = MultilabelStacking(seed=0)
    oof = stack.oof_predict_proba(p, y, folds)
    in_sample = MultilabelStacking(seed=0).fit(p, y).predict_proba(p)
    assert oof.shape == in_sample.shape == y.shape
    assert not np.allclose(oof, in_sample)
    # fold k's rows equal a per-label LogisticRegression fitted on the other folds only
    x = np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))
    for k in range(3):
        train, test = folds != k, folds == k
        for j in range(3):
            lr = LogisticRegression(max_iter=1000, random_state=0)
            lr.fit(x[:, train, j].T, y[train, j])
            np.testing.assert_allclose(
                oof[test, j], lr.predict_proba(x[:, test, j].T)[:, 1], rtol=1e-6
            )
    # changing the labels of fold k changes nothing in fold k's OOF predictions
    for k in range(3):
        flipped = y.copy()
        flipped[folds == k] = 1 - flipped[folds == k]
        other = stack.oof_predict_proba(p, flipped, folds)
        np.testing.assert_array_equal(other[folds == k], oof[folds == k])
        assert not np.allclose(other[folds != k], oof[folds != k])


def test_stacking_constant_label_predicts_its_prior():
    p, y, folds = _stacking_data()
    y[:, 1] = 0
    y[folds == 0, 2] = 0  # label 2's positives only outside fold 0 ...
    y[folds != 0, 2] = 1  # ... and all 1 there: constant when fold 0 is scored
    y[0, 2] = 1  # (fold 0 keeps a positive so the full fit is not constant)
    oof = MultilabelStacking().oof_predict_proba(p, y, folds)
    assert np.all(oof[:, 1] == 0.0)
    assert np.all(oof[folds == 0, 2] == 1.0)  # trained on folds 1, 2: all positive
    fitted = MultilabelStacking().fit(p, y)
    assert np.all(fitted.predict_proba(p)[:, 1] == 0.0)
    with pytest.raises(TrainingError):
        MultilabelStacking().predict_proba(p)
    with pytest.raises(DataError, match="fitted on"):
        fitted.predict_proba(p[:2])


@pytest.mark.parametrize("name", sorted(MULTILABEL_ENSEMBLES))
@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 1.0]])
def test_every_multilabel_ensemble_fits_and_predicts(name, weights):
    p, y, folds = _stacking_data(seed=2, n=30)
    ens = make_multilabel_ensemble(name, weights=weights, threshold_mode="per_label")
    ens.fit(p, y)
    for proba in (ens.predict_proba(p), ens.oof_predict_proba(p, y, folds)):
        assert proba.shape == y.shape
        assert np.all(np.isfinite(proba))
        assert np.all((proba >= 0) & (proba <= 1))
    assert set(np.unique(ens.predict(p))) <= {0, 1}


def test_mode_with_tuned_thresholds_cross_fits_them_for_oof():
    p, y, folds = _stacking_data(seed=4, n=60)
    ens = KOfNVote(tune="per_label", min_positives=3).fit(p, y)
    expected = np.stack([tune_thresholds(y, pm, min_positives=3) for pm in p])
    np.testing.assert_array_equal(ens.thresholds_, expected)
    per_row = np.stack([cross_fit_thresholds(y, pm, folds, min_positives=3) for pm in p])
    np.testing.assert_allclose(
        ens.oof_predict_proba(p, y, folds), label_vote_shares(p, thresholds=per_row)
    )


# ---------------------------------------------------------------------------- OOF report
def test_score_multilabel_ensembles_table_and_thresholds():
    p, y, folds = _stacking_data(seed=7, n=60, n_labels=4)
    report, thresholds = score_multilabel_ensembles(
        p, y, model_names=["a", "b", "c"], folds=folds, metric="f1_macro", method="best"
    )
    assert isinstance(report, EnsembleReport)
    table = report.table
    assert table["name"].tolist() == [
        "a",
        "b",
        "c",
        "single",
        "mode",
        "mean",
        "geometric",
        "rank",
        "power",
        "select",
        "weighted",
        "stacking",
    ]
    assert table["kind"].tolist() == ["model"] * 3 + ["ensemble"] * 9
    assert list(table.columns) == [
        "name",
        "kind",
        "f1_macro",
        "f1_micro",
        "map",
        "roc_auc",
        "lwlrap",
    ]
    assert report.metric == "f1_macro"
    assert report.n_samples == 60
    assert report.best_method == max(report.ensemble_scores, key=report.ensemble_scores.get)
    assert report.best_model == "a"  # the least noisy model
    assert report.method == report.best_method
    assert set(thresholds) == set(table["name"])
    assert all(t.shape == (4,) for t in thresholds.values())
    # single models: honest F1 with cross-fitted thresholds; test thresholds from all rows
    crossed = cross_fit_thresholds(y, p[0], folds)
    assert report.model_scores["a"] == pytest.approx(
        MULTILABEL_METRICS["f1_macro"](y, p[0], thresholds=crossed)
    )
    np.testing.assert_array_equal(thresholds["a"], tune_thresholds(y, p[0]))
    assert table.loc[0, "map"] == pytest.approx(MULTILABEL_METRICS["map"](y, p[0]))
    np.testing.assert_allclose(thresholds["mode"], 2 / 3)  # k = 2 of 3 on the vote share
    mean_oof = label_mean(p)
    np.testing.assert_array_equal(thresholds["mean"], tune_thresholds(y, mean_oof))
    assert report.ensemble_scores["mean"] == pytest.approx(
        MULTILABEL_METRICS["f1_macro"](
            y, mean_oof, thresholds=cross_fit_thresholds(y, mean_oof, folds)
        )
    )
    assert "Ensemble report" in report.to_markdown()


def test_score_multilabel_ensembles_options_and_errors():
    p, y, folds = _stacking_data(seed=8, n=45)
    report, thresholds = score_multilabel_ensembles(
        p,
        y,
        model_names=["a", "b", "c"],
        folds=folds,
        metric="lwlrap",
        metrics=["map"],
        methods=["mode", "mean"],
        k=3,
        threshold_mode="global",
    )
    assert list(report.table.columns) == ["name", "kind", "lwlrap", "map"]
    assert report.method == "mode"
    np.testing.assert_allclose(thresholds["mode"], 1.0)
    assert np.unique(thresholds["a"]).size == 1  # global mode
    assert resolve_multilabel_method("best", "rank") == "rank"
    kwargs = {"model_names": ["a", "b", "c"], "folds": folds}
    with pytest.raises(ConfigError, match="median"):
        score_multilabel_ensembles(p, y, method="median", **kwargs)
    with pytest.raises(ConfigError, match="accuracy"):
        score_multilabel_ensembles(p, y, metric="accuracy", **kwargs)
    with pytest.raises(DataError, match="model_names"):
        score_multilabel_ensembles(p, y, model_names=["a", "b"], folds=folds)
    with pytest.raises(DataError, match="mean"):
        score_multilabel_ensembles(p, y, model_names=["a", "mean", "c"], folds=folds)
    with pytest.raises(DataError, match="folds"):
        score_multilabel_ensembles(p, y, model_names=["a", "b", "c"], folds=np.zeros(45))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        score_multilabel_ensembles(p * 3, y, **kwargs)


# ---------------------------------------------------------------------------- the package
OLD_NAMES = [
    "ENSEMBLES",
    "STACKING_MODELS",
    "EnsembleReport",
    "StackingEnsemble",
    "VotingEnsemble",
    "at_max",
    "check_probas",
    "check_weights",
    "evaluate_ensembles",
    "geometric_mean_proba",
    "make_ensemble",
    "mean_proba",
    "mode_vote",
    "resolve_method",
    "score_ensembles",
    "vote_shares",
    "GEOMETRIC_EPS",
    "Ensemble",
    "_VOTING_PROBA",
    "_stack_features",
    "_to_proba",
    "_proba_method",
]


def test_every_old_ensemble_name_still_imports_from_the_package():
    package = importlib.import_module("emo_utils.ensemble")
    single = importlib.import_module("emo_utils.ensemble.single")
    run = importlib.import_module("emo_utils.ensemble.run")
    for name in OLD_NAMES:
        home = run if name == "evaluate_ensembles" else single  # the stage of either kind
        assert getattr(package, name) is getattr(home, name), name
    assert set(single.__all__) <= set(package.__all__)
    multilabel = importlib.import_module("emo_utils.ensemble.multilabel")
    assert set(multilabel.__all__) <= set(package.__all__)
    from emo_utils.endgame.vote import at_max as endgame_at_max  # the vote module's import

    assert endgame_at_max is single.at_max


def test_every_multilabel_name_is_the_same_object_from_its_module_the_face_and_the_package():
    package = importlib.import_module("emo_utils.ensemble")
    face = importlib.import_module("emo_utils.ensemble.multilabel")
    homes = [
        importlib.import_module(f"emo_utils.ensemble.multilabel_{part}")
        for part in ("combiners", "estimators", "scoring")
    ]
    names = [*face.__all__, "STACKING_EPS"]
    for name in names:
        home = [m for m in homes if name in m.__all__]
        assert len(home) == 1, name  # defined in exactly one of the three modules
        assert getattr(face, name) is getattr(home[0], name) is getattr(package, name), name
    assert sorted(n for m in homes for n in m.__all__) == sorted(names)
