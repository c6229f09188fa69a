"""The hf family of the model registry: ``transformers`` audio classifiers on waveforms.

``"hf:<hub id or local folder>"`` fine-tunes any ``AutoModelForAudioClassification``
checkpoint (wav2vec2, HuBERT, WavLM, data2vec-audio, UniSpeech, SEW, AST, ...) in the same
fastai cross-validation loop as the CNNs (resume, best epoch, OOF, mixed precision on GPU),
on the cached waveforms of :mod:`emo_utils.features.waveform` (the family's input is
``"waveform"``), writing the same OOF and prediction files, so it joins the same ensembles.

**Where the weights come from.**  ``hf:/path/to/folder`` (or ``./folder``, ``~/folder``):
a folder written by ``save_pretrained`` (``config.json``, the weights and the feature
extractor's ``preprocessor_config.json``) -- the offline Kaggle path (a Kaggle dataset).
``hf:org/name``: the Hugging Face hub (online, through transformers' own cache), or, when
``train.weights_dir`` is set, a folder ``weights_dir/org/name``, ``weights_dir/org--name``,
``weights_dir/name`` or ``weights_dir`` itself holding ``config.json``.
``train.pretrained = false`` builds the architecture of the config with random weights.

**The model's own input settings.**  :class:`HFAudioClassifier` takes the cached windows
``(B, 1, 1, T)`` (or ``(B, T)``) and applies its feature extractor's preprocessing in torch,
on the batch's device (:data:`FEATURE_EXTRACTORS`, by ``feature_extractor_type``):

==============================  ===========================================================
``Wav2Vec2FeatureExtractor``    zero mean, unit variance per window (``do_normalize``):
                                wav2vec2, HuBERT, WavLM, data2vec-audio, UniSpeech, SEW
``ASTFeatureExtractor``         Kaldi log-mel filterbank (25 ms frames, 10 ms shift,
                                pre-emphasis 0.97, Hann window, ``num_mel_bins``), padded
                                or cut to ``max_length`` frames, normalised by
                                ``(x - mean) / (2 * std)``: transformers' numpy path (and
                                torchaudio's ``kaldi.fbank``) in torch, batched
==============================  ===========================================================

The feature extractor's ``sampling_rate`` must equal ``audio.waveform_sample_rate`` and a
window must be long enough for the model (one filterbank frame and at most ``max_length``
frames for AST; one output frame of the convolutional encoder, and ``mask_time_length`` of
them when the model masks time steps in training, for wav2vec2-like models): checked before
any work (:func:`check_hf_setup`) and again against the store a model is fed
(:func:`check_hf_input`), each a :class:`~emo_utils.errors.TrainingError` naming the model
and the values.

**Fine-tuning.**  ``train.freeze_feature_encoder`` (default True) keeps the convolutional
feature encoder at its pretrained weights (``freeze_feature_encoder()``; AST has none).
``train.layer_decay < 1`` gives every transformer layer its own learning rate, decaying
from the head down (:func:`layer_groups`, fastai parameter groups).  The family ignores
``train.image_normalization`` (its models normalise their own input), and the image-only
augmentations (frequency and time masks) are off for waveforms
(:data:`emo_utils.train.augment.AUGMENTATIONS`); ``time_shift`` and mixup apply.

**Saved folds.**  The transformers config and the feature-extractor settings travel inside
``model.pth`` (the module's extra state), so a trained fold loads with neither the hub nor
the pretrained folder (:func:`hf_from_state`): an offline kernel needs only the run folder.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, TrainingError
from ._registry import ModelFamily, register_family

__all__ = [
    "FEATURE_EXTRACTORS",
    "HFAudioClassifier",
    "KaldiFbank",
    "ZeroMeanUnitVariance",
    "build_hf_model",
    "check_hf_input",
    "check_hf_name",
    "check_hf_setup",
    "check_hf_weights",
    "hf_from_state",
    "hf_setup_problems",
    "hf_training_groups",
    "layer_groups",
    "resolve_hf_source",
]

#: The version range the family was written against (``requirements.txt`` holds the floor).
_INSTALL = "pip install 'transformers>=4.44'"
#: A hub id: ``org/name``.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _transformers() -> Any:
    """The ``transformers`` module, imported on first use (a clear error when missing)."""
    if importlib.util.find_spec("transformers") is None:
        raise TrainingError(f"hf: models need the transformers package ({_INSTALL})")
    import transformers

    return transformers


# ---------------------------------------------------------------------------- feature extractors
class ZeroMeanUnitVariance(nn.Module):
    """The ``Wav2Vec2FeatureExtractor`` preprocessing in torch: ``(x - mean) / sqrt(var + 1e-7)``.

    Per window (population variance), as transformers' ``zero_mean_unit_var_norm``; the
    identity when the settings say ``do_normalize: false``.  Computed in float32 outside
    autocast.

    Parameters
    ----------
    settings : mapping
        The feature extractor's ``to_dict()`` (``do_normalize``).
    """

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__()
        self.do_normalize = bool(settings.get("do_normalize", True))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` waveforms -> ``(B, T)`` model input."""
        if not self.do_normalize:
            return wave.float()
        with torch.autocast(wave.device.type, enabled=False):
            x = wave.float()
            mean = x.mean(dim=-1, keepdim=True)
            var = x.var(dim=-1, keepdim=True, unbiased=False)
            return (x - mean) / torch.sqrt(var + 1e-7)

    @staticmethod
    def length_problem(settings: Mapping[str, Any], n_samples: int) -> str | None:
        """No length limit of its own (the model's encoder is checked apart)."""
        return None


