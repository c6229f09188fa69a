"""Cross-validated training of embedding networks for the verification task, resumable.

:func:`train_verification` trains every architecture of ``train.architectures`` on every
fold of ``RUN/folds.csv`` (identity-disjoint, :func:`emo_utils.data.verification.make_identity_folds`)
and writes, per fold, into ``RUN/models/ARCH/fold{k}/``:

``model.pth``
    the weights of the best epoch by validation EER (``train.monitor``, lower is better);
``checkpoint.pth``, ``log.csv``
    as every fastai fold (:mod:`emo_utils.train.callbacks`): an interrupted fold resumes at
    its next epoch with model, optimiser, random states and best score restored;
``oof_trials.csv``
    ``file_a, file_b, same, score``: every same-identity pair of the fold's validation
    clips and ``verification.oof_ratio`` times as many different-identity pairs (seeded by
    ``train.seed + fold``, so every architecture scores the same trials), scored by the
    cosine similarity of the best epoch's embeddings;
``oof_embeddings.npy``
    ``(n_valid_clips, embedding_dim)`` float32, the validation clips' embeddings;
``done.json``
    written last: EER and minDCF of the fold, best epoch, the embedding head
    (``pooling``, ``input_norm``: what inference rebuilds), the input normalisation and the
    score statistics of the OOF trials (``score_mean``, ``score_std``: the z-normalisation of
    the ensembles).

Training is fastai's ``fit_one_cycle`` (AdamW) with the task's loss
(:data:`emo_utils.tasks.verification.EMBEDDING_LOSSES`) on ``P x K`` batches:
:class:`PKDataLoader` draws them with ``pytorch-metric-learning``'s ``MPerClassSampler``,
``P = batch_size / K`` identities with ``K = verification.clips_per_identity`` clips each,
so every anchor of a batch has a positive.  Validation metrics are the EER and minDCF of
the validation fold's trials; mixup is never used (a mixed clip has no identity).

Per architecture, ``RUN/oof/ARCH_trials.csv`` holds every fold's trials (``fold`` column),
and ``RUN/cv_report.json`` / ``.md`` the EER and minDCF per fold and overall (the overall
one on the trials of every fold, each fold's scores z-normalised by its own statistics).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from fastai.callback.progress import ProgressCallback
from fastai.callback.schedule import fit_one_cycle  # noqa: F401  (patches Learner.fit_one_cycle)
from fastai.data.core import DataLoaders, TfmdDL
from fastai.learner import Learner
from fastai.optimizer import OptimWrapper
from fastai.torch_core import set_seed
from fastcore.basics import noop

from .._console import interactive
from ..config import Config
from ..data.folds import load_or_create_folds
from ..data.verification import VerificationData
from ..errors import ConfigError, TrainingError
from ..features.build import build_cache
from ..features.store import FeatureStore, require_valid_training
from ..fileio import atomic_path, read_json, remove_temp_files, write_csv, write_json, write_text
from ..infer.predict import predict_rows, view_settings
from ..models import input_normalization, select_device
from ..models._registry import build_model
from ..models.embedding_net import EmbeddingNet, check_embedding_architectures, embedding_head
from ..models.normalize import NormalizedModel, image_statistics
from ..runs import RunDir, arch_file_name
from ..tables import markdown_table
from ..tasks import get_task
from ..verification.metrics import equal_error_rate, min_dcf
from ..verification.scoring import cosine_scores, sample_trials
from .augment import batch_augmentations
from .callbacks import (
    EpochLineLogger,
    LazyProgressCallback,
)
from .checkpoints import read_checkpoint
from .data import WindowDataset
from .distributed import is_distributed
from .fit import fit_fold

__all__ = [
    "OOF_EMBEDDINGS_FILE",
    "OOF_TRIALS_FILE",
    "PKDataLoader",
    "VerificationCV",
    "pk_batch_size",
    "train_verification",
    "z_normalize",
]

#: Per-fold files of a verification run (beside :class:`~emo_utils.runs.RunDir`'s).
OOF_TRIALS_FILE = "oof_trials.csv"
OOF_EMBEDDINGS_FILE = "oof_embeddings.npy"


def pk_batch_size(batch_size: int, *, k: int, n_identities: int, n_items: int | None = None) -> int:
    """The ``P x K`` batch size of ``train.batch_size``.

    Rounded down to a multiple of ``k``, to at most ``k`` clips of every identity and to at
    most ``n_items`` (the training clips, when given); it must hold at least two identities.

    Raises
    ------
    ConfigError
        Fewer than two training identities, or ``batch_size < 2 k``.
    """
    size = min(int(batch_size), k * n_identities, n_items or k * n_identities) // k * k
    if size < 2 * k:
        raise ConfigError(
            "train.batch_size",
            batch_size,
            f"a P x K batch needs at least 2 identities of verification.clips_per_identity = {k} "
            f"clips (batch size >= {2 * k}) and {n_identities} training identities give "
            f"{size}",
        )
    return size


class PKDataLoader(TfmdDL):
    """A fastai loader whose shuffled epochs are ``P x K`` batches (``MPerClassSampler``).

    Parameters
    ----------
    dataset : WindowDataset
        The training items.
    identities : sequence of int
        Identity of every item.
    k : int
        Clips per identity in every batch; ``bs`` must be a multiple of it.
    **kwargs
        As :class:`fastai.data.core.TfmdDL` (``bs``, ``shuffle``, ``drop_last``, ...).

    Notes
    -----
    The sampler draws with ``pytorch-metric-learning``'s module-level NumPy generator; this
    loader seeds a private one from its own ``random.Random`` (``self.rng``, which epoch
    checkpoints save) for every epoch, so a resumed fold draws the same batches.  An
    identity with fewer than ``k`` clips is drawn with replacement.
    """

    def __init__(self, dataset: Any, *, identities: Sequence[int], k: int, **kwargs: Any) -> None:
        super().__init__(dataset, **kwargs)
        self.identities = np.asarray(identities, dtype=np.int64)
        self.k = int(k)

    def get_idxs(self) -> list[int]:
        """One epoch of item indices, ``bs // k`` identities of ``k`` items per batch."""
        if self.n == 0 or not self.shuffle:
            return super().get_idxs()
        from pytorch_metric_learning.samplers import MPerClassSampler
        from pytorch_metric_learning.utils import common_functions as c_f

        sampler = MPerClassSampler(
            self.identities, m=self.k, batch_size=self.bs, length_before_new_iter=self.n
        )
        saved = c_f.NUMPY_RANDOM
        c_f.NUMPY_RANDOM = np.random.RandomState(self.rng.randrange(2**32))
        try:
            return [int(i) for i in sampler]
        finally:
            c_f.NUMPY_RANDOM = saved


