"""Generated audio files for tests: good clips in every format, and broken ones.

Every writer takes the destination path first, keyword-only options after it, creates the
parent folder, and returns the path as a :class:`pathlib.Path`.  Good files are written with
:mod:`soundfile` (libsndfile also encodes mp3 and ogg), so they are real files of their
format; broken files are made from real files by cutting bytes, or are built byte by byte
where no library writes such a thing (an mp3 that is only an ID3 tag).

Good files:
    :func:`tone` (array), :func:`write_signal`, :func:`write_tone`, :func:`write_silence`,
    :func:`write_constant`
Broken or unusual files:
    :func:`write_empty`, :func:`write_text_as_audio`, :func:`write_header_only_wav`,
    :func:`write_truncated_wav`, :func:`write_id3_only_mp3`, :func:`write_truncated_mp3`,
    :func:`write_nan_wav`, :func:`write_fake_m4a`, :func:`write_corrupted`,
    :func:`write_long_wav` (long file, optionally with a non-finite tail)
Folders:
    :func:`write_competition` (CSV files of a competition folder)
"""

from __future__ import annotations

import os
import wave
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

__all__ = [
    "BROKEN_WRITERS",
    "tone",
    "write_competition",
    "write_constant",
    "write_corrupted",
    "write_empty",
    "write_fake_m4a",
    "write_header_only_wav",
    "write_id3_only_mp3",
    "write_long_wav",
    "write_nan_wav",
    "write_signal",
    "write_silence",
    "write_text_as_audio",
    "write_tone",
    "write_truncated_mp3",
    "write_truncated_wav",
    "write_with_av",
]


