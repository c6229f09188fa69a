"""Building the feature cache: plan, chunks, resume and assembly (:func:`build_cache`).

:func:`build_cache` computes (in parallel, resumably) or reuses the store of one split; the
layout on disk, the keys and the read side are described in :mod:`.store`.

**Atomicity and resume.**  Clips are computed in chunks (:data:`DEFAULT_CHUNK_SIZE` clips),
each saved atomically under ``chunks/`` with a key of its files, the configuration and the
identity of its channels; the final files are then assembled, every one through
:mod:`emo_utils.fileio`, with ``manifest.json`` last.  A killed run leaves finished chunks
(and no manifest); the next run reuses them and computes only the rest.  A damaged chunk or
final file (unreadable header, wrong size, checksum mismatch) is reported with an
:class:`~emo_utils.errors.EmoUtilsWarning` naming it and is recomputed.

**Locks.**  While a split is computed, assembled or repaired, its folder
(``CACHE/FEATURE_HASH/SPLIT``) is locked (:func:`emo_utils.locks.folder_lock`): a second
process on the same cache waits (or, with ``wait=False``, stops with a
:class:`~emo_utils.errors.LockError` naming the holder), then finds the finished cache and
reuses it.  Opening a finished, valid cache takes no lock (see :mod:`emo_utils.locks`,
*Readers*); a reader that finds it missing, stale or damaged decides what to do only once
it holds the lock.

**Disk full.**  ``frames.npy`` is written with plain sequential writes into a file whose
full size is allocated first (:func:`emo_utils.fileio.atomic_path` with ``size``), never
through a writable memory map: a full disk gives a
:class:`~emo_utils.errors.DiskFullError` naming the bytes needed, not a bus error.  Chunks
check their space the same way.  Finished chunks stay, so the rerun after freeing space
resumes.

**Processes.**  This process computes chunks itself and worker processes join it for large
jobs (:mod:`._parallel`).  A batched backend (``features.backend = "torch"``,
:mod:`.backends`) gets each chunk's decoded clips as one batch and runs in this process
only.  Workers receive the channel functions by reference, so a channel
defined in ``__main__`` (a notebook) cannot reach them: such a build runs in this process
only, with a warning.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import shutil
import time
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .._console import debug, interactive
from ..audio import check_formats, load_clip
from ..config import AudioConfig, Config, FeatureConfig
from ..errors import AudioError, CacheError, EmoUtilsWarning, LockError
from ..fileio import atomic_path, write_csv, write_json
from ..locks import folder_lock
from ._parallel import _one_blas_thread, _run_chunks, _worker_count, _worker_ready
from .backends import BACKENDS, compute_images
from .channels import ChannelSpec, _compute_image
from .store import (
    _CHUNKS,
    _FAILURES,
    _FRAMES,
    _INDEX,
    _MANIFEST,
    _WARNINGS,
    FeatureStore,
    _Damaged,
    _digest,
    _open,
    _Plan,
    _plan,
    _resolve_cache_dir,
    _versions,
)

__all__ = ["DEFAULT_CHUNK_SIZE", "build_cache"]

#: Clips per chunk (the unit of parallel work, progress and resume).
DEFAULT_CHUNK_SIZE = 16


def _chunk_key(plan: _Plan, clips: range) -> str:
    return _digest(
        {
            "versions": _versions(),
            "feature_hash": plan.feature_hash,
            "channels": plan.channel_ids,
            "files": [[plan.clip_keys[i], *plan.stats[i]] for i in clips],
        }
    )[:24]


def _caught(caught: list[warnings.WarningMessage]) -> list[str]:
    """Our warnings' messages; any other warning is passed on."""
    messages = []
    for w in caught:
        if issubclass(w.category, EmoUtilsWarning):
            messages.append(str(w.message))
        else:  # not ours: pass it on
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return messages


def _clip_image(
    path: str, audio: AudioConfig, features: FeatureConfig, specs: Sequence[ChannelSpec]
) -> tuple[np.ndarray | None, str, list[str]]:
    """``(image or None, failure reason, warning messages)`` of one clip."""
    image, reason = None, ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EmoUtilsWarning)
        try:
            y = load_clip(path, config=audio)
            image = _compute_image(y, sample_rate=audio.sample_rate, config=features, specs=specs)
        except AudioError as exc:
            reason = exc.reason or "cannot be decoded"
        except librosa.ParameterError as exc:  # e.g. a sample rate librosa rejects
            reason = f"cannot be processed: {exc}"
    return image, reason, _caught(caught)


