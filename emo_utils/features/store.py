"""The feature cache on disk and its read side, :class:`FeatureStore`.

Public API (used by :mod:`emo_utils.train.cv` and :mod:`emo_utils.infer.predict`):

* :class:`FeatureStore` -- the images of one split, in the row order of its CSV, with a
  per-row status.  Every clip's image has shape ``(C, H, T_i)`` with ``T_i >= window``
  frames (``window`` frames = one ``audio.duration`` window); :meth:`FeatureStore.window`
  crops one window by a crop policy (:data:`emo_utils.audio.CROP_POLICIES`),
  :meth:`FeatureStore.windows` returns every window (test-time averaging, timelines) and
  :meth:`FeatureStore.channel_statistics` the per-channel mean and std of some rows.
* :func:`open_cache` -- reopen a finished store without computing anything.
* :func:`require_valid_training` -- stop (or drop rows) when training files failed.
* :func:`default_cache_dir`, :func:`cache_folder` -- where the cache lives.

The cache is written by :func:`emo_utils.features.build.build_cache` (compute, resume or
reuse).

On-disk layout
--------------
::

    CACHE_DIR/                      default DATA/.emo_cache (default_cache_dir)
      FEATURE_HASH/                 Config.feature_hash(): the audio and feature fields that change images
        config.json                 the audio and features sections, for people
        train/  test/  unlabelled/  one folder per split (unlabelled: data.unlabelled_dir)
          frames.npy                (total_frames, C, H) images along time, float16 by default,
                                    opened as a read-only memory map
          index.csv                 row,filename,path,clip,offset,length,reason (CSV row order)
          failures.csv              filename,path,reason of every file that failed
          warnings.csv              filename,path,warning (short clips, truncated files)
          manifest.json             written last: fingerprint, shapes, SHA-256 of frames.npy
          chunks/chunk-KEY.npz      only while building: finished batches of clips
          .emo_utils.lock(.json)    the split's lock (held while building) and its holder

A clip's image is computed once even if the test CSV lists it several times; those rows share
its frames.

**Keys.**  The folder is keyed by the audio and feature configuration, so a changed setting
never reuses stale images.  Inside it, the manifest's fingerprint covers the code versions
(cache format, :data:`~emo_utils.features.channels.FEATURES_VERSION`, librosa, libsndfile),
the identity of every channel used (:attr:`~emo_utils.features.channels.ChannelSpec.identity`:
its declared version or a hash of its code, so an edited custom channel is recomputed), the
rows (file name, and path relative to the competition folder, so the folder can be moved)
and every audio file's size and modification time.  Audio bytes are not hashed: re-opening
an unchanged cache costs a ``stat`` per file plus one pass over ``frames.npy`` to check its
SHA-256, a few percent of building it.

**Failures.**  A file that cannot be decoded gets a reason (``FeatureStore.reasons``) and a
line in ``failures.csv``; its row stays in the store (test rows must all reach the
submission).  :func:`require_valid_training` turns failed training rows into one
:class:`~emo_utils.errors.CacheError` listing all of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import pandas as pd
import soundfile as sf

from ..audio import crop_start
from ..config import Config
from ..errors import CacheError
from ..fileio import read_json
from .channels import FEATURES_VERSION, ChannelSpec, channel_specs
from .spectrum import n_frames

__all__ = [
    "CACHE_FORMAT_VERSION",
    "FeatureStore",
    "cache_folder",
    "default_cache_dir",
    "open_cache",
    "require_valid_training",
]

#: Bump when the on-disk layout changes.
CACHE_FORMAT_VERSION = 1
SPLITS = ("train", "test", "unlabelled")

_FRAMES = "frames.npy"
_INDEX = "index.csv"
_FAILURES = "failures.csv"
_WARNINGS = "warnings.csv"
_MANIFEST = "manifest.json"
_CHUNKS = "chunks"
_HASH_BLOCK_BYTES = 64 << 20


class RowStatus:
    """The per-row status every input store shares (images, statistics, embeddings).

    ``filenames`` and ``reasons`` (empty for a good row, else why the clip failed) hold one
    entry per CSV row.
    """

    filenames: list[str]
    reasons: list[str]

    def __len__(self) -> int:
        return len(self.filenames)

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of the rows that have an input (an empty reason)."""
        return np.array([r == "" for r in self.reasons], dtype=bool)

    def failures(self) -> list[tuple[str, str]]:
        """``(filename, reason)`` of every failed row."""
        return [(f, r) for f, r in zip(self.filenames, self.reasons, strict=True) if r]


