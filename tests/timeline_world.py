"""A tiny trained run on generated tones, for the timeline, event and streaming tests.

Three classes are sine tones of different pitch in light noise (``low`` 300 Hz, ``mid``
1200 Hz, ``high`` 3500 Hz), so a model learns them in seconds and a recording whose tone
changes at known times has known class changes.  The run has a CNN (timm's tiny
``test_resnet``, images) and a classical model (statistics), combined by the ``mean``
ensemble, and went through the whole pipeline (its test predictions and submission exist).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from audio_factory import write_competition, write_signal

from emo_utils.config import Config
from emo_utils.pipeline import PipelineResult, run_pipeline

RATE = 16000
#: Class -> tone frequency (Hz).
TONES = {"high": 3500.0, "low": 300.0, "mid": 1200.0}

CONFIG = Config().override(
    {
        "audio.sample_rate": RATE,
        "audio.duration": 1.0,
        "audio.max_duration": 1.0,
        "features.n_mels": 32,
        "features.n_fft": 512,
        "features.hop_length": 256,
        "train.architectures": ["test_resnet", "classical:logreg"],
        "train.pretrained": False,
        "train.n_folds": 2,
        "train.epochs": 2,
        "train.batch_size": 8,
        "train.lr": 3e-3,
        "ensemble.method": "mean",
    }
)


def tone_signal(label: str, *, seconds: float, seed: int, amplitude: float = 0.4) -> np.ndarray:
    """A ``(n,)`` float32 tone of ``label``'s pitch with a little noise."""
    rng = np.random.default_rng(seed)
    n = round(RATE * seconds)
    t = np.arange(n) / RATE
    y = amplitude * np.sin(2 * np.pi * TONES[label] * t + rng.uniform(0, 2 * np.pi))
    return (y + 0.02 * rng.standard_normal(n)).astype(np.float32)


def sequence_signal(parts: Sequence[tuple[str | None, float]], *, seed: int = 0) -> np.ndarray:
    """Tones (or silence for ``None``) one after the other: ``[(label, seconds), ...]``."""
    rng = np.random.default_rng(seed)
    pieces = []
    for k, (label, seconds) in enumerate(parts):
        if label is None:
            n = round(RATE * seconds)
            pieces.append((0.02 * rng.standard_normal(n)).astype(np.float32))
        else:
            pieces.append(tone_signal(label, seconds=seconds, seed=seed + 1000 + k))
    return np.concatenate(pieces)


class ToneRun(NamedTuple):
    """The trained run and the competition it was trained on."""

    data: Path
    run_dir: Path
    cache: Path
    result: PipelineResult


_RUNS: dict[Path, ToneRun] = {}


def tone_run(base: Path) -> ToneRun:
    """The run trained once per test session under ``base`` (a session temporary folder)."""
    base = Path(base) / "tone_world"
    if base in _RUNS:
        return _RUNS[base]
    data = base / "data"
    train = {}
    for label in TONES:
        for j in range(6):
            name = f"{label}_{j}.wav"
            write_signal(
                data / "train" / name, tone_signal(label, seconds=1.5, seed=10 * j), sr=RATE
            )
            train[name] = label
    test = []
    for k, label in enumerate(TONES):
        for j in range(2):
            name = f"t_{label}_{j}.wav"
            write_signal(
                data / "test" / name, tone_signal(label, seconds=1.3, seed=500 + 7 * k + j), sr=RATE
            )
            test.append(name)
    write_competition(data, train=train, test=test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_pipeline(
            data,
            run_dir=base / "run",
            config=CONFIG,
            submissions_dir=base / "submissions",
            cache_dir=base / "cache",
            n_jobs=1,
            progress=False,
        )
    _RUNS[base] = ToneRun(data, base / "run", base / "cache", result)
    return _RUNS[base]
