"""Decoding audio files into fixed-length mono clips.

Every file is decoded with :mod:`soundfile` (libsndfile; version 1.1 or later also reads
mp3), or, for the formats libsndfile cannot read (:data:`AV_EXTENSIONS`: AAC/M4A,
WebM/Opus, WMA, AMR), with PyAV (:mod:`av`, ffmpeg's libraries), then mixed to mono with :func:`librosa.to_mono`, resampled with :func:`librosa.resample`
(soxr, librosa's default ``soxr_hq`` quality) and returned as float32.  This is exactly the
arithmetic of :func:`librosa.load`, without its deprecated audioread fallback: a file
neither backend can read is an :class:`~emo_utils.errors.AudioError` naming the file and a
human-readable reason, never a silent retry with another decoder.

Only the part of a file that is needed is decoded: :func:`load_audio` seeks to the window
chosen by a crop policy and reads it plus a 0.1 s margin that gives the resampler the same
context it has when the whole file is decoded (the first ``duration`` seconds are then
bit-identical to ``librosa.load(path, sr=sample_rate)[:n]``).

Crop policies (:data:`CROP_POLICIES`, name -> function) choose the window of a long clip:

``"start"`` (the default of ``audio.crop`` and ``audio.train_crop``)
    the first ``duration`` seconds, the cheapest to decode and what the reference solution
    used;
``"center"``
    the middle window;
``"random"``
    a uniformly random window (training augmentation; needs a ``numpy.random.Generator``).

:func:`crop_start` applies a policy; the feature store applies the same function to cached
frames (:meth:`emo_utils.features.store.FeatureStore.window`), and its
:meth:`~emo_utils.features.store.FeatureStore.windows` returns every window of a clip for
test-time averaging.

Pad modes (:data:`PAD_MODES`, ``audio.pad``) fill a clip shorter than ``audio.duration`` up
to one window in :func:`load_clip`:

``"zero"`` (the default)
    zeros after the clip (``librosa.util.fix_length``);
``"tile"``
    the clip repeated until the window is full (repeat-padding).  Pretrained waveform models
    (``hf:`` models, trained on speech or sound without artificial silence) degrade on
    zero-padded short input; tiling keeps them on the kind of signal they were trained on.
    Applies to the images and the waveforms alike.

Bad input
---------
========================================  =====================================================
empty file, text, header-only, ID3-only    :class:`~emo_utils.errors.AudioError` with the reason
or truncated-to-nothing mp3, m4a           (libsndfile's own messages, e.g. "File does not
                                           exist" for a damaged mp3, are replaced by a diagnosis)
NaN or inf samples                         :class:`~emo_utils.errors.AudioError`
zero samples                               :class:`~emo_utils.errors.AudioError`
shorter than ``audio.min_duration``        :class:`~emo_utils.errors.EmoUtilsWarning`, padded
shorter than its header claims             :class:`~emo_utils.errors.EmoUtilsWarning`, decoded part
                                           kept
extension no backend reads                 :func:`check_formats` raises one
                                           :class:`~emo_utils.errors.DataError` listing them all
                                           (training files; test files get a failed row)
text file under an audio name              :class:`~emo_utils.errors.AudioError`; reasons never
                                           quote a file's bytes
========================================  =====================================================
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import soundfile as sf

from .config import AudioConfig
from .errors import AudioError, ConfigError, DataError, EmoUtilsWarning

__all__ = [
    "AV_EXTENSIONS",
    "CROP_POLICIES",
    "PAD_MODES",
    "SUPPORTED_EXTENSIONS",
    "AudioInfo",
    "audio_info",
    "check_formats",
    "crop_start",
    "load_audio",
    "load_clip",
    "pad_clip",
    "readable_extensions",
    "unreadable_formats",
]

#: Seconds decoded beyond each end of the wanted window, so the resampler sees the same
#: context as when the whole file is decoded.
RESAMPLE_MARGIN = 0.1

#: A file is reported as shorter than its header claims when at least this fraction of the
#: claimed frames (and :data:`TRUNCATION_MIN_SECONDS`) is missing; compressed formats only
#: estimate their length, so a few frames of difference are normal.
TRUNCATION_TOLERANCE = 0.01
TRUNCATION_MIN_SECONDS = 0.05

_READ_BLOCK_SECONDS = 1.0

# libsndfile major format -> file extensions it is stored under.
_FORMAT_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "WAV": (".wav", ".wave"),
    "WAVEX": (".wav",),
    "RF64": (".rf64",),
    "W64": (".w64",),
    "FLAC": (".flac",),
    "OGG": (".ogg", ".oga", ".opus"),
    "MP3": (".mp3",),
    "AIFF": (".aif", ".aiff", ".aifc"),
    "AU": (".au", ".snd"),
    "CAF": (".caf",),
}


def _supported_extensions() -> dict[str, str]:
    available = sf.available_formats()
    return {
        ext: fmt for fmt, exts in _FORMAT_EXTENSIONS.items() if fmt in available for ext in exts
    }


#: File extension (lower case, with dot) -> libsndfile format, for this libsndfile build.
#: ``.mp3`` is present only with libsndfile 1.1 or later.
SUPPORTED_EXTENSIONS: dict[str, str] = _supported_extensions()

#: Extensions libsndfile cannot read that are decoded with PyAV (ffmpeg's libraries) when
#: :mod:`av` is installed: AAC/ALAC in MP4, WebM/Matroska (Opus, Vorbis), WMA, AMR.
AV_EXTENSIONS: tuple[str, ...] = tuple(
    ext
    for ext in (".m4a", ".mp4", ".aac", ".webm", ".mka", ".mkv", ".wma", ".asf", ".amr", ".3gp")
    if ext not in SUPPORTED_EXTENSIONS
)

try:
    import av
except ImportError:  # optional: without it, AV_EXTENSIONS are unreadable formats
    av = None


def readable_extensions() -> tuple[str, ...]:
    """Every extension one of the backends reads: libsndfile's, plus PyAV's if installed."""
    return tuple(sorted({*SUPPORTED_EXTENSIONS, *(AV_EXTENSIONS if av is not None else ())}))


def _uses_av(path: str | os.PathLike) -> bool:
    return av is not None and Path(path).suffix.lower() in AV_EXTENSIONS


# ---------------------------------------------------------------------------- crop policies
def _crop_start(*, total: int, size: int, rng: np.random.Generator | None) -> int:
    return 0


def _crop_center(*, total: int, size: int, rng: np.random.Generator | None) -> int:
    return max(0, total - size) // 2


def _crop_random(*, total: int, size: int, rng: np.random.Generator | None) -> int:
    if rng is None:
        raise ValueError("crop policy 'random' needs a numpy.random.Generator (rng=...)")
    return int(rng.integers(0, max(0, total - size) + 1))


#: Crop policy name -> ``f(*, total, size, rng) -> first sample of the window``.
CROP_POLICIES: dict[str, Callable[..., int]] = {
    "start": _crop_start,
    "center": _crop_center,
    "random": _crop_random,
}


def crop_start(
    *, total: int, size: int, policy: str = "start", rng: np.random.Generator | None = None
) -> int:
    """First element of the ``size``-element window of a ``total``-element clip.

    The elements are samples when decoding (:func:`load_audio`) and cached frames in
    :meth:`emo_utils.features.store.FeatureStore.window`: both crop through this function.

    Parameters
    ----------
    total, size : int
        Length of the clip and of the window.  The result is ``0`` when ``total <= size``.
    policy : {"start", "center", "random"}
        A name in :data:`CROP_POLICIES`.
    rng : numpy.random.Generator, optional
        Needed by ``"random"``.

    Returns
    -------
    int
        In ``[0, max(0, total - size)]``.

    Raises
    ------
    ConfigError
        ``policy`` is not in :data:`CROP_POLICIES` (the message names it and the known
        policies).
    ValueError
        ``"random"`` without ``rng``.
    """
    try:
        policy_fn = CROP_POLICIES[policy]
    except KeyError:
        raise ConfigError(
            "audio.crop", policy, f"unknown crop policy; known: {sorted(CROP_POLICIES)}"
        ) from None
    return policy_fn(total=int(total), size=int(size), rng=rng)


# ---------------------------------------------------------------------------- pad modes
def _pad_zero(y: np.ndarray, *, size: int) -> np.ndarray:
    return librosa.util.fix_length(y, size=size)


def _pad_tile(y: np.ndarray, *, size: int) -> np.ndarray:
    return np.tile(y, -(-size // len(y)))[:size]


#: Pad mode name -> ``f(y, *, size) -> y`` of exactly ``size`` samples (``len(y) < size``).
PAD_MODES: dict[str, Callable[..., np.ndarray]] = {
    "zero": _pad_zero,
    "tile": _pad_tile,
}


def pad_clip(y: np.ndarray, *, size: int, mode: str = "zero") -> np.ndarray:
    """``y`` filled up to ``size`` samples by a :data:`PAD_MODES` entry; longer clips unchanged.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        A non-empty clip.
    size : int
        Samples wanted.
    mode : {"zero", "tile"}
        ``"zero"``: zeros after the clip; ``"tile"``: the clip repeated.

    Returns
    -------
    numpy.ndarray, shape (max(n, size),), dtype of ``y``

    Raises
    ------
    ConfigError
        ``mode`` is not in :data:`PAD_MODES`.

    Examples
    --------
    >>> pad_clip(np.array([1.0, 2.0]), size=5, mode="tile").tolist()
    [1.0, 2.0, 1.0, 2.0, 1.0]
    >>> pad_clip(np.array([1.0, 2.0]), size=4).tolist()
    [1.0, 2.0, 0.0, 0.0]
    """
    try:
        pad = PAD_MODES[mode]
    except KeyError:
        raise ConfigError(
            "audio.pad", mode, f"unknown pad mode; known: {sorted(PAD_MODES)}"
        ) from None
    if len(y) >= size:
        return y
    return np.ascontiguousarray(pad(y, size=int(size)), dtype=y.dtype)


# ---------------------------------------------------------------------------- formats
def unreadable_formats(paths: Iterable[str | os.PathLike]) -> dict[str, list[str]]:
    """Files whose extension no backend reads, by extension.

    Parameters
    ----------
    paths : iterable of path-like

    Returns
    -------
    dict
        Lower-case extension (with dot) -> the files with it, in input order; empty when
        every file is readable (files without extension count as readable).
    """
    readable = set(readable_extensions())
    bad: dict[str, list[str]] = {}
    for p in paths:
        ext = Path(p).suffix.lower()
        if ext and ext not in readable:
            bad.setdefault(ext, []).append(os.fspath(p))
    return bad


def check_formats(paths: Iterable[str | os.PathLike]) -> None:
    """Fail before any work starts if some files have a format no backend can read.

    Parameters
    ----------
    paths : iterable of path-like
        Every audio file of the job.  Files without an extension are allowed (libsndfile
        recognises most formats by their content).

    Raises
    ------
    DataError
        Listing every unsupported extension with its count and example files, e.g.
        ``.m4a`` (AAC in MP4, which needs ffmpeg), or ``.mp3`` with libsndfile < 1.1.
    """
    bad = unreadable_formats(paths)
    if not bad:
        return
    parts = [
        f"{ext} ({len(files)} file(s), e.g. {', '.join(files[:3])})"
        for ext, files in sorted(bad.items())
    ]
    raise DataError(
        f"{sum(len(v) for v in bad.values())} audio file(s) in format(s) that libsndfile "
        f"{sf.__libsndfile_version__}{'' if av is None else ' and PyAV'} cannot read: "
        f"{'; '.join(parts)}. Readable extensions: {' '.join(readable_extensions())}. "
        "Convert the files first, e.g. `ffmpeg -i clip.wv clip.flac`."
    )


# ---------------------------------------------------------------------------- diagnosis
def _looks_like_text(head: bytes) -> bool:
    """Whether ``head`` is printable UTF-8 text (the bytes are inspected, never quoted)."""
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3 or exc.reason != "unexpected end of data":
            return False
        text = head[: exc.start].decode("utf-8")  # a character cut at the end of the head
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)


def _id3_end(head: bytes) -> int:
    """Size in bytes of a leading ID3v2 tag (header + body), from its syncsafe length."""
    size = 0
    for b in head[6:10]:
        size = (size << 7) | (b & 0x7F)
    return 10 + size


def _diagnose_id3(head: bytes, size: int, path: Path) -> str | None:
    if not head.startswith(b"ID3"):
        return None
    if size <= _id3_end(head) + 4:
        return "MP3 file holds only an ID3 tag, no audio frames"
    return "MP3 file has an ID3 tag but no decodable audio frames (truncated or damaged)"


def _diagnose_mp4(head: bytes, size: int, path: Path) -> str | None:
    if head[4:8] != b"ftyp":
        return None
    return (
        "MP4/M4A container (AAC or ALAC audio), which libsndfile cannot decode; "
        "convert it to wav or flac first (e.g. with ffmpeg)"
    )


def _diagnose_text(head: bytes, size: int, path: Path) -> str | None:
    # Never quote the text: a CSV row may point at a private file (reasons reach stdout,
    # the cache's failures.csv and the submission's failures file).
    if not _looks_like_text(head):
        return None
    return f"text file, not audio ({size} bytes of text, no audio header)"


def _diagnose_mp3(head: bytes, size: int, path: Path) -> str | None:
    if path.suffix.lower() != ".mp3":
        return None
    return "no decodable MPEG audio frames (truncated or damaged MP3)"


#: Diagnosers tried in order on a file libsndfile refused: ``f(head, size, path) -> reason``.
#: A reason describes the problem and never quotes the file's bytes.
_DIAGNOSERS: tuple[Callable[[bytes, int, Path], str | None], ...] = (
    _diagnose_id3,
    _diagnose_mp4,
    _diagnose_text,
    _diagnose_mp3,
)


def _open_failure(path: Path, size: int, exc: Exception) -> AudioError:
    with open(path, "rb") as fh:
        head = fh.read(512)
    for diagnose in _DIAGNOSERS:
        reason = diagnose(head, size, path)
        if reason is not None:
            return AudioError(path, reason)
    detail = getattr(exc, "error_string", "") or str(exc)
    return AudioError(path, f"not a readable audio file (libsndfile: {detail.strip()})")


# ---------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says.

    Attributes
    ----------
    path : str
    sample_rate : int
        Native rate (Hz).
    frames : int
        Frames the header claims (an estimate for some compressed files).
    channels : int
    format, subtype : str
        libsndfile names, e.g. ``"MP3"``, ``"MPEG_LAYER_III"``.
    """

    path: str
    sample_rate: int
    frames: int
    channels: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        """Claimed duration in seconds."""
        return self.frames / self.sample_rate


