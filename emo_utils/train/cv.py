"""Cross-validated training of timm models with fastai, resumable, with OOF predictions.

:func:`train_cv` trains every architecture of ``config.train.architectures`` on every fold
of ``RUN/folds.csv`` (see :mod:`emo_utils.data.folds`) and writes the run folder described in
``docs/design.md``::

    RUN/config.json, classes.json, folds.csv
    RUN/models/ARCH/fold{k}/model.pth       best weights (NormalizedModel state dict)
                           /checkpoint.pth  last finished epoch (model, optimiser, epoch, best)
                           /log.csv         one row per epoch (fastai CSVLogger)
                           /oof.csv         this fold's out-of-fold probabilities
                           /done.json       completion marker, written last
    RUN/oof/ARCH.csv                        filename,label,fold,<probability per class>
    RUN/cv_report.json, cv_report.md        per fold / overall / per class scores

Data: :class:`WindowDataset` reads windows straight from the
:class:`~emo_utils.features.store.FeatureStore` (no image files); fastai ``DataLoaders`` move the
batches to the GPU (when there is one) where :mod:`emo_utils.train.augment` applies the batch
augmentations; mixup is fastai's ``MixUp`` callback.

Model: a timm network (:func:`~emo_utils.models.timm.build_model`) inside a
:class:`~emo_utils.models.timm.NormalizedModel`, whose per-channel statistics
(``train.image_normalization``) are saved with the weights, so :func:`load_fold_model`
returns a module fed with raw cached windows.

Training: fastai ``fit_one_cycle`` with AdamW (``OptimWrapper`` around
:class:`torch.optim.AdamW`), cross-entropy with optional label smoothing and class weights,
mixed precision on GPU, the best epoch by ``train.monitor`` kept by a ``SaveModelCallback``,
optional early stopping and a CSV log per fold.

Resume: a fold with ``done.json`` is skipped; a fold with ``checkpoint.pth`` continues at
the next epoch of the same one-cycle schedule (fastai's ``start_epoch``) with the model,
optimiser, random-number states and best score restored, so a worse resumed epoch never
replaces the best weights.  Every file is written atomically; a damaged checkpoint raises
:class:`~emo_utils.errors.CheckpointError` naming the fold, the file and the fix.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import random
import time
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from fastai.callback.core import Callback, CancelFitException
from fastai.callback.fp16 import AMPMode, MixedPrecision
from fastai.callback.mixup import MixUp
from fastai.callback.progress import CSVLogger, ProgressCallback
from fastai.callback.schedule import fit_one_cycle  # noqa: F401  (patches Learner.fit_one_cycle)
from fastai.callback.tracker import EarlyStoppingCallback, SaveModelCallback, TrackerCallback
from fastai.data.core import DataLoaders
from fastai.learner import Learner, load_model, save_model
from fastai.losses import CrossEntropyLossFlat
from fastai.optimizer import OptimWrapper
from fastai.torch_core import TensorCategory, TensorImage, default_device, set_seed
from fastcore.basics import noop
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

from .augment import batch_augmentations
from ..features.store import FeatureStore
from ..data.competition import Competition
from ..config import Config, TrainConfig, check_run_config
from ..data.duplicates import describe_groups
from ..errors import CacheError, CheckpointError, ConfigError, EmoUtilsWarning, TrainingError
from ..fileio import (
    atomic_path,
    read_csv,
    read_json,
    remove_temp_files,
    write_csv,
    write_json,
    write_text,
)
from ..data.folds import check_fold_counts, load_or_create_folds
from ..metrics import METRICS, fastai_metric, per_class_report
from ..models.timm import (
    NormalizedModel,
    build_model,
    check_architectures,
    image_statistics,
    resolve_weights_file,
)

__all__ = [
    "CHECKPOINT_FILE",
    "DONE_FILE",
    "FOLD_OOF_FILE",
    "LOG_FILE",
    "MODEL_FILE",
    "CVResult",
    "FoldResult",
    "WindowDataset",
    "build_model",
    "check_training_setup",
    "fold_dir",
    "load_fold_model",
    "make_dataloaders",
    "make_learner",
    "train_cv",
]

MODEL_FILE = "model.pth"
CHECKPOINT_FILE = "checkpoint.pth"
LOG_FILE = "log.csv"
DONE_FILE = "done.json"
FOLD_OOF_FILE = "oof.csv"
_CHECKPOINT_FORMAT = 1
# What torch.load raises on a truncated or corrupted file.
_LOAD_ERRORS = (
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
)


def fold_dir(run_dir: str | os.PathLike, arch: str, fold: int) -> Path:
    """``RUN/models/ARCH/fold{k}``."""
    return Path(run_dir) / "models" / arch / f"fold{int(fold)}"


# ---------------------------------------------------------------------------- data
class WindowDataset(torch.utils.data.Dataset):
    """``(image, target)`` pairs read from a :class:`FeatureStore`.

    Parameters
    ----------
    store : FeatureStore
        The cached images.
    rows : sequence of int
        Store rows of the items.
    targets : sequence of int
        Class index of every item.
    policy : {"start", "center", "random"}
        Window crop policy (:meth:`FeatureStore.window`); ``"random"`` draws the window
        from the torch random generator, so it follows ``set_seed`` and worker seeding.
    split_idx : {0, 1}
        0 for training data, 1 for validation data: fastai applies the training-only batch
        transforms (augmentation) to loaders whose dataset has ``split_idx == 0``.

    Items are ``(TensorImage of shape (C, H, window_frames), TensorCategory)``.
    """

    def __init__(
        self,
        store: FeatureStore,
        rows: Sequence[int],
        targets: Sequence[int],
        policy: str,
        *,
        split_idx: int,
    ) -> None:
        if len(rows) != len(targets):
            raise TrainingError(f"WindowDataset: {len(rows)} rows but {len(targets)} targets")
        self.store = store
        self.rows = np.asarray(rows, dtype=np.int64)
        self.targets = np.asarray(targets, dtype=np.int64)
        self.policy = policy
        self.split_idx = split_idx

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[TensorImage, TensorCategory]:
        rng = None
        if self.policy == "random":
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
        image = self.store.window(int(self.rows[i]), self.policy, rng)
        return TensorImage(torch.from_numpy(image)), TensorCategory(int(self.targets[i]))


def make_dataloaders(
    store: FeatureStore,
    *,
    train_rows: Sequence[int],
    train_targets: Sequence[int],
    valid_rows: Sequence[int],
    valid_targets: Sequence[int],
    config: Config,
    device: torch.device | None = None,
) -> DataLoaders:
    """fastai ``DataLoaders`` over cached windows, with the configured batch augmentation.

    The training loader shuffles and drops the last incomplete batch (its batch size is at
    most the number of training items); the validation loader keeps the row order.  The
    augmentations of :mod:`emo_utils.train.augment` run on the training batches only, on
    ``device`` (default: the GPU when there is one).
    """
    tc = config.train
    device = default_device() if device is None else torch.device(device)
    train_ds = WindowDataset(store, train_rows, train_targets, config.audio.train_crop, split_idx=0)
    valid_ds = WindowDataset(store, valid_rows, valid_targets, config.audio.crop, split_idx=1)
    bs = max(1, min(tc.batch_size, len(train_ds)))
    dls = DataLoaders.from_dsets(
        train_ds,
        valid_ds,
        bs=bs,
        device=device,
        num_workers=tc.num_workers,
        pin_memory=device.type == "cuda",
        after_batch=batch_augmentations(tc),
    )
    for dl in dls.loaders:
        # fastai infers the batch types from one sample batch, lazily at the first batch;
        # do it now so it never draws random numbers in the middle of a (resumed) fit.
        _ = dl.n_inp
    return dls


class LazyProgressCallback(ProgressCallback):
    """fastai's progress bars, refreshing the loss shown in the bar every ``every`` batches.

    fastai's ``ProgressCallback`` reads the loss (``.item()``) after every batch, which makes
    the CPU wait for the GPU each time; reading it less often keeps the GPU queue full.
    """

    def __init__(self, every: int = 20) -> None:
        self.every = every

    @property
    def name(self) -> str:
        """``learn.progress``, like fastai's, so ``Learner.no_bar()`` finds it."""
        return "progress"

    def after_batch(self) -> None:
        self.pbar.update(self.iter + 1)
        if hasattr(self, "smooth_loss") and self.iter % self.every == 0:
            self.pbar.comment = f"{self.smooth_loss.item():.4f}"


