"""Multi-process training (several GPUs, or CPU processes): rank-0 writes, fastai's DDP.

Under ``accelerate launch -m emo_utils train ...``, ``torchrun`` or accelerate's
``notebook_launcher`` every process runs the same training; the launcher's environment
(``WORLD_SIZE > 1``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) says so.
Here:

- :func:`is_distributed`, :func:`rank`, :func:`is_main` read that environment (fastai's
  ``num_distrib`` / ``rank_distrib``); the process group is joined lazily, through
  accelerate's ``PartialState`` (``nccl`` on GPUs, ``gloo`` on CPU), by the first
  :func:`barrier`, :func:`main_first` or :func:`training_device`.
- :func:`main_first` runs a block on rank 0 first (which writes the files), then on the
  other ranks (which find them written); :func:`barrier` waits for every rank.
- :func:`distributed_fit` is fastai's ``Learner.distrib_ctx``: it adds fastai's
  ``DistributedTrainer`` (accelerate wraps the model in ``DistributedDataParallel``, every
  loader becomes a ``DistributedDL`` that gives each rank its share of each epoch and
  gathers the validation outputs, so the metrics are the same on every rank) for the fit,
  and removes it afterwards.
- :func:`map_shards` computes row-wise predictions in contiguous pieces, one per rank,
  gathered in row order (the out-of-fold predictions).

The one shim: fastai 2.8's ``DistributedDL`` broadcasts rank 0's sample order with a CUDA
tensor (``LongTensor(t).cuda()``, since ``nccl`` only takes CUDA tensors), which fails under
``gloo`` on CPU.  :class:`DistributedFitTrainer` (a ``DistributedTrainer`` subclass) wraps
the loaders in :class:`ProcessGroupDL`, a ``DistributedDL`` whose ``_broadcast`` puts the
tensor on the process group's device (CUDA for ``nccl``, else the CPU): the same on GPUs,
and it works on CPU.  ``sync_bn`` (``SyncBatchNorm``) is used on GPUs only: torch's
``SyncBatchNorm`` refuses CPU tensors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from fastai.distributed import DistributedDL, DistributedTrainer
from fastai.learner import Learner
from fastai.torch_core import num_distrib, rank_distrib

from ..models import select_device

__all__ = [
    "BARRIER_TIMEOUT",
    "DistributedFitTrainer",
    "ProcessGroupDL",
    "barrier",
    "describe",
    "distributed_fit",
    "is_distributed",
    "is_main",
    "main_first",
    "map_shards",
    "rank",
    "training_device",
    "world_size",
]


def world_size() -> int:
    """Number of training processes (``WORLD_SIZE``; 1 outside a distributed launch)."""
    return max(1, num_distrib())


def rank() -> int:
    """The rank of this process (``RANK``; 0 outside a distributed launch)."""
    return rank_distrib()


def is_distributed() -> bool:
    """Whether this process is one of several launched together (``WORLD_SIZE > 1``)."""
    return world_size() > 1


def is_main() -> bool:
    """Whether this process writes the run folder (rank 0, or the only process)."""
    return rank() == 0


#: How long a rank waits at a barrier or collective before the launch fails: the other
#: ranks wait while rank 0 alone builds the feature cache (hours for a large data set; build
#: it first with ``python -m emo_utils preprocess`` to keep the wait short).  torch's default
#: (10 to 30 minutes) would end such a launch.
BARRIER_TIMEOUT = timedelta(hours=6)


def _state() -> Any:
    """The process group, through accelerate's ``PartialState`` (joined the first time).

    ``cpu=True`` where there is no GPU (``gloo``), else one GPU per process (``nccl``,
    ``cuda:LOCAL_RANK``); collectives time out after :data:`BARRIER_TIMEOUT`.
    """
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available(), timeout=BARRIER_TIMEOUT)


def training_device() -> torch.device:
    """The device this process trains on: its own GPU (or the CPU) when distributed.

    accelerate numbers the CPU of each process (``cpu:RANK``), which ``torch.load``'s
    ``map_location`` refuses; every CPU process gets plain ``cpu``.
    """
    if not is_distributed():
        return select_device()
    device = _state().device
    return torch.device("cpu") if device.type == "cpu" else device


def describe() -> str:
    """``"2 processes (gloo, cpu)"``: the launch, for the run's first line."""
    device = training_device()
    return f"{world_size()} processes ({dist.get_backend()}, {device.type})"


def barrier() -> None:
    """Wait until every process gets here (nothing outside a distributed launch)."""
    if is_distributed():
        _state().wait_for_everyone()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Run the block on rank 0 first, then on the other ranks.

    Rank 0 writes what the block writes (feature caches, ``config.json``, ``folds.csv``);
    the other ranks wait, then run the block and read what rank 0 wrote.  An exception on
    rank 0 ends its process; the launcher then stops the others.
    """
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def map_shards(fn: Callable[[np.ndarray], np.ndarray], rows: np.ndarray | list[int]) -> np.ndarray:
    """``fn(rows)``, computed in contiguous pieces, one per process, gathered in row order.

    Parameters
    ----------
    fn : callable
        Maps rows, shape ``(n,)``, to one output row each, shape ``(n, ...)``.
    rows : array-like of int, shape (n,)
        The rows (store rows of the validation clips).

    Returns
    -------
    numpy.ndarray, shape (n, ...)
        The same as ``fn(rows)`` in one process (``np.array_split`` pieces, rank order).
    """
    rows = np.asarray(rows)
    if not is_distributed():
        return fn(rows)
    piece = np.array_split(rows, world_size())[rank()]
    out = fn(piece) if len(piece) else None
    _state()  # the process group exists
    parts: list[Any] = [None] * world_size()
    dist.all_gather_object(parts, out)
    return np.concatenate([p for p in parts if p is not None])


class ProcessGroupDL(DistributedDL):
    """fastai's ``DistributedDL``, broadcasting on the process group's device.

    fastai sends rank 0's indices to the other ranks as a CUDA tensor (for ``nccl``); under
    ``gloo`` (CPU processes) the tensor stays on the CPU.
    """

    def _broadcast(self, t: list[int], rank: int) -> list[int]:
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        tensor = torch.tensor(t, dtype=torch.long, device=device)
        dist.broadcast(tensor, rank)
        return tensor.cpu().tolist()


class DistributedFitTrainer(DistributedTrainer):
    """fastai's ``DistributedTrainer`` whose loaders are :class:`ProcessGroupDL`."""

    def _wrap_dl(self, dl: Any) -> Any:
        if isinstance(dl, DistributedDL):
            return dl
        return ProcessGroupDL(dl, device=self.learn.model.device)


@contextlib.contextmanager
def distributed_fit(learn: Learner) -> Iterator[Learner]:
    """As fastai's ``learn.distrib_ctx()``: a fit of several processes (else nothing).

    Adds a :class:`DistributedFitTrainer` (``cpu=True`` on CPU, ``sync_bn`` on GPUs only)
    for the block; its ``after_fit`` gives the learner back its plain model and loaders.
    """
    if not is_distributed():
        yield learn
        return
    _state()
    cpu = learn.dls.device.type == "cpu"
    trainer = DistributedFitTrainer(sync_bn=not cpu, cpu=cpu)
    learn.add_cb(trainer)
    try:
        yield learn
    finally:
        learn.remove_cb(trainer)
