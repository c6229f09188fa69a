"""On-disk feature cache: one image per clip, computed once, read by training and prediction.

Public API (used by :mod:`emo_utils.train.cv` and :mod:`emo_utils.infer.predict`):

* :class:`FeatureStore` -- the images of one split, in the row order of its CSV, with a
  per-row status.  Every clip's image has shape ``(C, H, T_i)`` with ``T_i >= window``
  frames (``window`` frames = one ``audio.duration`` window); :meth:`FeatureStore.window`
  crops one window by a policy and :meth:`FeatureStore.windows` returns every window for
  test-time averaging.
* :func:`build_cache` -- compute (in parallel, resumably) or reuse the store of a split.
* :func:`open_cache` -- reopen a finished store without computing anything.
* :func:`require_valid_training` -- stop (or drop rows) when training files failed.

On-disk layout
--------------
::

    CACHE_DIR/                      default DATA/.emo_cache
      FEATURE_HASH/                 Config.feature_hash(): the audio and feature fields that change images
        config.json                 the audio and features sections, for people
        train/  test/               one folder per split
          frames.npy                (total_frames, C, H) images along time, float16 by default,
                                    opened as a read-only memory map
          index.csv                 row,filename,path,clip,offset,length,reason (CSV row order)
          failures.csv              filename,path,reason of every file that failed
          warnings.csv              filename,path,warning (short clips, truncated files)
          manifest.json             written last: fingerprint, shapes, SHA-256 of frames.npy
          chunks/chunk-KEY.npz      only while building: finished batches of clips

A clip's image is computed once even if the test CSV lists it several times; those rows share
its frames.

**Keys.**  The folder is keyed by the audio and feature configuration, so a changed setting
never reuses stale images.  Inside it, the manifest's fingerprint covers the code versions
(cache format, :data:`~emo_utils.features.spectrum.FEATURES_VERSION`, librosa, libsndfile), the rows
(file name, and path relative to the competition folder, so the folder can be moved) and
every audio file's size and modification time.  Audio bytes are not
hashed: re-opening an unchanged cache costs a ``stat`` per file plus one pass over
``frames.npy`` to check its SHA-256, a few percent of building it.

**Atomicity and resume.**  Clips are computed in chunks (:data:`DEFAULT_CHUNK_SIZE` clips),
each saved atomically under ``chunks/`` with a key of its files and the configuration; the
final files are then assembled, every one through :mod:`emo_utils.fileio`, with
``manifest.json`` last.  A killed run leaves finished chunks (and no manifest); the next run
reuses them and computes only the rest.  A damaged chunk or final file (unreadable header,
wrong size, checksum mismatch) is reported with an :class:`~emo_utils.errors.EmoUtilsWarning`
naming it and is recomputed.

**Failures.**  A file that cannot be decoded gets a reason (``FeatureStore.reasons``) and a
line in ``failures.csv``; its row stays in the store (test rows must all reach the
submission).  :func:`require_valid_training` turns failed training rows into one
:class:`~emo_utils.errors.CacheError` listing all of them.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import json
import math
import os
import shutil
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from queue import SimpleQueue
from typing import Any

import librosa
import numpy as np
import pandas as pd
import soundfile as sf
from joblib import effective_n_jobs
from joblib.executor import get_memmapping_executor
from threadpoolctl import ThreadpoolController
from tqdm.auto import tqdm

from ..audio import check_formats, load_clip
from ..config import AudioConfig, Config, FeatureConfig
from ..errors import AudioError, CacheError, ConfigError, EmoUtilsWarning
from .spectrum import CHANNELS, FEATURES_VERSION, compute_image, n_frames
from ..fileio import atomic_path, read_json, write_csv, write_json

__all__ = [
    "CACHE_FORMAT_VERSION",
    "DEFAULT_CHUNK_SIZE",
    "FeatureStore",
    "build_cache",
    "cache_folder",
    "open_cache",
    "require_valid_training",
]

#: Bump when the on-disk layout changes.
CACHE_FORMAT_VERSION = 1
#: Clips per chunk (the unit of parallel work, progress and resume).
DEFAULT_CHUNK_SIZE = 16
SPLITS = ("train", "test")

_FRAMES = "frames.npy"
_INDEX = "index.csv"
_FAILURES = "failures.csv"
_WARNINGS = "warnings.csv"
_MANIFEST = "manifest.json"
_CHUNKS = "chunks"
_HASH_BLOCK_BYTES = 64 << 20
#: Seconds an idle worker process stays up for the next build_cache call (joblib's default).
_WORKER_IDLE_SECONDS = 300
#: Clips of work per worker process started by build_cache: starting one costs about as much
#: CPU (importing librosa, scipy, numba) as computing a few hundred images.
_CLIPS_PER_WORKER = 400


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
    notes : list of dict
        ``{"file", "reason"}`` of every warning raised while decoding (short clips, truncated
        files), for the end-of-run report.
    directory : pathlib.Path or None
        The cache folder of the split (``None`` for in-memory stores).
    stats : dict
        How the store was obtained: ``clips``, ``computed`` and ``reused`` clip counts and
        ``seconds``.
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
        )

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


# ====================================================================== building the cache
@dataclass(frozen=True)
class _Plan:
    """What one split's cache must hold."""

    directory: Path
    feature_hash: str
    filenames: list[str]  # per row
    row_clip: np.ndarray  # per row: index into clips
    clips: list[str]  # unique paths
    clip_keys: list[str]  # unique paths relative to the competition folder (for keys)
    stats: list[tuple[int, int]]  # per clip: (size, mtime_ns); (-1, -1) if missing
    fingerprint: str
    window_frames: int
    channels: int
    height: int
    dtype: str


