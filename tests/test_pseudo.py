"""Pseudo-label rounds: soft targets, folds they train but never validate, the parent checks,
the unlabelled split, a killed round resuming, and two rounds of the demo through the CLI.

The training tests use conftest's session run (3 folds of ``test_resnet``) as the parent; the
pipeline tests a tiny demo folder with an ``unlabelled/`` folder beside ``train/`` and
``test/``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from audio_factory import write_text_as_audio
from cli_runner import run_cli
from conftest import TRAINED_RUN_CONFIG
from fastai.callback.core import Callback
from fastai.losses import CrossEntropyLossFlat

from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.datasets.synthetic import make_demo_dataset
from emo_utils.endgame import check_parent, make_pseudo_labels, pseudo_candidates
from emo_utils.ensemble import evaluate_ensembles
from emo_utils.errors import CacheError, CheckpointError, EmoUtilsWarning, TrainingError
from emo_utils.features import FeatureStore, StatisticsStore, open_cache
from emo_utils.features.concat import concat_stores
from emo_utils.fileio import read_json
from emo_utils.infer.predict import predict_rows, view_settings
from emo_utils.models import load_fold_model
from emo_utils.pipeline import preprocess, run_pipeline, train
from emo_utils.runs import RunDir
from emo_utils.tasks import get_task
from emo_utils.tasks.classification import SoftTargetCrossEntropy
from emo_utils.train import train_cv
from emo_utils.train.data import balanced_weights
from emo_utils.train.pseudo import PseudoLabels

ARCH = "test_resnet"
CLASSIFICATION, MULTILABEL = get_task("classification"), get_task("multilabel")


# ============================================================================ soft targets
def test_single_label_power_sharpens_and_threshold_keeps_confident_clips():
    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [np.nan, 0.5, 0.5], [0.9, 0.05, 0.05]])
    same, keep = CLASSIFICATION.pseudo_targets(p)
    np.testing.assert_allclose(same[[0, 1, 3]], p[[0, 1, 3]], atol=1e-6)
    assert keep.tolist() == [True, True, False, True]  # no threshold: every clip with a prediction
    assert same[2].tolist() == [0.0, 0.0, 0.0]
    sharp, keep = CLASSIFICATION.pseudo_targets(p, threshold=0.6, power=2.0)
    np.testing.assert_allclose(sharp[0], p[0] ** 2 / (p[0] ** 2).sum(), rtol=1e-6)
    assert keep.tolist() == [True, False, False, True]  # top probability >= 0.6
    hard, _ = CLASSIFICATION.pseudo_targets(p, power=1000.0)  # no underflow to 0/0
    np.testing.assert_allclose(hard[[0, 1, 3]], np.eye(3)[[0, 1, 0]], atol=1e-6)
    flat, _ = CLASSIFICATION.pseudo_targets(p, power=0.5)
    assert flat[0, 0] < p[0, 0]
    np.testing.assert_allclose(flat.sum(axis=1)[[0, 1, 3]], 1.0, rtol=1e-6)


def test_multi_label_targets_put_each_labels_threshold_at_one_half():
    p = np.array([[0.2, 0.5, 0.9], [0.1, 0.05, 0.4], [0.3, 0.6, np.nan]])
    same, keep = MULTILABEL.pseudo_targets(p)  # threshold 0.5, power 1: the probabilities
    np.testing.assert_allclose(same[:2], p[:2], atol=1e-6)
    assert keep.tolist() == [True, False, False]  # a label at or above its threshold
    thresholds = [0.2, 0.7, 0.4]
    centred, keep = MULTILABEL.pseudo_targets(p, threshold=thresholds, power=1.0)
    assert centred[0, 0] == pytest.approx(0.5)  # at its threshold
    assert centred[0, 1] < 0.5  # below 0.7
    assert centred[1, 2] == pytest.approx(0.5)
    assert keep.tolist() == [True, True, False]
    sharp, _ = MULTILABEL.pseudo_targets(p, threshold=thresholds, power=4.0)
    assert sharp[0, 2] > centred[0, 2] > 0.5
    assert sharp[0, 1] < centred[0, 1] < 0.5
    assert centred[2].tolist() == [0.0, 0.0, 0.0]


def test_soft_cross_entropy_equals_fastais_on_one_hot_targets_and_mixes_targets():
    torch.manual_seed(0)
    logits, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, 0])
    one_hot = torch.eye(4)[y]
    for smoothing in (0.0, 0.1):
        soft = SoftTargetCrossEntropy(label_smoothing=smoothing)
        ref = CrossEntropyLossFlat(label_smoothing=smoothing)(logits, y)
        assert float(soft(logits, one_hot)) == pytest.approx(float(ref), rel=1e-5)
        assert float(soft(logits, y)) == pytest.approx(float(ref), rel=1e-5)  # validation rows
    assert SoftTargetCrossEntropy.y_int is False  # fastai's MixUp mixes the targets
    loss = SoftTargetCrossEntropy()
    union = torch.maximum(one_hot, torch.eye(4)[y.flip(0)])  # sums to 2: renormalised
    assert float(loss(logits, union)) == pytest.approx(float(loss(logits, union / 2)), rel=1e-6)
    assert loss.decodes(loss.activation(logits)).tolist() == logits.argmax(1).tolist()


def test_the_task_gives_the_soft_loss_only_to_probability_targets():
    config = TRAINED_RUN_CONFIG.train  # class weights and label smoothing on
    hard = CLASSIFICATION.make_loss(
        config=config, targets=np.array([0, 1, 1, 2]), n_classes=3, device="cpu"
    )
    assert isinstance(hard, CrossEntropyLossFlat)
    soft_targets = np.array([[1, 0, 0], [0, 1, 0], [0, 0.5, 0.5], [0, 0, 1]], dtype=np.float32)
    soft = CLASSIFICATION.make_loss(config=config, targets=soft_targets, n_classes=3, device="cpu")
    assert isinstance(soft, SoftTargetCrossEntropy)
    # "balanced" by the probability mass: 4 clips / (3 classes * mass)
    np.testing.assert_allclose(soft.weight.numpy(), 4 / (3 * np.array([1.0, 1.5, 1.5])), rtol=1e-6)
    assert soft.label_smoothing == pytest.approx(0.1)
    one_hot = CLASSIFICATION.target_probabilities(np.array([2, 0]), 3)
    assert one_hot.tolist() == [[0, 0, 1], [1, 0, 0]]


def test_balanced_sampling_counts_a_soft_target_as_its_label_from_one_half():
    hard = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    soft = np.vstack([hard, [[0.45, 0.55]], [[0.1, 0.2]]])  # pseudo rows
    w = balanced_weights(soft)
    assert w[4] == pytest.approx(w[3])  # 0.55: label 1, rare
    assert w[5] == pytest.approx(w[0])  # no label reaches 0.5: the common label's weight


# ============================================================================ stores and files
def test_joined_stores_read_each_row_from_its_own_store_without_copying():
    rng = np.random.default_rng(0)
    images = [rng.normal(size=(2, 3, n)).astype(np.float32) for n in (4, 5, 4, 6)]
    a = FeatureStore.from_arrays(["a0", "a1"], images[:2], window_frames=4)
    b = FeatureStore.from_arrays(["b0", "b1"], [images[2], None], window_frames=4)
    c = FeatureStore.from_arrays(["c0"], images[3:], window_frames=4)
    joined = concat_stores([concat_stores([a, b.select([1, 0])]), c]).select([4, 3, 0])
    assert joined.filenames == ["c0", "b0", "a0"]
    assert joined.ok.tolist() == [True, True, True]
    np.testing.assert_array_equal(joined.windows(0)[-1], images[3][:, :, 2:])
    np.testing.assert_array_equal(joined.window(1), images[2])
    assert joined.frames.parts[0] is a.frames  # the stores' own arrays
    mean, _ = joined.channel_statistics([0, 1, 2])
    np.testing.assert_allclose(
        mean, np.concatenate([images[i] for i in (3, 2, 0)], 2).mean((1, 2), dtype=np.float64)
    )
    with pytest.raises(IndexError, match="span two stores"):
        joined.frames[0:20]
    other = FeatureStore.from_arrays(["x"], [np.zeros((2, 3, 8))], window_frames=8)
    with pytest.raises(CacheError, match="windows"):
        concat_stores([a, other])
    stats = [
        StatisticsStore([n], np.full((1, 2), i, np.float32), ["m", "s"], [""])
        for i, n in enumerate(["p", "q"])
    ]
    assert concat_stores(stats).matrix().tolist() == [[0, 0], [1, 1]]
    with pytest.raises(CacheError, match="cannot join"):
        concat_stores([a, stats[0]])


def _labels(parent: Path, names: list[str], n_folds: int = 3, seed: int = 0) -> PseudoLabels:
    rng = np.random.default_rng(seed)
    n = len(names)
    keep = np.zeros((n_folds, n), dtype=bool)
    keep[0, : n // 2] = True  # fold 0: half of them
    keep[1] = True  # fold 1: all; the others: none
    return PseudoLabels(
        parent=parent,
        method="mean",
        splits=["test"] * n,
        filenames=names,
        keep=keep,
        targets=rng.dirichlet(np.ones(3), (n_folds, n)).astype(np.float32),
        columns=["angry", "happy", "sad"],
    )


def test_pseudo_labels_file_round_trips_and_damage_is_reported(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    assert PseudoLabels.load(run) is None
    labels = _labels(tmp_path / "parent", [f"u{i}.wav" for i in range(6)])
    labels.save(run)
    back = PseudoLabels.load(run)
    assert (back.filenames, back.splits, back.method) == (labels.filenames, labels.splits, "mean")
    np.testing.assert_array_equal(back.keep, labels.keep)
    np.testing.assert_allclose(back.targets, labels.targets)
    assert read_json(run.pseudo_labels_file(".json"))["kept"] == [3, 6, 0]
    table = pd.read_csv(run.pseudo_labels_file())
    table = table[~((table["fold"] == 2) & (table["filename"] == "u3.wav"))]
    table.to_csv(run.pseudo_labels_file(), index=False)
    with pytest.raises(CheckpointError, match=r"pseudo_labels\.csv: every fold 0\.\.2"):
        PseudoLabels.load(run)


# ============================================================================ one round, in memory
@pytest.fixture(scope="module")
def parent(tmp_path_factory, trained_run) -> RunDir:
    """The session run, predicted with the ``mean`` ensemble (its copy)."""
    run = RunDir(shutil.copytree(trained_run.run_dir, tmp_path_factory.mktemp("p") / "parent"))
    config = trained_run.config.override({"ensemble.method": "mean"})
    evaluate_ensembles(run, config=config)  # ensemble_report.json: what "predicted" leaves
    return run


@pytest.fixture(scope="module")
def unlabelled(training_data_factory, tmp_path_factory) -> FeatureStore:
    """Ten learnable clips of the parent's image shape that are in no fold."""
    _, store = training_data_factory(
        tmp_path_factory.mktemp("u"), counts={"angry": 4, "happy": 3, "sad": 3}, seed=7
    )
    images = [store.window(i) for i in range(len(store))]
    return FeatureStore.from_arrays(
        [f"unlabelled_{i:02d}.wav" for i in range(len(store))], images, window_frames=48
    )


