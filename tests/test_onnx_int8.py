"""Opt-in int8 ONNX models: calibrated on each fold's training rows, checked, loaded, compared."""

from __future__ import annotations

import os
import shutil

import numpy as np
import onnx
import pandas as pd
import pytest

from emo_utils.cli import main
from emo_utils.errors import CheckpointError
from emo_utils.fileio import read_json
from emo_utils.infer import predict_test
from emo_utils.infer.calibration import calibration_rows
from emo_utils.infer.onnx_export import (
    ENGINES,
    INT8_FILE,
    INT8_INFO_FILE,
    ONNX_FILE,
    OnnxFoldModel,
    export_onnx_int8,
    load_onnx_fold_model,
    load_onnx_int8_fold_model,
)
from emo_utils.runs import RunDir
from emo_utils.timeline import RunClassifier

#: The tolerance of int8 against fp32 on the tiny run, whose probabilities are nearly flat:
#: the largest probability difference measured 0.0014, and 0.03 (with 58 % argmax
#: agreement) for the same folds calibrated on constant windows, a broken calibration.
#: (The demo run's figures: README "int8 ONNX models".)
INT8_MAX_DIFF = 0.01
#: Share of windows whose predicted class must equal the fp32 model's.
INT8_AGREEMENT = 0.95
ARCH = "test_resnet"


@pytest.fixture(scope="module")
def quantised(trained_run, tmp_path_factory):
    """A copy of the shared run with every fold exported to fp32 and int8 ONNX."""
    run_dir = tmp_path_factory.mktemp("int8") / "run"
    shutil.copytree(trained_run.run_dir, run_dir)
    written = export_onnx_int8(run_dir, store=trained_run.store, progress=False)
    assert written == [
        RunDir(run_dir).fold_file(ARCH, k, INT8_FILE)
        for k in range(trained_run.config.train.n_folds)
    ]
    return run_dir, trained_run


def test_export_writes_a_quantised_model_per_fold_atomically(quantised):
    run_dir, trained = quantised
    run = RunDir(run_dir)
    for fold in range(trained.config.train.n_folds):
        path = run.fold_file(ARCH, fold, INT8_FILE)
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        ops = {node.op_type for node in model.graph.node}
        assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
        int8_weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
        assert int8_weights, "no int8 weight: the model was not quantised"
        assert path.stat().st_size < run.fold_file(ARCH, fold, ONNX_FILE).stat().st_size
        # Nothing but the finished files is left in the fold folder (atomic writes).
        original = trained.run_dir / path.parent.relative_to(run_dir)
        assert sorted(p.name for p in path.parent.iterdir()) == sorted(
            [*(p.name for p in original.iterdir()), ONNX_FILE, INT8_FILE, INT8_INFO_FILE]
        )


def test_calibration_uses_only_the_folds_training_rows(quantised):
    run_dir, trained = quantised
    run = RunDir(run_dir)
    folds = pd.read_csv(run.folds_file)
    chosen = {}
    for fold in range(trained.config.train.n_folds):
        info = read_json(run.fold_file(ARCH, fold, INT8_INFO_FILE))
        rows = set(info["rows"])
        training = set(folds.loc[folds["fold"] != fold, "filename"])
        validation = set(folds.loc[folds["fold"] == fold, "filename"])
        assert rows <= training
        assert not rows & validation
        # 16 training rows per fold, fewer than the 128 windows asked: all of them, once.
        assert rows == training
        assert len(info["rows"]) == info["windows"] == len(training)
        assert info["method"] == "minmax"
        assert info["per_channel"] is True
        chosen[fold] = rows
    assert chosen[0] != chosen[1]


def test_calibration_rows_are_a_seeded_sample_of_usable_training_rows():
    folds = pd.DataFrame({"filename": [f"{i}.wav" for i in range(40)], "fold": np.arange(40) % 4})
    usable = np.ones(40, dtype=bool)
    usable[[1, 2, 3]] = False  # rows without an image
    rows = calibration_rows(folds, fold=0, count=10, usable=usable)
    assert len(rows) == 10
    assert len(set(rows.tolist())) == 10
    assert (folds["fold"].to_numpy()[rows] != 0).all()
    assert usable[rows].all()
    assert np.array_equal(rows, calibration_rows(folds, fold=0, count=10, usable=usable))
    assert not np.array_equal(
        rows, calibration_rows(folds, fold=0, count=10, seed=1, usable=usable)
    )
    everything = calibration_rows(folds, fold=0, count=1000, usable=usable)
    assert everything.tolist() == [i for i in range(40) if i % 4 and i not in (1, 2, 3)]


