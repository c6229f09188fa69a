"""Per-clip summary statistics of librosa descriptors: the input of the classical models.

A clip becomes one vector: every descriptor of :data:`DESCRIPTORS` (frames of MFCC, their
deltas, chroma, spectral contrast, centroid, bandwidth, roll-off, flatness, zero-crossing
rate and RMS level, all computed with librosa) summarised over time by its mean, standard
deviation and the percentiles of ``statistics.percentiles``.  The clip is decoded as for
the images (:func:`emo_utils.audio.load_audio`: mono, ``audio.sample_rate``, at most
``audio.max_duration`` seconds chosen by ``audio.crop``) but **not** zero-padded to
``audio.duration``: padding would drag every level statistic towards silence for short
clips.  Only a clip shorter than one FFT frame is padded (to ``statistics.n_fft`` samples).
The clip's duration is not a feature (it describes the recording, not the sound).

:func:`build_statistics` computes and caches the vectors of one split, resumably (chunks of
:data:`CHUNK_SIZE` clips, each saved atomically; the final ``statistics.npz`` is written
last and holds the fingerprint of the rows, files, settings and versions), under the
split's folder lock, in parallel for large jobs.  :class:`StatisticsStore` is its read side,
with the same row order, ``ok`` mask and ``failures()`` as
:class:`~emo_utils.features.FeatureStore`.

Layout::

    CACHE_DIR/statistics-HASH/      HASH: statistics section + the audio fields used
      config.json                   those settings, for people
      train/  test/
        statistics.npz              values (n_clips, D) float32, names, reasons, fingerprint
        chunks/chunk-KEY.npz        only while building
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import time
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import soundfile as sf
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from .._console import debug, interactive
from ..audio import check_formats, load_audio
from ..config import AudioConfig, Config, StatisticsConfig
from ..errors import AudioError, CacheError, EmoUtilsWarning
from ..fileio import atomic_path, write_json
from ..locks import folder_lock
from ._parallel import _one_blas_thread, _worker_count
from .spectrum import chroma_filters, estimate_tuning, mel_filters
from .store import SPLITS, RowStatus, _digest, _resolve_cache_dir, _stat

__all__ = [
    "CHUNK_SIZE",
    "DESCRIPTORS",
    "STATISTICS_VERSION",
    "StatisticsStore",
    "build_statistics",
    "clip_statistics",
    "clips_statistics",
    "statistic_names",
]

#: Bump when a descriptor or summary changes: cached vectors are then recomputed.
STATISTICS_VERSION = 1
#: Clips per chunk (the unit of parallel work, progress and resume).
CHUNK_SIZE = 64
_FINAL = "statistics.npz"
_CHUNKS = "chunks"
#: Lowest band edge of spectral contrast (librosa's default).
_CONTRAST_FMIN = 200.0
#: Mel bands of the MFCCs' spectrogram (librosa.feature.melspectrogram's default).
_MEL_BANDS = 128
#: Chroma bins (librosa.feature.chroma_stft's default).
_CHROMA_BINS = 12


@dataclass
class _Frames:
    """One clip's spectra, shared by the descriptors (each computed once, on demand)."""

    y: np.ndarray
    sample_rate: int
    config: StatisticsConfig

    @functools.cached_property
    def magnitude(self) -> np.ndarray:
        c = self.config
        return np.abs(librosa.stft(self.y, n_fft=c.n_fft, hop_length=c.hop_length))

    @functools.cached_property
    def power(self) -> np.ndarray:
        return self.magnitude**2

    @functools.cached_property
    def mfcc(self) -> np.ndarray:
        # librosa.feature.melspectrogram(S=power, sr) with its default bank, built once.
        basis = mel_filters(
            sample_rate=self.sample_rate,
            n_fft=2 * (self.power.shape[-2] - 1),
            n_mels=_MEL_BANDS,
            fmin=0.0,
            fmax=0.0,
        )
        mel = np.einsum("...ft,mf->...mt", self.power, basis, optimize=True)
        return librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=self.config.n_mfcc)


