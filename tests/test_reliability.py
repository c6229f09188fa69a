"""Reliability: the whole pipeline on a folder of bad input, interrupted runs, bad settings.

One competition folder (:mod:`bad_dataset`) mixes good clips with every kind of broken,
damaged or unusual file and CSV quirk.  It is generated once per module, preprocessed once,
and trained/predicted once with tiny settings (2 s windows, 32 mel bands, two tiny timm
models, 2 folds, 1 epoch); most tests then read what that run left on disk.

The interruption tests kill ``python -m emo_utils preprocess`` / ``train`` subprocesses
with SIGKILL at a seeded random point of a unit of work (a cache chunk, a fold), timed from
the files that unit writes, rerun, and compare with the uninterrupted run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import unicodedata
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from audio_factory import tone, write_long_wav
from bad_dataset import (
    CASES,
    CLASSES,
    REAL_SAMPLE_SUBMISSION,
    BadCompetition,
    make_bad_competition,
)

from emo_utils.audio import load_audio, load_clip
from emo_utils.cli import main as cli_main
from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.errors import (
    CacheError,
    ConfigError,
    DataError,
    EmoUtilsError,
    EmoUtilsWarning,
    TrainingError,
)
from emo_utils.features import FeatureStore, build_cache, compute_image, open_cache
from emo_utils.fileio import read_json
from emo_utils.pipeline import PipelineResult, preprocess, run_pipeline, train

pytestmark = pytest.mark.slow

ARCHS = ["test_resnet", "test_efficientnet"]
CONFIG = Config().override(
    {
        "audio.sample_rate": 16000,
        "audio.duration": 2.0,
        "audio.max_duration": 2.0,
        "features.n_mels": 32,
        "features.n_fft": 512,
        "features.hop_length": 256,
        "train.architectures": ARCHS,
        "train.pretrained": False,
        "train.n_folds": 2,
        "train.epochs": 1,
        "train.batch_size": 8,
        "train.mixup": 0.0,
    }
)
#: The run that trains: failed training files are dropped instead of stopping the run.
SKIP = CONFIG.override({"data.skip_bad_train": True})
IMAGE_SHAPE = (3, 32, 1 + 32000 // 256)
TMP_PREFIX = ".tmp-"


@dataclass
class World:
    """The bad folder and what the uninterrupted pipeline made of it."""

    bad: BadCompetition
    data: Path
    cache: Path
    run: Path
    submissions: Path
    preprocessed: PipelineResult
    train_error: Exception
    result: PipelineResult

    def store(self, split: str) -> FeatureStore:
        comp = _competition(self.data)
        return open_cache(comp, split, config=CONFIG, cache_dir=self.cache)


def _competition(data: Path):
    """The competition, without repeating its CSV warnings (tested once, below)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoUtilsWarning)
        return load_competition(data, CONFIG.data)