class KaldiFbank(nn.Module):
    """The ``ASTFeatureExtractor`` preprocessing in torch, batched, on the batch's device.

    Kaldi's ``fbank`` as transformers computes it without torchaudio (and torchaudio's
    ``compliance.kaldi.fbank`` with AST's settings): frames of 25 ms every 10 ms without
    padding at the edges, each with its mean removed, pre-emphasis 0.97, a symmetric Hann
    window, zero-padded to a power-of-two FFT; power spectrum; the Kaldi mel filterbank
    (20 Hz to Nyquist, triangles in mel space); natural log floored at float32 epsilon.
    The frames are then zero-padded or cut to ``max_length`` and, with ``do_normalize``,
    mapped to ``(x - mean) / (2 * std)``.  float32, outside autocast.

    Parameters
    ----------
    settings : mapping
        The feature extractor's ``to_dict()``: ``sampling_rate``, ``num_mel_bins``,
        ``max_length``, ``do_normalize``, ``mean``, ``std``.

    Notes
    -----
    Output shape ``(B, max_length, num_mel_bins)``: AST's ``input_values``.
    """

    #: ``mel_floor`` of the extractor (float32 machine epsilon).
    FLOOR = 1.192092955078125e-07
    PREEMPHASIS = 0.97

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__()
        rate = int(settings["sampling_rate"])
        self.frame, self.shift = self.frame_sizes(rate)
        self.n_fft = 1 << (self.frame - 1).bit_length()
        self.max_length = int(settings["max_length"])
        self.do_normalize = bool(settings.get("do_normalize", True))
        self.mean = float(settings.get("mean", 0.0))
        self.std = float(settings.get("std", 0.5))
        from transformers.audio_utils import mel_filter_bank

        mel = mel_filter_bank(
            num_frequency_bins=self.n_fft // 2 + 1,
            num_mel_filters=int(settings["num_mel_bins"]),
            min_frequency=20,
            max_frequency=rate // 2,
            sampling_rate=rate,
            norm=None,
            mel_scale="kaldi",
            triangularize_in_mel_space=True,
        )
        self.register_buffer("mel", torch.as_tensor(mel, dtype=torch.float32), persistent=False)
        window = torch.hann_window(self.frame, periodic=False, dtype=torch.float64)
        self.register_buffer("window", window.float(), persistent=False)

    @staticmethod
    def frame_sizes(rate: int) -> tuple[int, int]:
        """``(frame length, frame shift)`` in samples: 25 ms and 10 ms (400, 160 at 16 kHz)."""
        return round(0.025 * rate), round(0.010 * rate)

    @classmethod
    def length_problem(cls, settings: Mapping[str, Any], n_samples: int) -> str | None:
        """Why windows of ``n_samples`` do not suit the model (None: they do)."""
        rate = int(settings["sampling_rate"])
        frame, shift = cls.frame_sizes(rate)
        frames = 1 + (n_samples - frame) // shift if n_samples >= frame else 0
        max_length = int(settings["max_length"])
        if frames < 1:
            return (
                f"a window of {n_samples} samples is shorter than one filterbank frame "
                f"({frame} samples); raise audio.duration"
            )
        if frames > max_length:
            longest = ((max_length - 1) * shift + frame) / rate
            return (
                f"a window of {n_samples / rate:.2f} s gives {frames} filterbank frames but the "
                f"model takes max_length = {max_length} ({longest:.2f} s); set audio.duration "
                f"<= {math.floor(longest * 100) / 100:g} (ensemble.tta_windows covers longer "
                "clips)"
            )
        return None

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` waveforms -> ``(B, max_length, num_mel_bins)`` log-mel frames."""
        with torch.autocast(wave.device.type, enabled=False):
            x = wave.float()
            b = x.shape[0]
            if x.shape[-1] >= self.frame:
                frames = x.unfold(-1, self.frame, self.shift)  # (B, F, frame)
            else:
                frames = x.new_zeros((b, 0, self.frame))
            frames = frames - frames.mean(dim=-1, keepdim=True)
            frames = torch.cat(
                [
                    frames[..., :1] * (1.0 - self.PREEMPHASIS),
                    frames[..., 1:] - self.PREEMPHASIS * frames[..., :-1],
                ],
                dim=-1,
            )
            spectrum = torch.fft.rfft(frames * self.window, n=self.n_fft)
            power = spectrum.real.square() + spectrum.imag.square()
            fbank = torch.clamp(power @ self.mel, min=self.FLOOR).log()  # (B, F, mels)
            n = fbank.shape[1]
            if n < self.max_length:
                fbank = nn.functional.pad(fbank, (0, 0, 0, self.max_length - n))
            else:
                fbank = fbank[:, : self.max_length]
            if self.do_normalize:
                fbank = (fbank - self.mean) / (self.std * 2)
            return fbank


#: ``feature_extractor_type`` -> the torch module doing its preprocessing, built from the
#: extractor's settings; ``length_problem(settings, n_samples)`` says why a window length
#: does not suit it.  A new extractor is one entry here.
FEATURE_EXTRACTORS: dict[str, type[nn.Module]] = {
    "Wav2Vec2FeatureExtractor": ZeroMeanUnitVariance,
    "ASTFeatureExtractor": KaldiFbank,
}


def _json_safe(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-serialisable entries of a feature extractor's ``to_dict()``."""
    out = {}
    for key, value in settings.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        out[key] = value
    return out


# ---------------------------------------------------------------------------- the module
def _waveforms(x: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` from cached windows ``(B, 1, 1, T)``, ``(B, 1, T)`` or ``(B, T)``."""
    if x.ndim == 4 and x.shape[1] == 1 and x.shape[2] == 1:
        return x[:, 0, 0]
    if x.ndim == 3 and x.shape[1] == 1:
        return x[:, 0]
    if x.ndim == 2:
        return x
    raise TrainingError(
        f"hf models take waveform windows (B, 1, 1, T) or (B, T), got shape {tuple(x.shape)}; "
        "feed them the waveform store (emo_utils.features.build_waveforms)"
    )


class HFAudioClassifier(nn.Module):
    """A transformers audio classifier fed raw waveforms: preprocessing, model, logits.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        An ``AutoModelForAudioClassification`` model (``input_values`` in, ``logits`` out).
    extractor : mapping
        Its feature extractor's settings (``to_dict()``; ``feature_extractor_type`` picks
        the preprocessing in :data:`FEATURE_EXTRACTORS`).

    Notes
    -----
    The transformers config and the extractor settings are the module's extra state
    (``get_extra_state``): ``state_dict()`` carries them, so :func:`hf_from_state` rebuilds
    the module from saved weights alone.
    """

    def __init__(self, model: nn.Module, extractor: Mapping[str, Any]) -> None:
        super().__init__()
        kind = extractor.get("feature_extractor_type")
        if kind not in FEATURE_EXTRACTORS:
            raise TrainingError(
                f"hf: feature extractor {kind!r} is not supported (supported: "
                f"{sorted(FEATURE_EXTRACTORS)}; emo_utils.models.hf.FEATURE_EXTRACTORS)"
            )
        self.model = model
        self.extractor = _json_safe(extractor)
        self.prepare = FEATURE_EXTRACTORS[kind](self.extractor)

    @property
    def sample_rate(self) -> int:
        """The rate the feature extractor takes (its ``sampling_rate``)."""
        return int(self.extractor["sampling_rate"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_labels)`` of waveform windows (see :func:`_waveforms`)."""
        if type(x) is not torch.Tensor:
            x = x.as_subclass(torch.Tensor)
        return self.model(input_values=self.prepare(_waveforms(x))).logits

    def hidden_states(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every layer's output ``(B, T', hidden)`` for waveform windows, input layer first.

        ``n_layers + 1`` tensors (transformers' ``output_hidden_states``): what the frozen
        embeddings of :mod:`emo_utils.models.embeddings` pool.
        """
        if type(x) is not torch.Tensor:
            x = x.as_subclass(torch.Tensor)
        out = self.model(input_values=self.prepare(_waveforms(x)), output_hidden_states=True)
        return tuple(out.hidden_states)

    def window_problems(self, n_samples: int, sample_rate: int | None) -> list[str]:
        """Why windows of ``n_samples`` at ``sample_rate`` do not suit this model."""
        return _input_problems(self.extractor, self.model.config, n_samples, sample_rate)

    def get_extra_state(self) -> str:
        """The transformers config and the extractor settings, as JSON text."""
        config = json.loads(self.model.config.to_json_string(use_diff=False))
        return json.dumps({"config": config, "extractor": self.extractor})

    def set_extra_state(self, state: Any) -> None:
        """Check that saved weights belong to this kind of model."""
        try:
            saved = json.loads(state)["config"]["model_type"]
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"hf: saved model settings are unreadable ({exc})") from exc
        if saved != self.model.config.model_type:
            raise CheckpointError(
                f"hf: the weights are of a {saved!r} model, not {self.model.config.model_type!r}"
            )


# ---------------------------------------------------------------------------- names and sources
def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".\\", "..\\")) or "\\" in name


def resolve_hf_source(
    name: str, weights_dir: str | os.PathLike = "", *, required: bool = False
) -> str:
    """The folder (or hub id) transformers loads ``hf:<name>`` from.

    Parameters
    ----------
    name : str
        A local folder or a hub id ``org/name``.
    weights_dir : str or os.PathLike
        ``train.weights_dir``: for a hub id, a folder ``weights_dir/org/name``,
        ``weights_dir/org--name``, ``weights_dir/name`` or ``weights_dir`` itself holding
        ``config.json`` is used instead of the hub (offline kernels).
    required : bool
        Raise when ``weights_dir`` is set but holds no folder for a hub id (instead of
        falling back to the hub).

    Returns
    -------
    str
        A folder path, or the hub id.

    Raises
    ------
    TrainingError
        ``name`` looks like a path that is not a folder, or ``required`` and no local
        folder.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if _looks_like_path(name):
        raise TrainingError(f"'hf:{name}': no such folder")
    if weights_dir:
        root = Path(weights_dir)
        candidates = [root / name, root / name.replace("/", "--"), root / name.split("/")[-1], root]
        for folder in candidates:
            if (folder / "config.json").is_file():
                return str(folder)
        if required:
            tried = [str(c) for c in candidates]
            raise TrainingError(
                f"train.weights_dir: no model folder (with config.json) for 'hf:{name}' in "
                f"{root} (looked in {tried}); save it there with save_pretrained, name the "
                "folder itself (hf:/path/to/folder), or set train.pretrained = false"
            )
    return name


def check_hf_name(name: str) -> str | None:
    """``None`` when ``hf:<name>`` names a usable model, else the problem.

    A local folder must hold a ``config.json`` of an ``AutoModelForAudioClassification``
    architecture; a hub id must look like ``org/name`` (it is not looked up: that needs the
    network, and happens when the model is built).
    """
    if importlib.util.find_spec("transformers") is None:
        return f"'hf:{name}' needs the transformers package ({_INSTALL})"
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            return f"'hf:{name}': the folder has no config.json (write it with save_pretrained)"
        tf = _transformers()
        try:
            config = tf.AutoConfig.from_pretrained(str(path))
        except (OSError, ValueError, KeyError) as exc:
            return f"'hf:{name}': config.json cannot be read ({exc})"
        if type(config) not in tf.MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING:
            return (
                f"'hf:{name}' is a {config.model_type!r} model, which has no audio "
                "classification head (AutoModelForAudioClassification)"
            )
        return None
    if _looks_like_path(name):
        return f"'hf:{name}': no such folder"
    if not _HUB_ID.match(name):
        return (
            f"'hf:{name}' is neither a local model folder (with config.json) nor a hub id "
            "'org/name'"
        )
    return None


def check_hf_weights(name: str, weights_dir: str | os.PathLike) -> None:
    """Fail before any work when ``train.weights_dir`` holds no folder for a hub id."""
    resolve_hf_source(name, weights_dir, required=True)


def _extractor_settings(name: str, source: str) -> dict[str, Any]:
    """The feature extractor's settings of a model folder or hub id, with its type."""
    tf = _transformers()
    try:
        extractor = tf.AutoFeatureExtractor.from_pretrained(source)
    except (OSError, ValueError, KeyError) as exc:
        raise TrainingError(
            f"'hf:{name}': no feature extractor settings in {source} ({exc}); save them beside "
            "the model: AutoFeatureExtractor.from_pretrained(...).save_pretrained(folder)"
        ) from exc
    settings = _json_safe(extractor.to_dict())
    settings["feature_extractor_type"] = type(extractor).__name__
    return settings


def _encoder_frames(config: Any, n_samples: int) -> int | None:
    """Output frames of a wav2vec2-like convolutional encoder (None: the model has none)."""
    kernels, strides = getattr(config, "conv_kernel", None), getattr(config, "conv_stride", None)
    if not kernels or not strides:
        return None
    n = int(n_samples)
    for k, s in zip(kernels, strides, strict=False):
        n = (n - int(k)) // int(s) + 1 if n >= k else 0
    return n


def _input_problems(
    extractor: Mapping[str, Any], config: Any, n_samples: int, sample_rate: int | None
) -> list[str]:
    """Why waveform windows of ``n_samples`` at ``sample_rate`` do not suit a model."""
    problems = []
    rate = int(extractor["sampling_rate"])
    if sample_rate is not None and int(sample_rate) != rate:
        problems.append(
            f"its feature extractor takes {rate} Hz audio but the waveform input is "
            f"{sample_rate} Hz; set audio.waveform_sample_rate: {rate}"
        )
    kind = FEATURE_EXTRACTORS.get(extractor.get("feature_extractor_type", ""))
    if kind is None:
        problems.append(
            f"feature extractor {extractor.get('feature_extractor_type')!r} is not supported "
            f"(supported: {sorted(FEATURE_EXTRACTORS)})"
        )
    else:
        problem = kind.length_problem(extractor, n_samples)
        if problem:
            problems.append(problem)
    frames = _encoder_frames(config, n_samples)
    if frames is not None:
        masks = getattr(config, "mask_time_prob", 0) > 0
        need = max(1, int(getattr(config, "mask_time_length", 1)) if masks else 1)
        if frames < need:
            problems.append(
                f"a window of {n_samples} samples gives {frames} encoder frames, fewer than the "
                f"{need} the model needs{' (mask_time_length)' if masks else ''}; raise "
                "audio.duration"
            )
    return problems


def hf_setup_problems(name: str, config: Any, *, weights_dir: str | os.PathLike = "") -> list[str]:
    """Why the model ``name`` cannot take the run's waveform input (empty: it can).

    The feature extractor's ``sampling_rate`` against ``audio.waveform_sample_rate``, and
    the window (``audio.duration`` at that rate, :mod:`emo_utils.features.waveform`) against
    the extractor's and the encoder's limits.  ``weights_dir``: see
    :func:`resolve_hf_source`.
    """
    from ..features.waveform import waveform_config

    source = resolve_hf_source(name, weights_dir)
    extractor = _extractor_settings(name, source)
    tf = _transformers()
    try:
        model_config = tf.AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"'hf:{name}': cannot read the model config ({exc})") from exc
    n_samples = waveform_config(config).audio.n_samples + 1  # frames of one window
    return _input_problems(extractor, model_config, n_samples, config.audio.waveform_sample_rate)


