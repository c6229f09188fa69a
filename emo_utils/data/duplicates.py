"""Near-duplicate detection: the same recording up to time shift, gain, re-encoding or resampling.

Competition data often holds the same utterance more than once (re-uploaded, re-encoded as
mp3, cut a little differently, resampled).  If two copies land in different folds, the
validation score is optimistic.  :func:`find_duplicates` finds such copies, and
:func:`duplicate_groups_for` turns them into groups for ``StratifiedGroupKFold`` (used by
:mod:`emo_utils.data.folds` when ``train.use_groups`` is on).

Method
------
1. **Fingerprint.**  Every clip is decoded to mono at 16 kHz and turned into a log-mel
   spectrogram (32 bands, 80-3600 Hz, 20 ms hop), in dB relative to the clip's peak and
   floored 60 dB below it.  The band stops below 4 kHz so a copy resampled to 8 kHz or
   low-pass filtered by an mp3 encoder has the same fingerprint.
2. **Chunks.**  A chunk descriptor describes one second: the mean dB of each band over ten
   100 ms sub-blocks (320 numbers), minus its own mean (this removes any gain change) and
   scaled to unit length, so the Euclidean distance between two descriptors is
   ``sqrt(2 * (1 - correlation))`` in ``[0, 2]``.  Chunks more than 30 dB below the clip's
   loudest chunk (pauses, background noise) are ignored: all quiet chunks look alike.
3. **Search.**  Descriptors starting at *every* frame of every clip form the index
   (:class:`sklearn.neighbors.NearestNeighbors`); query descriptors start every 0.5 s.  A
   time shift of any length therefore lands within half a frame (10 ms) of an indexed
   descriptor.  Each query gets all indexed descriptors of other clips within the distance
   ``threshold`` (a radius query).  The radius query runs on a 32-dimensional PCA
   projection and its candidates are checked with the full descriptors: a projection never
   lengthens a distance, so nothing is lost, and the search is about 4x faster.
4. **Pairs.**  Clip ``a`` duplicates clip ``b`` when at least half of ``a``'s query chunks
   (and at least two, or all of them for clips with a single chunk) match chunks of ``b`` at
   one consistent time offset (within 40 ms).  A pair is reported when this holds in either
   direction (so a short excerpt of a longer clip is found), with its distance (the median
   chunk distance at that offset), the offset and the number of matching chunks.
5. **Groups.**  Connected components of the pair graph
   (:func:`scipy.sparse.csgraph.connected_components`); unique clips are singleton groups.

Threshold
---------
:data:`DEFAULT_THRESHOLD` was calibrated with :func:`calibrate_threshold` on the demo data
(``benchmarks/bench_duplicates.py`` prints the calibration): the chunk distances of clips
to transformed copies of themselves (time shift, gain, mp3 re-encoding, resampling to
8-48 kHz, :data:`TRANSFORMS`) and the distances of their chunks to the nearest chunk of any
*other* clip; the threshold sits between the 99th percentile of the first and the 1st
percentile of the second.  Calibrate again on your own data if it differs much.

Cost
----
Fingerprinting is linear in the audio length (decoding dominates; parallel over files with
joblib).  The search compares every query chunk with every indexed chunk (brute force, a
matrix product), so with ``n`` clips it grows up to ``n**2``; ``index_step`` > 1 indexes
every ``index_step``-th frame only (approximate: the shift tolerance grows to
``index_step`` frames), dividing the index by it.  Memory: the index holds float16
descriptors, about 32 kB per second of active audio (~0.7 GB for 5800 clips of 3.7 s).
``benchmarks/bench_duplicates.py`` prints measured times for the demo set and how they grow.

Limitations
-----------
Clips shorter than one chunk (1 s) are zero-padded to it and compared as a whole, so they
are matched only without a time shift.  Silent clips have no active chunk and are never
merged.  Unreadable files are reported in :attr:`DuplicateReport.failures` and kept alone.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import librosa
import numpy as np
import pandas as pd
import soundfile as sf
from joblib import Parallel, delayed
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors
from tqdm.auto import tqdm

from .._console import interactive
from ..errors import AudioError, ConfigError, DataError, EmoUtilsWarning
from ..fileio import write_csv, write_json

if TYPE_CHECKING:
    from ..config import Config
    from .competition import Competition

__all__ = [
    "DEFAULT_THRESHOLD",
    "TRANSFORMS",
    "Calibration",
    "DuplicateReport",
    "FingerprintSettings",
    "calibrate_threshold",
    "chunk_descriptors",
    "describe_groups",
    "duplicate_groups_for",
    "find_duplicates",
]

#: Bump when fingerprints or matching change, so cached group files are recomputed.
ALGORITHM_VERSION = 1

#: Chunk distance below which two chunks count as the same audio (see the module docstring).
DEFAULT_THRESHOLD = 0.25


@dataclass(frozen=True)
class FingerprintSettings:
    """Parameters of the chunk fingerprints (times in seconds, converted at ``sample_rate``).

    Attributes
    ----------
    sample_rate : int
        Every clip is decoded and resampled to this rate (Hz).
    hop_seconds, n_fft_seconds : float
        Spectrogram hop and window.
    n_mels, fmin, fmax : int, float, float
        Mel bands and their frequency range (kept below 4 kHz: robust to 8 kHz copies).
    floor_db : float
        Dynamic range kept below the clip's peak.
    chunk_seconds, sub_seconds : float
        Length of a chunk and of the sub-blocks it is averaged over.
    query_seconds : float
        Step between query chunks.
    active_db : float
        Chunks whose energy is more than this below the clip's loudest chunk are ignored.
    offset_tolerance_seconds : float
        Largest disagreement between the offsets of matching chunks of one pair.
    min_fraction, min_matches : float, int
        A clip matches another when at least ``max(min_matches, min_fraction * n_queries)``
        of its query chunks match at one offset (capped at ``n_queries``).
    max_duration : float
        Seconds of each clip fingerprinted (longer clips are cut).
    """

    sample_rate: int = 16000
    hop_seconds: float = 0.02
    n_fft_seconds: float = 0.064
    n_mels: int = 32
    fmin: float = 80.0
    fmax: float = 3600.0
    floor_db: float = 60.0
    chunk_seconds: float = 1.0
    sub_seconds: float = 0.1
    query_seconds: float = 0.5
    active_db: float = 30.0
    offset_tolerance_seconds: float = 0.04
    min_fraction: float = 0.5
    min_matches: int = 2
    max_duration: float = 60.0

    def __post_init__(self) -> None:
        if not 4000 <= self.sample_rate <= 192000:
            raise ConfigError("sample_rate", self.sample_rate, "must be in [4000, 192000] Hz")
        if self.fmax >= self.sample_rate / 2:
            raise ConfigError("fmax", self.fmax, f"must be below Nyquist ({self.sample_rate / 2})")
        if not 0 < self.sub_seconds <= self.chunk_seconds:
            raise ConfigError("sub_seconds", self.sub_seconds, "must be in (0, chunk_seconds]")
        if not 0 < self.min_fraction <= 1:
            raise ConfigError("min_fraction", self.min_fraction, "must be in (0, 1]")

    @property
    def hop_length(self) -> int:
        """Spectrogram hop in samples."""
        return round(self.hop_seconds * self.sample_rate)

    @property
    def n_fft(self) -> int:
        """FFT size in samples: the window length rounded up to a power of two."""
        return 1 << math.ceil(math.log2(self.n_fft_seconds * self.sample_rate))

    @property
    def sub_frames(self) -> int:
        """Frames per sub-block (at least 1)."""
        return max(1, round(self.sub_seconds / self.hop_seconds))

    @property
    def n_sub(self) -> int:
        """Sub-blocks per chunk (at least 1)."""
        return max(1, round(self.chunk_seconds / self.sub_seconds))

    @property
    def chunk_frames(self) -> int:
        """Frames per chunk: ``sub_frames * n_sub``."""
        return self.sub_frames * self.n_sub

    @property
    def query_frames(self) -> int:
        """Frames between query chunks (at least 1)."""
        return max(1, round(self.query_seconds / self.hop_seconds))

    @property
    def tolerance_frames(self) -> int:
        """``offset_tolerance_seconds`` in frames (at least 1)."""
        return max(1, round(self.offset_tolerance_seconds / self.hop_seconds))

    def required_matches(self, n_queries: np.ndarray | int) -> np.ndarray:
        """Matching query chunks needed for a clip with ``n_queries`` active query chunks."""
        n = np.asarray(n_queries)
        need = np.maximum(self.min_matches, np.ceil(self.min_fraction * n))
        return np.minimum(need, n).astype(np.int64)


# ---------------------------------------------------------------------------- fingerprints
def chunk_descriptors(
    y: np.ndarray, *, settings: FingerprintSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors of the one-second chunks starting at every frame of a clip.

    Parameters
    ----------
    y : numpy.ndarray, shape (n_samples,)
        Mono audio at ``settings.sample_rate``.  Clips shorter than one chunk are
        zero-padded to it (they then have a single chunk).
    settings : FingerprintSettings
        Fingerprint parameters.

    Returns
    -------
    descriptors : numpy.ndarray of float32, shape (n_chunks, n_mels * n_sub)
        Chunk ``t`` covers frames ``t .. t + chunk_frames - 1``; zero-mean, unit length.
    active : numpy.ndarray of bool, shape (n_chunks,)
        Chunks loud enough to be compared (see ``settings.active_db``).
    """
    s = settings
    y = np.asarray(y, dtype=np.float32)
    min_len = (s.chunk_frames - 1) * s.hop_length + 1
    if len(y) < min_len:
        y = np.pad(y, (0, min_len - len(y)))
    power = librosa.feature.melspectrogram(
        y=y,
        sr=s.sample_rate,
        n_fft=s.n_fft,
        hop_length=s.hop_length,
        n_mels=s.n_mels,
        fmin=s.fmin,
        fmax=s.fmax,
        power=2.0,
    )
    n_frames = power.shape[1]
    n_chunks = n_frames - s.chunk_frames + 1
    dim = s.n_mels * s.n_sub
    if not np.any(power > 0):
        return np.zeros((n_chunks, dim), np.float32), np.zeros(n_chunks, bool)
    db = librosa.power_to_db(power, ref=np.max, amin=1e-10, top_db=s.floor_db)  # (M, T)

    # Mean over every window of sub_frames frames (cumulative sums), then gather sub-blocks.
    w = s.sub_frames
    csum = np.concatenate([np.zeros((s.n_mels, 1)), np.cumsum(db, axis=1)], axis=1)
    sub = ((csum[:, w:] - csum[:, :-w]) / w).T  # (T - w + 1, M)
    starts = np.arange(n_chunks)[:, None] + w * np.arange(s.n_sub)[None, :]
    desc = sub[starts].reshape(n_chunks, dim)  # (n_chunks, n_sub * M), sub-block major
    desc -= desc.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(desc, axis=1, keepdims=True)
    desc /= np.maximum(norm, 1e-9)

    frame_energy = power.mean(axis=0)
    esum = np.concatenate([[0.0], np.cumsum(frame_energy)])
    chunk_energy = (esum[s.chunk_frames :] - esum[:n_chunks]) / s.chunk_frames
    chunk_db = 10 * np.log10(np.maximum(chunk_energy, 1e-20))
    active = (chunk_db >= chunk_db.max() - s.active_db) & (norm[:, 0] > 1e-6)
    return desc.astype(np.float32), active


