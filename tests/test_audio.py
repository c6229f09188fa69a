"""Decoding audio: formats, rates, crops, padding and every kind of bad file.

All loads run with DeprecationWarning turned into an error, so a silent fallback to librosa's
deprecated audioread path would fail these tests.
"""

from __future__ import annotations

import warnings

import librosa
import numpy as np
import pytest
from audio_factory import (
    BROKEN_WRITERS,
    write_corrupted,
    write_empty,
    write_fake_m4a,
    write_header_only_wav,
    write_id3_only_mp3,
    write_nan_wav,
    write_signal,
    write_silence,
    write_text_as_audio,
    write_tone,
    write_truncated_mp3,
    write_truncated_wav,
)

from emo_utils.audio import (
    CROP_POLICIES,
    SUPPORTED_EXTENSIONS,
    audio_info,
    check_formats,
    crop_start,
    load_audio,
    load_clip,
)
from emo_utils.config import AudioConfig
from emo_utils.errors import AudioError, ConfigError, DataError, EmoUtilsError, EmoUtilsWarning

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")


def reference_load(path, sr):
    """``librosa.load`` -- the reference.  It imports audioread (whose ``aifc`` import is
    deprecated) even for files soundfile reads, so it runs with deprecations ignored; the
    package's own loads in these tests run with every warning as an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return librosa.load(path, sr=sr)[0]


# ---------------------------------------------------------------------------- good files
@pytest.mark.parametrize("ext", [".wav", ".mp3", ".flac", ".ogg"])
@pytest.mark.parametrize(("native", "channels"), [(16000, 1), (44100, 2), (22050, 1), (8000, 2)])
def test_decoding_matches_librosa_load(tmp_path, ext, native, channels):
    path = write_tone(
        tmp_path / f"clip{ext}", sr=native, seconds=1.3, channels=channels, noise=0.05
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = load_audio(path, sample_rate=22050)
    ref = reference_load(path, 22050)
    assert y.dtype == np.float32
    assert y.ndim == 1
    np.testing.assert_array_equal(y, ref)


@pytest.mark.parametrize("ext", [".wav", ".mp3", ".flac", ".ogg"])
def test_window_read_equals_the_start_of_the_full_decode(tmp_path, ext):
    path = write_tone(tmp_path / f"long{ext}", sr=44100, seconds=3.0, channels=2, noise=0.1)
    y = load_audio(path, sample_rate=16000, max_duration=1.0)
    full = reference_load(path, 16000)
    assert len(y) == 16000
    np.testing.assert_array_equal(y, full[:16000])


def test_only_the_needed_window_is_decoded(tmp_path):
    # The tail of this FLAC is damaged: decoding the whole file fails there, the first
    # second decodes cleanly, which shows that the loader stops after the window.
    clean = load_audio(
        write_tone(tmp_path / "a.flac", sr=16000, seconds=4, noise=0.1), sample_rate=16000
    )
    path = write_tone(tmp_path / "b.flac", sr=16000, seconds=4, noise=0.1)
    write_corrupted(path, offset=int(path.stat().st_size * 0.8), n_bytes=200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        head = load_audio(path, sample_rate=16000, max_duration=1.0)
    np.testing.assert_array_equal(head, clean[:16000])
    with pytest.warns(EmoUtilsWarning, match="b.flac"):
        load_audio(path, sample_rate=16000)


def test_center_crop_takes_the_middle(tmp_path):
    path = write_tone(tmp_path / "c.wav", sr=16000, seconds=3.0, noise=0.2)
    full = load_audio(path, sample_rate=16000)
    mid = load_audio(path, sample_rate=16000, max_duration=1.0, crop="center")
    np.testing.assert_array_equal(mid, full[16000:32000])
    # With resampling the window is decoded with context, so it matches the full decode.
    full22 = load_audio(path, sample_rate=22050)
    mid22 = load_audio(path, sample_rate=22050, max_duration=1.0, crop="center")
    start = 16000 * 22050 // 16000
    np.testing.assert_allclose(mid22, full22[start : start + 22050], atol=1e-4)


def test_random_crop_needs_rng_and_varies(tmp_path):
    path = write_tone(tmp_path / "r.wav", sr=16000, seconds=3.0, noise=0.3)
    full = load_audio(path, sample_rate=16000)
    with pytest.raises(ValueError, match="rng"):
        load_audio(path, sample_rate=16000, max_duration=1.0, crop="random")
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(4):
        y = load_audio(path, sample_rate=16000, max_duration=1.0, crop="random", rng=rng)
        hits = [s for s in np.flatnonzero(full == y[0]) if np.array_equal(full[s : s + 16000], y)]
        assert len(hits) == 1
        starts.add(hits[0])
    assert len(starts) > 1


def test_audio_info_reports_the_header(tmp_path):
    info = audio_info(write_tone(tmp_path / "i.flac", sr=22050, seconds=0.5, channels=2))
    assert (info.sample_rate, info.frames, info.channels, info.format) == (22050, 11025, 2, "FLAC")
    assert info.duration == pytest.approx(0.5)


# ---------------------------------------------------------------------------- crop policies
@pytest.mark.parametrize("policy", sorted(CROP_POLICIES))
@pytest.mark.parametrize(("total", "size"), [(10, 20), (20, 20), (21, 20), (100, 20), (1, 1)])
def test_every_crop_policy_stays_inside_the_clip(policy, total, size):
    rng = np.random.default_rng(0)
    starts = {crop_start(total=total, size=size, policy=policy, rng=rng) for _ in range(20)}
    assert all(isinstance(s, int) and 0 <= s <= max(0, total - size) for s in starts)
    if total <= size:
        assert starts == {0}


def test_crop_start_positions():
    assert crop_start(total=100, size=20) == 0
    assert crop_start(total=10, size=20, policy="center") == 0
    assert crop_start(total=100, size=20, policy="center") == 40
    assert crop_start(total=101, size=20, policy="center") == 40
    rng = np.random.default_rng(0)
    starts = {crop_start(total=30, size=20, policy="random", rng=rng) for _ in range(200)}
    assert starts == set(range(11))
    with pytest.raises(ValueError, match="rng"):
        crop_start(total=30, size=20, policy="random")


def test_unknown_crop_policy_is_a_config_error_naming_the_known_ones():
    with pytest.raises(ConfigError, match=r"'middle'.*known: \['center', 'random', 'start'\]"):
        crop_start(total=30, size=20, policy="middle")
    with pytest.raises(ConfigError, match="unknown crop policy"):
        crop_start(total=10, size=20, policy="middle")  # even when there is nothing to crop


@pytest.mark.parametrize("seconds", [0.3, 1.0, 2.5])
def test_load_clip_pads_and_crops_to_the_duration(tmp_path, seconds):
    cfg = AudioConfig(sample_rate=16000, duration=1.0, max_duration=1.0)
    path = write_tone(tmp_path / "x.ogg", sr=48000, seconds=seconds)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = load_clip(path, config=cfg)
    assert y.shape == (16000,)
    assert y.dtype == np.float32
    if seconds < 1.0:
        assert np.all(y[round(seconds * 16000) + 50 :] == 0)


def test_load_clip_keeps_up_to_max_duration(tmp_path):
    cfg = AudioConfig(sample_rate=16000, duration=1.0, max_duration=2.0)
    assert load_clip(write_tone(tmp_path / "a.wav", seconds=3.0), config=cfg).shape == (32000,)
    assert load_clip(write_tone(tmp_path / "b.wav", seconds=1.5), config=cfg).shape == (24000,)
    assert load_clip(write_tone(tmp_path / "c.wav", seconds=0.5), config=cfg).shape == (16000,)


def test_very_short_clip_warns_and_is_padded(tmp_path):
    cfg = AudioConfig(sample_rate=16000, duration=1.0, max_duration=1.0, min_duration=0.1)
    path = write_tone(tmp_path / "blip.wav", sr=16000, seconds=0.05)
    with pytest.warns(EmoUtilsWarning, match=r"blip\.wav.*0\.050 s"):
        y = load_clip(path, config=cfg)
    assert y.shape == (16000,)
    assert np.any(y[:800] != 0)
    assert np.all(y[800:] == 0)


def test_silent_clip_is_valid(tmp_path):
    y = load_audio(write_silence(tmp_path / "s.flac", seconds=0.5), sample_rate=16000)
    assert y.shape == (8000,)
    assert not np.any(y)


# ---------------------------------------------------------------------------- bad files
BAD_CASES = [
    ("empty", "e.wav", write_empty, "empty file"),
    ("text", "t.wav", write_text_as_audio, "text file"),
    ("text_mp3", "t.mp3", write_text_as_audio, "text file"),
    ("header_only", "h.wav", write_header_only_wav, "no audio samples"),
    ("id3_only", "i.mp3", write_id3_only_mp3, "ID3 tag"),
    ("truncated_mp3", "m.mp3", lambda p: write_truncated_mp3(p, keep_bytes=200), "no decodable"),
    ("nan", "n.wav", write_nan_wav, "NaN/inf"),
    ("m4a_content", "a.wav", write_fake_m4a, "MP4/M4A"),
    ("m4a_extension", "a.m4a", write_fake_m4a, "not a readable audio file (ffmpeg"),
    ("unreadable_extension", "a.wv", write_fake_m4a, "unsupported format '.wv'"),
]


@pytest.mark.parametrize(
    ("name", "writer", "reason"),
    [(name, writer, reason) for _, name, writer, reason in BAD_CASES],
    ids=[case[0] for case in BAD_CASES],
)
def test_bad_file_raises_audio_error_naming_file_and_reason(tmp_path, name, writer, reason):
    path = writer(tmp_path / name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no audioread fallback, no stray warnings
        with pytest.raises(AudioError) as info:
            load_audio(path, sample_rate=16000)
    err = info.value
    assert isinstance(err, EmoUtilsError)
    assert err.path == str(path)
    assert str(path) in str(err)
    assert reason in err.reason


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="file not found"):
        load_audio(tmp_path / "nope.wav", sample_rate=16000)


def test_nan_error_says_where(tmp_path):
    path = write_nan_wav(tmp_path / "n.wav", at=0.5, bad=(np.nan, np.inf, -np.inf))
    with pytest.raises(AudioError, match=r"3 NaN/inf sample\(s\), first at 0\.500 s"):
        load_audio(path, sample_rate=16000)


def test_broken_writers_all_fail(tmp_path):
    for name, (ext, writer) in BROKEN_WRITERS.items():
        with pytest.raises(AudioError):
            load_audio(writer(tmp_path / f"{name}{ext}"), sample_rate=16000)


def test_truncated_wav_warns_and_keeps_what_decodes(tmp_path):
    path = write_truncated_wav(tmp_path / "cut.wav", sr=16000, seconds=2.0, keep_fraction=0.25)
    with pytest.warns(EmoUtilsWarning, match=r"cut\.wav: file is shorter than its header claims"):
        y = load_audio(path, sample_rate=16000)
    assert len(y) == 8000


def test_truncated_mp3_stream_warns(tmp_path):
    path = write_truncated_mp3(tmp_path / "cut.mp3", sr=16000, seconds=2.0, keep_fraction=0.3)
    with pytest.warns(EmoUtilsWarning, match=r"cut\.mp3: file is shorter than its header claims"):
        y = load_audio(path, sample_rate=16000)
    assert 0 < len(y) < 16000


def test_intact_files_do_not_warn(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for ext in (".wav", ".mp3", ".flac", ".ogg"):
            load_audio(write_tone(tmp_path / f"ok{ext}", seconds=1.0), sample_rate=16000)


# ---------------------------------------------------------------------------- formats
def test_supported_extensions_cover_the_competition_formats():
    assert {".wav", ".flac", ".ogg", ".mp3"} <= set(SUPPORTED_EXTENSIONS)
    assert ".m4a" not in SUPPORTED_EXTENSIONS


def test_check_formats_lists_every_unreadable_extension_at_once(tmp_path):
    paths = [tmp_path / "a.wav", tmp_path / "b.wv", tmp_path / "c.WV", tmp_path / "d.ape"]
    with pytest.raises(DataError) as info:
        check_formats(paths)
    message = str(info.value)
    assert "3 audio file(s)" in message
    assert ".wv (2 file(s)" in message
    assert ".ape (1 file(s)" in message
    assert "a.wav" not in message
    check_formats([tmp_path / "x.wav", tmp_path / "y.MP3", tmp_path / "noext", tmp_path / "z.m4a"])


@pytest.mark.parametrize(("native", "ext"), [(16000, "wav"), (22050, "flac"), (44100, "ogg")])
def test_a_region_from_an_offset_is_the_whole_decode_of_that_region(tmp_path, native, ext):
    """Serving decodes a recording piece by piece: each equals the whole file's samples."""
    y = np.random.default_rng(1).normal(0.0, 0.1, native * 9).astype(np.float32)
    path = write_signal(tmp_path / f"long.{ext}", y, sr=native)
    whole = load_audio(path, sample_rate=16000)
    region = load_audio(path, sample_rate=16000, offset=5.0, max_duration=2.5)
    np.testing.assert_allclose(region, whole[80000:120000], atol=1e-6)
    np.testing.assert_allclose(
        load_audio(path, sample_rate=16000, offset=7.0), whole[112000:], atol=1e-6
    )
    with pytest.raises(AudioError, match=r"long\.\w+: no audio samples after 12\.0 s"):
        load_audio(path, sample_rate=16000, offset=12.0)
    with pytest.raises(AudioError, match="offset must be"):
        load_audio(path, sample_rate=16000, offset=-1.0)