def _batch_images(
    paths: Sequence[str], audio: AudioConfig, features: FeatureConfig, specs: Sequence[ChannelSpec]
) -> list[tuple[np.ndarray | None, str, list[str]]]:
    """:func:`_clip_image` of each path, the images computed together by the backend.

    Each clip is decoded on its own (a clip that cannot be decoded gets its reason); the
    decoded ones go to :func:`.backends.compute_images` as one batch, whose warnings are
    recorded on the batch's first clip.
    """
    out: list[tuple[np.ndarray | None, str, list[str]]] = []
    decoded: dict[int, np.ndarray] = {}
    for k, path in enumerate(paths):
        reason = ""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EmoUtilsWarning)
            try:
                decoded[k] = load_clip(path, config=audio)
            except AudioError as exc:
                reason = exc.reason or "cannot be decoded"
        out.append((None, reason, _caught(caught)))
    if not decoded:
        return out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EmoUtilsWarning)
        try:
            images = compute_images(
                list(decoded.values()),
                sample_rate=audio.sample_rate,
                config=features,
                specs=specs,
            )
        except librosa.ParameterError as exc:
            reason = f"cannot be processed: {exc}"
            for k in decoded:
                out[k] = (None, reason, out[k][2])
            return out
    messages = _caught(caught)
    for n, (k, image) in enumerate(zip(decoded, images, strict=True)):
        out[k] = (image, "", out[k][2] + (messages if n == 0 else []))
    return out


def _compute_chunk(
    paths: Sequence[str],
    audio: AudioConfig,
    features: FeatureConfig,
    specs: Sequence[ChannelSpec],
    out_path: str,
    key: str,
) -> int:
    """Images of ``paths`` saved atomically to ``out_path`` (``.npz``), in any process.

    Returns the number of clips processed.  The file holds :func:`_chunk_bytes`.
    """
    _write_chunk(out_path, _chunk_bytes(paths, audio, features, specs, key))
    return len(paths)


def _write_chunk(out_path: str | os.PathLike, data: bytes) -> None:
    """Save a chunk's bytes atomically; a full disk fails before the write, naming the size."""
    with atomic_path(out_path, size=len(data)) as tmp, open(tmp, "r+b") as fh:
        fh.write(data)


def _chunk_bytes(
    paths: Sequence[str],
    audio: AudioConfig,
    features: FeatureConfig,
    specs: Sequence[ChannelSpec],
    key: str,
) -> bytes:
    """The ``.npz`` file of one chunk (images of ``paths``), computed in any process.

    Decoding problems become per-clip reasons; warnings are recorded in the file (they
    would be lost in a worker process).  The ``"librosa"`` backend computes clip by clip
    with BLAS single-threaded (:func:`._parallel._one_blas_thread`); the others get the
    decoded clips as one batch (:func:`_batch_images`).
    """
    blocks: list[np.ndarray] = []
    lengths, reasons, warned_file, warned_text = [], [], [], []
    backend = BACKENDS[features.backend]
    if backend.batched:
        results = _batch_images(paths, audio, features, specs)
    else:
        with _one_blas_thread():
            results = [_clip_image(path, audio, features, specs) for path in paths]
    for k, (image, reason, messages) in enumerate(results):
        if image is not None:
            blocks.append(np.moveaxis(image, 2, 0).astype(features.cache_dtype))
        lengths.append(0 if image is None else image.shape[2])
        reasons.append(reason)
        warned_file.extend([k] * len(messages))
        warned_text.extend(messages)
    empty = np.zeros((0, len(features.channels), features.n_mels), dtype=features.cache_dtype)
    frames = np.concatenate(blocks) if blocks else empty
    buffer = io.BytesIO()
    np.savez(
        buffer,
        key=np.array(key),
        frames=frames,
        lengths=np.array(lengths, dtype=np.int64),
        reasons=np.array(reasons, dtype=str),
        warned_file=np.array(warned_file, dtype=np.int64),
        warned_text=np.array(warned_text, dtype=str),
    )
    return buffer.getvalue()


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


