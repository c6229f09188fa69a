"""The on-disk feature cache: contents, keys, reuse, resume, damage, failures."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from audio_factory import (
    write_competition,
    write_corrupted,
    write_empty,
    write_fake_m4a,
    write_id3_only_mp3,
    write_text_as_audio,
    write_tone,
)

from emo_utils.audio import crop_start, load_clip
from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.errors import CacheError, ConfigError, DataError, EmoUtilsWarning
from emo_utils.features import _parallel as parallel_module
from emo_utils.features import build as build_module
from emo_utils.features.build import build_cache
from emo_utils.features.channels import CHANNELS, compute_image, register_channel
from emo_utils.features.store import (
    FeatureStore,
    cache_folder,
    default_cache_dir,
    open_cache,
    require_valid_training,
)

# Every load runs with deprecations as errors: no silent audioread fallback.
pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")

# Small and fast: 1 s windows of 16 kHz audio, 32 mel bands, 32 frames per window.
CONFIG = Config.preset("cpu_demo").override(
    {
        "audio.duration": 1.0,
        "audio.max_duration": 1.0,
        "features.n_mels": 32,
        "features.n_fft": 512,
        "features.hop_length": 512,
    }
)
WINDOW = 1 + 16000 // 512

TRAIN = {  # name -> (writer kwargs or broken writer, label)
    "a.wav": {"sr": 16000, "seconds": 0.7, "freq": 300.0},
    "b.mp3": {"sr": 44100, "seconds": 2.5, "channels": 2, "freq": 500.0},
    "c.flac": {"sr": 22050, "seconds": 1.0, "freq": 700.0},
    "d.ogg": {"sr": 48000, "seconds": 1.6, "freq": 900.0},
    "e.wav": {"sr": 8000, "seconds": 3.0, "freq": 1100.0},
}


def make_competition(root: Path, *, bad_train: bool = False, extra_train: int = 0):
    """train: 5 good clips (+ extras, + 2 bad ones); test: repeats and a bad file."""
    train = {}
    for k, (name, kw) in enumerate(TRAIN.items()):
        write_tone(root / "train" / name, noise=0.05, seed=k, **kw)
        train[name] = "ab"[k % 2]
    for k in range(extra_train):
        write_tone(root / "train" / f"x{k}.wav", seconds=0.5 + 0.1 * k, freq=200.0 + 50 * k)
        train[f"x{k}.wav"] = "ab"[k % 2]
    if bad_train:
        write_empty(root / "train" / "empty.wav")
        write_text_as_audio(root / "train" / "notes.mp3")
        train["empty.wav"] = "a"
        train["notes.mp3"] = "b"
    write_tone(root / "test" / "t1.wav", seconds=1.2, freq=440.0, noise=0.05)
    write_tone(root / "test" / "t2.flac", sr=32000, seconds=0.4, freq=660.0, noise=0.05)
    write_id3_only_mp3(root / "test" / "t3.mp3")
    write_competition(root, train=train, test=["t1.wav", "t2.flac", "t1.wav", "t3.mp3", "t2.flac"])
    return load_competition(root, CONFIG.data)


@pytest.fixture
def comp(tmp_path):
    return make_competition(tmp_path / "data")


def quiet_build(competition, split, config, cache_dir=None, **kwargs) -> FeatureStore:
    kwargs.setdefault("n_jobs", 1)
    kwargs.setdefault("progress", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoUtilsWarning)
        return build_cache(competition, split, config=config, cache_dir=cache_dir, **kwargs)


def images_of(store: FeatureStore) -> list[np.ndarray | None]:
    return [store.window(i) if ok else None for i, ok in enumerate(store.ok)]


def assert_same_store(a: FeatureStore, b: FeatureStore) -> None:
    assert a.filenames == b.filenames
    assert a.reasons == b.reasons
    for x, y in zip(images_of(a), images_of(b), strict=True):
        if x is None:
            assert y is None
        else:
            np.testing.assert_array_equal(x, y)


# ---------------------------------------------------------------------------- contents
def test_train_store_matches_direct_computation(comp):
    store = quiet_build(comp, "train", CONFIG)
    assert store.filenames == comp.train["filename"].tolist()
    assert store.ok.all()
    assert store.image_shape == (3, 32, WINDOW)
    assert store.frames.dtype == np.float16
    assert isinstance(store.frames, np.memmap)
    for i, path in enumerate(comp.train["path"]):
        expected = compute_image(
            load_clip(path, config=CONFIG.audio), sample_rate=16000, config=CONFIG.features
        )
        np.testing.assert_allclose(store.window(i), expected, atol=1e-3)
    assert store.directory == cache_folder(CONFIG, "train", comp.root / ".emo_cache")
    assert default_cache_dir(comp.root) == comp.root / ".emo_cache"


def test_test_store_keeps_every_row_in_order(comp):
    with pytest.warns(EmoUtilsWarning, match=r"1 of 5 test row\(s\) have no image"):
        store = build_cache(comp, "test", config=CONFIG, n_jobs=1, progress=False)
    assert store.filenames == comp.test["filename"].tolist()
    assert store.reasons[3] == "MP3 file holds only an ID3 tag, no audio frames"
    assert store.ok.tolist() == [True, True, True, False, True]
    # Repeated rows share one image, computed once.
    assert store.offsets[0] == store.offsets[2]
    assert store.offsets[1] == store.offsets[4]
    assert store.stats["clips"] == 3
    np.testing.assert_array_equal(store.window(0), store.window(2))
    report = pd.read_csv(store.directory / "failures.csv")
    assert report["filename"].tolist() == ["t3.mp3"]
    assert "ID3" in report["reason"][0]


def test_long_clips_keep_max_duration_for_crops_and_tta(tmp_path):
    comp = make_competition(tmp_path / "data")
    cfg = CONFIG.override({"audio.max_duration": 2.0})
    store = quiet_build(comp, "train", cfg)
    lengths = dict(zip(store.filenames, store.lengths.tolist(), strict=True))
    assert lengths["a.wav"] == WINDOW  # 0.7 s: padded to one window
    assert lengths["c.flac"] == WINDOW
    assert lengths["b.mp3"] == 1 + 32000 // 512  # 2.5 s: cut at max_duration
    assert lengths["d.ogg"] == 1 + round(1.6 * 16000) // 512
    i = store.filenames.index("b.mp3")
    assert store.windows(i).shape[0] == 3
    random = store.window(i, "random", np.random.default_rng(0))
    assert random.shape == store.image_shape


def test_short_clip_warning_is_reported_and_kept(tmp_path):
    root = tmp_path / "data"
    write_tone(root / "train" / "blip.wav", seconds=0.03)
    write_tone(root / "train" / "ok.wav", seconds=1.0)
    write_tone(root / "test" / "t.wav", seconds=1.0)
    write_competition(root, train={"blip.wav": "a", "ok.wav": "b"}, test=["t.wav"])
    comp = load_competition(root)
    for _ in range(2):  # on the first build and again when the cache is reused
        with pytest.warns(EmoUtilsWarning, match=r"blip\.wav: clip is only 0\.030 s"):
            store = build_cache(comp, "train", config=CONFIG, n_jobs=1, progress=False)
        assert store.ok.all()
        assert store.notes[0]["file"].endswith("blip.wav")
    table = pd.read_csv(store.directory / "warnings.csv")
    assert table["filename"].tolist() == ["blip.wav"]


def test_every_file_failing_gives_an_empty_but_valid_store(tmp_path):
    root = tmp_path / "data"
    write_empty(root / "test" / "a.wav")
    write_id3_only_mp3(root / "test" / "b.mp3")
    write_tone(root / "train" / "x.wav")
    write_tone(root / "train" / "y.wav")
    write_competition(root, train={"x.wav": "a", "y.wav": "b"}, test=["a.wav", "b.mp3"])
    comp = load_competition(root)
    store = quiet_build(comp, "test", CONFIG)
    assert not store.ok.any()
    assert store.frames.shape == (0, 3, 32)
    assert quiet_build(comp, "test", CONFIG).stats["computed"] == 0


# ---------------------------------------------------------------------------- keys and reuse
def test_unchanged_rerun_reuses_everything(comp):
    first = quiet_build(comp, "train", CONFIG)
    frames = first.directory / "frames.npy"
    stamp = frames.stat().st_mtime_ns
    again = quiet_build(comp, "train", CONFIG)
    assert again.stats["computed"] == 0
    assert again.stats["reused"] == 5
    assert frames.stat().st_mtime_ns == stamp
    assert_same_store(first, again)
    assert_same_store(first, open_cache(comp, "train", config=CONFIG))


def test_changed_config_never_reuses_images(comp):
    first = quiet_build(comp, "train", CONFIG)
    other = CONFIG.override({"features.n_mels": 24})
    second = quiet_build(comp, "train", other)
    assert second.directory != first.directory
    assert second.stats["computed"] == 5
    assert second.image_shape == (3, 24, WINDOW)
    # Normalisation also changes the images, hence the key.
    third = quiet_build(comp, "train", CONFIG.override({"features.normalization": "minmax"}))
    assert third.directory not in (first.directory, second.directory)
    assert not np.array_equal(third.window(0), first.window(0))
    assert (first.directory / "manifest.json").is_file()


def test_changed_audio_file_is_recomputed(comp):
    first = quiet_build(comp, "train", CONFIG)
    path = Path(comp.train["path"][2])
    write_tone(path, sr=22050, seconds=1.0, freq=3000.0)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(CacheError, match="stale"):
        open_cache(comp, "train", config=CONFIG)
    second = quiet_build(comp, "train", CONFIG)
    assert second.stats["computed"] > 0
    assert not np.array_equal(first.window(2), second.window(2))
    np.testing.assert_array_equal(first.window(0), second.window(0))


def test_moved_competition_folder_keeps_its_cache(comp, tmp_path):
    quiet_build(comp, "train", CONFIG)
    moved = tmp_path / "moved"
    comp.root.rename(moved)  # a rename keeps modification times
    store = quiet_build(load_competition(moved), "train", CONFIG)
    assert store.stats["computed"] == 0
    assert store.directory == cache_folder(CONFIG, "train", moved / ".emo_cache")


def test_open_cache_never_computes(comp):
    with pytest.raises(CacheError, match="no finished cache"):
        open_cache(comp, "train", config=CONFIG)
    assert not (comp.root / ".emo_cache").exists()


# ---------------------------------------------------------------------------- damage
@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("frames.npy", lambda p: write_corrupted(p, n_bytes=64)),
        ("frames.npy", lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])),
        ("frames.npy", lambda p: p.write_bytes(b"not an npy file")),
        ("manifest.json", lambda p: p.write_text("{ truncated", encoding="utf-8")),
        ("index.csv", lambda p: p.write_text("row,filename\n0,zzz\n", encoding="utf-8")),
    ],
    ids=["frames-bitflip", "frames-truncated", "frames-garbage", "manifest", "index"],
)
def test_damaged_cache_file_is_reported_and_recomputed(comp, tmp_path, name, damage):
    clean = quiet_build(comp, "train", CONFIG, cache_dir=tmp_path / "clean")
    first = quiet_build(comp, "train", CONFIG)
    target = first.directory / name
    del first  # release the memory map before damaging the file
    damage(target)
    with pytest.raises(CacheError, match=re.escape(name)):
        open_cache(comp, "train", config=CONFIG)
    with pytest.warns(EmoUtilsWarning, match=re.escape(f"{name}: damaged cache file")):
        again = build_cache(comp, "train", config=CONFIG, n_jobs=1, progress=False)
    assert again.stats["computed"] == 5
    assert_same_store(clean, again)


# ---------------------------------------------------------------------------- resume
class Killed(BaseException):
    """Stands in for the process being killed (not an Exception, like KeyboardInterrupt)."""


def killed(*args, **kwargs):
    raise Killed


def test_run_killed_before_assembly_resumes_from_chunks(comp, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(build_module, "_assemble", killed)
        with pytest.raises(Killed):
            quiet_build(comp, "train", CONFIG, chunk_size=2)
    folder = cache_folder(CONFIG, "train", comp.root / ".emo_cache")
    assert not (folder / "manifest.json").exists()
    assert len(list((folder / "chunks").glob("chunk-*.npz"))) == 3
    store = quiet_build(comp, "train", CONFIG, chunk_size=2)
    assert (store.stats["reused"], store.stats["computed"]) == (5, 0)
    assert not (folder / "chunks").exists()
    assert not list(folder.glob(".tmp-*"))


def test_run_killed_midway_recomputes_only_missing_chunks(tmp_path, monkeypatch):
    comp = make_competition(tmp_path / "data", extra_train=3)  # 8 clips, 4 chunks
    calls = []
    original = build_module._compute_chunk

    def dies_on_third_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise Killed
        return original(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(build_module, "_compute_chunk", dies_on_third_chunk)
        with pytest.raises(Killed):
            quiet_build(comp, "train", CONFIG, chunk_size=2)
    store = quiet_build(comp, "train", CONFIG, chunk_size=2)
    assert (store.stats["reused"], store.stats["computed"]) == (4, 4)
    clean = quiet_build(comp, "train", CONFIG, cache_dir=tmp_path / "clean", chunk_size=8)
    assert_same_store(clean, store)


def test_damaged_chunk_is_reported_and_recomputed(comp, tmp_path, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(build_module, "_assemble", killed)
        with pytest.raises(Killed):
            quiet_build(comp, "train", CONFIG, chunk_size=2)
    folder = cache_folder(CONFIG, "train", comp.root / ".emo_cache")
    chunk = sorted((folder / "chunks").glob("chunk-*.npz"))[1]
    with np.load(chunk) as data:
        n_clips = len(data["lengths"])
    write_corrupted(chunk, n_bytes=64)
    with pytest.warns(EmoUtilsWarning, match=re.escape(f"{chunk.name}: damaged cache file")):
        store = build_cache(comp, "train", config=CONFIG, n_jobs=1, progress=False, chunk_size=2)
    assert store.stats["computed"] == n_clips
    assert store.stats["reused"] == 5 - n_clips
    fresh = quiet_build(comp, "train", CONFIG, cache_dir=tmp_path / "clean", chunk_size=5)
    assert_same_store(fresh, store)


KILL_SCRIPT = """
import sys, warnings
from emo_utils.features import build_cache
from emo_utils.data.competition import load_competition
from emo_utils.config import Config
cfg = Config.from_file(sys.argv[2])
warnings.simplefilter("ignore")
build_cache(load_competition(sys.argv[1]), "train", config=cfg, n_jobs=1, progress=False, chunk_size=1)
"""


def test_process_killed_with_sigkill_leaves_no_or_a_valid_cache(tmp_path):
    comp = make_competition(tmp_path / "data", extra_train=15)
    config_file = tmp_path / "config.json"
    CONFIG.save(config_file)
    folder = cache_folder(CONFIG, "train", comp.root / ".emo_cache")
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(comp.root), str(config_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((folder / "chunks").glob("chunk-*.npz"))) >= 2:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    chunks_left = len(list((folder / "chunks").glob("chunk-*.npz")))
    finished = (folder / "manifest.json").exists()
    if finished:  # it ended before the kill: the cache must be valid
        open_cache(comp, "train", config=CONFIG)
    else:
        assert chunks_left >= 2
        with pytest.raises(CacheError):
            open_cache(comp, "train", config=CONFIG)
    store = quiet_build(comp, "train", CONFIG, chunk_size=1)
    assert store.stats["reused"] == (20 if finished else chunks_left)
    assert store.stats["computed"] + store.stats["reused"] == 20
    clean = quiet_build(comp, "train", CONFIG, cache_dir=tmp_path / "clean")
    assert_same_store(clean, store)


# ---------------------------------------------------------------------------- failures
def test_failed_training_files_stop_training_with_every_reason(tmp_path):
    comp = make_competition(tmp_path / "data", bad_train=True)
    with pytest.warns(EmoUtilsWarning, match=r"2 of 7 train row\(s\)"):
        store = build_cache(comp, "train", config=CONFIG, n_jobs=1, progress=False)
    with pytest.raises(CacheError) as info:
        require_valid_training(store)
    message = str(info.value)
    assert "2 training file(s)" in message
    assert "empty.wav: empty file (0 bytes)" in message
    assert "notes.mp3: text file, not audio" in message
    assert "failures.csv" in message
    good = require_valid_training(store, skip_bad=True)
    np.testing.assert_array_equal(good, np.arange(5))
    subset = store.select(good)
    assert subset.ok.all()
    assert subset.filenames == store.filenames[:5]
    np.testing.assert_array_equal(subset.window(4), store.window(4))
    report = pd.read_csv(store.directory / "failures.csv")
    assert sorted(report["filename"]) == ["empty.wav", "notes.mp3"]


def test_unreadable_format_fails_before_any_work(tmp_path):
    comp = make_competition(tmp_path / "data")
    write_fake_m4a(comp.root / "train" / "z.wv")
    write_competition(comp.root, train={**dict.fromkeys(TRAIN, "a"), "z.wv": "b"}, test=["t1.wav"])
    comp = load_competition(comp.root)
    with pytest.raises(DataError, match=r"\.wv \(1 file"):
        build_cache(comp, "train", config=CONFIG, n_jobs=1, progress=False)
    assert not (comp.root / ".emo_cache").exists()


def test_parallel_build_equals_sequential_build(tmp_path, monkeypatch):
    comp = make_competition(tmp_path / "data", extra_train=3)  # 8 clips, 4 chunks
    chunks = cache_folder(CONFIG, "train", comp.root / ".emo_cache") / "chunks"
    here = []  # chunks computed by this process
    original = build_module._compute_chunk

    def after_a_worker_chunk(paths, audio, features, specs, out_path, key):
        # This process helps only once the worker has written a chunk, so both compute.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(chunks.glob("*.npz"))) <= len(here):
            time.sleep(0.01)
        here.append(out_path)
        return original(paths, audio, features, specs, out_path, key)

    with monkeypatch.context() as m:
        m.setattr(build_module, "_compute_chunk", after_a_worker_chunk)
        m.setattr(parallel_module, "_CLIPS_PER_WORKER", 1)  # a worker even for 8 clips
        parallel = quiet_build(comp, "train", CONFIG, n_jobs=2, chunk_size=2)
    assert 1 <= len(here) < 4  # the worker process computed the other chunks
    assert parallel.stats["computed"] == 8
    sequential = quiet_build(comp, "train", CONFIG, cache_dir=tmp_path / "clean")
    assert_same_store(parallel, sequential)
    manifest = json.loads((parallel.directory / "manifest.json").read_text())
    assert manifest["rows"] == manifest["clips"] == 8
    assert manifest["dtype"] == "float16"


# ---------------------------------------------------------------------------- reading
def ramp_store(lengths=(10, 4, 7), window=4) -> FeatureStore:
    """In-memory store whose frame ``t`` of row ``r`` holds ``100 * r + t`` everywhere."""
    images = [
        np.broadcast_to(100.0 * r + np.arange(n, dtype=np.float32), (2, 3, n)).copy()
        for r, n in enumerate(lengths)
    ]
    return FeatureStore.from_arrays(
        [f"r{r}" for r in range(len(lengths))], images, window_frames=window
    )


def first_frame(window: np.ndarray) -> float:
    return float(window[0, 0, 0])


@pytest.mark.parametrize("policy", ["start", "center", "random"])
def test_window_crops_frames_by_the_audio_crop_policy(policy):
    store = ramp_store()
    for i, n in enumerate(store.lengths.tolist()):
        got = store.window(i, policy, np.random.default_rng(7))
        start = crop_start(total=n, size=4, policy=policy, rng=np.random.default_rng(7))
        assert got.shape == (2, 3, 4)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got[0, 0], 100.0 * i + np.arange(start, start + 4))


def test_window_policy_errors_are_those_of_audio():
    store = ramp_store()
    for row in (0, 1):  # a long row and a row of exactly one window
        with pytest.raises(ConfigError, match=r"'middle'.*known: \['center', 'random', 'start'\]"):
            store.window(row, "middle")
    with pytest.raises(ValueError, match="rng"):
        store.window(0, "random")
    randoms = {first_frame(store.window(0, "random", np.random.default_rng(s))) for s in range(40)}
    assert randoms == set(range(7))


def test_windows_cover_the_clip_with_half_a_window_hop_by_default():
    store = ramp_store()
    np.testing.assert_array_equal(store.window_starts(0), [0, 2, 4, 6])
    np.testing.assert_array_equal(store.window_starts(1), [0])
    np.testing.assert_array_equal(store.window_starts(2), [0, 2, 3])  # last one end-aligned
    views = store.windows(0)
    assert views.shape == (4, 2, 3, 4)
    assert views.dtype == np.float32
    assert [first_frame(v) for v in views] == [0, 2, 4, 6]
    np.testing.assert_array_equal(views[1], store.frames[2:6].transpose(1, 2, 0))


def test_windows_take_a_hop_in_frames():
    store = ramp_store()
    np.testing.assert_array_equal(store.window_starts(0, hop=1), np.arange(7))
    np.testing.assert_array_equal(store.window_starts(0, hop=4), [0, 4, 6])
    np.testing.assert_array_equal(store.window_starts(0, hop=100), [0, 6])
    assert [first_frame(v) for v in store.windows(0, hop=3)] == [0, 3, 6]
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="hop"):
            store.windows(0, hop=bad)


def _reference_statistics(store: FeatureStore, rows) -> tuple[np.ndarray, np.ndarray]:
    """What ``emo_utils.models.timm._dataset_stats`` computed from the store's internals."""
    c = store.image_shape[0]
    total, total_sq, n = np.zeros(c), np.zeros(c), 0
    for i in rows:
        off, length = int(store.offsets[i]), int(store.lengths[i])
        block = np.asarray(store.frames[off : off + length], dtype=np.float64)
        total += block.sum(axis=(0, 2))
        total_sq += np.square(block).sum(axis=(0, 2))
        n += block.shape[0] * block.shape[2]
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
    std[std < 1e-6] = 1.0
    return mean, std