def _open(path: str | os.PathLike) -> sf.SoundFile:
    """Open with libsndfile, or raise an :class:`AudioError` with a useful reason."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "file not found" if not path.exists() else "not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    ext = path.suffix.lower()
    if ext and ext not in SUPPORTED_EXTENSIONS:  # PyAV formats go to _open_av instead
        raise AudioError(
            path,
            f"unsupported format {ext!r} (readable: {' '.join(readable_extensions())})",
        )
    try:
        return sf.SoundFile(path)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise _open_failure(path, size, exc) from exc


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Header information of an audio file, without decoding it.

    Raises
    ------
    AudioError
        The file is missing, empty or not readable by libsndfile (or PyAV, for
        :data:`AV_EXTENSIONS`).
    """
    if _uses_av(path):
        with _open_av(path) as (container, stream):
            native, claimed = _av_rate_and_frames(container, stream)
            return AudioInfo(
                os.fspath(path),
                native,
                claimed,
                stream.codec_context.channels,
                container.format.name.upper(),
                stream.codec_context.name.upper(),
            )
    with _open(path) as fh:
        return AudioInfo(
            os.fspath(path), fh.samplerate, fh.frames, fh.channels, fh.format, fh.subtype
        )


# ---------------------------------------------------------------------------- PyAV backend
def _av_detail(exc: Exception) -> str:
    """Ffmpeg's message without the file name or any file bytes."""
    return str(getattr(exc, "strerror", "") or type(exc).__name__).strip()