def _warn_damaged(path: Path, problem: str, *, stacklevel: int) -> None:
    """Warn at the caller of build_cache (``stacklevel`` counts from this function)."""
    warnings.warn(
        f"{path}: damaged cache file ({problem}); recomputing it",
        EmoUtilsWarning,
        stacklevel=stacklevel,
    )


def _compute_missing(
    plan: _Plan,
    config: Config,
    chunks: list[tuple[range, str, Path]],
    n_jobs: int,
    progress: bool,
    label: str = "features",
) -> tuple[int, int]:
    """Compute every chunk not already on disk (in parallel); return (computed, reused) clips."""
    todo = []
    reused = 0
    for clips, key, path in chunks:
        if path.is_file():
            try:
                _read_chunk(path, key, len(clips), plan)
            except CacheError as exc:
                _warn_damaged(path, str(exc).removeprefix(f"{path}: "), stacklevel=5)
                path.unlink(missing_ok=True)
            else:
                reused += len(clips)
                continue
        todo.append((clips, key, path))
    if not todo:
        return 0, reused
    (plan.directory / _CHUNKS).mkdir(parents=True, exist_ok=True)
    total = sum(len(c) for c, _, _ in todo)
    split = f"{label} {plan.directory.name}"
    debug(
        f"{split}: {len(chunks) - len(todo)} chunk(s) reused ({reused} clips), "
        f"{len(todo)} to compute ({total} clips) in {plan.directory}"
    )
    specs = plan.specs
    tasks = [
        ([plan.clips[i] for i in clips], config.audio, config.features, specs, str(path), key)
        for clips, key, path in todo
    ]
    n_workers = _worker_count(n_jobs, clips=total, chunks=len(todo))
    if BACKENDS[config.features.backend].batched:  # it parallelises by itself
        n_workers = 0
    names = config.features.channels
    in_main = [n for n, s in zip(names, specs, strict=True) if _defined_in_main(s)]
    if n_workers and in_main:
        warnings.warn(
            f"features.channels {in_main} defined in __main__ (a notebook or script) cannot be "
            "imported by worker processes; computing features in this process only (define "
            "the channel in an importable module to use n_jobs)",
            EmoUtilsWarning,
            stacklevel=4,  # _compute_missing < _build_locked < build_cache < its caller
        )
        n_workers = 0
    debug(f"{split}: {n_workers} worker process(es) besides this one")
    finished = [0, time.perf_counter()]
    with tqdm(
        total=total,
        unit="clip",
        desc=split,
        disable=not progress or not interactive(),
    ) as bar:

        def done(clips: int) -> None:
            bar.update(clips)
            finished[0] += 1
            debug(
                f"{split}: chunk {finished[0]}/{len(todo)} done ({clips} clips, "
                f"{time.perf_counter() - finished[1]:.1f} s)"
            )

        CHUNK_ENGINES[config.features.engine](
            tasks, config=config, specs=specs, n_workers=n_workers, done=done
        )
    if progress and not interactive():
        print(f"{split}: {total} clips computed, {reused} reused", flush=True)
    return total, reused


def _local_engine(
    tasks: list[tuple[Any, ...]],
    *,
    config: Config,
    specs: Sequence[ChannelSpec],
    n_workers: int,
    done: Any,
) -> None:
    """The building process and ``n_workers`` joblib (loky) workers (:mod:`._parallel`)."""
    _run_chunks(
        tasks,
        run=_compute_chunk,
        run_in_worker=_worker_chunk,
        warm_up=functools.partial(_worker_ready, config.audio, config.features, specs),
        n_workers=n_workers,
        done=done,
    )


def _ray_engine(
    tasks: list[tuple[Any, ...]],
    *,
    config: Config,
    specs: Sequence[ChannelSpec],
    n_workers: int,
    done: Any,
) -> None:
    """Ray Data (:mod:`.ray_engine`): the chunks computed on a Ray instance or cluster."""
    from .ray_engine import run_chunks_ray

    run_chunks_ray(tasks, address=config.features.ray_address, done=done, write=_write_chunk)