def make_learner(
    dls: DataLoaders,
    model: nn.Module,
    *,
    config: TrainConfig,
    n_classes: int,
    train_targets: Sequence[int],
    path: str | os.PathLike = ".",
    progress: bool = True,
) -> Learner:
    """The fastai ``Learner`` of one fold.

    AdamW (``OptimWrapper``), cross-entropy (label smoothing, optional balanced class
    weights from the fold's training targets), metrics ``accuracy``, ``f1_macro``,
    ``f1_weighted``, fastai's ``MixUp`` when ``config.mixup > 0`` and mixed precision
    (bf16 where supported, else fp16) when ``config.mixed_precision`` and the data is on a
    GPU.  ``progress=False`` removes the progress bars and the per-epoch table.
    """
    weight = None
    if config.class_weights:
        w = compute_class_weight(
            "balanced", classes=np.arange(n_classes), y=np.asarray(train_targets)
        )
        weight = torch.tensor(w, dtype=torch.float32, device=dls.device)
    loss = CrossEntropyLossFlat(weight=weight, label_smoothing=config.label_smoothing)
    cbs = [MixUp(config.mixup)] if config.mixup > 0 else []
    learn = Learner(
        dls,
        model,
        loss_func=loss,
        opt_func=partial(OptimWrapper, opt=torch.optim.AdamW),
        lr=config.lr,
        wd=config.weight_decay,
        metrics=[fastai_metric(name) for name in METRICS],
        path=Path(path),
        model_dir=".",
        cbs=cbs,
    )
    if config.mixed_precision and dls.device.type == "cuda":
        mode = AMPMode.BF16 if torch.cuda.is_bf16_supported() else AMPMode.FP16
        learn.add_cb(MixedPrecision(amp_mode=mode))
    learn.remove_cb(ProgressCallback)
    if progress:
        learn.add_cb(LazyProgressCallback())
    else:
        learn.logger = noop
    return learn


