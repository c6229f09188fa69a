"""On-the-fly features (``train.features = "on_the_fly"``): images computed per batch from
waveform windows, in training and prediction, equal to the cached images."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from audio_factory import tone, write_signal
from cli_runner import run_cli, sets
from fastai.torch_core import TensorCategory, TensorImage, set_seed

from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.errors import ConfigError, EmoUtilsWarning, TrainingError
from emo_utils.features.on_the_fly import (
    ON_THE_FLY_INPUT,
    OnTheFlyModel,
    store_kind,
    waveform_images,
)
from emo_utils.infer.predict import predict_test
from emo_utils.models import build_inputs, load_fold_model
from emo_utils.runs import RunDir
from emo_utils.train import train_cv
from emo_utils.train.data import make_dataloaders
from emo_utils.train.on_the_fly import on_the_fly_transforms
from emo_utils.train.waveform_augment import TimeStretch, WaveformAugment

SR = 16000

#: The tests' settings (also given to the CLI as ``--set`` values).
OVERRIDES = {
    "audio.sample_rate": SR,
    "audio.duration": 1.0,
    "audio.max_duration": 1.0,
    "features.n_mels": 32,
    "features.n_fft": 512,
    "features.hop_length": 256,
    "features.cache_dtype": "float32",
    "train.features": "on_the_fly",
    "train.architectures": ["test_resnet"],
    "train.pretrained": False,
    "train.n_folds": 2,
    "train.epochs": 1,
    "train.batch_size": 4,
    "train.lr": 3e-3,
    "train.mixup": 0.0,
    "train.time_shift": 0.0,
    "train.freq_mask": 0.0,
    "train.time_mask": 0.0,
    "train.image_normalization": "dataset",
}
CONFIG = Config().override(OVERRIDES)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Low tones 'calm', high tones 'alert', 0.6-1.0 s (short ones are zero-padded)."""
    root = tmp_path_factory.mktemp("otf-data")
    names, labels = [], []
    for label, freq in (("calm", 300.0), ("alert", 3000.0)):
        for j in range(4):
            name = f"{label}_{j}.wav"
            y = tone(sr=SR, seconds=0.6 + 0.2 * (j % 3), freq=freq * (1 + 0.05 * j), noise=0.05)
            write_signal(root / "train" / name, y, sr=SR)
            names.append(name)
            labels.append(label)
    write_signal(root / "test" / "t0.wav", tone(sr=SR, seconds=1.0, freq=320.0), sr=SR)
    write_signal(root / "test" / "t1.wav", tone(sr=SR, seconds=0.7, freq=2900.0), sr=SR)
    pd.DataFrame({"filename": names, "emotion": labels}).to_csv(root / "train.csv", index=False)
    pd.DataFrame({"filename": ["t0.wav", "t1.wav"]}).to_csv(root / "test.csv", index=False)
    return root, load_competition(root, CONFIG.data)


def _inputs(comp, split, tmp_path, config=CONFIG):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoUtilsWarning)  # short clips are padded
        return build_inputs(
            comp, split, config=config, cache_dir=tmp_path / "cache", n_jobs=1, progress=False
        )


@pytest.fixture(scope="module")
def inputs(folder, tmp_path_factory):
    _root, comp = folder
    cache = tmp_path_factory.mktemp("otf-cache")
    return {split: _inputs(comp, split, cache) for split in ("train", "test")}


def test_the_run_reads_float32_waveforms_at_the_image_sample_rate(inputs):
    train = inputs["train"]
    assert list(train) == ["image", ON_THE_FLY_INPUT]
    waves = train[ON_THE_FLY_INPUT]
    assert waves.sample_rate == SR
    assert waves.frames.dtype == np.float32
    assert waves.image_shape == (1, 1, SR + 1)
    assert store_kind("image", CONFIG) == ON_THE_FLY_INPUT
    assert store_kind("image", CONFIG.override({"train.features": "cache"})) == "image"


def test_the_images_computed_per_batch_equal_the_cached_images(inputs):
    images, waves = inputs["train"]["image"], inputs["train"][ON_THE_FLY_INPUT]
    rows = np.arange(len(images))
    cached = np.stack([images.window(int(i), "start") for i in rows])
    windows = torch.from_numpy(np.stack([waves.window(int(i), "start") for i in rows]))
    computed = waveform_images(windows, sample_rate=SR, config=CONFIG.features).numpy()
    assert computed.shape == cached.shape
    # "fixed" normalisation maps 80 dB to 1: 1e-3 dB is 1.25e-5.
    assert np.abs(computed - cached).max() < 2e-5


