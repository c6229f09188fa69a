"""The four notebooks on a multi-label demo, through their parameter cell alone.

The same notebooks as ``tests/test_notebooks.py`` (its helpers execute them in a real
Jupyter kernel), with ``PRESET = "cpu_demo_multilabel"``: the demo cell writes the
multi-label demo folder, the EDA counts clips per label, training writes a multi-label run
folder, and inference tunes the thresholds and writes a label-list submission.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from test_notebooks import _images, _outputs, _shown_text, notebook_parameters, run_notebook

from emo_utils.config import resolve_config
from emo_utils.data.competition import load_competition
from emo_utils.datasets.multilabel import MIN_N_TRAIN
from emo_utils.features.store import open_cache

ARCH = "test_resnet"
PRESET = "cpu_demo_multilabel"
OVERRIDES = {
    "audio.duration": 2.0,
    "audio.max_duration": 4.0,
    "features.n_mels": 32,
    "train.architectures": [ARCH],
    "train.epochs": 1,
    "train.n_folds": 2,
    "train.batch_size": 16,
}
N_TRAIN, N_TEST = 40, 10
CLASSES = ["Chirp", "Music", "Silence", "Speech", "Water"]  # the demo's, with data.empty_label


def test_demo_sizes_are_allowed_by_the_generator():
    assert N_TRAIN >= MIN_N_TRAIN


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("notebooks_multilabel")
    out = {name: root / name for name in ("data", "run", "submissions", "work")}
    out["work"].mkdir()
    return out


def _run(name: str, folders: dict[str, Path]) -> nbformat.NotebookNode:
    values = notebook_parameters(
        name, folders, preset=PRESET, overrides=OVERRIDES, n_train=N_TRAIN, n_test=N_TEST
    )
    return run_notebook(name, values, folders["work"])


@pytest.fixture(scope="module")
def preprocessed(folders) -> nbformat.NotebookNode:
    return _run("01_preprocess", folders)


@pytest.fixture(scope="module")
def trained(folders, preprocessed) -> nbformat.NotebookNode:
    return _run("02_train", folders)


@pytest.fixture(scope="module")
def inferred(folders, trained) -> nbformat.NotebookNode:
    return _run("03_inference", folders)


@pytest.fixture(scope="module")
def explored(folders, preprocessed) -> nbformat.NotebookNode:
    return _run("00_eda", folders)


def _config():
    return resolve_config(preset=PRESET, overrides=OVERRIDES)


@pytest.mark.slow
def test_preprocess_notebook_makes_the_multilabel_demo_and_caches_both_splits(
    folders, preprocessed
):
    data = folders["data"]
    train = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    assert list(train.columns) == ["fname", "labels"]  # Freesound-style, not the emotion demo
    assert len(train) == N_TRAIN
    assert len(pd.read_csv(data / "test.csv")) == N_TEST
    assert train["labels"].str.contains(",").any()  # some clips hold several labels
    config = _config()
    competition = load_competition(data, config.data)
    assert list(competition.classes) == CLASSES
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        store = open_cache(competition, split, config=config, cache_dir=data / ".emo_cache")
        assert len(store) == n
        assert store.ok.all()
    assert _images(preprocessed) >= 1  # the channel grid, per label


@pytest.mark.slow
def test_train_notebook_writes_a_multilabel_run_folder_and_report(folders, trained):
    run = folders["run"]
    saved = json.loads((run / "config.json").read_text())
    assert saved == _config().to_dict()
    assert saved["data"]["task"] == "multilabel"
    assert json.loads((run / "classes.json").read_text()) == CLASSES
    folds = pd.read_csv(run / "folds.csv", dtype=str, keep_default_na=False)
    assert len(folds) == N_TRAIN
    assert folds["label"].str.contains(";").any()  # label sets, joined as in the run files
    for fold in (0, 1):
        assert (run / "models" / ARCH / f"fold{fold}" / "done.json").is_file()
    oof = pd.read_csv(run / "oof" / f"{ARCH}.csv")
    assert list(oof.columns[3:]) == CLASSES
    report = run / "report"
    for name in ("label_cooccurrence", f"labels_{ARCH}", f"pr_{ARCH}", f"training_{ARCH}"):
        assert (report / f"{name}.png").is_file(), name
    assert (report / f"labels_{ARCH}.csv").is_file()
    assert not list(report.glob("confusion_*"))  # nothing decoded by argmax
    assert "## Decision thresholds" in (report / "README.md").read_text()
    shown = _shown_text(trained)
    assert "train_loss" in shown
    assert "map" in shown  # the multi-label metrics of the epoch table
    assert _images(trained) >= 5


@pytest.mark.slow
def test_inference_notebook_writes_a_label_list_submission(folders, inferred):
    run = folders["run"]
    thresholds = json.loads((run / "thresholds.json").read_text())
    assert thresholds["classes"] == CLASSES
    test = pd.read_csv(folders["data"] / "test.csv", dtype=str)
    method = json.loads((run / "ensemble_report.json").read_text())["best_method"]
    path = folders["submissions"] / f"{run.name}__{method}.csv"  # what ``best`` resolved to
    submission = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(submission.columns) == ["fname", "labels"]
    assert submission["fname"].tolist() == test["fname"].tolist()
    shown_labels = {label for text in submission["labels"] for label in text.split(",") if label}
    assert shown_labels <= set(CLASSES)
    # The per-label counts of the submission.
    shown = _shown_text(inferred)
    assert "test rows" in shown
    assert "share" in shown
    readme = (run / "report" / "README.md").read_text()
    assert "From `thresholds.json`" in readme  # the report now uses the tuned thresholds
    assert (run / "report" / f"labels_ensemble_{method}.png").is_file()  # the submission's
    assert _images(inferred) >= 5  # scores + the ensemble's per-label figures
    assert not [o for o in _outputs(inferred) if o.output_type == "error"]
    # The vote over three methods' submissions: a per-label majority, label lists again.
    voted = pd.read_csv(folders["submissions"] / "voted.csv", dtype=str, keep_default_na=False)
    assert voted["fname"].tolist() == test["fname"].tolist()
    assert "voted 3 submissions into" in shown
    assert "mean Jaccard similarity" in shown


@pytest.mark.slow
def test_eda_notebook_draws_every_plot_per_label(explored):
    # class balance, durations, formats, signal statistics, channel grid
    assert _images(explored) >= 5
    assert not [o for o in _outputs(explored) if o.output_type == "error"]
    # The signal statistics table: one row per label, none per label set.
    (table,) = [
        o["data"]["text/plain"]
        for o in _outputs(explored)
        if "rms_db" in o.get("data", {}).get("text/plain", "")
        and "median" in o["data"]["text/plain"]
    ]
    assert all(label in table for label in CLASSES)
    assert ";" not in table