def check_hf_setup(name: str, config: Any) -> None:
    """Before any work: the model's feature extractor takes the run's waveform input.

    Raises
    ------
    TrainingError
        Naming ``train.architectures``, the model and every problem of
        :func:`hf_setup_problems`.
    """
    tc = config.train
    problems = hf_setup_problems(name, config, weights_dir=tc.weights_dir)
    if problems:
        raise TrainingError(f"train.architectures: 'hf:{name}': " + "; ".join(problems))


def check_hf_input(arch: str, model: nn.Module, store: Any) -> None:
    """A built or loaded model against the store it is fed (sample rate, window length).

    Raises
    ------
    TrainingError
        Naming the architecture, the rates or the window.
    """
    found = [m for m in model.modules() if isinstance(m, HFAudioClassifier)]
    if not found:  # a custom loader's model: nothing known to check
        return
    channels, height, window = store.image_shape
    if (channels, height) != (1, 1):
        raise TrainingError(
            f"{arch}: takes waveform windows (1, 1, T) but the store holds images of shape "
            f"{store.image_shape}; feed it the waveform store (emo_utils.features.build_waveforms)"
        )
    problems = found[0].window_problems(window, getattr(store, "sample_rate", None))
    if problems:
        raise TrainingError(f"{arch}: " + "; ".join(problems))


