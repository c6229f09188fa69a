"""Cross-validated training: run folder, OOF predictions, resume, determinism, errors.

One tiny CV run (3 folds x 2 epochs of timm's ``test_resnet`` on 3x32x48 images, conftest's
session-wide ``trained_run``) is shared by several tests; the resume tests compare against it.
Tests that write into it work on a copy.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from conftest import TRAINED_RUN_CONFIG
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback

from emo_utils.config import Config
from emo_utils.errors import CheckpointError, ConfigError, TrainingError
from emo_utils.features.store import FeatureStore
from emo_utils.fileio import read_csv, read_json
from emo_utils.models import NormalizedModel, build_model, load_fold_model, resolve_weights_file
from emo_utils.runs import RunDir
from emo_utils.train import train_cv
from emo_utils.train.augment import FrequencyMask, TimeMask, TimeShift, batch_augmentations
from emo_utils.train.data import make_dataloaders
from emo_utils.train.learner import make_learner

MODEL_FILE, CHECKPOINT_FILE, LOG_FILE = RunDir.MODEL_FILE, RunDir.CHECKPOINT_FILE, RunDir.LOG_FILE
DONE_FILE, FOLD_OOF_FILE = RunDir.DONE_FILE, RunDir.FOLD_OOF_FILE

ARCH = "test_resnet"
CONFIG = TRAINED_RUN_CONFIG  # the shared session run's config (tests/conftest.py)


class Interrupt(Exception):
    """Stands in for a killed kernel."""


class InterruptAfter(Callback):
    """Raise once ``epoch`` of the first fit has finished (after its checkpoint is written)."""

    order = 100

    def __init__(self, epoch: int) -> None:
        self.at = epoch

    def after_epoch(self) -> None:
        if self.epoch == self.at:
            raise Interrupt(f"interrupted after epoch {self.epoch}")


class StopAtFit(Callback):
    """Raise at the start of the ``n``-th fit of a ``train_cv`` call (0-based), to save time."""

    order = -20  # before every other callback

    def __init__(self, n: int) -> None:
        self.n, self.fits = n, 0

    def before_fit(self) -> None:
        if self.fits == self.n:
            raise Interrupt(f"stopped before fit {self.n}")
        self.fits += 1


class EpochRecorder(Callback):
    """Remember which epochs actually trained, per fit."""

    def __init__(self) -> None:
        self.fits: list[list[int]] = []

    def before_fit(self) -> None:
        self.fits.append([])

    def before_train(self) -> None:
        self.fits[-1].append(self.epoch)


@pytest.fixture(scope="module")
def cv_run(trained_run, training_data):
    """The session's shared tiny run (read-only: copy it before writing into it)."""
    assert trained_run.config == CONFIG, "the shared run must be trained with TRAINED_RUN_CONFIG"
    assert trained_run.store is training_data[1]
    return trained_run.result, trained_run.run_dir


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory, training_data):
    """A run killed right after epoch 0 of fold 0 (its pristine copy; copy it before use)."""
    competition, store = training_data
    run_dir = tmp_path_factory.mktemp("runs") / "interrupted"
    with pytest.raises(Interrupt):
        train_cv(
            competition,
            store,
            run_dir=run_dir,
            config=CONFIG,
            progress=False,
            callbacks=[InterruptAfter(0)],
        )
    return run_dir


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


