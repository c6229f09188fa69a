"""The command line, end to end: ``python -m emo_utils run`` on generated demo audio."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from emo_utils.cli import COMMANDS
from emo_utils.config import Config

TINY = [
    "audio.duration=2.0",
    "audio.max_duration=2.0",
    "features.n_mels=32",
    "train.architectures=[test_resnet]",
    "train.epochs=1",
    "train.n_folds=2",
    "train.batch_size=16",
    "train.use_groups=true",
]


def cli(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "emo_utils", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def _sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help(command, tmp_path):
    out = cli(command, "--help", cwd=tmp_path).stdout
    assert out.startswith("usage: python -m emo_utils " + command)
    if command not in ("demo-data", "report", "vote", "blend", "gather"):  # no progress bars
        assert "--no-progress" in out


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """Demo data with one planted exact duplicate, then ``run`` with grouped folds."""
    work = tmp_path_factory.mktemp("cli")
    data = work / "data"
    cli("demo-data", str(data), "--n-train", "40", "--n-test", "12", cwd=work)
    train = pd.read_csv(data / "train.csv", dtype=str)
    original = train.iloc[0]
    copy_name = "copy_of_" + original["filename"]
    shutil.copy(data / "train" / original["filename"], data / "train" / copy_name)
    train.loc[len(train)] = [copy_name, original["emotion"]]
    train.to_csv(data / "train.csv", index=False)
    args = [
        "run",
        "--data",
        str(data),
        "--run",
        str(work / "runs" / "tiny"),
        "--preset",
        "cpu_demo",
    ]
    args += [*_sets(TINY), "--jobs", "1", "--no-progress"]
    proc = cli(*args, cwd=work)
    return work, data, original["filename"], copy_name, args, proc


def test_run_writes_a_valid_submission(cli_run):
    work, data, *_, proc = cli_run
    submission = work / "submissions" / "tiny__mode.csv"
    assert f"submission: submissions/{submission.name}" in proc.stdout
    sub = pd.read_csv(submission, dtype=str, keep_default_na=False)
    test = pd.read_csv(data / "test.csv", dtype=str)
    assert list(sub.columns) == ["filename", "emotion"]
    assert sub["filename"].tolist() == test["filename"].tolist()
    classes = set(pd.read_csv(data / "train.csv")["emotion"])
    assert set(sub["emotion"]) <= classes
    assert "CV accuracy test_resnet" in proc.stdout


def test_run_folder_holds_the_config_it_ran_with(cli_run):
    work, *_ = cli_run
    run = work / "runs" / "tiny"
    saved = Config.from_file(run / "config.json")
    assert saved == Config.preset("cpu_demo").override(dict(item.split("=", 1) for item in TINY))
    for name in ("folds.csv", "classes.json", "cv_report.json", "cv_report.md", "summary.json"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "models" / "test_resnet").iterdir()) == ["fold0", "fold1"]


def test_duplicates_share_a_fold_and_the_report_counts_them(cli_run):
    work, _, original, copy_name, *_ = cli_run
    run = work / "runs" / "tiny"
    folds = pd.read_csv(run / "folds.csv", dtype={"filename": str})
    by_name = folds.set_index("filename")
    assert by_name.loc[original, "group"] == by_name.loc[copy_name, "group"]
    assert by_name.loc[original, "fold"] == by_name.loc[copy_name, "fold"]
    report = json.loads((run / "cv_report.json").read_text())
    assert report["groups"]["n_merged"] >= 1
    assert "near-duplicate groups" in (run / "cv_report.md").read_text()


def test_rerun_skips_finished_work(cli_run):
    work, _, _, _, args, _ = cli_run
    model = work / "runs" / "tiny" / "models" / "test_resnet" / "fold0" / "model.pth"
    before = model.stat().st_mtime_ns
    cli(*args, cwd=work)
    assert model.stat().st_mtime_ns == before


def test_predict_with_another_method(cli_run):
    work, data, *_ = cli_run
    proc = cli(
        "predict", "--data", str(data), "--run", str(work / "runs" / "tiny"), "--method", "mean",
        "--no-progress", "--jobs", "1", cwd=work,
    )  # fmt: skip
    sub = pd.read_csv(work / "submissions" / "tiny__mean.csv", dtype=str)
    assert len(sub) == len(pd.read_csv(data / "test.csv"))
    assert "submission written by: mean" in proc.stdout


def test_report_command_draws_the_run_from_the_existing_cache(cli_run):
    work, data, *_ = cli_run
    run = work / "runs" / "tiny"
    cache = data / ".emo_cache"
    before = sorted((p.relative_to(cache), p.stat().st_mtime_ns) for p in cache.rglob("*"))
    proc = cli("report", "--run", str(run), "--data", str(data), cwd=work)
    assert f"README.md in {run / 'report'}" in proc.stdout
    for name in ("scores", "confusion_test_resnet", "training_test_resnet"):
        assert (run / "report" / f"{name}.png").is_file(), name
    assert (run / "report" / "embeddings_test_resnet_fold0.png").is_file()
    readme = (run / "report" / "README.md").read_text()
    assert "| test_resnet | model |" in readme
    assert "![scores](scores.png)" in readme
    # A report only reads: the feature cache is opened as it is.
    assert sorted((p.relative_to(cache), p.stat().st_mtime_ns) for p in cache.rglob("*")) == before


def test_bad_override_fails_before_any_work(tmp_path):
    (tmp_path / "data").mkdir()
    proc = cli(
        "run", "--data", str(tmp_path / "data"), "--run", str(tmp_path / "run"),
        "--set", "train.n_folds=1", cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "config field 'train.n_folds' = 1" in proc.stderr
    assert not (tmp_path / "run").exists()
    proc = cli("train", "--data", "x", "--run", "y", "--set", "epochs=3", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "section.field" in proc.stderr


def test_demo_command_scores_the_submission_on_held_out_answers(tmp_path):
    args = ["demo", "--data", str(tmp_path / "demo"), "--run", str(tmp_path / "run")]
    args += ["--n-train", "40", "--n-test", "12", "--jobs", "1", "--no-progress"]
    args += ["--cache", str(tmp_path / "cache"), *_sets(TINY[:-1])]
    out = cli(*args, cwd=tmp_path).stdout
    assert "held-out test accuracy of the submission: " in out
    score = float(out.split("held-out test accuracy of the submission: ")[1].split()[0])
    assert 0.0 <= score <= 1.0
    assert (tmp_path / "submissions" / "run__mode.csv").is_file()
    assert (tmp_path / "cache").is_dir(), "--cache must be honoured"
    assert not (tmp_path / "demo" / ".emo_cache").exists()
