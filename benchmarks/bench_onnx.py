"""Benchmark: fold-model inference on ONNX Runtime against torch, on the CPU.

A timm CNN (``--arch``, random weights: speed does not depend on them) wrapped in the
:class:`~emo_utils.models.NormalizedModel` every fold model is, exported the way
``python -m emo_utils export --format onnx`` exports it
(:func:`emo_utils.infer.onnx_export._export`), then fed the same random windows of the
default config's shape by torch (``inference_mode``) and by
:class:`~emo_utils.infer.onnx_export.OnnxFoldModel`, alternating, best of ``--repeat``
runs, in one process.  Prints clips per second for batch sizes 1 and ``--batch`` and the
max abs difference of the softmax probabilities (target: within 1e-4).

Usage::

    .venv/bin/python benchmarks/bench_onnx.py [--arch resnet18] [--clips 64] [--batch 32]
        [--repeat 3] [--threads 0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import timm
import torch

from emo_utils.config import Config
from emo_utils.features import n_frames
from emo_utils.infer.onnx_export import OnnxFoldModel, _export
from emo_utils.models import NormalizedModel


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18", help="timm architecture (default resnet18)")
    parser.add_argument("--clips", type=int, default=64, help="windows per run (default 64)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per engine (default 3)")
    parser.add_argument(
        "--threads", type=int, default=0, help="threads of both engines (default 0: their own)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    config = Config()
    f = config.features
    shape = (len(f.channels), f.n_mels, n_frames(config.audio.n_samples, hop_length=f.hop_length))
    body = timm.create_model(args.arch, pretrained=False, num_classes=8, in_chans=shape[0])
    model = NormalizedModel(body, np.full(shape[0], 0.4), np.full(shape[0], 0.2)).eval()
    x = torch.from_numpy(np.random.default_rng(0).random((args.clips, *shape), dtype=np.float32))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        t0 = time.perf_counter()
        _export(model, shape, path)
        export_seconds = time.perf_counter() - t0
        onnx_model = OnnxFoldModel(path, threads=args.threads or None)
        print(
            f"{args.arch}, windows {shape}, {args.clips} clips; torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), {os.cpu_count()} CPUs, load average "
            f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}; export {export_seconds:.1f} s"
        )
        print(f"  {'clips per second':28s} {'torch':>9s} {'onnxruntime':>12s} {'ratio':>7s}")
        for batch in (1, args.batch):
            best = {"torch": np.inf, "onnx": np.inf}
            outputs = {}
            engines = {"torch": model, "onnx": onnx_model}
            with torch.inference_mode():
                for engine in engines.values():  # warm-up
                    engine(x[:batch])
                for r in range(args.repeat):
                    order = list(engines) if r % 2 == 0 else list(engines)[::-1]
                    for name in order:
                        t0 = time.perf_counter()
                        outputs[name] = torch.cat(
                            [engines[name](x[s : s + batch]) for s in range(0, len(x), batch)]
                        )
                        best[name] = min(best[name], time.perf_counter() - t0)
            diff = float((outputs["torch"].softmax(1) - outputs["onnx"].softmax(1)).abs().max())
            rates = {k: len(x) / v for k, v in best.items()}
            print(
                f"  {f'batch {batch}':28s} {rates['torch']:9.1f} {rates['onnx']:12.1f} "
                f"{rates['onnx'] / rates['torch']:6.2f}x   max |p_onnx - p_torch| {diff:.2g}"
            )


if __name__ == "__main__":
    main()
