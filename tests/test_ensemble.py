"""Ensembles on (n_models, n_samples, n_classes) arrays, and their comparison on OOF predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import PredefinedSplit, cross_val_predict

from emo_utils.config import Config
from emo_utils.ensemble import (
    StackingEnsemble,
    evaluate_ensembles,
    geometric_mean_proba,
    make_ensemble,
    mean_proba,
    mode_vote,
    score_ensembles,
    vote_shares,
)
from emo_utils.errors import CheckpointError, ConfigError, DataError, TrainingError
from emo_utils.runs import RunDir


def _p(*rows):
    """One sample per model: _p([.6, .4], [.1, .9]) -> shape (2 models, 1 sample, 2 classes)."""
    return np.array([[r] for r in rows], dtype=float)


# ---------------------------------------------------------------------------- mode vote
def test_mode_vote_majority_beats_a_confident_minority():
    probas = _p([0.55, 0.45], [0.55, 0.45], [0.0, 1.0])
    assert mode_vote(probas).tolist() == [0]
    assert mean_proba(probas).argmax(axis=1).tolist() == [1]  # soft voting disagrees


def test_mode_vote_on_many_samples_is_the_most_common_label():
    rng = np.random.default_rng(0)
    probas = rng.dirichlet(np.ones(4), size=(5, 200))
    labels = probas.argmax(axis=2)
    expected = []
    for column in labels.T:
        counts = np.bincount(column, minlength=4)
        if (counts == counts.max()).sum() == 1:
            expected.append(int(counts.argmax()))
        else:
            expected.append(None)
    got = mode_vote(probas)
    for e, g in zip(expected, got, strict=True):
        if e is not None:
            assert g == e
    assert got.shape == (200,)
    assert got.dtype == np.int64


def test_tie_break_level_1_largest_summed_probability():
    # One vote each; summed probabilities 0.7 (class 0) vs 1.3 (class 1).
    assert mode_vote(_p([0.6, 0.4], [0.1, 0.9])).tolist() == [1]
    assert mode_vote(_p([0.9, 0.1], [0.4, 0.6])).tolist() == [0]


def test_tie_break_only_considers_the_tied_classes():
    # Votes: class 0 and class 1 once each, class 2 never.  Class 2 has the largest summed
    # probability (0.70) but is not tied for the most votes, so it cannot win; classes 0 and
    # 1 have equal sums (0.65), so level 2 picks the lowest index.
    probas = _p([0.40, 0.25, 0.35], [0.25, 0.40, 0.35])
    assert mode_vote(probas).tolist() == [0]


def test_tie_break_level_2_lowest_class_index():
    assert mode_vote(_p([0.6, 0.4], [0.4, 0.6])).tolist() == [0]
    # The same tie with the classes swapped still gives the lowest index.
    assert mode_vote(_p([0.0, 0.4, 0.6], [0.0, 0.6, 0.4])).tolist() == [1]


def test_weights_change_the_count():
    probas = _p([0.9, 0.1], [0.9, 0.1], [0.4, 0.6])
    assert mode_vote(probas).tolist() == [0]
    assert mode_vote(probas, weights=[1, 1, 3]).tolist() == [1]
    assert mode_vote(probas, weights=[1, 0, 1.5]).tolist() == [1]  # a zero weight drops a model
    assert np.allclose(vote_shares(probas, weights=[1, 1, 3]), [[0.4, 0.6]])


def test_weights_enter_the_tie_break_sums():
    # Weighted counts tie 2:2.  Weighted sums: class 0 = .65+.65+2*.3 = 1.9,
    # class 1 = .35+.35+2*.7 = 2.1, so class 1; unweighted sums would favour class 0.
    probas = _p([0.65, 0.35], [0.65, 0.35], [0.3, 0.7])
    assert mode_vote(probas, weights=[1, 1, 2]).tolist() == [1]
    assert mode_vote(probas, weights=[2, 2, 4]).tolist() == [1]  # scale does not matter
    assert probas.sum(axis=0).argmax(axis=1).tolist() == [0]


@pytest.mark.parametrize("weights", [[1, 1], [1, -1, 1], [0, 0, 0], [1, np.nan, 1]])
def test_bad_weights_are_config_errors(weights):
    with pytest.raises(ConfigError, match=r"ensemble\.weights"):
        mode_vote(_p([0.6, 0.4], [0.1, 0.9], [0.5, 0.5]), weights=weights)


def test_bad_arrays_are_rejected():
    with pytest.raises(DataError, match="n_models, n_samples, n_classes"):
        mode_vote(np.ones((3, 2)))
    with pytest.raises(DataError, match="finite"):
        mean_proba(np.full((1, 1, 2), np.nan))


# ---------------------------------------------------------------------------- averaging
def test_arithmetic_mean_with_weights():
    probas = _p([0.2, 0.8], [0.6, 0.4])
    assert np.allclose(mean_proba(probas), [[0.4, 0.6]])
    assert np.allclose(mean_proba(probas, weights=[1, 3]), [[0.5, 0.5]])
    assert make_ensemble("mean").predict(probas).tolist() == [1]


def test_geometric_mean_known_value():
    # sqrt(.5*.8) : sqrt(.5*.2) = .632 : .316 -> 2/3 : 1/3 after renormalising.
    out = geometric_mean_proba(_p([0.5, 0.5], [0.8, 0.2]))
    assert np.allclose(out, [[2 / 3, 1 / 3]])
    weighted = geometric_mean_proba(_p([0.5, 0.5], [0.8, 0.2]), weights=[0, 1])
    assert np.allclose(weighted, [[0.8, 0.2]])


def test_geometric_mean_handles_zeros_without_nan_or_inf():
    probas = np.array(
        [
            [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
            [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]],
        ]
    )
    with np.errstate(all="raise"):  # no log(0) or 0/0 anywhere
        out = geometric_mean_proba(probas)
    assert np.all(np.isfinite(out))
    assert np.allclose(out.sum(axis=1), 1.0)
    # A class that any model gave zero is vetoed relative to one nobody zeroed.
    assert out[1].argmax() == 2
    assert out[0, 2] < 1e-6
    assert make_ensemble("geometric").predict(probas).shape == (2,)


# ---------------------------------------------------------------------------- stacking
def _noise_oof(n=90, n_models=10, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    probas = rng.dirichlet(np.ones(n_classes), size=(n_models, n))
    y = rng.integers(0, n_classes, n)
    folds = np.arange(n) % 5
    return probas, y, folds


def test_stacking_oof_is_cross_val_predict_over_the_training_folds():
    probas, y, folds = _noise_oof()
    stack = StackingEnsemble("logistic", seed=0)
    got = stack.oof_predict_proba(probas, y, folds)
    x = probas.transpose(1, 0, 2).reshape(len(y), -1)
    expected = cross_val_predict(
        LogisticRegression(max_iter=2000, random_state=0),
        x,
        y,
        cv=PredefinedSplit(folds),
        method="predict_proba",
    )
    assert np.allclose(got, expected)


def test_stacking_oof_prediction_cannot_see_its_own_labels():
    probas, y, folds = _noise_oof()
    stack = StackingEnsemble("logistic")
    before = stack.oof_predict_proba(probas, y, folds)
    in_fold0 = folds == 0
    y_changed = y.copy()
    y_changed[in_fold0] = (y[in_fold0] + 1) % 3  # relabel fold 0 only
    after = stack.oof_predict_proba(probas, y_changed, folds)
    assert np.allclose(after[in_fold0], before[in_fold0])  # fold 0's predictions unaffected
    assert not np.allclose(after[~in_fold0], before[~in_fold0])  # the others learnt from it


def test_leaky_stacking_fit_would_score_higher_than_the_honest_oof_score():
    probas, y, folds = _noise_oof()  # features carry no information about y
    stack = StackingEnsemble("logistic")
    honest = (stack.oof_predict(probas, y, folds) == y).mean()
    leaky = (stack.fit(probas, y).predict(probas) == y).mean()
    assert leaky > honest + 0.2
    assert honest < 0.5  # near chance (1/3) for 3 classes


@pytest.mark.parametrize("model", ["logistic", "ridge"])
def test_stacking_learns_which_model_to_trust(model):
    rng = np.random.default_rng(1)
    n = 150
    y = rng.integers(0, 3, n)
    good = np.eye(3)[y] * 0.6 + 0.4 * rng.dirichlet(np.ones(3), n)
    bad = rng.dirichlet(np.ones(3), size=(2, n))
    probas = np.concatenate([bad, good[None]])
    stack = StackingEnsemble(model)
    oof = stack.oof_predict(probas, y, np.arange(n) % 5)
    assert (oof == y).mean() > 0.9
    proba = stack.fit(probas, y).predict_proba(probas[:, :7])
    assert proba.shape == (7, 3)
    assert np.allclose(proba.sum(axis=1), 1.0)


def test_stacking_handles_a_class_missing_from_the_labels():
    probas, y, folds = _noise_oof(n_classes=4)
    y = np.where(y == 3, 0, y)  # class 3 never occurs
    out = StackingEnsemble().oof_predict_proba(probas, y, folds)
    assert out.shape == (len(y), 4)
    assert np.all(out[:, 3] == 0)
    assert StackingEnsemble().fit(probas, y).predict_proba(probas).shape == (len(y), 4)


def test_stacking_must_be_fitted_before_predicting():
    with pytest.raises(TrainingError, match="fit"):
        StackingEnsemble().predict(np.full((1, 2, 2), 0.5))


def test_unknown_method_names_the_registry():
    with pytest.raises(ConfigError, match=r"unknown method.*mode"):
        make_ensemble("median")


# ---------------------------------------------------------------------------- OOF report
def _three_models(n=120, seed=3):
    """Three 70 %-accurate models with independent errors: the vote beats each of them."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    probas = []
    for _ in range(3):
        wrong = rng.random(n) < 0.3
        pred = np.where(wrong, (y + rng.integers(1, 3, n)) % 3, y)
        probas.append(0.1 + 0.7 * np.eye(3)[pred])
    return np.array(probas), y


