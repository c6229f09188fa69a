"""Image channels against direct librosa calls, resizing, normalisation, the registry."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import librosa
import numpy as np
import pytest
import torch

from emo_utils.config import FeatureConfig
from emo_utils.errors import ConfigError
from emo_utils.features import channels as channels_module
from emo_utils.features.channels import (
    CHANNELS,
    NORMALIZATIONS,
    ChannelSpec,
    channel_specs,
    compute_image,
    db_range,
    normalize,
    register_channel,
)
from emo_utils.features.spectrum import (
    Spectrum,
    active_frames,
    estimate_tuning,
    n_frames,
    power_spectrogram,
    power_to_db,
    resize_rows,
    spectral_peaks,
)

RATES = (8000, 16000, 22050, 44100)
# Lengths in seconds-ish: shorter than a window, odd, a hop multiple, several seconds.
LENGTHS = (2048, 3001, 8192, 50_017)
PARAMS = {
    "default": {},
    "small": {"n_fft": 1024, "hop_length": 256, "n_mels": 64, "fmin": 50.0, "fmax": 3800.0},
    "win": {"n_fft": 1024, "hop_length": 320, "win_length": 800, "n_mels": 40, "n_chroma": 24},
}


def _signal(n: int, sr: int, seed: int) -> np.ndarray:
    """Harmonics of a drifting pitch plus noise, so every channel has structure."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    f0 = rng.uniform(110, 400) * (1 + 0.05 * t)
    y = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) / k for k in range(1, 6))
    return 0.2 * y + 0.02 * rng.standard_normal(n)