@dataclass
class FeatureStore(RowStatus):
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
    notes : list of dict
        ``{"file", "reason"}`` of every warning raised while decoding (short clips, truncated
        files), for the end-of-run report.
    directory : pathlib.Path or None
        The cache folder of the split (``None`` for in-memory stores).
    stats : dict
        How the store was obtained: ``clips``, ``computed`` and ``reused`` clip counts and
        ``seconds``.
    sample_rate : int or None
        The rate the clips were decoded at (``audio.sample_rate`` of the config the cache was
        built from); ``None`` for in-memory stores built without one.
    fingerprint : str
        The cache's fingerprint (rows, files, settings, code versions; ``""`` in memory):
        what a cache derived from this one (frozen embeddings) keys on.
    """

    filenames: list[str]
    frames: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    window_frames: int
    reasons: list[str]
    notes: list[dict[str, str]] = field(default_factory=list)
    directory: Path | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    sample_rate: int | None = None
    fingerprint: str = ""

    @classmethod
    def from_arrays(
        cls,
        filenames: Sequence[str],
        images: Sequence[np.ndarray | None],
        *,
        window_frames: int,
        reasons: Sequence[str] | None = None,
        sample_rate: int | None = None,
    ) -> FeatureStore:
        """Build an in-memory store from per-row images.

        Parameters
        ----------
        filenames : sequence of str
            One per row.
        images : sequence of numpy.ndarray of shape (C, H, T_i), or None
            One per row, ``T_i >= window_frames``; ``None`` marks a failed row.
        window_frames : int
        reasons : sequence of str, optional
            Why each failed row failed (``""`` for good rows); default ``"failed"``.
        sample_rate : int, optional
            The rate of the clips the images come from (:attr:`sample_rate`).

        Returns
        -------
        FeatureStore
            With ``directory=None``.
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
        return cls(
            list(filenames),
            frames,
            offsets,
            lengths,
            int(window_frames),
            list(reasons),
            sample_rate=sample_rate,
        )

    # ------------------------------------------------------------------ properties
    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, window_frames)``: the shape of one window."""
        return (int(self.frames.shape[1]), int(self.frames.shape[2]), self.window_frames)

    def select(self, rows: Sequence[int] | np.ndarray) -> FeatureStore:
        """A store of the given rows, in that order, sharing this store's frames (no copy)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        return FeatureStore(
            [self.filenames[i] for i in rows],
            self.frames,
            self.offsets[rows],
            self.lengths[rows],
            self.window_frames,
            [self.reasons[i] for i in rows],
            notes=list(self.notes),
            directory=self.directory,
            stats=dict(self.stats),
            sample_rate=self.sample_rate,
            fingerprint=self.fingerprint,
        )

    # ------------------------------------------------------------------ reading
    def _row(self, i: int) -> tuple[int, int]:
        if self.reasons[i]:
            raise CacheError(f"{self.filenames[i]}: no image in the cache ({self.reasons[i]})")
        return int(self.offsets[i]), int(self.lengths[i])

    def window(
        self, i: int, policy: str = "start", rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """One window of row ``i`` as float32.

        Parameters
        ----------
        i : int
            Row index.
        policy : {"start", "center", "random"}
            Which window of a long clip: a name in :data:`emo_utils.audio.CROP_POLICIES`,
            applied by :func:`emo_utils.audio.crop_start` to frames instead of samples.
        rng : numpy.random.Generator, optional
            Source of the random offset; needed by ``"random"``.

        Returns
        -------
        numpy.ndarray, shape (C, H, window_frames), float32

        Raises
        ------
        ConfigError
            Unknown ``policy``.
        CacheError
            Row ``i`` has no image.
        """
        off, n = self._row(i)
        start = crop_start(total=n, size=self.window_frames, policy=policy, rng=rng)
        block = self.frames[off + start : off + start + self.window_frames]
        return np.ascontiguousarray(np.moveaxis(block, 0, 2), dtype=np.float32)

    def window_starts(self, i: int, *, hop: int | None = None) -> np.ndarray:
        """First frame of each window :meth:`windows` returns for row ``i``.

        Windows start every ``hop`` frames; the last one is aligned to the end of the clip
        so no frame is left out.

        Parameters
        ----------
        i : int
            Row index.
        hop : int, optional
            Frames between window starts, >= 1.  Default ``window_frames // 2`` (half a
            window).

        Returns
        -------
        numpy.ndarray of int64, shape (n_windows,)
            Increasing, from 0 to ``lengths[i] - window_frames``.
        """
        _, n = self._row(i)
        w = self.window_frames
        if hop is None:
            step = max(1, w // 2)
        elif isinstance(hop, (int, np.integer)) and not isinstance(hop, bool) and hop >= 1:
            step = int(hop)
        else:
            raise ValueError(f"hop must be a whole number of frames >= 1, got {hop!r}")
        starts = list(range(0, n - w + 1, step))
        if starts[-1] != n - w:
            starts.append(n - w)
        return np.array(starts, dtype=np.int64)

    def windows(self, i: int, *, hop: int | None = None) -> np.ndarray:
        """Every window of row ``i``, for test-time averaging or a timeline of a long clip.

        Parameters
        ----------
        i : int
            Row index.
        hop : int, optional
            Frames between window starts (default half a window); see
            :meth:`window_starts`, which gives each window's first frame.

        Returns
        -------
        numpy.ndarray, shape (n_windows, C, H, window_frames), float32
        """
        off, _ = self._row(i)
        w = self.window_frames
        starts = self.window_starts(i, hop=hop)
        out = np.stack([np.moveaxis(self.frames[off + s : off + s + w], 0, 2) for s in starts])
        return out.astype(np.float32)

    def stack(self, rows: Sequence[int] | None = None, policy: str = "start") -> np.ndarray:
        """Windows of many rows (:meth:`window` with ``policy``), float32.

        Returns
        -------
        numpy.ndarray, shape (n_rows, C, H, window_frames)
        """
        rows = range(len(self)) if rows is None else rows
        return np.stack([self.window(int(i), policy) for i in rows])

    def channel_statistics(self, rows: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and standard deviation over every frame of ``rows``.

        Accumulated in float64, row by row, over all ``H * T_i`` values of each channel of
        each row (the whole cached clip, not one window).  Failed rows hold no frames and add
        nothing.

        Parameters
        ----------
        rows : sequence of int
            Store rows, e.g. the rows a fold trains on.

        Returns
        -------
        mean, std : numpy.ndarray of float64, shape (C,)
            ``std`` is the population standard deviation ``sqrt(E[x**2] - mean**2)`` (clipped
            at 0); a constant channel (``std < 1e-6``) gets 1.0, so that ``(x - mean) / std``
            only centres it.

        Raises
        ------
        CacheError
            ``rows`` hold no frames.
        """
        c = self.image_shape[0]
        total, total_sq, n = np.zeros(c), np.zeros(c), 0
        for i in rows:
            off, length = int(self.offsets[i]), int(self.lengths[i])
            block = np.asarray(self.frames[off : off + length], dtype=np.float64)  # (T, C, H)
            total += block.sum(axis=(0, 2))
            total_sq += np.square(block).sum(axis=(0, 2))
            n += block.shape[0] * block.shape[2]
        if n == 0:
            raise CacheError("channel_statistics: the given rows hold no frames")
        mean = total / n
        std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
        std[std < 1e-6] = 1.0  # constant channel: centre it only
        return mean, std


# ====================================================================== where, and what
def default_cache_dir(data_dir: str | os.PathLike) -> Path:
    """The default feature cache folder of a competition folder: ``data_dir / ".emo_cache"``.

    Parameters
    ----------
    data_dir : path-like
        The competition folder (``Competition.root``).

    Returns
    -------
    pathlib.Path
    """
    return Path(data_dir) / ".emo_cache"


def cache_folder(config: Config, split: str, cache_dir: str | os.PathLike) -> Path:
    """The folder of one split's cache: ``cache_dir / config.feature_hash() / split``.

    Parameters
    ----------
    config : Config
        Its audio and feature sections key the folder (:meth:`Config.feature_hash`).
    split : {"train", "test", "unlabelled"}
    cache_dir : path-like
        The cache root (e.g. :func:`default_cache_dir`).

    Returns
    -------
    pathlib.Path
    """
    return Path(cache_dir) / config.feature_hash() / split


def _resolve_cache_dir(competition: Any, cache_dir: str | os.PathLike | None) -> Path:
    return default_cache_dir(competition.root) if cache_dir is None else Path(cache_dir)


@dataclass(frozen=True)
class _Plan:
    """What one split's cache must hold: read by :func:`_open`, filled by the builder."""

    directory: Path
    feature_hash: str
    filenames: list[str]  # per row
    row_clip: np.ndarray  # per row: index into clips
    clips: list[str]  # unique paths
    clip_keys: list[str]  # unique paths relative to the competition folder (for keys)
    stats: list[tuple[int, int]]  # per clip: (size, mtime_ns); (-1, -1) if missing
    specs: tuple[ChannelSpec, ...]  # per channel of features.channels, from the registry
    channel_ids: dict[str, str]  # channel name -> ChannelSpec.identity
    fingerprint: str
    window_frames: int
    channels: int
    height: int
    dtype: str
    sample_rate: int


def _versions() -> dict[str, Any]:
    return {
        "cache_format": CACHE_FORMAT_VERSION,
        "features": FEATURES_VERSION,
        "librosa": librosa.__version__,
        "libsndfile": sf.__libsndfile_version__,
    }


def _stat(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1)
    return (int(st.st_size), int(st.st_mtime_ns))


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _plan(competition: Any, split: str, config: Config, cache_dir: str | os.PathLike) -> _Plan:
    """The plan of a split; unknown split or channel names fail here, before any file work."""
    if split not in SPLITS:
        raise CacheError(f"unknown split {split!r}; known: {list(SPLITS)}")
    names = config.features.channels
    specs = tuple(channel_specs(names))
    channel_ids = {name: spec.identity for name, spec in zip(names, specs, strict=True)}
    table = getattr(competition, split)
    filenames = [str(f) for f in table["filename"]]
    paths = [str(p) for p in table["path"]]
    clip_of: dict[str, int] = {}
    row_clip = np.array([clip_of.setdefault(p, len(clip_of)) for p in paths], dtype=np.int64)
    clips = list(clip_of)
    clip_keys = [os.path.relpath(p, competition.root) for p in clips]
    stats = [_stat(p) for p in clips]
    fingerprint = _digest(
        {
            "versions": _versions(),
            "feature_hash": config.feature_hash(),
            "channels": channel_ids,
            "rows": [filenames, [clip_keys[c] for c in row_clip.tolist()]],
            "files": stats,
        }
    )
    return _Plan(
        directory=cache_folder(config, split, cache_dir),
        feature_hash=config.feature_hash(),
        filenames=filenames,
        row_clip=row_clip,
        clips=clips,
        clip_keys=clip_keys,
        stats=stats,
        specs=specs,
        channel_ids=channel_ids,
        fingerprint=fingerprint,
        window_frames=n_frames(config.audio.n_samples, hop_length=config.features.hop_length),
        channels=len(names),
        height=config.features.n_mels,
        dtype=config.features.cache_dtype,
        sample_rate=config.audio.sample_rate,
    )


# ====================================================================== reading a finished cache
def _open(plan: _Plan, *, verify: bool) -> FeatureStore:
    """Open a finished store; raise :class:`CacheError` (naming the file) if stale or damaged."""
    d = plan.directory
    manifest_path = d / _MANIFEST
    if not manifest_path.is_file():
        raise CacheError(f"{d}: no finished cache (no {_MANIFEST})")
    try:
        manifest = read_json(manifest_path)
        expected_shape = tuple(int(s) for s in manifest["shape"])
        fingerprint = manifest["fingerprint"]
        digest = manifest["frames_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _Damaged(manifest_path, f"unreadable manifest ({exc})") from exc
    if fingerprint != plan.fingerprint:
        raise _Stale(
            f"{d}: cache is stale (audio files, file list, channel code or library versions "
            "changed since it was built)"
        )
    frames_path = d / _FRAMES
    try:
        if expected_shape[0] == 0:
            frames = np.load(frames_path, allow_pickle=False)
        else:
            frames = np.load(frames_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise _Damaged(frames_path, f"unreadable ({exc})") from exc
    if frames.shape != expected_shape or frames.dtype != np.dtype(plan.dtype):
        raise _Damaged(
            frames_path,
            f"shape {frames.shape} {frames.dtype}, expected {expected_shape} {plan.dtype}",
        )
    if (
        isinstance(frames, np.memmap)
        and frames_path.stat().st_size != frames.offset + frames.nbytes
    ):
        raise _Damaged(frames_path, "file size does not match its header")
    if verify and _hash_array(frames) != digest:
        raise _Damaged(frames_path, "checksum mismatch")
    index_path = d / _INDEX
    try:
        index = pd.read_csv(index_path, dtype=str, keep_default_na=False)
        offsets = index["offset"].astype(np.int64).to_numpy()
        lengths = index["length"].astype(np.int64).to_numpy()
        reasons = index["reason"].astype(str).tolist()
    except (OSError, ValueError, KeyError, pd.errors.ParserError) as exc:
        raise _Damaged(index_path, f"unreadable index ({exc})") from exc
    if (
        len(index) != len(plan.filenames)
        or index["filename"].tolist() != plan.filenames
        or np.any(offsets < 0)
        or np.any(offsets + lengths > expected_shape[0])
        or np.any((lengths < plan.window_frames) & (index["reason"] == "").to_numpy())
    ):
        raise _Damaged(index_path, "index does not match the rows or frames")
    notes: list[dict[str, str]] = []
    warnings_path = d / _WARNINGS
    if warnings_path.is_file():
        with contextlib.suppress(
            OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError
        ):
            table = pd.read_csv(warnings_path, dtype=str, keep_default_na=False)
            notes = [
                {"file": p, "reason": w}
                for p, w in zip(table["path"], table["warning"], strict=True)
            ]
    return FeatureStore(
        filenames=list(plan.filenames),
        frames=frames,
        offsets=offsets,
        lengths=lengths,
        window_frames=plan.window_frames,
        reasons=reasons,
        notes=notes,
        directory=d,
        sample_rate=plan.sample_rate,
        fingerprint=plan.fingerprint,
    )


class _Stale(CacheError):
    """The cache exists but was built for other files or library versions."""


class _Damaged(CacheError):
    """A cache file is unreadable or inconsistent."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: damaged cache file ({problem})")


def _hash_array(frames: np.ndarray) -> str:
    digest = hashlib.sha256()
    for block in _row_blocks(frames):
        digest.update(memoryview(np.ascontiguousarray(block)).cast("B"))
    return digest.hexdigest()


def _row_blocks(frames: np.ndarray) -> Iterator[np.ndarray]:
    row_bytes = max(1, frames.itemsize * math.prod(frames.shape[1:]))
    step = max(1, _HASH_BLOCK_BYTES // row_bytes)
    for start in range(0, frames.shape[0], step):
        yield frames[start : start + step]


def open_cache(
    competition: Any,
    split: str,
    *,
    config: Config,
    cache_dir: str | os.PathLike | None = None,
    verify: bool = True,
) -> FeatureStore:
    """Reopen a finished cache without computing anything.

    Parameters are those of :func:`~emo_utils.features.build.build_cache`.

    Raises
    ------
    CacheError
        The cache is missing, stale (files or versions changed) or damaged; run
        :func:`~emo_utils.features.build.build_cache` (``python -m emo_utils preprocess``).
    """
    plan = _plan(competition, split, config, _resolve_cache_dir(competition, cache_dir))
    try:
        return _open(plan, verify=verify)
    except CacheError as exc:
        raise CacheError(
            f"{exc}; rebuild it with build_cache / `python -m emo_utils preprocess`"
        ) from exc


def require_valid_training(store: FeatureStore, *, skip_bad: bool = False) -> np.ndarray:
    """Check that every training row has an image.

    Parameters
    ----------
    store : FeatureStore
        The training split's store.
    skip_bad : bool
        ``data.skip_bad_train``: drop failed rows with a warning instead of stopping.

    Returns
    -------
    numpy.ndarray of int64
        Indices of the rows that have an image.

    Raises
    ------
    CacheError
        Listing every failed training file with its reason (when ``skip_bad`` is False), or
        when no training row is left.  With ``skip_bad`` the caller reports the dropped rows
        (:meth:`FeatureStore.failures`); ``build_cache`` has already warned about them.
    """
    failed = store.failures()
    good = np.flatnonzero(store.ok).astype(np.int64)
    if failed and not skip_bad:
        listing = "\n".join(f"  {name}: {reason}" for name, reason in failed)
        where = f" (also in {store.directory / _FAILURES})" if store.directory else ""
        raise CacheError(
            f"{len(failed)} training file(s) cannot be used{where}:\n{listing}\n"
            "Fix or remove them, or set data.skip_bad_train: true to train without them."
        )
    if len(good) == 0:
        raise CacheError("no training file has an image; nothing to train on")
    return good