# ---------------------------------------------------------------------------- run folder
def test_full_run_writes_every_artefact(cv_run, training_data):
    result, run_dir = cv_run
    competition, _ = training_data
    assert Config.from_file(run_dir / "config.json") == CONFIG
    assert read_json(run_dir / "classes.json") == list(competition.classes)
    folds = pd.read_csv(run_dir / "folds.csv")
    assert list(folds.columns) == ["filename", "label", "fold"]
    for k in range(3):
        fdir = RunDir(run_dir).fold_dir(ARCH, k)
        for name in (MODEL_FILE, CHECKPOINT_FILE, LOG_FILE, DONE_FILE, FOLD_OOF_FILE):
            assert (fdir / name).is_file(), fdir / name
        log = pd.read_csv(fdir / LOG_FILE)
        assert log["epoch"].tolist() == [0, 1]
        assert {"train_loss", "valid_loss", "accuracy", "f1_macro", "f1_weighted"} <= set(log)
        done = read_json(fdir / DONE_FILE)
        assert done["best_epoch"] in (0, 1)
        assert done["best_score"] == pytest.approx(log["f1_macro"].max())
    oof = pd.read_csv(run_dir / "oof" / f"{ARCH}.csv")
    assert list(oof.columns) == ["filename", "label", "fold", *competition.classes]
    report = read_json(run_dir / "cv_report.json")
    entry = report["architectures"][ARCH]
    assert [f["fold"] for f in entry["folds"]] == [0, 1, 2]
    assert set(entry["overall"]) == {"accuracy", "f1_macro", "f1_weighted"}
    assert set(entry["per_class"]) == set(competition.classes)
    assert set(entry["per_class"]["sad"]) == {"precision", "recall", "f1", "support"}
    assert sum(v["support"] for v in entry["per_class"].values()) == len(competition.train)
    text = (run_dir / "cv_report.md").read_text()
    assert f"## {ARCH}" in text
    assert "| sad |" in text
    assert result.scores("accuracy")[ARCH] == entry["overall"]["accuracy"]


def test_oof_covers_every_training_clip_exactly_once(cv_run, training_data):
    result, run_dir = cv_run
    competition, _ = training_data
    oof = read_csv(run_dir / "oof" / f"{ARCH}.csv")
    assert sorted(oof["filename"]) == sorted(competition.train["filename"])
    assert not oof["filename"].duplicated().any()
    folds = pd.read_csv(run_dir / "folds.csv").set_index("filename")
    assert (oof.set_index("filename")["fold"] == folds.loc[oof["filename"], "fold"]).all()
    probs = oof[list(competition.classes)].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(result.oof_probabilities(ARCH), probs)


def test_oof_comes_from_the_best_weights_and_saved_model_needs_raw_windows(cv_run, training_data):
    _, run_dir = cv_run
    competition, store = training_data
    oof = pd.read_csv(run_dir / "oof" / f"{ARCH}.csv")
    rows = {name: i for i, name in enumerate(store.filenames)}
    for k in range(3):
        part = oof[oof["fold"] == k]
        model = load_fold_model(run_dir, arch=ARCH, fold=k, device="cpu")
        assert isinstance(model, NormalizedModel)
        assert not model.training
        done = read_json(RunDir(run_dir).fold_dir(ARCH, k) / DONE_FILE)
        np.testing.assert_allclose(
            model.mean.flatten().numpy(), done["normalization"]["mean"], rtol=1e-5
        )
        x = torch.from_numpy(store.stack([rows[n] for n in part["filename"]]))
        with torch.no_grad():
            probs = torch.softmax(model(x), dim=1).numpy()
        np.testing.assert_allclose(probs, part[list(competition.classes)].to_numpy(), atol=1e-5)


def test_rerun_skips_every_finished_fold(cv_run, training_data, tmp_path):
    result, reference = cv_run
    competition, store = training_data
    run_dir = _copy(reference, tmp_path / "run")  # the rerun rewrites the OOF and CV report
    stamps = {
        k: (RunDir(run_dir).fold_dir(ARCH, k) / MODEL_FILE).stat().st_mtime_ns for k in range(3)
    }
    recorder = EpochRecorder()
    again = train_cv(
        competition, store, run_dir=run_dir, config=CONFIG, progress=False, callbacks=[recorder]
    )
    assert recorder.fits == []
    assert again.skipped == [(ARCH, 0), (ARCH, 1), (ARCH, 2)]
    assert again.trained == []
    assert stamps == {
        k: (RunDir(run_dir).fold_dir(ARCH, k) / MODEL_FILE).stat().st_mtime_ns for k in range(3)
    }
    pd.testing.assert_frame_equal(again.oof[ARCH], result.oof[ARCH])


def test_same_seed_same_oof_on_cpu(cv_run, training_data, tmp_path):
    _, run_dir = cv_run
    competition, store = training_data
    train_cv(competition, store, run_dir=tmp_path, config=CONFIG, progress=False)
    assert (tmp_path / "folds.csv").read_bytes() == (run_dir / "folds.csv").read_bytes()
    oof_file = f"oof/{ARCH}.csv"
    assert (tmp_path / oof_file).read_bytes() == (run_dir / oof_file).read_bytes()