def test_channel_statistics_of_rows(tmp_path):
    comp = make_competition(tmp_path / "data", bad_train=True)
    store = quiet_build(comp, "train", CONFIG.override({"audio.max_duration": 2.0}))
    for rows in ([0, 1, 2, 3, 4, 5, 6], [4, 1], np.array([2]), range(7)):
        mean, std = store.channel_statistics(rows)
        expected_mean, expected_std = _reference_statistics(store, rows)
        assert mean.dtype == std.dtype == np.float64
        assert mean.shape == std.shape == (3,)
        np.testing.assert_array_equal(mean, expected_mean)
        np.testing.assert_array_equal(std, expected_std)
    # The same as the statistics of the values themselves.
    values = np.concatenate(
        [store.frames[o : o + n] for o, n in zip(store.offsets[:5], store.lengths[:5], strict=True)]
    )
    values = values.astype(np.float64).transpose(1, 0, 2).reshape(3, -1)
    mean, std = store.channel_statistics(range(5))
    np.testing.assert_allclose(mean, values.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(std, values.std(axis=1), rtol=1e-9)
    with pytest.raises(CacheError, match="no frames"):
        store.channel_statistics([5, 6])  # the failed rows


def test_channel_statistics_leave_constant_channels_unscaled():
    images = [np.stack([np.full((2, 5), 3.0), np.arange(10.0).reshape(2, 5)]).astype(np.float32)]
    mean, std = FeatureStore.from_arrays(["a"], images, window_frames=5).channel_statistics([0])
    np.testing.assert_allclose(mean, [3.0, 4.5])
    np.testing.assert_allclose(std, [1.0, np.arange(10.0).std()])


# ---------------------------------------------------------------------------- custom channels
@pytest.fixture
def registry():
    """The channel registry, restored in place afterwards (never rebound)."""
    saved = dict(CHANNELS)
    yield CHANNELS
    CHANNELS.clear()
    CHANNELS.update(saved)


def energy_range(*, config):
    return -100.0, 60.0


def energy_sum(*, spectrum):
    return 10 * np.log10(spectrum.power.sum(axis=0, keepdims=True) + 1e-10)


def energy_sum_again(*, spectrum):  # another function object, the same code
    return 10 * np.log10(spectrum.power.sum(axis=0, keepdims=True) + 1e-10)


def energy_max(*, spectrum):  # the "edited" channel
    return 10 * np.log10(spectrum.power.max(axis=0, keepdims=True) + 1e-10)


ENERGY = CONFIG.override({"features.channels": ["energy", "mel"]})


def test_edited_custom_channel_is_recomputed_never_reused(comp, tmp_path, monkeypatch, registry):
    register_channel("energy", fixed_range=energy_range)(energy_sum)
    with monkeypatch.context() as m:  # leave the chunks of the old code behind
        m.setattr(build_module, "_assemble", killed)
        with pytest.raises(Killed):
            quiet_build(comp, "train", ENERGY, chunk_size=2)
    store = quiet_build(comp, "train", ENERGY, chunk_size=2)
    assert (store.stats["computed"], store.stats["reused"]) == (0, 5)
    old = images_of(store)
    manifest = json.loads((store.directory / "manifest.json").read_text())
    assert manifest["channels"] == {
        "energy": registry["energy"].identity,
        "mel": registry["mel"].identity,
    }

    register_channel("energy", fixed_range=energy_range)(energy_sum_again)  # a re-run cell
    assert quiet_build(comp, "train", ENERGY).stats["computed"] == 0

    register_channel("energy", fixed_range=energy_range)(energy_max)  # edited code
    with pytest.raises(CacheError, match="stale"):
        open_cache(comp, "train", config=ENERGY)
    with monkeypatch.context() as m:
        m.setattr(build_module, "_assemble", killed)
        with pytest.raises(Killed):
            quiet_build(comp, "train", ENERGY, chunk_size=2)
    new = quiet_build(comp, "train", ENERGY, chunk_size=2)
    assert (new.stats["computed"], new.stats["reused"]) == (0, 5)  # only the new code's chunks
    for before, after in zip(old, images_of(new), strict=True):
        assert not np.array_equal(before[0], after[0])  # energy: recomputed
        np.testing.assert_array_equal(before[1], after[1])  # mel: the same
    clean = quiet_build(comp, "train", ENERGY, cache_dir=tmp_path / "clean")
    assert_same_store(clean, new)


def test_channel_from_main_is_built_in_this_process_with_a_warning(tmp_path, monkeypatch, registry):
    comp = make_competition(tmp_path / "data", extra_train=3)  # 8 clips, 4 chunks

    def energy(*, spectrum):
        return 10 * np.log10(spectrum.power.sum(axis=0, keepdims=True) + 1e-10)

    energy.__module__ = "__main__"  # as if defined in a notebook
    register_channel("energy", fixed_range=energy_range)(energy)

    def no_pool(*args, **kwargs):
        raise AssertionError("no worker process may start")

    monkeypatch.setattr(parallel_module, "_CLIPS_PER_WORKER", 1)  # a worker even for 8 clips
    monkeypatch.setattr(parallel_module, "get_memmapping_executor", no_pool)
    assert parallel_module._worker_count(2, clips=8, chunks=4) == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = build_cache(comp, "train", config=ENERGY, n_jobs=2, chunk_size=2, progress=False)
    ours = [w for w in caught if "__main__" in str(w.message)]
    assert len(ours) == 1
    assert ours[0].category is EmoUtilsWarning
    assert ours[0].filename == __file__  # reported at the caller
    message = str(ours[0].message)
    assert "\n" not in message
    assert re.search(r"\['energy'\] defined in __main__.*this process only", message)
    assert store.stats["computed"] == 8
    with warnings.catch_warnings(record=True) as caught:  # one process anyway: no warning
        warnings.simplefilter("always")
        sequential = build_cache(
            comp, "train", config=ENERGY, cache_dir=tmp_path / "clean", n_jobs=1, progress=False
        )
    assert not [w for w in caught if "__main__" in str(w.message)]
    assert_same_store(store, sequential)


# ---------------------------------------------------------------------------- old paths
