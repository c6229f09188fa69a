"""On-disk feature cache: one image per clip, computed once, read by training and prediction.

Public API (used by :mod:`emo_utils.training` and :mod:`emo_utils.prediction`):

* :class:`FeatureStore` -- the images of one split, in the row order of its CSV, with a
  per-row status.  Every clip's image has shape ``(C, H, T_i)`` with ``T_i >= window``
  frames (``window`` frames = one ``audio.duration`` window); :meth:`FeatureStore.window`
  crops one window by a policy and :meth:`FeatureStore.windows` returns every window for
  test-time averaging.
* ``build_cache(...)`` -- compute (in parallel, resumably) or reuse the store of a split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import CacheError

__all__ = ["FeatureStore"]


@dataclass
class FeatureStore:
    """Images of one split.

    Attributes
    ----------
    filenames : list of str
        File name of every row, in CSV order (duplicates allowed for the test split).
    frames : numpy.ndarray, shape (total_frames, C, H)
        All images concatenated along time (possibly a read-only memory map, float16).
    offsets : numpy.ndarray of int64, shape (n_rows,)
        First frame of each row in ``frames``.
    lengths : numpy.ndarray of int64, shape (n_rows,)
        Frames of each row (``>= window``; 0 for failed rows).
    window_frames : int
        Frames per ``audio.duration`` window.
    reasons : list of str
        Empty string for good rows, else why the clip failed.
    """

    filenames: list[str]
    frames: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    window_frames: int
    reasons: list[str]

    @classmethod
    def from_arrays(
        cls,
        filenames: Sequence[str],
        images: Sequence[np.ndarray | None],
        *,
        window_frames: int,
        reasons: Sequence[str] | None = None,
    ) -> FeatureStore:
        """Build an in-memory store from per-row images of shape ``(C, H, T_i)``.

        ``None`` marks a failed row (give its reason in ``reasons``).
        """
        good = [im for im in images if im is not None]
        if not good:
            raise CacheError("FeatureStore.from_arrays: no valid image")
        c, h = good[0].shape[:2]
        lengths = np.array([0 if im is None else im.shape[2] for im in images], dtype=np.int64)
        if np.any((lengths > 0) & (lengths < window_frames)):
            raise CacheError(
                f"every image needs >= {window_frames} frames, got lengths {lengths.tolist()}"
            )
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        frames = np.zeros((int(lengths.sum()), c, h), dtype=good[0].dtype)
        for im, off, n in zip(images, offsets, lengths, strict=True):
            if im is not None:
                frames[off : off + n] = np.moveaxis(im, 2, 0)
        if reasons is None:
            reasons = ["" if im is not None else "failed" for im in images]
        return cls(list(filenames), frames, offsets, lengths, int(window_frames), list(reasons))

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return len(self.filenames)

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of rows with a valid image."""
        return np.array([r == "" for r in self.reasons], dtype=bool)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, window_frames)``: the shape of one window."""
        return (int(self.frames.shape[1]), int(self.frames.shape[2]), self.window_frames)

    def failures(self) -> list[tuple[str, str]]:
        """``(filename, reason)`` of every failed row."""
        return [(f, r) for f, r in zip(self.filenames, self.reasons, strict=True) if r]

    # ------------------------------------------------------------------ reading
    def _row(self, i: int) -> tuple[int, int]:
        if self.reasons[i]:
            raise CacheError(f"{self.filenames[i]}: no image in the cache ({self.reasons[i]})")
        return int(self.offsets[i]), int(self.lengths[i])

    def window(
        self, i: int, policy: str = "start", rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """One window of row ``i`` as float32, shape ``(C, H, window_frames)``.

        Parameters
        ----------
        i : int
            Row index.
        policy : {"start", "center", "random"}
            Which window of a long clip; ``"random"`` needs ``rng``.
        rng : numpy.random.Generator, optional
            Source of the random offset.
        """
        off, n = self._row(i)
        spare = n - self.window_frames
        if policy == "start" or spare == 0:
            start = 0
        elif policy == "center":
            start = spare // 2
        elif policy == "random":
            if rng is None:
                raise CacheError("window(policy='random') needs an rng")
            start = int(rng.integers(0, spare + 1))
        else:
            raise CacheError(f"unknown crop policy {policy!r}; known: start, center, random")
        block = self.frames[off + start : off + start + self.window_frames]
        return np.ascontiguousarray(np.moveaxis(block, 0, 2), dtype=np.float32)

    def windows(self, i: int) -> np.ndarray:
        """Every window of row ``i`` for test-time averaging, shape ``(n, C, H, window_frames)``.

        Windows start every ``window_frames // 2`` frames; the last one is aligned to the end
        of the clip so no audio is left out.
        """
        off, n = self._row(i)
        w = self.window_frames
        starts = list(range(0, n - w + 1, max(1, w // 2)))
        if starts[-1] != n - w:
            starts.append(n - w)
        out = np.stack([np.moveaxis(self.frames[off + s : off + s + w], 0, 2) for s in starts])
        return out.astype(np.float32)

    def stack(self, rows: Sequence[int] | None = None, policy: str = "start") -> np.ndarray:
        """Windows of many rows, shape ``(n_rows, C, H, window_frames)``, float32."""
        rows = range(len(self)) if rows is None else rows
        return np.stack([self.window(int(i), policy) for i in rows])