#: ``features.engine`` -> ``f(tasks, *, config, specs, n_workers, done)``: what computes the
#: chunks of a build (the cache it leaves is the same, byte for byte).
CHUNK_ENGINES = {"local": _local_engine, "ray": _ray_engine}


def _defined_in_main(spec: ChannelSpec) -> bool:
    """Whether a function of the channel lives in ``__main__`` (worker processes lack it)."""
    return any(
        getattr(fn, "__module__", None) == "__main__" for fn in (spec.compute, spec.fixed_range)
    )


def _worker_chunk(*task: Any) -> int:
    """:func:`_compute_chunk` as a worker process's task.

    Submitted by reference, so a worker runs its own module's :func:`_compute_chunk`.
    """
    return _compute_chunk(*task)


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
    header = _npy_header(shape, plan.dtype)
    row_bytes = plan.channels * plan.height * np.dtype(plan.dtype).itemsize
    size = len(header) + total * row_bytes
    # The space is allocated first and the file written with plain writes ("r+b" keeps the
    # allocation): a full disk fails at once with the size needed, never as a bus error of
    # a memory-mapped write.  The bytes equal numpy's own .npy file of the array.
    with atomic_path(plan.directory / _FRAMES, size=size) as tmp, open(tmp, "r+b") as fh:
        fh.write(header)
        for clips, key, path in chunks:
            chunk = _read_chunk(path, key, len(clips), plan)
            if fh.tell() != len(header) + int(clip_offset[clips.start]) * row_bytes:
                raise CacheError(f"{path}: frames out of order while assembling {_FRAMES}")
            block = np.ascontiguousarray(chunk.frames)
            if block.size:  # a chunk of failed clips only has no frames
                view = memoryview(block).cast("B")
                fh.write(view)
                digest.update(view)
        if fh.tell() != size:
            raise CacheError(
                f"{plan.directory / _FRAMES}: wrote {fh.tell()} bytes, expected {size}"
            )
        fh.truncate()

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
            "channels": plan.channel_ids,
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


def _npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    """The ``.npy`` (version 1.0) header of a C-ordered array: what :func:`numpy.save` writes."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf,
        {
            "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
            "fortran_order": False,
            "shape": tuple(int(n) for n in shape),
        },
    )
    return buf.getvalue()


def _remove_final(directory: Path) -> None:
    for name in (_MANIFEST, _FRAMES, _INDEX):  # manifest first: never a manifest without data
        (directory / name).unlink(missing_ok=True)


def _cleanup(directory: Path) -> None:
    """Remove chunks and temporary files: only while holding the split's lock."""
    shutil.rmtree(directory / _CHUNKS, ignore_errors=True)
    for tmp in directory.glob(".tmp-*"):
        tmp.unlink(missing_ok=True)


def _tidy(directory: Path, what: str) -> None:
    """Clean up after a run killed after its manifest, if no other process holds the lock.

    A finished cache is opened without the lock; leftovers are removed only when the lock
    is free at once (a holder would be a process checking the same cache) and the folder
    is writable (a read-only finished cache, e.g. a Kaggle dataset, is used as it is).
    """
    if not ((directory / _CHUNKS).exists() or any(directory.glob(".tmp-*"))):
        return
    with (
        contextlib.suppress(LockError, OSError),
        folder_lock(directory, what=what, wait=False),
    ):
        _cleanup(directory)


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