def _query_starts(n_chunks: int, s: FingerprintSettings) -> np.ndarray:
    """Start frames of the query chunks of a clip with ``n_chunks`` chunk positions."""
    q = np.arange(0, n_chunks, s.query_frames)
    if n_chunks - 1 - q[-1] >= s.query_frames // 2:
        q = np.append(q, n_chunks - 1)  # the end of the clip is queried too
    return q


def _decode(path: str, settings: FingerprintSettings) -> np.ndarray:
    """Mono float32 audio at ``settings.sample_rate`` (at most ``max_duration`` seconds)."""
    from ..audio import load_audio

    return load_audio(path, sample_rate=settings.sample_rate, max_duration=settings.max_duration)


@dataclass
class _Fingerprint:
    """What the search needs of one clip (float16 descriptors: half the memory)."""

    index: np.ndarray  # (n_index, dim) float16, active chunks every index_step frames
    index_starts: np.ndarray  # (n_index,) start frame of each
    queries: np.ndarray  # (n_queries, dim) float16, active query chunks
    query_starts: np.ndarray  # (n_queries,)


def _fingerprint_file(
    path: str, settings: FingerprintSettings, index_step: int
) -> _Fingerprint | str:
    """Index and query descriptors of one file, or the reason it cannot be read."""
    try:
        y = _decode(path, settings)
    except AudioError as exc:
        return exc.reason
    desc, active = chunk_descriptors(y, settings=settings)
    rows = np.flatnonzero(active[::index_step]) * index_step
    q = _query_starts(len(desc), settings)
    q = q[active[q]]
    return _Fingerprint(
        desc[rows].astype(np.float16),
        rows.astype(np.int32),
        desc[q].astype(np.float16),
        q.astype(np.int32),
    )