# ---------------------------------------------------------------------------- building
def build_hf_model(
    name: str,
    *,
    n_outputs: int,
    pretrained: bool,
    weights_dir: str | os.PathLike = "",
    in_chans: int = 1,
) -> HFAudioClassifier:
    """An :class:`HFAudioClassifier` of ``hf:<name>`` with ``n_outputs`` logits.

    Parameters
    ----------
    name : str
        A local folder (``save_pretrained`` output) or a hub id ``org/name``.
    n_outputs : int
        Outputs of the classification head (a new, randomly initialised head when the
        checkpoint's has another size).
    pretrained : bool
        Load the checkpoint's weights (``from_pretrained``); else the architecture of its
        config with random weights.
    weights_dir : str or os.PathLike
        ``train.weights_dir`` (see :func:`resolve_hf_source`): where a hub id's folder is
        looked for first, for the weights and for the config alike.
    in_chans : int
        Channels of the input store: must be 1 (waveforms).

    Returns
    -------
    HFAudioClassifier
        float32; maps ``(B, 1, 1, T)`` windows to ``(B, n_outputs)`` logits.

    Raises
    ------
    TrainingError
        Unknown name, missing transformers, weights that cannot be loaded (offline without
        a local folder), a feature extractor that is not supported.
    """
    problem = check_hf_name(name)
    if problem:
        raise TrainingError(f"train.architectures: {problem}")
    if int(in_chans) != 1:
        raise TrainingError(f"'hf:{name}' takes one waveform channel, not {in_chans}")
    tf = _transformers()
    source = resolve_hf_source(name, weights_dir)  # the config too: offline, never the hub
    extractor = _extractor_settings(name, source)
    try:
        if pretrained:
            model = tf.AutoModelForAudioClassification.from_pretrained(
                source, num_labels=int(n_outputs), ignore_mismatched_sizes=True
            )
        else:
            config = tf.AutoConfig.from_pretrained(source, num_labels=int(n_outputs))
            model = tf.AutoModelForAudioClassification.from_config(config)
    except (OSError, ValueError) as exc:
        raise TrainingError(
            f"'hf:{name}': cannot load the model from {source} ({exc}); offline, name a local "
            "folder (hf:/path/to/folder) or put it in train.weights_dir"
        ) from exc
    return HFAudioClassifier(model.float(), extractor)


