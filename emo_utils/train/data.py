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
from fastai.callback.data import WeightedDL
from fastai.data.core import DataLoaders, TfmdDL
from fastai.data.transforms import Transform
from fastai.torch_core import TensorCategory, TensorImage, TensorMultiCategory

from ..config import Config
from ..errors import TrainingError
from ..features.store import FeatureStore
from ..models import select_device
from .augment import batch_augmentations

__all__ = ["SeededWeightedDL", "WindowDataset", "balanced_weights", "make_dataloaders"]


class WindowDataset(torch.utils.data.Dataset):
    """``(image, target)`` pairs read from a :class:`FeatureStore`.

    Parameters
    ----------
    store : FeatureStore
        The cached images.
    rows : sequence of int
        Store rows of the items.
    targets : array-like
        Class index of every item (int, shape ``(n,)``), or the multi-hot targets of
        multi-label tasks (float, shape ``(n, n_classes)``).
    policy : {"start", "center", "random"}
        Window crop policy (:meth:`FeatureStore.window`); ``"random"`` draws the window
        from the torch random generator, so it follows ``set_seed`` and worker seeding.
    split_idx : {0, 1}
        0 for training data, 1 for validation data: fastai applies the training-only batch
        transforms (augmentation) to loaders whose dataset has ``split_idx == 0``.

    Items are ``(TensorImage of shape (C, H, window_frames), TensorCategory)``, or
    ``TensorMultiCategory`` (float) targets for multi-label tasks.
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
        targets = np.asarray(targets)
        self.multi = targets.ndim == 2
        self.targets = targets.astype(np.float32 if self.multi else np.int64)
        self.policy = policy
        self.split_idx = split_idx

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[TensorImage, TensorCategory | TensorMultiCategory]:
        rng = None
        if self.policy == "random":
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
        image = self.store.window(int(self.rows[i]), self.policy, rng)
        if self.multi:
            target = TensorMultiCategory(torch.from_numpy(self.targets[i].copy()))
        else:
            target = TensorCategory(int(self.targets[i]))
        return TensorImage(torch.from_numpy(image)), target


class SeededWeightedDL(WeightedDL):
    """fastai's ``WeightedDL`` drawing from the loader's own generator (``self.rng``).

    ``WeightedDL`` draws from NumPy's global generator; this one uses the loader's
    ``random.Random``, which the epoch checkpoints save, so a resumed fold draws the same
    clips as an uninterrupted one.
    """

    def get_idxs(self) -> list[int]:
        """``n`` indices drawn with replacement, with probability ``wgts``."""
        if self.n == 0 or not self.shuffle:
            return super().get_idxs()
        return self.rng.choices(range(self.n), weights=self.wgts.tolist(), k=self.n)


def balanced_weights(targets: np.ndarray) -> np.ndarray:
    """Sampling weight of every clip: the inverse frequency of its rarest label.

    Parameters
    ----------
    targets : numpy.ndarray, shape (n, n_classes)
        Multi-hot targets of the training clips; a soft target (a pseudo-labelled clip)
        counts as the label when it is at least 0.5.

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
        ``max over the clip's labels of 1 / count(label)`` (clips without a label get the
        weight of the most common label), normalised to sum to 1.  Every label is then drawn
        about equally often.

    Examples
    --------
    >>> balanced_weights(np.array([[1, 0], [1, 0], [1, 0], [0, 1]])).round(3).tolist()
    [0.167, 0.167, 0.167, 0.5]
    """
    y = np.asarray(targets, dtype=np.float64) >= 0.5
    counts = y.sum(axis=0)
    inverse = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    w = (y * inverse).max(axis=1)
    w[w == 0] = inverse[inverse > 0].min() if (inverse > 0).any() else 1.0
    return w / w.sum()


def make_dataloaders(
    store: FeatureStore,
    *,
    train_rows: Sequence[int],
    train_targets: Sequence[int],
    valid_rows: Sequence[int],
    valid_targets: Sequence[int],
    config: Config,
    device: torch.device | None = None,
    input_kind: str = "image",
    batch_transforms: Sequence[Transform] = (),
) -> DataLoaders:
    """The fastai ``DataLoaders`` over cached windows, with the configured batch augmentation.

    The training loader shuffles and drops the last incomplete batch (its batch size is at
    most the number of training items); with ``train.balanced_sampling`` (multi-label
    targets) it draws clips by :func:`balanced_weights` instead.  The validation loader
    keeps the row order.  The
    augmentations of :mod:`emo_utils.train.augment` run on the training batches only, on
    ``device`` (default: the GPU when there is one); ``input_kind`` (the family's
    ``ModelFamily.input``) picks the ones that apply (:data:`~.augment.AUGMENTATIONS`).
    """
    tc = config.train
    device = select_device(device)
    train_ds = WindowDataset(store, train_rows, train_targets, config.audio.train_crop, split_idx=0)
    valid_ds = WindowDataset(store, valid_rows, valid_targets, config.audio.crop, split_idx=1)
    bs = max(1, min(tc.batch_size, len(train_ds)))
    common = {
        "bs": bs,
        "device": device,
        "num_workers": tc.num_workers,
        "pin_memory": device.type == "cuda",
    }
    train_kwargs = {
        "shuffle": True,
        "drop_last": True,
        "after_batch": [*batch_transforms, *batch_augmentations(tc, input_kind)],
    }
    if tc.balanced_sampling and train_ds.multi:
        wgts = balanced_weights(train_ds.targets)
        train_dl = SeededWeightedDL(train_ds, wgts=wgts, **train_kwargs, **common)
    else:
        train_dl = TfmdDL(train_ds, **train_kwargs, **common)
    valid_dl = TfmdDL(
        valid_ds,
        shuffle=False,
        drop_last=False,
        after_batch=[*batch_transforms, *batch_augmentations(tc, input_kind)],
        **common,
    )
    dls = DataLoaders(train_dl, valid_dl, device=device)
    for dl in dls.loaders:
        # fastai infers the batch types from one sample batch, lazily at the first batch;
        # do it now so it never draws random numbers in the middle of a (resumed) fit.
        _ = dl.n_inp
    return dls