def z_normalize(scores: np.ndarray, mean: float, std: float) -> np.ndarray:
    """``(scores - mean) / std``, the scale every ensemble member is put on."""
    return (np.asarray(scores, dtype=np.float64) - mean) / max(float(std), 1e-8)


@dataclass
class FoldScore:
    """The scores of one trained fold (from its ``done.json``)."""

    arch: str
    fold: int
    eer: float
    min_dcf: float
    best_epoch: int | None
    n_trials: int
    skipped: bool = False


@dataclass
class VerificationCV:
    """What :func:`train_verification` did: per fold and per architecture."""

    run_dir: Path
    folds: list[FoldScore] = field(default_factory=list)
    overall: dict[str, dict[str, float]] = field(default_factory=dict)

    def eer(self, arch: str) -> float:
        """The overall OOF EER of ``arch`` (every fold's trials, z-normalised per fold)."""
        return self.overall[arch]["eer"]


@dataclass
class _Context:
    data: VerificationData
    config: Config
    run: RunDir
    store: FeatureStore
    folds: pd.DataFrame
    good: np.ndarray
    progress: bool
    callbacks: Sequence[Any]


def _fold_rows(ctx: _Context, fold: int) -> tuple[np.ndarray, np.ndarray]:
    folds = ctx.folds["fold"].to_numpy()
    usable = np.zeros(len(folds), dtype=bool)
    usable[ctx.good] = True
    return np.flatnonzero(usable & (folds != fold)), np.flatnonzero(usable & (folds == fold))