def hf_from_state(name: str, *, state: Mapping[str, Any], n_outputs: int) -> HFAudioClassifier:
    """The untrained :class:`HFAudioClassifier` of saved weights (their extra state).

    Parameters
    ----------
    name : str
        For messages.
    state : mapping
        The module's state dict (``_extra_state``: the transformers config and extractor
        settings :meth:`HFAudioClassifier.get_extra_state` saved).
    n_outputs : int
        Logits expected (checked against the saved config).

    Raises
    ------
    CheckpointError
        No or unreadable saved settings, or another number of outputs.
    """
    raw = state.get("_extra_state")
    try:
        saved = json.loads(raw)
        config_dict = dict(saved["config"])
        extractor = dict(saved["extractor"])
        model_type = config_dict.pop("model_type")
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"'hf:{name}': the saved weights carry no readable model settings ({exc})"
        ) from exc
    tf = _transformers()
    config = tf.AutoConfig.for_model(model_type, **config_dict)
    if int(config.num_labels) != int(n_outputs):
        raise CheckpointError(
            f"'hf:{name}': the saved model has {config.num_labels} outputs, expected {n_outputs}"
        )
    model = tf.AutoModelForAudioClassification.from_config(config)
    return HFAudioClassifier(model.float(), extractor)


# ---------------------------------------------------------------------------- fine-tuning
#: Where transformers keeps the transformer layers inside a base model, tried in order.
_LAYER_PATHS = ("encoder.layers", "encoder.layer", "layers", "layer")


