"""The classical model family: clip statistics (cached like the images) and scikit-learn
models trained on the same folds as the CNNs, with the same OOF and prediction files."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from audio_factory import tone, write_signal, write_text_as_audio
from cli_runner import run_cli, small_demo

from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.errors import ConfigError, EmoUtilsWarning, TrainingError
from emo_utils.features import build_cache, build_statistics, clip_statistics
from emo_utils.features import statistics as stats_module
from emo_utils.features.statistics import statistic_names
from emo_utils.infer.predict import predict_test
from emo_utils.models import build_inputs, check_architectures
from emo_utils.models.classical import build_classical_model, fit_estimator, predict_estimator
from emo_utils.runs import RunDir
from emo_utils.train import train_cv

SR = 16000
CONFIG = Config().override(
    {
        "audio.sample_rate": SR,
        "features.n_mels": 32,
        "features.n_fft": 512,
        "features.hop_length": 256,
        "train.n_folds": 3,
        "train.epochs": 1,
        "train.batch_size": 8,
        "train.pretrained": False,
    }
)


def _write_folder(root: Path, *, n_per_class: int = 8, bad_test: bool = False) -> Path:
    """Low tones are 'calm', high tones 'alert'; noisy, of several lengths."""
    names, labels = [], []
    for label, freqs in (("calm", (220.0, 330.0)), ("alert", (2500.0, 3500.0))):
        for j in range(n_per_class):
            name = f"{label}_{j:02d}.wav"
            y = tone(
                sr=SR,
                seconds=0.6 + 0.2 * (j % 4),
                freq=freqs[j % 2] * (1 + 0.03 * j),
                noise=0.05,
                seed=j,
            )
            write_signal(root / "train" / name, y, sr=SR)
            names.append(name)
            labels.append(label)
    test = ["t0.wav", "t1.wav"]
    write_signal(
        root / "test" / "t0.wav", tone(sr=SR, seconds=1.0, freq=250.0, noise=0.05, seed=9), sr=SR
    )
    write_signal(
        root / "test" / "t1.wav", tone(sr=SR, seconds=1.0, freq=3000.0, noise=0.05, seed=8), sr=SR
    )
    if bad_test:
        write_text_as_audio(root / "test" / "t2.wav")
        test.append("t2.wav")
    pd.DataFrame({"filename": names, "emotion": labels}).to_csv(root / "train.csv", index=False)
    pd.DataFrame({"filename": test}).to_csv(root / "test.csv", index=False)
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = _write_folder(tmp_path_factory.mktemp("classical"), bad_test=True)
    return root, load_competition(root, CONFIG.data)


# ---------------------------------------------------------------------------- statistics
def test_statistics_name_every_value_and_tell_sounds_apart():
    cfg = CONFIG.statistics
    names = statistic_names(sample_rate=SR, config=cfg)
    low = clip_statistics(tone(sr=SR, seconds=1.0, freq=300.0)[:, 0], sample_rate=SR, config=cfg)
    high = clip_statistics(tone(sr=SR, seconds=1.0, freq=4000.0)[:, 0], sample_rate=SR, config=cfg)
    quiet = clip_statistics(
        tone(sr=SR, seconds=1.0, freq=300.0, amplitude=0.01)[:, 0], sample_rate=SR, config=cfg
    )
    silent = clip_statistics(np.zeros(SR, np.float32), sample_rate=SR, config=cfg)
    tiny = clip_statistics(np.full(10, 0.1, np.float32), sample_rate=SR, config=cfg)
    assert len(names) == len(set(names)) == low.shape[0] == tiny.shape[0]
    for v in (low, high, quiet, silent, tiny):
        assert np.isfinite(v).all()
    at = {n: i for i, n in enumerate(names)}
    assert high[at["centroid_0_mean"]] > 5 * low[at["centroid_0_mean"]]
    assert low[at["rms_0_mean"]] > quiet[at["rms_0_mean"]] + 30  # dB
    assert quiet[at["rms_0_mean"]] > silent[at["rms_0_mean"]]


def test_statistics_settings_are_validated_against_the_descriptor_registry():
    with pytest.raises(ConfigError, match=r"statistics\.descriptors"):
        Config().override({"statistics.descriptors": ["mfcc", "loudness"]})
    with pytest.raises(ConfigError, match=r"statistics\.percentiles"):
        Config().override({"statistics.percentiles": [10, 120]})
    few = Config().override({"statistics.descriptors": ["rms"], "statistics.percentiles": [50]})
    assert statistic_names(sample_rate=SR, config=few.statistics) == [
        "rms_0_mean",
        "rms_0_std",
        "rms_0_p50",
    ]


def test_statistics_are_cached_reused_and_recomputed_when_a_file_changes(tmp_path):
    root = _write_folder(tmp_path / "data", n_per_class=3)
    comp = load_competition(root, CONFIG.data)
    first = build_statistics(comp, "train", config=CONFIG, n_jobs=1, progress=False)
    assert first.stats["computed"] == 6
    assert first.ok.all()
    again = build_statistics(comp, "train", config=CONFIG, n_jobs=1, progress=False)
    assert again.stats["computed"] == 0
    np.testing.assert_array_equal(first.values, again.values)
    path = Path(comp.train["path"].iloc[0])
    write_signal(path, tone(sr=SR, seconds=1.5, freq=500.0), sr=SR)
    os.utime(path, ns=(1, 1))
    changed = build_statistics(comp, "train", config=CONFIG, n_jobs=1, progress=False)
    assert changed.stats["computed"] == 6
    assert not np.array_equal(changed.values[0], first.values[0])
    np.testing.assert_array_equal(changed.values[1:], first.values[1:])


def test_an_interrupted_build_resumes_from_its_finished_chunks(tmp_path, monkeypatch):
    root = _write_folder(tmp_path / "data", n_per_class=5)
    comp = load_competition(root, CONFIG.data)
    monkeypatch.setattr(stats_module, "CHUNK_SIZE", 4)
    real = stats_module._compute_chunk
    calls = []

    def killed_on_third(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(stats_module, "_compute_chunk", killed_on_third)
    with pytest.raises(KeyboardInterrupt):
        build_statistics(comp, "train", config=CONFIG, n_jobs=1, progress=False)
    monkeypatch.setattr(stats_module, "_compute_chunk", real)
    store = build_statistics(comp, "train", config=CONFIG, n_jobs=1, progress=False)
    assert (store.stats["computed"], store.stats["reused"]) == (2, 8)
    assert store.ok.all()
    assert np.isfinite(store.values).all()
    assert not list(store.directory.glob("chunks/*"))


def test_a_damaged_statistics_file_is_recomputed_with_a_warning(tmp_path):
    root = _write_folder(tmp_path / "data", n_per_class=2)
    comp = load_competition(root, CONFIG.data)
    store = build_statistics(comp, "train", config=CONFIG, n_jobs=1, progress=False)
    final = store.directory / "statistics.npz"
    final.write_bytes(final.read_bytes()[:100])
    with pytest.warns(EmoUtilsWarning, match="damaged cache file"):
        again = build_statistics(comp, "train", config=CONFIG, n_jobs=1, progress=False)
    assert again.stats["computed"] == 4
    np.testing.assert_array_equal(again.values, store.values)


def test_an_undecodable_test_file_gets_its_reason_and_no_values(folder):
    _, comp = folder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoUtilsWarning)
        store = build_statistics(comp, "test", config=CONFIG, n_jobs=1, progress=False)
    assert store.ok.tolist() == [True, True, False]
    assert store.failures()[0][0] == "t2.wav"
    assert store.failures()[0][1]
    assert np.isnan(store.values[2]).all()
    assert np.isfinite(store.values[:2]).all()


# ---------------------------------------------------------------------------- models
def test_unknown_classical_names_fail_fast_with_a_suggestion():
    with pytest.raises(TrainingError, match=r"did you mean.*logreg"):
        check_architectures(["classical:logre"])
    check_architectures(["classical:logreg", "classical:hgb", "resnet18"])


def test_multilabel_targets_get_one_binary_model_per_label():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    y = np.stack([x[:, 0] > 0, x[:, 1] > 0, np.zeros(60, bool)], axis=1).astype(int)
    model = fit_estimator(build_classical_model("logreg"), x, y, label_kind="multi", seed=0)
    p = predict_estimator(model, x, n_outputs=3, label_kind="multi")
    assert p.shape == (60, 3)
    assert ((p >= 0) & (p <= 1)).all()
    assert ((p[:, 0] > 0.5) == y[:, 0].astype(bool)).mean() > 0.9
    assert p[:, 2].max() < 0.5  # a label never present stays absent


def test_a_run_needing_statistics_refuses_to_start_without_them(folder, tmp_path):
    _, comp = folder
    config = CONFIG.override({"train.architectures": ["classical:logreg"]})
    with pytest.raises(TrainingError, match="'features'"):
        train_cv(
            comp,
            build_cache(comp, "train", config=config, n_jobs=1, progress=False),
            run_dir=tmp_path / "run",
            config=config,
            progress=False,
        )


def test_classical_oof_matches_the_cnn_oof_and_predicts_the_test_rows(folder, tmp_path):
    _, comp = folder
    config = CONFIG.override({"train.architectures": ["test_resnet", "classical:logreg"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoUtilsWarning)
        train = build_inputs(comp, "train", config=config, n_jobs=1, progress=False)
        test = build_inputs(comp, "test", config=config, n_jobs=1, progress=False)
        result = train_cv(comp, train, run_dir=tmp_path / "run", config=config, progress=False)
    run = RunDir(tmp_path / "run")
    cnn = pd.read_csv(run.oof_file("test_resnet"))
    classical = pd.read_csv(run.oof_file("classical:logreg"))
    assert list(classical.columns) == list(cnn.columns)
    assert classical[["filename", "label", "fold"]].equals(cnn[["filename", "label", "fold"]])
    probs = classical[list(result.classes)].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert result.scores("accuracy")["classical:logreg"] >= 0.9  # low vs high tones
    assert run.fold_file("classical:logreg", 0, "model.joblib").is_file()

    again = train_cv(comp, train, run_dir=run, config=config, progress=False)
    assert again.trained == []  # every fold of both families was finished

    predicted = predict_test(test, run_dir=run, progress=False, write=False)
    p = predicted["classical:logreg"]
    assert p.shape == (3, 2)
    assert np.isnan(p[2]).all()
    calm, alert = result.classes.index("calm"), result.classes.index("alert")
    assert p[0, calm] > 0.5
    assert p[1, alert] > 0.5


@pytest.mark.slow
def test_a_mixed_run_through_the_cli_writes_every_test_row_in_order(tmp_path):
    proc = run_cli(*small_demo(tmp_path, "train.architectures=[test_resnet, classical:logreg]"))
    test = pd.read_csv(tmp_path / "data" / "test.csv")
    subs = list((tmp_path / "subs").glob("run__*.csv"))
    sub = pd.read_csv(
        next(p for p in subs if "probabilities" not in p.name and "failures" not in p.name)
    )
    assert sub.iloc[:, 0].tolist() == test.iloc[:, 0].tolist()
    assert sub.iloc[:, 1].notna().all()
    assert "CV accuracy classical:logreg" in proc.stdout