def _learner(
    ctx: _Context, dls: DataLoaders, model: EmbeddingNet, loss: Any, fdir: Path
) -> Learner:
    tc, vc = ctx.config.train, ctx.config.verification
    task = get_task("verification")
    learn = Learner(
        dls,
        model,
        loss_func=loss,
        opt_func=partial(OptimWrapper, opt=torch.optim.AdamW),
        lr=tc.lr,
        wd=tc.weight_decay,
        metrics=task.fastai_metrics(
            ratio=vc.oof_ratio, seed=tc.seed, p_target=vc.p_target, c_miss=vc.c_miss, c_fa=vc.c_fa
        ),
        path=fdir,
        model_dir=".",
    )
    if tc.mixed_precision and dls.device.type == "cuda":
        from fastai.callback.fp16 import AMPMode, MixedPrecision

        mode = AMPMode.BF16 if torch.cuda.is_bf16_supported() else AMPMode.FP16
        learn.add_cb(MixedPrecision(amp_mode=mode))
    learn.remove_cb(ProgressCallback)
    if ctx.progress:
        learn.add_cb(LazyProgressCallback() if interactive() else EpochLineLogger())
    else:
        learn.logger = noop
    return learn


def _train_fold(ctx: _Context, arch: str, fold: int) -> FoldScore:
    """Train (or resume) one fold and write its files; ``done.json`` last."""
    start_time = time.perf_counter()
    tc, vc = ctx.config.train, ctx.config.verification
    task = get_task("verification")
    fdir = ctx.run.fold_dir(arch, fold)
    done_path = fdir / RunDir.DONE_FILE
    if done_path.is_file():
        done = read_json(done_path)
        if ctx.progress:
            print(f"{arch} fold {fold}: already trained, skipped (EER {done['eer']:.4f})")
        return FoldScore(
            arch, fold, done["eer"], done["min_dcf"], done["best_epoch"], done["n_trials"], True
        )
    fdir.mkdir(parents=True, exist_ok=True)
    remove_temp_files(fdir)
    ckpt_path, model_path = fdir / RunDir.CHECKPOINT_FILE, fdir / RunDir.MODEL_FILE
    state = (
        read_checkpoint(ckpt_path, arch=arch, fold=fold, epochs=tc.epochs)
        if ckpt_path.is_file()
        else None
    )
    train_rows, valid_rows = _fold_rows(ctx, fold)
    labels = ctx.folds["label"].to_numpy().astype(str)
    _, train_codes = np.unique(labels[train_rows], return_inverse=True)
    _, valid_codes = np.unique(labels[valid_rows], return_inverse=True)
    n_ids = int(train_codes.max()) + 1
    k = vc.clips_per_identity
    bs = pk_batch_size(tc.batch_size, k=k, n_identities=n_ids, n_items=len(train_rows))
    device = select_device()
    set_seed(tc.seed, reproducible=device.type == "cpu")

    body = build_model(
        arch,
        vc.embedding_dim,
        pretrained=tc.pretrained and state is None,
        weights_dir=tc.weights_dir,
        in_chans=ctx.store.image_shape[0],
    )
    normalization = input_normalization(arch, tc.image_normalization)
    mean, std = image_statistics(normalization, store=ctx.store, rows=train_rows, model=body)
    loss = task.make_loss(
        config=tc,
        targets=train_codes,
        n_classes=n_ids,
        device=device,
        embedding_dim=vc.embedding_dim,
        options=vc,
    )
    head = embedding_head(
        body,
        embedding_dim=vc.embedding_dim,
        in_chans=ctx.store.image_shape[0],
        pooling=vc.pooling,
        input_norm=vc.input_norm,
    )
    model = EmbeddingNet(NormalizedModel(head, mean, std), loss_head=loss.head)
    common = {"device": device, "num_workers": tc.num_workers, "pin_memory": device.type == "cuda"}
    train_ds = WindowDataset(
        ctx.store, train_rows, train_codes, ctx.config.audio.train_crop, split_idx=0
    )
    valid_ds = WindowDataset(ctx.store, valid_rows, valid_codes, ctx.config.audio.crop, split_idx=1)
    augment = batch_augmentations(tc, "image")  # mixup is a callback, never added here
    train_dl = PKDataLoader(
        train_ds,
        identities=train_codes,
        k=k,
        bs=bs,
        shuffle=True,
        drop_last=True,
        after_batch=augment,
        **common,
    )
    valid_dl = TfmdDL(
        valid_ds,
        bs=max(1, tc.batch_size),
        shuffle=False,
        drop_last=False,
        after_batch=augment,
        **common,
    )
    dls = DataLoaders(train_dl, valid_dl, device=device)
    for dl in dls.loaders:
        _ = dl.n_inp
    learn = _learner(ctx, dls, model, loss, fdir)

    fit = fit_fold(
        learn,
        state=state,
        train_config=tc,
        lr_max=tc.lr,
        ckpt_path=ckpt_path,
        model_path=model_path,
        log_path=fdir / RunDir.LOG_FILE,
        arch=arch,
        fold=fold,
        progress=ctx.progress,
        callbacks=ctx.callbacks,
        lower_is_better=True,  # EER and minDCF
    )

    embeddings = predict_rows(
        learn.model,
        ctx.store,
        valid_rows,
        task=task,
        **view_settings(ctx.config),
        batch_size=tc.batch_size,
        device=dls.device,
        mixed_precision=tc.mixed_precision,
    )
    if not np.isfinite(embeddings).all():
        raise TrainingError(f"{arch} fold {fold}: non-finite OOF embeddings; the fold is not done")
    a, b, same = sample_trials(labels[valid_rows], ratio=vc.oof_ratio, seed=tc.seed + fold)
    scores = cosine_scores(embeddings, a, b)
    names = ctx.folds["filename"].to_numpy()
    trials = pd.DataFrame(
        {
            "file_a": names[valid_rows][a],
            "file_b": names[valid_rows][b],
            "same": same,
            "score": scores,
        }
    )
    write_csv(fdir / OOF_TRIALS_FILE, trials)
    with atomic_path(fdir / OOF_EMBEDDINGS_FILE) as tmp, open(tmp, "wb") as fh:
        np.save(fh, embeddings.astype(np.float32))
    eer = equal_error_rate(same, scores)
    dcf = min_dcf(same, scores, p_target=vc.p_target, c_miss=vc.c_miss, c_fa=vc.c_fa)
    write_json(
        done_path,
        {
            "arch": arch,
            "fold": fold,
            "eer": eer,
            "min_dcf": dcf,
            "best_epoch": fit.best_epoch,
            "n_trials": len(trials),
            "n_train_identities": n_ids,
            "n_valid_clips": len(valid_rows),
            "embedding_dim": vc.embedding_dim,
            "pooling": vc.pooling,
            "input_norm": vc.input_norm,
            "loss": tc.loss,
            "batch": {"p": bs // k, "k": k},
            "score_mean": float(scores.mean()),
            "score_std": float(scores.std()),
            "normalization": {"name": normalization, "mean": mean, "std": std},
            "in_chans": int(ctx.store.image_shape[0]),
            "seconds": round(time.perf_counter() - start_time, 1),
        },
    )
    if ctx.progress:
        print(f"{arch} fold {fold}: OOF EER {eer:.4f}, minDCF {dcf:.4f} on {len(trials)} trials")
    return FoldScore(arch, fold, eer, dcf, fit.best_epoch, len(trials))


def read_oof_trials(run: RunDir, arch: str, n_folds: int) -> pd.DataFrame:
    """Every fold's OOF trials of ``arch`` with ``fold`` and ``zscore`` (per-fold z-scores)."""
    parts = []
    for fold in range(n_folds):
        fdir = run.fold_dir(arch, fold)
        done = read_json(fdir / RunDir.DONE_FILE)
        trials = pd.read_csv(fdir / OOF_TRIALS_FILE, dtype={"file_a": str, "file_b": str})
        trials.insert(0, "fold", fold)
        trials["zscore"] = z_normalize(trials["score"], done["score_mean"], done["score_std"])
        parts.append(trials)
    return pd.concat(parts, ignore_index=True)


def _report(run: RunDir, config: Config, scores: list[FoldScore], overall: dict) -> None:
    vc = config.verification
    rows = [
        [
            arch,
            *(f"{s.eer:.4f}" for s in scores if s.arch == arch),
            f"{overall[arch]['eer']:.4f}",
            f"{overall[arch]['min_dcf']:.4f}",
        ]
        for arch in overall
    ]
    header = [
        "model",
        *(f"fold {k} EER" for k in range(config.train.n_folds)),
        "OOF EER",
        "OOF minDCF",
    ]
    text = (
        "# Verification CV report\n\n"
        f"OOF trials: every same-identity pair of each validation fold and {vc.oof_ratio:g}x as "
        "many different-identity pairs; overall scores on every fold's trials, z-normalised per "
        f"fold. minDCF with p_target = {vc.p_target:g}, c_miss = {vc.c_miss:g}, "
        f"c_fa = {vc.c_fa:g}. Lower is better; chance is EER 0.5.\n\n"
        + "\n".join(markdown_table(header, rows))
        + "\n"
    )
    write_text(run.cv_report_file(".md"), text)
    write_json(
        run.cv_report_file(".json"),
        {
            "task": "verification",
            "folds": [s.__dict__ for s in scores],
            "overall": overall,
        },
    )


def train_verification(
    data: VerificationData,
    config: Config,
    run_dir: str | Path,
    *,
    cache_dir: str | Path | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> VerificationCV:
    """Train (or resume) every fold of every architecture; see the module docstring.

    Parameters
    ----------
    data : VerificationData
        From :func:`emo_utils.data.verification.load_verification`.
    config : Config
        ``data.task`` must be ``"verification"``.
    run_dir : str or pathlib.Path
        The run folder (created; a folder holding another config is refused).
    cache_dir : str or pathlib.Path, optional
        Feature cache folder (default: beside the data).
    n_jobs : int
        Processes of the feature build.
    progress : bool
        Per-epoch lines and fold summaries.
    callbacks : sequence
        Extra fastai callbacks of every fit (tests use one to interrupt a fold).

    Returns
    -------
    VerificationCV
    """
    if config.data.task != "verification":
        raise ConfigError("data.task", config.data.task, "train_verification needs 'verification'")
    if is_distributed():
        raise TrainingError(
            "verification training runs in one process (its P x K sampler has no multi-process "
            "version); start it without accelerate launch / torchrun"
        )
    tc = config.train
    check_embedding_architectures(tc.architectures)
    comp = data.competition
    task = get_task("verification")
    task.check_counts(comp.train["label"].tolist(), n_folds=tc.n_folds)
    run = RunDir(run_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    with run.lock():
        run.check_config(config)
        config.save(run.config_file)
        write_json(run.classes_file, list(comp.classes))
        store = build_cache(
            comp, "train", config=config, cache_dir=cache_dir, n_jobs=n_jobs, progress=progress
        )
        good = require_valid_training(store, skip_bad=config.data.skip_bad_train)
        folds = load_or_create_folds(comp, path=run.folds_file, config=config, splitter=task.split)
        ctx = _Context(data, config, run, store, folds, good, progress, callbacks)
        scores = [
            _train_fold(ctx, arch, fold) for arch in tc.architectures for fold in range(tc.n_folds)
        ]
        overall = {}
        run.oof_dir.mkdir(parents=True, exist_ok=True)
        for arch in tc.architectures:
            trials = read_oof_trials(run, arch, tc.n_folds)
            write_csv(run.oof_dir / f"{arch_file_name(arch)}_trials.csv", trials)
            vc = config.verification
            overall[arch] = {
                "eer": equal_error_rate(trials["same"], trials["zscore"]),
                "min_dcf": min_dcf(
                    trials["same"],
                    trials["zscore"],
                    p_target=vc.p_target,
                    c_miss=vc.c_miss,
                    c_fa=vc.c_fa,
                ),
                "mean_fold_eer": float(np.mean([s.eer for s in scores if s.arch == arch])),
            }
        _report(run, config, scores, overall)
    return VerificationCV(run.path, scores, overall)
