"""Tiny random waveform models saved as local model folders: the ``hf:`` family offline.

Nothing here is pretrained.  These folders exist so that the mixed-family demo
(``python -m emo_utils demo --preset cpu_families``) and the tests can run a transformers
waveform classifier with no network: a two-layer wav2vec2 or AST with 32 hidden units and
random weights, written by ``save_pretrained`` with its feature extractor, exactly the
layout an offline Kaggle dataset of a real checkpoint has.  Trained from scratch on a few
hundred clips such a model stays near chance; the demo shows the mechanics (one run holding
CNNs, classical models and a transformer; the honest ensemble weighting each on OOF), not
what a pretrained wav2vec2 / HuBERT / WavLM scores.  For real work name a hub id
(``hf:facebook/wav2vec2-base``) or a folder holding a real checkpoint.

:data:`DEMO_MODELS` maps the hub-style id the ``cpu_families`` preset names to its builder;
:func:`save_demo_model` writes one (once) under a weights folder, where
``train.weights_dir`` finds it (``weights_dir/org/name``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from .. import fileio
from ..errors import ConfigError

__all__ = [
    "DEMO_MODELS",
    "demo_model_ids",
    "save_demo_model",
    "save_tiny_ast",
    "save_tiny_wav2vec2",
]

#: Sample rate of the tiny models' feature extractors (the transformers default, 16 kHz).
SAMPLE_RATE = 16000


def save_tiny_wav2vec2(folder: str | os.PathLike, *, seed: int = 0) -> Path:
    """Write a tiny random wav2vec2 audio classifier and its feature extractor to ``folder``.

    Two transformer layers of 32 units over a two-layer convolutional encoder (stride 80:
    one frame per 5 ms at 16 kHz).

    Parameters
    ----------
    folder : str or os.PathLike
        Written with ``save_pretrained`` (``config.json``, weights,
        ``preprocessor_config.json``); created if missing.
    seed : int
        Seeds torch's generator for the random weights.

    Returns
    -------
    pathlib.Path
        ``folder``.
    """
    import transformers

    config = transformers.Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16),
        conv_stride=(10, 8),
        conv_kernel=(10, 8),
        num_feat_extract_layers=2,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        classifier_proj_size=16,
        num_labels=2,
    )
    extractor = transformers.Wav2Vec2FeatureExtractor(sampling_rate=SAMPLE_RATE)
    return _save(folder, config, extractor, seed=seed)


def save_tiny_ast(folder: str | os.PathLike, *, seed: int = 0) -> Path:
    """Write a tiny random Audio Spectrogram Transformer and its feature extractor to ``folder``.

    Two layers of 32 units over 32 Kaldi filterbank bins and 128 frames (1.28 s).

    Parameters
    ----------
    folder : str or os.PathLike
        Written with ``save_pretrained``; created if missing.
    seed : int
        Seeds torch's generator for the random weights.

    Returns
    -------
    pathlib.Path
        ``folder``.
    """
    import transformers

    config = transformers.ASTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_mel_bins=32,
        max_length=128,
        num_labels=2,
    )
    extractor = transformers.ASTFeatureExtractor(num_mel_bins=32, max_length=128)
    return _save(folder, config, extractor, seed=seed)


def _save(folder: str | os.PathLike, config: object, extractor: object, *, seed: int) -> Path:
    """``save_pretrained`` into a temporary sibling folder, renamed into place when complete."""
    import torch
    import transformers

    folder = Path(folder)
    torch.manual_seed(seed)
    model = transformers.AutoModelForAudioClassification.from_config(config)
    with fileio.atomic_dir(folder) as tmp:
        model.save_pretrained(tmp)
        extractor.save_pretrained(tmp)
    return folder


#: Hub-style id (as ``hf:<id>`` names it) -> builder of the tiny random model.  The ids
#: are not on the hub: :func:`save_demo_model` writes the folder that
#: ``train.weights_dir`` resolves them to.
DEMO_MODELS: dict[str, Callable[..., Path]] = {
    "emo-utils/tiny-wav2vec2": save_tiny_wav2vec2,
    "emo-utils/tiny-ast": save_tiny_ast,
}


def save_demo_model(model_id: str, weights_dir: str | os.PathLike) -> Path:
    """The folder ``weights_dir/<model_id>`` of a :data:`DEMO_MODELS` entry, written once.

    Parameters
    ----------
    model_id : str
        A key of :data:`DEMO_MODELS`.
    weights_dir : str or os.PathLike
        The weights folder (``train.weights_dir``).

    Returns
    -------
    pathlib.Path
        The model folder; an existing complete folder (with ``config.json``) is reused.

    Raises
    ------
    ConfigError
        ``model_id`` is not a demo model.
    """
    try:
        builder = DEMO_MODELS[model_id]
    except KeyError:
        raise ConfigError(
            "train.architectures", model_id, f"not a demo model; known: {sorted(DEMO_MODELS)}"
        ) from None
    folder = Path(weights_dir) / model_id
    if (folder / "config.json").is_file():
        return folder
    return builder(folder)


def demo_model_ids(architectures: Sequence[str]) -> list[str]:
    """The :data:`DEMO_MODELS` ids that architecture names refer to, in order, once each.

    ``hf:emo-utils/tiny-wav2vec2`` and ``hfemb:emo-utils/tiny-wav2vec2@1`` both refer to
    ``emo-utils/tiny-wav2vec2``; other names refer to none.
    """
    ids = []
    for arch in architectures:
        model_id = arch.partition(":")[2].partition("@")[0]
        if model_id in DEMO_MODELS and model_id not in ids:
            ids.append(model_id)
    return ids