# ---------------------------------------------------------------------------- resume
def test_interrupted_fold_resumes_at_next_epoch(cv_run, interrupted_run, training_data, tmp_path):
    _, reference = cv_run
    competition, store = training_data
    run_dir = _copy(interrupted_run, tmp_path / "run")
    fdir = RunDir(run_dir).fold_dir(ARCH, 0)
    assert (fdir / CHECKPOINT_FILE).is_file()
    assert not (fdir / DONE_FILE).exists()
    assert pd.read_csv(fdir / LOG_FILE)["epoch"].tolist() == [0]

    recorder = EpochRecorder()
    with pytest.raises(Interrupt):  # stop before fold 1 to save time
        train_cv(
            competition,
            store,
            run_dir=run_dir,
            config=CONFIG,
            progress=False,
            callbacks=[recorder, StopAtFit(1)],
        )
    assert recorder.fits == [[1]]  # fold 0 trained its second epoch only
    assert (fdir / DONE_FILE).is_file()
    assert pd.read_csv(fdir / LOG_FILE)["epoch"].tolist() == [0, 1]
    # Model, optimiser, schedule and random state are restored: the same predictions as
    # without the interruption.
    reference_oof = RunDir(reference).fold_dir(ARCH, 0) / FOLD_OOF_FILE
    assert (fdir / FOLD_OOF_FILE).read_bytes() == reference_oof.read_bytes()
    resumed = torch.load(fdir / MODEL_FILE, weights_only=True)
    expected = torch.load(RunDir(reference).fold_dir(ARCH, 0) / MODEL_FILE, weights_only=True)
    assert resumed.keys() == expected.keys()
    assert all(torch.equal(resumed[k], expected[k]) for k in expected)


def test_resume_never_replaces_better_weights(interrupted_run, training_data, tmp_path):
    competition, store = training_data
    run_dir = _copy(interrupted_run, tmp_path / "run")
    fdir = RunDir(run_dir).fold_dir(ARCH, 0)
    # Pretend epoch 0 scored a (perfect) f1_macro of 1.0: no resumed epoch can beat it.
    state = torch.load(fdir / CHECKPOINT_FILE, weights_only=True)
    state["best"], state["best_epoch"] = 1.0, 0
    torch.save(state, fdir / CHECKPOINT_FILE)
    best_bytes = (fdir / MODEL_FILE).read_bytes()

    with pytest.raises(Interrupt):  # stop before fold 1 to save time
        train_cv(
            competition,
            store,
            run_dir=run_dir,
            config=CONFIG,
            progress=False,
            callbacks=[StopAtFit(1)],
        )
    assert (fdir / MODEL_FILE).read_bytes() == best_bytes
    done = read_json(fdir / DONE_FILE)
    assert (done["best_epoch"], done["best_score"]) == (0, 1.0)
    assert pd.read_csv(fdir / LOG_FILE)["epoch"].tolist() == [0, 1]


def test_truncated_checkpoint_names_fold_file_and_fix(interrupted_run, training_data, tmp_path):
    competition, store = training_data
    run_dir = _copy(interrupted_run, tmp_path / "run")
    ckpt = RunDir(run_dir).fold_dir(ARCH, 0) / CHECKPOINT_FILE
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        train_cv(competition, store, run_dir=run_dir, config=CONFIG, progress=False)
    message = str(info.value)
    assert f"{ARCH} fold 0" in message
    assert str(ckpt) in message
    assert "delete it" in message
    # Deleting it, as the message says, restarts the fold from its first epoch.
    ckpt.unlink()
    recorder = EpochRecorder()
    with pytest.raises(Interrupt):
        train_cv(
            competition,
            store,
            run_dir=run_dir,
            config=CONFIG,
            progress=False,
            callbacks=[recorder, StopAtFit(1)],
        )
    assert recorder.fits == [[0, 1]]