def cache_folder(config: Config, split: str, cache_dir: str | os.PathLike) -> Path:
    """``cache_dir / config.feature_hash() / split``."""
    return Path(cache_dir) / config.feature_hash() / split


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


def _check_channels(config: Config) -> None:
    """Unknown channel names fail before any file is read or written (not in a worker)."""
    unknown = [c for c in config.features.channels if c not in CHANNELS]
    if unknown:
        raise ConfigError(
            "features.channels",
            list(config.features.channels),
            f"unknown {unknown}; known: {sorted(CHANNELS)}",
        )


def _plan(competition: Any, split: str, config: Config, cache_dir: str | os.PathLike) -> _Plan:
    if split not in SPLITS:
        raise CacheError(f"unknown split {split!r}; known: {list(SPLITS)}")
    _check_channels(config)
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
        fingerprint=fingerprint,
        window_frames=n_frames(config.audio.n_samples, hop_length=config.features.hop_length),
        channels=len(config.features.channels),
        height=config.features.n_mels,
        dtype=config.features.cache_dtype,
    )


def _chunk_key(plan: _Plan, clips: range) -> str:
    return _digest(
        {
            "versions": _versions(),
            "feature_hash": plan.feature_hash,
            "files": [[plan.clip_keys[i], *plan.stats[i]] for i in clips],
        }
    )[:24]


def _clip_image(
    path: str, audio: AudioConfig, features: FeatureConfig
) -> tuple[np.ndarray | None, str, list[str]]:
    """``(image or None, failure reason, warning messages)`` of one clip."""
    image, reason = None, ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EmoUtilsWarning)
        try:
            y = load_clip(path, config=audio)
            image = compute_image(y, sample_rate=audio.sample_rate, config=features)
        except AudioError as exc:
            reason = exc.reason or "cannot be decoded"
        except librosa.ParameterError as exc:  # e.g. a sample rate librosa rejects
            reason = f"cannot be processed: {exc}"
    messages = []
    for w in caught:
        if issubclass(w.category, EmoUtilsWarning):
            messages.append(str(w.message))
        else:  # not ours: pass it on
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return image, reason, messages


@functools.cache
def _threadpools() -> ThreadpoolController:
    """The BLAS/OpenMP thread pools of this process, inspected once (that takes milliseconds)."""
    return ThreadpoolController()


