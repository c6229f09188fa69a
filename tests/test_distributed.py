"""Multi-process training (``emo_utils.train.distributed``): 2 CPU processes over ``gloo``.

``accelerate launch --multi_gpu --num_processes 2 -m emo_utils train`` and accelerate's
``notebook_launcher`` each train a tiny run (``test_resnet`` from scratch, 2 folds, 1 epoch)
with no GPU visible; the run folder must hold the same files as a one-process run's: the
same config, classes and folds, OOF rows in the same order, predicted by the saved fold
weights, and checkpoints that resume in one process.  Scores may differ (the processes
split each batch).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from emo_utils.cli import main as cli_main
from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.features.build import build_cache
from emo_utils.infer.predict import predict_folds

pytestmark = pytest.mark.slow

TINY = [
    "audio.duration=2.0",
    "audio.max_duration=2.0",
    "features.n_mels=32",
    "train.architectures=[test_resnet]",
    "train.pretrained=false",
    "train.epochs=1",
    "train.n_folds=2",
    "train.batch_size=4",
]
ARCH = "test_resnet"
LAUNCH_LINE = "distributed training: 2 processes (gloo, cpu)"


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _train_args(data: Path, run: Path) -> list[str]:
    sets = [arg for item in TINY for arg in ("--set", item)]
    return ["train", "--data", str(data), "--run", str(run), "--preset", "cpu_demo", *sets]


def _launch(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run a launcher with no GPU visible (CPU processes, ``gloo``); fail on a non-zero exit."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def single_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Demo data and its one-process run (the reference), trained in this process."""
    work = tmp_path_factory.mktemp("distributed")
    data = work / "data"
    assert cli_main(["demo-data", str(data), "--n-train", "35", "--n-test", "4"]) == 0
    assert cli_main([*_train_args(data, work / "single"), "--jobs", "1", "--no-progress"]) == 0
    return work, data, work / "single"


def _files(run: Path) -> list[str]:
    return sorted(os.fspath(p.relative_to(run)) for p in run.rglob("*") if p.is_file())


def _check_same_run(run: Path, single: Path, data: Path) -> None:
    """``run`` holds what the one-process ``single`` holds, with OOF from its saved weights."""
    assert _files(run) == _files(single)
    for name in ("config.json", "classes.json", "folds.csv"):
        assert (run / name).read_bytes() == (single / name).read_bytes(), name
    oof = pd.read_csv(run / "oof" / f"{ARCH}.csv")
    ref = pd.read_csv(single / "oof" / f"{ARCH}.csv")
    assert list(oof.columns) == list(ref.columns)
    keys = ["filename", "label", "fold"]
    pd.testing.assert_frame_equal(oof[keys], ref[keys])  # same rows, same order
    report, ref_report = (json.loads((r / "cv_report.json").read_text()) for r in (run, single))
    assert report["n_clips"] == ref_report["n_clips"] == 35
    for fold in range(2):
        done = json.loads((run / "models" / ARCH / f"fold{fold}" / "done.json").read_text())
        assert done["n_valid"] == int((oof["fold"] == fold).sum())
        log = (run / "models" / ARCH / f"fold{fold}" / "log.csv").read_text().splitlines()
        assert len(log) == 2  # header + one epoch, written once (by rank 0)
        ckpt = torch.load(run / "models" / ARCH / f"fold{fold}" / "checkpoint.pth")
        ref_ckpt = torch.load(single / "models" / ARCH / f"fold{fold}" / "checkpoint.pth")
        assert list(ckpt["model"]) == list(ref_ckpt["model"])  # no DDP "module." prefix
    # The gathered OOF pieces are in row order: each row is the prediction of its fold's
    # saved model, recomputed here in one process.
    config = Config.from_file(run / "config.json")
    comp = load_competition(data, config.data)
    store = build_cache(comp, "train", config=config, n_jobs=1, progress=False)
    probs = predict_folds(store, run_dir=run, device="cpu", progress=False)[ARCH]
    row = {name: i for i, name in enumerate(store.filenames)}
    classes = json.loads((run / "classes.json").read_text())
    expected = np.stack(
        [probs[f, row[name]] for name, f in zip(oof["filename"], oof["fold"], strict=True)]
    )
    np.testing.assert_allclose(oof[classes].to_numpy(), expected, atol=1e-5)


def test_accelerate_launch_two_cpu_processes_write_the_same_run_folder(single_run):
    work, data, single = single_run
    run = work / "accelerate"
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.accelerate_cli",
        "launch",
        "--multi_gpu",  # torchrun-style processes; with no GPU visible they use gloo on CPU
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        _free_port(),
        "-m",
        "emo_utils",
        *_train_args(data, run),
        "--jobs",
        "1",
    ]
    proc = _launch(command, cwd=work)
    assert proc.stdout.count(LAUNCH_LINE) == 1, proc.stdout[-2000:]  # rank 0 speaks
    assert proc.stdout.count(f"CV accuracy {ARCH}") == 1
    _check_same_run(run, single, data)


def test_notebook_launcher_two_cpu_processes_write_the_same_run_folder(single_run):
    work, data, single = single_run
    run = work / "notebook"
    child = Path(__file__).with_name("notebook_launch_child.py")
    command = [sys.executable, str(child), _free_port(), *_train_args(data, run), "--jobs", "1"]
    proc = _launch(command, cwd=work)
    assert proc.stdout.count(LAUNCH_LINE) == 1, proc.stdout[-2000:]
    _check_same_run(run, single, data)
