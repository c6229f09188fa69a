"""Shared test fixtures: tiny synthetic training data that a small CNN can learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emo_utils.data.competition import Competition
from emo_utils.features.store import FeatureStore


def make_training_data(
    root: Path,
    *,
    counts: dict[str, int] | None = None,
    shape: tuple[int, int, int] = (3, 32, 48),
    seed: int = 0,
) -> tuple[Competition, FeatureStore]:
    """A competition and its feature store with class-dependent images.

    Every image is Gaussian noise plus a bright band of mel bins whose position depends on
    the class, so the classes are learnable.

    Parameters
    ----------
    root : pathlib.Path
        Competition root (no files are written).
    counts : dict, optional
        Clips per class (default three classes of eight clips).
    shape : tuple of int
        ``(C, H, T)`` of every image (one window).
    seed : int
        Noise seed.
    """
    counts = counts or {"angry": 8, "happy": 8, "sad": 8}
    rng = np.random.default_rng(seed)
    _, h, t = shape
    band = max(1, h // (2 * len(counts)))
    names, labels, images = [], [], []
    for k, (label, n) in enumerate(sorted(counts.items())):
        for j in range(n):
            image = rng.normal(0.0, 1.0, shape).astype(np.float32)
            image[:, 2 * k * band : (2 * k + 1) * band, :] += 2.0
            names.append(f"{label}_{j:03d}.wav")
            labels.append(label)
            images.append(image)
    train = pd.DataFrame(
        {"filename": names, "label": labels, "path": [str(root / "train" / n) for n in names]}
    )
    competition = Competition(
        root=root,
        train=train,
        test=pd.DataFrame({"filename": [], "path": []}),
        classes=tuple(sorted(counts)),
        submission_columns=("filename", "emotion"),
    )
    store = FeatureStore.from_arrays(names, images, window_frames=t)
    return competition, store


@pytest.fixture(scope="session")
def training_data(tmp_path_factory) -> tuple[Competition, FeatureStore]:
    """Three classes of eight learnable 3x32x48 images (shared, read-only)."""
    return make_training_data(tmp_path_factory.mktemp("competition"))


@pytest.fixture(scope="session")
def training_data_factory():
    """:func:`make_training_data` itself, for tests that need other class counts or shapes."""
    return make_training_data
