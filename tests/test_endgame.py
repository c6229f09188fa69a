"""The endgame: voting over submission files, blending probability files, gathering runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from emo_utils.cli import main
from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.endgame import (
    agreement_matrix,
    blend_probabilities,
    blend_submission,
    gather_runs,
    rank_mean,
    vote_submissions,
)
from emo_utils.ensemble import evaluate_ensembles
from emo_utils.errors import ConfigError, SubmissionError, TrainingError
from emo_utils.pipeline import predict_and_submit
from emo_utils.runs import RunDir

CLASSES = ("anger", "joy", "neutral")
TEST_NAMES = ["a.wav", "b.wav", "c.wav", "a.wav"]  # a duplicated name stays duplicated
TRAIN_NAMES = [f"t{i}.wav" for i in range(12)]
TRAIN_LABELS = [CLASSES[i % 3] for i in range(12)]


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    pd.DataFrame({"filename": TRAIN_NAMES, "emotion": TRAIN_LABELS}).to_csv(
        folder / "train.csv", index=False
    )
    pd.DataFrame({"filename": TEST_NAMES}).to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"filename": TEST_NAMES, "emotion": "joy"}).to_csv(
        folder / "sample_submission.csv", index=False
    )
    return folder


def _sub(path, labels, *, names=TEST_NAMES, columns=("filename", "emotion"), proba=None):
    pd.DataFrame({columns[0]: names, columns[1]: labels}).to_csv(path, index=False)
    if proba is not None:
        _proba(path.with_name(f"{path.stem}.probabilities.csv"), proba, names=names)
    return path


def _proba(path, values, *, names=TEST_NAMES, columns=CLASSES, id_column="filename"):
    df = pd.DataFrame(np.asarray(values, dtype=float), columns=list(columns))
    df.insert(0, id_column, names)
    df.to_csv(path, index=False)
    return path


def _read_labels(path):
    return pd.read_csv(path, dtype=str)["emotion"].tolist()


# ---------------------------------------------------------------------------- vote
def test_vote_majority_per_row_and_weights(tmp_path, data):
    s1 = _sub(tmp_path / "s1.csv", ["anger", "joy", "joy", "neutral"])
    s2 = _sub(tmp_path / "s2.csv", ["anger", "neutral", "joy", "joy"])
    s3 = _sub(tmp_path / "s3.csv", ["joy", "neutral", "anger", "joy"])
    out = tmp_path / "out" / "voted.csv"
    result = vote_submissions([s1, s2, s3], data_dir=data, out=out)
    assert _read_labels(out) == ["anger", "neutral", "joy", "joy"]
    assert result.labels == ["anger", "neutral", "joy", "joy"]
    assert result.n_ties == 0
    # Weight 3 on the third file outvotes the other two on every row.
    vote_submissions([s1, s2, s3], data_dir=data, out=out, weights=[1, 1, 3])
    assert _read_labels(out) == ["joy", "neutral", "anger", "joy"]
    with pytest.raises(ConfigError, match="one weight per model"):
        vote_submissions([s1, s2, s3], data_dir=data, out=out, weights=[1, 1])


def test_vote_ties_broken_by_probabilities(tmp_path, data):
    # Row 1 is tied joy/neutral; the probabilities favour the second file's neutral.
    p1 = [[0.8, 0.1, 0.1], [0.1, 0.5, 0.4], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]
    p2 = [[0.8, 0.1, 0.1], [0.0, 0.1, 0.9], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]
    s1 = _sub(tmp_path / "s1.csv", ["anger", "joy", "joy", "neutral"], proba=p1)
    s2 = _sub(tmp_path / "s2.csv", ["anger", "neutral", "joy", "neutral"], proba=p2)
    result = vote_submissions([s1, s2], data_dir=data, out=tmp_path / "v.csv")
    assert result.tie_break == "probabilities"
    assert result.n_ties == 1
    assert _read_labels(tmp_path / "v.csv") == ["anger", "neutral", "joy", "neutral"]
    # The probabilities decide, not the order: reversed, the result is the same.
    reversed_ = vote_submissions([s2, s1], data_dir=data, out=tmp_path / "r.csv")
    assert reversed_.labels == result.labels


def test_vote_ties_broken_by_order_without_probability_files(tmp_path, data):
    s1 = _sub(tmp_path / "s1.csv", ["anger", "joy", "joy", "neutral"])
    s2 = _sub(tmp_path / "s2.csv", ["anger", "neutral", "joy", "anger"])
    result = vote_submissions([s1, s2], data_dir=data, out=tmp_path / "v.csv")
    assert result.tie_break == "order"
    assert result.n_ties == 2
    assert result.labels == ["anger", "joy", "joy", "neutral"]  # the first file wins ties
    again = vote_submissions([s2, s1], data_dir=data, out=tmp_path / "v.csv")
    assert again.labels == ["anger", "neutral", "joy", "anger"]
    # A probabilities file beside only one input does not count: the order decides.
    _proba(tmp_path / "s2.probabilities.csv", np.eye(3)[[0, 2, 1, 0]])
    assert vote_submissions([s1, s2], data_dir=data, out=tmp_path / "v.csv").tie_break == "order"


def test_vote_three_way_tie_goes_to_the_earliest_file_among_the_tied(tmp_path, data):
    s1 = _sub(tmp_path / "s1.csv", ["anger", "joy", "joy", "neutral"])
    s2 = _sub(tmp_path / "s2.csv", ["joy", "joy", "joy", "joy"])
    s3 = _sub(tmp_path / "s3.csv", ["joy", "anger", "joy", "anger"])
    # Row 3: neutral (w=1), joy (w=2), anger (w=2): joy and anger tie, s2 (joy) is earlier.
    result = vote_submissions(
        [s1, s2, s3], data_dir=data, out=tmp_path / "v.csv", weights=[1, 2, 2]
    )
    assert result.labels[3] == "joy"
    assert result.labels[0] == "joy"  # anger 1 < joy 4


def test_vote_refuses_another_id_order_naming_file_and_row(tmp_path, data):
    s1 = _sub(tmp_path / "s1.csv", ["anger", "joy", "joy", "neutral"])
    names = ["a.wav", "b.wav", "a.wav", "c.wav"]
    s2 = _sub(tmp_path / "swapped.csv", ["anger", "joy", "joy", "neutral"], names=names)
    with pytest.raises(SubmissionError, match=r"swapped\.csv: id 'a\.wav' at row 2"):
        vote_submissions([s1, s2], data_dir=data, out=tmp_path / "v.csv")
    short = _sub(tmp_path / "short.csv", ["anger"] * 3, names=TEST_NAMES[:3])
    with pytest.raises(SubmissionError, match=r"short\.csv: has 3 rows; test\.csv has 4"):
        vote_submissions([s1, short], data_dir=data, out=tmp_path / "v.csv")
    assert not (tmp_path / "v.csv").exists()


def test_vote_refuses_other_columns_and_unknown_labels(tmp_path, data):
    s1 = _sub(tmp_path / "s1.csv", ["anger", "joy", "joy", "neutral"])
    s2 = _sub(tmp_path / "cols.csv", ["anger"] * 4, columns=("filename", "label"))
    with pytest.raises(SubmissionError, match=r"cols\.csv: columns \['filename', 'label'\]"):
        vote_submissions([s1, s2], data_dir=data, out=tmp_path / "v.csv")
    s3 = _sub(tmp_path / "bad.csv", ["anger", "joy", "calm", "joy"])
    with pytest.raises(SubmissionError, match=r"bad\.csv: labels \['calm'\]"):
        vote_submissions([s1, s3], data_dir=data, out=tmp_path / "v.csv")
    with pytest.raises(SubmissionError, match="two or more"):
        vote_submissions([s1], data_dir=data, out=tmp_path / "v.csv")


def test_agreement_matrix_reports_pairwise_shares(tmp_path, data):
    s1 = _sub(tmp_path / "s1.csv", ["anger", "joy", "joy", "neutral"])
    s2 = _sub(tmp_path / "s2.csv", ["anger", "neutral", "joy", "anger"])
    s3 = _sub(tmp_path / "s3.csv", ["anger", "joy", "joy", "neutral"])
    result = vote_submissions([s1, s2, s3], data_dir=data, out=tmp_path / "v.csv")
    assert result.agreement.loc["s1.csv", "s2.csv"] == 0.5
    assert result.agreement.loc["s1.csv", "s3.csv"] == 1.0
    assert np.allclose(result.agreement.to_numpy(), result.agreement.to_numpy().T)
    assert "| s2.csv | 0.5" in result.describe()
    m = agreement_matrix(pd.DataFrame({"x": list("abc"), "y": list("abd")}))
    assert m.loc["x", "y"] == pytest.approx(2 / 3)


# ---------------------------------------------------------------------------- blend
P1 = [[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2]]
P2 = [[0.5, 0.4, 0.1], [0.1, 0.3, 0.6], [0.3, 0.3, 0.4], [0.1, 0.8, 0.1]]


@pytest.mark.parametrize("method", ["mean", "geometric", "rank"])
def test_blend_methods_match_hand_computed_values(tmp_path, method):
    f1, f2 = _proba(tmp_path / "p1.csv", P1), _proba(tmp_path / "p2.csv", P2)
    out = blend_probabilities([f1, f2], method=method, weights=[3, 1])
    a, b = np.array(P1), np.array(P2)
    if method == "mean":
        expected = (3 * a + b) / 4
    elif method == "geometric":
        g = np.exp((3 * np.log(a) + np.log(b)) / 4)
        expected = g / g.sum(axis=1, keepdims=True)
    else:  # ranks per column over the 4 rows, scaled to [0, 1], ties averaged
        ra = np.array([[3, 1, 0], [1, 3, 2], [0, 0, 3], [2, 2, 1]]) / 3
        rb = np.array([[3, 2, 0.5], [0.5, 0.5, 3], [2, 0.5, 2], [0.5, 3, 0.5]]) / 3
        expected = (3 * ra + rb) / 4
    assert list(out.columns) == ["filename", *CLASSES]
    assert out["filename"].tolist() == TEST_NAMES
    np.testing.assert_allclose(out[list(CLASSES)].to_numpy(), expected, rtol=1e-12)


def test_rank_mean_single_row_and_ties():
    assert rank_mean(np.array([[[0.2, 0.8]]])).tolist() == [[0.5, 0.5]]
    assert rank_mean(np.array([[[0.5], [0.5]]])).tolist() == [[0.5], [0.5]]


def test_blend_refuses_mismatched_files(tmp_path):
    f1 = _proba(tmp_path / "p1.csv", P1)
    cols = _proba(tmp_path / "cols.csv", P2, columns=("anger", "neutral", "joy"))
    with pytest.raises(SubmissionError, match=r"cols\.csv: columns"):
        blend_probabilities([f1, cols])
    order = _proba(tmp_path / "order.csv", P2, names=["a.wav", "c.wav", "b.wav", "a.wav"])
    with pytest.raises(SubmissionError, match=r"order\.csv: id 'c\.wav' at row 1"):
        blend_probabilities([f1, order])
    nan = _proba(tmp_path / "nan.csv", [[0.5, np.nan, 0.5], *P2[1:]])
    with pytest.raises(SubmissionError, match=r"nan\.csv: missing.*row\(s\) \[0\]"):
        blend_probabilities([f1, nan])
    with pytest.raises(ConfigError, match="unknown blend"):
        blend_probabilities([f1, f1], method="median")


def test_blend_submission_writes_argmax_labels_and_probabilities(tmp_path, data):
    f1, f2 = _proba(tmp_path / "p1.csv", P1), _proba(tmp_path / "p2.csv", P2)
    result = blend_submission([f1, f2], data_dir=data, out=tmp_path / "s" / "blend.csv")
    assert _read_labels(result.submission) == ["anger", "neutral", "neutral", "joy"]
    proba = pd.read_csv(tmp_path / "s" / "blend.probabilities.csv")
    np.testing.assert_allclose(proba[list(CLASSES)], (np.array(P1) + np.array(P2)) / 2)
    other = _proba(tmp_path / "other.csv", P1, names=["x.wav", "b.wav", "c.wav", "a.wav"])
    with pytest.raises(SubmissionError, match=r"id 'x\.wav' at row 0 differs from test\.csv"):
        blend_submission([other, other], data_dir=data, out=tmp_path / "x.csv")


# ---------------------------------------------------------------------------- gather
N_FOLDS = 2


def _hand_run(root, name, archs, *, folds=None, classes=CLASSES, overrides=None, seed=0):
    """A trained-looking run folder: config, classes, folds, OOF, predictions, fold files."""
    run = RunDir(root / name)
    run.path.mkdir(parents=True)
    Config().override(
        {"train.architectures": list(archs), "train.n_folds": N_FOLDS, **(overrides or {})}
    ).save(run.config_file)
    run.classes_file.write_text(json.dumps(list(classes)))
    folds = folds if folds is not None else np.arange(len(TRAIN_NAMES)) % N_FOLDS
    fold_df = pd.DataFrame({"filename": TRAIN_NAMES, "label": TRAIN_LABELS, "fold": folds})
    fold_df.to_csv(run.folds_file, index=False)
    rng = np.random.default_rng(seed)
    for arch in archs:
        oof = fold_df.copy()
        oof[list(CLASSES)] = rng.dirichlet(np.ones(3), len(oof))
        run.oof_dir.mkdir(exist_ok=True)
        oof.to_csv(run.oof_file(arch), index=False)
        run.predictions_dir.mkdir(exist_ok=True)
        _proba(run.predictions_file(arch), rng.dirichlet(np.ones(3), len(TEST_NAMES)))
        for k in range(N_FOLDS):
            run.fold_dir(arch, k).mkdir(parents=True)
            run.fold_file(arch, k, RunDir.DONE_FILE).write_text("{}")
            run.fold_file(arch, k, RunDir.MODEL_FILE).write_bytes(rng.bytes(64))
    return run


def test_gather_copies_same_fold_runs_so_ensembles_and_predict_work(tmp_path, data):
    a = _hand_run(tmp_path, "kernel_a", ["resnet18"], seed=1)
    b = _hand_run(tmp_path, "kernel_b", ["efficientnet_b0", "resnet34"], seed=2)
    target = gather_runs([a, b], into=tmp_path / "gathered")
    archs = ["resnet18", "efficientnet_b0", "resnet34"]
    assert list(target.read_config().train.architectures) == archs
    assert target.folds_file.read_bytes() == a.folds_file.read_bytes()
    assert target.read_classes() == CLASSES
    for arch, src in (("resnet18", a), ("resnet34", b)):
        for f in src.architecture_files(arch):
            copy = target.path / f.relative_to(src.path)
            assert copy.is_file()
            assert not copy.is_symlink()
            assert copy.read_bytes() == f.read_bytes()
    assert json.loads(target.gathered_file.read_text())["resnet34"] == str(b.path.resolve())
    # OOF-based selection across the runs, and predict from the copied predictions.
    report = evaluate_ensembles(target)
    assert set(report.model_scores) == set(archs)
    comp = load_competition(data)
    from emo_utils.features.store import FeatureStore

    store = FeatureStore.from_arrays(
        TEST_NAMES, [np.zeros((1, 2, 4), np.float32)] * len(TEST_NAMES), window_frames=4
    )
    outcome = predict_and_submit(
        comp, store, run_dir=target, submissions_dir=tmp_path / "subs", reuse_predictions=True
    )
    assert set(outcome.probabilities) == set(archs)
    assert outcome.submission.name.startswith("gathered__")
    # Gathering again refreshes the copies.
    assert gather_runs([a, b], into=tmp_path / "gathered").path == target.path


def test_gather_refuses_runs_with_other_folds(tmp_path):
    a = _hand_run(tmp_path, "kernel_a", ["resnet18"])
    b = _hand_run(tmp_path, "kernel_b", ["resnet34"], folds=(np.arange(12) + 1) % N_FOLDS)
    with pytest.raises(TrainingError, match=r"OOF would leak: folds differ") as info:
        gather_runs([a, b], into=tmp_path / "gathered")
    assert str(b.folds_file) in str(info.value)
    assert str(a.folds_file) in str(info.value)
    assert not (tmp_path / "gathered").exists()


def test_gather_refuses_duplicate_architectures_classes_and_settings(tmp_path):
    a = _hand_run(tmp_path, "kernel_a", ["resnet18"])
    dup = _hand_run(tmp_path, "kernel_dup", ["resnet18"])
    with pytest.raises(TrainingError, match=r"'resnet18' is in both"):
        gather_runs([a, dup], into=tmp_path / "g")
    other = _hand_run(tmp_path, "kernel_cls", ["resnet34"], classes=("anger", "joy", "sad"))
    with pytest.raises(TrainingError, match=r"classes \['anger', 'joy', 'sad'\] differ"):
        gather_runs([a, other], into=tmp_path / "g")
    audio = _hand_run(tmp_path, "kernel_sr", ["resnet34"], overrides={"audio.sample_rate": 16000})
    with pytest.raises(TrainingError, match=r"audio settings differ \(\['sample_rate'\]\)"):
        gather_runs([a, audio], into=tmp_path / "g")
    # Per-architecture training settings may differ.
    epochs = _hand_run(tmp_path, "kernel_ep", ["resnet34"], overrides={"train.epochs": 3})
    assert gather_runs([a, epochs], into=tmp_path / "g").read_config().train.epochs == 10
    with pytest.raises(TrainingError, match="must not be one of the inputs"):
        gather_runs([a, epochs], into=a.path)


def test_gather_refuses_an_unfinished_run(tmp_path):
    a = _hand_run(tmp_path, "kernel_a", ["resnet18"])
    b = _hand_run(tmp_path, "kernel_b", ["resnet34"])
    b.fold_file("resnet34", 1, RunDir.DONE_FILE).unlink()
    with pytest.raises(TrainingError, match=r"unfinished folds \{'resnet34': \[1\]\}"):
        gather_runs([a, b], into=tmp_path / "g")


# ---------------------------------------------------------------------------- CLI
def test_cli_vote_blend_and_gather_end_to_end(tmp_path, data, capsys):
    s1 = _sub(tmp_path / "s1.csv", ["anger", "joy", "joy", "neutral"], proba=P1)
    s2 = _sub(tmp_path / "s2.csv", ["joy", "neutral", "joy", "joy"], proba=P2)
    out = tmp_path / "voted.csv"
    args = ["vote", str(s1), str(s2), "--data", str(data), "--out", str(out), "--weights", "2,1"]
    assert main(args) == 0
    assert _read_labels(out) == ["anger", "joy", "joy", "neutral"]
    assert "pairwise agreement" in capsys.readouterr().out

    p1, p2 = s1.with_name("s1.probabilities.csv"), s2.with_name("s2.probabilities.csv")
    blended = tmp_path / "blend.csv"
    args = ["blend", str(p1), str(p2), "--method", "geometric", "--data", str(data)]
    assert main([*args, "--out", str(blended)]) == 0
    assert _read_labels(blended) == ["anger", "neutral", "neutral", "joy"]
    assert blended.with_name("blend.probabilities.csv").is_file()
    assert main([*args, "--out", str(blended), "--weights", "1,x"]) == 2
    assert "--weights" in capsys.readouterr().err

    a = _hand_run(tmp_path, "kernel_a", ["resnet18"])
    b = _hand_run(tmp_path, "kernel_b", ["resnet34"])
    assert main(["gather", str(a.path), str(b.path), "--into", str(tmp_path / "g")]) == 0
    assert "['resnet18', 'resnet34']" in capsys.readouterr().out
    c = _hand_run(tmp_path, "kernel_c", ["resnet50"], folds=np.zeros(12, dtype=int))
    assert main(["gather", str(a.path), str(c.path), "--into", str(tmp_path / "h")]) == 2
    assert "OOF would leak" in capsys.readouterr().err