def _chroma(f: _Frames) -> np.ndarray:
    """``librosa.feature.chroma_stft(S=power, sr)``, bit-identical and several times faster.

    The same tuning estimate and filter bank, computed by :mod:`.spectrum`'s kernels.
    """
    n_fft = 2 * (f.power.shape[-2] - 1)
    tuning = estimate_tuning(f.power, sample_rate=f.sample_rate, bins_per_octave=_CHROMA_BINS)
    basis = chroma_filters(
        sample_rate=f.sample_rate, n_fft=n_fft, n_chroma=_CHROMA_BINS, tuning=tuning
    )
    raw = np.einsum("cf,...ft->...ct", basis, f.power, optimize=True)
    return librosa.util.normalize(raw, norm=np.inf, axis=-2)


def _contrast(f: _Frames) -> np.ndarray:
    # As many octave bands (at most librosa's 6) as fit below the Nyquist frequency.
    bands = int(np.floor(np.log2(f.sample_rate / 2 / _CONTRAST_FMIN))) - 1
    return librosa.feature.spectral_contrast(
        S=f.magnitude, sr=f.sample_rate, fmin=_CONTRAST_FMIN, n_bands=max(1, min(6, bands))
    )


#: Descriptor name -> ``(frames) -> (k, n_frames)`` array; ``statistics.descriptors`` picks
#: from it (the single source of the names).
DESCRIPTORS: dict[str, Callable[[_Frames], np.ndarray]] = {
    "mfcc": lambda f: f.mfcc,
    "mfcc_delta": lambda f: librosa.feature.delta(f.mfcc, mode="nearest"),
    "chroma": _chroma,
    "contrast": _contrast,
    "centroid": lambda f: librosa.feature.spectral_centroid(S=f.magnitude, sr=f.sample_rate),
    "bandwidth": lambda f: librosa.feature.spectral_bandwidth(S=f.magnitude, sr=f.sample_rate),
    "rolloff": lambda f: librosa.feature.spectral_rolloff(S=f.magnitude, sr=f.sample_rate),
    "flatness": lambda f: librosa.feature.spectral_flatness(S=f.magnitude),
    "zcr": lambda f: librosa.feature.zero_crossing_rate(
        f.y, frame_length=f.config.n_fft, hop_length=f.config.hop_length
    ),
    "rms": lambda f: librosa.amplitude_to_db(
        librosa.feature.rms(S=f.magnitude, frame_length=f.config.n_fft), ref=1.0
    ),
}


def _summaries(config: StatisticsConfig) -> list[str]:
    return ["mean", "std", *(f"p{p:g}" for p in config.percentiles)]


def _summarise(frames: np.ndarray, config: StatisticsConfig) -> np.ndarray:
    """``(k, n_frames)`` -> ``(k, n_summaries)``: mean, std, then the percentiles."""
    parts = [frames.mean(axis=1, keepdims=True), frames.std(axis=1, keepdims=True)]
    if config.percentiles:
        parts.append(np.percentile(frames, config.percentiles, axis=1).T)
    return np.concatenate(parts, axis=1)


def _rows(name: str, sample_rate: int, config: StatisticsConfig) -> int:
    """Rows of descriptor ``name`` (from a short test signal: the shapes depend on the rate)."""
    return _descriptor_rows(sample_rate, config)[name]


@functools.cache
def _descriptor_rows(sample_rate: int, config: StatisticsConfig) -> dict[str, int]:
    t = np.arange(config.n_fft * 2) / sample_rate
    frames = _Frames((0.1 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32), sample_rate, config)
    return {name: DESCRIPTORS[name](frames).shape[0] for name in config.descriptors}


