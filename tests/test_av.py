"""Formats libsndfile cannot read, decoded with PyAV (ffmpeg's libraries).

Each file is encoded here with PyAV from a known signal and compared with the same signal
saved as WAV: rate, channels and duration from the header, the decoded length, and the
image within the codec's error.  Only the wanted window is decoded.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile as sf
from audio_factory import write_with_av

from emo_utils.audio import AV_EXTENSIONS, audio_info, check_formats, load_audio
from emo_utils.config import Config
from emo_utils.features import compute_image

av = pytest.importorskip("av")

CONFIG = Config().override(
    {
        "audio.sample_rate": 16000,
        "features.n_mels": 64,
        "features.n_fft": 1024,
        "features.hop_length": 256,
    }
)

#: id -> (extension, container, encoder, native rate, channels, mean image error bound).
#: WMA and AMR have no bound here: their files do not say how much the encoder shifted the
#: audio (ffmpeg's wmav2 encoder drops its 2048-sample delay at the start, AMR-NB's decoder
#: output lags by the codec's look-ahead; ffmpeg's own decode is shifted the same way), so
#: :func:`test_shifted_codecs_give_the_wav_image_once_aligned` checks their images after
#: measuring the shift.
FORMATS = {
    "aac_m4a_stereo": (".m4a", "mp4", "aac", 48000, 2, 0.02),
    "aac_m4a_mono_44k": (".m4a", "mp4", "aac", 44100, 1, 0.02),
    "opus_webm": (".webm", "webm", "libopus", 48000, 2, 0.02),
    "wma": (".wma", "asf", "wmav2", 44100, 2, None),
    "amr_nb": (".amr", "amr", "libopencore_amrnb", 8000, 1, None),
}

#: Bit rate of each encoder in the tests (AMR-NB has fixed modes; 12.2 kbit/s is its best).
BIT_RATES = {"libopencore_amrnb": 12200}

#: Header duration tolerance (s): an AMR file states no length, so ffmpeg estimates it from
#: the bit rate, and the encoder adds its look-ahead frames (3.0 s read as about 3.12 s).
DURATION_TOLERANCE = {"amr_nb": 0.15}

#: id -> (expected shift of the decode in native samples (None: any up to 30 ms), bound).
#: WMA: the wmav2 encoder's 2048 samples; AMR-NB: a speech codec, so a coarser bound.
SHIFTED = {"wma": (-2048, 0.02), "amr_nb": (None, 0.05)}


def _signal(sr: int, channels: int, seconds: float = 3.0) -> np.ndarray:
    """A chirp per channel (no period, so a shifted decode cannot match by chance)."""
    t = np.arange(round(seconds * sr)) / sr
    out = []
    for c in range(channels):
        freq = (200.0 + 1800.0 * t / seconds) * (1.0 + 0.5 * c)
        out.append((0.4 - 0.1 * c) * np.sin(2 * np.pi * np.cumsum(freq) / sr))
    return np.stack(out, axis=1).astype(np.float32)


def _pair(tmp_path, case: str):
    ext, container, codec, sr, channels, _ = FORMATS[case]
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {codec} encoder")
    y = _signal(sr, channels)
    wav = tmp_path / "ref.wav"
    sf.write(wav, y, sr, subtype="FLOAT")
    coded = write_with_av(
        tmp_path / f"clip{ext}",
        y,
        sr=sr,
        container=container,
        codec=codec,
        bit_rate=BIT_RATES.get(codec, 128000),
    )
    return wav, coded, sr, channels, len(y)


@pytest.mark.parametrize("case", list(FORMATS))
def test_header_gives_rate_channels_and_duration(tmp_path, case):
    _, coded, sr, channels, n = _pair(tmp_path, case)
    info = audio_info(coded)
    assert info.sample_rate == sr
    assert info.channels == channels
    assert info.duration == pytest.approx(n / sr, abs=DURATION_TOLERANCE.get(case, 0.05))


@pytest.mark.parametrize("case", [c for c in FORMATS if FORMATS[c][-1] is not None])
def test_image_equals_the_wav_image_within_the_codec_error(tmp_path, case):
    wav, coded, *_ = _pair(tmp_path, case)
    bound = FORMATS[case][-1]
    a = CONFIG.audio
    kw = {"sample_rate": a.sample_rate, "max_duration": 2.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no truncation warning, no audioread fallback
        y_coded = load_audio(coded, **kw)
    y_wav = load_audio(wav, **kw)
    assert y_coded.dtype == np.float32
    assert len(y_coded) == len(y_wav) == 32000
    assert np.corrcoef(y_coded, y_wav)[0, 1] > 0.95  # aligned: the codec delay is removed
    image = compute_image(y_coded, sample_rate=a.sample_rate, config=CONFIG.features)
    ref = compute_image(y_wav, sample_rate=a.sample_rate, config=CONFIG.features)
    assert image.shape == ref.shape
    assert np.abs(image - ref).mean() < bound


@pytest.mark.parametrize("case", list(SHIFTED))
def test_shifted_codecs_give_the_wav_image_once_aligned(tmp_path, case):
    wav, coded, sr, *_ = _pair(tmp_path, case)
    expected, bound = SHIFTED[case]
    rate = CONFIG.audio.sample_rate
    y_coded = load_audio(coded, sample_rate=rate)
    y_wav = load_audio(wav, sample_rate=rate)
    n = 2 * rate
    # The shift that best aligns the decode with the reference, searched over +-50 ms.
    lags = np.arange(-rate // 20, rate // 20 + 1)
    scores = [np.dot(y_coded[max(0, k) :][:n], y_wav[max(0, -k) :][:n]) for k in lags]
    lag = int(lags[int(np.argmax(scores))])
    if expected is None:
        assert abs(lag) <= 0.03 * rate
    else:
        assert lag == pytest.approx(expected * rate / sr, abs=1)
    a, b = y_coded[max(0, lag) :][:n], y_wav[max(0, -lag) :][:n]
    assert np.corrcoef(a, b)[0, 1] > 0.95
    image = compute_image(a, sample_rate=rate, config=CONFIG.features)
    ref = compute_image(b, sample_rate=rate, config=CONFIG.features)
    assert np.abs(image - ref).mean() < bound


@pytest.mark.parametrize("case", list(FORMATS))
def test_a_later_window_is_exactly_that_part_of_the_whole_decode(tmp_path, case):
    _, coded, sr, *_ = _pair(tmp_path, case)
    whole = load_audio(coded, sample_rate=sr)
    window = load_audio(coded, sample_rate=sr, max_duration=1.0, crop="center")
    start = (len(whole) - sr) // 2
    np.testing.assert_array_equal(window, whole[start : start + sr])


def test_whole_file_decodes_to_its_length(tmp_path):
    _, coded, sr, _, n = _pair(tmp_path, "opus_webm")
    y = load_audio(coded, sample_rate=sr)
    assert len(y) == pytest.approx(n, abs=sr * 0.01)


def test_pyav_formats_pass_the_format_check(tmp_path):
    check_formats([tmp_path / f"x{ext}" for ext in AV_EXTENSIONS])
    assert {".m4a", ".webm", ".wma", ".amr"} <= set(AV_EXTENSIONS)
