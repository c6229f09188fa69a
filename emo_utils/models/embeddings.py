"""The hfemb family: frozen transformers embeddings, cached once, and a light head per fold.

``"hfemb:<hub id or local folder>[@<layer>]"`` runs a pretrained ``hf:`` model (the same
sources and feature extractors as :mod:`emo_utils.models.hf`) frozen over the cached
waveforms (:mod:`emo_utils.features.waveform`), pools every layer's output over time (mean
and standard deviation of each hidden unit, then the mean over a clip's windows) and fits a
scikit-learn head per fold on the vectors of one layer (the family's input is
``"embeddings"``, its trainer ``"sklearn"``).  Extraction is the only costly step and runs
once; the heads fit in seconds on CPU, so many layers, heads and folds are cheap to try.

``@<layer>`` picks the layer: 0 is the input of the first transformer layer, ``k`` the
output of layer ``k``, negative values count from the last (default ``-1``, the last
layer).  Speech models often carry the most paralinguistic information in middle layers:
``hfemb:facebook/wav2vec2-base@6`` and ``@-1`` are two models of one run, from one cache.

**The head** is the ``classical`` family's ``logreg`` (standardised features, L2 logistic
regression, :data:`emo_utils.models.classical.CLASSICAL_MODELS`); multi-label tasks get one
per label, as every scikit-learn model.  ``train.pretrained`` does not apply: embeddings
always come from the checkpoint's weights.

**Views.**  A clip's vector is the mean over the windows the predictions use
(``audio.crop``, or every window with ``ensemble.tta_windows`` or a whole-clip task).

**Cache.**  ``CACHE/embeddings-KEY/SPLIT/``, KEY a hash of the model's identity (for a local
folder its ``config.json``, its feature extractor's settings and the size and modification
time of every weights file; for a hub id the id), the waveform settings and the views::

    CACHE/embeddings-KEY/
      config.json                 the model and settings, for people
      train/  test/
        layer-00.npy ... layer-NN.npy   (n_rows, 2 * hidden) float32 per layer, NaN for failed rows
        manifest.json             written last: fingerprint (KEY + the waveform cache's rows
                                  and files), layers, reasons
        chunks/chunk-KEY.npy      only while extracting: (rows, layers, 2 * hidden) per chunk

Every layer of a model is written in the one pass that computes any of them, so another layer
of the same model reuses the cache.  Chunks are saved atomically, so a killed extraction
resumes; the split's folder is locked while it is computed (:mod:`emo_utils.locks`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .._console import debug, interactive
from ..config import Config
from ..errors import CacheError, TrainingError
from ..features import build_waveforms, default_cache_dir
from ..features.concat import register_joiner
from ..features.statistics import StatisticsStore
from ..features.store import RowStatus
from ..fileio import atomic_path, read_json, write_json
from ..locks import folder_lock
from ..tasks import get_task
from ._registry import ModelFamily, register_family, select_device
from .classical import CLASSICAL_MODELS
from .hf import (
    HFAudioClassifier,
    build_hf_model,
    check_hf_name,
    check_hf_weights,
    hf_setup_problems,
    resolve_hf_source,
)

__all__ = [
    "CHUNK_SIZE",
    "EMBEDDINGS_VERSION",
    "HEAD",
    "EmbeddingStore",
    "build_embeddings",
    "check_hfemb_name",
    "extract_embeddings",
    "split_name",
]

#: Bump when the extraction or the pooling changes: the cache keys on it.
EMBEDDINGS_VERSION = 1
#: Rows per chunk (the unit of resume and progress).
CHUNK_SIZE = 64
#: The ``CLASSICAL_MODELS`` entry fitted on the embeddings.
HEAD = "logreg"
PREFIX = "hfemb"

_MANIFEST = "manifest.json"
_CHUNKS = "chunks"


def _layer_file(layer: int) -> str:
    return f"layer-{layer:02d}.npy"


# ---------------------------------------------------------------------------- names
def split_name(name: str) -> tuple[str, int]:
    """``(source, layer)`` of ``"<source>[@<layer>]"`` (layer -1 when not given).

    Raises
    ------
    TrainingError
        The part after ``@`` is not a whole number.

    Examples
    --------
    >>> split_name("facebook/wav2vec2-base@6")
    ('facebook/wav2vec2-base', 6)
    >>> split_name("/data/models/ast")
    ('/data/models/ast', -1)
    """
    source, sep, layer = name.rpartition("@")
    if not sep:
        return name, -1
    try:
        return source, int(layer)
    except ValueError:
        raise TrainingError(
            f"'{PREFIX}:{name}': the layer after '@' must be a whole number, not {layer!r}"
        ) from None


def check_hfemb_name(name: str) -> str | None:
    """``None`` when ``hfemb:<name>`` names a usable model and layer syntax, else the problem."""
    try:
        source, _ = split_name(name)
    except TrainingError as exc:
        return str(exc)
    problem = check_hf_name(source)
    return None if problem is None else problem.replace("'hf:", f"'{PREFIX}:", 1)


def build_embedding_head(name: str, **_: Any) -> Any:
    """The unfitted scikit-learn head of ``hfemb:<name>`` (the registry's ``build``)."""
    problem = check_hfemb_name(name)
    if problem:
        raise TrainingError(f"train.architectures: {problem}")
    return CLASSICAL_MODELS[HEAD]()


def _check_setup(name: str, config: Config) -> None:
    """The model's sample rate, window and layer against the run (before any work)."""
    source, layer = split_name(name)
    problems = hf_setup_problems(source, config, weights_dir=config.train.weights_dir)
    n_layers = _n_layers(resolve_hf_source(source, config.train.weights_dir))
    if not -(n_layers + 1) <= layer <= n_layers:
        problems.append(
            f"layer {layer} does not exist (the model has layers 0 to {n_layers}, or -1 to "
            f"-{n_layers + 1} from the last)"
        )
    if problems:
        raise TrainingError(f"train.architectures: '{PREFIX}:{name}': " + "; ".join(problems))


def _check_weights(name: str, weights_dir: str | os.PathLike) -> None:
    check_hf_weights(split_name(name)[0], weights_dir)


def _n_layers(source: str) -> int:
    """Transformer layers of a model (``num_hidden_layers`` of its config)."""
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(source).num_hidden_layers)


