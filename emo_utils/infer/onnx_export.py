"""ONNX export of a run's fold models and inference on ONNX Runtime (CPU).

:func:`export_onnx` writes ``RUN/models/ARCH/fold{k}/model.onnx`` for every fold of every
torch architecture of a run: the :class:`~emo_utils.models.normalize.NormalizedModel` of
:func:`~emo_utils.models.load_fold_model`, so the per-channel normalisation is built into
the graph and the file is fed raw cached windows ``(batch, C, H, W)`` (input ``"image"``,
any batch size; traced at the run config's window, ``H`` and ``W`` are left free for
networks that pool globally, such as timm's CNNs) and gives logits (output ``"logits"``).  Each file is written atomically
(:func:`emo_utils.fileio.atomic_path`) and checked by :func:`onnx.checker.check_model`; a
file newer than its ``model.pth`` is kept (rerunning resumes).  Families without a torch
model (``classical:*``, ``hfemb:*``: scikit-learn) have nothing to export and predict as
before.

:func:`load_onnx_fold_model` is a ``loader`` for :func:`emo_utils.infer.predict_test` (and
``python -m emo_utils predict --engine onnx``): a module running the fold's ``model.onnx``
in an :class:`onnxruntime.InferenceSession` on the CPU, so the prediction code (views,
activation, pooling) is the torch path's.  :data:`ENGINES` maps ``--engine`` names to
loaders.

The graph comes from torch's TorchScript-based exporter (``torch.onnx.export(...,
dynamo=False)``, opset :data:`OPSET`): about 2 s per ResNet-18 against 6-13 s for the
``torch.export``-based one on a 2-core CPU, and stable for the timm CNNs.

int8 (opt-in): :func:`export_onnx_int8` (``export --format onnx-int8 --data DATA``) writes
``model.int8.onnx`` beside each ``model.onnx``: its static int8 quantisation, calibrated on
a seeded sample of the fold's own training rows (:mod:`.calibration`), and
``model.int8.json``, what it was calibrated on.  :func:`load_onnx_int8_fold_model` is the
``"onnx-int8"`` engine's loader; no engine choice falls back to it (``"auto"`` never picks
it): its probabilities differ from the fp32 model's (README "int8 ONNX models").
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pandas as pd
import torch
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_errors
from torch import nn

from ..config import Config
from ..data.folds import read_folds
from ..errors import CheckpointError, ConfigError, DataError
from ..features import FeatureStore, n_frames
from ..features.waveform import waveform_config
from ..fileio import atomic_path, write_json
from ..models import load_fold_model, resolve_architecture
from ..runs import RunDir
from .calibration import (
    CALIBRATION_METHOD,
    CALIBRATION_METHODS,
    CALIBRATION_SEED,
    CALIBRATION_WINDOWS,
    calibration_rows,
    calibration_windows,
    quantize_int8,
)

__all__ = [
    "ENGINES",
    "EXPORT_FORMATS",
    "INT8_FILE",
    "INT8_INFO_FILE",
    "ONNX_FILE",
    "OPSET",
    "OnnxFoldModel",
    "export_onnx",
    "export_onnx_int8",
    "exportable_architectures",
    "int8_model_path",
    "load_onnx_fold_model",
    "load_onnx_int8_fold_model",
    "onnx_model_path",
]

#: File name of a fold's exported model, beside its ``model.pth``.
ONNX_FILE = "model.onnx"
#: File name of a fold's int8 model (opt-in), beside its ``model.onnx``.
INT8_FILE = "model.int8.onnx"
#: What a fold's int8 model was calibrated on (JSON), beside it.
INT8_INFO_FILE = "model.int8.json"
#: ONNX opset of the exported graphs.
OPSET = 17
#: What :class:`onnxruntime.InferenceSession` raises on a file it cannot load.
_LOAD_ERRORS = (
    _ort_errors.Fail,
    _ort_errors.InvalidArgument,
    _ort_errors.InvalidGraph,
    _ort_errors.InvalidProtobuf,
    _ort_errors.NoSuchFile,
    _ort_errors.RuntimeException,
)
_INPUT = "image"
_OUTPUT = "logits"


def _input_shape(config: Config, family_input: str) -> tuple[int, int, int]:
    """``(C, H, W)`` of one window of the family's input store."""
    if family_input == "waveform":
        config = waveform_config(config)
    elif family_input != "image":
        raise ConfigError("train.architectures", family_input, "input kind without an ONNX export")
    f = config.features
    return len(f.channels), f.n_mels, n_frames(config.audio.n_samples, hop_length=f.hop_length)


def exportable_architectures(config: Config) -> list[str]:
    """The run's architectures with a torch model (trained by fastai), in config order."""
    return [
        arch
        for arch in config.train.architectures
        if resolve_architecture(arch)[0].trainer == "fastai"
    ]


