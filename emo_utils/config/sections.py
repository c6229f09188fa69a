"""The eight frozen, validated sections of :class:`~emo_utils.config.Config`.

Each section validates its own fields when it is built; checks that need two sections
(``features.fmax`` below Nyquist, names that depend on ``data.task``) are the
:class:`~emo_utils.config.Config`'s.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

from ._validate import (
    _check,
    _choice,
    _integer,
    _is_number,
    _positive,
    _probability,
    _probability_text,
    _registered,
    _task,
)

CACHE_DTYPES = ("float16", "float32")
#: ``ensemble.pool``: how the views (windows, shifts) of a clip are pooled per class.
POOLS = ("mean", "max")
#: ``train.pseudo_splits``: the splits whose clips a pseudo-label round may label.
PSEUDO_SPLITS = ("test", "unlabelled")

#: ``train.features``: read cached images, or compute them per batch from waveforms.
TRAIN_FEATURES = ("cache", "on_the_fly")

#: Crop policies that need a random generator: ``audio.train_crop`` only, never ``audio.crop``.
_TRAINING_ONLY_CROPS = ("random",)

#: ``features.device``: a torch device name (checked without importing torch).
_DEVICE_PATTERN = r"auto|cpu|mps|cuda(:[0-9]+)?"


def _check_pseudo(train: TrainConfig) -> None:
    """The ``train.pseudo_*`` fields (the parent run itself is checked where it is read)."""
    _check(
        isinstance(train.pseudo_from, str) and train.pseudo_from == train.pseudo_from.strip(),
        "train.pseudo_from",
        train.pseudo_from,
        "must be a run folder path without surrounding spaces, or empty",
    )
    if train.pseudo_threshold is not None:
        _probability("train.pseudo_threshold", train.pseudo_threshold)
    _positive("train.pseudo_power", train.pseudo_power)
    _check(
        isinstance(train.pseudo_splits, tuple)
        and len(train.pseudo_splits) > 0
        and len(set(train.pseudo_splits)) == len(train.pseudo_splits)
        and set(train.pseudo_splits) <= set(PSEUDO_SPLITS),
        "train.pseudo_splits",
        train.pseudo_splits,
        f"must be a non-empty list of distinct names in {list(PSEUDO_SPLITS)}",
    )


@dataclass(frozen=True)
class DataConfig:
    """Where the competition files are and what their columns are called.

    Attributes
    ----------
    train_csv, test_csv, sample_submission : str
        CSV file names inside the data folder.  ``sample_submission`` may be absent on disk;
        then the submission columns are ``filename_column, label_column``.
    train_audio_dir, test_audio_dir : str
        Audio sub-folders inside the data folder (``"."`` for the data folder itself).
    filename_column, label_column : str
        Column names in the CSVs, and the submission's columns (``filename,emotion`` in the
        reference competition).
    skip_bad_train : bool
        If False (default) any training file that cannot be loaded stops the run before
        training, with all problems listed at once.  If True such rows are dropped and
        counted in the end-of-run report.
    task : str
        The task-registry entry (:data:`emo_utils.tasks.TASKS`): how targets are read, the
        loss, metrics, folds, OOF/submission formats.  Default ``"classification"``
        (single-label, one class per clip).
    allow_outside_paths : bool
        If False (default) a CSV row whose file name is an absolute path, holds a ``..``
        component, or resolves (through symlinks) outside the data folder stops every stage
        before any work, all such rows listed in one error.  Symlinks that stay inside the
        data folder are always allowed.  Set it to True only for CSVs you trust.
    label_separator : str
        Multi-label tasks: the separator of the labels in ``label_column`` (default ``","``
        as in Freesound's ``"Bark,Dog"``; ``" "`` for space-separated lists) and of the
        label-list column of the submission.
    label_columns : tuple of str
        Multi-label tasks: the 0/1 columns of ``train.csv``, one per label.  Empty (the
        default) means: ``label_column`` when ``train.csv`` has it, else the sample
        submission's label columns.
    empty_label : str
        Multi-label tasks: the label given to a clip whose label list is empty (e.g.
        ``"Silence"``).  Empty (the default): such a clip is an error listing the rows.
    unlabelled_dir : str
        Optional folder of unlabelled clips inside the data folder (empty, the default:
        none).  Every file in it (sub-folders included, hidden files left out) with an
        extension a decoder reads is a row of the ``unlabelled`` split, cached like the test
        set; pseudo-label rounds (``train.pseudo_from``) add them to the training folds.
    """

    train_csv: str = "train.csv"
    test_csv: str = "test.csv"
    sample_submission: str = "sample_submission.csv"
    train_audio_dir: str = "train"
    test_audio_dir: str = "test"
    filename_column: str = "filename"
    label_column: str = "emotion"
    skip_bad_train: bool = False
    task: str = "classification"
    allow_outside_paths: bool = False
    label_separator: str = ","
    label_columns: tuple[str, ...] = ()
    empty_label: str = ""
    unlabelled_dir: str = ""

    @property
    def label_kind(self) -> str:
        """How ``train.csv`` holds the targets for ``task``: ``"single"`` or ``"multi"``."""
        return _task(self.task).label_kind

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("label_separator", "empty_label", "unlabelled_dir"):
                continue
            if f.type == "str" or isinstance(value, str):
                _check(
                    isinstance(value, str) and value.strip() != "",
                    f"data.{f.name}",
                    value,
                    "must be a non-empty string",
                )
        _check(
            self.filename_column != self.label_column,
            "data.label_column",
            self.label_column,
            "must differ from data.filename_column",
        )
        _registered("data.task", self.task, "task")
        _check(
            isinstance(self.label_separator, str) and len(self.label_separator) > 0,
            "data.label_separator",
            self.label_separator,
            "must be a non-empty string (e.g. ',' or ' ')",
        )
        _check(
            isinstance(self.empty_label, str) and self.empty_label == self.empty_label.strip(),
            "data.empty_label",
            self.empty_label,
            "must be a label name without surrounding spaces, or empty",
        )
        _check(
            all(isinstance(c, str) and c.strip() for c in self.label_columns)
            and len(set(self.label_columns)) == len(self.label_columns)
            and self.filename_column not in self.label_columns,
            "data.label_columns",
            self.label_columns,
            "must be distinct non-empty column names other than data.filename_column",
        )
        _check(
            isinstance(self.unlabelled_dir, str)
            and self.unlabelled_dir == self.unlabelled_dir.strip(),
            "data.unlabelled_dir",
            self.unlabelled_dir,
            "must be a folder name without surrounding spaces, or empty",
        )


@dataclass(frozen=True)
class AudioConfig:
    """Decoding and fitting clips to a fixed duration.

    Attributes
    ----------
    sample_rate : int
        Target rate in Hz; every clip is resampled to it with soxr (librosa's default
        ``soxr_hq`` quality) and mixed to mono float32.
    duration : float
        Seconds per image (default 5 s).  Shorter clips are padded (``pad``).
    max_duration : float
        Seconds of each clip kept in the feature cache (>= ``duration``).  Equal to
        ``duration`` (the default) caches exactly one window per clip; larger values allow
        random training crops and multi-window test-time averaging over long clips.
    crop : str
        Which window of a long clip is used for validation and prediction: any name in
        :data:`emo_utils.audio.CROP_POLICIES` except ``"random"`` (which needs a random
        generator and is for training only).  Default ``"start"``: the first ``duration``
        seconds, which is what the reference solution used and the cheapest to decode.
    train_crop : str
        Which window is used for training: a name in :data:`emo_utils.audio.CROP_POLICIES`
        (``"start"``, ``"center"``, ``"random"``).  ``"random"`` draws a new window each epoch
        (only different from ``crop`` when ``max_duration > duration``).
    min_duration : float
        Clips shorter than this (seconds) are padded with a warning; zero-sample clips are an
        error.
    res_type : str
        Resampler passed to :func:`librosa.resample` (``"soxr_hq"`` is librosa's default).
    pad : str
        How a clip shorter than ``duration`` is filled to one window, a name in
        :data:`emo_utils.audio.PAD_MODES`: ``"zero"`` (default: zeros after it) or
        ``"tile"`` (the clip repeated; recommended for pretrained ``hf:`` waveform models,
        which degrade on zero-padded short input).  Applies to images and waveforms alike.
    waveform_sample_rate : int
        Rate of the waveform input of ``hf:`` models (:mod:`emo_utils.features.waveform`):
        the clips are cached at this rate, mono float16.  Every ``hf:`` model's feature
        extractor must take this rate (checked before training).  Default 16000 Hz, the
        rate of wav2vec2, HuBERT, WavLM and AST.  Images do not depend on it.
    """

    sample_rate: int = 22050
    duration: float = 5.0
    max_duration: float = 5.0
    crop: str = "start"
    train_crop: str = "start"
    min_duration: float = 0.1
    res_type: str = "soxr_hq"
    pad: str = "zero"
    waveform_sample_rate: int = 16000

    def __post_init__(self) -> None:
        for name in ("sample_rate", "waveform_sample_rate"):
            _integer(
                f"audio.{name}",
                getattr(self, name),
                minimum=4000,
                maximum=192000,
                reason="must be an integer between 4000 and 192000 Hz",
            )
        _positive("audio.duration", self.duration)
        _positive("audio.max_duration", self.max_duration)
        _check(
            self.max_duration >= self.duration,
            "audio.max_duration",
            self.max_duration,
            f"must be >= audio.duration ({self.duration})",
        )
        _registered("audio.crop", self.crop, "crop", exclude=_TRAINING_ONLY_CROPS)
        _registered("audio.train_crop", self.train_crop, "crop")
        _positive("audio.min_duration", self.min_duration, allow_zero=True)
        _choice(
            "audio.res_type",
            self.res_type,
            ("soxr_vhq", "soxr_hq", "soxr_mq", "soxr_lq", "soxr_qq", "polyphase", "fft", "scipy"),
        )
        _registered("audio.pad", self.pad, "pad")

    @property
    def n_samples(self) -> int:
        """Samples per image window: ``round(duration * sample_rate)``."""
        return round(self.duration * self.sample_rate)


@dataclass(frozen=True)
class FeatureConfig:
    """The STFT and the image channels.

    One STFT is computed per clip; every channel is derived from it.  Images have shape
    ``(len(channels), n_mels, frames)`` with ``frames = 1 + n_samples // hop_length``.

    Attributes
    ----------
    n_fft, hop_length, win_length : int
        STFT parameters (``win_length`` 0 means ``n_fft``), Hann window, centred frames.
    n_mels, fmin, fmax : int, float, float
        Mel filterbank (``fmax`` 0 means ``sample_rate / 2``).  ``n_mels`` is also the
        image height: the other channels are resized to it.
    n_chroma : int
        Chroma bins before resizing.
    top_db : float
        Dynamic range kept by the dB conversions (``None``-like 0 disables clipping).
    channels : tuple of str
        Names in the channel registry of :mod:`emo_utils.features.spectrum`; default
        ``("mel", "chroma", "stft")``.
    normalization : str
        Per-channel scaling of the image, defined for silent and constant clips: a name in
        :data:`emo_utils.features.NORMALIZATIONS` (``"fixed"``, ``"minmax"``, ``"standard"``,
        ``"none"``).
    cache_dtype : {"float16", "float32"}
        Storage type of the on-disk cache.
    precision : {"float32", "float64"}
        Arithmetic precision of the feature computation.
    backend : str
        What computes the images: a name in :data:`emo_utils.features.backends.BACKENDS`,
        ``"librosa"`` (default, the exact reference) or ``"torch"`` (batched in torch, on
        the CPU or a GPU; within 1e-3 dB of librosa).  Part of the cache key.
    device : str
        Where the ``"torch"`` backend computes: ``"auto"`` (default: CUDA when present,
        else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.  Not part of the
        cache key (the images agree within the backend's tolerance).
    engine : str
        What computes the cache's chunks: ``"local"`` (default: this process and joblib
        worker processes) or ``"ray"`` (Ray Data, :mod:`emo_utils.features.ray_engine`); the
        cache is the same byte for byte, so neither this nor ``ray_address`` is in its key.
    ray_address : str
        The Ray cluster of ``engine = "ray"``: ``""`` (a running ``ray.init`` instance, else
        a local one for the build), ``"auto"``, or ``"ray://HOST:PORT"``.
    """

    n_fft: int = 2048
    hop_length: int = 512
    win_length: int = 0
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float = 0.0
    n_chroma: int = 12
    top_db: float = 80.0
    channels: tuple[str, ...] = ("mel", "chroma", "stft")
    normalization: str = "fixed"
    cache_dtype: str = "float16"
    precision: str = "float32"
    backend: str = "librosa"
    device: str = "auto"
    engine: str = "local"
    ray_address: str = ""

    def __post_init__(self) -> None:
        for name in ("n_fft", "hop_length", "n_mels", "n_chroma"):
            _integer(
                f"features.{name}",
                getattr(self, name),
                minimum=1,
                reason="must be a positive integer",
            )
        _integer(
            "features.win_length",
            self.win_length,
            minimum=0,
            maximum=self.n_fft,
            reason=f"must be an integer in [0, n_fft={self.n_fft}] (0 means n_fft)",
        )
        _positive("features.fmin", self.fmin, allow_zero=True)
        _positive("features.fmax", self.fmax, allow_zero=True)
        _check(
            self.fmax == 0 or self.fmax > self.fmin,
            "features.fmax",
            self.fmax,
            f"must be 0 (Nyquist) or > fmin ({self.fmin})",
        )
        _positive("features.top_db", self.top_db, allow_zero=True)
        _check(
            isinstance(self.channels, tuple)
            and len(self.channels) > 0
            and all(isinstance(c, str) and c for c in self.channels),
            "features.channels",
            self.channels,
            "must be a non-empty list of channel names",
        )
        # features.channels are checked against the channel registry where images are built
        # (features.store, features.spectrum): a channel may be registered after the config.
        _registered("features.normalization", self.normalization, "normalization")
        _choice("features.cache_dtype", self.cache_dtype, CACHE_DTYPES)
        _choice("features.precision", self.precision, ("float32", "float64"))
        _registered("features.backend", self.backend, "feature_backend")
        _check(
            isinstance(self.device, str) and re.fullmatch(_DEVICE_PATTERN, self.device) is not None,
            "features.device",
            self.device,
            'must be "auto", "cpu", "cuda", "cuda:N" or "mps"',
        )
        _registered("features.engine", self.engine, "chunk_engine")
        _check(
            isinstance(self.ray_address, str) and self.ray_address == self.ray_address.strip(),
            "features.ray_address",
            self.ray_address,
            'must be "", "auto" or a Ray address such as "ray://host:10001"',
        )


@dataclass(frozen=True)
class StatisticsConfig:
    """Per-clip summary statistics, the input of the classical models (``classical:*``).

    Computed only when ``train.architectures`` holds a model of a family whose input is
    ``"features"`` (:mod:`emo_utils.features.statistics`), and cached apart from the images.

    Attributes
    ----------
    descriptors : tuple of str
        Names in :data:`emo_utils.features.statistics.DESCRIPTORS` (default: all of them:
        MFCC and their deltas, chroma, spectral contrast, centroid, bandwidth, roll-off,
        flatness, zero-crossing rate, RMS level in dB).
    n_mfcc : int
        MFCC coefficients.
    n_fft, hop_length : int
        STFT of the descriptors.
    percentiles : tuple of float
        Percentiles (0-100) summarising each descriptor over time, besides its mean and
        standard deviation.
    """

    descriptors: tuple[str, ...] = (
        "mfcc",
        "mfcc_delta",
        "chroma",
        "contrast",
        "centroid",
        "bandwidth",
        "rolloff",
        "flatness",
        "zcr",
        "rms",
    )
    n_mfcc: int = 20
    n_fft: int = 2048
    hop_length: int = 512
    percentiles: tuple[float, ...] = (10.0, 50.0, 90.0)

    def __post_init__(self) -> None:
        _check(
            isinstance(self.descriptors, tuple)
            and len(self.descriptors) > 0
            and len(set(self.descriptors)) == len(self.descriptors),
            "statistics.descriptors",
            self.descriptors,
            "must be a non-empty list of distinct descriptor names",
        )
        for name in self.descriptors:
            _registered("statistics.descriptors", name, "descriptor")
        for name in ("n_mfcc", "n_fft", "hop_length"):
            _integer(f"statistics.{name}", getattr(self, name), minimum=1)
        _check(
            isinstance(self.percentiles, tuple)
            and all(_is_number(p) and 0 <= p <= 100 for p in self.percentiles)
            and len(set(self.percentiles)) == len(self.percentiles),
            "statistics.percentiles",
            self.percentiles,
            "must be distinct numbers in [0, 100]",
        )


@dataclass(frozen=True)
class TrainConfig:
    """Cross-validation, models, optimisation and augmentation.

    Attributes
    ----------
    architectures : tuple of str
        Model-registry names (:data:`emo_utils.models.MODEL_FAMILIES`): timm names
        (``timm.list_models()``; the default, ResNeSt50 + EfficientNet B0 + B2 with
        pretrained weights, gives the mode vote three voters), ``classical:<name>``
        (scikit-learn models on clip statistics) and ``hf:<hub id or local folder>``
        (``transformers`` waveform models: wav2vec2, HuBERT, WavLM, AST, ...).
    pretrained : bool
        Load pretrained weights (timm hub when online, ``weights_dir`` when offline).
    weights_dir : str
        Optional folder or file with local pretrained weights for offline kernels.
    n_folds, seed : int
        Stratified K-fold split, shuffled with ``seed``; the seed also fixes sampling.
    use_groups : bool
        Keep near-duplicate groups in one fold (``StratifiedGroupKFold``).
    epochs, batch_size, lr, weight_decay : int, int, float, float
        One-cycle schedule settings.
    label_smoothing : float
        Label smoothing of the loss (0 = off): cross-entropy's, or for multi-label tasks
        targets pulled from 0/1 to ``eps/2`` and ``1 - eps/2``.
    class_weights : bool
        Weight the loss by inverse class frequency (single-label tasks).
    loss : str or None
        The task's loss (:attr:`emo_utils.tasks.Task.losses`): ``"cross_entropy"`` for
        classification, ``"bce"`` or ``"focal"`` for multi-label.  ``None`` (default): the
        task's first; :class:`Config` resolves it.
    focal_gamma : float
        Focusing parameter of the focal loss (``loss = "focal"``).
    balanced_sampling : bool
        Multi-label tasks: draw training clips with probability proportional to the inverse
        frequency of their rarest label (fastai's ``WeightedDL``), so rare labels are seen
        as often as common ones.
    mixup_targets : {"mix", "union"}
        Multi-label tasks with ``mixup > 0``: the targets of a mixed clip are the same mix
        of both clips' labels (``"mix"``, fastai's default) or their union (``"union"``,
        the element-wise max: a sound mixed in is still present).
    monitor : str or None
        Metric that picks the best epoch: a metric of the task (``Task.metrics``) or
        ``"valid_loss"``.  ``None`` (the default) means ``ensemble.metric``; :class:`Config`
        resolves it, so a saved ``config.json`` holds the name.
    early_stopping_patience : int
        Epochs without improvement before stopping (0 = off).
    pseudo_from : str
        Pseudo-label round: the parent run folder whose ensemble labels the
        ``pseudo_splits`` clips (soft targets) that join the training part of every fold;
        empty (the default): no pseudo-labels.  The parent must be trained and predicted,
        with the same classes and ``folds.csv`` (copied into this run), so OOF scores stay
        comparable across rounds (:mod:`emo_utils.endgame.pseudo`).
    pseudo_threshold : float or None
        Which pseudo-labelled clips are kept (:meth:`emo_utils.tasks.Task.pseudo_targets`).
        Single-label: a clip whose top probability reaches it (``None``, the default: every
        clip; the soft targets carry the doubt).  Multi-label: the decision threshold of
        every label, a clip being kept when one of its labels reaches it (``None``: per label,
        tuned like the parent's ``thresholds.json`` on the parent's OOF rows outside the fold).
    pseudo_power : float
        Sharpening of the soft targets, ``1 / temperature``: single-label ``p ** k``
        renormalised; multi-label ``sigmoid(k * (logit(p) - logit(threshold)))``, so the
        threshold maps to 0.5.  1 (the default): the parent's probabilities (single-label)
        unchanged; larger values move targets towards hard labels.
    pseudo_splits : tuple of str
        Which clips are pseudo-labelled: ``"test"`` and/or ``"unlabelled"``
        (``data.unlabelled_dir``).
    mixed_precision : bool
        Use fp16/bf16 autocast when a GPU is present (ignored on CPU).
    image_normalization : str
        Per-channel normalisation of the images fed to the network, a name in
        :data:`emo_utils.models.IMAGE_NORMALIZATIONS`; ``"dataset"`` (the default) uses the
        training fold's channel mean and std.
    time_shift, freq_mask, time_mask, mixup : float
        Augmentation: max fraction of frames to roll, max fraction of mel bins and frames to
        mask (SpecAugment), and mixup alpha (0 = off for each).
    num_workers : int
        DataLoader workers (0 = main process).
    freeze_feature_encoder : bool
        ``hf:`` models: keep the convolutional feature encoder (wav2vec2, HuBERT, WavLM) at
        its pretrained weights (the usual fine-tuning recipe; default True).  Models without
        one (AST) train every layer.
    layer_decay : float
        ``hf:`` models: layer-wise learning-rate decay in (0, 1].  The classifier head
        trains at ``lr``, the transformer layer below it at ``lr * layer_decay``, the next at
        ``lr * layer_decay ** 2``, ..., the embeddings and feature encoder at the lowest rate.
        1.0 (default): one rate for every layer.  Other families train as one group.
    features : {"cache", "on_the_fly"}
        Where image models get their images: ``"cache"`` (default) reads windows of the
        image cache; ``"on_the_fly"`` reads waveform windows (float32, ``audio.sample_rate``)
        and computes the images on the training device per batch with the torch backend,
        in training and prediction alike (:mod:`emo_utils.features.on_the_fly`).
    waveform_augmentations : tuple of str
        On-the-fly runs: ``"name:probability"`` entries of
        :data:`emo_utils.train.waveform_augment.WAVEFORM_AUGMENTATIONS` (``gain``,
        ``shift``, ``noise``, ``pitch_shift``, ``time_stretch``), applied per training clip before the
        features; empty (default): none.
    """

    architectures: tuple[str, ...] = ("resnest50d", "efficientnet_b0", "efficientnet_b2")
    pretrained: bool = True
    weights_dir: str = ""
    n_folds: int = 5
    seed: int = 42
    use_groups: bool = False
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.0
    class_weights: bool = False
    loss: str | None = None
    focal_gamma: float = 2.0
    balanced_sampling: bool = False
    mixup_targets: str = "mix"
    monitor: str | None = None
    early_stopping_patience: int = 0
    pseudo_from: str = ""
    pseudo_threshold: float | None = None
    pseudo_power: float = 1.0
    pseudo_splits: tuple[str, ...] = PSEUDO_SPLITS
    mixed_precision: bool = True
    image_normalization: str = "dataset"
    time_shift: float = 0.2
    freq_mask: float = 0.15
    time_mask: float = 0.15
    mixup: float = 0.4
    num_workers: int = 0
    freeze_feature_encoder: bool = True
    layer_decay: float = 1.0
    features: str = "cache"
    waveform_augmentations: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check(
            isinstance(self.architectures, tuple)
            and len(self.architectures) > 0
            and all(isinstance(a, str) and a.strip() for a in self.architectures),
            "train.architectures",
            self.architectures,
            "must be a non-empty list of model names (timm names, classical:<name>, "
            "hf:<hub id or folder>)",
        )
        _check(
            len(set(self.architectures)) == len(self.architectures),
            "train.architectures",
            self.architectures,
            "must not repeat a name",
        )
        for name, low in (
            ("n_folds", 2),
            ("epochs", 1),
            ("batch_size", 1),
            ("seed", 0),
            ("early_stopping_patience", 0),
            ("num_workers", 0),
        ):
            _integer(f"train.{name}", getattr(self, name), minimum=low)
        _positive("train.lr", self.lr)
        _positive("train.weight_decay", self.weight_decay, allow_zero=True)
        _check(
            _is_number(self.label_smoothing) and 0.0 <= self.label_smoothing < 1.0,
            "train.label_smoothing",
            self.label_smoothing,
            "must be a number in [0, 1)",
        )
        _positive("train.focal_gamma", self.focal_gamma, allow_zero=True)
        _choice("train.mixup_targets", self.mixup_targets, ("mix", "union"))
        _check_pseudo(self)
        # train.monitor and train.loss depend on data.task: Config checks them.
        _registered("train.image_normalization", self.image_normalization, "image_normalization")
        for name in ("time_shift", "freq_mask", "time_mask"):
            _probability(f"train.{name}", getattr(self, name))
        _positive("train.mixup", self.mixup, allow_zero=True)
        _check(
            _is_number(self.layer_decay) and 0.0 < self.layer_decay <= 1.0,
            "train.layer_decay",
            self.layer_decay,
            "must be a number in (0, 1] (1 = no layer-wise decay)",
        )
        _choice("train.features", self.features, TRAIN_FEATURES)
        _check(
            isinstance(self.waveform_augmentations, tuple),
            "train.waveform_augmentations",
            self.waveform_augmentations,
            "must be a list of 'name:probability' entries",
        )
        if self.waveform_augmentations:
            _check(
                self.features == "on_the_fly",
                "train.waveform_augmentations",
                self.waveform_augmentations,
                "need train.features = 'on_the_fly' (the cached images have no waveform)",
            )
        for entry in self.waveform_augmentations:
            name, _sep, prob = entry.partition(":")
            _registered("train.waveform_augmentations", name, "waveform_augmentation")
            _check(
                _probability_text(prob),
                "train.waveform_augmentations",
                entry,
                "must be 'name:probability' with a probability in (0, 1], e.g. 'gain:0.5'",
            )


@dataclass(frozen=True)
class EnsembleConfig:
    """Test-time averaging, ensembling and the competition metric.

    Attributes
    ----------
    method : str
        The ensemble method that writes the submission, one of the task's
        (``Task.ensembles``; :data:`emo_utils.ensemble.ENSEMBLES` for classification,
        :data:`emo_utils.ensemble.MULTILABEL_ENSEMBLES` for multi-label): ``"mode"``
        (majority vote, the reference solution's method), ``"single"`` (the best single
        model on OOF), ``"mean"``, ``"geometric"``, ``"rank"``, ``"power"``, ``"select"``
        (greedy forward selection), ``"weighted"`` (optimised weights), ``"stacking"``, or
        ``"best"`` (the default: whichever scored best on honest OOF; ties go to
        ``"single"``, so it never scores below the best single model).
    weights : tuple of float
        Optional per-architecture weights, in the order of ``train.architectures``.
    metric : str or None
        Competition metric used to score OOF predictions, one of the task's metrics
        (``Task.metrics``: :data:`emo_utils.metrics.METRICS` for classification,
        :data:`emo_utils.metrics.MULTILABEL_METRICS` for multi-label); also the default of
        ``train.monitor``.  ``None`` (default): the task's default (``"accuracy"``,
        multi-label ``"map"``); :class:`Config` resolves it.
    tta_windows : bool
        Average over every ``duration`` window of long clips (needs
        ``audio.max_duration > audio.duration``).  Multi-label tasks always predict from
        every window (whole-clip predictions, pooled by ``pool``).
    pool : str or None
        How the views of a clip are pooled into its probabilities: ``"mean"`` or
        ``"max"`` (per class).  ``None`` (default): the task's (classification ``"mean"``;
        multi-label ``"max"``, because a label that sounds in one window of a long clip is
        present in the clip).
    threshold : {"per_label", "global"}
        Multi-label tasks: decision thresholds tuned on OOF per label, or one for all.
    min_positives : int
        Multi-label tasks: a label with fewer OOF positives gets the global threshold.
    vote_k : int
        Multi-label ``"mode"`` ensemble: a label is present when at least ``vote_k`` models
        pass their thresholds (0, the default: a majority).
    tta_shifts : int
        Number of extra time-rolled copies averaged at test time (0 = off).
    stacking_model : str
        scikit-learn model used by ``"stacking"``, a name in
        :data:`emo_utils.ensemble.STACKING_MODELS` (``"logistic"``, ``"ridge"``).
    selection_rounds : int
        ``"select"``: the most models added by greedy forward selection with replacement
        after its initial ensemble (an integer >= 1; default 20); it stops earlier when no
        addition improves the OOF metric.
    selection_init : int
        ``"select"``: the initial ensemble is the best mean of the top 1, 2, ...,
        ``selection_init`` single models (an integer >= 1; default 1, the best single
        model; values above the number of models mean all of them).
    power : float
        ``"power"``: the exponent ``k`` (a finite number > 0; default 2).  Classification
        averages ``p ** k`` and renormalises each row; multi-label takes the power mean
        ``(mean p ** k) ** (1 / k)`` per label.  ``k = 1`` is ``"mean"``; a larger ``k``
        lets confident models count for more.
    """

    method: str = "best"
    weights: tuple[float, ...] = ()
    metric: str | None = None
    tta_windows: bool = False
    tta_shifts: int = 0
    stacking_model: str = "logistic"
    pool: str | None = None
    threshold: str = "per_label"
    min_positives: int = 5
    vote_k: int = 0
    selection_rounds: int = 20
    selection_init: int = 1
    power: float = 2.0

    def __post_init__(self) -> None:
        _check(
            isinstance(self.method, str) and self.method.strip() != "",
            "ensemble.method",
            self.method,
            "must be an ensemble method name",
        )
        _check(
            all(_is_number(w) and math.isfinite(w) and w >= 0 for w in self.weights)
            and (len(self.weights) == 0 or sum(self.weights) > 0),
            "ensemble.weights",
            self.weights,
            "must be non-negative finite numbers, not all zero",
        )
        # ensemble.metric and ensemble.method depend on data.task: Config checks them.
        _integer("ensemble.tta_shifts", self.tta_shifts, minimum=0)
        _registered("ensemble.stacking_model", self.stacking_model, "stacking_model")
        if self.pool is not None:
            _choice("ensemble.pool", self.pool, POOLS)
        _choice("ensemble.threshold", self.threshold, ("per_label", "global"))
        _integer("ensemble.min_positives", self.min_positives, minimum=1)
        _integer("ensemble.vote_k", self.vote_k, minimum=0)
        _integer("ensemble.selection_rounds", self.selection_rounds, minimum=1)
        _integer("ensemble.selection_init", self.selection_init, minimum=1)
        _positive("ensemble.power", self.power)


@dataclass(frozen=True)
class VerificationConfig:
    """The ``verification`` task: trial CSV columns, embeddings, losses, trials and costs.

    Attributes
    ----------
    pair_id_column, file_a_column, file_b_column : str
        Columns of the test trials CSV (``data.test_csv``): the trial id and the two files.
    score_column : str
        The submission's score column (``id,score``; higher = more likely the same identity).
    file_separator : str
        A trial side may list several files of one identity separated by this string
        (``"birth1.wav;birth2.wav"``); the side is then enrolled from all of them, by the
        normalised mean of their embeddings (:func:`emo_utils.verification.scoring.enroll`).
        ``""`` (default): every side is one file name, whatever characters it holds.
    embedding_dim : int
        Size of the L2-normalised embedding (the projection after the pooled features).
    clips_per_identity : int
        ``K`` of the ``P x K`` training batches (``P = train.batch_size / K`` identities,
        each with ``K`` clips); ``train.batch_size`` must be a multiple of it.
    triplet_margin : float
        Margin of the triplet loss (``train.loss = "triplet"``), on cosine similarity.
    arcface_margin, arcface_scale : float
        Additive angular margin (degrees) and scale of ``train.loss = "arcface"``.
    oof_ratio : float
        Different-identity trials per same-identity trial in the out-of-fold evaluation.
    p_target, c_miss, c_fa : float
        Prior of a target trial and the costs of the normalised minimum detection cost.
    score_norm : {"none", "s_norm", "as_norm"}
        Test-score normalisation with a cohort of training embeddings: none, S-norm, or
        adaptive S-norm over the ``cohort_top_k`` closest cohort clips.
    cohort_top_k : int
        Cohort size of adaptive S-norm.
    pooling : {"backbone", "stats"}
        Embedding head (:data:`emo_utils.models.embedding_net.EMBEDDING_POOLINGS`): the
        backbone's pooled features and classifier layer, or statistics pooling (mean and
        standard deviation over time) and a projection.
    sub_centers : int
        Centres per identity of ``train.loss = "subcenter_arcface"``.
    input_norm : {"none", "instance", "cmn"}
        Per-window input normalisation before the backbone
        (:data:`emo_utils.models.embedding_net.INPUT_NORMS`).
    """

    pair_id_column: str = "id"
    file_a_column: str = "file_a"
    file_b_column: str = "file_b"
    score_column: str = "score"
    file_separator: str = ""
    embedding_dim: int = 128
    clips_per_identity: int = 4
    triplet_margin: float = 0.2
    arcface_margin: float = 28.6
    arcface_scale: float = 30.0
    oof_ratio: float = 5.0
    p_target: float = 0.01
    c_miss: float = 1.0
    c_fa: float = 1.0
    score_norm: str = "none"
    cohort_top_k: int = 100
    pooling: str = "backbone"
    input_norm: str = "none"
    sub_centers: int = 3

    def __post_init__(self) -> None:
        columns = ("pair_id_column", "file_a_column", "file_b_column", "score_column")
        for name in columns:
            value = getattr(self, name)
            _check(
                isinstance(value, str) and value.strip() != "" and value == value.strip(),
                f"verification.{name}",
                value,
                "must be a non-empty column name without surrounding spaces",
            )
        _check(
            len({getattr(self, n) for n in columns[:3]}) == 3,
            "verification.file_b_column",
            self.file_b_column,
            "the trial id and the two file columns must differ",
        )
        _check(
            isinstance(self.file_separator, str),
            "verification.file_separator",
            self.file_separator,
            "must be a string ('' for one file per trial side)",
        )
        _integer("verification.embedding_dim", self.embedding_dim, minimum=2)
        _integer("verification.clips_per_identity", self.clips_per_identity, minimum=2)
        _integer("verification.cohort_top_k", self.cohort_top_k, minimum=1)
        _integer("verification.sub_centers", self.sub_centers, minimum=1)
        for name in ("triplet_margin", "arcface_margin", "arcface_scale", "oof_ratio"):
            _positive(f"verification.{name}", getattr(self, name))
        _check(
            _is_number(self.p_target) and 0.0 < self.p_target < 1.0,
            "verification.p_target",
            self.p_target,
            "must be a number in (0, 1)",
        )
        _positive("verification.c_miss", self.c_miss)
        _positive("verification.c_fa", self.c_fa)
        _choice("verification.score_norm", self.score_norm, ("none", "s_norm", "as_norm"))
        _choice("verification.pooling", self.pooling, ("backbone", "stats"))
        _choice("verification.input_norm", self.input_norm, ("none", "instance", "cmn"))


@dataclass(frozen=True)
class TimelineConfig:
    """Timelines of long recordings, the events detected on them, and their evaluation.

    Read by :mod:`emo_utils.timeline` (``python -m emo_utils detect``); nothing else uses it,
    and a run trained before it existed gets these defaults.  Events follow the DCASE
    conventions: window probabilities are median-filtered per class, an event starts where
    a class reaches its onset threshold and lasts while it stays at or above the onset
    threshold less ``hysteresis``; events of a class closer than ``min_gap`` are merged,
    then events shorter than ``min_duration`` dropped.

    Attributes
    ----------
    window : float
        Seconds per window (0: ``audio.duration``, the training window; shorter windows are
        padded as short clips are).
    hop : float
        Seconds between window starts (0: half the window).
    batch_windows : int
        Windows per forward pass.
    threshold : float
        Onset threshold of every class, in (0, 1); 0 (default): per class, tuned on the
        run's OOF predictions (multi-label runs: their ``thresholds.json``).
    hysteresis : float
        An event ends when its class falls below the onset threshold less this (>= 0).
    median_filter : int
        Windows of the per-class median filter (odd, 1: none).
    min_duration : float
        Seconds: shorter events are dropped.
    min_gap : float
        Seconds: events of one class separated by less are merged.
    event_classes : tuple of str
        Classes events are detected for (empty: every class); e.g. the target of a detector
        run, leaving out its background class.
    table_format : str
        ``"csv"`` or ``"parquet"`` (needs pyarrow) for the timeline tables.
    plot : bool
        Write a PNG per file (spectrogram and class probabilities over time).
    collar : float
        Event-based evaluation: onset (and minimum offset) tolerance in seconds (DCASE: 0.2).
    offset_ratio : float
        Event-based evaluation: offset tolerance as a share of the reference event's length
        (DCASE: 0.2); the larger of this and ``collar`` applies.
    segment : float
        Segment-based evaluation: segment length in seconds (DCASE: 1.0).
    """

    window: float = 0.0
    hop: float = 0.0
    batch_windows: int = 32
    threshold: float = 0.0
    hysteresis: float = 0.1
    median_filter: int = 3
    min_duration: float = 0.0
    min_gap: float = 0.0
    event_classes: tuple[str, ...] = ()
    table_format: str = "csv"
    plot: bool = True
    collar: float = 0.2
    offset_ratio: float = 0.2
    segment: float = 1.0

    def __post_init__(self) -> None:
        _positive("timeline.window", self.window, allow_zero=True)
        _positive("timeline.hop", self.hop, allow_zero=True)
        _integer("timeline.batch_windows", self.batch_windows, minimum=1)
        _check(
            _is_number(self.threshold) and 0.0 <= self.threshold < 1.0,
            "timeline.threshold",
            self.threshold,
            "must be in [0, 1) (0: tuned on the run's OOF predictions)",
        )
        _check(
            _is_number(self.hysteresis) and 0.0 <= self.hysteresis < 1.0,
            "timeline.hysteresis",
            self.hysteresis,
            "must be in [0, 1)",
        )
        _integer("timeline.median_filter", self.median_filter, minimum=1)
        _check(
            self.median_filter % 2 == 1, "timeline.median_filter", self.median_filter, "must be odd"
        )
        _positive("timeline.min_duration", self.min_duration, allow_zero=True)
        _positive("timeline.min_gap", self.min_gap, allow_zero=True)
        _check(
            all(isinstance(c, str) and c for c in self.event_classes),
            "timeline.event_classes",
            self.event_classes,
            "must be class names",
        )
        _choice("timeline.table_format", self.table_format, ("csv", "parquet"))
        _check(isinstance(self.plot, bool), "timeline.plot", self.plot, "must be true or false")
        _positive("timeline.collar", self.collar, allow_zero=True)
        _positive("timeline.offset_ratio", self.offset_ratio, allow_zero=True)
        _positive("timeline.segment", self.segment)