def _compute_chunk(
    paths: Sequence[str],
    audio: AudioConfig,
    features: FeatureConfig,
    out_path: str,
    key: str,
) -> int:
    """Worker: images of ``paths`` saved atomically to ``out_path`` (``.npz``).

    Returns the number of clips processed.  Decoding problems become per-clip reasons;
    warnings are recorded in the file (they would be lost in a worker process).  BLAS runs
    single-threaded: the matrices are small, and extra threads only compete with the other
    workers (several times slower on a busy machine).
    """
    blocks: list[np.ndarray] = []
    lengths, reasons, warned_file, warned_text = [], [], [], []
    with _threadpools().limit(limits=1, user_api="blas"):
        for k, path in enumerate(paths):
            image, reason, messages = _clip_image(path, audio, features)
            if image is not None:
                blocks.append(np.moveaxis(image, 2, 0).astype(features.cache_dtype))
            lengths.append(0 if image is None else image.shape[2])
            reasons.append(reason)
            warned_file.extend([k] * len(messages))
            warned_text.extend(messages)
    empty = np.zeros((0, len(features.channels), features.n_mels), dtype=features.cache_dtype)
    with atomic_path(out_path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            key=np.array(key),
            frames=np.concatenate(blocks) if blocks else empty,
            lengths=np.array(lengths, dtype=np.int64),
            reasons=np.array(reasons, dtype=str),
            warned_file=np.array(warned_file, dtype=np.int64),
            warned_text=np.array(warned_text, dtype=str),
        )
    return len(paths)


@dataclass
class _Chunk:
    frames: np.ndarray | None
    lengths: np.ndarray
    reasons: list[str]
    notes: list[tuple[int, str]]


def _read_chunk(
    path: Path, key: str, n_clips: int, plan: _Plan, *, with_frames: bool = True
) -> _Chunk:
    """Load a chunk file; raise :class:`CacheError` if it is damaged or not this chunk's.

    Without ``with_frames`` only the small arrays are read and nothing is checked about the
    frames (``frames`` is then ``None``).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            chunk = _Chunk(
                frames=data["frames"] if with_frames else None,
                lengths=data["lengths"],
                reasons=[str(r) for r in data["reasons"]],
                notes=[
                    (int(i), str(t))
                    for i, t in zip(data["warned_file"], data["warned_text"], strict=True)
                ],
            )
            stored_key = str(data["key"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise CacheError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc
    problems = []
    if stored_key != key:
        problems.append("key does not match its file name")
    if len(chunk.lengths) != n_clips or len(chunk.reasons) != n_clips:
        problems.append(f"holds {len(chunk.lengths)} clips, expected {n_clips}")
    if chunk.frames is not None:
        if chunk.frames.ndim != 3 or chunk.frames.shape[1:] != (plan.channels, plan.height):
            problems.append(f"frames have shape {chunk.frames.shape}")
        elif int(chunk.lengths.sum()) != chunk.frames.shape[0]:
            problems.append("frame count does not match the clip lengths")
        if chunk.frames.dtype != np.dtype(plan.dtype):
            problems.append(f"dtype {chunk.frames.dtype}, expected {plan.dtype}")
    if problems:
        raise CacheError(f"{path}: {'; '.join(problems)}")
    return chunk


def _chunks(plan: _Plan, chunk_size: int) -> list[tuple[range, str, Path]]:
    out = []
    for start in range(0, len(plan.clips), chunk_size):
        clips = range(start, min(start + chunk_size, len(plan.clips)))
        key = _chunk_key(plan, clips)
        out.append((clips, key, plan.directory / _CHUNKS / f"chunk-{key}.npz"))
    return out


def _warn_damaged(path: Path, problem: str) -> None:
    warnings.warn(
        f"{path}: damaged cache file ({problem}); recomputing it", EmoUtilsWarning, stacklevel=4
    )


def _compute_missing(
    plan: _Plan, config: Config, chunks: list[tuple[range, str, Path]], n_jobs: int, progress: bool
) -> tuple[int, int]:
    """Compute every chunk not already on disk (in parallel); return (computed, reused) clips."""
    todo = []
    reused = 0
    for clips, key, path in chunks:
        if path.is_file():
            try:
                _read_chunk(path, key, len(clips), plan)
            except CacheError as exc:
                _warn_damaged(path, str(exc).removeprefix(f"{path}: "))
                path.unlink(missing_ok=True)
            else:
                reused += len(clips)
                continue
        todo.append((clips, key, path))
    if not todo:
        return 0, reused
    (plan.directory / _CHUNKS).mkdir(parents=True, exist_ok=True)
    total = sum(len(c) for c, _, _ in todo)
    tasks = [
        ([plan.clips[i] for i in clips], config.audio, config.features, str(path), key)
        for clips, key, path in todo
    ]
    # This process computes too; a worker costs seconds of CPU to start (imports), so one
    # starts only per _CLIPS_PER_WORKER clips of work, and never more than two chunks each.
    processes = min(effective_n_jobs(n_jobs), total // _CLIPS_PER_WORKER + 1, len(todo) // 2)
    n_workers = max(0, processes - 1)
    with tqdm(
        total=total,
        unit="clip",
        desc=f"features {plan.directory.name}",
        disable=not progress,
    ) as bar:
        _run_chunks(tasks, n_workers=n_workers, done=bar.update)
    return total, reused


def _worker_chunk(*task: Any) -> int:
    """:func:`_compute_chunk` as a worker process's task."""
    return _compute_chunk(*task)