@contextlib.contextmanager
def _open_av(path: str | os.PathLike) -> Iterator[tuple[Any, Any]]:
    """Open with PyAV; yield ``(container, first audio stream)`` or raise an AudioError."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "file not found" if not path.exists() else "not a regular file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        container = av.open(os.fspath(path), mode="r")
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        with open(path, "rb") as fh:
            head = fh.read(512)
        reason = _diagnose_text(head, path.stat().st_size, path)
        raise AudioError(
            path, reason or f"not a readable audio file (ffmpeg: {_av_detail(exc)})"
        ) from exc
    with container:
        if not container.streams.audio:
            raise AudioError(path, "no audio stream in the container")
        yield container, container.streams.audio[0]


def _av_rate_and_frames(container: Any, stream: Any) -> tuple[int, int]:
    """Native rate and claimed frames (the container's estimate; 0 when unknown)."""
    native = int(stream.codec_context.sample_rate or stream.rate or 0)
    if native <= 0:
        raise AudioError(container.name, "audio stream without a sample rate")
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / av.time_base
    else:
        seconds = 0.0
    return native, max(0, round(seconds * native))


def _av_frames(container: Any, stream: Any) -> Iterator[np.ndarray]:
    """Float32 ``(n, channels)`` blocks of every decoded audio frame, from the start.

    Positions are counted in decoded samples from the first one, which is exact; seeking
    in compressed containers is not (timestamps in milliseconds, decoder pre-roll).
    """
    converter = av.AudioResampler(format="fltp")  # sample format only: rate and layout kept
    for frame in container.decode(stream):
        for converted in converter.resample(frame):
            yield np.ascontiguousarray(converted.to_ndarray().T, dtype=np.float32)


def _read_window_av(
    path: str | os.PathLike,
    *,
    sample_rate: int,
    max_duration: float | None,
    crop: str,
    rng: np.random.Generator | None,
    offset: float | None = None,
) -> _Window:
    """The window (plus resampler margins) of a file PyAV decodes.

    Decoding starts at the first sample and stops after the window: the ``"start"`` window
    (the default) decodes only itself, a later window also what precedes it, because
    seeking in compressed containers is not sample-exact.  A container that does not state
    its length, or a window other than ``"start"``, is first counted by decoding the file
    once (the stated length includes the codec's padding).
    """
    with _open_av(path) as (container, stream):
        native, claimed = _av_rate_and_frames(container, stream)
    if claimed <= 0 or (crop != "start" and offset is None):
        # A window placed from the length needs it exactly: containers may state it with
        # the codec's padding (Opus pre-skip) and decoders may return end padding (AAC
        # without an edit list); the smaller of the stated and the decoded count is the
        # audio (the "start" window stops at the stated length the same way).
        counted = _av_count_frames(path)
        claimed = min(claimed, counted) if claimed > 0 else counted
        if claimed <= 0:
            raise AudioError(path, "no audio samples could be decoded")
    start, lead, want, margin = _window_bounds(
        native=native,
        claimed=claimed,
        sample_rate=sample_rate,
        max_duration=max_duration,
        crop=crop,
        rng=rng,
        offset=offset,
    )
    first, n_read = start - lead, lead + want + margin
    blocks: list[np.ndarray] = []
    got, error = 0, ""
    with _open_av(path) as (container, stream):
        try:
            position = 0
            for block in _av_frames(container, stream):
                lo = max(0, first + got - position)
                position += len(block)
                if lo >= len(block):
                    continue
                part = block[lo : lo + n_read - got]
                blocks.append(part)
                got += len(part)
                if got >= n_read:
                    break
        except av.FFmpegError as exc:
            error = f"ffmpeg: {_av_detail(exc)}"
    if got < n_read and not error:  # the end of the file: now its exact length is known
        claimed = min(claimed, first + got)
    channels = blocks[0].shape[1] if blocks else 1
    frames = np.concatenate(blocks) if blocks else np.zeros((0, channels), np.float32)
    if len(frames) == 0 and error:
        raise AudioError(path, f"decoding failed: {error}")
    return _Window(frames, native, claimed, start, lead, n_read, error)


def _av_count_frames(path: str | os.PathLike) -> int:
    """Frames of a file whose container does not state its length (decodes it all)."""
    total = 0
    with _open_av(path) as (container, stream):
        try:
            for block in _av_frames(container, stream):
                total += len(block)
        except av.FFmpegError:
            pass  # what decoded counts; the window read reports the error
    return total


def _read_frames(fh: sf.SoundFile, path: str | os.PathLike, n: int) -> tuple[np.ndarray, str]:
    """Read up to ``n`` frames as float32 ``(frames, channels)``; salvage a decoding error.

    Returns the frames and, if decoding stopped early with an error, its message.  After an
    error the file is reopened and read again in blocks, keeping what decodes.
    """
    start = fh.tell()
    try:
        return fh.read(frames=n, dtype="float32", always_2d=True), ""
    except (sf.SoundFileError, RuntimeError) as exc:
        first_error = (getattr(exc, "error_string", "") or str(exc)).strip()
    blocks: list[np.ndarray] = []
    remaining = n
    with contextlib.suppress(sf.SoundFileError, RuntimeError), sf.SoundFile(path) as again:
        again.seek(start)
        block = max(1, round(_READ_BLOCK_SECONDS * again.samplerate))
        while remaining > 0:
            part = again.read(frames=min(block, remaining), dtype="float32", always_2d=True)
            if len(part) == 0:
                break
            blocks.append(part)
            remaining -= len(part)
    if not blocks:
        raise AudioError(path, f"decoding failed: {first_error}")
    return np.concatenate(blocks), first_error


def _seek(fh: sf.SoundFile, path: str | os.PathLike, frame: int) -> None:
    try:
        fh.seek(frame)
    except (sf.SoundFileError, RuntimeError) as exc:
        detail = (getattr(exc, "error_string", "") or str(exc)).strip()
        raise AudioError(path, f"cannot seek to frame {frame} ({detail})") from exc


def load_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int,
    max_duration: float | None = None,
    crop: str = "start",
    rng: np.random.Generator | None = None,
    res_type: str = "soxr_hq",
    offset: float | None = None,
) -> np.ndarray:
    """Decode (part of) a file to mono float32 at ``sample_rate``.

    Parameters
    ----------
    path : str or os.PathLike
        wav, flac, ogg, mp3 or any other format of :data:`SUPPORTED_EXTENSIONS`.
    sample_rate : int
        Target rate (Hz).
    max_duration : float, optional
        Seconds to return at most; only that window (plus a :data:`RESAMPLE_MARGIN` margin)
        is decoded.  ``None`` decodes the whole file.
    crop : {"start", "center", "random"}
        Which window of a longer file (:data:`CROP_POLICIES`).
    rng : numpy.random.Generator, optional
        Needed by ``crop="random"``.
    res_type : str
        Resampler of :func:`librosa.resample` (``"soxr_hq"`` is librosa's default).
    offset : float, optional
        Start the window this many seconds into the file instead of where ``crop`` puts it
        (a region of a long recording: only it, plus the resampler margins, is decoded by
        libsndfile; PyAV decodes from the start and keeps only the region).

    Returns
    -------
    numpy.ndarray, shape (n,), float32
        ``n <= round(max_duration * sample_rate)``; equal to the matching samples of
        ``librosa.load(path, sr=sample_rate)`` for ``crop="start"`` (and, up to the
        resampler's float noise, from ``offset`` on).

    Raises
    ------
    AudioError
        Missing, empty, unreadable or damaged file, no samples, NaN/inf samples.

    Warns
    -----
    EmoUtilsWarning
        The file holds fewer frames than its header claims (the decoded part is returned).
    """
    if offset is not None and not (math.isfinite(offset) and offset >= 0):
        raise AudioError(path, f"offset must be a finite number of seconds >= 0, got {offset}")
    read = _read_window_av if _uses_av(path) else _read_window_sf
    window = read(
        path,
        sample_rate=sample_rate,
        max_duration=max_duration,
        crop=crop,
        rng=rng,
        offset=offset,
    )
    if offset is not None and window.start >= window.claimed:  # nothing there to decode
        y = np.zeros(0, dtype=np.float32)
    else:
        y = _finish(
            path, window, sample_rate=sample_rate, max_duration=max_duration, res_type=res_type
        )
    if offset is not None and y.size == 0:
        raise AudioError(
            path,
            f"no audio samples after {offset} s (the file holds "
            f"{window.claimed / window.native:.3f} s)",
        )
    return y