def test_fold_killed_after_its_last_epoch_only_predicts(cv_run, training_data, tmp_path):
    _, reference = cv_run
    competition, store = training_data
    run_dir = _copy(reference, tmp_path / "run")
    fdir = RunDir(run_dir).fold_dir(ARCH, 1)
    expected = read_json(fdir / DONE_FILE)
    (fdir / DONE_FILE).unlink()
    (fdir / FOLD_OOF_FILE).unlink()
    recorder = EpochRecorder()
    result = train_cv(
        competition, store, run_dir=run_dir, config=CONFIG, progress=False, callbacks=[recorder]
    )
    assert recorder.fits == []
    assert result.trained == [(ARCH, 1)]
    done = read_json(fdir / DONE_FILE)
    assert (done["best_epoch"], done["best_score"]) == (
        expected["best_epoch"],
        expected["best_score"],
    )
    oof_file = RunDir(reference).fold_dir(ARCH, 1) / FOLD_OOF_FILE
    assert (fdir / FOLD_OOF_FILE).read_bytes() == oof_file.read_bytes()


def test_damaged_model_file_is_a_checkpoint_error(cv_run, tmp_path):
    _, reference = cv_run
    run_dir = _copy(reference, tmp_path / "run")
    path = RunDir(run_dir).fold_dir(ARCH, 2) / MODEL_FILE
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=rf"{ARCH} fold 2: .*model\.pth is damaged"):
        load_fold_model(run_dir, arch=ARCH, fold=2, device="cpu")
    with pytest.raises(TrainingError, match="fold not finished"):
        load_fold_model(run_dir, arch=ARCH, fold=7, device="cpu")


# ---------------------------------------------------------------------------- errors
def test_unknown_architecture_fails_before_any_training(training_data, tmp_path):
    competition, store = training_data
    assert timm.is_model(ARCH)
    assert not timm.is_model("resnet_does_not_exist")
    config = CONFIG.override({"train.architectures": [ARCH, "resnet_does_not_exist"]})
    with pytest.raises(TrainingError, match="'resnet_does_not_exist' is not a timm model"):
        train_cv(competition, store, run_dir=tmp_path / "run", config=config, progress=False)
    assert not (tmp_path / "run").exists()


def test_class_with_fewer_clips_than_folds_fails_before_training(training_data_factory, tmp_path):
    competition, store = training_data_factory(tmp_path, counts={"a": 6, "b": 2})
    with pytest.raises(TrainingError, match=r"'b': 2.*fewer clips than folds"):
        train_cv(competition, store, run_dir=tmp_path / "run", config=CONFIG, progress=False)
    assert not (tmp_path / "run" / "models").exists()


def test_other_config_in_same_run_folder_is_refused(cv_run, training_data):
    _, run_dir = cv_run
    competition, store = training_data
    with pytest.raises(ConfigError, match=r"train.epochs.*new run folder"):
        train_cv(
            competition,
            store,
            run_dir=run_dir,
            config=CONFIG.override({"train.epochs": 3}),
            progress=False,
        )


def test_early_stopping_ends_a_fold_without_improvement(training_data, tmp_path):
    competition, store = training_data
    config = CONFIG.override(
        {"train.n_folds": 2, "train.epochs": 4, "train.early_stopping_patience": 1,
         "train.lr": 1e-12, "train.mixup": 0.0, "train.monitor": "accuracy"}
    )  # fmt: skip
    recorder = EpochRecorder()
    with pytest.raises(Interrupt):  # one fold is enough
        train_cv(
            competition,
            store,
            run_dir=tmp_path,
            config=config,
            progress=False,
            callbacks=[recorder, StopAtFit(1)],
        )
    assert recorder.fits == [[0, 1]]
    done = read_json(RunDir(tmp_path).fold_dir(ARCH, 0) / DONE_FILE)
    assert done["stopped_early"]
    assert done["epochs_run"] == 2
    assert done["best_epoch"] == 0
    assert pd.read_csv(RunDir(tmp_path).fold_dir(ARCH, 0) / LOG_FILE)["epoch"].tolist() == [0, 1]


# ---------------------------------------------------------------------------- models
def test_pretrained_weights_from_a_local_file_or_folder(tmp_path):
    source = timm.create_model(ARCH, pretrained=False)
    torch.save(source.state_dict(), tmp_path / f"{ARCH}.pth")
    hf = tmp_path / "hf" / f"{ARCH}.r160_in1k"
    hf.mkdir(parents=True)
    torch.save(source.state_dict(), hf / "pytorch_model.bin")
    for weights in (tmp_path, tmp_path / f"{ARCH}.pth", tmp_path / "hf"):
        model = build_model(ARCH, 5, pretrained=True, weights_dir=weights)
        assert model.get_classifier().out_features == 5
        first = next(iter(source.state_dict()))
        torch.testing.assert_close(model.state_dict()[first], source.state_dict()[first])
    assert resolve_weights_file(ARCH, tmp_path / "hf") == hf / "pytorch_model.bin"


