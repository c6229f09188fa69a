"""Verification training, prediction and embedding: P x K batches, resume, submission, embed.

One tiny run (8 training speakers, ``test_resnet``, 2 folds of 2 epochs) is trained once
per module, interrupted after its first epoch and resumed; the other tests read it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from fastai.callback.core import Callback

from emo_utils.config import Config
from emo_utils.datasets.verification import make_verification_demo
from emo_utils.errors import ConfigError
from emo_utils.fileio import read_json, write_json
from emo_utils.pipeline_verification import (
    embed_files,
    predict_verification,
    train_verification_run,
)
from emo_utils.runs import RunDir
from emo_utils.train.verification import PKDataLoader, pk_batch_size

TINY = {
    "n_train_identities": 8,
    "n_test_identities": 3,
    "clips_per_identity": 4,
    "test_clips_per_identity": 2,
    "seed": 1,
    "n_jobs": 1,
}
OVERRIDES = {
    "data.task": "verification",
    "data.label_column": "speaker",
    "train.architectures": ["test_resnet"],
    "train.pretrained": False,
    "train.epochs": 2,
    "train.n_folds": 2,
    "train.batch_size": 8,
    "train.mixup": 0.0,
    "audio.sample_rate": 16000,
    "audio.duration": 1.5,
    "audio.max_duration": 1.5,
    "features.n_mels": 32,
    "features.n_fft": 512,
    "features.hop_length": 256,
    "verification.embedding_dim": 16,
    "verification.clips_per_identity": 2,
}


# ---------------------------------------------------------------------------- P x K batches
@pytest.mark.parametrize("k", [2, 4])
def test_every_pk_batch_holds_k_clips_of_each_of_its_identities(k):
    rng = np.random.default_rng(0)
    identities = np.repeat(np.arange(12), rng.integers(1, 7, size=12))  # some with < k clips
    items = [(torch.zeros(1), int(i)) for i in identities]
    dl = PKDataLoader(items, identities=identities, k=k, bs=4 * k, shuffle=True, drop_last=True)
    batches = list(dl)
    assert len(batches) == len(identities) // (4 * k)
    for _, y in batches:
        counts = np.bincount(y.numpy())
        present = counts[counts > 0]
        assert len(present) == 4  # P = bs / k identities
        assert (present == k).all()  # every anchor has k - 1 positives
    again = PKDataLoader(items, identities=identities, k=k, bs=4 * k, shuffle=True, drop_last=True)
    again.rng.setstate(dl.rng.getstate())
    first = [y.tolist() for _, y in again]
    again.rng.setstate(dl.rng.getstate())
    assert [y.tolist() for _, y in again] == first  # the loader's own generator fixes them


def test_pk_batch_size_rounds_to_k_and_needs_two_identities():
    assert pk_batch_size(30, k=4, n_identities=20) == 28
    assert pk_batch_size(64, k=4, n_identities=5) == 20
    assert pk_batch_size(64, k=4, n_identities=20, n_items=30) == 28  # never more than the clips
    with pytest.raises(ConfigError, match=r"train\.batch_size"):
        pk_batch_size(8, k=4, n_identities=1)


# ---------------------------------------------------------------------------- one tiny run
class _Interrupt(Exception):
    pass


class _StopAfterFirstEpoch(Callback):
    """Raise once, after the first epoch of the first fit (after its checkpoint)."""

    order = 99
    fired = False

    def after_epoch(self):
        if not _StopAfterFirstEpoch.fired:
            _StopAfterFirstEpoch.fired = True
            raise _Interrupt("interrupted")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    data = make_verification_demo(root / "data", **TINY)
    config = Config().override(OVERRIDES)
    run = root / "run"
    with pytest.raises(_Interrupt):
        train_verification_run(
            data,
            run_dir=run,
            config=config,
            cache_dir=root / "cache",
            n_jobs=1,
            progress=False,
            callbacks=[_StopAfterFirstEpoch()],
        )
    fold0 = RunDir(run).fold_dir("test_resnet", 0)
    interrupted = {
        "checkpoint": (fold0 / "checkpoint.pth").is_file(),
        "done": (fold0 / "done.json").is_file(),
        "log": (fold0 / "log.csv").read_text().splitlines(),
    }
    cv = train_verification_run(
        data, run_dir=run, config=config, cache_dir=root / "cache", n_jobs=1, progress=False
    )
    return {"root": root, "data": data, "run": run, "config": config, "cv": cv, **interrupted}


def test_an_interrupted_fold_resumes_at_its_next_epoch(tiny):
    assert tiny["checkpoint"]
    assert not tiny["done"]
    assert len(tiny["log"]) == 2  # header and epoch 0
    log = (RunDir(tiny["run"]).fold_dir("test_resnet", 0) / "log.csv").read_text().splitlines()
    assert log[:2] == tiny["log"]  # epoch 0 was not trained again
    assert [line.split(",")[0] for line in log[1:]] == ["0", "1"]
    assert [(f.fold, f.skipped) for f in tiny["cv"].folds] == [(0, False), (1, False)]


def test_folds_are_identity_disjoint_and_oof_trials_hold_every_same_pair(tiny):
    run = RunDir(tiny["run"])
    folds = pd.read_csv(run.folds_file)
    assert (folds.groupby("label")["fold"].nunique() == 1).all()
    for fold in (0, 1):
        trials = pd.read_csv(run.fold_dir("test_resnet", fold) / "oof_trials.csv")
        valid = folds[folds["fold"] == fold]
        owner = dict(zip(valid["filename"], valid["label"], strict=True))
        assert set(trials["file_a"]) | set(trials["file_b"]) <= set(owner)
        same = [
            owner[a] == owner[b] for a, b in zip(trials["file_a"], trials["file_b"], strict=True)
        ]
        assert trials["same"].tolist() == [int(s) for s in same]
        n_same = sum(n * (n - 1) // 2 for n in valid["label"].value_counts())
        assert trials["same"].sum() == n_same
        done = read_json(run.fold_dir("test_resnet", fold) / "done.json")
        assert 0.0 <= done["eer"] <= 1.0
        emb = np.load(run.fold_dir("test_resnet", fold) / "oof_embeddings.npy")
        assert emb.shape == (len(valid), 16)
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    report = read_json(run.cv_report_file(".json"))
    assert set(report["overall"]) == {"test_resnet"}


def test_submission_has_one_row_per_trial_in_order_and_a_bad_file_gets_the_neutral_score(
    tiny, tmp_path
):
    data = tmp_path / "data"
    shutil.copytree(tiny["data"], data)
    trials = pd.read_csv(data / "test.csv")
    broken = trials["file_b"].iloc[0]
    (data / "test" / broken).write_bytes(b"this is not audio")
    result = predict_verification(
        data,
        run_dir=tiny["run"],
        submissions_dir=tmp_path / "subs",
        cache_dir=tmp_path / "cache",
        n_jobs=1,
        progress=False,
    )
    submission = pd.read_csv(result.submission)
    assert list(submission.columns) == ["id", "score"]
    assert submission["id"].tolist() == trials["id"].tolist()
    assert np.isfinite(submission["score"]).all()
    uses = (trials["file_a"] == broken) | (trials["file_b"] == broken)
    report = read_json(RunDir(tiny["run"]).ensemble_report_file(".json"))
    assert (submission["score"][uses] == report["neutral_score"]).all()
    failures = pd.read_csv(result.failures)
    assert failures["id"].tolist() == trials["id"][uses].tolist()
    assert set(failures["file"]) == {broken}
    assert result.n_failed == int(uses.sum())
    scores = pd.read_csv(RunDir(tiny["run"]).predictions_dir / "test_scores.csv")
    assert scores["test_resnet"][uses].isna().all()
    assert scores["test_resnet"][~uses].notna().all()
    report_dir = RunDir(tiny["run"]).report_dir
    assert {"det_curve.png", "score_histograms.png"} <= {p.name for p in report_dir.iterdir()}


def test_a_side_of_several_files_is_scored_by_their_enrolled_mean_embedding(tiny, tmp_path):
    """``verification.file_separator``: a side lists several files of one identity."""
    run_dir, data = tmp_path / "run", tmp_path / "data"
    shutil.copytree(tiny["run"], run_dir)
    shutil.copytree(tiny["data"], data)
    config = read_json(run_dir / "config.json")
    config["verification"]["file_separator"] = ";"
    write_json(run_dir / "config.json", config)
    x, y, z = pd.read_csv(data / "test.csv")["file_a"].unique()[:3]
    (data / "test" / "broken.wav").write_bytes(b"this is not audio")
    (data / "test.csv").write_text(
        f"id,file_a,file_b\nt0,{x};{y},{z}\nt1,{x},{z}\nt2,{x};broken.wav,{z}\n"
    )
    result = predict_verification(
        data, run_dir=run_dir, submissions_dir=tmp_path / "subs", n_jobs=1, progress=False
    )
    submission = pd.read_csv(result.submission)
    assert submission["id"].tolist() == ["t0", "t1", "t2"]
    report = read_json(RunDir(run_dir).ensemble_report_file(".json"))
    assert submission["score"].iloc[2] == report["neutral_score"]
    failures = pd.read_csv(result.failures)
    assert failures[["id", "file"]].values.tolist() == [["t2", "broken.wav"]]
    # The score of t0 from the folds' saved test embeddings: cosine of the normalised mean
    # of x's and y's normalised embeddings with z's, z-scaled per fold, folds averaged.
    run = RunDir(run_dir)
    expected = []
    for fold in range(2):
        with np.load(run.fold_dir("test_resnet", fold) / "test_embeddings.npz") as saved:
            emb = dict(zip(saved["names"].tolist(), saved["emb"].astype(np.float64), strict=True))
        unit = {k: v / np.linalg.norm(v) for k, v in emb.items() if np.isfinite(v).all()}
        side = unit[x] + unit[y]
        raw = float(side @ unit[z]) / np.linalg.norm(side)
        done = read_json(run.fold_dir("test_resnet", fold) / "done.json")
        expected.append((raw - done["score_mean"]) / done["score_std"])
    scores = pd.read_csv(run.predictions_dir / "test_scores.csv")
    assert scores["test_resnet"].iloc[0] == pytest.approx(np.mean(expected), abs=1e-4)
    assert scores["test_resnet"].iloc[0] != pytest.approx(scores["test_resnet"].iloc[1])


def test_embed_resumes_an_interrupted_run_and_matches_an_uninterrupted_one(tiny, tmp_path):
    files = sorted((tiny["data"] / "test").glob("*.wav"))
    whole = embed_files(
        tiny["run"], files, out=tmp_path / "whole.csv", chunk_size=2, progress=False
    )
    seen = []

    def stop_after_first(index):
        seen.append(index)
        if index == 0:
            raise _Interrupt("interrupted")

    out = tmp_path / "resumed.csv"
    with pytest.raises(_Interrupt):
        embed_files(
            tiny["run"], files, out=out, chunk_size=2, progress=False, on_chunk=stop_after_first
        )
    assert not out.exists()
    embed_files(tiny["run"], files, out=out, chunk_size=2, progress=False, on_chunk=seen.append)
    assert seen == [0, *range(1, (len(files) + 1) // 2)]  # chunk 0 computed once
    a, b = pd.read_csv(whole), pd.read_csv(out)
    assert a.shape == (len(files), 3 + 16)
    pd.testing.assert_frame_equal(a, b)
    assert a["ok"].all()


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "emo_utils", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_demo_verify_and_embed_end_to_end(tmp_path):
    sets = [f"--set={k}={v}" for k, v in OVERRIDES.items() if k != "train.architectures"]
    sets += ["--set=train.architectures=[test_resnet]", "--set=train.epochs=1"]
    run, data, subs = tmp_path / "run", tmp_path / "data", tmp_path / "subs"
    proc = _cli(
        "demo",
        "--task",
        "verification",
        "--data",
        data,
        "--run",
        run,
        "--submissions",
        subs,
        "--n-train",
        6,
        "--n-test",
        3,
        "--jobs",
        1,
        *sets,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "OOF EER ensemble single" in proc.stdout
    assert "held-out test EER ensemble single" in proc.stdout
    trials = pd.read_csv(data / "test.csv")
    submission = pd.read_csv(subs / "run__single.csv")
    assert submission["id"].tolist() == trials["id"].tolist()
    assert len(pd.read_csv(data / "train.csv")["speaker"].unique()) == 6
    proc = _cli("verify", "--data", data, "--run", run, "--submissions", subs, "--predict-only")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "trials with a neutral score (file not decoded): 0" in proc.stdout
    file = sorted((data / "train").glob("*.wav"))[0]
    proc = _cli("embed", "--run", run, file)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert pd.read_csv(run / "embeddings.csv").shape == (1, 3 + 16)
