"""ONNX export of a run's fold models and prediction through ONNX Runtime."""

from __future__ import annotations

import os
import shutil

import numpy as np
import onnx
import pytest

from emo_utils.cli import main
from emo_utils.config import Config
from emo_utils.errors import CheckpointError
from emo_utils.infer import predict_test
from emo_utils.infer.onnx_export import (
    ONNX_FILE,
    OnnxFoldModel,
    export_onnx,
    exportable_architectures,
    load_onnx_fold_model,
)
from emo_utils.models import load_fold_model
from emo_utils.runs import RunDir

#: The issue's budget for ONNX Runtime against torch on the CPU.
PROBABILITY_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    """A copy of the shared run with every fold exported by the CLI command."""
    run_dir = tmp_path_factory.mktemp("onnx") / "run"
    shutil.copytree(trained_run.run_dir, run_dir)
    assert main(["--quiet", "export", "--run", str(run_dir), "--format", "onnx"]) == 0
    return run_dir, trained_run


def test_export_writes_a_valid_model_per_fold(exported):
    run_dir, trained = exported
    run = RunDir(run_dir)
    for fold in range(trained.config.train.n_folds):
        path = run.fold_file("test_resnet", fold, ONNX_FILE)
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        assert [i.name for i in model.graph.input] == ["image"]
        # Nothing but the finished files is left in the fold folder (atomic writes).
        original = trained.run_dir / path.parent.relative_to(run_dir)
        assert sorted(p.name for p in path.parent.iterdir()) == sorted(
            [*(p.name for p in original.iterdir()), ONNX_FILE]
        )


def test_onnx_probabilities_match_torch(exported):
    # Normalisation built in: both engines are fed the raw cached windows.
    run_dir, trained = exported
    on_torch = predict_test(
        trained.store, run_dir=run_dir, device="cpu", progress=False, write=False
    )
    on_onnx = predict_test(
        trained.store,
        run_dir=run_dir,
        device="cpu",
        progress=False,
        write=False,
        loader=load_onnx_fold_model,
    )
    a, b = on_torch["test_resnet"], on_onnx["test_resnet"]
    assert a.shape == b.shape == (len(trained.store), 3)
    assert np.isfinite(a).all()
    assert float(np.max(np.abs(a - b))) < PROBABILITY_TOLERANCE


def test_onnx_model_takes_any_batch_size(exported):
    run_dir, trained = exported
    torch_model = load_fold_model(run_dir, arch="test_resnet", fold=1, device="cpu")
    onnx_model = load_onnx_fold_model(run_dir, arch="test_resnet", fold=1)
    assert isinstance(onnx_model, OnnxFoldModel)
    import torch

    for n in (1, 5):
        x = torch.from_numpy(trained.store.stack(range(n)).astype(np.float32))
        with torch.inference_mode():
            np.testing.assert_allclose(
                onnx_model(x).numpy(), torch_model(x).numpy(), atol=1e-4, rtol=1e-4
            )


def test_export_again_keeps_up_to_date_files(exported, tmp_path):
    run_dir, _ = exported
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    run = RunDir(copy)
    path = run.fold_file("test_resnet", 0, ONNX_FILE)
    before = path.stat().st_mtime_ns
    written = export_onnx(copy, progress=False)
    assert len(written) == 3
    assert path.stat().st_mtime_ns == before
    # A fold trained again (newer model.pth) makes its ONNX file stale: refused, then redone.
    # (Both times set in the past, so the redone file is newer whatever the clock does.)
    model_path = run.fold_file("test_resnet", 0, run.MODEL_FILE)
    os.utime(path, ns=(before - 2 * 10**9, before - 2 * 10**9))
    os.utime(model_path, ns=(before - 10**9, before - 10**9))
    with pytest.raises(CheckpointError, match="older than"):
        load_onnx_fold_model(copy, arch="test_resnet", fold=0)
    export_onnx(copy, progress=False)
    assert path.stat().st_mtime_ns >= model_path.stat().st_mtime_ns
    assert isinstance(load_onnx_fold_model(copy, arch="test_resnet", fold=0), OnnxFoldModel)


def test_missing_or_damaged_onnx_file_is_named(trained_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, copy)
    path = RunDir(copy).fold_file("test_resnet", 2, ONNX_FILE)
    with pytest.raises(CheckpointError, match=r"no ONNX model; run `python -m emo_utils export"):
        load_onnx_fold_model(copy, arch="test_resnet", fold=2)
    path.write_bytes(b"not an onnx graph")
    with pytest.raises(CheckpointError, match="cannot be loaded by onnxruntime"):
        load_onnx_fold_model(copy, arch="test_resnet", fold=2)


def test_only_torch_architectures_are_exported():
    config = Config().override(
        {"train.architectures": ["classical:logreg", "test_resnet", "hfemb:some/model"]}
    )
    assert exportable_architectures(config) == ["test_resnet"]


def test_predict_command_takes_the_onnx_engine():
    from emo_utils.cli import build_parser
    from emo_utils.infer.onnx_export import ENGINES

    args = build_parser().parse_args(["predict", "--data", "d", "--run", "r", "--engine", "onnx"])
    assert ENGINES[args.engine] is load_onnx_fold_model
    assert build_parser().parse_args(["predict", "--data", "d", "--run", "r"]).engine == "torch"
