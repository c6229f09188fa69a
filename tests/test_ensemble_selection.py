"""Ensembles chosen honestly on OOF: forward selection, optimised weights, nesting, ``best``."""

from __future__ import annotations

import json
from functools import partial
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, log_loss

from emo_utils.config import Config, EnsembleConfig
from emo_utils.ensemble import (
    DEFAULT_POWER,
    DEFAULT_ROUNDS,
    ENSEMBLES,
    MULTILABEL_ENSEMBLES,
    EnsembleReport,
    LearnedEnsemble,
    MultilabelLearned,
    best_single,
    cross_fit_weights,
    evaluate_ensembles,
    forward_selection,
    label_mean,
    label_power_mean,
    make_ensemble,
    make_multilabel_ensemble,
    mean_proba,
    optimize_weights,
    power_mean_proba,
    rank_mean_proba,
    score_ensembles,
    score_multilabel_ensembles,
    weighted_mean,
)
from emo_utils.errors import ConfigError, DataError, TrainingError
from emo_utils.metrics import MULTILABEL_METRICS
from emo_utils.tasks import get_task
from emo_utils.thresholds import cross_fit_thresholds


def _accuracy(y, proba):
    return accuracy_score(y, proba.argmax(axis=1))


def _log_loss(y, proba):
    return log_loss(y, proba, labels=np.arange(proba.shape[1]))


def _models(rng, y, accuracies, n_classes=3, confidence=0.6):
    """One model per accuracy: right on about that share of rows, independent errors."""
    out = []
    for acc in accuracies:
        wrong = rng.random(len(y)) > acc
        pred = np.where(wrong, (y + rng.integers(1, n_classes, len(y))) % n_classes, y)
        noise = rng.dirichlet(np.ones(n_classes), len(y))
        out.append(confidence * np.eye(n_classes)[pred] + (1 - confidence) * noise)
    return np.array(out)


