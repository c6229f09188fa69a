"""The endgame for multi-label competitions: per-label vote, blends at thresholds, gather."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from emo_utils.cli import main
from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.endgame import (
    VOTE_RULES,
    blend_probabilities,
    blend_submission,
    decision_thresholds,
    gather_runs,
    label_set_agreement,
    vote_submissions,
)
from emo_utils.ensemble import (
    evaluate_ensembles,
    label_geometric_mean,
    label_mean,
    label_rank_mean,
)
from emo_utils.errors import CheckpointError, ConfigError, SubmissionError, TrainingError
from emo_utils.features.store import FeatureStore
from emo_utils.pipeline import predict_and_submit
from emo_utils.runs import RunDir

CLASSES = ("A", "B", "C")
TEST_NAMES = ["t1.wav", "t2.wav", "t3.wav", "t1.wav"]  # a duplicated name stays duplicated
TRAIN_NAMES = [f"x{i}.wav" for i in range(12)]
TRAIN_LISTS = ["A,B", "C", "A", "B,C", "A,C", "B"] * 2
ML = Config().override(
    {"data.task": "multilabel", "data.filename_column": "fname", "data.label_column": "labels"}
)
LABEL_LIST = ("fname", "labels")
PROBA_COLUMNS = ("fname", "C", "A", "B")  # one column per label, not in class order


def _folder(tmp_path, sample=LABEL_LIST, name="data"):
    folder = tmp_path / name
    folder.mkdir()
    pd.DataFrame({"fname": TRAIN_NAMES, "labels": TRAIN_LISTS}).to_csv(
        folder / "train.csv", index=False
    )
    pd.DataFrame({"fname": TEST_NAMES}).to_csv(folder / "test.csv", index=False)
    pd.DataFrame(columns=list(sample)).to_csv(folder / "sample_submission.csv", index=False)
    return folder


@pytest.fixture
def data(tmp_path):
    return _folder(tmp_path)


def _sub(path, lists, *, names=TEST_NAMES, proba=None):
    """A label-list submission (``lists``: one string per row) and its probabilities file."""
    pd.DataFrame({"fname": names, "labels": lists}).to_csv(path, index=False)
    if proba is not None:
        _proba(path.with_name(f"{path.stem}.probabilities.csv"), proba, names=names)
    return path


def _proba(path, values, *, names=TEST_NAMES, columns=CLASSES, id_column="fname"):
    df = pd.DataFrame(np.asarray(values, dtype=float), columns=list(columns))
    df.insert(0, id_column, names)
    df.to_csv(path, index=False)
    return path


def _lists(path, column="labels"):
    return pd.read_csv(path, dtype=str, keep_default_na=False)[column].tolist()


def _vote(paths, data, out, **kw):
    return vote_submissions(paths, data_dir=data, out=out, data_config=ML.data, **kw)


# ---------------------------------------------------------------------------- vote
def test_vote_per_label_majority_and_weights(tmp_path, data):
    s1 = _sub(tmp_path / "s1.csv", ["A,B", "", "C", "A"])
    s2 = _sub(tmp_path / "s2.csv", ["A", "B", "C,A", "B , A"])  # spaces around labels are fine
    s3 = _sub(tmp_path / "s3.csv", ["B,A,C", "B", "", "C"])
    out = tmp_path / "out" / "voted.csv"
    result = _vote([s1, s2, s3], data, out)
    # Row 0: A 3/3, B 2/3, C 1/3; row 1: B 2/3; row 2: C 2/3, A 1/3; row 3: A 2/3.
    assert _lists(out) == ["A,B", "B", "C", "A"]
    assert result.labels == [["A", "B"], ["B"], ["C"], ["A"]]
    assert result.label_kind == "multi"
    assert result.n_ties == 0
    assert list(pd.read_csv(out).columns) == list(LABEL_LIST)
    # Weight 3 on the third file: it alone is a strict majority (3/5 > 1/2) on every label.
    weighted = _vote([s1, s2, s3], data, out, weights=[1, 1, 3])
    assert weighted.labels == [["A", "B", "C"], ["B"], [], ["C"]]
    assert _lists(out)[2] == ""  # no label won: an empty label list
    with pytest.raises(ConfigError, match="one weight per model"):
        _vote([s1, s2, s3], data, out, weights=[1, 1])


def test_vote_ties_leave_the_label_out_without_every_probability_file(tmp_path, data):
    s1 = _sub(tmp_path / "s1.csv", ["A,B", "", "C", "A"])
    s2 = _sub(tmp_path / "s2.csv", ["A", "B", "", "A,C"])
    result = _vote([s1, s2], data, tmp_path / "v.csv")
    # 1 of 2 votes is exactly one half: B (row 0), B (row 1), C (row 2), C (row 3) are out.
    assert result.tie_break == "absent"
    assert result.n_ties == 4
    assert result.labels == [["A"], [], [], ["A"]]
    # The order of the files does not matter (unlike the single-label tie-break).
    assert _vote([s2, s1], data, tmp_path / "r.csv").labels == result.labels
    # A probabilities file beside one input only does not count.
    _proba(tmp_path / "s1.probabilities.csv", np.full((4, 3), 0.9))
    assert _vote([s1, s2], data, tmp_path / "v.csv").tie_break == "absent"
    # Weights can tie too: 2 against 1 + 1.
    s3 = _sub(tmp_path / "s3.csv", ["A", "", "", ""])
    tied = _vote([s1, s2, s3], data, tmp_path / "w.csv", weights=[2, 1, 1])
    assert tied.labels[0] == ["A"]  # B: 2 of 4 is a tie, out


def test_vote_ties_decided_by_the_weighted_mean_probability(tmp_path, data):
    # Columns A, B, C; only the tied cells' probabilities matter.
    p1 = [[0.9, 0.8, 0.1], [0.1, 0.2, 0.1], [0.1, 0.1, 0.9], [0.9, 0.1, 0.4]]
    p2 = [[0.9, 0.3, 0.1], [0.1, 0.6, 0.1], [0.1, 0.1, 0.2], [0.9, 0.1, 0.6]]
    s1 = _sub(tmp_path / "s1.csv", ["A,B", "", "C", "A"], proba=p1)
    s2 = _sub(tmp_path / "s2.csv", ["A", "B", "", "A,C"], proba=p2)
    result = _vote([s1, s2], data, tmp_path / "v.csv")
    assert result.tie_break == "probabilities"
    assert result.n_ties == 4
    # Row 0 B: mean 0.55 > 0.5, in; row 1 B: 0.4, out; row 2 C: 0.55, in; row 3 C: exactly
    # 0.5, out (the sum of p does not exceed the sum of 1 - p).
    assert result.labels == [["A", "B"], [], ["C"], ["A"]]
    assert _lists(tmp_path / "v.csv") == ["A,B", "", "C", "A"]
    assert _vote([s2, s1], data, tmp_path / "r.csv").labels == result.labels
    # Weights enter the mean too (a third file makes 2 : 1 + 1 a tie).
    s3 = _sub(tmp_path / "s3.csv", ["A", "", "", ""], proba=np.full((4, 3), 0.0))
    three = _vote([s1, s2, s3], data, tmp_path / "t.csv", weights=[2, 1, 1])
    # Row 0 B: share 2/4 (tie); weighted mean (2*0.8 + 0.3 + 0) / 4 = 0.475: out.
    assert three.labels[0] == ["A"]


def test_vote_probability_column_submissions(tmp_path):
    data = _folder(tmp_path, sample=PROBA_COLUMNS)
    rows = {
        "s1": [[0.1, 0.9, 0.5], [0.2, 0.1, 0.1], [0.9, 0.1, 0.1], [0.5, 0.5, 0.5]],
        "s2": [[0.2, 0.7, 0.4], [0.8, 0.3, 0.9], [0.6, 0.2, 0.1], [0.1, 0.4, 0.6]],
        "s3": [[0.6, 0.2, 0.1], [0.7, 0.2, 0.8], [0.3, 0.2, 0.1], [0.5, 0.5, 0.4]],
    }
    paths = [_proba(tmp_path / f"{k}.csv", v, columns=PROBA_COLUMNS[1:]) for k, v in rows.items()]
    out = tmp_path / "v.csv"
    result = _vote(paths, data, out)
    sub = pd.read_csv(out)
    assert list(sub.columns) == list(PROBA_COLUMNS)  # the sample submission's order
    assert sub["fname"].tolist() == TEST_NAMES
    # Columns C, A, B; a value >= 0.5 is a vote (row 3 of s1: three votes at exactly 0.5).
    shares = np.array([[1, 2, 1], [2, 0, 2], [2, 0, 0], [2, 2, 2]]) / 3
    np.testing.assert_allclose(sub[["C", "A", "B"]].to_numpy(), shares)
    assert result.labels == [["A"], ["B", "C"], ["C"], ["A", "B", "C"]]
    # A value outside [0, 1] in a label column is refused, naming the file and the row.
    bad = _proba(tmp_path / "bad.csv", [[0.1, 1.5, 0.5], *rows["s2"][1:]], columns="CAB")
    with pytest.raises(SubmissionError, match=r"bad\.csv: label columns.*row\(s\) \[0\]"):
        _vote([paths[0], bad], data, out)
    # Columns other than the sample submission's are refused.
    other = _proba(tmp_path / "other.csv", rows["s2"], columns=CLASSES)
    with pytest.raises(SubmissionError, match=r"other\.csv: columns \['fname', 'A', 'B', 'C'\]"):
        _vote([paths[0], other], data, out)


def test_vote_refuses_another_id_order_unknown_labels_and_wrong_separator(tmp_path, data):
    s1 = _sub(tmp_path / "s1.csv", ["A,B", "", "C", "A"])
    names = ["t1.wav", "t3.wav", "t2.wav", "t1.wav"]
    swapped = _sub(tmp_path / "swapped.csv", ["A", "B", "C", "A"], names=names)
    with pytest.raises(SubmissionError, match=r"swapped\.csv: id 't3\.wav' at row 1"):
        _vote([s1, swapped], data, tmp_path / "v.csv")
    unknown = _sub(tmp_path / "unknown.csv", ["A", "B,Dog", "C", "A"])
    with pytest.raises(SubmissionError, match=r"unknown\.csv: labels \['Dog'\].*first at row 1"):
        _vote([s1, unknown], data, tmp_path / "v.csv")
    spaces = _sub(tmp_path / "spaces.csv", ["A B", "B", "C", "A"])
    with pytest.raises(SubmissionError, match=r"\['A B'\].*data\.label_separator ','"):
        _vote([s1, spaces], data, tmp_path / "v.csv")
    assert not (tmp_path / "v.csv").exists()
    # With the separator configured, space-separated lists are read and written.
    spaced = ML.override({"data.label_separator": " "}).data
    s2 = _sub(tmp_path / "s2.csv", ["A B", "B", "C", "A"])
    s3 = _sub(tmp_path / "s3.csv", ["B A", "", "C", "B"])
    result = vote_submissions([s2, s3], data_dir=data, out=tmp_path / "v.csv", data_config=spaced)
    assert _lists(tmp_path / "v.csv") == ["A B", "", "C", ""]
    assert result.n_ties == 3


def test_multilabel_vote_rule_is_a_registry_entry():
    assert set(VOTE_RULES) == {"single", "multi"}
    votes = np.array([[[1, 0]], [[1, 1]]], dtype=bool)
    decisions, shares, ties = VOTE_RULES["multi"].vote(
        votes, weights=np.ones(2), probabilities=None
    )
    assert decisions.tolist() == [[1, 0]]
    assert shares.tolist() == [[1.0, 0.5]]
    assert ties == 1


def test_agreement_report_jaccard_and_identical_rows(tmp_path, data):
    s1 = _sub(tmp_path / "s1.csv", ["A,B", "", "C", "A"])
    s2 = _sub(tmp_path / "s2.csv", ["A", "", "A,B,C", "B"])
    s3 = _sub(tmp_path / "s3.csv", ["A,B", "", "C", "A"])
    result = _vote([s1, s2, s3], data, tmp_path / "v.csv")
    # s1 vs s2, per row: 1/2, 1 (both empty), 1/3, 0 -> mean 11/24; one identical row of 4.
    assert result.agreement.loc["s1.csv", "s2.csv"] == pytest.approx(11 / 24)
    assert result.identical.loc["s1.csv", "s2.csv"] == 0.25
    assert result.agreement.loc["s1.csv", "s3.csv"] == 1.0
    assert result.identical.loc["s3.csv", "s1.csv"] == 1.0
    assert np.allclose(result.agreement.to_numpy(), result.agreement.to_numpy().T)
    text = result.describe()
    assert "mean Jaccard similarity" in text
    assert "share of identical rows" in text
    assert "| s1.csv | 1.0000 | 0.4583 | 1.0000 |" in text
    # One label per row: both matrices are the single-label agreement.
    one_hot = np.eye(3, dtype=bool)[np.array([[0, 1, 2], [0, 2, 2]])]
    jaccard, identical = label_set_agreement(one_hot, ["x", "y"])
    assert jaccard.loc["x", "y"] == identical.loc["x", "y"] == pytest.approx(2 / 3)


# ---------------------------------------------------------------------------- blend
P1 = [[0.9, 0.2, 0.4], [0.3, 0.8, 0.1], [0.1, 0.1, 0.7], [0.6, 0.4, 0.5]]
P2 = [[0.7, 0.6, 0.2], [0.1, 0.4, 0.3], [0.2, 0.5, 0.9], [0.2, 0.9, 0.5]]


@pytest.mark.parametrize(
    ("method", "fn"),
    [("mean", label_mean), ("geometric", label_geometric_mean), ("rank", label_rank_mean)],
)
def test_multilabel_blends_are_the_per_label_ensembles(tmp_path, method, fn):
    f1, f2 = _proba(tmp_path / "p1.csv", P1), _proba(tmp_path / "p2.csv", P2)
    out = blend_probabilities([f1, f2], method=method, weights=[3, 1], label_kind="multi")
    expected = fn(np.array([P1, P2]), weights=[3, 1])
    np.testing.assert_allclose(out[list(CLASSES)].to_numpy(), expected, rtol=1e-12)
    if method == "geometric":  # label by label: rows are not renormalised
        assert not np.allclose(out[list(CLASSES)].sum(axis=1), 1.0)


def test_multilabel_blend_refuses_values_above_one_and_unknown_kinds(tmp_path):
    f1 = _proba(tmp_path / "p1.csv", P1)
    big = _proba(tmp_path / "big.csv", [[1.2, 0.1, 0.1], *P2[1:]])
    with pytest.raises(SubmissionError, match=r"big\.csv: .*above 1.*row\(s\) \[0\]"):
        blend_probabilities([f1, big], label_kind="multi")
    blend_probabilities([f1, big])  # single-label files need only be non-negative
    with pytest.raises(ConfigError, match="no blends for label kind 'pairs'"):
        blend_probabilities([f1, f1], label_kind="pairs")


def _thresholds_json(run_path, values):
    run_path.mkdir(parents=True, exist_ok=True)
    (run_path / "thresholds.json").write_text(
        json.dumps({"classes": list(CLASSES), "thresholds": values})
    )
    return run_path / "thresholds.json"


def test_blend_submission_decides_at_half_or_at_a_runs_thresholds(tmp_path, data):
    f1, f2 = _proba(tmp_path / "p1.csv", P1), _proba(tmp_path / "p2.csv", P2)
    # Mean: [[0.8, 0.4, 0.3], [0.2, 0.6, 0.2], [0.15, 0.3, 0.8], [0.4, 0.65, 0.5]].
    result = blend_submission([f1, f2], data_dir=data, out=tmp_path / "s.csv", data_config=ML.data)
    assert _lists(result.submission) == ["A", "B", "C", "B,C"]  # 0.5 reaches 0.5
    assert result.thresholds.tolist() == [0.5, 0.5, 0.5]
    assert result.thresholds_from == "default"
    proba = pd.read_csv(result.probabilities)
    assert list(proba.columns) == ["fname", *CLASSES]
    np.testing.assert_allclose(proba[list(CLASSES)], (np.array(P1) + np.array(P2)) / 2)

    tuned = _thresholds_json(
        tmp_path / "run", {"mean": [0.35, 0.7, 0.25], "resnet18": [0.1, 0.1, 0.1]}
    )
    result = blend_submission(
        [f1, f2], data_dir=data, out=tmp_path / "t.csv", data_config=ML.data, thresholds=tuned
    )
    assert _lists(result.submission) == ["A,C", "", "C", "A,C"]
    assert result.thresholds_from == f"{tuned}[mean]"
    assert "thresholds [0.35, 0.7, 0.25]" in result.describe()
    # Another entry, the run folder instead of the file, and a missing entry.
    keyed = blend_submission(
        [f1, f2],
        data_dir=data,
        out=tmp_path / "k.csv",
        data_config=ML.data,
        thresholds=tmp_path / "run",
        thresholds_key="resnet18",
    )
    assert _lists(keyed.submission) == ["A,B,C", "A,B,C", "A,B,C", "A,B,C"]
    with pytest.raises(ConfigError, match=r"'rank'.*holds \['mean', 'resnet18'\]"):
        blend_submission(
            [f1, f2],
            data_dir=data,
            out=tmp_path / "r.csv",
            method="rank",
            data_config=ML.data,
            thresholds=tuned,
        )
    other = _thresholds_json(tmp_path / "other", {"mean": [0.5, 0.5]})
    data_other = json.loads(other.read_text())
    other.write_text(json.dumps({**data_other, "classes": ["A", "B"]}))
    with pytest.raises(CheckpointError, match="made for other classes"):
        blend_submission(
            [f1, f2], data_dir=data, out=tmp_path / "o.csv", data_config=ML.data, thresholds=other
        )
    assert not (tmp_path / "r.csv").exists()


def test_blend_submission_probability_columns_and_single_label_thresholds(tmp_path):
    data = _folder(tmp_path, sample=PROBA_COLUMNS)
    f1, f2 = _proba(tmp_path / "p1.csv", P1), _proba(tmp_path / "p2.csv", P2)
    result = blend_submission(
        [f1, f2], data_dir=data, out=tmp_path / "s.csv", method="geometric", data_config=ML.data
    )
    sub = pd.read_csv(result.submission)
    assert list(sub.columns) == list(PROBA_COLUMNS)
    expected = label_geometric_mean(np.array([P1, P2]))
    np.testing.assert_allclose(sub[list(CLASSES)].to_numpy(), expected)
    # Thresholds are a multi-label notion.
    single = _folder(tmp_path, sample=("fname", "labels"), name="single")
    with pytest.raises(ConfigError, match="apply to multi-label blends"):
        blend_submission(
            [f1, f2],
            data_dir=single,
            out=tmp_path / "x.csv",
            data_config=ML.override({"data.task": "classification"}).data,
            thresholds=0.3,
        )


def test_decision_thresholds_shapes():
    t, source = decision_thresholds(0.3, classes=CLASSES, key="mean")
    assert t.tolist() == [0.3, 0.3, 0.3]
    assert source == "given"
    with pytest.raises(ConfigError, match="one per class"):
        decision_thresholds([0.3, 0.4], classes=CLASSES, key="mean")
    with pytest.raises(ConfigError, match=r"thresholds\.json"):
        decision_thresholds("run/other.json", classes=CLASSES, key="mean")


# ---------------------------------------------------------------------------- gather
N_FOLDS = 2


def _ml_run(root, name, archs, *, folds=None, seed=0):
    """A trained-looking multi-label run folder."""
    run = RunDir(root / name)
    run.path.mkdir(parents=True)
    ML.override({"train.architectures": list(archs), "train.n_folds": N_FOLDS}).save(
        run.config_file
    )
    run.classes_file.write_text(json.dumps(list(CLASSES)))
    folds = folds if folds is not None else np.repeat([0, 1], 6)
    labels = [";".join(sorted(t.split(","))) for t in TRAIN_LISTS]
    fold_df = pd.DataFrame({"filename": TRAIN_NAMES, "label": labels, "fold": folds})
    fold_df.to_csv(run.folds_file, index=False)
    rng = np.random.default_rng(seed)
    hot = np.array([[c in t.split(",") for c in CLASSES] for t in TRAIN_LISTS], dtype=float)
    for arch in archs:
        oof = fold_df.copy()
        oof[list(CLASSES)] = np.clip(0.7 * hot + 0.3 * rng.random(hot.shape), 0, 1)
        run.oof_dir.mkdir(exist_ok=True)
        oof.to_csv(run.oof_file(arch), index=False)
        run.predictions_dir.mkdir(exist_ok=True)
        _proba(run.predictions_file(arch), rng.random((4, 3)), id_column="filename")
        for k in range(N_FOLDS):
            run.fold_dir(arch, k).mkdir(parents=True)
            run.fold_file(arch, k, RunDir.DONE_FILE).write_text("{}")
            run.fold_file(arch, k, RunDir.MODEL_FILE).write_bytes(rng.bytes(64))
    return run


def test_gather_multilabel_runs_then_ensembles_and_predict(tmp_path, data):
    a = _ml_run(tmp_path, "kernel_a", ["resnet18"], seed=1)
    b = _ml_run(tmp_path, "kernel_b", ["resnet34"], seed=2)
    target = gather_runs([a, b], into=tmp_path / "gathered")
    assert target.read_config().data.task == "multilabel"
    assert target.folds_file.read_bytes() == a.folds_file.read_bytes()
    report = evaluate_ensembles(target)
    assert set(report.model_scores) == {"resnet18", "resnet34"}
    assert set(target.read_thresholds(CLASSES)) >= {"resnet18", "resnet34", "mean"}
    comp = load_competition(data, ML.data)
    store = FeatureStore.from_arrays(
        TEST_NAMES, [np.zeros((1, 2, 4), np.float32)] * len(TEST_NAMES), window_frames=4
    )
    outcome = predict_and_submit(
        comp, store, run_dir=target, submissions_dir=tmp_path / "subs", reuse_predictions=True
    )
    sub = pd.read_csv(outcome.submission, dtype=str, keep_default_na=False)
    assert list(sub.columns) == list(LABEL_LIST)
    assert sub["fname"].tolist() == TEST_NAMES
    # Multi-label runs with other folds are refused like single-label ones.
    c = _ml_run(tmp_path, "kernel_c", ["resnet50"], folds=np.tile([0, 1], 6))
    with pytest.raises(TrainingError, match="OOF would leak: folds differ"):
        gather_runs([a, c], into=tmp_path / "g2")


# ---------------------------------------------------------------------------- CLI
def test_cli_multilabel_vote_blend_round_trip(tmp_path, data, capsys):
    a = _ml_run(tmp_path, "kernel_a", ["resnet18"], seed=1)
    b = _ml_run(tmp_path, "kernel_b", ["resnet34"], seed=2)
    g = tmp_path / "g"
    assert main(["gather", str(a.path), str(b.path), "--into", str(g)]) == 0
    evaluate_ensembles(g)  # thresholds.json, as the predict stage writes it
    capsys.readouterr()

    # blend: the config (multilabel, fname/labels) comes from the thresholds' run folder.
    preds = [str(g / "predictions" / f"{arch}.csv") for arch in ("resnet18", "resnet34")]
    blended = tmp_path / "blend.csv"
    args = ["blend", *preds, "--data", str(data), "--out", str(blended)]
    assert main([*args, "--thresholds", str(g / "thresholds.json")]) == 0
    assert "thresholds [" in capsys.readouterr().out
    mean = label_mean(
        np.stack([RunDir(g).load_predictions([x])[x] for x in ("resnet18", "resnet34")])
    )
    cut = RunDir(g).read_thresholds(CLASSES)["mean"]
    expected = [",".join(c for c, d in zip(CLASSES, row, strict=True) if d) for row in mean >= cut]
    assert _lists(blended) == expected
    # No run config there: the default config (other column names) fails with an error.
    assert main([*args, "--thresholds", str(tmp_path / "nowhere" / "thresholds.json")]) == 2
    capsys.readouterr()

    # vote: the blend plus two label-list files; config from --set, then from --run.
    s1 = _sub(tmp_path / "s1.csv", ["A,B", "", "C", "A"])
    s2 = _sub(tmp_path / "s2.csv", ["A", "B", "C", "A,C"])
    voted = tmp_path / "voted.csv"
    sets = [
        "--set",
        "data.task=multilabel",
        "--set",
        "data.filename_column=fname",
        "--set",
        "data.label_column=labels",
    ]
    vote = ["vote", str(s1), str(s2), str(blended), "--data", str(data), "--out", str(voted)]
    assert main([*vote, *sets]) == 0
    report = capsys.readouterr().out
    assert "mean Jaccard similarity" in report
    assert "share of identical rows" in report
    first = _lists(voted)
    assert main([*vote, "--run", str(g)]) == 0
    assert _lists(voted) == first
    assert main([*vote, "--run", str(g), "--preset", "default"]) == 2
    assert "give either --run or --config/--preset" in capsys.readouterr().err
    # The default (single-label) config reads the label lists as unknown labels.
    assert (
        main([*vote, "--set", "data.filename_column=fname", "--set", "data.label_column=labels"])
        == 2
    )
