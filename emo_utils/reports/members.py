"""The members of a run's ensemble: family, input, OOF score and weight, one row per model."""

from __future__ import annotations

import os

import pandas as pd

from ..models import resolve_architecture
from ..runs import RunDir

__all__ = ["ensemble_members"]


def ensemble_members(run_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per model of a trained run: its family, its input and its part in the ensemble.

    Parameters
    ----------
    run_dir : str or os.PathLike
        A run folder with ``config.json`` (and, once predicted, ``ensemble_report.json``).

    Returns
    -------
    pandas.DataFrame
        Columns ``model`` (the ``train.architectures`` name), ``family`` (its model-registry
        prefix: ``timm``, ``classical``, ``hf``, ``hfemb``, ...), ``input`` (the input store
        it reads: ``image``, ``features``, ``waveform``, ``embeddings``), the OOF score of
        the ensemble report's metric (column named after it; absent before ``predict``), and
        ``weight``: the model's weight in the submission's ensemble method where that method
        fits weights (``select``, ``weighted``: learnt on OOF; ``single``: 1 for the chosen
        model), else empty (every member counts equally, or a learnt combiner such as
        ``stacking`` mixes them).
    """
    run = RunDir(run_dir)
    config = run.read_config()
    rows = []
    for arch in config.train.architectures:
        family, _ = resolve_architecture(arch)
        rows.append({"model": arch, "family": family.prefix, "input": family.input})
    table = pd.DataFrame(rows, columns=["model", "family", "input"])
    report = run.read_ensemble_report() or {}
    metric = report.get("metric")
    scores = {
        row.get("name"): row.get(metric)
        for row in report.get("rows", [])
        if isinstance(row, dict) and row.get("kind") == "model"
    }
    if isinstance(metric, str) and scores:
        table[metric] = [scores.get(arch) for arch in table["model"]]
    method = report.get("submission_method")
    detail = (report.get("details") or {}).get(method)
    if isinstance(detail, dict):
        table["weight"] = [float(detail.get(arch, 0.0)) for arch in table["model"]]
    elif isinstance(detail, str):  # "single": the chosen model's name
        table["weight"] = [1.0 if arch == detail else 0.0 for arch in table["model"]]
    else:
        table["weight"] = pd.NA
    return table
