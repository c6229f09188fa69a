"""Reading train.csv / test.csv: the reference schema and every kind of CSV problem."""

from __future__ import annotations

import shutil
import unicodedata
from pathlib import Path

import pytest

from emo_utils.config import DataConfig
from emo_utils.data.competition import load_competition
from emo_utils.errors import DataError, EmoUtilsWarning

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "ia-for-ai"


def _write(
    folder: Path, train: str, test: str = "filename\nt1.wav\n", sample: str | None = None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.csv").write_text(train, encoding="utf-8")
    (folder / "test.csv").write_text(test, encoding="utf-8")
    if sample is not None:
        (folder / "sample_submission.csv").write_text(sample, encoding="utf-8")
    return folder


@pytest.mark.skipif(
    not REAL.is_dir(), reason="the real competition CSVs are not beside this checkout"
)
def test_reads_the_real_competition_csvs(tmp_path):
    for name in ("train.csv", "test.csv", "sample_submission.csv"):
        shutil.copy(REAL / name, tmp_path / name)
    comp = load_competition(tmp_path)
    assert comp.classes == ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
    assert comp.submission_columns == ("filename", "emotion")
    assert len(comp.train) == 5816
    assert len(comp.test) == 2492
    assert comp.train["filename"].iloc[0] == "18777.mp3"
    assert comp.train["path"].iloc[0] == str(tmp_path / "train" / "18777.mp3")


def test_keeps_test_order_and_duplicates(tmp_path):
    folder = _write(
        tmp_path, "filename,emotion\na.wav,joy\nb.wav,fear\n", "filename\nz.wav\na2.wav\nz.wav\n"
    )
    comp = load_competition(folder)
    assert comp.test["filename"].tolist() == ["z.wav", "a2.wav", "z.wav"]
    assert comp.submission_columns == ("filename", "emotion")


def test_sample_submission_columns_win(tmp_path):
    folder = _write(
        tmp_path, "filename,emotion\na.wav,joy\nb.wav,fear\n", sample="file_id,label\nx,joy\n"
    )
    assert load_competition(folder).submission_columns == ("file_id", "label")


def test_missing_column_names_file_and_column(tmp_path):
    folder = _write(tmp_path, "file,emotion\na.wav,joy\n")
    with pytest.raises(DataError, match=r"train\.csv.*missing column.*'filename'"):
        load_competition(folder)


def test_custom_column_names(tmp_path):
    folder = _write(tmp_path, "clip,mood\na.wav,joy\nb.wav,sad\n", "clip\nc.wav\n")
    comp = load_competition(folder, DataConfig(filename_column="clip", label_column="mood"))
    assert comp.classes == ("joy", "sad")
    assert comp.submission_columns == ("clip", "mood")


def test_blank_label_is_an_error_with_line_numbers(tmp_path):
    folder = _write(tmp_path, "filename,emotion\na.wav,joy\nb.wav,  \nc.wav,fear\n")
    with pytest.raises(DataError, match=r"blank label on line\(s\) \[3\]"):
        load_competition(folder)


def test_whitespace_and_case_differences(tmp_path):
    folder = _write(tmp_path, "filename,emotion\na.wav, joy\nb.wav,Joy\nc.wav,joy \nd.wav,fear\n")
    with pytest.warns(EmoUtilsWarning, match="differing only in case"):
        comp = load_competition(folder)
    assert comp.train["label"].tolist() == ["joy", "joy", "joy", "fear"]
    assert comp.classes == ("fear", "joy")
    assert any("case" in note["reason"] for note in comp.notes)


def test_conflicting_labels_are_an_error(tmp_path):
    folder = _write(tmp_path, "filename,emotion\na.wav,joy\na.wav,fear\nb.wav,fear\n")
    with pytest.raises(DataError, match=r"conflicting labels.*'a\.wav'"):
        load_competition(folder)


def test_duplicated_train_names_warn_and_are_kept_once(tmp_path):
    folder = _write(tmp_path, "filename,emotion\na.wav,joy\nb.wav,fear\na.wav,joy\n")
    with pytest.warns(EmoUtilsWarning, match="more than once"):
        comp = load_competition(folder)
    assert comp.train["filename"].tolist() == ["a.wav", "b.wav"]


def test_unicode_normal_forms_resolve(tmp_path):
    nfc = unicodedata.normalize("NFC", "café joy.wav")
    nfd = unicodedata.normalize("NFD", nfc)
    folder = _write(tmp_path, f"filename,emotion\n{nfc},joy\nb.wav,fear\n")
    (folder / "train").mkdir()
    (folder / "train" / nfd).write_bytes(b"x")
    comp = load_competition(folder)
    assert Path(comp.train["path"].iloc[0]).exists()


def test_missing_folder_and_csv(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        load_competition(tmp_path / "nope")
    with pytest.raises(DataError, match=r"train\.csv: CSV file not found"):
        load_competition(tmp_path)


def test_single_class_is_an_error(tmp_path):
    folder = _write(tmp_path, "filename,emotion\na.wav,joy\nb.wav,joy\n")
    with pytest.raises(DataError, match="at least 2 classes"):
        load_competition(folder)
