"""Test-set prediction over folds and architectures, test-time averaging, and the submission.

The first tests use a hand-made run folder whose "models" are tiny real torch modules with
known weights, so the expected probabilities can be computed independently with numpy.  The
last test submits from a real tiny run trained by ``emo_utils.train.cv.train_cv`` (conftest's
session-wide ``trained_run``).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import softmax

from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.errors import CheckpointError, SubmissionError, TrainingError
from emo_utils.features.store import FeatureStore
from emo_utils.infer.predict import predict_test, tta_views
from emo_utils.pipeline import predict_and_submit
from emo_utils.runs import RunDir

WINDOW = 4
CLASSES = ("anger", "joy", "neutral")
# Unsorted, a duplicated name (rows 0 and 3), and a file that failed to load (row 1).
TEST_NAMES = ["907.mp3", "12.wav", "5.mp3", "907.mp3", "33.mp3"]


class PositionModel(torch.nn.Module):
    """Logits = (time profile of the input) @ weight: depends on where energy is in time."""

    def __init__(self, weight: np.ndarray) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2)) @ self.weight


def _weights(archs=("a", "b"), n_folds=2, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return {
        (arch, k): rng.normal(0, 3, (WINDOW, n_classes)) for arch in archs for k in range(n_folds)
    }


def _loader(weights):
    def load(run_dir, *, arch, fold, device=None):
        return PositionModel(weights[(arch, fold)]).eval()

    return load


def _store(names=TEST_NAMES, seed=1):
    rng = np.random.default_rng(seed)
    lengths = [4, 0, 7, 4, 5]  # row 1 failed; rows 2 and 4 are longer than one window
    images = [None if n == 0 else rng.random((2, 3, n)).astype(np.float32) for n in lengths]
    reasons = ["" if n else "empty file (0 bytes)" for n in lengths]
    return FeatureStore.from_arrays(names, images, window_frames=WINDOW, reasons=reasons)


def _run(tmp_path, *, archs=("a", "b"), n_folds=2, overrides=None):
    run = tmp_path / "runs" / "tiny"
    run.mkdir(parents=True)
    cfg = Config().override(
        {
            "train.architectures": list(archs),
            "train.n_folds": n_folds,
            "audio.max_duration": 10.0,
            **(overrides or {}),
        }
    )
    cfg.save(run / "config.json")
    (run / "classes.json").write_text(json.dumps(list(CLASSES)))
    for arch in archs:
        for k in range(n_folds):
            (run / "models" / arch / f"fold{k}").mkdir(parents=True)
            (run / "models" / arch / f"fold{k}" / "done.json").write_text("{}")
    return run, cfg


def _expected(store, weights, arch, n_folds, *, windows=False, shifts=0):
    """Independent numpy reference: softmax per view, mean over views, then over folds."""
    out = np.full((len(store), len(CLASSES)), np.nan)
    for i in np.flatnonzero(store.ok):
        views = list(store.windows(i)) if windows else [store.window(i, "start")]
        views += [
            np.roll(v, j * WINDOW // (shifts + 1), axis=-1)
            for j in range(1, shifts + 1)
            for v in list(views)
        ]
        per_fold = [
            np.mean([softmax(v.mean(axis=(0, 1)) @ weights[(arch, k)]) for v in views], axis=0)
            for k in range(n_folds)
        ]
        out[i] = np.mean(per_fold, axis=0)
    return out


# ---------------------------------------------------------------------------- TTA views
def test_tta_views_one_window_per_good_row_by_default():
    store = _store()
    views, owner = tta_views(store, crop="start")
    assert owner.tolist() == [0, 2, 3, 4]  # the failed row 1 has no view
    assert views.shape == (4, 2, 3, WINDOW)
    assert np.array_equal(views[1], store.window(2, "start"))
    centred, _ = tta_views(store, crop="center")
    assert np.array_equal(centred[1], store.window(2, "center"))


def test_tta_windows_and_shifts():
    store = _store()
    views, owner = tta_views(store, crop="start", tta_windows=True)
    # 7 frames -> windows at 0, 2, 3; 5 frames -> windows at 0, 1.
    assert owner.tolist() == [0, 2, 2, 2, 3, 4, 4]
    assert np.array_equal(views[1:4], store.windows(2))
    shifted, owner2 = tta_views(store, crop="start", tta_shifts=3)
    assert owner2.tolist() == [0, 2, 3, 4] * 4
    for j in range(1, 4):  # copies rolled by 1, 2 and 3 frames
        assert np.array_equal(shifted[4 * j], np.roll(shifted[0], j, axis=-1))


# ---------------------------------------------------------------------------- predict_test
def test_predict_test_averages_softmax_over_views_then_folds(tmp_path):
    run, _ = _run(tmp_path)
    weights = _weights()
    store = _store()
    probs = predict_test(store, run_dir=run, device="cpu", progress=False, loader=_loader(weights))
    assert set(probs) == {"a", "b"}
    for arch in ("a", "b"):
        expected = _expected(store, weights, arch, 2)
        assert np.allclose(probs[arch], expected, atol=1e-6, equal_nan=True)
        assert np.isnan(probs[arch][1]).all()  # the failed row
        assert np.allclose(probs[arch][[0, 2, 3, 4]].sum(axis=1), 1.0)
    # Softmax before averaging differs from averaging logits and then taking a softmax.
    row = store.window(0, "start").mean(axis=(0, 1))
    logit_mean = softmax(np.mean([row @ weights[("a", k)] for k in range(2)], axis=0))
    assert not np.allclose(probs["a"][0], logit_mean, atol=1e-3)

    written = pd.read_csv(run / "predictions" / "a.csv")
    assert written["filename"].astype(str).tolist() == TEST_NAMES
    assert list(written.columns) == ["filename", *CLASSES]
    again = RunDir(run).load_predictions(["a", "b"], store.filenames)
    assert np.allclose(again["b"], probs["b"], equal_nan=True)


@pytest.mark.parametrize(("windows", "shifts"), [(True, 0), (False, 2), (True, 1)])
def test_predict_test_time_averaging(tmp_path, windows, shifts):
    run, cfg = _run(
        tmp_path,
        archs=("a",),
        overrides={"ensemble.tta_windows": windows, "ensemble.tta_shifts": shifts},
    )
    weights = _weights(archs=("a",))
    store = _store()
    probs = predict_test(
        store, run_dir=run, config=cfg, device="cpu", progress=False, loader=_loader(weights)
    )
    expected = _expected(store, weights, "a", 2, windows=windows, shifts=shifts)
    assert np.allclose(probs["a"], expected, atol=1e-6, equal_nan=True)
    plain = _expected(store, weights, "a", 2)
    assert not np.allclose(probs["a"][2], plain[2], atol=1e-4)  # the averaging changed it


def test_unfinished_folds_and_wrong_models_are_reported(tmp_path):
    run, _ = _run(tmp_path)
    weights = _weights()
    (run / "models" / "b" / "fold1" / "done.json").unlink()
    with pytest.raises(TrainingError, match=r"'b': \[1\]"):
        predict_test(_store(), run_dir=run, device="cpu", progress=False, loader=_loader(weights))
    (run / "models" / "b" / "fold1" / "done.json").write_text("{}")
    four_classes = {key: np.ones((WINDOW, 4)) for key in weights}
    with pytest.raises(CheckpointError, match="4 outputs for 3 classes"):
        predict_test(
            _store(), run_dir=run, device="cpu", progress=False, loader=_loader(four_classes)
        )


# ---------------------------------------------------------------------------- submission
def _competition_dir(tmp_path, train_names, train_labels):
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"filename": train_names, "emotion": train_labels}).to_csv(
        data / "train.csv", index=False
    )
    pd.DataFrame({"filename": TEST_NAMES}).to_csv(data / "test.csv", index=False)
    pd.DataFrame({"filename": TEST_NAMES, "emotion": "neutral"}).to_csv(
        data / "sample_submission.csv", index=False
    )
    return load_competition(data)


def _oof(run, archs, names, labels, seed=2):
    rng = np.random.default_rng(seed)
    (run / "oof").mkdir()
    for arch in archs:
        df = pd.DataFrame(rng.dirichlet(np.ones(3), len(names)), columns=list(CLASSES))
        df.insert(0, "fold", np.arange(len(names)) % 2)
        df.insert(0, "label", labels)
        df.insert(0, "filename", names)
        df.to_csv(run / "oof" / f"{arch}.csv", index=False)


@pytest.mark.parametrize("method", ["mode", "best", "stacking", "select", "weighted"])
def test_predict_and_submit_from_a_hand_made_run(tmp_path, method):
    train_names = [f"t{i}.wav" for i in range(30)]
    train_labels = [CLASSES[i % 3] if i % 5 else "joy" for i in range(30)]  # joy most frequent
    comp = _competition_dir(tmp_path, train_names, train_labels)
    run, _ = _run(tmp_path, overrides={"ensemble.method": method})
    _oof(run, ["a", "b"], train_names, train_labels)
    weights = _weights()
    store = _store()
    outcome = predict_and_submit(
        comp,
        store,
        run_dir=run,
        submissions_dir=tmp_path / "submissions",
        device="cpu",
        progress=False,
        loader=_loader(weights),
    )
    resolved = outcome.best_method if method == "best" else method
    assert outcome.method == resolved
    assert outcome.submission == tmp_path / "submissions" / f"tiny__{resolved}.csv"
    sub = pd.read_csv(outcome.submission, dtype=str, keep_default_na=False)
    assert list(sub.columns) == ["filename", "emotion"]
    assert sub["filename"].tolist() == TEST_NAMES  # count, order, duplicates kept
    assert sub["emotion"].iloc[1] == "joy"  # the failed row gets the most frequent class
    assert set(sub["emotion"]) <= set(CLASSES)
    failed = pd.read_csv(outcome.files.failures, dtype=str)
    assert failed[["row", "filename", "reason"]].values.tolist() == [
        ["1", "12.wav", "empty file (0 bytes)"]
    ]
    if method == "mode":
        from emo_utils.ensemble import mode_vote

        stacked = np.stack([outcome.probabilities[a] for a in ("a", "b")])[:, [0, 2, 3, 4]]
        assert sub["emotion"].iloc[[0, 2, 3, 4]].tolist() == [
            CLASSES[i] for i in mode_vote(stacked)
        ]
    # The report lists every single model next to every method.
    assert set(outcome.model_scores) == {"a", "b"}
    assert set(outcome.ensemble_scores) == {
        "single",
        "mode",
        "mean",
        "geometric",
        "rank",
        "power",
        "select",
        "weighted",
        "stacking",
    }
    if method in ("select", "weighted"):  # the report names each member's weight
        saved = json.loads((run / "ensemble_report.json").read_text())
        assert sum(saved["details"][method].values()) == pytest.approx(1.0)
    assert (run / "ensemble_report.json").is_file()
    assert (run / "ensemble_report.md").is_file()
    assert (run / "predictions" / "b.csv").is_file()

    again = predict_and_submit(
        comp, store, run_dir=run, submissions_dir=tmp_path / "submissions", reuse_predictions=True
    )
    assert pd.read_csv(again.submission, dtype=str).equals(
        pd.read_csv(outcome.submission, dtype=str)
    )


def test_predict_and_submit_refuses_a_store_of_other_files(tmp_path):
    train_names = [f"t{i}.wav" for i in range(12)]
    comp = _competition_dir(tmp_path, train_names, [CLASSES[i % 3] for i in range(12)])
    run, _ = _run(tmp_path)
    store = _store(names=list(reversed(TEST_NAMES)))
    with pytest.raises(SubmissionError, match="file names differ"):
        predict_and_submit(comp, store, run_dir=run, submissions_dir=tmp_path / "s", progress=False)


# ---------------------------------------------------------------------------- a real tiny run
@pytest.mark.slow
def test_submission_from_a_real_tiny_training_run(tmp_path, trained_run, training_data_factory):
    """A run trained for real by train_cv (conftest's) -> predict -> ensemble -> submission."""
    from emo_utils.ensemble import mode_vote
    from emo_utils.models import load_fold_model

    classes = trained_run.competition.classes  # angry, happy, sad: 8 training clips each
    arch = "test_resnet"
    assert list(trained_run.config.train.architectures) == [arch]
    run = shutil.copytree(trained_run.run_dir, tmp_path / "runs" / "tiny")  # predict writes

    data = tmp_path / "data"
    data.mkdir()
    train = trained_run.competition.train
    pd.DataFrame({"filename": train["filename"], "emotion": train["label"]}).to_csv(
        data / "train.csv", index=False
    )
    pd.DataFrame({"filename": TEST_NAMES}).to_csv(data / "test.csv", index=False)
    pd.DataFrame({"id": TEST_NAMES, "predicted": "sad"}).to_csv(
        data / "sample_submission.csv", index=False
    )
    comp = load_competition(data)
    assert comp.classes == classes
    # Unseen clips of the run's shape, one per class (another noise seed).
    _, fresh = training_data_factory(tmp_path / "fresh", counts=dict.fromkeys(classes, 1), seed=1)
    image = [fresh.window(k) for k in range(3)]
    test_store = FeatureStore.from_arrays(
        TEST_NAMES,
        [image[0], None, image[1], image[0], image[2]],
        window_frames=fresh.window_frames,
        reasons=["", "cannot decode: not an audio file", "", "", ""],
    )

    outcome = predict_and_submit(
        comp, test_store, run_dir=run, submissions_dir=tmp_path / "submissions", progress=False
    )
    # One model: every method ties with it, and ``best`` (the default) keeps ``single``.
    assert outcome.method == "single"
    assert outcome.submission == tmp_path / "submissions" / "tiny__single.csv"
    sub = pd.read_csv(outcome.submission, dtype=str, keep_default_na=False)
    assert list(sub.columns) == ["id", "predicted"]  # the sample submission's columns
    assert sub["id"].tolist() == TEST_NAMES  # count, order and duplicated names kept
    assert sub["predicted"].iloc[1] == "angry"  # failed file: most frequent class (a tie: first)
    assert set(sub["predicted"]) <= set(classes)
    failed = pd.read_csv(outcome.files.failures, dtype=str)
    assert failed[["row", "id", "reason"]].values.tolist() == [
        ["1", "12.wav", "cannot decode: not an audio file"]
    ]

    # Fold-averaged softmax of the real fold models, recomputed here.
    window = torch.from_numpy(test_store.window(2, "start")[None])
    with torch.inference_mode():
        by_hand = np.mean(
            [
                torch.softmax(
                    load_fold_model(run, arch=arch, fold=k, device="cpu")(window), 1
                ).numpy()[0]
                for k in range(trained_run.config.train.n_folds)
            ],
            axis=0,
        )
    assert np.allclose(outcome.probabilities[arch][2], by_hand, atol=1e-5)
    stacked = np.stack([outcome.probabilities[a] for a in trained_run.config.train.architectures])
    good = [0, 2, 3, 4]
    assert sub["predicted"].iloc[good].tolist() == [classes[i] for i in mode_vote(stacked[:, good])]

    # OOF report: every single model next to every ensemble method.
    report = json.loads((run / "ensemble_report.json").read_text())
    names = {(r["kind"], r["name"]) for r in report["rows"]}
    assert names == {("model", arch)} | {
        ("ensemble", m)
        for m in (
            "single",
            "mode",
            "mean",
            "geometric",
            "rank",
            "power",
            "select",
            "weighted",
            "stacking",
        )
    }
    assert report["best_method"] in outcome.ensemble_scores
    written = pd.read_csv(run / "predictions" / f"{arch}.csv", dtype={"filename": str})
    assert written["filename"].tolist() == TEST_NAMES