def layer_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """Parameters from the bottom to the head: ``[below the layers, layer 0, ..., rest]``.

    The transformer layers are ``base_model.encoder.layers`` (wav2vec2, HuBERT, WavLM),
    ``base_model.encoder.layer`` (AST in transformers 4) or ``base_model.layers`` (AST in
    transformers 5).  Parameters of the base model registered before the
    first layer (feature encoder, projection, embeddings) form the bottom group; everything
    after the last layer (final norms, projector, classifier) the top one.

    Parameters
    ----------
    model : torch.nn.Module
        A transformers model or an :class:`HFAudioClassifier`.

    Returns
    -------
    list of list of torch.nn.Parameter
        ``n_layers + 2`` groups (some may be empty), trainable and frozen parameters alike.

    Raises
    ------
    TrainingError
        No transformer layers found.
    """
    if isinstance(model, HFAudioClassifier):
        model = model.model
    base = getattr(model, "base_model", model)
    modules = dict(base.named_modules())
    found = [modules.get(path) for path in _LAYER_PATHS]
    layers = next((m for m in found if isinstance(m, nn.ModuleList) and len(m) > 0), None)
    if layers is None:
        raise TrainingError(
            f"train.layer_decay: no transformer layers ({' / '.join(_LAYER_PATHS)}) in "
            f"{type(model).__name__}; set train.layer_decay: 1.0"
        )
    layer_of = {id(p): i for i, layer in enumerate(layers) for p in layer.parameters()}
    in_base = {id(p) for p in base.parameters()}
    groups: list[list[nn.Parameter]] = [[] for _ in range(len(layers) + 2)]
    seen_layer = False
    for p in model.parameters():  # registration order: bottom to head
        if id(p) in layer_of:
            groups[layer_of[id(p)] + 1].append(p)
            seen_layer = True
        elif id(p) in in_base and not seen_layer:
            groups[0].append(p)
        else:
            groups[-1].append(p)
    return groups