def _round_config(parent: RunDir, **overrides) -> Config:
    return TRAINED_RUN_CONFIG.override(
        {"train.pseudo_from": os.fspath(parent.path), "train.epochs": 1, **overrides}
    )


def test_fold_k_targets_come_from_the_parent_fold_k_models(parent, unlabelled):
    names = list(unlabelled.filenames)
    labels = make_pseudo_labels(
        parent,
        {"test": {"image": unlabelled}},
        splits=["test"] * len(names),
        filenames=names,
        config=_round_config(parent),
        device="cpu",
        progress=False,
    )
    assert labels.method == "mean"
    assert labels.n_folds == 3
    assert labels.keep.all()  # no threshold: every clip
    parent_config = parent.read_config()
    fold_probs = []
    for k in range(3):
        model = load_fold_model(parent.path, arch=ARCH, fold=k, device="cpu")
        probs = predict_rows(
            model,
            unlabelled,
            np.arange(len(names)),
            task="classification",
            **view_settings(parent_config),
            device="cpu",
        )
        # One model: the mean ensemble is the fold model's probabilities, power 1: as they are.
        np.testing.assert_allclose(labels.targets[k], probs, atol=1e-5)
        fold_probs.append(probs)
    assert not np.allclose(fold_probs[0], fold_probs[1], atol=1e-3)  # per fold, not averaged
    sharp = make_pseudo_labels(
        parent,
        {"test": {"image": unlabelled}},
        splits=["test"] * len(names),
        filenames=names,
        config=_round_config(parent, **{"train.pseudo_power": 3.0, "train.pseudo_threshold": 0.4}),
        device="cpu",
        progress=False,
    )
    top = np.stack(fold_probs).max(axis=2)
    np.testing.assert_array_equal(sharp.keep, top >= 0.4)
    assert (sharp.targets.max(axis=2) >= labels.targets.max(axis=2) - 1e-6).all()


