"""Static int8 quantisation of a fold's ``model.onnx``, calibrated on its training rows.

:func:`calibration_rows` picks the rows a fold's quantisation is calibrated on: a fixed,
seeded sample of :data:`CALIBRATION_WINDOWS` rows of the fold's *training* rows (never its
validation rows, whose OOF predictions score the run), in the run's ``folds.csv``.
:func:`calibration_windows` takes one seeded random window of each from the training
cache (the raw cached windows the exported graph is fed; its normalisation is built in),
and :func:`quantize_int8` writes the quantised model: ONNX Runtime's
:func:`~onnxruntime.quantization.quantize_static` in the QDQ format, int8 weights per
output channel, uint8 activations whose ranges come from the calibration windows
(:data:`CALIBRATION_METHODS`), after ONNX Runtime's pre-processing
(:func:`~onnxruntime.quantization.shape_inference.quant_pre_process`: shape inference and
graph optimisation, which folds what it can before the quantiser places its nodes).

On a CPU with VNNI (AVX512-VNNI, AVX-VNNI) ONNX Runtime runs the quantised convolutions
as int8 dot products; ``benchmarks/bench_onnx_int8.py`` measures the speed and what
quantisation changes in the probabilities.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from ..errors import ConfigError, DataError
from ..features import FeatureStore

__all__ = [
    "CALIBRATION_BATCH",
    "CALIBRATION_METHOD",
    "CALIBRATION_METHODS",
    "CALIBRATION_SEED",
    "CALIBRATION_WINDOWS",
    "WindowReader",
    "calibration_rows",
    "calibration_windows",
    "quantize_int8",
]

#: Calibration windows per fold: one random window of each of this many training rows
#: (every training row when the fold has fewer).
CALIBRATION_WINDOWS = 128
#: Seed of the rows and windows (with the fold number: every fold its own sample).
CALIBRATION_SEED = 0
#: Windows per calibration forward pass.
CALIBRATION_BATCH = 16
#: Calibration method name -> ONNX Runtime's: how the activations' ranges are set
#: (``"minmax"``: the observed extremes; ``"percentile"``: the 99.999th percentile of the
#: absolute values; ``"entropy"``: the threshold that minimises the KL divergence).
CALIBRATION_METHODS: dict[str, CalibrationMethod] = {
    "minmax": CalibrationMethod.MinMax,
    "percentile": CalibrationMethod.Percentile,
    "entropy": CalibrationMethod.Entropy,
}
#: The default method: the best window agreement with the fp32 models on the demo run
#: (``benchmarks/bench_onnx_int8.py``; README "int8 ONNX models").
CALIBRATION_METHOD = "minmax"


def calibration_rows(
    folds: pd.DataFrame,
    *,
    fold: int,
    count: int = CALIBRATION_WINDOWS,
    seed: int = CALIBRATION_SEED,
    usable: np.ndarray | None = None,
) -> np.ndarray:
    """Rows a fold's quantisation is calibrated on: a seeded sample of its training rows.

    Parameters
    ----------
    folds : pandas.DataFrame
        The run's ``folds.csv`` (``filename, label, fold``; row ``i`` is row ``i`` of the
        training cache).
    fold : int
        The fold: its training rows are those of every other fold.
    count : int
        Rows to pick (all training rows when there are fewer), >= 1.
    seed : int
        With ``fold``, the seed of the sample.
    usable : numpy.ndarray of bool, shape (n_rows,), optional
        Rows that have an image in the cache (default: all).

    Returns
    -------
    numpy.ndarray of int64, shape (n_picked,)
        Increasing row indices, none of them a row of ``fold``.

    Raises
    ------
    ConfigError
        ``count < 1``.
    DataError
        The fold has no usable training row.
    """
    if count < 1:
        raise ConfigError("calibration windows", count, "must be >= 1")
    assigned = folds["fold"].to_numpy()
    train = (assigned != fold) & (assigned >= 0)
    if usable is not None:
        train &= np.asarray(usable, dtype=bool)
    candidates = np.flatnonzero(train)
    if len(candidates) == 0:
        raise DataError(f"fold {fold}: no training row with an image to calibrate on")
    rng = np.random.default_rng([seed, fold])
    picked = rng.choice(candidates, size=min(count, len(candidates)), replace=False)
    return np.sort(picked).astype(np.int64)


def calibration_windows(
    store: FeatureStore, *, rows: np.ndarray, fold: int, seed: int = CALIBRATION_SEED
) -> np.ndarray:
    """One seeded random window of each calibration row, as the exported graph is fed.

    Parameters
    ----------
    store : FeatureStore
        The training split's cache (rows in ``folds.csv`` order).
    rows : numpy.ndarray of int, shape (n,)
        From :func:`calibration_rows`.
    fold : int
    seed : int

    Returns
    -------
    numpy.ndarray of float32, shape (n, C, H, W)
    """
    rng = np.random.default_rng([seed, fold, 1])
    return np.stack([store.window(int(i), "random", rng) for i in rows])


class WindowReader(CalibrationDataReader):
    """The calibration windows as ONNX Runtime's calibrator reads them: batches by name.

    Parameters
    ----------
    windows : numpy.ndarray of float32, shape (n, C, H, W)
    input_name : str
        The graph's input.
    batch : int
        Windows per batch.
    """

    def __init__(
        self, windows: np.ndarray, *, input_name: str, batch: int = CALIBRATION_BATCH
    ) -> None:
        self._batches: Iterator[np.ndarray] = (
            np.ascontiguousarray(windows[s : s + batch], dtype=np.float32)
            for s in range(0, len(windows), batch)
        )
        self.input_name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch ``{input_name: (b, C, H, W)}``, ``None`` after the last."""
        batch = next(self._batches, None)
        return None if batch is None else {self.input_name: batch}


def quantize_int8(
    source: str | os.PathLike,
    target: str | os.PathLike,
    *,
    windows: np.ndarray,
    input_name: str,
    method: str = CALIBRATION_METHOD,
    per_channel: bool = True,
) -> None:
    """Write the static int8 (QDQ) quantisation of the fp32 ONNX model ``source``.

    Parameters
    ----------
    source : path-like
        The fp32 ``model.onnx``.
    target : path-like
        Where the quantised model is written (by ONNX Runtime: give a temporary path and
        move it into place).
    windows : numpy.ndarray of float32, shape (n, C, H, W)
        Calibration windows (:func:`calibration_windows`).
    input_name : str
    method : str
        A name of :data:`CALIBRATION_METHODS`.
    per_channel : bool
        One weight scale per output channel (else one per tensor).

    Raises
    ------
    ConfigError
        Unknown ``method``.
    """
    if method not in CALIBRATION_METHODS:
        raise ConfigError("calibration method", method, f"known: {sorted(CALIBRATION_METHODS)}")
    with tempfile.TemporaryDirectory(prefix="emo_int8_") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Symbolic shape inference cannot follow the free height and width of every timm
        # CNN (resnest14d); ONNX's own shape inference can.
        quant_pre_process(os.fspath(source), os.fspath(prepared), skip_symbolic_shape=True)
        quantize_static(
            os.fspath(prepared),
            os.fspath(target),
            WindowReader(windows, input_name=input_name),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CALIBRATION_METHODS[method],
        )