# ---------------------------------------------------------------------------- callbacks
class BestModelSaver(SaveModelCallback):
    """``SaveModelCallback`` writing the best weights atomically to ``file``.

    On resume (``start_epoch > 0``) the best score of the interrupted fit is restored, and
    skipped epochs are ignored, so only a better epoch replaces the saved weights.  At the
    end of the fit the best weights are loaded back into the model.
    """

    def __init__(
        self,
        file: str | os.PathLike,
        monitor: str,
        *,
        start_epoch: int = 0,
        best: float | None = None,
        best_epoch: int | None = None,
        verbose: bool = True,
    ) -> None:
        super().__init__(monitor=monitor, fname=Path(file).stem, with_opt=False)
        self.file = Path(file)
        self.start_epoch, self.resume_best, self.best_epoch = start_epoch, best, best_epoch
        self.verbose = verbose

    def before_fit(self) -> None:
        super().before_fit()
        if self.resume_best is not None:
            self.best = self.resume_best

    def after_epoch(self) -> None:
        if self.epoch < self.start_epoch:
            return
        TrackerCallback.after_epoch(self)
        if self.new_best or not self.file.exists():
            self.best_epoch = self.epoch
            if self.verbose:
                print(
                    f"Better model found at epoch {self.epoch} with {self.monitor} value: {self.best}."
                )
            self._save(self.fname)

    def _save(self, name: str) -> None:
        with atomic_path(self.file) as tmp:
            save_model(tmp, self.learn.model, None, with_opt=False)
        self.last_saved_path = self.file

    def after_fit(self, **kwargs: Any) -> None:
        _load_weights(self.file, self.learn.model, self.dls.device)


class ResumableEarlyStopping(EarlyStoppingCallback):
    """``EarlyStoppingCallback`` that ignores skipped epochs and restores its state on resume."""

    def __init__(
        self,
        monitor: str,
        patience: int,
        *,
        start_epoch: int = 0,
        best: float | None = None,
        wait: int = 0,
    ) -> None:
        super().__init__(monitor=monitor, patience=patience)
        self.start_epoch, self.resume_best, self.resume_wait = start_epoch, best, wait
        self.stopped_epoch: int | None = None

    def before_fit(self) -> None:
        super().before_fit()
        if self.resume_best is not None:
            self.best, self.wait = self.resume_best, self.resume_wait

    def after_epoch(self) -> None:
        if self.epoch < self.start_epoch:
            return
        try:
            super().after_epoch()
        except CancelFitException:
            self.stopped_epoch = self.epoch
            raise


class AtomicCSVLogger(CSVLogger):
    """fastai's ``CSVLogger``, rewriting ``file`` atomically after every epoch.

    On resume the rows of the epochs before ``start_epoch`` are kept and skipped epochs are
    neither logged nor shown.
    """

    def __init__(self, file: str | os.PathLike, *, start_epoch: int = 0) -> None:
        super().__init__(fname=Path(file), append=False)
        self.file, self.start_epoch = Path(file), start_epoch
        self.lines: list[str] = []

    def before_fit(self) -> None:
        if hasattr(self, "gather_preds"):
            return
        self.lines = [",".join(self.recorder.metric_names)]
        if self.start_epoch > 0 and self.file.is_file():
            for line in self.file.read_text(encoding="utf-8").splitlines()[1:]:
                epoch = line.split(",", 1)[0]
                if epoch.isdigit() and int(epoch) < self.start_epoch:
                    self.lines.append(line)
        self.old_logger, self.learn.logger = self.logger, self._write_line

    def _write_line(self, log: Sequence[Any]) -> None:
        if int(log[0]) < self.start_epoch:
            return
        self.lines.append(",".join(str(t) for t in log))
        write_text(self.file, "\n".join(self.lines) + "\n")
        self.old_logger(log)

    def after_fit(self) -> None:
        if hasattr(self, "gather_preds"):
            return
        self.learn.logger = self.old_logger


class EpochCheckpoint(Callback):
    """Write ``checkpoint.pth`` (model, optimiser, epoch, best score, RNG states) atomically
    after every finished epoch."""

    order = EarlyStoppingCallback.order + 1

    def __init__(
        self,
        file: str | os.PathLike,
        *,
        arch: str,
        fold: int,
        saver: BestModelSaver,
        stopper: ResumableEarlyStopping | None = None,
        start_epoch: int = 0,
    ) -> None:
        self.file, self.arch, self.fold = Path(file), arch, fold
        self.saver, self.stopper, self.start_epoch = saver, stopper, start_epoch

    def after_epoch(self) -> None:
        if self.epoch < self.start_epoch:
            return
        state = {
            "format": _CHECKPOINT_FORMAT,
            "arch": self.arch,
            "fold": self.fold,
            "epoch": self.epoch,
            "n_epoch": self.n_epoch,
            "model": self.learn.model.state_dict(),
            "opt": _plain(self.learn.opt.state_dict()),
            "best": float(self.saver.best),
            "best_epoch": self.saver.best_epoch,
            "wait": self.stopper.wait if self.stopper is not None else 0,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python_rng": random.getstate(),
            "train_dl_rng": self.dls.train.rng.getstate(),
        }
        with atomic_path(self.file) as tmp:
            torch.save(state, tmp)