def statistic_names(*, sample_rate: int, config: StatisticsConfig) -> list[str]:
    """The name of every entry of :func:`clip_statistics`'s vector, in order.

    ``"<descriptor>_<row>_<summary>"``, e.g. ``"mfcc_0_mean"``, ``"rms_0_p90"``.
    """
    summaries = _summaries(config)
    return [
        f"{name}_{row}_{summary}"
        for name in config.descriptors
        for row in range(_rows(name, sample_rate, config))
        for summary in summaries
    ]


def clip_statistics(y: np.ndarray, *, sample_rate: int, config: StatisticsConfig) -> np.ndarray:
    """The summary statistics of one clip.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Mono audio at ``sample_rate`` (any length > 0; shorter than ``config.n_fft`` samples
        is zero-padded to it).
    sample_rate : int
    config : StatisticsConfig
        Descriptors, MFCC count, STFT size and hop, percentiles.

    Returns
    -------
    numpy.ndarray of float32, shape (D,)
        In the order of :func:`statistic_names`.

    Raises
    ------
    AudioError
        An empty clip, or statistics that are not finite.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or len(y) == 0:
        raise AudioError("<clip>", f"needs a non-empty mono signal, got shape {y.shape}")
    if len(y) < config.n_fft:
        y = librosa.util.fix_length(y, size=config.n_fft)
    frames = _Frames(y, int(sample_rate), config)
    out = np.concatenate(
        [_summarise(DESCRIPTORS[name](frames), config).ravel() for name in config.descriptors]
    ).astype(np.float32)
    if not np.isfinite(out).all():
        raise AudioError("<clip>", "its statistics are not finite")
    return out


def clips_statistics(
    clips: np.ndarray, *, sample_rate: int, config: StatisticsConfig
) -> np.ndarray:
    """:func:`clip_statistics` of many clips of one length, summarised together.

    Every descriptor is computed per clip, as :func:`clip_statistics` computes it; the
    summaries (mean, standard deviation, percentiles) of all clips are then taken in one
    call per descriptor, over the last axis of the stacked frames, which gives each clip's
    values with a fraction of the per-call cost (half of the time of short clips).

    Parameters
    ----------
    clips : numpy.ndarray, shape (n, samples)
        Mono clips at ``sample_rate``, ``samples >= config.n_fft``.
    sample_rate : int
    config : StatisticsConfig

    Returns
    -------
    numpy.ndarray of float32, shape (n, D)
        Row ``i`` equals ``clip_statistics(clips[i], ...)``.

    Raises
    ------
    AudioError
        Clips shorter than one FFT frame, or statistics that are not finite.
    """
    x = np.asarray(clips, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] < config.n_fft:
        raise AudioError("<clips>", f"needs (n, samples >= {config.n_fft}) clips, got {x.shape}")
    frames = [_Frames(y, int(sample_rate), config) for y in x]
    parts = []
    for name in config.descriptors:
        stacked = np.stack([DESCRIPTORS[name](f) for f in frames])  # (n, k, n_frames)
        summary = [stacked.mean(axis=-1, keepdims=True), stacked.std(axis=-1, keepdims=True)]
        if config.percentiles:
            summary.append(np.moveaxis(np.percentile(stacked, config.percentiles, axis=-1), 0, -1))
        parts.append(np.concatenate(summary, axis=-1).reshape(len(x), -1))
    out = np.concatenate(parts, axis=1).astype(np.float32)
    if not np.isfinite(out).all():
        raise AudioError("<clip>", "its statistics are not finite")
    return out


# ---------------------------------------------------------------------------- the store
@dataclass
class StatisticsStore(RowStatus):
    """Summary statistics of one split, one row per CSV row.

    Attributes
    ----------
    filenames : list of str
        File name of every row, in CSV order.
    values : numpy.ndarray of float32, shape (n_rows, D)
        The vectors (NaN for failed rows).
    names : list of str
        Column names (:func:`statistic_names`).
    reasons : list of str
        Empty for good rows, else why the clip failed.
    notes : list of dict
        ``{"file", "reason"}`` of decoding warnings (truncated files), for the run report.
    directory : pathlib.Path or None
        The cache folder of the split.
    stats : dict
        ``clips``, ``computed``, ``reused`` and ``seconds`` of the build.
    """

    filenames: list[str]
    values: np.ndarray
    names: list[str]
    reasons: list[str]
    notes: list[dict[str, str]] = field(default_factory=list)
    directory: Path | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def select(self, rows: Sequence[int] | np.ndarray) -> StatisticsStore:
        """A store of ``rows`` only (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        return StatisticsStore(
            filenames=[self.filenames[i] for i in rows],
            values=self.values[rows],
            names=list(self.names),
            reasons=[self.reasons[i] for i in rows],
            notes=list(self.notes),
            directory=self.directory,
            stats=dict(self.stats),
        )

    def matrix(self, rows: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """``values[rows]`` as float64 ``(len(rows), D)`` (every row by default)."""
        values = self.values if rows is None else self.values[np.asarray(rows, dtype=np.int64)]
        return np.asarray(values, dtype=np.float64)


# ---------------------------------------------------------------------------- the cache
@dataclass(frozen=True)
class _Plan:
    directory: Path
    filenames: list[str]
    row_clip: np.ndarray
    clips: list[str]
    keys: list[list[Any]]  # per clip: [path relative to the competition, size, mtime_ns]
    fingerprint: str
    names: list[str]
    audio: AudioConfig
    config: StatisticsConfig


def _settings(config: Config) -> dict[str, Any]:
    """Everything that changes a vector: the statistics section and the decoding fields."""
    audio = config.audio
    return {
        "statistics": config.to_dict()["statistics"],
        "audio": {
            "sample_rate": audio.sample_rate,
            "max_duration": audio.max_duration,
            "crop": audio.crop,
            "res_type": audio.res_type,
        },
    }


def _versions() -> dict[str, Any]:
    return {
        "statistics": STATISTICS_VERSION,
        "librosa": librosa.__version__,
        "libsndfile": sf.__libsndfile_version__,
    }


def statistics_folder(config: Config, split: str, cache_dir: str | os.PathLike) -> Path:
    """``cache_dir / "statistics-HASH" / split`` (HASH: the settings of :func:`_settings`)."""
    digest = hashlib.sha256(json.dumps(_settings(config), sort_keys=True).encode()).hexdigest()
    return Path(cache_dir) / f"statistics-{digest[:16]}" / split


def _plan(competition: Any, split: str, config: Config, cache_dir: Path) -> _Plan:
    if split not in SPLITS:
        raise CacheError(f"unknown split {split!r}; known: {list(SPLITS)}")
    table = getattr(competition, split)
    filenames = [str(f) for f in table["filename"]]
    clip_of: dict[str, int] = {}
    row_clip = np.array(
        [clip_of.setdefault(str(p), len(clip_of)) for p in table["path"]], dtype=np.int64
    )
    clips = list(clip_of)
    keys = [[os.path.relpath(p, competition.root), *_stat(p)] for p in clips]
    fingerprint = _digest(
        {
            "versions": _versions(),
            "settings": _settings(config),
            "rows": [filenames, row_clip.tolist()],
            "files": keys,
        }
    )
    names = statistic_names(sample_rate=config.audio.sample_rate, config=config.statistics)
    return _Plan(
        directory=statistics_folder(config, split, cache_dir),
        filenames=filenames,
        row_clip=row_clip,
        clips=clips,
        keys=keys,
        fingerprint=fingerprint,
        names=names,
        audio=config.audio,
        config=config.statistics,
    )


def _clip_vector(
    path: str, audio: AudioConfig, config: StatisticsConfig
) -> tuple[np.ndarray | None, str, list[str]]:
    """``(vector or None, failure reason, warning messages)`` of one file."""
    vector, reason = None, ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EmoUtilsWarning)
        try:
            y = load_audio(
                path,
                sample_rate=audio.sample_rate,
                max_duration=audio.max_duration,
                crop=audio.crop,
                res_type=audio.res_type,
            )
            vector = clip_statistics(y, sample_rate=audio.sample_rate, config=config)
        except AudioError as exc:
            reason = exc.reason or "cannot be decoded"
        except librosa.ParameterError as exc:
            reason = f"cannot be processed: {exc}"
    messages = [str(w.message) for w in caught if issubclass(w.category, EmoUtilsWarning)]
    return vector, reason, messages


def _compute_chunk(
    paths: Sequence[str], audio: AudioConfig, config: StatisticsConfig, dim: int, out: str
) -> int:
    """Vectors of ``paths`` saved atomically to ``out`` (any process); return the count."""
    values = np.full((len(paths), dim), np.nan, dtype=np.float32)
    reasons, notes = [], []
    with _one_blas_thread():
        for k, path in enumerate(paths):
            vector, reason, messages = _clip_vector(path, audio, config)
            if vector is not None:
                values[k] = vector
            reasons.append(reason)
            notes += [f"{path}\t{m}" for m in messages]
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, values=values, reasons=np.array(reasons, dtype=str), notes=np.array(notes))
    return len(paths)