@dataclass
class _Window:
    """Decoded frames of a window plus what :func:`_finish` needs to check and cut them."""

    frames: np.ndarray  # (n, channels) float32 at the native rate
    native: int  # native rate
    claimed: int  # frames the header claims
    start: int  # first frame of the wanted window
    lead: int  # frames decoded before ``start`` (resampler context)
    n_read: int  # frames asked for
    error: str = ""  # decoding error after which the part that decoded was kept
    header_notes: tuple[str, ...] = ()


def _read_window_sf(
    path: str | os.PathLike,
    *,
    sample_rate: int,
    max_duration: float | None,
    crop: str,
    rng: np.random.Generator | None,
    offset: float | None = None,
) -> _Window:
    """The window (plus resampler margins) of a file libsndfile reads."""
    with _open(path) as fh:
        native = fh.samplerate
        claimed = fh.frames
        if claimed <= 0:
            raise AudioError(path, "no audio samples (header only, empty data)")
        start, lead, want, margin = _window_bounds(
            native=native,
            claimed=claimed,
            sample_rate=sample_rate,
            max_duration=max_duration,
            crop=crop,
            rng=rng,
            offset=offset,
        )
        if start - lead:
            _seek(fh, path, start - lead)
        n_read = lead + want + margin
        frames, error = _read_frames(fh, path, n_read)
        # libsndfile logs e.g. "data : 64000 (should be 8000)" for WAV/AIFF data cut short.
        header_notes = [ln.strip() for ln in fh.extra_info.splitlines() if "should be" in ln]
        if len(frames) == 0 and start > 0 and offset is None:  # header over-claims the end
            _seek(fh, path, 0)
            lead, start, n_read = 0, 0, want + margin
            frames, error = _read_frames(fh, path, n_read)
    return _Window(frames, native, claimed, start, lead, n_read, error, tuple(header_notes))


