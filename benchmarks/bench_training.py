"""Training throughput: the full fastai loop against a bare timm loop, on the same data.

Both loops train the same model (``NormalizedModel`` around a timm network), batch size,
optimiser (AdamW) and precision on the same images, in one run:

* **full loop** -- what :func:`emo_utils.train.cv.train_cv` runs for a fold: fastai
  ``DataLoaders`` reading windows from a :class:`~emo_utils.features.store.FeatureStore` (float16,
  like the on-disk cache), the configured batch augmentation (time shift, frequency and time
  masks), fastai ``MixUp``, mixed precision on GPU, metrics, ``fit_one_cycle``;
* **bare loop** -- the images already stacked into one float32 tensor on the device,
  shuffled index slices, forward, cross-entropy, backward, ``AdamW.step``.

Images per second are measured over the training phase of every epoch after the first (which
warms up cuDNN and the allocator); the loops alternate ``--repeats`` times and the best epoch of each
loop counts, which damps the noise of a shared machine.  Target: full / bare >= 0.90, i.e. data loading and
augmentation are not the bottleneck.

Usage::

    python benchmarks/bench_training.py                      # GPU defaults when CUDA is present
    python benchmarks/bench_training.py --arch resnet18 --n-images 256 --shape 3 64 108
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from fastai.callback.core import Callback
from fastai.torch_core import default_device, set_seed

from emo_utils.config import Config
from emo_utils.features.store import FeatureStore
from emo_utils.models import NormalizedModel, build_model
from emo_utils.train.cv import make_dataloaders, make_learner


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TrainTimer(Callback):
    """Wall time and item count of the training phase of every epoch."""

    order = 100

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.items: list[int] = []

    def before_train(self) -> None:
        _sync(self.dls.device)
        self._start, self._n = time.perf_counter(), 0

    def after_batch(self) -> None:
        if self.training:
            self._n += len(self.yb[0])

    def after_train(self) -> None:
        _sync(self.dls.device)
        self.seconds.append(time.perf_counter() - self._start)
        self.items.append(self._n)


def synthetic_store(n: int, shape: tuple[int, int, int], seed: int = 0) -> FeatureStore:
    """``n`` float16 images of ``shape`` (as the on-disk cache stores them)."""
    rng = np.random.default_rng(seed)
    images = [rng.random(shape, dtype=np.float32).astype(np.float16) for _ in range(n)]
    return FeatureStore.from_arrays([f"{i}.wav" for i in range(n)], images, window_frames=shape[2])


def full_loop(store, targets, config, n_classes, device, n_valid, epochs, progress) -> float:
    """Best images/s of the training phase of epochs 2.. of the fastai loop."""
    set_seed(0)
    n = len(store)
    rows = np.arange(n)
    dls = make_dataloaders(
        store,
        train_rows=rows[n_valid:],
        train_targets=targets[n_valid:],
        valid_rows=rows[:n_valid],
        valid_targets=targets[:n_valid],
        config=config,
        device=device,
    )
    return learner_rate(
        dls,
        config,
        n_classes=n_classes,
        in_chans=store.image_shape[0],
        train_targets=targets[n_valid:],
        epochs=epochs,
        progress=progress,
    )


def learner_rate(
    dls, config, *, n_classes, in_chans, train_targets, epochs, progress=False
) -> float:
    """Best images/s of the training phase of epochs 2.. of the package's learner on ``dls``.

    The first architecture of ``config``, from scratch, behind a fixed normalisation.
    """
    tc = config.train
    body = build_model(tc.architectures[0], n_classes, pretrained=False, in_chans=in_chans)
    model = NormalizedModel(body, [0.5] * in_chans, [0.25] * in_chans)
    learn = make_learner(
        dls,
        model,
        config=tc,
        task=config.data.task,
        n_classes=n_classes,
        train_targets=train_targets,
        progress=progress,
    )
    timer = TrainTimer()
    learn.fit_one_cycle(epochs, lr_max=tc.lr, wd=tc.weight_decay, cbs=[timer])
    return max(n / s for n, s in zip(timer.items[1:], timer.seconds[1:], strict=True))


def bare_loop(store, targets, config, n_classes, device, n_valid, epochs) -> float:
    """Best images/s of epochs 2.. of a plain PyTorch loop over tensors on the device."""
    set_seed(0)
    tc = config.train
    x = torch.from_numpy(store.stack(range(n_valid, len(store)))).to(device)
    y = torch.from_numpy(targets[n_valid:]).to(device)
    body = build_model(
        tc.architectures[0], n_classes, pretrained=False, in_chans=store.image_shape[0]
    )
    model = NormalizedModel(body, [0.5] * store.image_shape[0], [0.25] * store.image_shape[0]).to(
        device
    )
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=tc.label_smoothing)
    amp = tc.mixed_precision and device.type == "cuda"
    dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler(enabled=amp and dtype == torch.float16)
    bs = min(tc.batch_size, len(x))
    model.train()
    rates = []
    for _ in range(epochs):
        order = torch.randperm(len(x), device=device)
        _sync(device)
        start, seen = time.perf_counter(), 0
        for i in range(len(x) // bs):
            idx = order[i * bs : (i + 1) * bs]
            with torch.autocast(device.type, dtype=dtype, enabled=amp):
                loss = loss_fn(model(x[idx]), y[idx])
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            seen += bs
        _sync(device)
        rates.append(seen / (time.perf_counter() - start))
    return max(rates[1:])


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="efficientnet_b0" if cuda else "resnet18")
    parser.add_argument("--n-images", type=int, default=4096 if cuda else 112)
    parser.add_argument("--n-valid", type=int, default=64 if cuda else 16)
    parser.add_argument(
        "--shape", type=int, nargs=3, default=(3, 128, 216) if cuda else (3, 64, 108),
        metavar=("C", "H", "T"),
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=64 if cuda else 16)
    parser.add_argument("--num-workers", type=int, default=4 if cuda else 0)
    parser.add_argument("--n-classes", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3, help="per loop, the first is warm-up")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each loop")
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false",
        help="full loop without progress bars (train_cv shows them by default)",
    )  # fmt: skip
    args = parser.parse_args()

    config = Config().override(
        {
            "train.architectures": [args.arch],
            "train.pretrained": False,
            "train.batch_size": args.batch_size,
            "train.num_workers": args.num_workers,
        }
    )
    device = default_device()
    store = synthetic_store(args.n_images, tuple(args.shape))
    targets = np.arange(args.n_images, dtype=np.int64) % args.n_classes
    print(
        f"device={device} arch={args.arch} images={args.n_images} shape={tuple(args.shape)} "
        f"batch={args.batch_size} workers={args.num_workers} progress={args.progress} "
        f"mixed_precision={config.train.mixed_precision and device.type == 'cuda'} "
        f"augment: time_shift={config.train.time_shift} freq_mask={config.train.freq_mask} "
        f"time_mask={config.train.time_mask} mixup={config.train.mixup}"
    )
    epochs = max(2, args.epochs)
    bare, full = 0.0, 0.0
    for _ in range(max(1, args.repeats)):  # alternate, keep the best: fair on a busy machine
        common = (store, targets, config, args.n_classes, device, args.n_valid, epochs)
        bare = max(bare, bare_loop(*common))
        full = max(full, full_loop(*common, args.progress))
    print(f"bare timm loop (tensors on device): {bare:10.1f} images/s")
    print(f"full fastai loop (cache + augment): {full:10.1f} images/s")
    print(f"ratio full / bare: {full / bare:.3f} (target >= 0.90)")


if __name__ == "__main__":
    main()
