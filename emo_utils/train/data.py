"""Training data: windows read straight from the feature store, as fastai ``DataLoaders``.

:class:`WindowDataset` reads ``(image, target)`` pairs from a
:class:`~emo_utils.features.FeatureStore` (no image files); fastai ``DataLoaders`` move
the batches to the GPU (when there is one), where :mod:`emo_utils.train.augment` applies
the batch augmentations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from fastai.data.core import DataLoaders
from fastai.torch_core import TensorCategory, TensorImage

from ..config import Config
from ..errors import TrainingError
from ..features.store import FeatureStore
from ..models import select_device
from .augment import batch_augmentations

__all__ = ["WindowDataset", "make_dataloaders"]


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
    """The fastai ``DataLoaders`` over cached windows, with the configured batch augmentation.

    The training loader shuffles and drops the last incomplete batch (its batch size is at
    most the number of training items); the validation loader keeps the row order.  The
    augmentations of :mod:`emo_utils.train.augment` run on the training batches only, on
    ``device`` (default: the GPU when there is one).
    """
    tc = config.train
    device = select_device(device)
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
