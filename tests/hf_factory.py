"""Tiny random transformers audio classifiers saved to a folder: the ``hf:`` family's test
models (no download; the folder is also what an offline Kaggle dataset holds)."""

from __future__ import annotations

from pathlib import Path

import torch

SR = 16000


def save_tiny_models(root: Path) -> dict[str, Path]:
    """A tiny random wav2vec2 and AST, each with its feature extractor, in ``root``."""
    import transformers

    w2v = transformers.Wav2Vec2Config(
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
    ast = transformers.ASTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_mel_bins=32,
        max_length=128,
        num_labels=2,
    )
    folders = {"wav2vec2": root / "tiny-wav2vec2", "ast": root / "tiny-ast"}
    torch.manual_seed(0)
    for config, folder in ((w2v, folders["wav2vec2"]), (ast, folders["ast"])):
        transformers.AutoModelForAudioClassification.from_config(config).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=SR).save_pretrained(folders["wav2vec2"])
    transformers.ASTFeatureExtractor(num_mel_bins=32, max_length=128).save_pretrained(
        folders["ast"]
    )
    return folders