def _noise(seed, n, n_models):
    """Pure-noise binary models and random labels: nothing can be learnt."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p1 = rng.random((n_models, n))
    return np.stack([1 - p1, p1], axis=2), y, np.arange(n) % 5


# ---------------------------------------------------------------------------- selection
def test_forward_selection_picks_the_dominating_model():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    probas = _models(rng, y, [0.45, 0.95, 0.5, 0.4])
    weights = forward_selection(probas, y, score=_accuracy)
    assert weights.shape == (4,)
    assert weights.sum() == pytest.approx(1.0)
    assert np.all(weights >= 0)
    assert weights.argmax() == 1
    assert weights[1] >= 0.5  # the weight concentrates on the dominating model
    np.testing.assert_array_equal(best_single(probas, y, score=_accuracy), [0, 1, 0, 0])
    ens = LearnedEnsemble("select").fit(probas, y)
    np.testing.assert_array_equal(ens.weights_, weights)
    chosen = ens.describe(["a", "b", "c", "d"])  # members with weight 0 are left out
    assert chosen == {n: float(w) for n, w in zip("abcd", weights, strict=True) if w > 0}
    assert max(chosen, key=chosen.get) == "b"


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("init", [1, 3])
def test_forward_selection_never_scores_below_the_best_single_model(seed, init):
    rng = np.random.default_rng(seed)
    n_models = int(rng.integers(2, 7))
    y = rng.integers(0, 3, int(rng.integers(40, 200)))
    probas = _models(rng, y, rng.uniform(0.3, 0.8, n_models), confidence=rng.uniform(0.2, 0.9))
    weights = forward_selection(probas, y, score=_accuracy, rounds=15, init=init)
    assert np.all(weights >= 0)
    assert weights.sum() == pytest.approx(1.0)
    # integer counts over the ensemble's size (at most init + rounds members)
    assert any(np.allclose(weights * k, np.round(weights * k)) for k in range(1, init + 16))
    best_single_score = max(_accuracy(y, p) for p in probas)
    assert _accuracy(y, weighted_mean(probas, weights)) >= best_single_score
    # the report's "best" (honest OOF) is never below the best single model either
    report = score_ensembles(
        probas,
        y,
        model_names=[f"m{i}" for i in range(n_models)],
        folds=np.arange(len(y)) % 4,
        method="best",
        selection_init=init,
    )
    assert report.ensemble_scores[report.method] >= max(report.model_scores.values())
    assert report.ensemble_scores["single"] == max(report.model_scores.values())


def test_forward_selection_adds_with_replacement_and_breaks_ties_by_model_order():
    y = np.array([0, 1, 0, 1, 1])
    a = np.array([0.1, 0.4, 0.6, 0.9, 0.2])  # probability of class 1; accuracy 0.4
    b = np.array([0.6, 0.8, 0.2, 0.4, 0.7])  # accuracy 0.6
    probas = np.stack([np.column_stack([1 - m, m]) for m in (a, b)])
    mix = {  # accuracy of (i * a + j * b) / (i + j)
        (i, j): _accuracy(y, weighted_mean(probas, [i, j])) for i, j in [(1, 1), (1, 2), (2, 1)]
    }
    assert mix == {(1, 1): 0.8, (1, 2): 1.0, (2, 1): 0.8}
    # b (best single), then + a (0.8), then + b again (1.0): b was added twice
    weights = forward_selection(probas, y, score=_accuracy, rounds=5)
    np.testing.assert_allclose(weights, [1 / 3, 2 / 3])
    # rounds caps the additions; init=2 starts from the mean of the top two models
    np.testing.assert_allclose(forward_selection(probas, y, score=_accuracy, rounds=1), [0.5, 0.5])
    np.testing.assert_allclose(
        forward_selection(probas, y, score=_accuracy, rounds=1, init=2), [1 / 3, 2 / 3]
    )
    # identical models tie at every step: the first one wins, nothing else is added
    same = np.stack([probas[1]] * 3)
    np.testing.assert_array_equal(forward_selection(same, y, score=_accuracy), [1, 0, 0])
    np.testing.assert_array_equal(best_single(same, y, score=_accuracy), [1, 0, 0])


def test_forward_selection_rejects_bad_options():
    probas = np.full((2, 4, 2), 0.5)
    y = np.array([0, 1, 0, 1])
    for rounds in (0, -1, 1.5, True):
        with pytest.raises(ConfigError) as info:
            forward_selection(probas, y, score=_accuracy, rounds=rounds)
        assert info.value.field == "ensemble.selection_rounds"
    with pytest.raises(ConfigError) as info:
        forward_selection(probas, y, score=_accuracy, init=0)
    assert info.value.field == "ensemble.selection_init"
    with pytest.raises(DataError, match="rows"):
        forward_selection(probas, y[:3], score=_accuracy)
    with pytest.raises(DataError, match="shape"):
        forward_selection(probas[0], y, score=_accuracy)


# ---------------------------------------------------------------------------- weights
def test_weight_optimisation_recovers_a_known_mixture():
    rng = np.random.default_rng(1)
    n = 20000
    p = rng.dirichlet(np.full(3, 0.7), size=(2, n))
    truth = 0.3 * p[0] + 0.7 * p[1]
    y = (rng.random(n)[:, None] > truth.cumsum(axis=1)).sum(axis=1)  # drawn from the mixture
    weights = optimize_weights(p, y, loss=_log_loss)
    np.testing.assert_allclose(weights, [0.3, 0.7], atol=0.04)
    assert weights.sum() == pytest.approx(1.0)
    # a useless third model gets (almost) no weight
    useless = np.stack([*p, rng.dirichlet(np.ones(3), n)])
    weights = optimize_weights(useless, y, loss=_log_loss)
    assert weights[2] < 0.05
    # through the registry: "weighted" learns the same weights
    ens = make_ensemble("weighted").fit(p, y)
    np.testing.assert_allclose(ens.weights_, optimize_weights(p, y, loss=_log_loss))
    assert set(ens.describe(["a", "b"])) == {"a", "b"}


def test_weight_optimisation_zeroes_a_dominated_model_and_handles_one_model():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 200)
    good = 0.9 * np.eye(3)[y] + 0.1 / 3
    bad = rng.dirichlet(np.ones(3), 200)
    np.testing.assert_array_equal(
        optimize_weights(np.stack([bad, good]), y, loss=_log_loss), [0, 1]
    )
    np.testing.assert_array_equal(optimize_weights(good[None], y, loss=_log_loss), [1.0])


# ---------------------------------------------------------------------------- nesting
def test_cross_fit_weights_never_fits_on_the_scored_fold():
    rng = np.random.default_rng(3)
    probas = rng.dirichlet(np.ones(2), size=(3, 12))
    y = np.arange(12) % 2
    folds = np.repeat([2, 0, 1], 4)
    seen = []

    def fit(p, yy):
        seen.append(p.shape[1])
        return np.array([1.0, 0.0, 0.0]) if len(seen) == 1 else np.array([0.0, 1.0, 1.0])

    oof, fold_weights = cross_fit_weights(probas, y, folds, fit=fit)
    assert seen == [8, 8, 8]
    assert fold_weights.shape == (3, 3)
    rows0 = folds == 0  # fold 0 comes first in sorted order: weights [1, 0, 0]
    np.testing.assert_allclose(oof[rows0], probas[0, rows0])
    np.testing.assert_allclose(oof[~rows0], probas[1:, ~rows0].mean(axis=0))
    with pytest.raises(DataError, match="2 distinct folds"):
        cross_fit_weights(probas, y, np.zeros(12), fit=fit)
    with pytest.raises(DataError, match="folds"):
        cross_fit_weights(probas, y, folds[:5], fit=fit)


def test_nested_selection_is_honest_where_a_leaky_fit_scores_above_chance():
    leaky, nested = [], []
    for seed in range(5):
        probas, y, folds = _noise(seed, n=100, n_models=50)
        ens = make_ensemble("select", selection_rounds=10)
        leaky.append(accuracy_score(y, ens.fit(probas, y).predict(probas)))
        nested.append(accuracy_score(y, ens.oof_predict(probas, y, folds)))
    # selection fitted and scored on the same rows finds "signal" in pure noise ...
    assert np.mean(leaky) > 0.62
    # ... the nested OOF score of the same selection stays at chance (0.5)
    assert np.mean(nested) < 0.56


def test_nested_weights_are_honest_where_a_leaky_fit_beats_the_plain_mean():
    for seed in range(2):
        probas, y, folds = _noise(seed, n=60, n_models=12)
        plain = log_loss(y, mean_proba(probas))  # nothing learnt: honest by construction
        ens = make_ensemble("weighted")
        leaky = log_loss(y, ens.fit(probas, y).predict_proba(probas))
        nested = log_loss(y, ens.oof_predict_proba(probas, y, folds))
        assert leaky < plain - 0.02  # in-sample weights "learn" the noise
        assert nested > plain  # nested weights cannot


def test_nested_oof_leaves_the_fitted_weights_alone_and_falls_back_to_a_stratified_split():
    probas, y, folds = _noise(0, n=60, n_models=4)
    ens = make_ensemble("select").fit(probas, y)
    before = ens.weights_.copy()
    ens.oof_predict_proba(probas, y, folds)
    np.testing.assert_array_equal(ens.weights_, before)
    oof = ens.oof_predict_proba(probas, y)  # no folds: stratified split of the labels
    assert oof.shape == (60, 2)
    np.testing.assert_allclose(oof.sum(axis=1), 1.0)
    with pytest.raises(TrainingError, match="fit"):
        make_ensemble("weighted").predict_proba(probas)
    with pytest.raises(DataError, match="models"):
        ens.predict_proba(probas[:3])
    with pytest.raises(DataError, match="class indices"):
        ens.fit(probas, y + 5)


# ---------------------------------------------------------------------------- best
def test_best_resolves_to_single_when_every_ensemble_is_worse():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 150)
    probas = _models(rng, y, [0.9, 0.35, 0.3, 0.35])
    folds = np.arange(150) % 5
    names = ["good", "bad1", "bad2", "bad3"]
    report = score_ensembles(probas, y, model_names=names, folds=folds, method="best")
    scores = report.ensemble_scores
    assert next(iter(scores)) == "single"
    assert scores["single"] == report.model_scores["good"] == max(report.model_scores.values())
    assert all(s <= scores["single"] for s in scores.values())
    assert report.best_method == report.method == "single"
    assert report.details["single"] == "good"
    # single is scored (first) even when the methods list leaves it out
    report = score_ensembles(
        probas, y, model_names=names, folds=folds, method="best", methods=["mode", "mean"]
    )
    assert list(report.ensemble_scores) == ["single", "mode", "mean"]
    assert report.method == "single"


def test_best_resolves_to_an_ensemble_that_strictly_beats_the_best_model():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 300)
    probas = _models(rng, y, [0.7, 0.7, 0.7, 0.7, 0.7])  # independent errors: votes help
    report = score_ensembles(
        probas, y, model_names=list("abcde"), folds=np.arange(300) % 5, method="best"
    )
    assert report.method != "single"
    assert report.ensemble_scores[report.method] > max(report.model_scores.values())
    assert report.ensemble_scores[report.method] == max(report.ensemble_scores.values())


def test_report_shows_every_members_weight():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 3, 200)
    probas = _models(rng, y, [0.8, 0.75, 0.4])
    report = score_ensembles(
        probas, y, model_names=["resnest14d", "resnet18", "weak"], folds=np.arange(200) % 4
    )
    assert set(report.details) == {"single", "select", "weighted"}
    assert report.details["single"] == "resnest14d"
    for method in ("select", "weighted"):
        chosen = report.details[method]
        assert sum(chosen.values()) == pytest.approx(1.0)
        assert all(w > 0 for w in chosen.values())
        assert set(chosen) <= {"resnest14d", "resnet18", "weak"}
    weights = report.weight_table()
    assert list(weights.columns) == ["single", "select", "weighted"]
    assert weights.loc["resnest14d", "single"] == 1.0
    np.testing.assert_allclose(weights.sum(axis=0), 1.0)
    saved = json.loads(json.dumps(report.to_dict()))  # JSON-ready
    assert saved["details"] == report.details
    markdown = report.to_markdown()
    assert "## Learnt weights" in markdown
    assert "| model | single | select | weighted |" in markdown
    assert "| resnest14d | 1.0000 |" in markdown
    assert (
        "## Learnt weights"
        not in EnsembleReport(
            metric="accuracy",
            table=report.table,
            best_method="single",
            best_model="resnest14d",
            method="mode",
            n_samples=200,
        ).to_markdown()
    )


# ---------------------------------------------------------------------------- power, rank
def test_power_mean_on_hand_made_probabilities():
    p = np.array([[[0.9, 0.1], [0.5, 0.5]], [[0.3, 0.7], [0.2, 0.8]]])
    np.testing.assert_allclose(power_mean_proba(p, power=1.0), mean_proba(p))
    # power 2: (0.81 + 0.09) / 2 = 0.45 and (0.01 + 0.49) / 2 = 0.25, renormalised
    np.testing.assert_allclose(power_mean_proba(p, power=2.0)[0], [0.45 / 0.7, 0.25 / 0.7])
    np.testing.assert_allclose(power_mean_proba(p, power=3.0).sum(axis=1), 1.0)
    # the confident model wins under a high power, not under the mean
    q = np.array([[[0.9, 0.1]], [[0.25, 0.75]], [[0.25, 0.75]]])
    assert mean_proba(q).argmax() == 1
    assert power_mean_proba(q, power=4.0).argmax() == 0
    assert np.all(np.isfinite(power_mean_proba(np.array([[[1.0, 0.0]]]), power=500.0)))
    w = power_mean_proba(p, power=2.0, weights=[1.0, 0.0])
    np.testing.assert_allclose(w[0], [0.81 / 0.82, 0.01 / 0.82])
    ens = make_ensemble("power", power=4.0)
    assert ens.predict(q).tolist() == [0]
    for bad in (0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(ConfigError) as info:
            power_mean_proba(p, power=bad)
        assert info.value.field == "ensemble.power"


def test_rank_mean_is_a_borda_count_within_each_row():
    p = np.array(
        [
            [[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]],
            [[0.1, 0.5, 0.4], [0.3, 0.3, 0.4]],
            [[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]],
        ]
    )
    got = rank_mean_proba(p)
    # row 0: scaled ranks (1, .5, 0), (0, 1, .5), (0, 1, .5) -> mean (1/3, 5/6, 1/3)
    np.testing.assert_allclose(got[0], np.array([1 / 3, 5 / 6, 1 / 3]) / 1.5)
    # row 1 has ties (average ranks): (.25, .25, 1), (.25, .25, 1), (1, .5, 0)
    np.testing.assert_allclose(got[1], np.array([0.5, 1 / 3, 2 / 3]) / 1.5)
    assert make_ensemble("rank").predict(p).tolist() == [1, 2]
    # only the order counts: a monotone change of one model's scores changes nothing
    np.testing.assert_allclose(rank_mean_proba(p**3), got)
    # a row does not depend on the other rows
    np.testing.assert_allclose(rank_mean_proba(p[:, :1]), got[:1])
    np.testing.assert_allclose(rank_mean_proba(p, weights=[1, 0, 0])[0], [2 / 3, 1 / 3, 0])


# ---------------------------------------------------------------------------- multi-label
def _label_data(seed=0, n=90, n_labels=4, strengths=(2.0, 1.0, 0.2)):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, n_labels)) < 0.4).astype(int)
    noise = rng.normal(size=(len(strengths), n, n_labels))
    s = np.array(strengths)[:, None, None]
    return 1 / (1 + np.exp(-(2.0 * (y - 0.5) * s + noise))), y, np.arange(n) % 3


def test_label_power_mean_on_hand_made_probabilities():
    p = np.array([[[0.6, 0.1]], [[0.8, 0.1]]])
    np.testing.assert_allclose(label_power_mean(p, power=1.0), label_mean(p))
    np.testing.assert_allclose(label_power_mean(p, power=2.0), [[np.sqrt(0.5), 0.1]])
    np.testing.assert_allclose(label_power_mean(p, power=2.0, weights=[0, 1]), [[0.8, 0.1]])
    assert make_multilabel_ensemble("power", power=3.0).fit(p).predict_proba(p).shape == (1, 2)


@pytest.mark.parametrize("metric", ["map", "f1_macro"])
def test_multilabel_learnt_methods_through_the_scorer(metric):
    p, y, folds = _label_data(seed=1)
    names = ["strong", "medium", "noise"]
    report, thresholds = score_multilabel_ensembles(
        p, y, model_names=names, folds=folds, metric=metric, method="best"
    )
    scores = report.ensemble_scores
    assert list(scores)[:1] == ["single"]
    assert {"power", "select", "weighted"} <= set(scores)
    best_model = max(report.model_scores.values())
    assert scores["single"] == report.model_scores["strong"] == best_model
    assert report.ensemble_scores[report.method] >= best_model
    assert report.details["single"] == "strong"
    assert sum(report.details["select"].values()) == pytest.approx(1.0)
    assert "strong" in report.details["weighted"]
    np.testing.assert_array_equal(thresholds["single"], thresholds["strong"])
    # select's row scores its nested OOF output, at thresholds cross-fitted on it
    oof = make_multilabel_ensemble("select", metric=metric).oof_predict_proba(p, y, folds)
    if metric == "f1_macro":
        expected = MULTILABEL_METRICS[metric](
            y, oof, thresholds=cross_fit_thresholds(y, oof, folds)
        )
    else:
        expected = MULTILABEL_METRICS[metric](y, oof)
    assert scores["select"] == pytest.approx(expected)


def test_multilabel_single_uses_the_reports_cross_fitted_score():
    p, y, folds = _label_data(seed=2, strengths=(1.0, 1.05, 0.2))
    report, _ = score_multilabel_ensembles(
        p, y, model_names=["a", "b", "c"], folds=folds, metric="f1_macro", methods=["mean"]
    )
    ens = MultilabelLearned("single", metric="f1_macro").fit(p, y, folds)
    assert ens.describe(["a", "b", "c"]) == report.best_model == report.details["single"]
    best = ["a", "b", "c"].index(report.best_model)
    np.testing.assert_array_equal(ens.oof_predict_proba(p, y, folds), p[best])


def test_multilabel_nested_selection_is_honest():
    rng = np.random.default_rng(1)
    n, n_models = 50, 25
    y = (rng.random((n, 2)) < 0.5).astype(int)
    p = rng.random((n_models, n, 2))  # pure noise
    folds = np.arange(n) % 5
    ens = make_multilabel_ensemble("select", metric="roc_auc", selection_rounds=6)
    leaky = MULTILABEL_METRICS["roc_auc"](y, ens.fit(p, y).predict_proba(p))
    nested = MULTILABEL_METRICS["roc_auc"](y, ens.oof_predict_proba(p, y, folds))
    assert leaky > 0.62
    assert nested < 0.56


def test_multilabel_learnt_method_errors():
    p, y, _ = _label_data()
    with pytest.raises(DataError, match="folds"):
        make_multilabel_ensemble("select").oof_predict_proba(p, y, None)
    with pytest.raises(ConfigError, match="accuracy"):
        make_multilabel_ensemble("select", metric="accuracy")
    with pytest.raises(TrainingError):
        make_multilabel_ensemble("weighted").predict_proba(p)
    ens = make_multilabel_ensemble("weighted").fit(p, y)
    assert set(np.unique(ens.predict(p))) <= {0, 1}


# ---------------------------------------------------------------------------- registries
def test_the_new_methods_are_registered_for_both_tasks_with_single_first():
    for name in ("single", "select", "weighted", "power", "rank"):
        assert name in ENSEMBLES
        assert name in MULTILABEL_ENSEMBLES
    for task, registry in (("classification", ENSEMBLES), ("multilabel", MULTILABEL_ENSEMBLES)):
        methods = get_task(task).ensembles
        assert methods[0] == "single"
        assert set(methods) == set(registry)
    assert next(iter(ENSEMBLES)) == next(iter(MULTILABEL_ENSEMBLES)) == "single"


def test_make_ensemble_passes_the_options():
    ens = make_ensemble("select", metric="f1_macro", selection_rounds=3, selection_init=2, seed=4)
    assert isinstance(ens, LearnedEnsemble)
    assert (ens.learner, ens.metric, ens.rounds, ens.init, ens.seed) == (
        "select",
        "f1_macro",
        3,
        2,
        4,
    )
    assert make_ensemble("power", power=3.5).power == 3.5
    ml = make_multilabel_ensemble(
        "select", metric="lwlrap", selection_rounds=2, threshold_mode="global", min_positives=2
    )
    assert (ml.metric, ml.rounds, ml.threshold_mode, ml.min_positives) == ("lwlrap", 2, "global", 2)
    assert make_multilabel_ensemble("power", power=0.5).power == 0.5
    with pytest.raises(ConfigError, match=r"ensemble\.selection_rounds"):
        make_ensemble("select", selection_rounds=0)
    with pytest.raises(ConfigError, match=r"ensemble\.power"):
        make_ensemble("power", power=-2.0)
    with pytest.raises(ConfigError, match="metric"):
        make_ensemble("single", metric="nope")


# ---------------------------------------------------------------------------- config
def test_config_defaults_match_the_ensemble_defaults():
    ec = EnsembleConfig()
    assert ec.selection_rounds == DEFAULT_ROUNDS
    assert ec.selection_init == 1
    assert ec.power == DEFAULT_POWER
    assert ec.method == "best"  # the honest OOF choice, never below the best single model
    cfg = Config().override(
        {"ensemble.selection_rounds": 5, "ensemble.selection_init": 2, "ensemble.power": 3}
    )
    assert (cfg.ensemble.selection_rounds, cfg.ensemble.selection_init) == (5, 2)
    assert cfg.ensemble.power == 3.0
    for method in ("single", "select", "weighted", "power", "rank", "best"):
        assert Config().override({"ensemble.method": method}).ensemble.method == method
        multi = Config().override({"data.task": "multilabel", "ensemble.method": method})
        assert multi.ensemble.method == method


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ensemble.selection_rounds", 0),
        ("ensemble.selection_rounds", -3),
        ("ensemble.selection_rounds", 2.5),
        ("ensemble.selection_rounds", True),
        ("ensemble.selection_init", 0),
        ("ensemble.selection_init", "two"),
        ("ensemble.power", 0),
        ("ensemble.power", -1.5),
        ("ensemble.power", float("nan")),
        ("ensemble.power", float("inf")),
        ("ensemble.power", "high"),
    ],
)
def test_config_rejects_bad_selection_and_power_values(field, value):
    with pytest.raises(ConfigError) as info:
        Config().override({field: value})
    assert info.value.field == field
    with pytest.raises(ConfigError) as info:
        EnsembleConfig(**{field.split(".")[1]: value})
    assert info.value.field == field


# ---------------------------------------------------------------------------- run folder
def test_evaluate_ensembles_writes_the_learnt_weights(tmp_path):
    rng = np.random.default_rng(8)
    y = rng.integers(0, 3, 60)
    probas = _models(rng, y, [0.8, 0.6])
    classes = ("anger", "joy", "neutral")
    run = tmp_path / "run"
    (run / "oof").mkdir(parents=True)
    cfg = Config().override(
        {
            "train.architectures": ["m1", "m2"],
            "train.n_folds": 5,
            "ensemble.method": "best",
            "ensemble.selection_rounds": 4,
        }
    )
    cfg.save(run / "config.json")
    (run / "classes.json").write_text(json.dumps(list(classes)))
    for k, arch in enumerate(["m1", "m2"]):
        df = pd.DataFrame(probas[k], columns=list(classes))
        df.insert(0, "fold", np.arange(60) % 5)
        df.insert(0, "label", [classes[i] for i in y])
        df.insert(0, "filename", [f"{i:03d}.wav" for i in range(60)])
        df.to_csv(run / "oof" / f"{arch}.csv", index=False)
    report = evaluate_ensembles(run)
    saved = json.loads((run / "ensemble_report.json").read_text())
    assert saved["details"]["single"] == "m1"
    assert set(saved["details"]) == {"single", "select", "weighted"}
    assert saved["submission_method"] == report.method
    assert report.ensemble_scores[report.method] >= max(report.model_scores.values())
    assert "Learnt weights" in (run / "ensemble_report.md").read_text()
    expected = score_ensembles(
        probas, y, model_names=["m1", "m2"], folds=np.arange(60) % 5, selection_rounds=4
    )
    assert report.ensemble_scores == pytest.approx(expected.ensemble_scores)


def test_learnt_ensembles_accept_partial_options():
    probas, y, _ = _noise(1, n=40, n_models=3)
    ens = partial(LearnedEnsemble, "single")(metric="f1_macro").fit(probas, y)
    assert ens.weights_.sum() == 1.0
    with pytest.raises(ConfigError, match="learnt"):
        LearnedEnsemble("mode")


# ---------------------------------------------------------------------------- pipeline
class _Run:
    """What ``pipeline._combine_multi`` reads of a run folder: its thresholds."""

    def __init__(self, thresholds):
        self.thresholds = thresholds

    def read_thresholds(self, classes):
        return self.thresholds


@pytest.mark.parametrize("method", ["single", "select", "weighted", "power"])
def test_pipeline_combines_the_test_set_with_the_weights_learnt_on_all_oof_rows(method):
    from emo_utils.pipeline import _combine_multi, _combine_single

    p, y, folds = _label_data(seed=3)
    test = _label_data(seed=4, n=20)[0]
    ok = np.ones(20, dtype=bool)
    ok[5] = False
    oof = SimpleNamespace(probas=p, y=y, folds=folds, classes=["w", "x", "y", "z"])
    config = Config().override(
        {"data.task": "multilabel", "ensemble.method": method, "ensemble.selection_rounds": 3}
    )
    report, thresholds = score_multilabel_ensembles(
        p, y, model_names=["a", "b", "c"], folds=folds, method=method, selection_rounds=3
    )
    labels, proba = _combine_multi(_Run(thresholds), config, report, oof, test, ok)
    ens = make_multilabel_ensemble(method, selection_rounds=3).fit(p, y, folds)
    np.testing.assert_allclose(proba[ok], ens.predict_proba(test[:, ok]))
    assert np.isnan(proba[5]).all()
    np.testing.assert_array_equal(labels[ok], proba[ok] >= thresholds[method])
    if method == "single":
        np.testing.assert_array_equal(proba[ok], test[0, ok])  # the strongest model

    rng = np.random.default_rng(9)
    y1 = rng.integers(0, 3, 90)
    p1 = _models(rng, y1, [0.8, 0.6, 0.4])
    test1 = _models(rng, rng.integers(0, 3, 20), [0.8, 0.6, 0.4])
    oof1 = SimpleNamespace(probas=p1, y=y1, folds=np.arange(90) % 3)
    config1 = Config().override({"ensemble.method": method, "ensemble.selection_rounds": 3})
    report1 = score_ensembles(
        p1, y1, model_names=["a", "b", "c"], folds=oof1.folds, method=method, selection_rounds=3
    )
    labels1, proba1 = _combine_single(None, config1, report1, oof1, test1, ok)
    ens1 = make_ensemble(method, selection_rounds=3).fit(p1, y1)
    np.testing.assert_allclose(proba1[ok], ens1.predict_proba(test1[:, ok]))
    np.testing.assert_array_equal(labels1[ok], proba1[ok].argmax(axis=1))
    assert labels1[5] == -1