class FoldRecorder(Callback):
    """What each fit trains and validates on: file names, targets, the loss."""

    def __init__(self) -> None:
        self.fits: list[dict] = []

    def before_fit(self) -> None:
        train_ds, valid_ds = self.dls.train.dataset, self.dls.valid.dataset
        self.fits.append(
            {
                "train": [train_ds.store.filenames[r] for r in train_ds.rows],
                "targets": np.array(train_ds.targets),
                "valid": [valid_ds.store.filenames[r] for r in valid_ds.rows],
                "loss": type(self.learn.loss_func).__name__,
            }
        )


def test_pseudo_rows_train_every_fold_and_never_validate_one(
    parent, unlabelled, training_data, tmp_path
):
    competition, store = training_data
    names = list(unlabelled.filenames)
    labels = _labels(parent.path, names).with_inputs({"test": {"image": unlabelled}})
    recorder = FoldRecorder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoUtilsWarning)  # one epoch: near the baseline
        result = train_cv(
            competition,
            store,
            run_dir=tmp_path / "round1",
            config=_round_config(parent),
            progress=False,
            callbacks=[recorder],
            pseudo=labels,
        )
    run = RunDir(tmp_path / "round1")
    assert run.folds_file.read_bytes() == parent.folds_file.read_bytes()
    folds = pd.read_csv(run.folds_file)
    assert len(recorder.fits) == 3
    for k, fit in enumerate(recorder.fits):
        labelled = folds["filename"][folds["fold"] != k].tolist()
        kept = [n for n, keep in zip(names, labels.keep[k], strict=True) if keep]
        assert fit["valid"] == folds["filename"][folds["fold"] == k].tolist()  # no pseudo row
        assert not set(fit["valid"]) & set(names)
        assert fit["train"] == labelled + kept
        if kept:
            assert fit["loss"] == "SoftTargetCrossEntropy"
            np.testing.assert_allclose(
                fit["targets"][len(labelled) :], labels.targets[k][labels.keep[k]]
            )
            classes = folds["label"][folds["fold"] != k].map(
                {c: i for i, c in enumerate(competition.classes)}
            )
            np.testing.assert_array_equal(fit["targets"][: len(labelled)], np.eye(3)[classes])
        else:  # fold 2 keeps none: trained exactly as without pseudo-labels
            assert fit["loss"] == "CrossEntropyLossFlat"
            assert fit["targets"].ndim == 1
        assert read_json(run.fold_file(ARCH, k, RunDir.DONE_FILE))["n_train"] == len(fit["train"])
    oof = pd.read_csv(run.oof_file(ARCH))
    assert sorted(oof["filename"]) == sorted(folds["filename"])  # labelled clips only
    section = result.report["pseudo"]
    assert section["kept"] == [5, 10, 0]
    assert section["round"] == 1
    assert [r["round"] for r in section["rounds"]] == [0, 1]
    parent_report = parent.read_cv_report()["architectures"][ARCH]["overall"]
    assert section["rounds"][0]["scores"][ARCH] == pytest.approx(parent_report)
    assert section["rounds"][1]["scores"][ARCH] == result.report["architectures"][ARCH]["overall"]
    markdown = run.cv_report_file(".md").read_text()
    assert "## Pseudo-labels (round 1)" in markdown
    assert "### Round-over-round OOF accuracy" in markdown