def build_cache(
    competition: Any,
    split: str,
    *,
    config: Config,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    verify: bool = True,
    wait: bool = True,
    label: str = "features",
) -> FeatureStore:
    """Compute, resume or reuse the feature cache of one split.

    Parameters
    ----------
    competition : Competition
        From :func:`emo_utils.data.competition.load_competition`; its ``train`` or ``test`` table
        gives the rows (``filename``, ``path``) in CSV order.
    split : {"train", "test", "unlabelled"}
    config : Config
        Its ``audio`` and ``features`` sections define the images.
    cache_dir : path-like, optional
        Default :func:`~.store.default_cache_dir` of ``competition.root``
        (``competition.root / ".emo_cache"``).
    n_jobs : int
        Processes computing images, this one included (-1: every core, joblib's
        convention).  This process starts computing at once; worker processes (a reusable
        loky pool) join as soon as they are up.  Since starting one costs seconds of CPU,
        one is started only per 400 clips to compute (and two chunks), so small jobs run in
        this process alone.  A channel defined in ``__main__`` keeps the job in this process
        (with a warning).
    progress : bool
        Show a tqdm progress bar while computing.
    chunk_size : int
        Clips per chunk (unit of work, of the progress bar and of resume).
    verify : bool
        Check the SHA-256 of ``frames.npy`` when reusing a finished cache.
    wait : bool
        When another process is building this split (it holds the folder's lock): wait
        for it, printing who it is (default), or stop at once with a
        :class:`~emo_utils.errors.LockError`.
    label : str
        What the progress lines call the cache (``"features"``; ``"waveforms"`` for
        :func:`~emo_utils.features.waveform.build_waveforms`).

    Returns
    -------
    FeatureStore
        One row per row of the split's table, memory-mapped from ``frames.npy``.

    Raises
    ------
    ConfigError
        ``features.channels`` names a channel that is not registered (before any work).
    DataError
        Some training files have an extension no decoder reads (before any work
        starts).  Test files with such an extension get a failed row with the reason.
    LockError
        ``wait=False`` and another process is building this split.
    DiskFullError
        No room for a chunk or a final file; nothing partial is left and finished chunks
        stay for the rerun.

    Warns
    -----
    EmoUtilsWarning
        Short or truncated clips; rows without image; damaged cache files (recomputed); a
        channel defined in ``__main__`` that keeps the job in this process.
    """
    start = time.perf_counter()
    plan = _plan(competition, split, config, _resolve_cache_dir(competition, cache_dir))
    kind = "feature" if label == "features" else label  # "feature cache (train)"
    what = f"{kind} cache ({split})"
    try:  # a finished cache is only read: no lock (emo_utils.locks, "Readers")
        store = _open(plan, verify=verify)
    except CacheError:  # missing, stale or damaged: decided under the lock, below
        store = None
    if store is not None:
        debug(f"{label} {split}: finished cache reused from {plan.directory}")
        _tidy(plan.directory, what)  # chunks or temp files of a run killed after its manifest
        computed, reused = 0, len(plan.clips)
    else:
        if split == "train":
            # Test files in a format no decoder reads become failed rows (fallback rows of
            # the submission) instead: a run never stops after training because of test data.
            check_formats(plan.clips)
        if chunk_size < 1:
            raise CacheError(f"chunk_size must be >= 1, got {chunk_size}")
        with folder_lock(plan.directory, what=what, wait=wait):
            store, computed, reused = _build_locked(
                plan,
                config,
                n_jobs=n_jobs,
                progress=progress,
                chunk_size=chunk_size,
                verify=verify,
                label=label,
            )
    store.stats = {
        "clips": len(plan.clips),
        "computed": computed,
        "reused": reused,
        "seconds": time.perf_counter() - start,
    }
    _announce(store, split)
    return store


def _build_locked(
    plan: _Plan,
    config: Config,
    *,
    n_jobs: int,
    progress: bool,
    chunk_size: int,
    verify: bool,
    label: str = "features",
) -> tuple[FeatureStore, int, int]:
    """Reuse, repair or build the split while holding its lock: ``(store, computed, reused)``."""
    try:  # finished meanwhile by the process this one waited for?
        store = _open(plan, verify=verify)
    except _Damaged as exc:
        _warn_damaged(exc.path, exc.problem, stacklevel=4)
        _remove_final(plan.directory)
    except CacheError:  # missing or stale
        pass
    else:
        _cleanup(plan.directory)
        return store, 0, len(plan.clips)
    config_path = plan.directory.parent / "config.json"
    if not config_path.is_file():
        write_json(
            config_path, {k: v for k, v in config.to_dict().items() if k in ("audio", "features")}
        )
    _remove_final(plan.directory)
    chunks = _chunks(plan, chunk_size)
    computed, reused = _compute_missing(plan, config, chunks, n_jobs, progress, label)
    _assemble(plan, chunks)
    _cleanup(plan.directory)
    return _open(plan, verify=False), computed, reused