def _window_bounds(
    *,
    native: int,
    claimed: int,
    sample_rate: int,
    max_duration: float | None,
    crop: str,
    rng: np.random.Generator | None,
    offset: float | None = None,
) -> tuple[int, int, int, int]:
    """``(start, lead, want, margin)`` in native frames: the window and its context.

    ``start`` is the window's first frame (``offset`` seconds, or where ``crop`` puts it),
    ``want`` its length; ``lead`` frames before it and ``margin`` after it are decoded too
    when resampling, so the resampler sees the same context as on the whole file.
    """
    if offset is not None:
        start = min(claimed, round(offset * native))
        rest = claimed - start
        want = rest if max_duration is None else min(rest, math.ceil(max_duration * native))
    else:
        want = claimed if max_duration is None else min(claimed, math.ceil(max_duration * native))
        start = crop_start(total=claimed, size=want, policy=crop, rng=rng)
    margin = round(RESAMPLE_MARGIN * native) if native != sample_rate else 0
    # Align the leading margin so it maps to a whole number of output samples.
    step = native // math.gcd(native, sample_rate)
    lead = (min(start, margin) // step) * step
    return start, lead, want, margin


def _finish(
    path: str | os.PathLike,
    window: _Window,
    *,
    sample_rate: int,
    max_duration: float | None,
    res_type: str,
) -> np.ndarray:
    """Check, mix to mono, resample and cut a decoded window (both backends)."""
    frames, native, claimed = window.frames, window.native, window.claimed
    start, lead, n_read = window.start, window.lead, window.n_read
    error, header_notes = window.error, list(window.header_notes)
    resampling = native != sample_rate
    expected = min(n_read, claimed - (start - lead))
    missing = expected - len(frames)
    if len(frames) == 0:
        raise AudioError(path, "no audio samples could be decoded")
    if (
        error
        or header_notes
        or missing > max(TRUNCATION_TOLERANCE * claimed, TRUNCATION_MIN_SECONDS * native)
    ):
        got, header = len(frames) / native, claimed / native
        if header_notes:
            message = (
                f"file is shorter than its header claims (libsndfile: {'; '.join(header_notes)})"
            )
        elif error:
            message = f"decoding stopped with an error ({error}); the header claims {header:.3f} s"
        else:
            message = f"file is shorter than its header claims ({header:.3f} s)"
        warnings.warn(
            f"{os.fspath(path)}: {message}; using the {got:.3f} s that decode",
            EmoUtilsWarning,
            stacklevel=2,
        )
    finite = np.isfinite(frames)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        raise AudioError(
            path,
            f"{int((~finite).sum())} NaN/inf sample(s), first at "
            f"{(start - lead + bad_rows[0]) / native:.3f} s",
        )
    # Channels as contiguous rows: librosa.to_mono then averages row by row (the same sums
    # as on the strided ``frames.T`` that librosa.load passes, about ten times faster).
    y = librosa.to_mono(np.ascontiguousarray(frames.T)) if frames.shape[1] > 1 else frames[:, 0]
    if resampling:
        y = librosa.resample(y, orig_sr=native, target_sr=sample_rate, res_type=res_type)
    skip = lead * sample_rate // native
    if max_duration is not None:
        return np.ascontiguousarray(y[skip : skip + round(max_duration * sample_rate)])
    return np.ascontiguousarray(y[skip:])


def load_clip(
    path: str | os.PathLike,
    *,
    config: AudioConfig,
    crop: str | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Decode the part of a file the feature cache keeps, padded to one window.

    The result covers up to ``config.max_duration`` seconds, chosen by ``crop`` (default
    ``config.crop``), and is padded (``config.pad``: zeros after it, or the clip tiled,
    :data:`PAD_MODES`) to at least ``config.duration`` seconds, so its image has at least one
    full window of frames.  With the default
    ``max_duration == duration`` it is exactly one window (``config.n_samples`` samples).

    Parameters
    ----------
    path : str or os.PathLike
    config : AudioConfig
    crop : {"start", "center", "random"}, optional
    rng : numpy.random.Generator, optional
        Needed by ``crop="random"``.

    Returns
    -------
    numpy.ndarray, shape (n,), float32
        ``config.n_samples <= n <= round(config.max_duration * config.sample_rate)``.

    Raises
    ------
    AudioError
        See :func:`load_audio`.

    Warns
    -----
    EmoUtilsWarning
        Clips shorter than ``config.min_duration`` (padded), and truncated files.
    """
    y = load_audio(
        path,
        sample_rate=config.sample_rate,
        max_duration=config.max_duration,
        crop=config.crop if crop is None else crop,
        rng=rng,
        res_type=config.res_type,
    )
    seconds = len(y) / config.sample_rate
    if seconds < config.min_duration:
        warnings.warn(
            f"{os.fspath(path)}: clip is only {seconds:.3f} s long (audio.min_duration = "
            f"{config.min_duration} s); {config.pad}-padded to {config.duration} s",
            EmoUtilsWarning,
            stacklevel=2,
        )
    return pad_clip(y, size=config.n_samples, mode=config.pad)
