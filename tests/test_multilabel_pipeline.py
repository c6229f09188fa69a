"""The multi-label demo end to end through the command line, on CPU, with tiny settings."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_runner import run_cli

from emo_utils.datasets import DEMO_DATASETS

ARGS = [
    "--n-train",
    "40",
    "--n-test",
    "10",
    "--jobs",
    "1",
    "--set",
    "train.epochs=1",
    "--set",
    "train.architectures=[test_resnet, resnet10t]",
    "--set",
    "train.n_folds=2",
    "--set",
    "train.batch_size=16",
    "--set",
    "features.n_mels=32",
]


def _demo(root: Path) -> subprocess.CompletedProcess:
    return run_cli(
        "demo",
        "--task",
        "multilabel",
        "--data",
        str(root / "data"),
        "--run",
        str(root / "run"),
        "--submissions",
        str(root / "subs"),
        *ARGS,
        check=False,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("mldemo")
    proc = _demo(root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root, proc


@pytest.mark.slow
def test_cli_demo_writes_one_row_per_test_row_in_the_label_list_format(demo):
    root, proc = demo
    test = pd.read_csv(root / "data" / "test.csv", dtype=str)
    method = json.loads((root / "run" / "ensemble_report.json").read_text())["submission_method"]
    sub = pd.read_csv(root / "subs" / f"run__{method}.csv", dtype=str, keep_default_na=False)
    assert list(sub.columns) == ["fname", "labels"]
    assert sub["fname"].tolist() == test["fname"].tolist()
    classes = json.loads((root / "run" / "classes.json").read_text())
    assert classes == ["Chirp", "Music", "Silence", "Speech", "Water"]  # empty lists: Silence
    for text in sub["labels"]:
        assert set(filter(None, text.split(","))) <= set(classes)
    assert "held-out test map of the submission" in proc.stdout
    config = json.loads((root / "run" / "config.json").read_text())
    assert config["data"]["task"] == "multilabel"
    assert (config["ensemble"]["metric"], config["ensemble"]["pool"]) == ("map", "max")


@pytest.mark.slow
def test_thresholds_tuned_on_oof_are_the_ones_applied_to_the_test_predictions(demo):
    root, _ = demo
    saved = json.loads((root / "run" / "thresholds.json").read_text())
    classes = saved["classes"]
    report = json.loads((root / "run" / "ensemble_report.json").read_text())
    method = report["submission_method"]
    assert set(saved["thresholds"]) >= {"test_resnet", "resnet10t", "mode", "mean", "stacking"}
    thresholds = np.array(saved["thresholds"][method])
    proba = pd.read_csv(root / "subs" / f"run__{method}.probabilities.csv")
    sub = pd.read_csv(root / "subs" / f"run__{method}.csv", dtype=str, keep_default_na=False)
    failures = pd.read_csv(root / "subs" / f"run__{method}.failures.csv")
    expected = proba[classes].to_numpy() >= thresholds
    got = np.array([[c in text.split(",") for c in classes] for text in sub["labels"]])
    ok = ~np.isin(np.arange(len(sub)), failures["row"])
    np.testing.assert_array_equal(got[ok], expected[ok])


@pytest.mark.slow
def test_folds_keep_label_sets_and_the_reports_score_per_label(demo):
    root, _ = demo
    folds = pd.read_csv(root / "run" / "folds.csv", dtype=str, keep_default_na=False)
    assert any(";" in label for label in folds["label"])  # label sets, not one label
    assert set(folds["fold"]) == {"0", "1"}
    cv = json.loads((root / "run" / "cv_report.json").read_text())
    per_class = cv["architectures"]["test_resnet"]["per_class"]
    assert set(per_class["Speech"]) >= {"precision", "recall", "f1", "ap", "fp", "fn"}
    assert cv["baseline"]["name"] == "label-prior baseline"


@pytest.mark.slow
def test_a_second_run_resumes_every_finished_fold(demo):
    root, _ = demo
    proc = _demo(root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("already trained, skipped") == 4


def test_every_demo_task_has_a_cli_entry():
    from emo_utils.cli import _DEMOS

    assert set(_DEMOS) == set(DEMO_DATASETS)
