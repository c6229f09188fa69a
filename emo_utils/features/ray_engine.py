"""The ``"ray"`` engine of the cache builder: chunks computed through :mod:`ray.data`.

``features.engine = "ray"`` (``python -m emo_utils preprocess --engine ray``) hands the
chunks :func:`~emo_utils.features.build.build_cache` has to compute to a Ray Data pipeline
instead of this process and its joblib (loky) workers: one row per chunk,
:meth:`ray.data.Dataset.map_batches` computes each chunk's ``.npz`` bytes on the cluster
(decoding and features, :func:`.build._chunk_bytes`, the code the local engine runs), and
this process writes each chunk file atomically as it arrives, then assembles the cache as
always.  The finished cache is byte for byte the local engine's (same chunks, same
assembly; ``tests/test_ray_engine.py``), so resume, locks and damage checks are unchanged.

**Where it runs.**  With ``features.ray_address`` empty (default) the build joins a Ray
instance this process already started (``ray.init(...)`` in a notebook) or starts a local
one for the build (all cores) and shuts it down after.  ``"auto"`` joins the cluster of
this machine; ``"ray://HEAD:10001"`` a remote cluster through Ray Client.  Every node must
import the same ``emo_utils`` and read the audio files at the paths this process sees
(shared storage); the cache is written only by this process.

**GPUs.**  With the ``"torch"`` backend and GPUs in the cluster, chunks go to a pool of
actors (one per GPU, ``num_gpus=1``) that keep their CUDA context and filter banks between
chunks; otherwise each chunk is a Ray task of one CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..config import AudioConfig, FeatureConfig
from .channels import ChannelSpec

__all__ = ["run_chunks_ray"]


def _compute(
    batch: dict[str, np.ndarray],
    audio: AudioConfig,
    features: FeatureConfig,
    specs: Sequence[ChannelSpec],
) -> dict[str, Any]:
    """``map_batches`` function: the ``.npz`` bytes of the chunks in ``batch``.

    A row is one chunk: ``task`` (its index), ``paths`` (its clips) and ``key``; the
    configuration travels once, as the function's arguments.
    """
    from .build import _chunk_bytes

    out = [
        _chunk_bytes([str(p) for p in paths], audio, features, specs, str(key))
        for paths, key in zip(batch["paths"], batch["key"], strict=True)
    ]
    return {"task": batch["task"], "npz": np.array(out, dtype=object)}


class _GpuChunks:
    """``map_batches`` actor for GPU pools: :func:`_compute` with warm caches between chunks."""

    def __init__(
        self, audio: AudioConfig, features: FeatureConfig, specs: Sequence[ChannelSpec]
    ) -> None:
        self.settings = (audio, features, specs)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        return _compute(batch, *self.settings)


def run_chunks_ray(
    tasks: list[tuple[Any, ...]],
    *,
    address: str,
    done: Callable[[int], Any],
    write: Callable[[str, bytes], Any],
) -> None:
    """Compute every chunk task through Ray Data; ``write(out_path, bytes)`` then ``done(n)``.

    Parameters
    ----------
    tasks : list of tuple
        ``(paths, audio, features, specs, out_path, key)`` per chunk (the cache builder's;
        one ``audio``, ``features`` and ``specs`` for all).
    address : str
        ``features.ray_address``: ``""`` (the running instance, else a local one for this
        call), ``"auto"`` or ``"ray://host:port"``.
    done : callable
        ``done(clips)`` after each chunk is written, in this process.
    write : callable
        ``write(out_path, data)``: saves a chunk file atomically, in this process.
    """
    import ray

    own = not ray.is_initialized()
    if own:
        ray.init(
            address=address or None,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        rows = [
            {"task": k, "paths": list(paths), "key": key}
            for k, (paths, _audio, _features, _specs, _out, key) in enumerate(tasks)
        ]
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
        _paths, audio, features, specs, _out, _key = tasks[0]
        settings = {"audio": audio, "features": features, "specs": specs}
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if gpus and features.backend == "torch":
            dataset = dataset.map_batches(
                _GpuChunks,
                fn_constructor_kwargs=settings,
                batch_size=1,
                num_gpus=1,
                concurrency=gpus,
            )
        else:
            dataset = dataset.map_batches(_compute, fn_kwargs=settings, batch_size=1, num_cpus=1)
        for row in dataset.iter_rows():
            paths, *_, out_path, _key = tasks[int(row["task"])]
            write(out_path, row["npz"])
            done(len(paths))
    finally:
        if own:
            ray.shutdown()