def test_a_round_with_other_folds_stops_before_training(
    parent, unlabelled, training_data, tmp_path
):
    competition, store = training_data
    run = RunDir(tmp_path / "round1")
    run.path.mkdir()
    folds = pd.read_csv(parent.folds_file)
    folds["fold"] = folds["fold"].sample(frac=1.0, random_state=3).to_numpy()
    folds.to_csv(run.folds_file, index=False)
    labels = _labels(parent.path, list(unlabelled.filenames)).with_inputs(
        {"test": {"image": unlabelled}}
    )
    with pytest.raises(TrainingError, match=r"OOF would leak: .*folds\.csv is not byte-identical"):
        train_cv(
            competition,
            store,
            run_dir=run,
            config=_round_config(parent),
            progress=False,
            pseudo=labels,
        )
    assert not run.models_dir.exists()


def _refusal(parent: RunDir, tmp_path: Path, case: str):
    """``(parent, config, classes, run)`` of one way a parent is refused."""
    config, classes, run = _round_config(parent), ("angry", "happy", "sad"), None
    if case == "no run folder":
        parent = RunDir(tmp_path / "nowhere")
    elif case == "itself":
        run = parent
    elif case == "other folds settings":
        config = config.override({"train.n_folds": 2})
    elif case == "other data settings":
        config = config.override({"data.label_column": "label"})
    elif case == "other classes":
        classes = ("angry", "happy", "neutral")
    elif case == "other folds.csv":
        run = RunDir(tmp_path / "round")
        run.path.mkdir()
        run.folds_file.write_text(parent.folds_file.read_text().replace(",0\n", ",1\n", 1))
    elif case == "not predicted":
        parent = RunDir(shutil.copytree(parent.path, tmp_path / "unpredicted"))
        parent.ensemble_report_file().unlink()
    elif case == "unfinished fold":
        parent = RunDir(shutil.copytree(parent.path, tmp_path / "unfinished"))
        parent.fold_file(ARCH, 1, RunDir.DONE_FILE).unlink()
    return parent, config, classes, run


