"""Training throughput of on-the-fly features against the cached images, in one run.

The same fastai loop (:func:`emo_utils.train.cv.make_dataloaders` and ``make_learner``, the
same timm model, batch size, optimiser and image augmentations) trains on the same clips:

* **cached** -- windows of an image store (float16, as the on-disk cache keeps them);
* **on the fly** -- float32 waveform windows; the images are computed per batch by the
  torch backend on the training device (``train.features = "on_the_fly"``);
* **on the fly + augment** -- the same, after ``train.waveform_augmentations``
  (``--augment``, default gain, shift and noise, each with probability 0.5).

Images per second are measured over the training phase of every epoch after the first; the
loops alternate ``--repeats`` times and the best epoch of each counts.  The clips are
generated (tones in noise), so the script needs no data.

Usage::

    python benchmarks/bench_on_the_fly.py
    python benchmarks/bench_on_the_fly.py --arch resnet18 --n-clips 96 --augment gain:0.5 pitch_shift:0.5
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from bench_training import learner_rate
from fastai.torch_core import default_device, set_seed

from emo_utils.config import Config
from emo_utils.features.channels import compute_image
from emo_utils.features.on_the_fly import on_the_fly_config, waveform_images
from emo_utils.features.store import FeatureStore
from emo_utils.train.cv import make_dataloaders
from emo_utils.train.on_the_fly import on_the_fly_transforms


def clips(n: int, samples: int, sample_rate: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` clips of ``samples`` samples: a tone (100 Hz - 4 kHz) in white noise, float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / sample_rate
    return [
        (
            0.4 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t)
            + 0.05 * rng.standard_normal(samples)
        ).astype(np.float32)
        for _ in range(n)
    ]


def stores(config: Config, ys: list[np.ndarray]) -> tuple[FeatureStore, FeatureStore]:
    """The float16 image store (librosa path) and the float32 waveform store of ``ys``."""
    sr = config.audio.sample_rate
    names = [f"{i}.wav" for i in range(len(ys))]
    images = [
        compute_image(y, sample_rate=sr, config=config.features).astype(np.float16) for y in ys
    ]
    image_store = FeatureStore.from_arrays(
        names, images, window_frames=images[0].shape[-1], sample_rate=sr
    )
    waves = [np.append(y, np.float32(0.0))[None, None, :] for y in ys]  # + the sample after
    wave_store = FeatureStore.from_arrays(
        names, waves, window_frames=waves[0].shape[-1], sample_rate=sr
    )
    return image_store, wave_store


def loop(store, targets, config, n_classes, n_valid, epochs, in_chans, transforms) -> float:
    """Best images/s of the training phase of epochs 2.. of the fastai loop."""
    set_seed(0)
    rows = np.arange(len(store))
    dls = make_dataloaders(
        store,
        train_rows=rows[n_valid:],
        train_targets=targets[n_valid:],
        valid_rows=rows[:n_valid],
        valid_targets=targets[:n_valid],
        config=config,
        device=default_device(),
        batch_transforms=transforms,
    )
    return learner_rate(
        dls,
        config,
        n_classes=n_classes,
        in_chans=in_chans,
        train_targets=targets[n_valid:],
        epochs=epochs,
    )


def feature_rate(image_store, wave_store, config, batch_size) -> tuple[float, float]:
    """Images/s of reading cached windows and of computing them on the fly (no model)."""
    rows = np.arange(len(image_store))
    start = time.perf_counter()
    for b in range(0, len(rows), batch_size):
        torch.from_numpy(image_store.stack(rows[b : b + batch_size]).astype(np.float32))
    read = len(rows) / (time.perf_counter() - start)
    device = default_device()
    start = time.perf_counter()
    for b in range(0, len(rows), batch_size):
        x = torch.from_numpy(wave_store.stack(rows[b : b + batch_size])).to(device)
        waveform_images(x, sample_rate=config.audio.sample_rate, config=config.features)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return read, len(rows) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--n-clips", type=int, default=80)
    parser.add_argument("--n-valid", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--n-classes", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2, help="per loop, the first is warm-up")
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs of each loop")
    parser.add_argument("--augment", nargs="*", default=["gain:0.5", "shift:0.5", "noise:0.5"])
    parser.add_argument(
        "--channels", nargs="+", default=None, help="features.channels (default: cpu_demo's)"
    )
    parser.add_argument("--torch-threads", type=int, default=0, help="0: torch's default")
    parser.add_argument("--features-only", action="store_true", help="skip the training loops")
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    config = Config.preset("cpu_demo").override(
        {
            "train.architectures": [args.arch],
            "train.batch_size": args.batch_size,
            "train.features": "on_the_fly",
            **({"features.channels": args.channels} if args.channels else {}),
        }
    )
    augmented = config.override({"train.waveform_augmentations": args.augment})
    sr, duration = config.audio.sample_rate, config.audio.duration
    ys = clips(args.n_clips, int(duration * sr), sr)
    image_store, wave_store = stores(config, ys)
    assert on_the_fly_config(config).features.cache_dtype == wave_store.frames.dtype.name
    targets = np.arange(args.n_clips, dtype=np.int64) % args.n_classes
    c = image_store.image_shape[0]
    print(
        f"device={default_device()} arch={args.arch} clips={args.n_clips} "
        f"image={image_store.image_shape} waveform={wave_store.image_shape} sr={sr} "
        f"batch={args.batch_size} channels={config.features.channels} "
        f"augment={args.augment} torch_threads={torch.get_num_threads()}"
    )
    read, computed = feature_rate(image_store, wave_store, config, args.batch_size)
    print(f"features only: cached windows read {read:8.1f} images/s, computed {computed:8.1f}")
    if args.features_only:
        return
    common = (targets, config, args.n_classes, args.n_valid, max(2, args.epochs), c)
    cached = fly = fly_aug = 0.0
    for _ in range(max(1, args.repeats)):
        cached = max(cached, loop(image_store, *common, ()))
        fly = max(fly, loop(wave_store, *common, on_the_fly_transforms(config)))
        aug_common = (targets, augmented, *common[2:])
        fly_aug = max(fly_aug, loop(wave_store, *aug_common, on_the_fly_transforms(augmented)))
    print(f"cached images:            {cached:8.1f} images/s")
    print(f"on the fly:               {fly:8.1f} images/s ({fly / cached:.2f}x cached)")
    print(f"on the fly + augment:     {fly_aug:8.1f} images/s ({fly_aug / cached:.2f}x cached)")


if __name__ == "__main__":
    main()
