"""Shared test fixtures: tiny synthetic training data that a small CNN can learn, and one
tiny cross-validated run trained on it once per session."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
import pytest

from emo_utils.config import Config
from emo_utils.data.competition import Competition
from emo_utils.features.store import FeatureStore

if TYPE_CHECKING:
    from emo_utils.train.cv import CVResult


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


#: The shared run's config: timm's tiny ``test_resnet`` from scratch, 3 folds x 2 epochs.
#: ``tests/test_training.py`` uses it as its ``CONFIG``.
TRAINED_RUN_CONFIG = Config().override(
    {
        "train.architectures": ["test_resnet"],
        "train.pretrained": False,
        "train.n_folds": 3,
        "train.epochs": 2,
        "train.batch_size": 8,
        "train.lr": 3e-3,
        "train.label_smoothing": 0.1,
        "train.class_weights": True,
        "train.mixup": 0.4,
        "train.monitor": "f1_macro",
    }
)


class TrainedRun(NamedTuple):
    """A finished tiny run: what it was trained on, where, how, and :func:`train_cv`'s result."""

    competition: Competition
    store: FeatureStore
    run_dir: Path
    config: Config
    result: CVResult


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, training_data) -> TrainedRun:
    """One real tiny CV run on :func:`training_data`, trained once for the whole session.

    Read-only: a test that writes into the run folder (reruns, reports, predictions,
    damaged files) copies ``run_dir`` first.
    """
    from emo_utils.train import train_cv

    competition, store = training_data
    run_dir = tmp_path_factory.mktemp("runs") / "trained"
    config = TRAINED_RUN_CONFIG
    result = train_cv(competition, store, run_dir=run_dir, config=config, progress=False)
    return TrainedRun(competition, store, run_dir, config, result)
