"""A tiny trained run on generated tones, for the timeline, event and streaming tests.

Three classes are sine tones of different pitch in light noise (``low`` 300 Hz, ``mid``
1200 Hz, ``high`` 3500 Hz) and a fourth, ``quiet``, is the noise alone, so a model learns
them in seconds and a recording whose tone changes at known times has known class changes.
A training clip's window holds its class for 60-100 % of the time and another class for the
rest, so the models learn the class that fills most of a window (as the timeline tests
expect of a change point).  The run has a CNN (timm's tiny
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
#: Every class, in index order: the tones and the background noise.
CLASSES = ("high", "low", "mid", "quiet")

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
        "train.epochs": 4,
        "train.batch_size": 8,
        "train.lr": 1e-2,
        "ensemble.method": "mean",
    }
)


def tone_signal(label: str, *, seconds: float, seed: int, amplitude: float = 0.4) -> np.ndarray:
    """A ``(n,)`` float32 tone of ``label``'s pitch with a little noise (``quiet``: noise only)."""
    rng = np.random.default_rng(seed)
    n = round(RATE * seconds)
    noise = 0.02 * rng.standard_normal(n)
    if label == "quiet":
        return noise.astype(np.float32)
    t = np.arange(n) / RATE
    y = amplitude * np.sin(2 * np.pi * TONES[label] * t + rng.uniform(0, 2 * np.pi))
    return (y + noise).astype(np.float32)


def training_clip(label: str, *, seed: int) -> np.ndarray:
    """1.5 s whose first second is ``label`` for 60-100 % of it and another class for the rest."""
    rng = np.random.default_rng(seed)
    share = rng.uniform(0.6, 1.0)
    other = str(rng.choice([c for c in CLASSES if c != label]))
    own = tone_signal(label, seconds=1.5, seed=seed)
    cut = round(RATE * (1.0 - share))
    mixed = tone_signal(other, seconds=1.5, seed=seed + 1)
    if rng.random() < 0.5:  # the other class first, then this one
        return np.concatenate([mixed[:cut], own[cut:]])
    keep = round(RATE * share)
    return np.concatenate([own[:keep], mixed[keep : keep + cut], own[keep + cut :]])


def sequence_signal(parts: Sequence[tuple[str, float]], *, seed: int = 0) -> np.ndarray:
    """Classes one after the other: ``[(label, seconds), ...]``."""
    return np.concatenate(
        [
            tone_signal(label, seconds=seconds, seed=seed + 1000 + k)
            for k, (label, seconds) in enumerate(parts)
        ]
    )


class ToneRun(NamedTuple):
    """The trained run and the competition it was trained on."""

    data: Path
    run_dir: Path
    cache: Path
    result: PipelineResult


_RUNS: dict[Path, ToneRun] = {}


def tone_run(base: Path, *, config: Config = CONFIG, name: str = "tone_world") -> ToneRun:
    """The run trained once per test session under ``base / name`` (a session temporary folder).

    ``config`` (default :data:`CONFIG`) trains it; give each config its own ``name``.
    """
    base = Path(base) / name
    if base in _RUNS:
        return _RUNS[base]
    data = base / "data"
    train = {}
    for k, label in enumerate(CLASSES):
        for j in range(8):
            name = f"{label}_{j}.wav"
            write_signal(
                data / "train" / name, training_clip(label, seed=100 * k + 10 * j), sr=RATE
            )
            train[name] = label
    test = []
    for k, label in enumerate(CLASSES):
        for j in range(2):
            name = f"t_{label}_{j}.wav"
            write_signal(
                data / "test" / name, tone_signal(label, seconds=1.3, seed=500 + 7 * k + j), sr=RATE
            )
            test.append(name)
    write_competition(data, train=train, test=test)
    result = train_run(data, base, config)
    _RUNS[base] = ToneRun(data, base / "run", base / "cache", result)
    return _RUNS[base]


def train_run(data: Path, base: Path, config: Config) -> PipelineResult:
    """The whole pipeline on the competition in ``data``: ``base/run``, ``base/cache``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny runs on tones: learned-nothing warnings
        return run_pipeline(
            data,
            run_dir=base / "run",
            config=config,
            submissions_dir=base / "submissions",
            cache_dir=base / "cache",
            n_jobs=1,
            progress=False,
        )