def _worker_ready(audio: AudioConfig, features: FeatureConfig) -> int:
    """First task of a worker: import and warm up everything a chunk needs; return its pid.

    One image of a short tone (not silence, so that every code path runs) loads librosa's
    lazily imported modules, the resampler and the filter banks.
    """
    t = np.arange(audio.sample_rate) / audio.sample_rate
    y = (0.1 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    librosa.resample(y[:64], orig_sr=audio.sample_rate, target_sr=2 * audio.sample_rate)
    with _threadpools().limit(limits=1, user_api="blas"):
        compute_image(y, sample_rate=audio.sample_rate, config=features)
    return os.getpid()


def _run_chunks(
    tasks: list[tuple[Any, ...]], *, n_workers: int, done: Callable[[int], Any]
) -> None:
    """Run ``_compute_chunk(*task)`` for every task; ``done(clips)`` after each.

    This process computes chunks itself from the start (from the front of the list).
    ``n_workers`` worker processes (joblib's shared loky pool, kept for the next call)
    start meanwhile; each first runs :func:`_worker_ready`, and a dispatcher thread hands
    chunks (from the back of the list) only to workers that have answered, at most two per
    ready worker at a time.  Workers therefore never delay the job: a job that ends before
    they are up costs what it costs in one process, and a long job gets every worker as soon
    as it is up.  Errors of a worker's chunk are raised here.
    """
    queue = collections.deque(tasks)
    if n_workers < 1:
        while queue:
            done(_compute_chunk(*queue.popleft()))
        return
    lock = threading.Lock()
    finished: SimpleQueue[Future] = SimpleQueue()
    failures: list[BaseException] = []
    stop = threading.Event()

    def take(*, front: bool) -> tuple[Any, ...] | None:
        with lock:
            if not queue:
                return None
            return queue.popleft() if front else queue.pop()

    def left() -> bool:
        with lock:
            return bool(queue)

    # joblib's own accessor of the shared loky pool: it also sets up what joblib.Parallel
    # expects of that pool, so later Parallel calls (demo data, duplicates) can reuse it.
    executor = get_memmapping_executor(n_workers, timeout=_WORKER_IDLE_SECONDS)
    starting = {executor.submit(_worker_ready, *tasks[0][1:3]) for _ in range(n_workers)}

    def dispatch() -> None:
        n_ready, running = 0, set()
        try:
            while not stop.is_set():
                while len(running) < 2 * n_ready and (task := take(front=False)) is not None:
                    running.add(executor.submit(_worker_chunk, *task))
                if not running and (not left() or (n_ready == 0 and not starting)):
                    return
                ended, _ = wait(starting | running, timeout=0.1, return_when=FIRST_COMPLETED)
                for future in ended:
                    if future in starting:
                        starting.discard(future)
                        n_ready += not future.cancelled() and future.exception() is None
                    else:
                        running.discard(future)
                        finished.put(future)
        except BaseException as exc:  # e.g. a broken pool: raised by this process
            failures.append(exc)

    def collect() -> None:
        if failures:
            raise failures[0]
        while not finished.empty():
            done(finished.get().result())

    dispatcher = threading.Thread(target=dispatch, name="emo_utils-cache-dispatch", daemon=True)
    dispatcher.start()
    try:
        while (task := take(front=True)) is not None:
            done(_compute_chunk(*task))
            collect()
        dispatcher.join()
        collect()
    finally:
        stop.set()
        dispatcher.join()
        for future in starting:
            future.cancel()


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


def _assemble(plan: _Plan, chunks: list[tuple[range, str, Path]]) -> None:
    """Write ``frames.npy``, the index, the reports and, last, the manifest."""
    n = len(plan.clips)
    clip_length = np.zeros(n, dtype=np.int64)
    clip_reason = [""] * n
    notes: list[tuple[int, str]] = []
    for clips, key, path in chunks:
        chunk = _read_chunk(path, key, len(clips), plan, with_frames=False)
        clip_length[clips.start : clips.stop] = chunk.lengths
        clip_reason[clips.start : clips.stop] = chunk.reasons
        notes.extend((clips.start + i, text) for i, text in chunk.notes)
    clip_offset = np.concatenate([[0], np.cumsum(clip_length)[:-1]]).astype(np.int64)
    total = int(clip_length.sum())
    shape = (total, plan.channels, plan.height)

    digest = hashlib.sha256()
    with atomic_path(plan.directory / _FRAMES) as tmp:
        if total == 0:  # every clip failed; a zero-length memory map is not possible
            np.save(tmp, np.zeros(shape, dtype=plan.dtype), allow_pickle=False)
        else:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=plan.dtype, shape=shape)
            for clips, key, path in chunks:
                chunk = _read_chunk(path, key, len(clips), plan)
                start = int(clip_offset[clips.start])
                block = np.ascontiguousarray(chunk.frames)
                out[start : start + len(block)] = block
                digest.update(memoryview(block).cast("B"))
            out.flush()
            del out

    rows = pd.DataFrame(
        {
            "row": np.arange(len(plan.filenames)),
            "filename": plan.filenames,
            "path": [plan.clips[c] for c in plan.row_clip],
            "clip": plan.row_clip,
            "offset": clip_offset[plan.row_clip],
            "length": clip_length[plan.row_clip],
            "reason": [clip_reason[c] for c in plan.row_clip],
        }
    )
    write_csv(plan.directory / _INDEX, rows)
    first_row = {c: r for r, c in reversed(list(enumerate(plan.row_clip.tolist())))}
    failed = [c for c in range(n) if clip_reason[c]]
    write_csv(
        plan.directory / _FAILURES,
        pd.DataFrame(
            {
                "filename": [plan.filenames[first_row[c]] for c in failed],
                "path": [plan.clips[c] for c in failed],
                "reason": [clip_reason[c] for c in failed],
            }
        ),
    )
    write_csv(
        plan.directory / _WARNINGS,
        pd.DataFrame(
            {
                "filename": [plan.filenames[first_row[c]] for c, _ in notes],
                "path": [plan.clips[c] for c, _ in notes],
                "warning": [t for _, t in notes],
            }
        ),
    )
    write_json(
        plan.directory / _MANIFEST,
        {
            "versions": _versions(),
            "feature_hash": plan.feature_hash,
            "fingerprint": plan.fingerprint,
            "rows": len(plan.filenames),
            "clips": n,
            "failed_clips": len(failed),
            "shape": list(shape),
            "dtype": plan.dtype,
            "window_frames": plan.window_frames,
            "frames_sha256": digest.hexdigest(),
        },
    )


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
            f"{d}: cache is stale (audio files, file list or library versions changed since it "
            "was built)"
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
    )