def _up_to_date(onnx_path: Path, model_path: Path) -> bool:
    return onnx_path.is_file() and onnx_path.stat().st_mtime_ns >= model_path.stat().st_mtime_ns


def export_onnx(
    run_dir: str | os.PathLike | RunDir,
    *,
    config: Config | None = None,
    architectures: Sequence[str] | None = None,
    force: bool = False,
    progress: bool = True,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> list[Path]:
    """Write ``model.onnx`` beside every fold's ``model.pth`` (normalisation built in).

    Parameters
    ----------
    run_dir : str, os.PathLike or RunDir
        A trained run folder.
    config : Config, optional
        Default: the run's ``config.json``.
    architectures : sequence of str, optional
        Default: every architecture of the run with a torch model
        (:func:`exportable_architectures`).
    force : bool
        Export again even where ``model.onnx`` is newer than ``model.pth``.
    progress : bool
        Print one line per exported fold.
    data_dir, cache_dir : path-like, optional
        Unused (the fp32 export reads no data); :data:`EXPORT_FORMATS`' common signature.

    Returns
    -------
    list of pathlib.Path
        The ``model.onnx`` of every fold, exported now or kept.

    Raises
    ------
    TrainingError
        A fold has not finished training.
    CheckpointError
        A ``model.pth`` is damaged, or the exported graph fails ONNX's checker.
    """
    run = RunDir(run_dir)
    config = config or run.read_config()
    archs = list(architectures) if architectures is not None else exportable_architectures(config)
    run.require_trained(archs, config.train.n_folds)
    written = []
    for arch in archs:
        family, _name = resolve_architecture(arch)
        if family.trainer != "fastai":
            raise ConfigError("architectures", arch, "has no torch model to export")
        shape = _input_shape(config, family.input)
        for fold in range(config.train.n_folds):
            path = run.fold_file(arch, fold, ONNX_FILE)
            written.append(path)
            if not force and _up_to_date(path, run.fold_file(arch, fold, run.MODEL_FILE)):
                continue
            model = load_fold_model(run, arch=arch, fold=fold, device="cpu")
            _export(model, shape, path)
            if progress:
                print(f"exported {arch} fold {fold}: {path}", flush=True)
    return written


def _export(model: nn.Module, shape: tuple[int, int, int], path: Path) -> None:
    """Export ``model`` for inputs ``(batch, *shape)`` to ``path``, atomically, and check it."""
    example = torch.zeros((2, *shape), dtype=torch.float32)
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            # The TorchScript-based exporter announces its successor on every call.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
            torch.onnx.export(
                model,
                (example,),
                str(tmp),
                dynamo=False,
                input_names=[_INPUT],
                output_names=[_OUTPUT],
                dynamic_axes={
                    _INPUT: {0: "batch", 2: "height", 3: "frames"},
                    _OUTPUT: {0: "batch"},
                },
                opset_version=OPSET,
            )
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
        except onnx.checker.ValidationError as exc:
            raise CheckpointError(f"{path}: the exported graph is not valid ONNX ({exc})") from exc


class OnnxFoldModel(nn.Module):
    """A fold's ``model.onnx`` as a module: raw windows in, logits out, on ONNX Runtime (CPU).

    Parameters
    ----------
    path : str or os.PathLike
        The ``model.onnx``.
    threads : int, optional
        ONNX Runtime's intra-op threads (default: its own choice, one per core).
    spin : bool
        Let idle intra-op threads spin-wait for the next operator (ONNX Runtime's default).
        ``False`` frees the cores between calls, for many sessions used in turn (the fold
        models of a timeline) or a busy machine.

    Notes
    -----
    The input tensor may live on any device; it is copied to the CPU, and the logits are
    returned on the input's device, so :func:`emo_utils.infer.predict_rows` runs unchanged.
    """

    def __init__(
        self, path: str | os.PathLike, *, threads: int | None = None, spin: bool = True
    ) -> None:
        super().__init__()
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except _LOAD_ERRORS as exc:
            raise CheckpointError(f"{path}: cannot be loaded by onnxruntime ({exc})") from exc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_outputs)`` of raw windows ``x`` ``(B, C, H, W)``."""
        image = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        (logits,) = self.session.run([_OUTPUT], {_INPUT: image})
        return torch.from_numpy(logits).to(x.device)


def _require_fresh(path: Path, source: Path, *, missing: str, stale: str) -> None:
    """Raise :class:`CheckpointError` when ``path`` is missing or older than ``source``."""
    if not path.is_file():
        raise CheckpointError(f"{path}: {missing}")
    if source.is_file() and not _up_to_date(path, source):
        raise CheckpointError(f"{path}: older than {source} ({stale}); export it again")


def onnx_model_path(run_dir: str | os.PathLike | RunDir, *, arch: str, fold: int) -> Path:
    """A fold's ``model.onnx``, checked: exported and newer than its ``model.pth``.

    Raises
    ------
    CheckpointError
        No ``model.onnx`` (export the run first), or one older than its ``model.pth``.
    """
    run = RunDir(run_dir)
    path = run.fold_file(arch, fold, ONNX_FILE)
    _require_fresh(
        path,
        run.fold_file(arch, fold, run.MODEL_FILE),
        missing=f"no ONNX model; run `python -m emo_utils export --run {run.path} "
        "--format onnx` first",
        stale="the fold was trained again",
    )
    return path


def load_onnx_fold_model(
    run_dir: str | os.PathLike | RunDir,
    *,
    arch: str,
    fold: int,
    device: str | torch.device | None = None,
) -> nn.Module:
    """The ``loader`` of the ONNX engine: one fold's ``model.onnx`` (:class:`OnnxFoldModel`).

    Parameters
    ----------
    run_dir : str, os.PathLike or RunDir
    arch : str
    fold : int
    device : str or torch.device, optional
        Ignored: ONNX Runtime runs on the CPU.

    Returns
    -------
    OnnxFoldModel

    Raises
    ------
    CheckpointError
        No ``model.onnx`` (export the run first), or one older than its ``model.pth`` (the
        fold was trained again since), or one onnxruntime cannot load.
    """
    return OnnxFoldModel(onnx_model_path(run_dir, arch=arch, fold=fold))


# ------------------------------------------------------------------------------- int8
def export_onnx_int8(
    run_dir: str | os.PathLike | RunDir,
    *,
    config: Config | None = None,
    architectures: Sequence[str] | None = None,
    force: bool = False,
    progress: bool = True,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    store: FeatureStore | None = None,
    windows: int = CALIBRATION_WINDOWS,
    method: str = CALIBRATION_METHOD,
    per_channel: bool = True,
) -> list[Path]:
    """Write ``model.int8.onnx`` beside every fold's ``model.onnx``: static int8 quantisation.

    The fp32 ``model.onnx`` files are exported first where missing or stale
    (:func:`export_onnx`).  Each fold is calibrated on :func:`.calibration.calibration_rows`
    of its own training rows (one seeded random window of each, never a validation row),
    quantised by :func:`.calibration.quantize_int8` (QDQ, per-channel int8 weights, uint8
    activations), written atomically and loaded once by ONNX Runtime as a check.  What it
    was calibrated on is written first to ``model.int8.json`` (method, per-channel, seed,
    the rows' file names).  A ``model.int8.onnx`` newer than its ``model.onnx`` is kept.

    Parameters
    ----------
    run_dir : str, os.PathLike or RunDir
        A trained run folder.
    config : Config, optional
        Default: the run's ``config.json``.
    architectures : sequence of str, optional
        Default: :func:`exportable_architectures`.
    force : bool
        Quantise again even where ``model.int8.onnx`` is up to date.
    progress : bool
        Print one line per quantised fold.
    data_dir : path-like, optional
        The competition folder the run was trained on: its training cache gives the
        calibration windows (built if missing).  Needed unless ``store`` is given.
    cache_dir : path-like, optional
        Its feature cache (default ``DATA/.emo_cache``).
    store : FeatureStore, optional
        The training split's store itself (rows in ``folds.csv`` order), instead of
        ``data_dir``.
    windows : int
        Calibration windows per fold (:data:`.calibration.CALIBRATION_WINDOWS`).
    method : str
        Calibration method (:data:`.calibration.CALIBRATION_METHODS`).
    per_channel : bool
        One weight scale per output channel.

    Returns
    -------
    list of pathlib.Path
        The ``model.int8.onnx`` of every fold, quantised now or kept.

    Raises
    ------
    ConfigError
        Neither ``data_dir`` nor ``store``, an architecture without a torch model or whose
        input is not the image cache, or an unknown ``method``.
    DataError
        The training cache does not hold the run's ``folds.csv`` rows.
    CheckpointError
        A model file is damaged, or the quantised model cannot be loaded.
    """
    run = RunDir(run_dir)
    config = config or run.read_config()
    archs = list(architectures) if architectures is not None else exportable_architectures(config)
    if method not in CALIBRATION_METHODS:
        raise ConfigError("calibration method", method, f"known: {sorted(CALIBRATION_METHODS)}")
    for arch in archs:
        if resolve_architecture(arch)[0].input != "image":
            raise ConfigError("architectures", arch, "int8 export calibrates on images only")
    export_onnx(run, config=config, architectures=archs, progress=progress)
    folds = read_folds(run.folds_file)
    written, train, store_rows = [], store, None
    for arch in archs:
        for fold in range(config.train.n_folds):
            source = onnx_model_path(run, arch=arch, fold=fold)
            path = run.fold_file(arch, fold, INT8_FILE)
            written.append(path)
            if not force and _up_to_date(path, source):
                continue
            if store_rows is None:  # the first fold to quantise: read the cache once
                train = train if train is not None else _training_store(config, data_dir, cache_dir)
                store_rows = _store_rows(train, folds)
            rows = calibration_rows(folds, fold=fold, count=windows, usable=train.ok[store_rows])
            write_json(
                run.fold_file(arch, fold, INT8_INFO_FILE),
                {
                    "source": ONNX_FILE,
                    "method": method,
                    "per_channel": per_channel,
                    "seed": CALIBRATION_SEED,
                    "windows": len(rows),
                    "rows": folds["filename"].iloc[rows].astype(str).tolist(),
                },
            )
            with atomic_path(path) as tmp:
                quantize_int8(
                    source,
                    tmp,
                    windows=calibration_windows(train, rows=store_rows[rows], fold=fold),
                    input_name=_INPUT,
                    method=method,
                    per_channel=per_channel,
                )
                OnnxFoldModel(tmp)  # loads: a check before the file is moved into place
            if progress:
                print(
                    f"quantised {arch} fold {fold} ({method}, {len(rows)} windows): {path}",
                    flush=True,
                )
    return written


def _training_store(
    config: Config, data_dir: str | os.PathLike | None, cache_dir: str | os.PathLike | None
) -> FeatureStore:
    """The training split's image cache of the competition the run was trained on."""
    if data_dir is None:
        raise ConfigError(
            "data_dir", None, "int8 export calibrates on the training cache: give --data"
        )
    from ..data.competition import load_competition
    from ..features import build_cache

    competition = load_competition(data_dir, config.data)
    return build_cache(competition, "train", config=config, cache_dir=cache_dir, progress=False)


def _store_rows(store: FeatureStore, folds: pd.DataFrame) -> np.ndarray:
    """Row of ``store`` of every ``folds.csv`` row (the training cache may hold more)."""
    index = {name: i for i, name in enumerate(store.filenames)}
    names = folds["filename"].astype(str)
    absent = [n for n in names if n not in index]
    if absent:
        where = store.directory or "the training store"
        raise DataError(
            f"{where}: {len(absent)} training file(s) of the run's folds.csv are not in it, "
            f"e.g. {absent[:3]}; give the competition folder the run was trained on"
        )
    return np.array([index[n] for n in names], dtype=np.int64)


def int8_model_path(run_dir: str | os.PathLike | RunDir, *, arch: str, fold: int) -> Path:
    """A fold's ``model.int8.onnx``, checked: quantised from its up-to-date ``model.onnx``.

    Raises
    ------
    CheckpointError
        No ``model.int8.onnx`` (``export --format onnx-int8`` first), or one older than its
        ``model.onnx`` (itself older than ``model.pth``).
    """
    run = RunDir(run_dir)
    path = run.fold_file(arch, fold, INT8_FILE)
    _require_fresh(
        path,
        onnx_model_path(run, arch=arch, fold=fold),
        missing=f"no int8 model; run `python -m emo_utils export --run {run.path} "
        "--format onnx-int8 --data DATA` first",
        stale="the fp32 model was exported again",
    )
    return path


def load_onnx_int8_fold_model(
    run_dir: str | os.PathLike | RunDir,
    *,
    arch: str,
    fold: int,
    device: str | torch.device | None = None,
) -> nn.Module:
    """The ``loader`` of the int8 engine: one fold's ``model.int8.onnx`` (opt-in).

    Parameters
    ----------
    run_dir : str, os.PathLike or RunDir
    arch : str
    fold : int
    device : str or torch.device, optional
        Ignored: ONNX Runtime runs on the CPU.

    Returns
    -------
    OnnxFoldModel

    Raises
    ------
    CheckpointError
        The checks of :func:`int8_model_path`, or a file onnxruntime cannot load.
    """
    return OnnxFoldModel(int8_model_path(run_dir, arch=arch, fold=fold))


#: ``export --format`` name -> ``f(run_dir, *, config, architectures, force, progress,
#: data_dir, cache_dir)``.
EXPORT_FORMATS: dict[str, Callable[..., list[Path]]] = {
    "onnx": export_onnx,
    "onnx-int8": export_onnx_int8,
}

#: ``predict --engine`` name -> fold-model loader (``loader(run_dir, *, arch, fold, device)``).
#: ``"onnx-int8"`` is opt-in: nothing picks it unless asked.
ENGINES: dict[str, Callable[..., nn.Module]] = {
    "torch": load_fold_model,
    "onnx": load_onnx_fold_model,
    "onnx-int8": load_onnx_int8_fold_model,
}