def hf_training_groups(model: nn.Module, config: Any) -> list[list[nn.Parameter]]:
    """Prepare a built model for fine-tuning; its trainable parameters, bottom to head.

    ``train.freeze_feature_encoder``: the convolutional feature encoder keeps its weights
    (``requires_grad = False``; models without one are unchanged).  ``train.layer_decay <
    1``: the groups of :func:`layer_groups`; else one group.

    Returns
    -------
    list of list of torch.nn.Parameter
        Only parameters that train; groups may be empty.
    """
    found = [m for m in model.modules() if isinstance(m, HFAudioClassifier)]
    if not found:
        raise TrainingError(f"{type(model).__name__} holds no transformers waveform model")
    hf = found[0].model
    if config.freeze_feature_encoder and callable(getattr(hf, "freeze_feature_encoder", None)):
        hf.freeze_feature_encoder()
    groups = layer_groups(hf) if config.layer_decay < 1.0 else [list(model.parameters())]
    return [[p for p in group if p.requires_grad] for group in groups]


register_family(
    ModelFamily(
        prefix="hf",
        input="waveform",
        trainer="fastai",
        build=build_hf_model,
        check=check_hf_name,
        check_weights=check_hf_weights,
        input_normalization="none",
        check_setup=check_hf_setup,
        check_input=check_hf_input,
        training_groups=hf_training_groups,
        from_state=hf_from_state,
    )
)