class _Stale(CacheError):
    """The cache exists but was built for other files or library versions."""


class _Damaged(CacheError):
    """A cache file is unreadable or inconsistent."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: damaged cache file ({problem})")


def _remove_final(directory: Path) -> None:
    for name in (_MANIFEST, _FRAMES, _INDEX):  # manifest first: never a manifest without data
        (directory / name).unlink(missing_ok=True)


def _cleanup(directory: Path) -> None:
    shutil.rmtree(directory / _CHUNKS, ignore_errors=True)
    for tmp in directory.glob(".tmp-*"):
        tmp.unlink(missing_ok=True)


def _announce(store: FeatureStore, split: str) -> None:
    """Re-raise decoding warnings (also on reuse, so every run reports the same) and failures."""
    for note in store.notes:
        warnings.warn(note["reason"], EmoUtilsWarning, stacklevel=3)
    failed = store.failures()
    if failed:
        where = store.directory / _FAILURES if store.directory else "the store"
        warnings.warn(
            f"{len(failed)} of {len(store)} {split} row(s) have no image (files that cannot be "
            f"decoded); reasons in {where}",
            EmoUtilsWarning,
            stacklevel=3,
        )


def _default_dir(competition: Any, cache_dir: str | os.PathLike | None) -> Path:
    return Path(competition.root) / ".emo_cache" if cache_dir is None else Path(cache_dir)


def build_cache(
    competition: Any,
    split: str,
    config: Config,
    cache_dir: str | os.PathLike | None = None,
    *,
    n_jobs: int = -1,
    progress: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    verify: bool = True,
) -> FeatureStore:
    """Compute, resume or reuse the feature cache of one split.

    Parameters
    ----------
    competition : Competition
        From :func:`emo_utils.data.competition.load_competition`; its ``train`` or ``test`` table
        gives the rows (``filename``, ``path``) in CSV order.
    split : {"train", "test"}
    config : Config
        Its ``audio`` and ``features`` sections define the images.
    cache_dir : path-like, optional
        Default ``competition.root / ".emo_cache"``.
    n_jobs : int
        Processes computing images, this one included (-1: every core, joblib's
        convention).  This process starts computing at once; worker processes (a reusable
        loky pool) join as soon as they are up.  Since starting one costs seconds of CPU,
        one is started only per 400 clips to compute (and two chunks), so small jobs run in
        this process alone.
    progress : bool
        Show a tqdm progress bar while computing.
    chunk_size : int
        Clips per chunk (unit of work, of the progress bar and of resume).
    verify : bool
        Check the SHA-256 of ``frames.npy`` when reusing a finished cache.

    Returns
    -------
    FeatureStore
        One row per row of the split's table, memory-mapped from ``frames.npy``.

    Raises
    ------
    ConfigError
        ``features.channels`` names a channel that is not registered (before any work).
    DataError
        Some files have an extension libsndfile cannot read (before any work starts).

    Warns
    -----
    EmoUtilsWarning
        Short or truncated clips; rows without image; damaged cache files (recomputed).
    """
    start = time.perf_counter()
    plan = _plan(competition, split, config, _default_dir(competition, cache_dir))
    try:
        store = _open(plan, verify=verify)
    except _Damaged as exc:
        _warn_damaged(exc.path, exc.problem)
        _remove_final(plan.directory)
    except CacheError:  # missing or stale
        pass
    else:
        _cleanup(plan.directory)  # chunks or temp files of a run killed after its manifest
        store.stats = {
            "clips": len(plan.clips),
            "computed": 0,
            "reused": len(plan.clips),
            "seconds": time.perf_counter() - start,
        }
        _announce(store, split)
        return store

    check_formats(plan.clips)
    if chunk_size < 1:
        raise CacheError(f"chunk_size must be >= 1, got {chunk_size}")
    plan.directory.mkdir(parents=True, exist_ok=True)
    config_path = plan.directory.parent / "config.json"
    if not config_path.is_file():
        write_json(
            config_path, {k: v for k, v in config.to_dict().items() if k in ("audio", "features")}
        )
    _remove_final(plan.directory)
    chunks = _chunks(plan, chunk_size)
    computed, reused = _compute_missing(plan, config, chunks, n_jobs, progress)
    _assemble(plan, chunks)
    _cleanup(plan.directory)
    store = _open(plan, verify=False)
    store.stats = {
        "clips": len(plan.clips),
        "computed": computed,
        "reused": reused,
        "seconds": time.perf_counter() - start,
    }
    _announce(store, split)
    return store


def open_cache(
    competition: Any,
    split: str,
    config: Config,
    cache_dir: str | os.PathLike | None = None,
    *,
    verify: bool = True,
) -> FeatureStore:
    """Reopen a finished cache without computing anything.

    Parameters are those of :func:`build_cache`.

    Raises
    ------
    CacheError
        The cache is missing, stale (files or versions changed) or damaged; run
        :func:`build_cache` (``python -m emo_utils preprocess``).
    """
    plan = _plan(competition, split, config, _default_dir(competition, cache_dir))
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
        (:meth:`FeatureStore.failures`); :func:`build_cache` has already warned about them.
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