def test_missing_local_weights_fail_before_training(training_data, tmp_path):
    competition, store = training_data
    config = CONFIG.override({"train.pretrained": True, "train.weights_dir": str(tmp_path / "w")})
    with pytest.raises(TrainingError, match=str(tmp_path / "w")):
        train_cv(competition, store, run_dir=tmp_path / "run", config=config, progress=False)
    (tmp_path / "w").mkdir()
    with pytest.raises(TrainingError, match=rf"no pretrained weights for '{ARCH}'"):
        train_cv(competition, store, run_dir=tmp_path / "run", config=config, progress=False)
    assert not (tmp_path / "run").exists()


def test_image_normalization_is_explicit(training_data):
    _, store = training_data
    from emo_utils.models import image_statistics

    model = build_model(ARCH, 3, pretrained=False)
    mean, std = image_statistics("dataset", store=store, rows=range(len(store)), model=model)
    images = store.stack()
    np.testing.assert_allclose(mean, images.mean(axis=(0, 2, 3)), rtol=1e-4)
    np.testing.assert_allclose(std, images.std(axis=(0, 2, 3)), rtol=1e-4)
    mean, std = image_statistics("imagenet", store=store, rows=[0], model=model)
    np.testing.assert_allclose(mean, model.pretrained_cfg["mean"])
    mean, std = image_statistics("none", store=store, rows=[0], model=model)
    assert mean.tolist() == [0, 0, 0]
    assert std.tolist() == [1, 1, 1]


# ---------------------------------------------------------------------------- data
def test_dataloaders_read_cached_windows_and_augment_training_batches_only(training_data):
    _, store = training_data
    rows = list(range(len(store)))
    targets = [0] * len(store)
    loaders = {}
    for augment in (False, True):
        overrides = (
            {}
            if augment
            else {"train.time_shift": 0.0, "train.freq_mask": 0.0, "train.time_mask": 0.0}
        )
        config = CONFIG.override({"train.batch_size": 24, **overrides})
        loaders[augment] = make_dataloaders(
            store, train_rows=rows, train_targets=targets, valid_rows=rows,
            valid_targets=targets, config=config, device="cpu",
        )  # fmt: skip
    raw = torch.from_numpy(store.stack(rows))
    x_valid, _ = loaders[True].valid.one_batch()
    torch.testing.assert_close(torch.as_tensor(x_valid), raw)  # validation: never augmented
    x_plain, _ = loaders[False].train.one_batch()
    x_aug, _ = loaders[True].train.one_batch()
    assert x_plain.shape == x_aug.shape == raw.shape
    # The same multiset of clips, untouched without augmentation ...
    sums = sorted(raw.sum(dim=(1, 2, 3)).tolist())
    np.testing.assert_allclose(
        sorted(torch.as_tensor(x_plain).sum(dim=(1, 2, 3)).tolist()), sums, rtol=1e-5
    )
    # ... and changed with it.
    assert not torch.allclose(torch.as_tensor(x_aug).sort(dim=0).values, raw.sort(dim=0).values)


def test_random_training_crop_reads_different_windows_of_long_clips(
    training_data_factory, tmp_path
):
    _, store = training_data_factory(tmp_path, shape=(1, 8, 40))
    short = FeatureStore.from_arrays(
        store.filenames, [store.window(i) for i in range(len(store))], window_frames=10
    )  # 40-frame clips, 10-frame windows
    config = CONFIG.override(
        {"audio.train_crop": "random", "train.batch_size": 24, "train.time_shift": 0.0,
         "train.freq_mask": 0.0, "train.time_mask": 0.0}
    )  # fmt: skip
    rows, targets = [0] * 24, [0] * 24
    dls = make_dataloaders(
        short, train_rows=rows, train_targets=targets, valid_rows=rows, valid_targets=targets,
        config=config, device="cpu",
    )  # fmt: skip
    full = store.window(0)  # (1, 8, 40)
    x, _ = dls.train.one_batch()
    starts = set()
    for window in torch.as_tensor(x).numpy():
        matches = [s for s in range(31) if np.array_equal(full[..., s : s + 10], window)]
        assert matches  # every item is a window of the clip
        starts.add(matches[0])
    assert len(starts) > 3
    x_valid, _ = dls.valid.one_batch()  # validation: always the first window ("start")
    assert all(np.array_equal(full[..., :10], w) for w in torch.as_tensor(x_valid).numpy())


