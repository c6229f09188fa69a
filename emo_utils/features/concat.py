"""Several stores of one input kind read as one, without copying their data.

A pseudo-label round trains on the training clips and on test or unlabelled clips, which
live in other caches (one per split).  :func:`concat_stores` joins stores of one input
kind into one store whose rows are those of the inputs, in order, so a fold's training rows
can point into any of them:

* :class:`~emo_utils.features.store.FeatureStore` (images, and the waveform store, which is
  a ``FeatureStore`` too): the frames stay where they are (memory maps); a
  :class:`ConcatFrames` view maps a row's frame range to the store it came from;
* :class:`~emo_utils.features.statistics.StatisticsStore` (clip statistics): the value
  matrices are small and are concatenated.

Examples
--------
>>> import numpy as np
>>> a = FeatureStore.from_arrays(["a.wav"], [np.zeros((1, 2, 3))], window_frames=3)
>>> b = FeatureStore.from_arrays(["b.wav"], [np.ones((1, 2, 4))], window_frames=3)
>>> both = concat_stores([a, b])
>>> both.filenames, float(both.window(1, "start").max())
(['a.wav', 'b.wav'], 1.0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import CacheError
from .statistics import StatisticsStore
from .store import FeatureStore

__all__ = ["JOINERS", "ConcatFrames", "concat_stores", "register_joiner"]


class ConcatFrames:
    """Read-only view of several ``(T_i, C, H)`` frame arrays as one ``(sum T_i, C, H)``.

    Supports what :class:`~emo_utils.features.store.FeatureStore` reads: ``shape``,
    ``dtype``, ``len`` and contiguous slices ``frames[a:b]`` that lie inside one part (a
    row's frames always do).

    Parameters
    ----------
    parts : sequence of array-like
        Frame arrays (memory maps stay memory maps); nested views are flattened.

    Raises
    ------
    CacheError
        No part, or parts whose images differ in channels or height.
    """

    def __init__(self, parts: Sequence[Any]) -> None:
        flat: list[Any] = []
        for part in parts:
            flat.extend(part.parts if isinstance(part, ConcatFrames) else [part])
        if not flat:
            raise CacheError("ConcatFrames: no frames to join")
        shapes = {tuple(p.shape[1:]) for p in flat}
        if len(shapes) > 1:
            raise CacheError(f"ConcatFrames: the stores hold images of other shapes {shapes}")
        self.parts = flat
        self.starts = np.concatenate([[0], np.cumsum([len(p) for p in flat])]).astype(np.int64)
        self.dtype = np.result_type(*(p.dtype for p in flat))
        self.shape = (int(self.starts[-1]), *shapes.pop())

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: slice) -> np.ndarray:
        """The frames ``key.start`` to ``key.stop`` of the one part that holds all of them."""
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("ConcatFrames: only contiguous slices frames[a:b] are supported")
        start, stop, _ = key.indices(len(self))
        part = int(np.searchsorted(self.starts, start, side="right")) - 1
        part = min(part, len(self.parts) - 1)
        base = int(self.starts[part])
        if stop > int(self.starts[part + 1]):
            raise IndexError(f"ConcatFrames: frames {start}:{stop} span two stores")
        return self.parts[part][start - base : stop - base]


def _concat_images(stores: Sequence[FeatureStore]) -> FeatureStore:
    windows = {s.window_frames for s in stores}
    if len(windows) > 1:
        raise CacheError(f"concat_stores: the stores have windows of {sorted(windows)} frames")
    frames = ConcatFrames([s.frames for s in stores])
    # Each store's offsets point into its own frames, which follow the earlier stores' frames
    # in the view (a nested view keeps its parts in order, so its offsets stay valid).
    shift = np.cumsum([0, *(len(s.frames) for s in stores[:-1])]).astype(np.int64)
    return dataclasses.replace(
        stores[0],
        filenames=[f for s in stores for f in s.filenames],
        frames=frames,
        offsets=np.concatenate([s.offsets + k for s, k in zip(stores, shift, strict=True)]),
        lengths=np.concatenate([s.lengths for s in stores]).astype(np.int64),
        reasons=[r for s in stores for r in s.reasons],
        notes=[n for s in stores for n in s.notes],
        directory=None,
        stats={},
    )


def _concat_statistics(stores: Sequence[StatisticsStore]) -> StatisticsStore:
    if any(list(s.names) != list(stores[0].names) for s in stores):
        raise CacheError("concat_stores: the statistics stores hold other columns")
    return dataclasses.replace(
        stores[0],
        filenames=[f for s in stores for f in s.filenames],
        values=np.concatenate([s.values for s in stores]),
        reasons=[r for s in stores for r in s.reasons],
        notes=[n for s in stores for n in s.notes],
        directory=None,
        stats={},
    )


#: Store class -> how stores of that class are joined (:func:`register_joiner` adds one, e.g.
#: the embeddings store of :mod:`emo_utils.models.embeddings`, a later layer).
JOINERS: dict[type, Callable[[Sequence[Any]], Any]] = {
    FeatureStore: _concat_images,
    StatisticsStore: _concat_statistics,
}


def register_joiner(cls: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: ``joiner(stores) -> store`` joins the stores of class ``cls``."""

    def add(joiner: Callable[..., Any]) -> Callable[..., Any]:
        JOINERS[cls] = joiner
        return joiner

    return add


def concat_stores(stores: Sequence[Any]) -> Any:
    """One store whose rows are the rows of ``stores``, in order.

    Parameters
    ----------
    stores : sequence of FeatureStore or StatisticsStore
        One or more stores of one class (one input kind).  Feature stores need the same
        window and image shape.

    Returns
    -------
    FeatureStore or StatisticsStore
        Of the inputs' class, with ``directory=None`` and empty ``stats``; a feature store
        reads the inputs' frames through a :class:`ConcatFrames` view (no copy).

    Raises
    ------
    CacheError
        No store, stores of several classes or of a class without a joiner, or stores that
        do not fit together (window, image shape, statistics columns).
    """
    stores = list(stores)
    if not stores:
        raise CacheError("concat_stores: no store given")
    kinds = {type(s) for s in stores}
    joiner = JOINERS.get(kinds.pop()) if len(kinds) == 1 else None
    if joiner is None:
        raise CacheError(
            f"concat_stores: cannot join stores of {sorted(type(s).__name__ for s in stores)}"
        )
    return joiner(stores)