def test_int8_probabilities_agree_with_fp32(quantised):
    run_dir, trained = quantised
    fp32, int8 = (
        predict_test(
            trained.store, run_dir=run_dir, device="cpu", progress=False, write=False, loader=loader
        )[ARCH]
        for loader in (load_onnx_fold_model, ENGINES["onnx-int8"])
    )
    assert fp32.shape == int8.shape == (len(trained.store), 3)
    assert np.isfinite(int8).all()
    assert float(np.max(np.abs(fp32 - int8))) < INT8_MAX_DIFF
    assert float(np.mean(fp32.argmax(1) == int8.argmax(1))) >= INT8_AGREEMENT


def test_int8_is_opt_in_for_the_classifier(quantised):
    run_dir, _ = quantised

    def paths(clf):
        return {m.path.name for models in clf._models.values() for m in models}

    assert paths(RunClassifier(run_dir)) == {ONNX_FILE}  # "auto" never picks int8
    int8 = RunClassifier(run_dir, engine="onnx-int8")
    assert paths(int8) == {INT8_FILE}
    assert all(isinstance(m, OnnxFoldModel) for m in int8._models[ARCH])
    windows = np.random.default_rng(0).normal(0.0, 0.1, (3, int8.window_samples))
    p = int8.classify_windows(windows=windows)
    assert p.shape == (3, 3)
    assert np.allclose(p.sum(1), 1.0, atol=1e-4)


def test_stale_or_missing_int8_models_are_refused_then_redone(quantised, trained_run, tmp_path):
    run_dir, _ = quantised
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    run = RunDir(copy)
    path, source = run.fold_file(ARCH, 0, INT8_FILE), run.fold_file(ARCH, 0, ONNX_FILE)
    before = path.stat().st_mtime_ns
    export_onnx_int8(copy, store=trained_run.store, progress=False)
    assert path.stat().st_mtime_ns == before  # up to date: kept
    # model.onnx exported again since (newer than the int8 file, still newer than its
    # model.pth): refused, then redone.
    os.utime(run.fold_file(ARCH, 0, run.MODEL_FILE), ns=(before - 3 * 10**9,) * 2)
    os.utime(path, ns=(before - 2 * 10**9, before - 2 * 10**9))
    os.utime(source, ns=(before - 10**9, before - 10**9))
    with pytest.raises(CheckpointError, match=r"older than .*model\.onnx"):
        load_onnx_int8_fold_model(copy, arch=ARCH, fold=0)
    export_onnx_int8(copy, store=trained_run.store, progress=False)
    assert path.stat().st_mtime_ns > source.stat().st_mtime_ns
    assert isinstance(load_onnx_int8_fold_model(copy, arch=ARCH, fold=0), OnnxFoldModel)
    path.unlink()
    with pytest.raises(CheckpointError, match=r"no int8 model; run .*--format onnx-int8"):
        RunClassifier(copy, engine="onnx-int8")


def test_cli_int8_export_needs_the_training_data(quantised, tmp_path, capsys):
    run_dir, _ = quantised
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    RunDir(copy).fold_file(ARCH, 1, INT8_FILE).unlink()
    assert main(["export", "--run", str(copy), "--format", "onnx-int8"]) != 0
    assert "--data" in capsys.readouterr().err
    assert main(["export", "--run", str(copy), "--format", "tensorrt"]) != 0
    assert "onnx-int8" in capsys.readouterr().err


def test_predict_command_takes_the_int8_engine():
    from emo_utils.cli import build_parser

    args = build_parser().parse_args(
        ["predict", "--data", "d", "--run", "r", "--engine", "onnx-int8"]
    )
    assert ENGINES[args.engine] is load_onnx_int8_fold_model
    detect = build_parser().parse_args(["detect", "a.wav", "--run", "r", "--engine", "onnx-int8"])
    assert detect.engine == "onnx-int8"