def test_time_shift_rolls_and_masks_fill_a_band_with_the_channel_mean():
    from fastai.torch_core import TensorImage

    torch.manual_seed(0)
    x = TensorImage(torch.randn(4, 3, 16, 20))
    shifted = torch.as_tensor(TimeShift(0.5)(x, split_idx=0))
    for b in range(4):  # each image is a roll of itself along time
        assert any(torch.equal(torch.roll(x[b], s, dims=-1), shifted[b]) for s in range(20))
    assert torch.equal(torch.as_tensor(TimeShift(0.5)(x, split_idx=1)), torch.as_tensor(x))

    y = TensorImage(torch.randn(64, 2, 16, 20))
    for mask, axis in ((FrequencyMask(0.5), -2), (TimeMask(0.5), -1)):
        out = torch.as_tensor(mask(y, split_idx=0))
        changed = out != torch.as_tensor(y)
        other = -1 if axis == -2 else -2
        # Whole lines along the other axis change, and only in a band at most half wide.
        lines = changed.any(dim=other)  # (B, C, size)
        assert lines.sum(dim=-1).max() <= y.shape[axis] // 2
        assert lines.any()
        fill = torch.as_tensor(y).mean(dim=(-2, -1), keepdim=True).expand_as(out)
        torch.testing.assert_close(out[changed], fill[changed])


def test_augmentations_follow_the_config():
    config = CONFIG.train
    assert [type(t) for t in batch_augmentations(config)] == [TimeShift, FrequencyMask, TimeMask]
    off = Config().override({"train.time_shift": 0, "train.freq_mask": 0, "train.time_mask": 0})
    assert batch_augmentations(off.train) == []


def test_run_files_are_plain_json(cv_run):
    _, run_dir = cv_run
    done = json.loads((RunDir(run_dir).fold_dir(ARCH, 0) / DONE_FILE).read_text())
    assert done["monitor"] == "f1_macro"
    assert done["normalization"]["name"] == "dataset"


def test_progress_bars_are_fastais_and_can_be_silenced(training_data, capsys, monkeypatch):
    monkeypatch.setattr("emo_utils.train.learner.interactive", lambda: True)  # a terminal
    _, store = training_data
    rows, targets = list(range(len(store))), [i % 3 for i in range(len(store))]
    dls = make_dataloaders(
        store, train_rows=rows, train_targets=targets, valid_rows=rows[:8],
        valid_targets=targets[:8], config=CONFIG, device="cpu",
    )  # fmt: skip
    for progress in (True, False):
        model = NormalizedModel(build_model(ARCH, 3, pretrained=False), [0.0] * 3, [1.0] * 3)
        learn = make_learner(
            dls,
            model,
            config=CONFIG.train,
            task="classification",
            n_classes=3,
            train_targets=targets,
            progress=progress,
        )
        assert isinstance(getattr(learn, "progress", None), ProgressCallback) == progress
        learn.fit_one_cycle(1)
        out = capsys.readouterr().out
        assert ("f1_macro" in out) == progress  # the per-epoch table


def test_without_a_terminal_training_prints_one_plain_line_per_epoch(
    training_data, capfd, tmp_path
):
    from emo_utils._console import interactive

    competition, store = training_data
    config = CONFIG.override({"train.n_folds": 3, "train.epochs": 2})
    assert not interactive()  # capfd's stdout is not a TTY
    train_cv(competition, store, run_dir=tmp_path / "run", config=config, progress=True)
    out = capfd.readouterr().out
    assert "\r" not in out
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 3 * 2  # folds x epochs
    assert all("train_loss" in line and "f1_macro" in line for line in epoch_lines)
    assert sum(line.startswith(f"{ARCH} fold ") for line in out.splitlines()) == 3