def _read_npz(path: Path, needed: Sequence[str]) -> dict[str, np.ndarray] | None:
    """The arrays of a finished file, or None when it is missing or damaged (with a warning)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in needed}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        warnings.warn(
            f"{path}: damaged cache file ({type(exc).__name__}: {exc}); recomputing it",
            EmoUtilsWarning,
            stacklevel=4,
        )
        return None


def _chunk_path(plan: _Plan, clips: range) -> Path:
    key = _digest({"fingerprint": plan.fingerprint, "clips": [clips.start, clips.stop]})[:24]
    return plan.directory / _CHUNKS / f"chunk-{key}.npz"


def _open(plan: _Plan) -> StatisticsStore | None:
    """The finished store of ``plan``, or None when missing, stale or damaged."""
    data = _read_npz(plan.directory / _FINAL, ("fingerprint", "values", "reasons", "notes"))
    if data is None or str(data["fingerprint"]) != plan.fingerprint:
        return None
    values, reasons = data["values"], [str(r) for r in data["reasons"]]
    if values.shape != (len(plan.clips), len(plan.names)) or len(reasons) != len(plan.clips):
        return None
    notes = []
    for note in data["notes"]:
        file, _, reason = str(note).partition("\t")
        notes.append({"file": file, "reason": reason})
    return StatisticsStore(
        filenames=list(plan.filenames),
        values=values[plan.row_clip],
        names=list(plan.names),
        reasons=[reasons[c] for c in plan.row_clip],
        notes=notes,
        directory=plan.directory,
    )


def _build(plan: _Plan, split: str, n_jobs: int, progress: bool) -> tuple[int, int]:
    """Compute the missing chunks, then write the final file; ``(computed, reused)`` clips."""
    chunks = [
        range(s, min(s + CHUNK_SIZE, len(plan.clips)))
        for s in range(0, len(plan.clips), CHUNK_SIZE)
    ]
    parts: dict[int, dict[str, np.ndarray]] = {}
    for i, clips in enumerate(chunks):
        data = _read_npz(_chunk_path(plan, clips), ("values", "reasons", "notes"))
        if data is not None and data["values"].shape == (len(clips), len(plan.names)):
            parts[i] = data
    missing = [i for i in range(len(chunks)) if i not in parts]
    n_missing = sum(len(chunks[i]) for i in missing)
    workers = _worker_count(n_jobs, clips=n_missing, chunks=len(missing)) + 1
    tasks = (
        delayed(_compute_chunk)(
            [plan.clips[c] for c in chunks[i]],
            plan.audio,
            plan.config,
            len(plan.names),
            os.fspath(_chunk_path(plan, chunks[i])),
        )
        for i in missing
    )
    bar = tqdm(
        total=n_missing,
        desc=f"statistics {split}",
        unit="clip",
        disable=not progress or not interactive() or not missing,
    )
    with bar:
        for done in Parallel(n_jobs=workers, return_as="generator_unordered")(tasks):
            bar.update(done)
    if progress and missing and not interactive():  # logs get one line, not a bar
        print(
            f"statistics {split}: {n_missing} clips computed, {len(plan.clips) - n_missing} reused",
            flush=True,
        )
    for i in missing:
        data = _read_npz(_chunk_path(plan, chunks[i]), ("values", "reasons", "notes"))
        if data is None:
            raise CacheError(f"{_chunk_path(plan, chunks[i])}: chunk missing after computing it")
        parts[i] = data
    ordered = [parts[i] for i in range(len(chunks))]
    values = (
        np.concatenate([p["values"] for p in ordered])
        if ordered
        else np.zeros((0, len(plan.names)), np.float32)
    )
    reasons = [str(r) for p in ordered for r in p["reasons"]]
    notes = [str(n) for p in ordered for n in p["notes"]]
    with atomic_path(plan.directory / _FINAL) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            fingerprint=np.array(plan.fingerprint),
            values=values,
            reasons=np.array(reasons, dtype=str),
            notes=np.array(notes, dtype=str),
            names=np.array(plan.names, dtype=str),
        )
    shutil.rmtree(plan.directory / _CHUNKS, ignore_errors=True)
    return n_missing, len(plan.clips) - n_missing


def build_statistics(
    competition: Any,
    split: str,
    *,
    config: Config,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    wait: bool = True,
) -> StatisticsStore:
    """Compute, resume or reuse the clip statistics of one split.

    Parameters
    ----------
    competition : Competition
        Its ``train`` or ``test`` table gives the rows (``filename``, ``path``).
    split : {"train", "test", "unlabelled"}
    config : Config
        The ``statistics`` section and the decoding fields of ``audio`` key the cache.
    cache_dir : path-like, optional
        Default ``competition.root / ".emo_cache"`` (shared with the images).
    n_jobs : int
        Processes (-1: every core); small jobs run in this process.
    progress : bool
        A progress bar in terminals and notebooks.
    wait : bool
        Wait for another process building the same split (default), or raise a
        :class:`~emo_utils.errors.LockError`.

    Returns
    -------
    StatisticsStore
        One row per row of the split's table; failed clips have a reason and NaN values.

    Raises
    ------
    DataError
        Training files in a format no decoder reads (before any work).
    LockError
        ``wait=False`` and another process holds the split.
    """
    start = time.perf_counter()
    plan = _plan(competition, split, config, _resolve_cache_dir(competition, cache_dir))
    computed, reused = 0, len(plan.clips)
    store = _open(plan)  # a finished cache is only read: no lock
    if store is None:
        if split == "train":
            check_formats(plan.clips)
        with folder_lock(plan.directory, what=f"clip statistics ({split})", wait=wait):
            store = _open(plan)  # finished meanwhile by the process this one waited for?
            if store is None:
                settings = plan.directory.parent / "config.json"
                if not settings.is_file():
                    write_json(settings, _settings(config))
                computed, reused = _build(plan, split, n_jobs, progress)
                store = _open(plan)
                if store is None:
                    raise CacheError(f"{plan.directory / _FINAL}: unreadable right after writing")
    store.stats = {
        "clips": len(plan.clips),
        "computed": computed,
        "reused": reused,
        "seconds": time.perf_counter() - start,
    }
    failed = len(store.failures())
    debug(
        f"statistics {split}: {len(store)} rows, {computed} computed, {reused} reused, "
        f"{failed} failed"
    )
    return store
