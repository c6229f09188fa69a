"""The command line, end to end: ``python -m emo_utils run`` on generated demo audio."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from cli_runner import run_cli

from emo_utils.cli import COMMANDS
from emo_utils.cli import main as cli_main
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
    return run_cli(*args, cwd=cwd, timeout=600, check=check)


def _submission(stdout: str) -> str:
    """The submission path a command printed (``submission: PATH``, relative to its cwd)."""
    lines = [line for line in stdout.splitlines() if line.startswith("submission: ")]
    assert len(lines) == 1, stdout[-2000:]
    return lines[0].removeprefix("submission: ").strip()


def _sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help(command, tmp_path):
    out = cli(command, "--help", cwd=tmp_path).stdout
    assert out.startswith("usage: python -m emo_utils " + command)
    no_bars = ("demo-data", "report", "vote", "blend", "gather", "serve", "detect")
    if command not in no_bars:
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
    submission = work / _submission(proc.stdout)
    assert submission.name.startswith("tiny__")
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
    assert (tmp_path / _submission(out)).is_file()
    assert _submission(out).startswith("submissions/run__")
    assert (tmp_path / "cache").is_dir(), "--cache must be honoured"
    assert not (tmp_path / "demo" / ".emo_cache").exists()


# ---------------------------------------------------------------------- locks, --quiet/--verbose
def _start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "emo_utils", *args], cwd=cwd, stdout=fh, stderr=subprocess.STDOUT
        )


def test_two_runs_at_once_on_one_run_folder_both_finish_as_one_run(cli_run, tmp_path):
    """Two ``run`` commands on one dataset, cache and run folder at the same time."""
    work, _, _, _, args, _ = cli_run
    run = tmp_path / "runs" / "tiny"  # same name: same submission file name
    both = [*args[:4], str(run), *args[5:], "--cache", str(tmp_path / "cache")]
    both.remove("--no-progress")  # plain progress lines (the output is a file)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    procs = [_start(both, tmp_path, log) for log in logs]
    codes = [proc.wait(timeout=900) for proc in procs]
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0], "\n".join(t[-3000:] for t in texts)
    # One waited for the other, saying for whom; the other trained.
    waited = [
        i for i, t in enumerate(texts) if f"{run}: waiting for the run folder, in use by pid" in t
    ]
    assert len(waited) == 1, texts
    other = procs[1 - waited[0]].pid
    assert f"in use by pid {other} on " in texts[waited[0]]
    assert "already trained, skipped" in texts[waited[0]]
    assert "fold 1/2" not in texts[waited[0]]
    assert "fold 1/2" in texts[1 - waited[0]]
    # The results are those of one uninterrupted run (cli_run, same data and settings).
    ref = work / "runs" / "tiny"
    assert (run / "folds.csv").read_bytes() == (ref / "folds.csv").read_bytes()
    sub = _submission(cli_run[-1].stdout)
    assert (tmp_path / sub).read_bytes() == (work / sub).read_bytes()
    for name in ("oof/test_resnet.csv", "predictions/test_resnet.csv"):
        got, want = pd.read_csv(run / name), pd.read_csv(ref / name)
        assert got.columns.equals(want.columns)
        assert got["filename"].equals(want["filename"])
        pd.testing.assert_frame_equal(
            got, want, check_exact=not torch.cuda.is_available(), atol=1e-5
        )
    assert not list(run.rglob(".tmp-*"))
    assert not list((tmp_path / "cache").rglob(".tmp-*"))
    assert not list(run.rglob(".emo_utils.lock.json"))  # both released their locks


def test_two_preprocess_commands_at_once_compute_each_clip_once(cli_run, tmp_path):
    _, data, *_ = cli_run
    cache = tmp_path / "cache"
    args = ["preprocess", "--data", str(data), "--cache", str(cache), "--preset", "cpu_demo"]
    args += [*_sets(TINY), "--jobs", "1"]
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    procs = [_start(args, tmp_path, log) for log in logs]
    codes = [proc.wait(timeout=600) for proc in procs]
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0], "\n".join(t[-3000:] for t in texts)
    for split in ("train", "test"):
        computed = [t for t in texts if re.search(rf"features {split}: \d+ clips computed", t)]
        assert len(computed) == 1, texts  # the other process waited for it, then reused it
    reference = data / ".emo_cache"  # cli_run's cache: same settings (and duplicate groups)
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert sum(p.name == "frames.npy" for p in files) == 2
    for path in files:
        if not path.name.startswith(".emo_utils.lock"):
            assert (reference / path.relative_to(cache)).read_bytes() == path.read_bytes(), path


def _cli_output(argv: list[str], capsys) -> str:
    assert cli_main(argv) == 0
    return capsys.readouterr().out


def test_quiet_keeps_the_summary_and_verbose_adds_details(cli_run, capsys, monkeypatch):
    work, *_, args, _ = cli_run
    args = [a for a in args if a != "--no-progress"]
    monkeypatch.chdir(work)  # the submissions folder is relative
    normal = _cli_output(args, capsys)
    quiet = _cli_output(["--quiet", *args], capsys)
    verbose = _cli_output(["--verbose", *args], capsys)
    summary = [
        line for line in normal.splitlines() if line.startswith(("CV accuracy", "submission:"))
    ]
    assert summary
    assert all(line in quiet.splitlines() for line in summary)
    assert len(quiet.splitlines()) < len(normal.splitlines()) < len(verbose.splitlines())
    assert "already trained, skipped" in normal
    assert "already trained, skipped" not in quiet
    assert "predicted test_resnet fold 0" not in quiet
    assert all(line in verbose for line in summary)
    assert "features train: finished cache reused from" in verbose
    assert re.search(r"runs/tiny: run folder locked", verbose)
    after = _cli_output([*args, "--quiet"], capsys)  # the flag also after the command
    assert after.splitlines()[:-1] == quiet.splitlines()[:-1]  # all but "took N s"


def test_verbose_lists_every_cache_chunk(cli_run, tmp_path, capsys):
    _, data, *_ = cli_run
    args = ["preprocess", "--data", str(data), "--preset", "cpu_demo", *_sets(TINY)]
    args += ["--jobs", "1"]
    normal = _cli_output([*args, "--cache", str(tmp_path / "a")], capsys)
    verbose = _cli_output(["-v", *args, "--cache", str(tmp_path / "b")], capsys)
    n_train = len(pd.read_csv(data / "train.csv"))
    chunks = -(-n_train // 16)
    assert "chunk 1/" not in normal
    for k in range(1, chunks + 1):
        assert f"features train: chunk {k}/{chunks} done (" in verbose
    assert f"features train: 0 chunk(s) reused (0 clips), {chunks} to compute" in verbose