def _fingerprint_all(
    paths: Sequence[str],
    settings: FingerprintSettings,
    *,
    index_step: int,
    n_jobs: int,
    progress: bool,
) -> list[_Fingerprint | str]:
    jobs = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_fingerprint_file)(p, settings, index_step) for p in paths
    )
    bars = progress and interactive()
    out = list(tqdm(jobs, total=len(paths), desc="fingerprints", unit="clip", disable=not bars))
    if progress and not bars:
        print(f"fingerprints: {len(paths)} clips", flush=True)
    return out


# ---------------------------------------------------------------------------- matching
@dataclass
class DuplicateReport:
    """What :func:`find_duplicates` found.

    Attributes
    ----------
    paths : list of str
        The input files, in input order.
    pairs : pandas.DataFrame
        One row per duplicate pair: ``file_a``, ``file_b`` (input paths, ``a`` before ``b``
        in input order), ``index_a``, ``index_b``, ``distance`` (median chunk distance at the
        matching offset, ``[0, 2]``), ``offset_seconds`` (where ``a`` starts in ``b``) and
        ``matched_chunks``; sorted by distance.
    groups : numpy.ndarray of int, shape (n_files,)
        Group id per input file; duplicates share an id, unique clips are alone in theirs.
        Ids are numbered in order of first appearance.
    threshold : float
        The chunk distance threshold used.
    failures : list of (str, str)
        Files that could not be decoded and why (each is its own group).
    seconds : dict of str to float
        Wall-clock time of the ``fingerprint`` and ``search`` stages.
    n_chunks : int
        Indexed chunks.
    """

    paths: list[str]
    pairs: pd.DataFrame
    groups: np.ndarray
    threshold: float
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    n_chunks: int = 0

    @property
    def n_groups(self) -> int:
        """Number of groups (unique recordings)."""
        return describe_groups(self.groups)["n_groups"]

    @property
    def n_merged(self) -> int:
        """Clips merged into another clip's group: ``n_files - n_groups``."""
        return describe_groups(self.groups)["n_merged"]

    @property
    def n_duplicate_groups(self) -> int:
        """Groups with more than one clip."""
        return describe_groups(self.groups)["n_duplicate_groups"]

    def group_table(self) -> pd.DataFrame:
        """``path, group, group_size`` of every input file."""
        sizes = pd.Series(self.groups).map(pd.Series(self.groups).value_counts())
        return pd.DataFrame(
            {"path": self.paths, "group": self.groups, "group_size": sizes.to_numpy()}
        )

    def summary(self) -> str:
        """One line: files, pairs, groups merged, timing."""
        secs = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        return (
            f"{len(self.paths)} clips: {len(self.pairs)} duplicate pair(s), "
            f"{self.n_duplicate_groups} group(s) of duplicates, {self.n_merged} clip(s) merged, "
            f"{len(self.failures)} unreadable; threshold {self.threshold:.3f}; {secs}"
        )


