"""The model inputs of a split: one cached store per input kind the architectures need.

==============  ==============================================  ==========================
input kind      store                                           families
==============  ==============================================  ==========================
``image``       feature images (:func:`build_cache`)            ``timm``
``features``    clip statistics (:func:`build_statistics`)      ``classical``
``waveform``    mono clips, float16 (:func:`build_waveforms`)   ``hf``
``embeddings``  frozen embeddings (:func:`build_embeddings`)    ``hfemb``
==============  ==============================================  ==========================

:data:`INPUT_BUILDERS` maps every ``ModelFamily.input`` of the model registry to the
function that computes (or reuses) its cache; :func:`build_inputs` builds the stores that
``train.architectures`` needs.  The image cache is always built: the training and test
checks, duplicate groups and reports read it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..config import Config
from ..features import build_cache, build_statistics, build_waveforms
from ..features.on_the_fly import ON_THE_FLY_INPUT, build_on_the_fly_waveforms, store_kind
from ._registry import model_inputs
from .embeddings import build_embeddings

__all__ = ["INPUT_BUILDERS", "build_inputs"]

#: Input kind -> ``builder(competition, split, *, config, cache_dir, n_jobs, progress, wait)``.
INPUT_BUILDERS: dict[str, Callable[..., Any]] = {
    "image": build_cache,
    "features": build_statistics,
    "waveform": build_waveforms,
    "embeddings": build_embeddings,
    ON_THE_FLY_INPUT: build_on_the_fly_waveforms,
}


def build_inputs(
    competition: Any,
    split: str,
    *,
    config: Config,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    wait: bool = True,
) -> dict[str, Any]:
    """``{input kind: store}`` of one split for every input ``train.architectures`` needs.

    Parameters
    ----------
    competition, split, config, cache_dir, n_jobs, progress, wait
        As for :func:`~emo_utils.features.build_cache`.

    Returns
    -------
    dict
        ``"image"`` first, then every other input in first-use order (image models of a
        ``train.features = "on_the_fly"`` run read ``"on_the_fly_waveform"``).
    """
    needed = [store_kind(k, config) for k in model_inputs(config.train.architectures)]
    kinds = list(dict.fromkeys(["image", *needed]))
    stores = {}
    for kind in kinds:
        stores[kind] = INPUT_BUILDERS[kind](
            competition,
            split,
            config=config,
            cache_dir=cache_dir,
            n_jobs=n_jobs,
            progress=progress,
            wait=wait,
        )
    return stores