def _direct(y: np.ndarray, sr: int, cfg: FeatureConfig) -> dict[str, np.ndarray]:
    """The three direct librosa calls, each with its own STFT."""
    kw = {"n_fft": cfg.n_fft, "hop_length": cfg.hop_length, "win_length": cfg.win_length or None}
    top_db = cfg.top_db or None
    mel = librosa.feature.melspectrogram(
        y=y, sr=sr, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax or None, **kw
    )
    return {
        "mel": librosa.power_to_db(mel, ref=1.0, top_db=top_db),
        "chroma": librosa.feature.chroma_stft(y=y, sr=sr, n_chroma=cfg.n_chroma, **kw),
        "stft": librosa.amplitude_to_db(np.abs(librosa.stft(y, **kw)), ref=1.0, top_db=top_db),
    }


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("params", list(PARAMS))
@pytest.mark.parametrize("sr", RATES)
def test_channels_match_direct_librosa_calls(precision, params, sr):
    cfg = FeatureConfig(precision=precision, **PARAMS[params])
    dtype = np.float64 if precision == "float64" else np.float32
    for k, n in enumerate(LENGTHS):
        y = _signal(n, sr, seed=k).astype(dtype)
        spectrum = Spectrum(y, sample_rate=sr, config=cfg)
        direct = _direct(y, sr, cfg)
        for name in ("mel", "chroma", "stft"):
            ours = CHANNELS[name].compute(spectrum=spectrum)
            assert ours.shape == direct[name].shape
            assert ours.dtype == direct[name].dtype == dtype
            np.testing.assert_allclose(ours, direct[name], rtol=0, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("seconds", [5.0, 1.7])
def test_image_equals_the_usual_recipe_bit_for_bit(seconds):
    cfg = FeatureConfig()
    sr = 22050
    y = np.zeros(5 * sr, np.float32)  # a short clip is zero-padded to the window
    y[: round(seconds * sr)] = _signal(round(seconds * sr), sr, seed=3)
    direct = _direct(y, sr, cfg)
    expected = np.stack(
        [
            normalize(
                resize_rows(direct[name], height=cfg.n_mels),
                method=cfg.normalization,
                fixed_range=CHANNELS[name].fixed_range(config=cfg),
            )
            for name in cfg.channels
        ]
    ).astype(np.float32)
    np.testing.assert_array_equal(compute_image(y, sample_rate=sr, config=cfg), expected)


@pytest.mark.parametrize("n", [1, 511, 512, 22050, 110250])
def test_image_shape_and_dtype(n):
    cfg = FeatureConfig(n_mels=64)
    y = np.random.default_rng(0).standard_normal(n).astype(np.float32) * 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # librosa: n_fft larger than tiny inputs
        image = compute_image(y, sample_rate=16000, config=cfg)
    assert image.shape == (3, 64, n_frames(n, hop_length=512)) == (3, 64, 1 + n // 512)
    assert image.dtype == np.float32
    assert np.isfinite(image).all()


def test_compute_image_does_not_modify_its_input_and_is_keyword_only():
    y = np.random.default_rng(1).standard_normal(4000)
    before = y.copy()
    compute_image(y, sample_rate=16000, config=FeatureConfig(n_mels=32))
    np.testing.assert_array_equal(y, before)
    with pytest.raises(TypeError):
        compute_image(y, 16000, FeatureConfig())  # type: ignore[misc]


# ---------------------------------------------------------------------------- spectrogram
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("n_fft", "hop_length", "win_length"),
    [(2048, 512, None), (1024, 256, 800), (1023, 300, None), (512, 512, 333), (256, 64, None)],
)
def test_power_spectrogram_is_librosa_stft_bit_for_bit(dtype, n_fft, hop_length, win_length):
    clips = [_signal(n, 22050, seed=k) for k, n in enumerate([1, 100, n_fft + 1, 50_017])]
    padded = np.zeros(5 * 22050 + 17)
    padded[: 2 * 22050] = _signal(2 * 22050, 22050, seed=9)  # a short clip, zero-padded
    silences = np.zeros(30_000)
    silences[7_001:12_000] = _signal(4_999, 22050, seed=10)  # zeros at both ends
    silences[20_000:20_050] = 0.3  # and in the middle
    impulses = np.zeros(20_000)
    impulses[[0, 6_000, 19_999]] = 0.5  # single samples, at both edges
    for y in [*clips, padded, silences, impulses, np.zeros(4_000), np.zeros(n_fft - 1)]:
        y = y.astype(dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # librosa: n_fft larger than the clip
            stft = librosa.stft(y, n_fft=n_fft, hop_length=hop_length, win_length=win_length)
        ours = power_spectrogram(y, n_fft=n_fft, hop_length=hop_length, win_length=win_length)
        assert ours.dtype == dtype
        assert ours.flags.f_contiguous
        np.testing.assert_array_equal(ours, np.abs(stft) ** 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("top_db", [None, 80.0, 0.0])
@pytest.mark.parametrize("active", [(0, 50), (0, 0), (0, 20), (13, 50), (7, 31), (49, 50)])
def test_power_to_db_equals_librosa(dtype, top_db, active):
    rng = np.random.default_rng(3)
    for amin in (1e-10, 1e-5**2):
        for scale in (1.0, 1e-12, 1e3):  # loud, below the amin floor, above the ref
            power = np.zeros((40, 50), dtype)
            start, stop = active
            power[:, start:stop] = scale * rng.random((40, stop - start)) ** 4
            ours = power_to_db(power, active=active, amin=amin, top_db=top_db)
            expected = librosa.power_to_db(power, ref=1.0, amin=amin, top_db=top_db)
            assert ours.dtype == expected.dtype == dtype
            np.testing.assert_array_equal(ours, expected)


# ---------------------------------------------------------------------------- tuning
def _spectrograms():
    """Power spectrograms of varied clips: rates, FFT sizes, dtypes, noise, silence, plateaus."""
    rng = np.random.default_rng(42)
    for k in range(60):
        sr = int(rng.choice([8000, 11025, 16000, 22050, 44100, 48000]))
        n_fft = int(rng.choice([256, 512, 1000, 1024, 2048]))
        n = int(rng.integers(200, 2 * sr))
        t = np.arange(n) / sr
        y = sum(np.sin(2 * np.pi * rng.uniform(60, 3000) * h * t) / h for h in range(1, 5))
        y = rng.uniform(0.01, 1) * (y + rng.uniform(0, 2) * rng.standard_normal(n))
        if k % 10 == 3:
            y = np.round(y * 4) / 4  # plateaus: equal neighbouring values
        if k % 10 == 7:
            y = np.zeros(n)
        y = y.astype(np.float32 if k % 2 else np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # n_fft larger than short clips
            power = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=n_fft // 4)) ** 2
        yield sr, power


def test_active_frames_are_the_frames_with_a_non_zero_sample():
    rng = np.random.default_rng(7)
    for n_fft, hop in [(2048, 512), (1023, 300), (256, 256)]:
        for _ in range(30):
            y = np.zeros(int(rng.integers(1, 12_000)))
            for _ in range(int(rng.integers(0, 3))):
                y[int(rng.integers(0, len(y)))] = rng.uniform(-1, 1)
            frames = librosa.util.frame(np.pad(y, n_fft // 2), frame_length=n_fft, hop_length=hop)
            busy = np.flatnonzero(frames.any(axis=0))
            expected = (busy[0], busy[-1] + 1) if len(busy) else (0, 0)
            assert active_frames(y, n_fft=n_fft, hop_length=hop) == expected


def test_spectral_peaks_are_piptracks_output_bit_for_bit():
    checked = 0
    for sr, power in _spectrograms():
        pitches, mags = librosa.piptrack(S=power, sr=sr)
        rows, cols, p, m = spectral_peaks(power=power, sample_rate=sr)
        ours_p, ours_m = np.zeros_like(power), np.zeros_like(power)
        ours_p[rows, cols] = p
        ours_m[rows, cols] = m
        assert p.dtype == m.dtype == power.dtype
        np.testing.assert_array_equal(ours_p, pitches)
        np.testing.assert_array_equal(ours_m, mags)
        checked += len(rows)
    assert checked > 1000


@pytest.mark.parametrize("bins_per_octave", [12, 24, 36])
def test_estimate_tuning_equals_librosa(bins_per_octave):
    for sr, power in _spectrograms():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # librosa: empty frequency set
            expected = librosa.estimate_tuning(S=power, sr=sr, bins_per_octave=bins_per_octave)
        ours = estimate_tuning(power=power, sample_rate=sr, bins_per_octave=bins_per_octave)
        assert ours == expected


# ---------------------------------------------------------------------------- resizing
@pytest.mark.parametrize(("src", "height"), [(12, 128), (1025, 128), (513, 64), (24, 40), (7, 7)])
def test_resize_rows_is_torch_antialiased_bilinear(src, height):
    x = np.random.default_rng(src).standard_normal((src, 9))
    ours = resize_rows(x, height=height)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(x)[None, None],
        size=(height, 9),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )[0, 0].numpy()
    assert ours.shape == (height, 9)
    np.testing.assert_allclose(ours, ref, atol=1e-10)


def test_resize_rows_keeps_constants_and_dtype():
    x = np.full((12, 5), 0.25, dtype=np.float32)
    out = resize_rows(x, height=128)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 0.25, rtol=1e-6)
    assert resize_rows(x, height=12) is x


# ---------------------------------------------------------------------------- normalisation
def _images(normalization: str) -> dict[str, np.ndarray]:
    cfg = FeatureConfig(n_mels=64, normalization=normalization)
    sr, n = 16000, 16000
    t = np.arange(n) / sr
    clips = {
        "silent": np.zeros(n, np.float32),
        "constant": np.full(n, 0.5, np.float32),
        "tiny_constant": np.full(n, 1e-6, np.float32),
        "full_scale": np.sin(2 * np.pi * 440 * t).astype(np.float32),
        "quiet": (0.01 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "empty frequency set" or divide warnings
        return {k: compute_image(y, sample_rate=sr, config=cfg) for k, y in clips.items()}


@pytest.mark.parametrize("normalization", sorted(NORMALIZATIONS))
def test_silent_and_constant_clips_give_finite_distinct_images(normalization):
    images = _images(normalization)
    for name, image in images.items():
        assert np.isfinite(image).all(), name
    for name in ("silent", "constant", "tiny_constant"):
        assert not np.array_equal(images[name], images["full_scale"]), name


def test_fixed_normalisation_keeps_loudness():
    images = _images("fixed")
    assert images["silent"].min() == images["silent"].max() == 0.0
    assert images["full_scale"].min() >= 0.0
    assert images["full_scale"].max() <= 1.0
    # Louder clip, brighter mel and STFT channels.
    for k in (0, 2):
        assert images["full_scale"][k].mean() > images["quiet"][k].mean() > 0.0


def test_db_range_is_silence_to_full_scale():
    lo, hi = db_range(config=FeatureConfig())
    assert lo == pytest.approx(-100.0)
    assert hi == pytest.approx(20 * np.log10(1024.0))


def test_minmax_and_standard_scale_per_channel():
    x = np.array([[1.0, 3.0], [5.0, 9.0]])
    np.testing.assert_allclose(normalize(x, method="minmax", fixed_range=(0, 1)), (x - 1) / 8)
    z = normalize(x, method="standard", fixed_range=(0, 1))
    assert z.mean() == pytest.approx(0.0)
    assert z.std() == pytest.approx(1.0)
    with pytest.raises(ConfigError, match=r"features\.normalization"):
        normalize(x, method="zscore", fixed_range=(0, 1))


# ---------------------------------------------------------------------------- registry
@pytest.fixture
def registry():
    """The channel registry, restored in place afterwards (never rebound: every module reads
    the one dict)."""
    saved = dict(CHANNELS)
    yield CHANNELS
    CHANNELS.clear()
    CHANNELS.update(saved)


def test_other_channels_are_chosen_by_config():
    sr = 16000
    y = _signal(sr, sr, seed=5).astype(np.float32)
    cfg = FeatureConfig(n_mels=48, channels=("mfcc", "delta", "mel"), normalization="none")
    image = compute_image(y, sample_rate=sr, config=cfg)
    assert image.shape == (3, 48, 1 + sr // 512)
    mel_db = librosa.power_to_db(
        librosa.feature.melspectrogram(y=y, sr=sr, n_mels=48), ref=1.0, top_db=80.0
    )
    np.testing.assert_allclose(image[2], mel_db, atol=1e-4)
    np.testing.assert_allclose(image[1], librosa.feature.delta(mel_db), atol=1e-3)
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=20)
    np.testing.assert_allclose(image[0], resize_rows(mfcc, height=48), atol=1e-2)


def test_register_channel_makes_a_new_channel_available(registry):
    @register_channel("energy", fixed_range=lambda *, config: (-100.0, 60.0))
    def energy(*, spectrum):
        return librosa.power_to_db(spectrum.power.sum(axis=0, keepdims=True), ref=1.0)

    import emo_utils.features

    # One registry, whichever path it is reached by.
    assert emo_utils.features.CHANNELS is channels_module.CHANNELS
    assert registry["energy"].compute is energy
    cfg = FeatureConfig(n_mels=16, channels=("energy", "mel"))
    image = compute_image(_signal(8000, 16000, 1), sample_rate=16000, config=cfg)
    assert image.shape == (2, 16, 16)
    # One row resized to 16 rows: every row is the same.
    np.testing.assert_allclose(image[0], np.broadcast_to(image[0][:1], image[0].shape))


def test_unknown_channel_is_a_config_error():
    with pytest.raises(ConfigError, match=r"features\.channels.*wavelet"):
        compute_image(
            np.zeros(4000), sample_rate=16000, config=FeatureConfig(channels=("mel", "wavelet"))
        )
    with pytest.raises(ConfigError, match=r"unknown \['wavelet', 'gabor'\]; known: \['chroma'"):
        channel_specs(["mel", "wavelet", "gabor"])
    assert channel_specs(["stft", "mel"]) == [CHANNELS["stft"], CHANNELS["mel"]]


# ---------------------------------------------------------------------------- code identity
def _energy_v1(*, spectrum):
    return spectrum.power.sum(axis=0, keepdims=True)


def _energy_v1_again(*, spectrum):
    return spectrum.power.sum(axis=0, keepdims=True)


def _energy_v2(*, spectrum):
    return spectrum.power.max(axis=0, keepdims=True)


def _energy_scaled(*, spectrum):
    return 2.0 * spectrum.power.sum(axis=0, keepdims=True)


def _energy_nested(*, spectrum):
    return np.apply_along_axis(lambda col: col.sum(), 0, spectrum.power)[None]


def _energy_nested_edited(*, spectrum):
    return np.apply_along_axis(lambda col: col.mean(), 0, spectrum.power)[None]


def _scaled_by(factor):
    def channel(*, spectrum):
        return factor * spectrum.power.sum(axis=0, keepdims=True)

    return channel


def _unit(*, config):
    return 0.0, 1.0


def _identity(compute, fixed_range=_unit, version=None):
    return ChannelSpec(compute, fixed_range, version).identity


def test_channel_identity_follows_the_code_not_the_function_object():
    same = _identity(_energy_v1)
    assert same.startswith("code:")
    assert _identity(_energy_v1_again) == same  # another function, the same code
    assert _identity(_energy_v1) == same  # stable
    others = {
        _identity(_energy_v2),  # another method name
        _identity(_energy_scaled),  # another constant
        _identity(_energy_nested),  # nested code objects count ...
        _identity(_energy_nested_edited),  # ... and their edits too
        _identity(_scaled_by(2.0)),  # closure values count
        _identity(_scaled_by(3.0)),
        _identity(_energy_v1, fixed_range=lambda *, config: (0.0, 2.0)),  # the range counts
    }
    assert len(others) == 7
    assert same not in others


def test_declared_channel_version_replaces_the_code_hash():
    assert _identity(_energy_v1, version="2") == _identity(_energy_v2, version="2") == "version:2"
    assert _identity(_energy_v1, version="3") != _identity(_energy_v1, version="2")


def test_channel_identity_is_the_same_in_another_process():
    script = (
        "from emo_utils.features.channels import CHANNELS; "
        "print(' '.join(CHANNELS[c].identity for c in ('mel', 'chroma', 'stft', 'mfcc', 'delta')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    ).stdout.split()
    assert out == [CHANNELS[c].identity for c in ("mel", "chroma", "stft", "mfcc", "delta")]


def test_register_channel_records_its_version(registry):
    register_channel("energy", fixed_range=_unit, version="1.2")(_energy_v1)
    assert registry["energy"] == ChannelSpec(_energy_v1, _unit, "1.2")
    assert registry["energy"].identity == "version:1.2"
    register_channel("energy", fixed_range=_unit)(_energy_v2)  # registering again replaces it
    assert registry["energy"].version is None
    assert registry["energy"].identity == _identity(_energy_v2)
