"""Tiny random transformers audio classifiers saved to a folder: the ``hf:`` family's test
models (no download; the folder is also what an offline Kaggle dataset holds)."""

from __future__ import annotations

from pathlib import Path

from emo_utils.datasets.tiny_models import SAMPLE_RATE, save_tiny_ast, save_tiny_wav2vec2

SR = SAMPLE_RATE


def save_tiny_models(root: Path) -> dict[str, Path]:
    """A tiny random wav2vec2 and AST, each with its feature extractor, in ``root``."""
    return {
        "wav2vec2": save_tiny_wav2vec2(root / "tiny-wav2vec2"),
        "ast": save_tiny_ast(root / "tiny-ast"),
    }