# ---------------------------------------------------------------------------- files
def _plain(obj: Any) -> Any:
    """NumPy scalars (fastai's scheduled hyper-parameters) as Python numbers, recursively,
    so a checkpoint loads with ``torch.load(weights_only=True)``."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


def _load_weights(path: Path, model: nn.Module, device: torch.device | str | None) -> None:
    """Load a state dict saved by :class:`BestModelSaver`, or raise a :class:`CheckpointError`."""
    if not path.is_file():
        raise CheckpointError(
            f"{path}: best weights missing; delete {path.parent} to train the fold again"
        )
    try:
        load_model(path, model, None, with_opt=False, device=device)
    except _LOAD_ERRORS as exc:
        raise CheckpointError(
            f"{path}: damaged or does not match the model ({exc}); delete {path.parent} "
            "to train the fold again"
        ) from exc


def _read_checkpoint(path: Path, *, arch: str, fold: int, epochs: int) -> dict[str, Any]:
    what = f"{arch} fold {fold}: checkpoint {path}"
    fix = "delete it to restart the fold from its first epoch"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except _LOAD_ERRORS as exc:
        raise CheckpointError(f"{what} is damaged ({exc}); {fix}") from exc
    keys = {"format", "arch", "fold", "epoch", "n_epoch", "model", "opt", "best", "best_epoch"}
    if not isinstance(state, dict) or not keys <= set(state):
        raise CheckpointError(f"{what} is not a checkpoint of this package; {fix}")
    if (state["arch"], state["fold"]) != (arch, fold):
        raise CheckpointError(f"{what} belongs to {state['arch']} fold {state['fold']}; {fix}")
    if state["n_epoch"] != epochs:
        raise CheckpointError(
            f"{what} was written for train.epochs = {state['n_epoch']}, now {epochs}: the "
            f"one-cycle schedule differs; {fix}"
        )
    return state


def _restore_checkpoint(
    state: dict[str, Any], learn: Learner, path: Path, arch: str, fold: int
) -> None:
    try:
        # Model on its device first: the optimiser state is loaded onto the parameters' device.
        learn.model.to(learn.dls.device)
        learn.model.load_state_dict(state["model"])
        learn.create_opt()
        learn.opt.load_state_dict(state["opt"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(
            f"{arch} fold {fold}: checkpoint {path} does not match the model ({exc}); "
            "delete it to restart the fold from its first epoch"
        ) from exc
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    random.setstate(state["python_rng"])
    learn.dls.train.rng.setstate(state["train_dl_rng"])


def _oof_frame(
    filenames: Sequence[str],
    labels: Sequence[str],
    fold: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
) -> pd.DataFrame:
    df = pd.DataFrame({"filename": list(filenames), "label": list(labels), "fold": fold})
    return pd.concat([df, pd.DataFrame(probs, columns=list(classes))], axis=1)


# ---------------------------------------------------------------------------- results
@dataclass
class FoldResult:
    """Outcome of one fold of one architecture (the content of its ``done.json``)."""

    arch: str
    fold: int
    best_epoch: int | None
    best_score: float
    scores: dict[str, float]
    n_train: int
    n_valid: int
    epochs_run: int
    stopped_early: bool
    seconds: float
    oof: pd.DataFrame = field(repr=False)
    skipped: bool = False

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("oof")
        d.pop("skipped")
        return d


@dataclass
class CVResult:
    """What :func:`train_cv` did and scored.

    Attributes
    ----------
    run_dir : pathlib.Path
        The run folder.
    classes : tuple of str
        Class names, in index order (the probability columns of ``oof``).
    folds : pandas.DataFrame
        ``filename, label, fold`` of every training clip (``RUN/folds.csv``).
    oof : dict of str to pandas.DataFrame
        Architecture -> ``filename, label, fold, <class probabilities>`` in ``folds`` order.
    fold_results : dict of str to list of FoldResult
        Architecture -> one result per fold.
    report : dict
        The content of ``cv_report.json``.
    """

    run_dir: Path
    classes: tuple[str, ...]
    folds: pd.DataFrame
    oof: dict[str, pd.DataFrame]
    fold_results: dict[str, list[FoldResult]]
    report: dict[str, Any]

    def scores(self, metric: str = "accuracy") -> dict[str, float]:
        """Out-of-fold score of every architecture for ``metric`` (a name in ``METRICS``)."""
        if metric not in METRICS:
            raise ConfigError("metric", metric, f"unknown metric; known: {sorted(METRICS)}")
        return {a: r["overall"][metric] for a, r in self.report["architectures"].items()}

    @property
    def trained(self) -> list[tuple[str, int]]:
        """``(arch, fold)`` pairs trained (or resumed) by this call."""
        return [(r.arch, r.fold) for rs in self.fold_results.values() for r in rs if not r.skipped]

    @property
    def skipped(self) -> list[tuple[str, int]]:
        """``(arch, fold)`` pairs already finished before this call."""
        return [(r.arch, r.fold) for rs in self.fold_results.values() for r in rs if r.skipped]

    def oof_probabilities(self, arch: str) -> np.ndarray:
        """OOF probabilities of ``arch``, shape ``(n_clips, n_classes)``, in ``folds`` order."""
        return self.oof[arch][list(self.classes)].to_numpy(dtype=np.float64)


# ---------------------------------------------------------------------------- training
@dataclass
class _Run:
    """Everything the folds of a run share."""

    run_dir: Path
    config: Config
    store: FeatureStore
    classes: tuple[str, ...]
    folds: pd.DataFrame  # filename, label, fold (competition order)
    store_rows: np.ndarray  # store row of every folds row
    targets: np.ndarray  # class index of every folds row
    progress: bool
    callbacks: Sequence[Callback]


def _finished_fold(run: _Run, arch: str, fold: int) -> FoldResult:
    fdir = fold_dir(run.run_dir, arch, fold)
    done, oof_path = fdir / DONE_FILE, fdir / FOLD_OOF_FILE
    fix = f"delete {done} to train the fold again"
    try:
        info = read_json(done)
        oof = read_csv(oof_path, dtype={"filename": str, "label": str}, keep_default_na=False)
    except (OSError, json.JSONDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CheckpointError(
            f"{arch} fold {fold}: cannot read {done} / {oof_path} ({exc}); {fix}"
        ) from exc
    expected = run.folds["filename"][run.folds["fold"] == fold]
    if set(oof.get("filename", [])) != set(expected) or not set(run.classes) <= set(oof.columns):
        raise CheckpointError(
            f"{arch} fold {fold}: {oof_path} does not match the fold's clips or classes in "
            f"folds.csv / classes.json; {fix}"
        )
    keys = {f.name for f in dataclasses.fields(FoldResult)} - {"oof", "skipped"}
    if not isinstance(info, dict) or not keys <= set(info):
        raise CheckpointError(f"{arch} fold {fold}: {done} is incomplete; {fix}")
    return FoldResult(**{k: info[k] for k in keys}, oof=oof, skipped=True)


def _train_fold(run: _Run, arch: str, fold: int) -> FoldResult:
    """Train (or resume) one fold and write its files; ``done.json`` last."""
    start_time = time.perf_counter()
    tc = run.config.train
    fdir = fold_dir(run.run_dir, arch, fold)
    fdir.mkdir(parents=True, exist_ok=True)
    remove_temp_files(fdir)  # left by a killed run; nothing else writes to this fold
    ckpt_path, model_path = fdir / CHECKPOINT_FILE, fdir / MODEL_FILE
    state = (
        _read_checkpoint(ckpt_path, arch=arch, fold=fold, epochs=tc.epochs)
        if ckpt_path.is_file()
        else None
    )
    valid_mask = run.folds["fold"].to_numpy() == fold
    train_idx, valid_idx = np.flatnonzero(~valid_mask), np.flatnonzero(valid_mask)
    device = default_device()
    set_seed(tc.seed, reproducible=device.type == "cpu")

    body = build_model(
        arch,
        len(run.classes),
        pretrained=tc.pretrained and state is None,
        weights_dir=tc.weights_dir,
        in_chans=run.store.image_shape[0],
    )
    train_rows = run.store_rows[train_idx]
    mean, std = image_statistics(
        tc.image_normalization, store=run.store, rows=train_rows, model=body
    )
    model = NormalizedModel(body, mean, std)
    dls = make_dataloaders(
        run.store,
        train_rows=train_rows,
        train_targets=run.targets[train_idx],
        valid_rows=run.store_rows[valid_idx],
        valid_targets=run.targets[valid_idx],
        config=run.config,
        device=device,
    )
    learn = make_learner(
        dls,
        model,
        config=tc,
        n_classes=len(run.classes),
        train_targets=run.targets[train_idx],
        path=fdir,
        progress=run.progress,
    )

    start_epoch, best, best_epoch, wait = 0, None, None, 0
    if state is not None:
        _restore_checkpoint(state, learn, ckpt_path, arch, fold)
        start_epoch, best, best_epoch = state["epoch"] + 1, state["best"], state["best_epoch"]
        wait = state.get("wait", 0)
        if run.progress:
            print(f"{arch} fold {fold}: resuming at epoch {start_epoch} of {tc.epochs}")
    saver = BestModelSaver(
        model_path,
        tc.monitor,
        start_epoch=start_epoch,
        best=best,
        best_epoch=best_epoch,
        verbose=run.progress,
    )
    stopper = None
    if tc.early_stopping_patience > 0:
        stopper = ResumableEarlyStopping(
            tc.monitor, tc.early_stopping_patience, start_epoch=start_epoch, best=best, wait=wait
        )
    patience_left = stopper is None or wait < tc.early_stopping_patience
    if start_epoch < tc.epochs and patience_left:
        cbs = [
            saver,
            *([stopper] if stopper else []),
            EpochCheckpoint(
                ckpt_path,
                arch=arch,
                fold=fold,
                saver=saver,
                stopper=stopper,
                start_epoch=start_epoch,
            ),
            AtomicCSVLogger(fdir / LOG_FILE, start_epoch=start_epoch),
            *run.callbacks,
        ]
        learn.fit_one_cycle(
            tc.epochs, lr_max=tc.lr, wd=tc.weight_decay, start_epoch=start_epoch, cbs=cbs
        )
    else:  # every epoch ran before the interruption: only the predictions are missing
        _load_weights(model_path, learn.model, dls.device)

    probs = learn.get_preds(dl=dls.valid)[0]
    probs = np.asarray(probs.float().cpu().numpy(), dtype=np.float64)
    y_valid = run.targets[valid_idx]
    pred = probs.argmax(axis=1)
    scores = {name: float(fn(y_valid, pred)) for name, fn in METRICS.items()}
    folds_valid = run.folds.iloc[valid_idx]
    oof = _oof_frame(
        folds_valid["filename"],
        folds_valid["label"],
        folds_valid["fold"].to_numpy(),
        probs,
        run.classes,
    )
    epochs_run = tc.epochs
    if stopper is not None and stopper.stopped_epoch is not None:
        epochs_run = stopper.stopped_epoch + 1
    elif not patience_left:
        epochs_run = start_epoch
    if saver.best is not None:  # the fit ran (else the best score is the checkpoint's)
        best = saver.best
    best_score = float("nan") if best is None else float(best)
    result = FoldResult(
        arch=arch,
        fold=fold,
        best_epoch=saver.best_epoch,
        best_score=best_score,
        scores=scores,
        n_train=len(train_idx),
        n_valid=len(valid_idx),
        epochs_run=epochs_run,
        stopped_early=epochs_run < tc.epochs,
        seconds=round(time.perf_counter() - start_time, 3),
        oof=oof,
    )
    write_csv(fdir / FOLD_OOF_FILE, oof)
    info = result.to_json() | {
        "monitor": tc.monitor,
        "normalization": {"name": tc.image_normalization, "mean": mean, "std": std},
    }
    write_json(fdir / DONE_FILE, info)
    return result


# ---------------------------------------------------------------------------- run setup
def _align_store(
    competition: Competition, store: FeatureStore, config: Config
) -> tuple[Competition, np.ndarray]:
    """Store row of every training row; failed rows stop the run or are dropped."""
    index: dict[str, int] = {}
    for i, name in enumerate(store.filenames):
        index.setdefault(name, i)
    names = competition.train["filename"].tolist()
    missing = [n for n in names if n not in index]
    if missing:
        raise CacheError(
            f"{len(missing)} training file(s) are not in the feature store, e.g. {missing[:5]}; "
            "rebuild the cache for this competition"
        )
    rows = np.array([index[n] for n in names], dtype=np.int64)
    ok = store.ok[rows]
    if not ok.all():
        bad = [(names[i], store.reasons[rows[i]]) for i in np.flatnonzero(~ok)]
        if not config.data.skip_bad_train:
            shown = "; ".join(f"{n}: {r}" for n, r in bad[:10])
            raise CacheError(
                f"{len(bad)} training file(s) have no image ({shown}); fix them or set "
                "data.skip_bad_train = true to train without them"
            )
        warnings.warn(
            f"training without {len(bad)} file(s) that have no image: {[n for n, _ in bad[:10]]}",
            EmoUtilsWarning,
            stacklevel=3,
        )
        train = competition.train.iloc[np.flatnonzero(ok)].reset_index(drop=True)
        competition = dataclasses.replace(competition, train=train)
        rows = rows[ok]
    return competition, rows


def _write_run_files(run_dir: Path, config: Config, classes: tuple[str, ...]) -> None:
    """``config.json`` and ``classes.json``; refuse a run folder made with other settings."""
    check_run_config(run_dir, config)
    if not (run_dir / "config.json").is_file():
        config.save(run_dir / "config.json")
    classes_path = run_dir / "classes.json"
    if classes_path.is_file():
        saved_classes = read_json(classes_path)
        if list(saved_classes) != list(classes):
            raise TrainingError(
                f"{classes_path}: holds classes {saved_classes}, the data has {list(classes)}; "
                "use a new run folder"
            )
    else:
        write_json(classes_path, list(classes))


def check_training_setup(competition: Competition, config: Config) -> None:
    """Fail before any work (feature cache, run folder) when training could not start.

    Checks that every ``train.architectures`` name is a timm model, that local pretrained
    weights exist when ``train.weights_dir`` is set, and that every class of ``train.csv``
    has at least ``train.n_folds`` clips.  :func:`train_cv` checks again after dropping
    failed files.

    Raises
    ------
    TrainingError
        Naming the field (``train.architectures``, ``train.weights_dir``,
        ``train.n_folds``) and the reason.
    ConfigError
        ``train.n_folds`` is not an integer >= 2.
    """
    tc = config.train
    check_architectures(tc.architectures)
    if tc.pretrained and tc.weights_dir:
        for arch in tc.architectures:
            resolve_weights_file(arch, tc.weights_dir)
    check_fold_counts(competition.train["label"].tolist(), n_folds=tc.n_folds)


def train_cv(
    competition: Competition,
    store: FeatureStore,
    config: Config,
    run_dir: str | os.PathLike,
    *,
    progress: bool = True,
    groups: Sequence[object] | None = None,
    callbacks: Sequence[Callback] = (),
) -> CVResult:
    """Train every architecture on every fold, resumably, and write the run folder.

    Parameters
    ----------
    competition : Competition
        Training rows (``filename``, ``label``) and ``classes``.
    store : FeatureStore
        Cached training images; rows are matched to ``competition.train`` by file name.
    config : Config
        The run's configuration (``train`` section; ``audio.crop`` / ``audio.train_crop``
        choose the windows; ``data.skip_bad_train`` decides about clips without image).
    run_dir : str or os.PathLike
        The run folder (created if needed).  Re-running skips finished folds and resumes an
        interrupted one.
    progress : bool
        Show fastai's progress bars and per-epoch tables.
    groups : sequence, optional
        Group of every training row for ``train.use_groups`` (see
        :func:`emo_utils.data.folds.load_or_create_folds`).
    callbacks : sequence of fastai Callback
        Extra callbacks added to every fold's ``fit`` (logging, experiment tracking).

    Returns
    -------
    CVResult

    Raises
    ------
    TrainingError
        Unknown architecture or missing local weights (before any training), too few clips
        of a class for the folds, a run folder made for other data.
    CheckpointError
        A damaged checkpoint, weights or completion file, naming the fold and the file.
    ConfigError
        ``run_dir`` holds a run made with another configuration.
    CacheError
        Training clips missing from the store, or failed while ``data.skip_bad_train`` is off.
    """
    tc = config.train
    check_architectures(tc.architectures)
    if tc.pretrained and tc.weights_dir:
        for arch in tc.architectures:
            resolve_weights_file(arch, tc.weights_dir)
    competition, rows = _align_store(competition, store, config)
    classes = tuple(competition.classes)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for folder in (run_dir, run_dir / "oof"):
        remove_temp_files(folder)  # left by a killed run
    _write_run_files(run_dir, config, classes)
    folds = load_or_create_folds(run_dir, competition, config, groups=groups)
    label_index = {c: i for i, c in enumerate(classes)}
    run = _Run(
        run_dir=run_dir,
        config=config,
        store=store,
        classes=classes,
        folds=folds[["filename", "label", "fold"]],
        store_rows=rows,
        targets=np.array([label_index[label] for label in folds["label"]], dtype=np.int64),
        progress=progress,
        callbacks=list(callbacks),
    )
    fold_results: dict[str, list[FoldResult]] = {}
    oofs: dict[str, pd.DataFrame] = {}
    for arch in tc.architectures:
        results = []
        for fold in range(tc.n_folds):
            if (fold_dir(run_dir, arch, fold) / DONE_FILE).is_file():
                result = _finished_fold(run, arch, fold)
                if progress:
                    print(f"{arch} fold {fold}: already trained, skipped")
            else:
                if progress:
                    print(f"{arch} fold {fold + 1}/{tc.n_folds}")
                result = _train_fold(run, arch, fold)
            results.append(result)
        fold_results[arch] = results
        oofs[arch] = _merge_oof(run, arch, results)
        write_csv(run_dir / "oof" / f"{arch}.csv", oofs[arch])
    report = _cv_report(run, fold_results, oofs, groups=folds.get("group"))
    write_json(run_dir / "cv_report.json", report)
    write_text(run_dir / "cv_report.md", _report_markdown(report))
    return CVResult(
        run_dir=run_dir,
        classes=classes,
        folds=folds,
        oof=oofs,
        fold_results=fold_results,
        report=report,
    )


def _merge_oof(run: _Run, arch: str, results: list[FoldResult]) -> pd.DataFrame:
    merged = pd.concat([r.oof for r in results], ignore_index=True)
    counts = merged["filename"].value_counts()
    twice = counts[counts > 1].index.tolist()
    missing = sorted(set(run.folds["filename"]) - set(merged["filename"]))
    if twice or missing:
        raise TrainingError(
            f"{arch}: out-of-fold predictions cover clips twice ({twice[:5]}) or not at all "
            f"({missing[:5]}); the fold files disagree with folds.csv"
        )
    merged = merged.set_index("filename").loc[run.folds["filename"]].reset_index()
    return merged[["filename", "label", "fold", *run.classes]]


# ---------------------------------------------------------------------------- report
def _cv_report(
    run: _Run,
    fold_results: dict[str, list[FoldResult]],
    oofs: dict[str, pd.DataFrame],
    *,
    groups: pd.Series | None = None,
) -> dict[str, Any]:
    archs = {}
    for arch, results in fold_results.items():
        probs = oofs[arch][list(run.classes)].to_numpy()
        pred = probs.argmax(axis=1)
        per_fold = pd.DataFrame([r.scores for r in results])
        archs[arch] = {
            "overall": {name: float(fn(run.targets, pred)) for name, fn in METRICS.items()},
            "fold_mean": per_fold.mean().to_dict(),
            "fold_std": per_fold.std(ddof=0).to_dict(),
            "folds": [
                {
                    "fold": r.fold,
                    "n_train": r.n_train,
                    "n_valid": r.n_valid,
                    "best_epoch": r.best_epoch,
                    "best_score": r.best_score,
                    "epochs_run": r.epochs_run,
                    **r.scores,
                }
                for r in results
            ],
            "per_class": per_class_report(run.targets, pred, run.classes),
        }
    report = {
        "monitor": run.config.train.monitor,
        "metrics": list(METRICS),
        "classes": list(run.classes),
        "n_clips": len(run.folds),
        "n_folds": run.config.train.n_folds,
        "architectures": archs,
    }
    if groups is not None:
        report["groups"] = describe_groups(groups)
    return report


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def _report_markdown(report: dict[str, Any]) -> str:
    metrics = report["metrics"]
    lines = [
        "# Cross-validation report",
        "",
        f"{report['n_clips']} clips, {report['n_folds']} folds, {len(report['classes'])} classes; "
        f"best epoch chosen by `{report['monitor']}`.",
        *(
            [
                "",
                f"Folds keep near-duplicate groups together: {g['n_duplicate_groups']} groups of "
                f"duplicates, {g['n_merged']} clips merged into another clip's group "
                f"({g['n_groups']} groups in all).",
            ]
            if (g := report.get("groups"))
            else []
        ),
        "",
        "## Out-of-fold scores",
        "",
        *_table(
            ["architecture", *metrics],
            [[a, *(r["overall"][m] for m in metrics)] for a, r in report["architectures"].items()],
        ),
    ]
    for arch, r in report["architectures"].items():
        fold_rows = [
            [f["fold"], f["n_valid"], f["best_epoch"], *(f[m] for m in metrics)] for f in r["folds"]
        ]
        fold_rows.append(["mean", "", "", *(r["fold_mean"][m] for m in metrics)])
        fold_rows.append(["std", "", "", *(r["fold_std"][m] for m in metrics)])
        lines += [
            "",
            f"## {arch}",
            "",
            "### Folds",
            "",
            *_table(["fold", "n_valid", "best epoch", *metrics], fold_rows),
            "",
            "### Per class (out-of-fold)",
            "",
            *_table(
                ["class", "precision", "recall", "f1", "support"],
                [
                    [c, v["precision"], v["recall"], v["f1"], v["support"]]
                    for c, v in r["per_class"].items()
                ],
            ),
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- inference
def load_fold_model(
    run_dir: str | os.PathLike,
    arch: str,
    fold: int,
    *,
    device: str | torch.device | None = None,
) -> nn.Module:
    """The best model of one fold, in eval mode, normalisation included.

    Parameters
    ----------
    run_dir : str or os.PathLike
        A run folder written by :func:`train_cv`.
    arch : str
        Architecture name.
    fold : int
        Fold index.
    device : str or torch.device, optional
        Default: the GPU when there is one, else the CPU.

    Returns
    -------
    torch.nn.Module
        A :class:`~emo_utils.models.timm.NormalizedModel`: feed raw cached windows (float32,
        ``(B, C, H, window_frames)``), get logits ``(B, n_classes)`` in ``classes.json``
        order.

    Raises
    ------
    TrainingError
        The fold has not finished training.
    CheckpointError
        ``classes.json`` or ``model.pth`` is damaged or does not match the architecture.
    """
    run_dir = Path(run_dir)
    fdir = fold_dir(run_dir, arch, fold)
    if not (fdir / DONE_FILE).is_file():
        raise TrainingError(f"{fdir}: fold not finished (no {DONE_FILE}); train the run first")
    classes_path = run_dir / "classes.json"
    try:
        classes = read_json(classes_path)
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{classes_path}: cannot be read ({exc})") from exc
    path = fdir / MODEL_FILE
    device = default_device() if device is None else torch.device(device)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        in_chans = int(state["mean"].numel())
    except (*_LOAD_ERRORS, KeyError) as exc:
        raise CheckpointError(
            f"{arch} fold {fold}: {path} is damaged ({exc}); delete {fdir} and train the fold again"
        ) from exc
    body = build_model(arch, len(classes), pretrained=False, in_chans=in_chans)
    model = NormalizedModel(body, np.zeros(in_chans), np.ones(in_chans))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{arch} fold {fold}: {path} does not match {arch} with {len(classes)} classes ({exc})"
        ) from exc
    return model.to(device).eval()