def _label_groups(n: int, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(len(ia)), (ia, ib)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # Renumber in order of first appearance so ids are stable and readable.
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(np.argsort(first))
    return order[labels].astype(np.int64)


def _best_offset(
    query: np.ndarray, offset: np.ndarray, dist: np.ndarray, tol: int
) -> tuple[int, float, float]:
    """The time offset matched by the most distinct query chunks of one directed pair.

    Returns ``(matched query chunks, offset in frames, median distance)``; ties go to the
    smaller median distance.  The offset is the median of the matched chunks' own offsets.
    """
    best: tuple[int, float, float] = (0, 0.0, np.inf)
    for cand in np.unique(offset):
        near = np.abs(offset - cand) <= tol
        n = len(np.unique(query[near]))
        if n < best[0]:
            continue
        # One match per query chunk: its closest one near this offset.
        sub = pd.DataFrame({"q": query[near], "o": offset[near], "d": dist[near]})
        closest = sub.loc[sub.groupby("q")["d"].idxmin()]
        med = float(closest["d"].median())
        if n > best[0] or med < best[2]:
            best = (n, float(closest["o"].median()), med)
    return best


def _radius_hits(
    Q: np.ndarray,
    X: np.ndarray,
    *,
    threshold: float,
    search_dims: int | None,
    n_jobs: int,
    batch_size: int,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(query rows, index rows, distances)`` of every pair within ``threshold``, per batch.

    With ``search_dims``, the radius search runs on a PCA projection of the descriptors and
    its candidates are checked with the full descriptors.  A projection never increases a
    distance, so this finds exactly what the full search finds, only faster.
    """
    Qs, Xs = Q, X
    if search_dims is not None and search_dims < X.shape[1] and len(X) > search_dims:
        rng = np.random.default_rng(0)
        sample = X[rng.choice(len(X), size=min(len(X), 20000), replace=False)]
        pca = PCA(n_components=search_dims, svd_solver="covariance_eigh")
        pca.fit(sample.astype(np.float32))
        Qs, Xs = (
            np.concatenate(
                [
                    pca.transform(a[lo : lo + 65536].astype(np.float32)).astype(np.float32)
                    for lo in range(0, len(a), 65536)
                ]
            )
            for a in (Q, X)
        )
    nn = NearestNeighbors(radius=threshold, algorithm="brute", n_jobs=n_jobs).fit(Xs)
    for lo in range(0, len(Q), batch_size):
        ind = nn.radius_neighbors(Qs[lo : lo + batch_size], return_distance=False)
        counts = np.fromiter((len(i) for i in ind), dtype=np.int64, count=len(ind))
        if not counts.sum():
            continue
        qi = np.repeat(np.arange(lo, lo + len(ind)), counts)
        xi = np.concatenate(ind).astype(np.int64)
        dist = np.linalg.norm(Q[qi].astype(np.float32) - X[xi].astype(np.float32), axis=1)
        keep = dist <= threshold
        yield qi[keep], xi[keep], dist[keep]


def _match(
    fingerprints: list[_Fingerprint],
    settings: FingerprintSettings,
    *,
    threshold: float,
    index_step: int,
    search_dims: int | None,
    n_jobs: int,
    batch_size: int = 4096,
) -> tuple[pd.DataFrame, int]:
    """Directed candidate pairs ``(a, b, matched, offset, distance, needed)``.

    ``fingerprints`` is emptied on the way (its arrays are stacked into one index).
    """
    s = settings
    columns = ["a", "b", "matched", "offset", "distance", "needed"]
    empty = pd.DataFrame(columns=columns)
    n_clips = len(fingerprints)
    n_index = np.array([len(f.index_starts) for f in fingerprints], dtype=np.int64)
    n_query = np.array([len(f.query_starts) for f in fingerprints], dtype=np.int64)
    if not n_index.sum() or not n_query.sum():
        return empty, 0
    I_clip = np.repeat(np.arange(n_clips), n_index)
    Q_clip = np.repeat(np.arange(n_clips), n_query)
    I_start = np.concatenate([f.index_starts for f in fingerprints]).astype(np.int64)
    Q_start = np.concatenate([f.query_starts for f in fingerprints]).astype(np.int64)
    Q = np.concatenate([f.queries for f in fingerprints])
    X = np.concatenate([f.index for f in fingerprints])
    fingerprints.clear()  # the per-clip copies are no longer needed

    parts = []
    for qi, xi, dist in _radius_hits(
        Q, X, threshold=threshold, search_dims=search_dims, n_jobs=n_jobs, batch_size=batch_size
    ):
        other = I_clip[xi] != Q_clip[qi]  # a clip always matches itself
        parts.append(
            pd.DataFrame(
                {
                    "a": Q_clip[qi[other]],
                    "b": I_clip[xi[other]],
                    "query": qi[other],
                    "offset": I_start[xi[other]] - Q_start[qi[other]],
                    "distance": dist[other],
                }
            )
        )
    if not parts:
        return empty, len(X)
    hits = pd.concat(parts, ignore_index=True)
    rows = []
    tol = max(s.tolerance_frames, index_step)
    for (a, b), grp in hits.groupby(["a", "b"], sort=True):
        need = int(s.required_matches(n_query[a]))
        if grp["query"].nunique() < need:
            continue
        matched, offset, med = _best_offset(
            grp["query"].to_numpy(), grp["offset"].to_numpy(), grp["distance"].to_numpy(), tol
        )
        rows.append((int(a), int(b), matched, offset, med, need))
    return pd.DataFrame(rows, columns=columns), len(X)


def find_duplicates(
    paths: Sequence[str | os.PathLike],
    *,
    sample_rate: int = 16000,
    threshold: float | None = None,
    index_step: int = 1,
    search_dims: int | None = 32,
    settings: FingerprintSettings | None = None,
    n_jobs: int = -1,
    progress: bool = True,
) -> DuplicateReport:
    """Find clips that are the same recording up to shift, gain, re-encoding or resampling.

    Parameters
    ----------
    paths : sequence of path-like
        Audio files (any format soundfile reads).
    sample_rate : int, default 16000
        Rate every clip is resampled to before fingerprinting.
    threshold : float, optional
        Chunk distance threshold in ``[0, 2]``; default :data:`DEFAULT_THRESHOLD` (see
        :func:`calibrate_threshold`).
    index_step : int, default 1
        Index every ``index_step``-th chunk start only: the search gets that many times
        faster for large sets, at the price of a coarser shift alignment.
    search_dims : int or None, default 32
        Run the radius search on a PCA projection with this many dimensions and check its
        candidates with the full descriptors: same result (a projection never increases a
        distance), several times faster.  ``None`` searches the full descriptors.
    settings : FingerprintSettings, optional
        Fingerprint and matching parameters (its ``sample_rate`` is replaced by
        ``sample_rate``).
    n_jobs : int, default -1
        joblib workers for decoding and fingerprinting, and for the neighbour search.
    progress : bool, default True
        Show a tqdm progress bar while fingerprinting.

    Returns
    -------
    DuplicateReport
        ``.pairs`` (``file_a, file_b, distance, ...``), ``.groups``, ``.n_merged``.

    Raises
    ------
    ConfigError
        ``threshold`` outside ``(0, 2]`` or ``index_step`` < 1.
    """
    threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    if not 0 < threshold <= 2:
        raise ConfigError("threshold", threshold, "must be a chunk distance in (0, 2]")
    if int(index_step) < 1:
        raise ConfigError("index_step", index_step, "must be an integer >= 1")
    base = settings or FingerprintSettings()
    settings = FingerprintSettings(**{**_settings_dict(base), "sample_rate": int(sample_rate)})
    paths = [os.fspath(p) for p in paths]

    start = time.perf_counter()
    results = _fingerprint_all(
        paths, settings, index_step=int(index_step), n_jobs=n_jobs, progress=progress
    )
    t_fp = time.perf_counter() - start
    failures = [(p, r) for p, r in zip(paths, results, strict=True) if isinstance(r, str)]
    dim = settings.n_mels * settings.n_sub
    nothing = _Fingerprint(
        np.zeros((0, dim), np.float16),
        np.zeros(0, np.int32),
        np.zeros((0, dim), np.float16),
        np.zeros(0, np.int32),
    )
    fingerprints = [nothing if isinstance(r, str) else r for r in results]
    del results

    start = time.perf_counter()
    directed, n_chunks = _match(
        fingerprints,
        settings,
        threshold=threshold,
        index_step=int(index_step),
        search_dims=search_dims,
        n_jobs=n_jobs,
    )
    pairs = _undirected_pairs(directed, paths, settings)
    groups = _label_groups(
        len(paths), pairs["index_a"].to_numpy(np.int64), pairs["index_b"].to_numpy(np.int64)
    )
    t_search = time.perf_counter() - start
    return DuplicateReport(
        paths=paths,
        pairs=pairs,
        groups=groups,
        threshold=threshold,
        failures=failures,
        seconds={"fingerprint": t_fp, "search": t_search},
        n_chunks=n_chunks,
    )


def _settings_dict(settings: FingerprintSettings) -> dict[str, Any]:
    return {f: getattr(settings, f) for f in settings.__dataclass_fields__}


def _undirected_pairs(
    directed: pd.DataFrame, paths: Sequence[str], settings: FingerprintSettings
) -> pd.DataFrame:
    """Keep directions that pass the match rule; merge ``a->b`` and ``b->a``."""
    columns = [
        "file_a",
        "file_b",
        "distance",
        "offset_seconds",
        "matched_chunks",
        "index_a",
        "index_b",
    ]
    ok = directed[directed["matched"] >= directed["needed"]] if len(directed) else directed
    if not len(ok):
        return pd.DataFrame(
            {
                c: pd.Series(dtype=float if c in ("distance", "offset_seconds") else object)
                for c in columns
            }
        ).astype({"matched_chunks": "int64", "index_a": "int64", "index_b": "int64"})
    lo = np.minimum(ok["a"], ok["b"]).to_numpy()
    hi = np.maximum(ok["a"], ok["b"]).to_numpy()
    # Offset of a's start in b: the query clip is "a" in the directed table.
    sign = np.where(ok["a"].to_numpy() == lo, 1, -1)
    table = pd.DataFrame(
        {
            "index_a": lo,
            "index_b": hi,
            "distance": ok["distance"].to_numpy(float),
            "offset_seconds": sign * ok["offset"].to_numpy() * settings.hop_seconds,
            "matched_chunks": ok["matched"].to_numpy(np.int64),
        }
    )
    table = table.sort_values(["index_a", "index_b", "distance"]).drop_duplicates(
        ["index_a", "index_b"]
    )
    table.insert(0, "file_a", [paths[i] for i in table["index_a"]])
    table.insert(1, "file_b", [paths[i] for i in table["index_b"]])
    table = table.sort_values(["distance", "index_a", "index_b"]).reset_index(drop=True)
    return table[columns]


# ---------------------------------------------------------------------------- calibration
# A transform returns the copy and the shift in samples: copy[n + shift] ~ original[n].
Transform = Callable[[np.ndarray, int, np.random.Generator], tuple[np.ndarray, int]]


def _shift(y: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Prepend 0.1-0.9 s of quiet noise, or cut 0.1-0.5 s from the start."""
    if rng.random() < 0.5 and len(y) > sr:
        cut = int(rng.uniform(0.1, 0.5) * sr)
        return y[cut:], -cut
    n = int(rng.uniform(0.1, 0.9) * sr)
    pad = rng.normal(0, 1e-4, n).astype(np.float32)
    return np.concatenate([pad, y]), n


def _gain(y: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Scale by -20 to +6 dB (clipped to [-1, 1])."""
    return np.clip(y * 10 ** (rng.uniform(-20, 6) / 20), -1, 1).astype(np.float32), 0


def _mp3(y: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Encode as mp3 and decode again (libsndfile's LAME encoder; it removes the delay)."""
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="MP3", subtype="MPEG_LAYER_III")
    buf.seek(0)
    out, _ = sf.read(buf, dtype="float32")
    return out, 0


def _resample(y: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Resample to 8, 11.025, 22.05, 44.1 or 48 kHz and back."""
    target = int(rng.choice([8000, 11025, 22050, 44100, 48000]))
    down = librosa.resample(y, orig_sr=sr, target_sr=target, res_type="soxr_hq")
    return librosa.resample(down, orig_sr=target, target_sr=sr, res_type="soxr_hq"), 0


def _combined(y: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Shift, gain, resampling and mp3 at once."""
    total = 0
    for fn in (_shift, _gain, _resample, _mp3):
        y, shift = fn(y, sr, rng)
        total += shift
    return y, total


#: Name -> ``fn(y, sample_rate, rng) -> (copy, shift)`` with ``copy[n + shift] ~ y[n]``: the
#: transformations a duplicate may have undergone (used by :func:`calibrate_threshold`).
TRANSFORMS: dict[str, Transform] = {
    "shift": _shift,
    "gain": _gain,
    "mp3": _mp3,
    "resample": _resample,
    "combined": _combined,
}


@dataclass
class Calibration:
    """Chunk distances of transformed copies and of distinct clips, and the threshold between.

    Attributes
    ----------
    threshold : float
        Midpoint between ``positive_q99`` and ``negative_q01`` (or ``positive_q99`` when the
        distributions overlap, with a warning).
    positive : pandas.DataFrame
        ``transform, distance``: each query chunk of a transformed copy to its nearest chunk
        in the original.
    negative : numpy.ndarray
        Each query chunk of a clip to the nearest chunk of any other clip.
    positive_q99, negative_q01 : float
        The quantiles the threshold is placed between.
    """

    threshold: float
    positive: pd.DataFrame
    negative: np.ndarray
    positive_q99: float
    negative_q01: float

    def summary(self) -> str:
        """One line for a log: both quantiles, each transform's q99 and the threshold."""
        per = self.positive.groupby("transform")["distance"].quantile(0.99)
        parts = ", ".join(f"{k} {v:.3f}" for k, v in per.items())
        return (
            f"copies q99 {self.positive_q99:.3f} ({parts}); distinct clips q01 "
            f"{self.negative_q01:.3f} (min {self.negative.min():.3f}); "
            f"threshold {self.threshold:.3f}"
        )


def _queries(d: np.ndarray, act: np.ndarray, s: FingerprintSettings) -> np.ndarray:
    q = _query_starts(len(d), s)
    return d[q[act[q]]]


def calibrate_threshold(
    paths: Sequence[str | os.PathLike],
    *,
    sample_rate: int = 16000,
    n_clips: int = 60,
    transforms: Mapping[str, Callable[..., np.ndarray]] | None = None,
    seed: int = 0,
    settings: FingerprintSettings | None = None,
) -> Calibration:
    """Place the chunk distance threshold between copies and distinct clips.

    For up to ``n_clips`` clips drawn from ``paths`` (which should hold no duplicates), every
    transformation in ``transforms`` (default :data:`TRANSFORMS`) makes a copy; the
    distance of each query chunk of the copy to the nearest chunk of its original is a
    *positive* distance, the distance of each query chunk of an original to the nearest
    chunk of any other clip a *negative* one.

    Returns
    -------
    Calibration
        The threshold and both distributions.

    Raises
    ------
    DataError
        Fewer than 2 readable clips.
    """
    base = settings or FingerprintSettings()
    s = FingerprintSettings(**{**_settings_dict(base), "sample_rate": int(sample_rate)})
    transforms = dict(TRANSFORMS if transforms is None else transforms)
    rng = np.random.default_rng(seed)
    paths = [os.fspath(p) for p in paths]
    chosen = rng.choice(len(paths), size=min(n_clips, len(paths)), replace=False)
    signals = []
    for i in sorted(chosen):
        try:
            signals.append(_decode(paths[i], s))
        except AudioError:
            continue
    if len(signals) < 2:
        raise DataError(f"calibrate_threshold: need at least 2 readable clips, got {len(signals)}")
    fps = [chunk_descriptors(y, settings=s) for y in signals]

    positive = []
    tol = s.tolerance_frames
    for k, (y, (d, _)) in enumerate(zip(signals, fps, strict=True)):
        for name, fn in transforms.items():
            copy, shift = fn(y, s.sample_rate, np.random.default_rng([seed, k, len(positive)]))
            dq, aq = chunk_descriptors(copy, settings=s)
            starts = _query_starts(len(dq), s)
            for q in starts[aq[starts]]:
                # The original chunk that holds the same audio, if the copy's chunk is whole.
                p = round(q - shift / s.hop_length)
                if 0 <= p < len(d) and (len(y) >= (s.chunk_frames - 1) * s.hop_length + 1):
                    near = d[max(0, p - tol) : p + tol + 1]
                    dist = np.linalg.norm(near - dq[q], axis=1).min()
                    positive.append((name, float(dist)))
    negative = []
    for k, (d, act) in enumerate(fps):
        others = [od[oa] for j, (od, oa) in enumerate(fps) if j != k and oa.any()]
        q = _queries(d, act, s)
        if others and len(q):
            dist, _ = NearestNeighbors(n_neighbors=1).fit(np.concatenate(others)).kneighbors(q)
            negative.extend(dist[:, 0].tolist())
    pos = pd.DataFrame(positive, columns=["transform", "distance"])
    neg = np.asarray(negative)
    q99 = float(np.quantile(pos["distance"], 0.99))
    q01 = float(np.quantile(neg, 0.01))
    if q99 < q01:
        threshold = 0.5 * (q99 + q01)
    else:
        threshold = q99
        warnings.warn(
            f"calibrate_threshold: copies (q99 {q99:.3f}) and distinct clips (q01 {q01:.3f}) "
            "overlap; the threshold favours finding copies",
            EmoUtilsWarning,
            stacklevel=2,
        )
    return Calibration(threshold, pos, neg, q99, q01)


def describe_groups(groups: Sequence[object]) -> dict[str, int]:
    """Counts for reports: clips, groups, groups with duplicates, clips merged.

    Parameters
    ----------
    groups : sequence
        Group of every clip (e.g. :attr:`DuplicateReport.groups` or the ``group`` column of
        ``folds.csv``).

    Returns
    -------
    dict
        ``n_clips``, ``n_groups``, ``n_duplicate_groups`` (groups of 2 or more clips) and
        ``n_merged`` (``n_clips - n_groups``: clips that joined another clip's group).
    """
    counts = pd.Series(list(groups), dtype=object).value_counts()
    n_clips = int(counts.sum())
    return {
        "n_clips": n_clips,
        "n_groups": len(counts),
        "n_duplicate_groups": int((counts > 1).sum()),
        "n_merged": n_clips - len(counts),
    }


# ---------------------------------------------------------------------------- competition
def _file_key(paths: Sequence[str]) -> list[tuple[str, int, int]]:
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((os.path.basename(p), st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((os.path.basename(p), -1, -1))
    return out


def duplicate_groups_for(
    competition: Competition,
    config: Config | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    threshold: float | None = None,
    n_jobs: int = -1,
    progress: bool = True,
) -> np.ndarray:
    """Duplicate group of every training row of a competition, cached in a file.

    The result is stored as ``CACHE/duplicates/groups-<key>.csv`` (``filename, group``)
    next to ``pairs-<key>.csv`` (the pairs with distances) and ``report-<key>.json``; the
    key hashes the file names, sizes and modification times, the fingerprint settings and
    the threshold, so a changed file or setting recomputes it.

    Parameters
    ----------
    competition : Competition
        The competition (its ``train`` rows are grouped, in order).
    config : Config, optional
        The run's config (reserved for duplicate settings; the fingerprint does not depend
        on the feature settings).
    cache_dir : path-like, optional
        Default ``competition.root / ".emo_cache"`` (the feature cache's default).
    threshold : float, optional
        Chunk distance threshold (default :data:`DEFAULT_THRESHOLD`).
    n_jobs, progress
        Passed to :func:`find_duplicates`.

    Returns
    -------
    numpy.ndarray of int, shape (len(competition.train),)
        Group ids; pass them to ``make_folds(..., groups=...)``.
    """
    del config  # the fingerprint is independent of the feature/training settings
    settings = FingerprintSettings()
    threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    paths = [str(p) for p in competition.train["path"]]
    filenames = [str(f) for f in competition.train["filename"]]
    payload = json.dumps(
        {
            "version": ALGORITHM_VERSION,
            "settings": _settings_dict(settings),
            "threshold": threshold,
            "files": [(f, *k[1:]) for f, k in zip(filenames, _file_key(paths), strict=True)],
        },
        sort_keys=True,
    )
    key = hashlib.sha256(payload.encode()).hexdigest()[:16]
    from ..features.store import default_cache_dir

    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir(competition.root)
    folder = folder / "duplicates"
    groups_file = folder / f"groups-{key}.csv"
    if groups_file.is_file():
        cached = pd.read_csv(groups_file, dtype={"filename": str}, keep_default_na=False)
        if cached["filename"].tolist() == filenames:
            return cached["group"].to_numpy(np.int64)
    report = find_duplicates(
        paths,
        sample_rate=settings.sample_rate,
        threshold=threshold,
        n_jobs=n_jobs,
        progress=progress,
    )
    name_of = dict(zip(paths, filenames, strict=True))
    pairs = report.pairs.assign(
        file_a=report.pairs["file_a"].map(name_of), file_b=report.pairs["file_b"].map(name_of)
    )
    write_csv(folder / f"pairs-{key}.csv", pairs.drop(columns=["index_a", "index_b"]))
    write_json(
        folder / f"report-{key}.json",
        {
            "n_clips": len(paths),
            "n_pairs": len(report.pairs),
            "n_groups": report.n_groups,
            "n_duplicate_groups": report.n_duplicate_groups,
            "n_merged": report.n_merged,
            "threshold": threshold,
            "failures": report.failures,
            "seconds": report.seconds,
        },
    )
    write_csv(groups_file, pd.DataFrame({"filename": filenames, "group": report.groups}))
    return report.groups
