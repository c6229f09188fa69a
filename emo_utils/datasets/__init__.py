"""Dataset generators (sklearn's ``make_classification`` pattern): audio the project makes itself.

``synthetic`` writes the demo competition folder of voice-like emotional clips;
``multilabel`` writes a Freesound-style multi-label tagging folder (speech, music, chirps,
water) with planted label noise and near-duplicates; ``verification`` writes a
speaker-verification folder (identity timbres, disjoint train and test identities, trials).
:data:`DEMO_DATASETS` maps each task name (``data.task``) to its generator; :func:`make_demo`
calls the one of a task.  ``tiny_models`` writes tiny random transformers waveform models
(:data:`DEMO_MODELS`) as local model folders, for the mixed-family demo and the tests
(nothing pretrained).
Imports only ``errors``, ``fileio``, ``_console`` and third-party audio libraries.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .multilabel import MULTILABEL_DEMO_CLASSES, make_multilabel_demo
from .synthetic import make_demo_dataset
from .tiny_models import DEMO_MODELS, demo_model_ids, save_demo_model
from .verification import make_verification_demo

__all__ = [
    "DEMO_DATASETS",
    "DEMO_MODELS",
    "MULTILABEL_DEMO_CLASSES",
    "demo_model_ids",
    "make_demo",
    "make_demo_dataset",
    "make_multilabel_demo",
    "make_verification_demo",
    "save_demo_model",
]

#: ``data.task`` -> the generator of its demo competition folder.
DEMO_DATASETS: dict[str, Callable[..., Path]] = {
    "classification": make_demo_dataset,
    "multilabel": make_multilabel_demo,
    "verification": make_verification_demo,
}


def make_demo(task: str, out_dir: str | os.PathLike, **options: Any) -> Path:
    """Write (or reuse) the demo competition folder of ``task``.

    Parameters
    ----------
    task : str
        A key of :data:`DEMO_DATASETS` (``config.data.task``).
    out_dir : str or os.PathLike
        The folder.
    **options
        Passed to the generator (``n_train``, ``n_test``, ``seed``, ``progress``, ...);
        options given as ``None`` are left out, so the generator's defaults apply.

    Returns
    -------
    pathlib.Path
    """
    try:
        generator = DEMO_DATASETS[task]
    except KeyError:
        raise ConfigError(
            "data.task", task, f"no demo data for this task; demos: {sorted(DEMO_DATASETS)}"
        ) from None
    return generator(out_dir, **{k: v for k, v in options.items() if v is not None})