def test_the_validation_loader_gives_the_cached_images(inputs):
    images, waves = inputs["train"]["image"], inputs["train"][ON_THE_FLY_INPUT]
    rows = np.arange(len(images))
    targets = np.arange(len(rows)) % 2
    dls = make_dataloaders(
        waves,
        train_rows=rows,
        train_targets=targets,
        valid_rows=rows,
        valid_targets=targets,
        config=CONFIG,
        device=torch.device("cpu"),
        batch_transforms=on_the_fly_transforms(CONFIG),
    )
    x, _y = dls.valid.one_batch()
    cached = np.stack([images.window(int(i), "start") for i in rows[: len(x)]])
    assert tuple(x.shape) == cached.shape
    assert np.abs(x.numpy() - cached).max() < 2e-5


def test_an_on_the_fly_run_trains_writes_oof_and_predicts_like_the_cached_images(
    folder, inputs, tmp_path
):
    _root, comp = folder
    run_dir = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoUtilsWarning)  # one epoch learns little
        result = train_cv(comp, inputs["train"], run_dir=run_dir, config=CONFIG, progress=False)
    run = RunDir(run_dir)
    oof = pd.read_csv(run.oof_file("test_resnet"))
    assert sorted(oof["filename"]) == sorted(comp.train["filename"])
    assert np.isfinite(result.oof_probabilities("test_resnet")).all()

    # Prediction feeds the fold model the images of the waveform windows, which are the
    # cached images: the same logits as the model fed the image cache directly.
    model = load_fold_model(run_dir, arch="test_resnet", fold=0, device="cpu")
    test = inputs["test"]
    windows = torch.from_numpy(
        np.stack([test[ON_THE_FLY_INPUT].window(i, "start") for i in range(2)])
    )
    cached = torch.from_numpy(np.stack([test["image"].window(i, "start") for i in range(2)]))
    with torch.inference_mode():
        on_the_fly = OnTheFlyModel(model, sample_rate=SR, config=CONFIG.features)(windows)
        direct = model(cached)
    torch.testing.assert_close(on_the_fly, direct, atol=1e-4, rtol=1e-4)

    probs = predict_test(test, run_dir=run_dir, progress=False, write=False)["test_resnet"]
    assert probs.shape == (2, 2)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_an_on_the_fly_run_without_its_waveforms_is_refused(folder, inputs, tmp_path):
    _root, comp = folder
    with pytest.raises(TrainingError, match=r"on_the_fly_waveform"):
        train_cv(
            comp,
            {"image": inputs["train"]["image"]},
            run_dir=tmp_path / "run",
            config=CONFIG,
            progress=False,
        )


def test_the_mode_is_validated():
    with pytest.raises(ConfigError, match=r"train\.features"):
        Config().override({"train.features": "gpu"})


# ---------------------------------------------------------------------------- waveform augmentations
AUGMENTED = CONFIG.override(
    {
        "train.waveform_augmentations": [
            "gain:1.0",
            "shift:1.0",
            "noise:1.0",
            "pitch_shift:1.0",
            "time_stretch:1.0",
        ]
    }
)


def _loaders(inputs, config):
    images, waves = inputs["train"]["image"], inputs["train"][ON_THE_FLY_INPUT]
    rows = np.arange(len(images))
    targets = np.arange(len(rows)) % 2
    return make_dataloaders(
        waves,
        train_rows=rows,
        train_targets=targets,
        valid_rows=rows,
        valid_targets=targets,
        config=config,
        device=torch.device("cpu"),
        batch_transforms=on_the_fly_transforms(config),
    )


def _augmented_batch(inputs, config, seed):
    """The images of one training batch (fixed clips) after the waveform augmentations."""
    waves = inputs["train"][ON_THE_FLY_INPUT]
    x = TensorImage(torch.from_numpy(np.stack([waves.window(i, "start") for i in range(4)])))
    set_seed(seed)
    dl = _loaders(inputs, config).train
    dl.before_iter()  # as at the start of an epoch: the training-only transforms switch on
    return dl.after_batch((x, TensorCategory(torch.zeros(4, dtype=torch.long))))[0]