REFUSALS = {
    "no run folder": r"train\.pseudo_from = '.*nowhere': no trained run folder",
    "itself": r"the parent must be another run folder",
    "other folds settings": r"train settings \['n_folds'\] differ .* OOF would leak",
    "other data settings": r"the data settings \['label_column'\] differ",
    "other classes": r"classes\.json: classes \['angry', 'happy', 'sad'\] differ",
    "other folds.csv": r"OOF would leak: .*round/folds\.csv is not byte-identical",
    "not predicted": r"ensemble_report\.json not found; predict with the parent first",
    "unfinished fold": r"unfinished folds \{'test_resnet': \[1\]\}",
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_parent_that_would_leak_or_not_compare_is_refused(parent, tmp_path, case):
    other, config, classes, run = _refusal(parent, tmp_path, case)
    with pytest.raises(TrainingError, match=REFUSALS[case]):
        check_parent(other, config=config, classes=classes, run=run)


def test_a_round_may_add_unlabelled_clips_to_its_parents_data(parent):
    config = _round_config(parent, **{"data.unlabelled_dir": "extra", "train.epochs": 7})
    checked = check_parent(parent.path, config=config, classes=("angry", "happy", "sad"))
    assert checked.path == parent.path
    stores = {
        "test": {"image": FeatureStore.from_arrays(
            ["a.wav", "b.wav", "a.wav", "c.wav"],
            [np.zeros((1, 2, 3)), None, np.zeros((1, 2, 3)), np.ones((1, 2, 3))],
            window_frames=3,
            reasons=["", "cannot decode", "", ""],
        )},
    }  # fmt: skip
    splits, names, skipped = pseudo_candidates(stores, ["test", "unlabelled"])
    assert (splits, names) == (["test", "test"], ["a.wav", "c.wav"])  # each file once
    assert skipped == [("test", "b.wav", "cannot decode")]


# ============================================================================ through the pipeline
TINY = {
    "audio.duration": 2.0,
    "audio.max_duration": 2.0,
    "features.n_mels": 32,
    "train.architectures": [ARCH],
    "train.epochs": 1,
    "train.n_folds": 2,
    "train.batch_size": 16,
}
UNLABELLED = ["more/b_copy.mp3", "x_copy.wav", "z_copy.mp3"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A demo folder with ``unlabelled/``, its round 0 (run + predict) and an uninterrupted round 1."""
    root = tmp_path_factory.mktemp("rounds")
    data = make_demo_dataset(root / "data", n_train=40, n_test=10, seed=1)
    test = pd.read_csv(data / "test.csv", dtype=str)["filename"].tolist()
    folder = data / "unlabelled"
    (folder / "more").mkdir(parents=True)
    copies = []
    for source, name in zip(test[:3], UNLABELLED, strict=True):
        copies.append(Path(name).with_suffix(Path(source).suffix).as_posix())
        shutil.copy(data / "test" / source, folder / copies[-1])
    write_text_as_audio(folder / "broken.wav")
    (folder / "notes.txt").write_text("not audio")
    shutil.copy(data / "test" / test[0], folder / ".hidden.mp3")
    cache, subs = root / "cache", root / "subs"
    config0 = Config.preset("cpu_demo").override(TINY)
    kw = {"cache_dir": cache, "n_jobs": 1, "progress": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_pipeline(data, run_dir=root / "round0", config=config0, submissions_dir=subs, **kw)
        config1 = config0.override(
            {
                "data.unlabelled_dir": "unlabelled",
                "train.epochs": 4,
                "train.pseudo_from": os.fspath((root / "round0").resolve()),
            }
        )
        reference = train(data, run_dir=root / "round1", config=config1, **kw)
    return {
        "root": root,
        "data": data,
        "cache": cache,
        "config1": config1,
        "reference": reference,
        "test": test,
        "copies": copies,
    }


@pytest.mark.slow
def test_unlabelled_clips_are_cached_like_the_test_set_and_failed_files_skipped(world):
    config = world["config1"]
    with pytest.warns(EmoUtilsWarning, match=r"1 file\(s\) with an extension no decoder reads"):
        comp = load_competition(world["data"], config.data)
    names = comp.unlabelled["filename"].tolist()
    # Every audio file, sub-folders too, sorted; not notes.txt, not .hidden.mp3.
    assert names == sorted(["broken.wav", *world["copies"]])
    assert comp.unlabelled["path"].tolist() == [
        str(world["data"] / "unlabelled" / n) for n in names
    ]
    store = open_cache(comp, "unlabelled", config=config, cache_dir=world["cache"])  # cached
    reasons = dict(zip(store.filenames, store.reasons, strict=True))
    assert reasons.pop("broken.wav")
    assert not any(reasons.values())
    # The round skipped the broken file, counted it, and labelled everything else once.
    summary = world["reference"].summary
    skipped = [i for i in summary["items"] if i["kind"] == "pseudo-label skipped (unlabelled)"]
    assert [i["file"] for i in skipped] == ["broken.wav"]
    table = pd.read_csv(RunDir(world["root"] / "round1").pseudo_labels_file(), dtype=str)
    fold0 = table[table["fold"] == "0"]
    assert fold0["split"].tolist() == ["test"] * 10 + ["unlabelled"] * 3
    assert fold0["filename"].tolist() == world["test"] + [n for n in names if n != "broken.wav"]
    assert any(
        line.startswith("pseudo-labels: 13 clips (test 10, unlabelled 3)")
        for line in world["reference"].lines
    )
    # preprocess caches the split too (reused here) and reports its failed file.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pre = preprocess(
            world["data"], config=config, cache_dir=world["cache"], n_jobs=1, progress=False
        )
    assert pre.lines[2].startswith("unlabelled: 4 clips, 1 failed")
    assert [i["file"] for i in pre.summary["items"] if i["kind"] == "unlabelled failed"] == [
        "broken.wav"
    ]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "emo_utils", *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
            start_new_session=True,
        )


@pytest.mark.slow
def test_a_round_killed_mid_fold_resumes_with_the_same_folds_and_targets(world, tmp_path):
    root, config = world["root"], world["config1"]
    run = RunDir(tmp_path / "round1")
    config_file = tmp_path / "config.json"
    config.override({"train.pseudo_from": ""}).save(config_file)  # --pseudo-from sets it
    args = [
        "train",
        "--data",
        str(world["data"]),
        "--run",
        str(run.path),
        "--cache",
        str(world["cache"]),
    ]
    args += [
        "--config",
        str(config_file),
        "--pseudo-from",
        str(root / "round0"),
        "--jobs",
        "1",
        "--no-progress",
    ]
    log = tmp_path / "train.log"
    proc = _start(args, log)
    checkpoint = run.fold_file(ARCH, 1, RunDir.CHECKPOINT_FILE)  # fold 1 has finished an epoch
    deadline = time.monotonic() + 300
    while not checkpoint.is_file():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "fold 1 never started"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not run.fold_done(ARCH, 1)  # killed mid-fold
    done0 = run.fold_file(ARCH, 0, RunDir.DONE_FILE)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (done0, run.pseudo_labels_file())}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(
            world["data"],
            run_dir=run.path,
            config=config,
            cache_dir=world["cache"],
            n_jobs=1,
            progress=False,
        )
    for path, (content, mtime) in before.items():  # reused as they were, not made again
        assert path.read_bytes() == content, path
        assert path.stat().st_mtime_ns == mtime, path
    reference = RunDir(root / "round1")
    assert run.pseudo_labels_file().read_bytes() == reference.pseudo_labels_file().read_bytes()
    assert run.folds_file.read_bytes() == RunDir(root / "round0").folds_file.read_bytes()
    assert Config.from_file(run.config_file) == config
    assert run.fold_done(ARCH, 1)
    if not torch.cuda.is_available():  # seeded and deterministic on CPU
        got, ref = pd.read_csv(run.oof_file(ARCH)), pd.read_csv(reference.oof_file(ARCH))
        assert got["filename"].tolist() == ref["filename"].tolist()
        np.testing.assert_allclose(
            got.iloc[:, 3:].to_numpy(), ref.iloc[:, 3:].to_numpy(), atol=1e-5
        )
        assert result.cv_scores == pytest.approx(world["reference"].cv_scores, abs=1e-9)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd)


DEMO_ARGS = ["--n-train", "40", "--n-test", "10", "--jobs", "1", "--no-progress"]
DEMO_ARGS += ["--set", "train.epochs=1", "--set", "train.n_folds=2", "--set", "features.n_mels=32"]
DEMO_ARGS += ["--set", "train.architectures=[test_resnet]"]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["classification", "multilabel"])
def test_two_demo_rounds_through_the_cli_print_round_over_round_scores(tmp_path, task):
    args = ["demo", "--task", task, "--rounds", "2", "--data", "data", "--run", "runs/demo"]
    args += ["--cache", "cache", *DEMO_ARGS]
    if task == "multilabel":
        args += ["--set", "audio.duration=2.0", "--set", "audio.max_duration=4.0"]
    out = _cli(*args, cwd=tmp_path).stdout
    metric = "accuracy" if task == "classification" else "map"
    round0, round1 = RunDir(tmp_path / "runs" / "demo"), RunDir(tmp_path / "runs" / "demo_round1")
    assert "== round 0 ==" in out
    assert "== round 1 ==" in out
    assert "pseudo-labels: 10 clips (test 10) from " in out
    assert f"round-over-round OOF {metric} (round 0, 1):" in out
    table = out[out.index(f"round-over-round ({metric}):") :].splitlines()
    assert table[1] == "| round | run | OOF test_resnet | OOF submission | held-out |"
    assert table[3].startswith("| 0 | runs/demo | ")
    assert table[4].startswith("| 1 | runs/demo_round1 | ")
    held_out = [float(line.rsplit("|", 2)[1]) for line in table[3:5]]
    assert all(0.0 <= v <= 1.0 for v in held_out)
    assert out.count(f"held-out test {metric} of the submission: ") == 2
    # Round 1: its parent recorded, the parent's folds, its own targets and report.
    config = Config.from_file(round1.config_file)
    assert config.train.pseudo_from == os.fspath(round0.path.resolve())
    assert round1.folds_file.read_bytes() == round0.folds_file.read_bytes()
    info = json.loads(round1.pseudo_labels_file(".json").read_text())
    assert info["kept"] == [10, 10]
    assert (info["thresholds"] is None) == (task == "classification")  # multi-label: per fold
    report = round1.read_cv_report()["pseudo"]
    assert [r["run"] for r in report["rounds"]] == [
        os.fspath(round0.path.resolve()),
        "runs/demo_round1",
    ]
    assert (
        tmp_path
        / "submissions"
        / f"demo_round1__{json.loads(round1.ensemble_report_file().read_text())['submission_method']}.csv"
    ).is_file()


def test_the_demo_runners_import_from_pipeline_demo_first_and_still_from_pipeline():
    # A fresh interpreter that imports pipeline_demo before pipeline: no import cycle, and
    # every runner is the same object from either module (`import *` included).
    code = """
import emo_utils.pipeline_demo as demo
import emo_utils.pipeline as pipeline
from emo_utils.pipeline import *
assert set(demo.__all__) <= set(pipeline.__all__), demo.__all__
for name in demo.__all__:
    assert getattr(pipeline, name) is getattr(demo, name) is globals()[name], name
try:
    pipeline.no_such_runner
except AttributeError as error:
    print(error)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "module 'emo_utils.pipeline' has no attribute 'no_such_runner'" in out.stdout