def test_report_puts_every_method_next_to_every_single_model():
    probas, y = _three_models()
    report = score_ensembles(probas, y, model_names=["a", "b", "c"], folds=np.arange(len(y)) % 5)
    table = report.table
    methods = ["single", "mode", "mean", "geometric", "rank", "power", "select", "weighted"]
    assert table["name"].tolist() == ["a", "b", "c", *methods, "stacking"]
    assert table["kind"].tolist() == ["model"] * 3 + ["ensemble"] * 9
    assert list(table.columns[:3]) == ["name", "kind", "accuracy"]
    for i, name in enumerate("abc"):
        assert report.model_scores[name] == pytest.approx((probas[i].argmax(1) == y).mean())
    assert report.ensemble_scores["mode"] == pytest.approx((mode_vote(probas) == y).mean())
    assert report.ensemble_scores["mode"] > max(report.model_scores.values())
    assert report.method == "mode"  # the configured default
    assert report.ensemble_scores[report.best_method] == max(report.ensemble_scores.values())
    markdown = report.to_markdown()
    for name in table["name"]:
        assert f"| {name}" in markdown
    assert f"Best method on OOF (accuracy): **{report.best_method}**" in markdown


def test_best_resolves_to_the_top_scoring_method_and_metric_is_configurable():
    probas, y = _three_models()
    report = score_ensembles(
        probas, y, model_names=["a", "b", "c"], metric="f1_macro", method="best"
    )
    assert report.method == report.best_method
    scores = report.ensemble_scores
    assert scores[report.best_method] == max(scores.values())
    assert list(report.table.columns[:3]) == ["name", "kind", "f1_macro"]
    with pytest.raises(ConfigError, match="unknown method"):
        score_ensembles(probas, y, model_names=["a", "b", "c"], method="median")


