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
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_errors
from torch import nn

from ..config import Config
from ..errors import CheckpointError, ConfigError
from ..features import n_frames
from ..features.waveform import waveform_config
from ..fileio import atomic_path
from ..models import load_fold_model, resolve_architecture
from ..runs import RunDir

__all__ = [
    "ENGINES",
    "EXPORT_FORMATS",
    "ONNX_FILE",
    "OPSET",
    "OnnxFoldModel",
    "export_onnx",
    "exportable_architectures",
    "load_onnx_fold_model",
]

#: File name of a fold's exported model, beside its ``model.pth``.
ONNX_FILE = "model.onnx"
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
    run = RunDir(run_dir)
    path = run.fold_file(arch, fold, ONNX_FILE)
    model_path = run.fold_file(arch, fold, run.MODEL_FILE)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no ONNX model; run `python -m emo_utils export --run {run.path} "
            "--format onnx` first"
        )
    if model_path.is_file() and not _up_to_date(path, model_path):
        raise CheckpointError(
            f"{path}: older than {model_path} (the fold was trained again); export it again"
        )
    return OnnxFoldModel(path)


#: ``export --format`` name -> ``f(run_dir, *, config, architectures, force, progress)``.
EXPORT_FORMATS: dict[str, Callable[..., list[Path]]] = {"onnx": export_onnx}

#: ``predict --engine`` name -> fold-model loader (``loader(run_dir, *, arch, fold, device)``).
ENGINES: dict[str, Callable[..., nn.Module]] = {
    "torch": load_fold_model,
    "onnx": load_onnx_fold_model,
}
