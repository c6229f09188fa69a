"""Long recordings for timelines and event detection, made from a demo competition's clips.

* :func:`make_long_recordings` -- recordings of 1-10 minutes: background noise with the
  held-out clips of a demo competition (:func:`~.synthetic.make_demo_dataset`, its test
  split and ``test_answers.csv``) placed one after another with gaps, and the reference
  event table ``reference.csv`` (``file,onset,offset,label``).  Written block by block.
* :func:`make_detector_competition` -- a two-class competition folder, ``voice`` (the demo's
  training clips) against ``background`` (generated noise), to train the detector of
  detect-then-categorise; the demo's own run is the categoriser.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import soundfile as sf

from ..errors import DataError
from ..fileio import atomic_path, write_csv
from .synthetic import _background

__all__ = ["make_detector_competition", "make_long_recordings"]

#: Standard deviation of the background noise between events (about -50 dBFS).
NOISE_LEVEL = 0.003


def _labelled_clips(demo_dir: Path, split: str) -> pd.DataFrame:
    """``filename,emotion,path`` of a demo split (test labels from ``test_answers.csv``)."""
    table = demo_dir / ("train.csv" if split == "train" else "test_answers.csv")
    if not table.is_file():
        raise DataError(f"{table}: not found; write the demo first (python -m emo_utils demo-data)")
    clips = pd.read_csv(table)
    clips["path"] = [str(demo_dir / split / f) for f in clips["filename"]]
    return clips


def _noise(n: int, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    return (NOISE_LEVEL * _background(n, sample_rate, rng)).astype(np.float32)


def make_long_recordings(
    demo_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    minutes: tuple[float, ...] = (1.0, 2.0, 3.0),
    gap: tuple[float, float] = (1.0, 6.0),
    sample_rate: int = 16000,
    seed: int = 0,
    split: str = "test",
) -> Path:
    """Write long recordings of demo clips in background noise, and their reference events.

    Parameters
    ----------
    demo_dir : path-like
        A demo competition folder (:func:`~.synthetic.make_demo_dataset`).
    out_dir : path-like
        Written: ``long_00.wav``, ``long_01.wav``, ... (16-bit PCM) and ``reference.csv``.
    minutes : tuple of float
        Length of each recording (one recording per entry).
    gap : (float, float)
        Seconds of background noise before each clip, drawn uniformly.
    sample_rate : int
    seed : int
    split : {"test", "train"}
        Which demo clips (the test clips were never trained on).

    Returns
    -------
    pathlib.Path
        ``out_dir / "reference.csv"``: ``file,onset,offset,label`` of every clip placed.
    """
    demo_dir, out = Path(demo_dir), Path(out_dir)
    clips = _labelled_clips(demo_dir, split)
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, length in enumerate(minutes):
        name = f"long_{k:02d}.wav"
        total = round(length * 60 * sample_rate)
        written = 0
        with (
            atomic_path(out / name) as tmp,
            sf.SoundFile(
                tmp, "w", samplerate=sample_rate, channels=1, subtype="PCM_16", format="WAV"
            ) as fh,
        ):
            while written < total:
                pause = round(rng.uniform(*gap) * sample_rate)
                clip = clips.iloc[int(rng.integers(len(clips)))]
                y = librosa.load(clip["path"], sr=sample_rate, mono=True)[0]
                if written + pause + len(y) > total:
                    fh.write(_noise(total - written, rng, sample_rate))
                    written = total
                    break
                fh.write(_noise(pause, rng, sample_rate))
                onset = written + pause
                fh.write(np.clip(y + _noise(len(y), rng, sample_rate), -1, 1))
                written = onset + len(y)
                rows.append((name, onset / sample_rate, written / sample_rate, clip["emotion"]))
    reference = out / "reference.csv"
    write_csv(reference, pd.DataFrame(rows, columns=["file", "onset", "offset", "label"]))
    return reference


def make_detector_competition(
    demo_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    n_background: int = 120,
    seconds: tuple[float, float] = (2.0, 8.0),
    sample_rate: int = 16000,
    seed: int = 0,
) -> Path:
    """A competition folder of ``voice`` (the demo's training clips) and ``background``.

    Background clips are the recordings' noise (:data:`NOISE_LEVEL`) at random colours and
    lengths; the test split holds a few of each.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    demo_dir, out = Path(demo_dir), Path(out_dir)
    clips = _labelled_clips(demo_dir, "train")
    rng = np.random.default_rng(seed)
    rows = []
    for f, path in zip(clips["filename"], clips["path"], strict=True):
        target = out / "train" / f
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        rows.append((f, "voice"))
    test_rows = []
    for j in range(n_background + 10):
        name = f"background_{j:03d}.wav"
        split = "train" if j < n_background else "test"
        target = out / split / name
        target.parent.mkdir(parents=True, exist_ok=True)
        n = round(rng.uniform(*seconds) * sample_rate)
        level = rng.uniform(0.3, 3.0)
        with atomic_path(target) as tmp:
            sf.write(tmp, level * _noise(n, rng, sample_rate), sample_rate, format="WAV")
        (rows if split == "train" else test_rows).append((name, "background"))
    write_csv(out / "train.csv", pd.DataFrame(rows, columns=["filename", "emotion"]))
    write_csv(out / "test.csv", pd.DataFrame({"filename": [r[0] for r in test_rows]}))
    return out