def _quiet(fn, *args, **kwargs):
    """Call ``fn`` and return ``(result, warning texts)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [str(w.message) for w in caught]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    base = tmp_path_factory.mktemp("reliability")
    bad = make_bad_competition(base / "data")
    cache, run, subs = base / "cache", base / "run", base / "submissions"
    kw = {"cache_dir": cache, "n_jobs": 1, "progress": False}
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        pre = preprocess(bad.root, config=CONFIG, **kw)
        try:
            train(bad.root, run_dir=base / "stopped_run", config=CONFIG, **kw)
        except EmoUtilsError as exc:
            error = exc
        else:
            error = AssertionError("training with bad files did not stop")
        result = run_pipeline(bad.root, run_dir=run, config=SKIP, submissions_dir=subs, **kw)
    return World(bad, bad.root, cache, run, subs, pre, error, result)


def _temp_files(*folders: Path) -> list[Path]:
    return [p for f in folders if f.exists() for p in f.rglob(TMP_PREFIX + "*")]


def _assert_complete(folder: Path) -> None:
    """Every file with its final name (not a ``.tmp-`` file) is complete and readable."""
    for path in folder.rglob("*"):
        if not path.is_file() or path.name.startswith(TMP_PREFIX):
            continue
        suffix = path.suffix
        if suffix == ".json":
            read_json(path)
        elif suffix == ".csv":
            pd.read_csv(path)
        elif suffix == ".npy":
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            if isinstance(arr, np.memmap):
                assert path.stat().st_size == arr.offset + arr.nbytes, path
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                for key in data.files:
                    data[key]
        elif suffix == ".pth":
            torch.load(path, map_location="cpu", weights_only=True)


# ============================================================================ the fixture
def test_the_bad_folder_holds_every_case(world):
    bad = world.bad
    test_cases = {r.case for r in bad.test}
    assert set(CASES) <= test_cases
    assert {r.case for r in bad.train if r.outcome == "fail"} >= {
        "empty",
        "text_as_wav",
        "header_only_wav",
        "id3_only_mp3",
        "mp3_cut_to_200_bytes",
        "nan_wav",
        "missing_file",
    }
    names = bad.test_names()
    assert names != sorted(names), "test.csv must be unsorted"
    assert len(names) > len(set(names)), "test.csv must repeat a name"
    csv = pd.read_csv(bad.root / "train.csv", dtype=str, keep_default_na=False)
    assert (csv["filename"] == bad.duplicated_train).sum() == 2
    assert any(v != v.strip() for v in csv["emotion"]), "labels with stray whitespace"
    assert bad.case_label[0] in set(csv["emotion"])
    assert any(v != v.strip() for v in csv["filename"]), "names with stray whitespace"
    for form, other in (("NFC", "NFD"), ("NFD", "NFC")):
        written = [n for n in csv["filename"] if n != unicodedata.normalize(other, n)]
        assert any(unicodedata.is_normalized(form, n) for n in written)
        on_disk = [unicodedata.normalize(other, n.strip()) for n in written]
        assert any((bad.root / "train" / n).is_file() for n in on_disk)
        assert not any((bad.root / "train" / n.strip()).is_file() for n in written)
    assert any(not n.isascii() for n in names)
    assert any(" " in n for n in names)
    assert not (bad.root / "train" / "train_missing_file.wav").exists()


# ============================================================================ preprocessing
def _warnings_by_file(store: FeatureStore) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for note in store.notes:
        out.setdefault(Path(note["file"]).name, []).append(note["reason"])
    return out


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_file_gets_the_outcome_of_its_case(world, split):
    store = world.store(split)
    rows = world.bad.train if split == "train" else world.bad.test
    comp = _competition(world.data)
    table = getattr(comp, split)
    assert store.filenames == [r.name for r in rows] == table["filename"].tolist()
    warned = _warnings_by_file(store)
    for row, reason, path in zip(rows, store.reasons, table["path"], strict=True):
        notes = warned.get(Path(path).name, [])
        if row.outcome == "fail":
            assert re.search(row.reason, reason), (row.name, reason)
        else:
            assert reason == "", (row.name, reason)
        if row.outcome == "warn":
            assert any(re.search(row.reason, n) for n in notes), (row.name, notes)
        else:
            assert notes == [], (row.name, notes)


def test_preprocessing_reports_failed_files_per_split(world):
    bad, pre = world.bad, world.preprocessed
    n_train, n_test = len(bad.train_failures()), len(bad.test_failures())
    assert pre.lines == [
        f"train: {len(bad.train)} clips, {n_train} failed, image {IMAGE_SHAPE}",
        f"test: {len(bad.test)} clips, {n_test} failed, image {IMAGE_SHAPE}",
    ]
    assert _counts(pre.summary, "train failed") == n_train
    assert _counts(pre.summary, "test failed") == n_test
    assert "end-of-run report" in pre.describe()


def test_usable_files_give_valid_images(world):
    store = world.store("test")
    assert store.image_shape == IMAGE_SHAPE
    for i, row in enumerate(world.bad.test):
        if row.outcome == "fail":
            continue
        image = store.window(i)
        assert image.shape == IMAGE_SHAPE
        assert np.isfinite(image).all(), row.name
        assert image.min() >= 0.0, row.name
        assert image.max() <= 1.0, row.name
        if row.case not in ("silence",):
            assert image[0].max() > 0.1, f"{row.name}: mel channel is blank"
    silence = store.window(next(i for i, r in enumerate(world.bad.test) if r.case == "silence"))
    assert np.all(silence[0] == 0.0), "silence must map to the bottom of the fixed range"


def _test_path(world, case: str) -> Path:
    comp = _competition(world.data)
    row = next(i for i, r in enumerate(world.bad.test) if r.case == case)
    return Path(comp.test["path"].iloc[row])


def _image_of_case(world, case: str) -> np.ndarray:
    store = world.store("test")
    return store.window(next(i for i, r in enumerate(world.bad.test) if r.case == case))


def test_ten_minute_file_is_decoded_only_at_its_start(world, tmp_path):
    # Its samples after 30 s are NaN: decoding the whole file would reject it.  The cache
    # gives it an image, equal to the image of a short file holding the same first seconds.
    path = _test_path(world, "ten_minutes")
    assert sf.info(path).duration == pytest.approx(600.0)
    with pytest.raises(EmoUtilsError, match="NaN/inf"):
        load_audio(path, sample_rate=16000)
    head = write_long_wav(tmp_path / "head.wav", sr=8000, seconds=3.0, freq=1200.0)
    y = load_clip(head, config=CONFIG.audio)
    np.testing.assert_array_equal(load_clip(path, config=CONFIG.audio), y)
    expected = compute_image(y, sample_rate=16000, config=CONFIG.features)
    np.testing.assert_allclose(
        _image_of_case(world, "ten_minutes"), expected, atol=2e-3
    )  # the cache stores float16


@pytest.mark.parametrize("case", ["rate_8k", "rate_96k"])
def test_other_sample_rates_are_resampled_to_the_configured_rate(world, case):
    y = load_audio(_test_path(world, case), sample_rate=16000, max_duration=2.0)
    native = tone(sr=16000, seconds=2.0, freq=1200.0)[:, 0]
    assert len(y) == len(native)
    # The same 1200 Hz tone written at 16 kHz, away from the onset transient.
    np.testing.assert_allclose(y[200:], native[200:], atol=1e-3)


def test_six_channels_are_mixed_to_mono(world):
    path = _test_path(world, "six_channel")
    frames, sr = sf.read(path, dtype="float32")
    assert frames.shape[1] == 6
    assert sr == 16000
    y = load_audio(path, sample_rate=16000)
    assert y.ndim == 1
    np.testing.assert_allclose(y, frames.mean(axis=1), atol=1e-7)


@pytest.mark.parametrize(
    ("case", "subtype", "atol"),
    [("float64", "DOUBLE", 1e-7), ("pcm_24", "PCM_24", 1e-6), ("pcm_u8", "PCM_U8", 1e-2)],
)
def test_bit_depths_decode_to_the_same_float_signal(world, case, subtype, atol):
    path = _test_path(world, case)
    assert sf.info(path).subtype == subtype
    y = load_audio(path, sample_rate=16000)
    assert y.dtype == np.float32
    freq = 300.0 if case == "float64" else 1200.0
    np.testing.assert_allclose(y, tone(sr=16000, seconds=1.5, freq=freq)[:, 0], atol=atol)


def test_names_in_either_unicode_form_resolve(world):
    comp = _competition(world.data)
    for split in ("train", "test"):
        table = getattr(comp, split)
        for name, path in zip(table["filename"], table["path"], strict=True):
            if not name.isascii():
                assert Path(path).is_file(), (split, name)
                # The row keeps the CSV's spelling; the path is the disk's.
                assert unicodedata.normalize("NFC", Path(path).name) == unicodedata.normalize(
                    "NFC", name
                )


# ============================================================================ training stops
def test_bad_training_files_stop_the_run_before_training_listing_all(world):
    error = world.train_error
    assert isinstance(error, CacheError), error
    message = str(error)
    expected = world.bad.train_failures()
    assert f"{len(expected)} training file(s) cannot be used" in message
    for name, reason in expected.items():
        line = next((ln for ln in message.splitlines() if ln.strip().startswith(name)), "")
        assert re.search(reason, line), (name, line)
    assert "data.skip_bad_train" in message
    # Nothing of the run exists: the error came before any training.
    assert not (world.run.parent / "stopped_run").exists()


# ============================================================================ the finished run
def test_dropped_training_files_never_reach_the_folds(world):
    folds = pd.read_csv(world.run / "folds.csv", dtype=str, keep_default_na=False)
    expected = [r for r in world.bad.train if r.outcome != "fail"]
    assert folds["filename"].tolist() == [r.name for r in expected]
    assert folds["label"].tolist() == [r.label for r in expected]  # stripped, case merged
    assert (folds["filename"] == world.bad.duplicated_train).sum() == 1  # one row, one fold
    assert read_json(world.run / "classes.json") == list(CLASSES)
    assert sorted(folds["fold"].unique()) == ["0", "1"]


def test_submission_has_one_row_per_test_row_in_order(world):
    sub = pd.read_csv(world.result.submission, dtype=str, keep_default_na=False)
    # The columns of the real sample submission (whose 5 rows name training files).
    assert list(sub.columns) == ["filename", "emotion"]
    assert sub["filename"].tolist() == world.bad.test_names()
    assert set(sub["emotion"]) <= set(CLASSES)
    stem = Path(world.result.submission).stem  # RUN__<method best resolved to>
    probs = pd.read_csv(world.submissions / f"{stem}.probabilities.csv")
    assert probs["filename"].tolist() == world.bad.test_names()
    assert np.allclose(probs[list(CLASSES)].sum(axis=1), 1.0)


def test_failures_file_lists_every_fallback_row_with_its_reason(world):
    failures = pd.read_csv(
        world.submissions / f"{Path(world.result.submission).stem}.failures.csv",
        dtype=str,
        keep_default_na=False,
    )
    expected = world.bad.test_failures()
    assert failures["row"].astype(int).tolist() == sorted(expected)
    comp = _competition(world.data)
    majority = comp.train["label"].value_counts().idxmax()
    sub = pd.read_csv(world.result.submission, dtype=str, keep_default_na=False)
    for row, name, reason, fallback in failures.itertuples(index=False):
        exp_name, exp_reason = expected[int(row)]
        assert name == exp_name, (row, name)
        assert re.search(exp_reason, reason), (row, name, reason)
        assert fallback == majority == sub["emotion"].iloc[int(row)]


def test_every_model_fold_and_ensemble_ran(world):
    assert set(world.result.cv_scores) == set(ARCHS)
    assert {"mode", "mean"} <= set(world.result.ensemble_scores)
    for arch in ARCHS:
        preds = pd.read_csv(world.run / "predictions" / f"{arch}.csv")
        failed = preds[list(CLASSES)].isna().all(axis=1).to_numpy()
        assert failed.tolist() == [r.outcome == "fail" for r in world.bad.test]


def _counts(summary: dict, kind: str) -> int:
    return sum(n for key, n in summary["counts"].items() if key.startswith(kind + ": "))


def test_summary_counts_every_skip_warning_and_fallback_once(world):
    summary = read_json(world.run / "summary.json")
    assert summary == json.loads(json.dumps(world.result.summary))
    bad = world.bad
    # Skips: every failed training file, by reason.
    skipped = [i for i in summary["items"] if i["kind"] == "train skipped"]
    assert {i["file"] for i in skipped} == set(bad.train_failures())
    assert _counts(summary, "train skipped") == len(bad.train_failures())
    # Fallbacks: every failed test row (a name listed twice counts twice).
    fallback = [i for i in summary["items"] if i["kind"] == "test fallback row"]
    expected = bad.test_failures()
    assert [i["file"] for i in fallback] == [expected[r][0] for r in sorted(expected)]
    assert _counts(summary, "test fallback row") == len(expected)
    # Equal reasons count together, whatever numbers they hold.
    assert summary["counts"]["test fallback row: # NaN/inf sample(s), first at # s"] == 2
    assert summary["counts"]["test fallback row: empty file (# bytes)"] == 2
    # Warnings: each CSV problem once, though train and predict both read the CSVs.
    counts = summary["counts"]
    case = [k for k in counts if "differing only in case" in k]
    dup = [k for k in counts if "listed more than once" in k]
    assert len(case) == 1
    assert counts[case[0]] == 1
    assert len(dup) == 1
    assert counts[dup[0]] == 1
    # ... and every file that loaded with a warning.
    warned = [i for i in summary["items"] if i["kind"] == "warning"]
    for split, rows in (("train", bad.train), ("test", bad.test)):
        for row in {r.name: r for r in rows if r.outcome == "warn"}.values():
            hits = [
                i
                for i in warned
                if Path(i["file"]).name == row.name and Path(i["file"]).parent.name == split
            ]
            assert len(hits) == 1, (split, row.name, hits)
    # describe() prints every count.
    text = world.result.describe()
    assert "end-of-run report" in text
    for reason, n in counts.items():
        assert f"{n:5d}  {reason}" in text


# ============================================================================ interruption
def _start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "emo_utils", *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
            start_new_session=True,
        )


def _wait_for(proc: subprocess.Popen, ready: Callable[[], bool], log: Path) -> float:
    """Poll until ``ready()``; return the time.  Fails if the process ends first."""
    deadline = time.monotonic() + 300
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"process ended before the kill point:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("kill point never reached")
        time.sleep(0.005)
    return time.monotonic()


def _kill_at_random_point(
    proc: subprocess.Popen,
    began: Callable[[], bool],
    ended: Callable[[], bool],
    fraction: float,
    log: Path,
) -> bool:
    """SIGKILL the process group ``fraction`` of one unit of work after that unit ended.

    A unit of work (a cache chunk, a fold) is timed from ``began()`` to ``ended()``; the kill
    lands ``fraction`` (< 1) of that duration later, i.e. inside the next unit, whatever the
    speed of the machine.  Returns whether the process was killed (not finished by itself).
    """
    t0 = _wait_for(proc, began, log)
    t1 = _wait_for(proc, ended, log)
    time.sleep(fraction * (t1 - t0))
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode in (0, -signal.SIGKILL), log.read_text()[-3000:]
    return proc.returncode == -signal.SIGKILL


def _plant_temp_file(folder: Path, name: str) -> None:
    """What a process killed while writing ``folder / name`` leaves behind."""
    if folder.is_dir():
        (folder / f"{TMP_PREFIX}{name}.k1ll3d{Path(name).suffix}").write_bytes(b"half a fi")


def _final_files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_killed_preprocessing_resumes_to_the_same_cache(world, tmp_path):
    rng = np.random.default_rng(1)
    cache = tmp_path / "cache"
    config_file = tmp_path / "config.json"
    CONFIG.save(config_file)
    args = ["preprocess", "--data", str(world.data), "--cache", str(cache)]
    args += ["--config", str(config_file), "--jobs", "1", "--no-progress"]
    folder = cache / CONFIG.feature_hash()
    for split in ("train", "test"):  # killed once while computing each split
        log = tmp_path / f"preprocess-{split}.log"
        chunks = folder / split / "chunks"
        killed = _kill_at_random_point(
            _start(args, log),
            chunks.is_dir,
            lambda chunks=chunks: any(chunks.glob("chunk-*.npz")),
            float(rng.uniform(0.05, 0.5)),
            log,
        )
        assert killed, f"the kill must interrupt preprocessing of {split}"
        _assert_complete(cache)  # no half-written file under a final name
        _plant_temp_file(folder / split, "frames.npy")
        _plant_temp_file(chunks, "chunk-0123.npz")
    # Work finished before the kills is reused, the rest computed.
    comp = _competition(world.data)
    for split in ("train", "test"):
        done = (folder / split / "manifest.json").is_file()
        in_chunks = 0
        for chunk in (folder / split / "chunks").glob("chunk-*.npz"):
            with np.load(chunk) as data:
                in_chunks += len(data["lengths"])
        store, caught = _quiet(
            build_cache, comp, split, config=CONFIG, cache_dir=cache, n_jobs=1, progress=False
        )
        assert not [c for c in caught if "damaged" in c], caught
        n_clips = store.stats["clips"]
        assert store.stats["reused"] == (n_clips if done else in_chunks)
        assert store.stats["computed"] + store.stats["reused"] == n_clips
    assert in_chunks > 0, "the test split was killed after a finished chunk"
    # Same cache, byte for byte, as the uninterrupted run; no temp file or chunk left.
    assert _final_files(folder) == _final_files(world.cache / CONFIG.feature_hash())
    assert _temp_files(cache) == []


def test_killed_training_keeps_finished_folds_and_matches_an_uninterrupted_run(world, tmp_path):
    rng = np.random.default_rng(2)
    run = tmp_path / "run"
    config_file = tmp_path / "config.json"
    SKIP.save(config_file)
    args = ["train", "--data", str(world.data), "--run", str(run), "--cache", str(world.cache)]
    args += ["--config", str(config_file), "--jobs", "1", "--no-progress"]
    log = tmp_path / "train.log"
    fold0 = run / "models" / ARCHS[0] / "fold0"
    killed = _kill_at_random_point(
        _start(args, log),
        fold0.is_dir,
        (fold0 / "done.json").is_file,
        float(rng.uniform(0.05, 0.5)),
        log,
    )
    assert killed, "the kill must interrupt training"
    _assert_complete(run)  # every checkpoint, weights, log and marker is whole
    finished = {
        p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.glob("models/*/fold*/done.json")
    }
    assert fold0 / "done.json" in finished
    assert len(finished) < 2 * len(ARCHS)
    for fold in run.glob("models/*/fold*"):
        if fold / "done.json" not in finished:
            _plant_temp_file(fold, "checkpoint.pth")
    _plant_temp_file(run, "cv_report.json")

    result, _ = _quiet(
        train, world.data, run_dir=run, config=SKIP, cache_dir=world.cache, n_jobs=1, progress=False
    )
    # Finished folds are kept untouched; the run completes.
    for path, (content, mtime) in finished.items():
        assert path.read_bytes() == content, path
        assert path.stat().st_mtime_ns == mtime, path
    assert len(list(run.glob("models/*/fold*/done.json"))) == 2 * len(ARCHS)
    # Same folds and the same out-of-fold predictions as the uninterrupted run (training is
    # seeded and deterministic on CPU; on a GPU cuDNN may differ in the last digits).
    assert (run / "folds.csv").read_bytes() == (world.run / "folds.csv").read_bytes()
    for arch in ARCHS:
        got = pd.read_csv(run / "oof" / f"{arch}.csv")
        ref = pd.read_csv(world.run / "oof" / f"{arch}.csv")
        assert got[["filename", "label", "fold"]].equals(ref[["filename", "label", "fold"]])
        if not torch.cuda.is_available():
            np.testing.assert_allclose(
                got[list(CLASSES)].to_numpy(), ref[list(CLASSES)].to_numpy(), atol=1e-5
            )
    if not torch.cuda.is_available():
        assert result.cv_scores == pytest.approx(world.result.cv_scores, abs=1e-9)
    assert _temp_files(run, world.cache) == []


# ============================================================================ bad settings
BAD_SETTINGS = {
    "unknown architecture": (
        "train",
        {"train.architectures": ["resnet_does_not_exist"]},
        TrainingError,
        r"train\.architectures.*'resnet_does_not_exist' is not a timm model",
    ),
    "more folds than the rarest class has clips": (
        "train",
        {"train.n_folds": 30},
        TrainingError,
        r"train\.n_folds = 30.*fewer clips than folds",
    ),
    "missing label column": (
        "preprocess",
        {"data.label_column": "label"},
        DataError,
        r"train\.csv: missing column\(s\) \['label'\].*data\.label_column",
    ),
    "missing file name column": (
        "train",
        {"data.filename_column": "file"},
        DataError,
        r"train\.csv: missing column\(s\) \['file'\].*data\.filename_column",
    ),
    "unknown channel": (
        "preprocess",
        {"features.channels": ["mel", "loudness"]},
        ConfigError,
        r"features\.channels.*unknown \['loudness'\]",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_bad_settings_fail_before_any_work_naming_the_field(world, tmp_path, case):
    stage, overrides, error, pattern = BAD_SETTINGS[case]
    config = CONFIG.override(overrides)
    cache, run = tmp_path / "cache", tmp_path / "run"
    kw = {"cache_dir": cache, "n_jobs": 1, "progress": False}
    stages = {
        "train": lambda: train(world.data, run_dir=run, config=config, **kw),
        "preprocess": lambda: preprocess(world.data, config=config, **kw),
    }
    with pytest.raises(error, match=pattern):
        stages[stage]()
    assert not cache.exists()
    assert not run.exists()


def _cli_train(world: World, cache: Path, run: Path, *extra: str) -> int:
    args = ["train", "--data", str(world.data), "--run", str(run), "--cache", str(cache)]
    return cli_main([*args, *extra, "--no-progress"])


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("features.n_mels=-32", "features.n_mels"),
        ("features.hop_length=0", "features.hop_length"),
        ("audio.duration=-2", "audio.duration"),
        ("audio.sample_rate=-16000", "audio.sample_rate"),
        ("train.batch_size=-8", "train.batch_size"),
        ("train.epochs=0", "train.epochs"),
    ],
)
def test_negative_sizes_are_rejected_by_the_command_line(world, tmp_path, capsys, override, field):
    cache, run = tmp_path / "cache", tmp_path / "run"
    code = _cli_train(world, cache, run, "--set", override)
    assert code == 2
    err = capsys.readouterr().err
    assert re.search(rf"error: config field '{re.escape(field)}' = -?\d", err), err
    assert not cache.exists()
    assert not run.exists()
    with pytest.raises(ConfigError) as info:
        CONFIG.override(dict([override.split("=")]))
    assert info.value.field == field


def test_unknown_architecture_from_the_command_line(world, tmp_path, capsys):
    cache, run = tmp_path / "cache", tmp_path / "run"
    code = _cli_train(
        world, cache, run, "--set", "train.architectures=[resnet18, efficientnet_b9000]"
    )
    assert code == 2
    assert "efficientnet_b9000" in capsys.readouterr().err
    assert not cache.exists()
    assert not run.exists()


# ============================================================================ CSV problems
def _csv_folder(root: Path, train_csv: str, test_csv: str = "filename\nx.wav\n") -> Path:
    root.mkdir(parents=True)
    (root / "train.csv").write_text(train_csv, encoding="utf-8")
    (root / "test.csv").write_text(test_csv, encoding="utf-8")
    return root


def test_blank_label_is_an_error_before_any_work(tmp_path):
    data = _csv_folder(tmp_path / "d", "filename,emotion\na.wav,joy\nb.wav,  \nc.wav,sad\n")
    with pytest.raises(DataError, match=r"train\.csv: blank label on line\(s\) \[3\]"):
        preprocess(data, config=CONFIG, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    assert not (tmp_path / "cache").exists()


def test_conflicting_labels_for_one_file_are_an_error_before_any_work(tmp_path):
    data = _csv_folder(
        tmp_path / "d", "filename,emotion\na.wav,joy\nb.wav,sad\n a.wav ,sad\nc.wav,joy\n"
    )
    with pytest.raises(DataError, match=r"1 file\(s\) with conflicting labels: 'a\.wav'"):
        train(
            data,
            run_dir=tmp_path / "run",
            config=CONFIG,
            cache_dir=tmp_path / "cache",
            progress=False,
        )
    assert not (tmp_path / "cache").exists()
    assert not (tmp_path / "run").exists()


def test_case_only_label_differences_and_duplicates_warn_and_merge(tmp_path):
    data = _csv_folder(
        tmp_path / "d",
        "filename,emotion\na.wav,joy\nb.wav,Joy\nc.wav, joy\nd.wav,sad\na.wav,joy\ne.wav,sad\n",
    )
    with pytest.warns(EmoUtilsWarning) as record:
        comp = load_competition(data)
    texts = [str(w.message) for w in record]
    assert any("differing only in case merged to 'joy'" in t for t in texts)
    assert any("listed more than once, kept once: ['a.wav']" in t for t in texts)
    assert comp.train["filename"].tolist() == ["a.wav", "b.wav", "c.wav", "d.wav", "e.wav"]
    assert comp.train["label"].tolist() == ["joy", "joy", "joy", "sad", "sad"]


def test_the_real_sample_submission_only_gives_columns(world):
    # The folder holds the real competition's sample submission: 5 rows of training names.
    assert (world.data / "sample_submission.csv").read_text() == REAL_SAMPLE_SUBMISSION
    sample = pd.read_csv(world.data / "sample_submission.csv")
    sub = pd.read_csv(world.result.submission, dtype=str, keep_default_na=False)
    assert len(sample) == 5
    assert not set(sample["filename"]) & set(sub["filename"])
    assert list(sub.columns) == list(sample.columns)
    assert len(sub) == len(world.bad.test)