# ---------------------------------------------------------------------------- the store
@dataclass
class EmbeddingStore(RowStatus):
    """Frozen embeddings of one split, for every ``hfemb:`` model of a run.

    Attributes
    ----------
    filenames : list of str
        File name of every row, in CSV order.
    vectors : dict of str to numpy.ndarray
        ``hfemb`` name (``source@layer`` as in ``train.architectures``) -> float32 vectors
        ``(n_rows, 2 * hidden)`` (NaN for failed rows).
    reasons : list of str
        Empty for good rows, else why the clip failed (the waveform's reason).
    directories : dict of str to pathlib.Path
        Name -> the cache folder its vectors come from.
    stats : dict
        Name -> ``{"computed", "reused", "seconds"}`` of its extraction.
    directory : None
        No single folder (``require_valid_training`` names ``directories`` instead).
    notes : list of dict
        Always empty (decoding warnings belong to the waveform store).
    """

    filenames: list[str]
    vectors: dict[str, np.ndarray]
    reasons: list[str]
    directories: dict[str, Path] = field(default_factory=dict)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    directory: Path | None = None
    notes: list[dict[str, str]] = field(default_factory=list)

    def select(self, rows: Sequence[int] | np.ndarray) -> EmbeddingStore:
        """A store of ``rows`` only (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        return EmbeddingStore(
            filenames=[self.filenames[i] for i in rows],
            vectors={name: v[rows] for name, v in self.vectors.items()},
            reasons=[self.reasons[i] for i in rows],
            directories=dict(self.directories),
            stats=dict(self.stats),
        )

    def view(self, name: str) -> StatisticsStore:
        """The vectors of one model and layer as a store of the ``sklearn`` trainer.

        Raises
        ------
        TrainingError
            ``name`` was not extracted for this store.
        """
        if name not in self.vectors:
            raise TrainingError(
                f"'{PREFIX}:{name}': no embeddings in this store (it holds {sorted(self.vectors)}); "
                "build it with the run's config (emo_utils.models.build_inputs)"
            )
        values = self.vectors[name]
        return StatisticsStore(
            filenames=list(self.filenames),
            values=values,
            names=[f"{name}:{j}" for j in range(values.shape[1])],
            reasons=list(self.reasons),
            directory=self.directories.get(name),
        )

    def describe(self) -> str:
        """``"<name> <dim> values, ..."``, for the preprocess summary."""
        return ", ".join(f"{name} {v.shape[1]} values" for name, v in self.vectors.items())


@register_joiner(EmbeddingStore)
def _concat_embeddings(stores: Sequence[EmbeddingStore]) -> EmbeddingStore:
    """The rows of ``stores`` in order (a pseudo-label round's test and unlabelled clips)."""
    names = list(stores[0].vectors)
    if any(list(s.vectors) != names for s in stores):
        raise CacheError("concat_stores: the embeddings stores hold other models or layers")
    return EmbeddingStore(
        filenames=[f for s in stores for f in s.filenames],
        vectors={n: np.concatenate([s.vectors[n] for s in stores]) for n in names},
        reasons=[r for s in stores for r in s.reasons],
    )


# ---------------------------------------------------------------------------- extraction
def _row_views(store: Any, row: int, *, crop: str, all_windows: bool) -> np.ndarray:
    """The windows ``(n_views, 1, 1, T)`` of one row: every window, or the ``crop`` one."""
    return store.windows(row) if all_windows else store.window(row, crop)[None]


def extract_embeddings(
    model: HFAudioClassifier,
    store: Any,
    rows: Sequence[int],
    *,
    crop: str = "start",
    all_windows: bool = False,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    mixed_precision: bool = False,
) -> np.ndarray:
    """Pooled hidden states of every layer for waveform rows.

    Parameters
    ----------
    model : HFAudioClassifier
        The frozen model (evaluation mode is set here).
    store : FeatureStore
        Waveform windows (:func:`emo_utils.features.build_waveforms`).
    rows : sequence of int
        Store rows.
    crop, all_windows
        The views of a row: its ``crop`` window, or every window (their vectors averaged).
    batch_size : int
        Windows per forward pass.
    device : str or torch.device, optional
        Default: the GPU when there is one.
    mixed_precision : bool
        bf16 (fp16 without bf16) autocast on CUDA; the pooling is float32.

    Returns
    -------
    numpy.ndarray of float32, shape (len(rows), n_layers + 1, 2 * hidden)
        Per layer, the mean over time of every hidden unit, then its standard deviation;
        NaN for rows without waveform.
    """
    dev = select_device(device)
    model = model.to(dev).eval()
    rows = np.asarray(rows, dtype=np.int64)
    good = [k for k, row in enumerate(rows) if store.ok[row]]
    if not good:
        raise CacheError("extract_embeddings: no row has a waveform")
    per_row = [_row_views(store, int(rows[k]), crop=crop, all_windows=all_windows) for k in good]
    owner = np.repeat(np.arange(len(good)), [len(v) for v in per_row])
    views = np.concatenate(per_row)
    amp = dev.type == "cuda" and mixed_precision
    dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
    pooled = []
    with torch.inference_mode():
        for b in range(0, len(views), max(1, batch_size)):
            x = torch.from_numpy(np.asarray(views[b : b + batch_size], np.float32)).to(dev)
            with torch.autocast(dev.type, dtype=dtype, enabled=amp):
                states = model.hidden_states(x)
            h = torch.stack([s.float() for s in states], dim=1)  # (B, L, T', H)
            stats = torch.cat([h.mean(dim=2), h.std(dim=2, unbiased=False)], dim=-1)
            pooled.append(stats.cpu().numpy().astype(np.float64))
    per_view = np.concatenate(pooled)  # (n_views, L, 2H)
    sums = np.zeros((len(good), *per_view.shape[1:]))
    np.add.at(sums, owner, per_view)
    counts = np.bincount(owner, minlength=len(good)).astype(np.float64)
    out = np.full((len(rows), *per_view.shape[1:]), np.nan, dtype=np.float32)
    out[good] = (sums / counts[:, None, None]).astype(np.float32)
    return out


# ---------------------------------------------------------------------------- the cache
def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _identity(name: str, source: str) -> dict[str, Any]:
    """What identifies the model's weights without loading them."""
    folder = Path(source)
    if not folder.is_dir():
        return {"hub": source}
    files = {}
    for path in sorted(folder.iterdir()):
        if path.name in ("config.json", "preprocessor_config.json"):
            files[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.suffix in (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack"):
            st = path.stat()
            files[path.name] = [st.st_size, st.st_mtime_ns]
    return {"folder": str(folder.resolve()), "files": files}


@dataclass(frozen=True)
class _Plan:
    directory: Path
    fingerprint: str
    source: str
    layer: int  # resolved, 0..n_layers
    n_layers: int
    settings: dict[str, Any]  # what the key hashes, written to config.json for people


def _plan(name: str, split: str, config: Config, cache_dir: Path, waveforms: Any) -> _Plan:
    source, layer = split_name(name)
    resolved = resolve_hf_source(source, config.train.weights_dir)
    n_layers = _n_layers(resolved)
    if not -(n_layers + 1) <= layer <= n_layers:
        raise TrainingError(
            f"'{PREFIX}:{name}': layer {layer} does not exist (layers 0 to {n_layers})"
        )
    from ..features.waveform import waveform_config

    task = get_task(config.data.task)
    settings = {
        "version": EMBEDDINGS_VERSION,
        "model": _identity(source, resolved),
        "waveforms": waveform_config(config).feature_hash(),
        "views": {
            "crop": config.audio.crop,
            "all_windows": bool(config.ensemble.tta_windows or task.whole_clip),
        },
    }
    key = _digest(settings)[:16]
    directory = cache_dir / f"embeddings-{key}" / split
    return _Plan(
        directory=directory,
        fingerprint=_digest(
            {"key": key, "waveforms": waveforms.fingerprint, "rows": len(waveforms)}
        ),
        source=source,
        layer=layer % (n_layers + 1),
        n_layers=n_layers,
        settings={"source": source, **settings},
    )


def _open(plan: _Plan, n_rows: int) -> tuple[np.ndarray, list[str]] | None:
    """The cached vectors of the plan's layer and the reasons, or None when missing or stale."""
    try:
        manifest = read_json(plan.directory / _MANIFEST)
        if manifest["fingerprint"] != plan.fingerprint or len(manifest["reasons"]) != n_rows:
            return None
        values = np.load(plan.directory / _layer_file(plan.layer), allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if values.ndim != 2 or values.shape[0] != n_rows or values.dtype != np.float32:
        return None
    return values, [str(r) for r in manifest["reasons"]]


def _chunk_path(plan: _Plan, rows: range) -> Path:
    key = _digest({"fingerprint": plan.fingerprint, "rows": [rows.start, rows.stop]})[:24]
    return plan.directory / _CHUNKS / f"chunk-{key}.npy"


def _extract(
    plan: _Plan, name: str, split: str, waveforms: Any, config: Config, progress: bool
) -> tuple[int, int]:
    """Compute the missing chunks and write every layer file, the manifest last."""
    settings_file = plan.directory.parent / "config.json"
    if not settings_file.is_file():
        write_json(settings_file, plan.settings)
    n = len(waveforms)
    chunks = [range(s, min(s + CHUNK_SIZE, n)) for s in range(0, n, CHUNK_SIZE)]
    done = {i for i, rows in enumerate(chunks) if _chunk_path(plan, rows).is_file()}
    missing = [i for i in range(len(chunks)) if i not in done]
    computed = sum(len(chunks[i]) for i in missing)
    debug(f"embeddings {split} {name}: {len(done)} chunk(s) reused, {len(missing)} to compute")
    if missing:
        tc = config.train
        model = build_hf_model(
            plan.source, n_outputs=2, pretrained=True, weights_dir=tc.weights_dir
        )
        task = get_task(config.data.task)
        all_windows = bool(config.ensemble.tta_windows or task.whole_clip)
        (plan.directory / _CHUNKS).mkdir(parents=True, exist_ok=True)
        bar = tqdm(
            total=computed,
            desc=f"embeddings {split} {name}",
            unit="clip",
            disable=not progress or not interactive(),
        )
        with bar:
            for i in missing:
                rows = chunks[i]
                good = [r for r in rows if waveforms.ok[r]]
                if good:
                    part = extract_embeddings(
                        model,
                        waveforms,
                        good,
                        crop=config.audio.crop,
                        all_windows=all_windows,
                        batch_size=tc.batch_size,
                        mixed_precision=tc.mixed_precision,
                    )
                    block = np.full((len(rows), *part.shape[1:]), np.nan, dtype=np.float32)
                    block[[r - rows.start for r in good]] = part
                else:  # only failed rows: their width is unknown, filled when assembling
                    block = np.zeros((len(rows), 0, 0), dtype=np.float32)
                with atomic_path(_chunk_path(plan, rows)) as tmp, open(tmp, "wb") as fh:
                    np.save(fh, block, allow_pickle=False)
                bar.update(len(rows))
        if progress and not interactive():
            print(
                f"embeddings {split} {name}: {computed} clips computed, {n - computed} reused",
                flush=True,
            )
    blocks = []
    for rows in chunks:
        try:
            blocks.append(np.load(_chunk_path(plan, rows), allow_pickle=False))
        except (OSError, ValueError) as exc:
            raise CacheError(f"{_chunk_path(plan, rows)}: unreadable chunk ({exc})") from exc
    shape = next((b.shape[1:] for b in blocks if b.size), None)
    if shape is None:
        raise CacheError(f"embeddings {split}: no clip of the split has a waveform")
    values = np.concatenate(
        [
            b if b.size else np.full((len(rows), *shape), np.nan, np.float32)
            for b, rows in zip(blocks, chunks, strict=True)
        ]
    )
    for layer in range(values.shape[1]):
        with atomic_path(plan.directory / _layer_file(layer)) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(values[:, layer]), allow_pickle=False)
    write_json(
        plan.directory / _MANIFEST,
        {
            "fingerprint": plan.fingerprint,
            "layers": int(values.shape[1]),
            "dim": int(values.shape[2]),
            "reasons": list(waveforms.reasons),
        },
    )
    shutil.rmtree(plan.directory / _CHUNKS, ignore_errors=True)
    return computed, n - computed


def build_embeddings(
    competition: Any,
    split: str,
    *,
    config: Config,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    wait: bool = True,
) -> EmbeddingStore:
    """Extract (or reuse) the frozen embeddings of every ``hfemb:`` model of the run.

    Parameters are those of :func:`~emo_utils.features.build_cache`; the waveform cache
    (:func:`~emo_utils.features.build_waveforms`) is built or reused first.

    Returns
    -------
    EmbeddingStore
        One row per row of the split's table, the vectors of every ``hfemb:`` name of
        ``train.architectures``.

    Raises
    ------
    TrainingError
        A model that cannot be loaded, or a layer it does not have.
    LockError
        ``wait=False`` and another process extracts the same split.
    """
    root = default_cache_dir(competition.root) if cache_dir is None else Path(cache_dir)
    names = [
        arch.partition(":")[2]
        for arch in config.train.architectures
        if arch.partition(":")[0] == PREFIX
    ]
    waveforms = build_waveforms(
        competition,
        split,
        config=config,
        cache_dir=root,
        n_jobs=n_jobs,
        progress=progress,
        wait=wait,
    )
    vectors, directories, stats = {}, {}, {}
    for name in names:
        start = time.perf_counter()
        plan = _plan(name, split, config, root, waveforms)
        found = _open(plan, len(waveforms))
        computed, reused = 0, len(waveforms)
        if found is None:
            with folder_lock(plan.directory, what=f"embeddings ({split})", wait=wait):
                found = _open(plan, len(waveforms))  # finished meanwhile by another process?
                if found is None:
                    computed, reused = _extract(plan, name, split, waveforms, config, progress)
                    found = _open(plan, len(waveforms))
            if found is None:
                raise CacheError(f"{plan.directory}: unreadable right after writing")
        vectors[name], _ = found
        directories[name] = plan.directory
        stats[name] = {
            "computed": computed,
            "reused": reused,
            "seconds": time.perf_counter() - start,
        }
    return EmbeddingStore(
        filenames=list(waveforms.filenames),
        vectors=vectors,
        reasons=list(waveforms.reasons),
        directories=directories,
        stats=stats,
    )


register_family(
    ModelFamily(
        prefix=PREFIX,
        input="embeddings",
        trainer="sklearn",
        build=build_embedding_head,
        check=check_hfemb_name,
        check_weights=_check_weights,
        check_setup=_check_setup,
        select_input=lambda store, name: store.view(name),
    )
)