def _write_run(run_dir, probas, y, folds, archs, classes, shuffle_second=False):
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = Config().override({"train.architectures": archs, "train.n_folds": 5})
    cfg.save(run_dir / "config.json")
    (run_dir / "classes.json").write_text(json.dumps(list(classes)))
    (run_dir / "oof").mkdir()
    names = [f"{i:03d}.wav" for i in range(len(y))]
    for k, arch in enumerate(archs):
        df = pd.DataFrame(probas[k], columns=list(classes))
        df.insert(0, "fold", folds)
        df.insert(0, "label", [classes[i] for i in y])
        df.insert(0, "filename", names)
        if shuffle_second and k == 1:
            df = df.iloc[::-1]
        df.to_csv(run_dir / "oof" / f"{arch}.csv", index=False)
    return cfg


def test_evaluate_ensembles_reads_the_run_folder_and_writes_the_report(tmp_path):
    probas, y = _three_models()
    folds = np.arange(len(y)) % 5
    classes = ("anger", "joy", "neutral")
    run = tmp_path / "run"
    _write_run(run, probas, y, folds, ["m1", "m2", "m3"], classes, shuffle_second=True)
    report = evaluate_ensembles(run)  # config from RUN/config.json
    expected = score_ensembles(probas, y, model_names=["m1", "m2", "m3"], folds=folds)
    assert report.model_scores == pytest.approx(expected.model_scores)
    assert report.ensemble_scores == pytest.approx(expected.ensemble_scores)
    saved = json.loads((run / "ensemble_report.json").read_text())
    assert [r["name"] for r in saved["rows"]] == report.table["name"].tolist()
    assert saved["best_method"] == report.best_method
    assert saved["submission_method"] == "mode"
    assert "m2" in (run / "ensemble_report.md").read_text()


def test_load_oof_errors_name_the_file(tmp_path):
    probas, y = _three_models(n=20)
    run = tmp_path / "run"
    _write_run(run, probas[:2], y, np.arange(20) % 5, ["m1", "m2"], ("a", "b", "c"))
    with pytest.raises(TrainingError, match="m3"):
        RunDir(run).load_oof(["m1", "m3"])
    df = pd.read_csv(run / "oof" / "m2.csv").drop(columns="b")
    df.to_csv(run / "oof" / "m2.csv", index=False)
    with pytest.raises(CheckpointError, match=r"m2\.csv.*missing column"):
        RunDir(run).load_oof(["m1", "m2"])
