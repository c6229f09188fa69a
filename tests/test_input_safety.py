"""Safety of real input: paths stay inside the data folder, reasons never quote file bytes,
every check runs before any work, and undecodable test files still get fallback rows.

Each test builds its own tiny folder; one end-to-end test trains a tiny model for one
epoch on a folder whose ``test.csv`` lists an ``.m4a`` and a text file saved as ``.wav``.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pandas as pd
import pytest
from audio_factory import write_competition, write_fake_m4a, write_text_as_audio, write_tone

from emo_utils.audio import load_audio
from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.data.folds import check_fold_counts
from emo_utils.errors import AudioError, ConfigError, DataError, EmoUtilsWarning, TrainingError
from emo_utils.pipeline import preprocess, run_pipeline, train

CONFIG = Config().override(
    {
        "audio.sample_rate": 16000,
        "audio.duration": 1.0,
        "audio.max_duration": 1.0,
        "features.n_mels": 32,
        "features.n_fft": 512,
        "features.hop_length": 256,
        "train.architectures": ["test_resnet"],
        "train.pretrained": False,
        "train.n_folds": 2,
        "train.epochs": 1,
        "train.batch_size": 4,
        "train.mixup": 0.0,
    }
)
#: Content of the private file a hostile CSV points at; it must never be echoed.
SECRET = "root:x:0:0:SECRET-TOKEN-4711:/root:/bin/bash\n"
_FREQ = {"angry": 300.0, "happy": 1200.0, "sad": 3000.0}


def _folder(root: Path, *, train_extra: dict[str, str] | None = None, test: list[str]) -> Path:
    """Three classes of four clips each, plus ``train_extra`` rows and the ``test`` rows."""
    train = {}
    for label, freq in _FREQ.items():
        for j in range(4):
            name = f"{label}_{j}.wav"
            write_tone(root / "train" / name, sr=16000, seconds=1.0, freq=freq, seed=j)
            train[name] = label
    train.update(train_extra or {})
    return write_competition(root, train=train, test=test)


def _load(root: Path, **overrides: object):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoUtilsWarning)
        return load_competition(root, CONFIG.override(overrides).data if overrides else CONFIG.data)


# ============================================================================ paths
def test_paths_outside_the_data_folder_are_refused_all_at_once(tmp_path):
    secret = tmp_path / "private" / "passwd"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    data = tmp_path / "data"
    _folder(data, test=["angry_0.wav"])
    (data / "train" / "link_out.wav").symlink_to(secret)
    rows = pd.read_csv(data / "train.csv")
    extra = pd.DataFrame(
        {
            "filename": ["../../private/passwd", str(secret), "link_out.wav"],
            "emotion": ["sad", "sad", "sad"],
        }
    )
    pd.concat([rows, extra]).to_csv(data / "train.csv", index=False)
    with pytest.raises(DataError) as info:
        _load(data)
    message = str(info.value)
    assert "train.csv: 3 row(s) name files outside the data folder" in message
    assert "line 14 '../../private/passwd' ('..' component)" in message
    assert f"line 15 '{secret}' (absolute path)" in message
    assert "line 16 'link_out.wav' (symlink resolving outside the data folder)" in message
    assert "data.allow_outside_paths" in message
    assert "SECRET-TOKEN" not in message
    # Before any work: no cache is written by the stages.
    with pytest.raises(DataError, match="outside the data folder"):
        preprocess(data, config=CONFIG, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    assert not (tmp_path / "cache").exists()
    # The documented switch allows them.
    comp = _load(data, **{"data.allow_outside_paths": True})
    assert Path(comp.train["path"].iloc[-1]).resolve() == secret.resolve()


def test_test_csv_paths_are_checked_too(tmp_path):
    data = _folder(tmp_path / "data", test=["angry_0.wav", "/etc/passwd", "../train.csv"])
    with pytest.raises(DataError) as info:
        _load(data)
    message = str(info.value)
    assert "test.csv: 2 row(s)" in message
    assert "line 3 '/etc/passwd' (absolute path)" in message
    assert "line 4 '../train.csv' ('..' component)" in message


def test_symlinks_inside_the_data_folder_are_allowed(tmp_path):
    data = _folder(tmp_path / "data", test=["alias.wav", "sub/nested.wav"])
    (data / "test").mkdir()
    (data / "test" / "alias.wav").symlink_to(data / "train" / "angry_0.wav")
    (data / "test" / "sub").mkdir()
    (data / "test" / "sub" / "nested.wav").symlink_to(Path("..") / "alias.wav")
    comp = _load(data)
    assert comp.test["filename"].tolist() == ["alias.wav", "sub/nested.wav"]


def test_an_audio_folder_that_is_itself_a_symlink_is_allowed(tmp_path):
    elsewhere = tmp_path / "mounted_test"
    write_tone(elsewhere / "t.wav", sr=16000, seconds=1.0)
    data = _folder(tmp_path / "data", test=["t.wav"])
    (data / "test").symlink_to(elsewhere, target_is_directory=True)
    assert _load(data).test["path"].tolist() == [str(data / "test" / "t.wav")]


def test_text_disguised_as_wav_is_diagnosed_without_quoting_it(tmp_path):
    path = write_text_as_audio(tmp_path / "clip.wav", SECRET * 3)
    with pytest.raises(AudioError) as info:
        load_audio(path, sample_rate=16000)
    assert "text file, not audio" in info.value.reason
    assert "SECRET" not in str(info.value)
    assert "root:x" not in str(info.value)


# ============================================================================ config checks
@pytest.mark.parametrize(
    ("overrides", "field", "pattern"),
    [
        ({"features.fmax": 9000}, "features.fmax", r"<= audio\.sample_rate / 2 = 8000 Hz"),
        ({"features.fmin": 8000}, "features.fmin", r"< audio\.sample_rate / 2"),
        (
            {"features.n_fft": 16},
            "features.n_fft",
            r"too small for features\.n_mels = 32.*n_fft >=",
        ),
        ({"features.n_fft": 128, "features.n_mels": 128}, "features.n_fft", r"n_mels <= \d+"),
        ({"features.win_length": 1024}, "features.win_length", r"\[0, n_fft=512\]"),
    ],
)
def test_physically_impossible_feature_settings_are_config_errors(overrides, field, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        CONFIG.override(overrides)
    assert info.value.field == field


def test_the_advised_n_fft_and_n_mels_really_work():
    with pytest.raises(ConfigError) as info:
        CONFIG.override({"features.n_fft": 128, "features.n_mels": 64})

    n_fft = int(re.search(r"n_fft >= (\d+)", info.value.reason).group(1))
    n_mels = int(re.search(r"n_mels <= (\d+)", info.value.reason).group(1))
    CONFIG.override({"features.n_fft": n_fft, "features.n_mels": 64})
    CONFIG.override({"features.n_fft": 128, "features.n_mels": n_mels})
    with pytest.raises(ConfigError):
        CONFIG.override({"features.n_fft": n_fft // 2, "features.n_mels": 64})
    with pytest.raises(ConfigError):
        CONFIG.override({"features.n_fft": 128, "features.n_mels": n_mels + 1})


def test_fmax_at_nyquist_and_zero_are_accepted():
    assert CONFIG.override({"features.fmax": 8000}).features.fmax == 8000
    assert CONFIG.override({"features.fmax": 0}).features.fmax == 0


@pytest.mark.parametrize(
    ("suffix", "content", "pattern"),
    [
        (".yaml", b"", r"config file is empty"),
        (".yaml", b"# only a comment\n\n", r"holds no settings"),
        (".json", b"  \n", r"config file is empty"),
        (".yaml", "train:\n  epochs: 2\n".encode("utf-16"), r"UTF-16"),
        (".json", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"binary"),
        (".yaml", "train:\n  architectures: [r\xe9snet]\n".encode("latin-1"), r"not UTF-8"),
    ],
)
def test_unreadable_config_files_name_the_file_and_problem(tmp_path, suffix, content, pattern):
    path = tmp_path / f"config{suffix}"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=pattern) as info:
        Config.from_file(path)
    assert str(path) in str(info.value)


def test_a_utf8_config_with_bom_and_an_explicit_empty_mapping_load(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xef\xbb\xbftrain:\n  epochs: 3\n")
    assert Config.from_file(path).train.epochs == 3
    path.write_text("{}\n")
    assert Config.from_file(path) == Config()


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"", r"sample_submission\.csv: sample submission is empty"),
        ("fichier,\xe9motion\na.wav,joie\n".encode("latin-1"), r"sample_submission\.csv: .*UTF-8"),
    ],
)
def test_bad_sample_submission_names_the_file_and_problem(tmp_path, content, pattern):
    data = _folder(tmp_path / "data", test=["angry_0.wav"])
    (data / "sample_submission.csv").write_bytes(content)
    with pytest.raises(DataError, match=pattern):
        _load(data)


@pytest.mark.parametrize("csv", ["train.csv", "test.csv"])
def test_empty_or_latin1_competition_csvs_name_the_file(tmp_path, csv):
    data = _folder(tmp_path / "data", test=["angry_0.wav"])
    (data / csv).write_bytes(b"")
    with pytest.raises(DataError, match=rf"{csv}: empty file"):
        _load(data)
    (data / csv).write_bytes("filename,emotion\ncaf\xe9.wav,joy\n".encode("latin-1"))
    with pytest.raises(DataError, match=rf"{csv}: not UTF-8 text"):
        _load(data)


# ============================================================================ fold advice
def test_fold_advice_names_the_largest_count_every_class_supports():
    with pytest.raises(TrainingError, match=r"Lower train\.n_folds to 3 ") as info:
        check_fold_counts(["a"] * 9 + ["b"] * 3, n_folds=5)
    # The advised value works.
    check_fold_counts(["a"] * 9 + ["b"] * 3, n_folds=3)
    assert "'b': 3" in str(info.value)


def test_fold_advice_for_a_single_clip_class_says_to_drop_or_merge_it():
    with pytest.raises(TrainingError) as info:
        check_fold_counts(["a"] * 9 + ["b"] * 1 + ["c"] * 4, n_folds=5)
    message = str(info.value)
    assert "Lower train.n_folds" not in message
    assert "['b'] have a single clip, so not even 2 folds work" in message
    assert "drop those rows or merge the class" in message


# ============================================================================ test files
def test_undecodable_test_files_get_fallback_rows_after_training(tmp_path):
    names = ["t0.wav", "clip.wv", "fake.m4a", "secret.wav", "t1.wav"]
    data = _folder(tmp_path / "data", test=names)
    write_tone(data / "test" / "t0.wav", sr=16000, seconds=1.0, freq=300.0)
    write_tone(data / "test" / "t1.wav", sr=16000, seconds=1.0, freq=3000.0)
    write_fake_m4a(data / "test" / "clip.wv")  # an extension no backend reads
    write_fake_m4a(data / "test" / "fake.m4a")  # PyAV reads .m4a, but this one is damaged
    write_text_as_audio(data / "test" / "secret.wav", SECRET * 3)
    run, subs = tmp_path / "run", tmp_path / "subs"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_pipeline(
            data,
            run_dir=run,
            config=CONFIG,
            submissions_dir=subs,
            cache_dir=tmp_path / "cache",
            n_jobs=1,
            progress=False,
        )
    texts = [str(w.message) for w in caught]
    assert any("1 test file(s) in format(s) no backend reads (.wv)" in t for t in texts)
    sub = pd.read_csv(result.submission, dtype=str, keep_default_na=False)
    assert sub["filename"].tolist() == names
    assert set(sub["emotion"]) <= set(_FREQ)
    failures = pd.read_csv(next(subs.glob("*failures.csv")), dtype=str, keep_default_na=False)
    reasons = dict(zip(failures["filename"], failures["reason"], strict=True))
    assert set(reasons) == {"clip.wv", "fake.m4a", "secret.wav"}
    assert "unsupported format '.wv'" in reasons["clip.wv"]
    assert "not a readable audio file (ffmpeg" in reasons["fake.m4a"]
    assert "text file, not audio" in reasons["secret.wav"]
    summary = json.loads((run / "summary.json").read_text())
    fallback = {k: v for k, v in summary["counts"].items() if k.startswith("test fallback row")}
    assert sum(fallback.values()) == 3
    # No reason anywhere quotes the text file's content.
    everywhere = [
        (run / "summary.json").read_text(),
        *(p.read_text() for p in subs.glob("*.csv")),
        *(p.read_text() for p in (tmp_path / "cache").rglob("failures.csv")),
        result.describe(),
        *texts,
    ]
    assert not any("SECRET" in t or "root:x" in t for t in everywhere)


def test_unreadable_training_formats_still_stop_before_work(tmp_path):
    data = _folder(tmp_path / "data", train_extra={"bad.wv": "sad"}, test=["angry_0.wav"])
    write_fake_m4a(data / "train" / "bad.wv")
    with pytest.raises(DataError, match=r"\.wv \(1 file"):
        train(
            data,
            run_dir=tmp_path / "run",
            config=CONFIG,
            cache_dir=tmp_path / "cache",
            n_jobs=1,
            progress=False,
        )
    assert not (tmp_path / "run").exists()