def test_waveform_augmentations_change_training_batches_and_follow_the_seed(inputs):
    plain = _augmented_batch(inputs, CONFIG, 0)
    augmented = _augmented_batch(inputs, AUGMENTED, 0)
    assert augmented.shape == plain.shape
    assert (augmented - plain).abs().amax(dim=(1, 2, 3)).min() > 1e-2  # every clip changed
    torch.testing.assert_close(_augmented_batch(inputs, AUGMENTED, 0), augmented)
    assert not torch.equal(_augmented_batch(inputs, AUGMENTED, 1), augmented)


@pytest.mark.parametrize("name", ["gain", "shift", "noise", "pitch_shift", "time_stretch"])
def test_each_waveform_augmentation_changes_the_sound(name, inputs):
    waves = inputs["train"][ON_THE_FLY_INPUT]
    x = TensorImage(torch.from_numpy(np.stack([waves.window(i, "start") for i in range(2)])))
    set_seed(0)
    y = WaveformAugment([f"{name}:1.0"], sample_rate=SR)(x, split_idx=0)
    assert y.shape == x.shape
    assert (y - x).abs().amax(dim=(1, 2, 3)).min() > 1e-3


@pytest.mark.parametrize(("rates", "seconds"), [((0.799, 0.801), 0.5), ((1.249, 1.251), 0.32)])
def test_time_stretch_changes_the_tempo_and_keeps_the_pitch_and_the_centre(rates, seconds):
    sr, n = 16000, 32000
    t = np.arange(n) / sr
    x = np.where((t >= 0.8) & (t < 1.2), 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0)
    batch = torch.from_numpy(np.stack([x, x]).astype(np.float32))[:, None, :]
    set_seed(0)
    y = TimeStretch(*rates, p=1.0, sample_rate=sr, output_type="dict")(batch, sample_rate=sr)
    y = y.samples[0, 0].numpy()
    assert y.shape == (n,)
    sounding = np.flatnonzero(np.abs(y) > 0.1)
    assert abs((sounding[-1] - sounding[0]) / sr - seconds) < 0.016  # 0.4 s / rate
    assert abs((sounding[0] + sounding[-1]) / 2 / sr - 1.0) < 0.016  # still centred
    assert np.argmax(np.abs(np.fft.rfft(y))) * sr / n == pytest.approx(1000.0, abs=1.0)


def test_time_stretch_refuses_bad_rates_and_leaves_a_window_shorter_than_a_frame():
    with pytest.raises(ConfigError, match="time_stretch"):
        TimeStretch(1.25, 0.8, p=1.0)
    short = torch.ones((2, 1, 300))
    out = TimeStretch(p=1.0, output_type="dict")(short, sample_rate=16000).samples
    torch.testing.assert_close(out, short)


def test_validation_never_augments(inputs):
    images = inputs["train"]["image"]
    dls = _loaders(inputs, AUGMENTED)
    x, _y = dls.valid.one_batch()
    cached = np.stack([images.window(i, "start") for i in range(len(x))])
    assert np.abs(x.numpy() - cached).max() < 2e-5


@pytest.mark.parametrize(
    ("entries", "features"),
    [
        (["gain:0.5", "echo:0.5"], "on_the_fly"),
        (["gain:1.5"], "on_the_fly"),
        (["gain"], "on_the_fly"),
        (["gain:0.5"], "cache"),
    ],
)
def test_waveform_augmentations_are_validated(entries, features):
    with pytest.raises(ConfigError, match=r"train\.waveform_augmentations"):
        Config().override({"train.features": features, "train.waveform_augmentations": entries})


# ---------------------------------------------------------------------------- the command line
def test_train_and_predict_on_the_fly_with_augmentation_through_the_cli(folder, tmp_path):
    root, _comp = folder
    run_dir, subs = tmp_path / "run", tmp_path / "subs"
    overrides = sets(
        *(f"{k}={json.dumps(v)}" for k, v in OVERRIDES.items()),
        'train.waveform_augmentations=["gain:0.5", "noise:0.5"]',
    )
    common = ["--data", str(root), "--run", str(run_dir), "--cache", str(tmp_path / "cache")]
    run_cli("train", *common, *overrides, cwd=tmp_path)
    run_cli("predict", *common[:4], "--submissions", str(subs), cwd=tmp_path)
    saved = RunDir(run_dir).read_config().train
    assert saved.features == "on_the_fly"
    assert saved.waveform_augmentations == ("gain:0.5", "noise:0.5")
    assert (tmp_path / "cache").is_dir()
    test = pd.read_csv(RunDir(run_dir).predictions_file("test_resnet"))
    assert list(test["filename"]) == ["t0.wav", "t1.wav"]
    assert np.isfinite(test[["alert", "calm"]].to_numpy()).all()
