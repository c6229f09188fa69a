"""Run reports and EDA plots: numbers shown match scikit-learn, files land in RUN/report/."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import timm
import torch
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.ensemble import evaluate_ensembles
from emo_utils.errors import ConfigError, DataError, EmoUtilsWarning
from emo_utils.features import FeatureStore
from emo_utils.fileio import write_csv, write_json
from emo_utils.infer.embed import embed
from emo_utils.models import NormalizedModel
from emo_utils.reports.eda import (
    dataset_overview,
    plot_channel_grid,
    plot_class_balance,
    plot_durations,
    plot_formats,
    plot_signal_statistics,
    signal_statistics,
)
from emo_utils.reports.plots import (
    classification_table,
    plot_classification_table,
    plot_confusion_matrix,
    plot_embedding_map,
    plot_roc_curves,
    plot_scores,
    plot_training_curves,
    save_figure,
)
from emo_utils.reports.run import make_run_report, read_training_logs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASSES = ("anger", "joy", "sadness")
ARCHS = ("test_resnet", "test_efficientnet")


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


def _predictions(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and noisy but informative probabilities."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(CLASSES)
    logits = 2.0 * np.eye(len(CLASSES))[y] + rng.normal(0, 1.2, (n, len(CLASSES)))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


def make_synthetic_run(
    run: Path, *, n: int = 60, n_folds: int = 3, epochs: int = 4, groups: bool = False
) -> Config:
    """A run folder following the design contract, without training anything."""
    config = Config().override(
        {
            "train.architectures": list(ARCHS),
            "train.n_folds": n_folds,
            "ensemble.metric": "f1_macro",
        }
    )
    config.save(run / "config.json")
    write_json(run / "classes.json", list(CLASSES))
    y, _ = _predictions(n)
    names = [f"{i}.mp3" for i in range(n)]
    folds = (np.arange(n) // len(CLASSES)) % n_folds  # every class in every fold
    labels = [CLASSES[i] for i in y]
    table = pd.DataFrame({"filename": names, "label": labels, "fold": folds})
    if groups:
        # Clips 0 and n_classes * n_folds (same fold, same class) are near-duplicates.
        table["group"] = [str(i) for i in range(n)]
        table.loc[len(CLASSES) * n_folds, "group"] = "0"
    write_csv(run / "folds.csv", table)
    for k, arch in enumerate(ARCHS):
        _, proba = _predictions(n, seed=k + 1)
        oof = pd.DataFrame({"filename": names, "label": labels, "fold": folds})
        oof[list(CLASSES)] = proba
        write_csv(run / "oof" / f"{arch}.csv", oof)
        for fold in range(n_folds):
            e = np.arange(epochs)
            log = pd.DataFrame(
                {
                    "epoch": e,
                    "train_loss": 1.2 / (e + 1) + 0.01 * fold,
                    "valid_loss": 1.3 / (e + 1) + 0.02 * fold,
                    "accuracy": 0.5 + 0.1 * e,
                    "f1_macro": 0.4 + 0.1 * e,
                    "time": [f"00:{3 + i:02d}" for i in e],
                }
            )
            write_csv(run / "models" / arch / f"fold{fold}" / "log.csv", log)
    return config


# ---------------------------------------------------------------------------- evaluation plots
def test_confusion_matrix_shows_sklearn_counts_and_recalls():
    y, proba = _predictions()
    pred = proba.argmax(axis=1)
    fig = plot_confusion_matrix(y, pred, CLASSES, title="m")
    assert isinstance(fig, Figure)
    counts_ax, norm_ax = fig.axes[:2]
    cm = confusion_matrix(y, pred)
    shown = np.array([int(t.get_text()) for t in counts_ax.texts]).reshape(cm.shape)
    np.testing.assert_array_equal(shown, cm)
    recall = cm.diagonal() / cm.sum(axis=1)
    shown_norm = np.array([float(t.get_text()) for t in norm_ax.texts]).reshape(cm.shape)
    np.testing.assert_allclose(shown_norm.diagonal(), recall, atol=0.005)
    assert [t.get_text() for t in counts_ax.get_xticklabels()] == list(CLASSES)


def test_confusion_matrix_rejects_out_of_range_labels():
    with pytest.raises(DataError, match="class indices"):
        plot_confusion_matrix([0, 1, 3], [0, 1, 1], CLASSES)


def test_classification_table_matches_sklearn():
    y, proba = _predictions()
    pred = proba.argmax(axis=1)
    table = classification_table(y, pred, CLASSES)
    p, r, f, s = precision_recall_fscore_support(y, pred, zero_division=0)
    np.testing.assert_allclose(table.loc[list(CLASSES), "precision"], p)
    np.testing.assert_allclose(table.loc[list(CLASSES), "recall"], r)
    np.testing.assert_allclose(table.loc[list(CLASSES), "f1-score"], f)
    assert table.loc[list(CLASSES), "support"].tolist() == s.tolist()
    assert table.loc["accuracy", "f1-score"] == pytest.approx(np.mean(y == pred))
    assert table.loc["macro avg", "f1-score"] == pytest.approx(f.mean())
    # A class that is never predicted scores 0 instead of failing.
    never = classification_table([0, 1, 2], [0, 0, 0], CLASSES)
    assert never.loc["joy", "precision"] == 0.0
    assert isinstance(plot_classification_table(table), Figure)


def test_roc_curves_show_sklearn_auc_per_class():
    y, proba = _predictions()
    fig = plot_roc_curves(y, proba, CLASSES, title="m")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    for i, name in enumerate(CLASSES):
        expected = roc_auc_score(y == i, proba[:, i])
        assert f"{name} (AUC {expected:.3f})" in legend
    perfect = plot_roc_curves(y, np.eye(3)[y], CLASSES)
    assert "macro AUC 1.000" in perfect.axes[0].get_title()
    # A class without any positive sample has no curve, and says so.
    missing = plot_roc_curves([0, 1, 0, 1], np.full((4, 3), 1 / 3), CLASSES)
    assert any("no curve" in t.get_text() for t in missing.axes[0].get_legend().get_texts())


def test_training_logs_are_read_from_every_fold(tmp_path):
    make_synthetic_run(tmp_path, n_folds=3, epochs=4)
    logs = read_training_logs(tmp_path)
    assert len(logs) == len(ARCHS) * 3 * 4
    assert set(logs["arch"]) == set(ARCHS)
    assert sorted(logs["fold"].unique()) == [0, 1, 2]
    assert logs["seconds"].iloc[:4].tolist() == [3.0, 4.0, 5.0, 6.0]
    one = read_training_logs(tmp_path, arch=ARCHS[0])
    fig = plot_training_curves(one)
    # loss + accuracy + f1_macro panels; two loss lines and one metric line per fold.
    assert len(fig.axes) == 3
    assert len(fig.axes[0].lines) == 2 * 3
    assert len(fig.axes[2].lines) == 3
    np.testing.assert_allclose(fig.axes[2].lines[0].get_ydata(), [0.4, 0.5, 0.6, 0.7])
    assert read_training_logs(tmp_path / "nothing").empty


def test_score_chart_has_one_bar_per_model_and_method():
    table = pd.DataFrame(
        {
            "name": ["a", "b", "mode", "mean"],
            "kind": ["model", "model", "ensemble", "ensemble"],
            "accuracy": [0.7, 0.6, 0.75, 0.8],
        }
    )
    fig = plot_scores(table, metric="accuracy", chosen="mode")
    ax = fig.axes[0]
    assert len(ax.patches) == 4
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1] == "mean (ensemble)"  # best on top
    assert "mode (ensemble, submission)" in labels
    assert [round(p.get_width(), 2) for p in ax.patches] == [0.6, 0.7, 0.75, 0.8]
    with pytest.raises(DataError, match="f1_macro"):
        plot_scores(table, metric="f1_macro")


def test_save_figure_writes_a_png_atomically(tmp_path):
    fig = plot_confusion_matrix([0, 1, 2], [0, 1, 1], CLASSES)
    path = save_figure(fig, tmp_path / "sub" / "cm.png")
    assert _is_png(path)
    assert [p.name for p in path.parent.iterdir()] == ["cm.png"]


# ---------------------------------------------------------------------------- embeddings
def test_embed_returns_pooled_features_of_the_wrapped_timm_model():
    torch.manual_seed(0)
    net = timm.create_model("test_resnet", pretrained=False, num_classes=3, in_chans=3)
    model = NormalizedModel(net, mean=[0.5, -1.0, 2.0], std=[2.0, 0.5, 1.0]).eval()
    images = np.random.default_rng(0).normal(size=(5, 3, 32, 48)).astype(np.float32)
    vectors = embed(model, images, batch_size=2)
    assert vectors.shape == (5, net.num_features)
    with torch.inference_mode():
        x = (torch.from_numpy(images) - model.mean) / model.std
        expected = net.forward_head(net.forward_features(x), pre_logits=True)
    np.testing.assert_allclose(vectors, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_embed_rejects_a_model_without_a_timm_backbone():
    from emo_utils.errors import TrainingError

    with pytest.raises(TrainingError, match="no timm model"):
        embed(torch.nn.Linear(3, 3), np.zeros((1, 3, 4, 4), np.float32))


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embedding_map_separates_distinct_classes(method):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 15)
    centres = rng.normal(0, 10, (3, 16))
    x = centres[labels] + rng.normal(0, 0.5, (45, 16))
    fig = plot_embedding_map(x, labels, CLASSES, method=method, highlight=labels != 1)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["anger (15)", "joy (15)", "sadness (15)"]
    # Solid points of each class sit far closer to each other than to another class.
    solid = [c.get_offsets() for c in ax.collections if c.get_alpha() == 0.9]
    centroids = np.array([np.mean(p, axis=0) for p in solid if len(p)])
    spread = max(np.std(p, axis=0).max() for p in solid if len(p))
    gaps = np.linalg.norm(centroids[:, None] - centroids[None], axis=2)[
        np.triu_indices(len(centroids), 1)
    ]
    assert gaps.min() > 3 * spread
    with pytest.raises(ConfigError, match="umap"):
        plot_embedding_map(x, labels, CLASSES, method="umap")


# ---------------------------------------------------------------------------- run report
def test_run_report_writes_every_plot_of_a_synthetic_run(tmp_path):
    config = make_synthetic_run(tmp_path)
    report = evaluate_ensembles(tmp_path, config=config)  # the real ensemble_report.json
    with pytest.warns(EmoUtilsWarning, match="embedding map skipped"):
        written = make_run_report(tmp_path)
    method = report.method  # what ensemble.method (default "best") resolved to
    expected = {
        f"{kind}_{tag}"
        for kind in ("confusion", "classes", "roc")
        for tag in (*ARCHS, f"ensemble_{method}")
    }
    expected |= {f"training_{a}" for a in ARCHS} | {"scores"}
    assert set(written) == expected
    for path in written.values():
        assert path.parent == tmp_path / "report"
        assert _is_png(path)
    assert not list((tmp_path / "report").glob(".tmp-*"))
    table = pd.read_csv(tmp_path / "report" / f"classes_{ARCHS[0]}.csv")
    assert table["class"].tolist()[:3] == list(CLASSES)
    readme = (tmp_path / "report" / "README.md").read_text()
    assert all(f"{name}.png" in readme for name in written)
    # The score table is the one of ensemble_report.json, best first.
    best = report.table.sort_values("f1_macro", ascending=False).iloc[0]
    assert "| name | kind | f1_macro |" in readme
    assert f"| {best['name']} | {best['kind']} | {best['f1_macro']:.4f} |" in readme
    assert "Embedding map skipped: no feature cache given" in readme


def test_run_report_opens_the_feature_cache_but_never_builds_it(tmp_path, training_data_factory):
    make_synthetic_run(tmp_path / "run")
    competition, _ = training_data_factory(tmp_path / "data")
    cache = tmp_path / "cache"
    with pytest.warns(EmoUtilsWarning, match="no finished feature cache"):
        written = make_run_report(tmp_path / "run", competition=competition, cache_dir=cache)
    assert not any(name.startswith("embeddings_") for name in written)
    assert not cache.exists()
    readme = (tmp_path / "run" / "report" / "README.md").read_text()
    assert "Embedding map skipped: no finished feature cache of the training split" in readme


def test_run_report_without_ensemble_report_recomputes_scores(tmp_path):
    make_synthetic_run(tmp_path, groups=True)
    written = make_run_report(tmp_path, embeddings=False)
    assert "scores" in written
    assert not (tmp_path / "ensemble_report.json").exists()
    readme = (tmp_path / "report" / "README.md").read_text()
    assert "60 clips in 59 groups; 1 group(s) of near-duplicates, 1 clip(s) merged" in readme


def test_run_report_needs_oof_predictions(tmp_path):
    from emo_utils.errors import TrainingError

    write_json(tmp_path / "classes.json", list(CLASSES))
    with pytest.raises(TrainingError, match="no OOF predictions"):
        make_run_report(tmp_path)


@pytest.mark.slow
def test_run_report_of_a_real_training_run(tmp_path, trained_run):
    """The report of a tiny CV run trained for real (conftest's), embedding map included."""
    run = shutil.copytree(trained_run.run_dir, tmp_path / "run")  # the report is written in it
    evaluate_ensembles(run, config=trained_run.config)
    written = make_run_report(run, store=trained_run.store)
    assert "embeddings_test_resnet_fold0" in written
    assert "training_test_resnet" in written
    assert all(_is_png(p) for p in written.values())


# ---------------------------------------------------------------------------- EDA
@pytest.fixture(scope="module")
def tone_competition(tmp_path_factory):
    """Sine tones with known loudness and zero-crossing rate, in several formats."""
    root = tmp_path_factory.mktemp("tones")
    specs = [  # filename, label, amplitude, frequency, sample rate, seconds, channels
        ("a.wav", "loud", 0.5, 440.0, 16000, 1.0, 1),
        ("b.flac", "loud", 0.5, 440.0, 22050, 2.0, 2),
        ("c.wav", "quiet", 0.05, 1000.0, 44100, 1.5, 1),
        ("d.ogg", "quiet", 0.05, 1000.0, 48000, 0.5, 1),
    ]
    rows = []
    for name, label, amp, freq, sr, seconds, channels in specs:
        t = np.arange(int(sr * seconds)) / sr
        y = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        data = np.stack([y] * channels, axis=1) if channels == 2 else y
        (root / "train").mkdir(exist_ok=True)
        sf.write(root / "train" / name, data, sr)
        rows.append({"filename": name, "emotion": label})
    (root / "test").mkdir()
    sf.write(root / "test" / "t.wav", np.zeros(8000, np.float32), 8000)
    (root / "test" / "broken.mp3").write_bytes(b"")
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    pd.DataFrame({"filename": ["t.wav", "broken.mp3"]}).to_csv(root / "test.csv", index=False)
    return load_competition(root), specs


def test_dataset_overview_reads_headers(tone_competition):
    comp, specs = tone_competition
    overview = dataset_overview(comp)
    assert overview["split"].tolist() == ["train"] * 4 + ["test"] * 2
    train = overview[overview["split"] == "train"].set_index("filename")
    for name, label, _, _, sr, seconds, channels in specs:
        assert train.loc[name, "label"] == label
        assert train.loc[name, "sample_rate"] == sr
        assert train.loc[name, "channels"] == channels
        assert train.loc[name, "duration"] == pytest.approx(seconds, abs=0.01)
    assert train.loc["b.flac", "format"] == "FLAC"
    assert train.loc["d.ogg", "extension"] == "ogg"
    broken = overview.set_index("filename").loc["broken.mp3"]
    assert "empty" in broken["error"]
    for plot in (plot_class_balance, plot_durations, plot_formats):
        assert isinstance(plot(overview), Figure)
    balance = plot_class_balance(overview)
    assert sorted(t.get_text() for t in balance.axes[0].get_yticklabels()) == ["loud", "quiet"]


def test_signal_statistics_measure_loudness_and_zero_crossings(tone_competition):
    comp, _ = tone_competition
    stats = signal_statistics(comp, n_per_class=5, sample_rate=16000, n_jobs=1).set_index(
        "filename"
    )
    assert len(stats) == 4
    # A sine of amplitude A has RMS A / sqrt(2); it crosses zero 2 f times per second.
    assert stats.loc["a.wav", "rms_db"] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.5)
    assert stats.loc["c.wav", "rms_db"] == pytest.approx(20 * np.log10(0.05 / np.sqrt(2)), abs=0.5)
    assert stats.loc["a.wav", "zcr"] == pytest.approx(2 * 440 / 16000, rel=0.1)
    assert stats.loc["c.wav", "zcr"] == pytest.approx(2 * 1000 / 16000, rel=0.1)
    one = signal_statistics(comp, n_per_class=1, n_jobs=1)
    assert sorted(one["label"]) == ["loud", "quiet"]
    assert isinstance(plot_signal_statistics(stats.reset_index()), Figure)


def test_channel_grid_shows_every_channel_of_each_class():
    rng = np.random.default_rng(0)
    images = [rng.normal(size=(3, 16, 20)).astype(np.float32) for _ in range(6)]
    images[5] = None
    store = FeatureStore.from_arrays([f"{i}.wav" for i in range(6)], images, window_frames=20)
    labels = ["joy", "joy", "anger", "anger", "sadness", "sadness"]
    fig = plot_channel_grid(store, labels, ["mel", "chroma", "stft"], per_class=2)
    # joy 2 + anger 2 + sadness 1 (one failed row) examples, 3 channels each.
    assert len(fig.axes) == 5 * 3
    assert [ax.get_title() for ax in fig.axes[:3]] == ["mel", "chroma", "stft"]
    shown = fig.axes[0].images[0].get_array()
    row = int(fig.axes[0].get_ylabel().split("\n")[1].split(".")[0])
    np.testing.assert_allclose(shown, store.window(row)[0])
    with pytest.raises(DataError, match="channel names"):
        plot_channel_grid(store, labels, ["mel"])