def _prepare(path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def tone(
    *,
    sr: int,
    seconds: float,
    channels: int = 1,
    freq: float = 440.0,
    amplitude: float = 0.5,
    noise: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """A sine (plus optional white noise) as float32 ``(frames, channels)``.

    Channel ``k`` is scaled by ``1 / (k + 1)`` so a stereo file is not two equal channels.
    """
    n = round(sr * seconds)
    t = np.arange(n) / sr
    y = amplitude * np.sin(2 * np.pi * freq * t)
    if noise:
        y = y + noise * np.random.default_rng(seed).standard_normal(n)
    return np.stack([y / (k + 1) for k in range(channels)], axis=1).astype(np.float32)


def write_signal(
    path: str | os.PathLike,
    y: np.ndarray,
    *,
    sr: int,
    subtype: str | None = None,
    format: str | None = None,
) -> Path:
    """Write an array ``(frames,)`` or ``(frames, channels)`` with :func:`soundfile.write`.

    The format follows the extension unless ``format`` is given (``"WAV"``, ``"FLAC"``,
    ``"OGG"``, ``"MP3"``, ...); ``subtype`` e.g. ``"PCM_16"``, ``"FLOAT"``, ``"VORBIS"``.
    """
    path = _prepare(path)
    sf.write(path, y, sr, subtype=subtype, format=format)
    return path


def write_tone(
    path: str | os.PathLike,
    *,
    sr: int = 16000,
    seconds: float = 1.0,
    channels: int = 1,
    freq: float = 440.0,
    amplitude: float = 0.5,
    noise: float = 0.0,
    seed: int = 0,
    subtype: str | None = None,
    format: str | None = None,
) -> Path:
    """Write a :func:`tone` in the format of the extension (wav, flac, ogg, mp3, ...)."""
    y = tone(
        sr=sr,
        seconds=seconds,
        channels=channels,
        freq=freq,
        amplitude=amplitude,
        noise=noise,
        seed=seed,
    )
    return write_signal(path, y, sr=sr, subtype=subtype, format=format)


def write_silence(
    path: str | os.PathLike, *, sr: int = 16000, seconds: float = 1.0, channels: int = 1
) -> Path:
    """Write digital silence (all samples 0)."""
    return write_signal(path, np.zeros((round(sr * seconds), channels), np.float32), sr=sr)


def write_constant(
    path: str | os.PathLike,
    *,
    sr: int = 16000,
    seconds: float = 1.0,
    value: float = 0.5,
    subtype: str = "FLOAT",
) -> Path:
    """Write a constant (DC) signal; float WAV by default so the value is exact."""
    y = np.full(round(sr * seconds), value, dtype=np.float32)
    return write_signal(path, y, sr=sr, subtype=subtype)


# ---------------------------------------------------------------------------- broken files
def write_empty(path: str | os.PathLike) -> Path:
    """A 0-byte file."""
    path = _prepare(path)
    path.write_bytes(b"")
    return path


def write_text_as_audio(
    path: str | os.PathLike, text: str = "filename,emotion\nnot,audio\n" * 20
) -> Path:
    """A text file under an audio name (e.g. a CSV saved as ``clip.wav``)."""
    path = _prepare(path)
    path.write_text(text, encoding="utf-8")
    return path


def write_header_only_wav(path: str | os.PathLike, *, sr: int = 16000, channels: int = 1) -> Path:
    """A valid 44-byte PCM WAV header with an empty data chunk (written by :mod:`wave`)."""
    path = _prepare(path)
    with wave.open(os.fspath(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sr)
    return path


def write_truncated_wav(
    path: str | os.PathLike,
    *,
    sr: int = 16000,
    seconds: float = 2.0,
    keep_fraction: float = 0.25,
    channels: int = 1,
) -> Path:
    """A PCM WAV whose header claims ``seconds`` but whose data stops at ``keep_fraction``."""
    path = write_tone(path, sr=sr, seconds=seconds, channels=channels, subtype="PCM_16")
    data = path.read_bytes()
    header = 44
    keep = header + int((len(data) - header) * keep_fraction) // (2 * channels) * (2 * channels)
    path.write_bytes(data[:keep])
    return path


def _syncsafe(n: int) -> bytes:
    return bytes(((n >> shift) & 0x7F) for shift in (21, 14, 7, 0))


def write_id3_only_mp3(path: str | os.PathLike, *, title: str = "no audio here") -> Path:
    """An ``.mp3`` holding an ID3v2.4 tag (one ``TIT2`` title frame) and no audio frames."""
    path = _prepare(path)
    text = b"\x03" + title.encode("utf-8")  # encoding byte 3 = UTF-8
    frame = b"TIT2" + _syncsafe(len(text)) + b"\x00\x00" + text
    path.write_bytes(b"ID3\x04\x00\x00" + _syncsafe(len(frame)) + frame)
    return path


def write_truncated_mp3(
    path: str | os.PathLike,
    *,
    sr: int = 16000,
    seconds: float = 2.0,
    keep_bytes: int | None = None,
    keep_fraction: float = 0.3,
) -> Path:
    """An mp3 (encoded by libsndfile/LAME) cut after ``keep_bytes`` or ``keep_fraction``.

    A few hundred bytes leave no decodable frame (e.g. ``keep_bytes=200``); a fraction of the
    file leaves a stream that decodes but is shorter than its header claims.
    """
    path = write_tone(path, sr=sr, seconds=seconds, noise=0.05)
    data = path.read_bytes()
    keep = keep_bytes if keep_bytes is not None else int(len(data) * keep_fraction)
    path.write_bytes(data[:keep])
    return path


def write_nan_wav(
    path: str | os.PathLike,
    *,
    sr: int = 16000,
    seconds: float = 1.0,
    bad: Sequence[float] = (np.nan, np.inf),
    at: float = 0.25,
) -> Path:
    """A 32-bit float WAV with non-finite samples (``bad``) from ``at`` seconds on."""
    y = tone(sr=sr, seconds=seconds)[:, 0]
    start = round(at * sr)
    y[start : start + len(bad)] = np.asarray(bad, dtype=np.float32)
    return write_signal(path, y, sr=sr, subtype="FLOAT")


def write_fake_m4a(path: str | os.PathLike) -> Path:
    """The start of an MP4/M4A file (``ftyp`` box), a format libsndfile cannot read."""
    path = _prepare(path)
    ftyp = b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A mp42isom\x00\x00\x00\x00"
    path.write_bytes(ftyp + b"\x00\x00\x00\x08free" + b"\x00" * 64)
    return path


def write_corrupted(path: str | os.PathLike, *, offset: int = -1, n_bytes: int = 16) -> Path:
    """Overwrite ``n_bytes`` of an existing file at ``offset`` (negative: from the middle)."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    start = len(data) // 2 if offset < 0 else offset
    for k in range(start, min(len(data), start + n_bytes)):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def write_long_wav(
    path: str | os.PathLike,
    *,
    sr: int = 8000,
    seconds: float = 600.0,
    finite_seconds: float | None = None,
    freq: float = 440.0,
    block_seconds: float = 30.0,
) -> Path:
    """A long 32-bit float WAV tone, written block by block (little memory).

    With ``finite_seconds`` every sample after that point is NaN: a reader that decodes the
    whole file finds them, one that decodes only the start never does.
    """
    path = _prepare(path)
    total = round(sr * seconds)
    limit = total if finite_seconds is None else round(sr * finite_seconds)
    block = max(1, round(sr * block_seconds))
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="FLOAT") as fh:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (start + np.arange(n)) / sr
            y = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
            y[max(0, limit - start) :] = np.nan
            fh.write(y)
    return path


#: Broken-file writers by case name: ``name -> writer(path) -> Path``, with the file
#: extension each case uses.  Handy for parametrised reliability tests.
BROKEN_WRITERS: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "empty": (".wav", write_empty),
    "text_as_audio": (".wav", write_text_as_audio),
    "header_only_wav": (".wav", write_header_only_wav),
    "id3_only_mp3": (".mp3", write_id3_only_mp3),
    "truncated_mp3": (".mp3", lambda p: write_truncated_mp3(p, keep_bytes=200)),
    "nan_wav": (".wav", write_nan_wav),
}


# ---------------------------------------------------------------------------- folders
def write_competition(
    root: str | os.PathLike,
    *,
    train: Mapping[str, str],
    test: Sequence[str],
    label_column: str = "emotion",
) -> Path:
    """Write ``train.csv`` (``filename,<label_column>``) and ``test.csv`` (``filename``).

    Audio files are written separately (e.g. with :func:`write_tone` under ``root/train``
    and ``root/test``); ``test`` may repeat names.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"filename": list(train), label_column: list(train.values())}).to_csv(
        root / "train.csv", index=False
    )
    pd.DataFrame({"filename": list(test)}).to_csv(root / "test.csv", index=False)
    return root


def write_with_av(
    path: str | os.PathLike,
    y: np.ndarray,
    *,
    sr: int,
    container: str,
    codec: str,
    bit_rate: int | None = None,
) -> Path:
    """Encode ``y`` (``(n,)`` or ``(n, channels)`` float) with PyAV (ffmpeg's encoders).

    E.g. ``container="mp4", codec="aac"`` (M4A), ``"webm", "libopus"``, ``"asf", "wmav2"``.
    Frames of the encoder's frame size are fed with running timestamps, as ffmpeg does.
    """
    import av

    path = _prepare(path)
    y = np.asarray(y, dtype=np.float32)
    y = y[:, None] if y.ndim == 1 else y
    layout = {1: "mono", 2: "stereo"}[y.shape[1]]
    with av.open(os.fspath(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=sr)
        stream.layout = layout
        if bit_rate:
            stream.bit_rate = bit_rate
        size = stream.codec_context.frame_size or 1024
        for i in range(0, len(y), size):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(y[i : i + size].T), format="fltp", layout=layout
            )
            frame.sample_rate, frame.pts = sr, i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path
