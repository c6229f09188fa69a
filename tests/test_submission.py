"""The submission CSV: one row per test.csv row, in order, validated, with fallbacks listed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emo_utils.config import DataConfig
from emo_utils.data.competition import load_competition
from emo_utils.errors import SubmissionError
from emo_utils.features.store import FeatureStore
from emo_utils.submission import (
    class_prior,
    failures_from_store,
    fallback_label,
    make_submission,
    validate_submission,
    write_submission,
)

# Unsorted, with a duplicated name (rows 1 and 4) and a file that will fail (row 2).
TEST_NAMES = ["907.mp3", "12.wav", "broken.mp3", "5.mp3", "12.wav"]
TRAIN = "filename,emotion\na.wav,joy\nb.wav,neutral\nc.wav,neutral\nd.wav,anger\ne.wav,joy\nf.wav,neutral\n"


def _competition(tmp_path, sample="file_id,label\n907.mp3,neutral\n"):
    (tmp_path / "train.csv").write_text(TRAIN)
    (tmp_path / "test.csv").write_text("filename\n" + "\n".join(TEST_NAMES) + "\n")
    if sample is not None:
        (tmp_path / "sample_submission.csv").write_text(sample)
    return load_competition(tmp_path)


def _read(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_rows_order_names_fallback_and_companion_files(tmp_path):
    comp = _competition(tmp_path)
    assert comp.classes == ("anger", "joy", "neutral")
    labels = np.array([1, 0, -1, 1, 2])  # row 2 has no prediction
    proba = np.full((5, 3), np.nan)
    proba[[0, 1, 3, 4]] = [[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]
    files = write_submission(
        comp,
        labels,
        out_dir=tmp_path / "submissions",
        run_name="run7",
        method="mode",
        failures={2: "empty file (0 bytes)"},
        probabilities=proba,
        data_config=DataConfig(),
    )
    assert files.submission == tmp_path / "submissions" / "run7__mode.csv"
    sub = _read(files.submission)
    assert list(sub.columns) == ["file_id", "label"]  # the sample submission's columns
    assert sub["file_id"].tolist() == TEST_NAMES  # count, order, duplicates
    # Row 2 falls back to the most frequent training class ("neutral": 3 of 6).
    assert sub["label"].tolist() == ["joy", "anger", "neutral", "joy", "neutral"]

    failed = _read(files.failures)
    assert failed.to_dict(orient="records") == [
        {
            "row": "2",
            "file_id": "broken.mp3",
            "reason": "empty file (0 bytes)",
            "fallback": "neutral",
        }
    ]
    probs = pd.read_csv(files.probabilities)
    assert probs["file_id"].tolist() == TEST_NAMES
    assert list(probs.columns[1:]) == ["anger", "joy", "neutral"]
    assert np.allclose(probs.iloc[2, 1:].astype(float), [1 / 6, 2 / 6, 3 / 6])  # class prior
    assert np.allclose(probs.iloc[0, 1:].astype(float), [0.1, 0.8, 0.1])
    leftovers = [p.name for p in (tmp_path / "submissions").iterdir() if p.name.startswith(".")]
    assert leftovers == []  # atomic writes leave no temporary files


def test_default_columns_without_a_sample_submission(tmp_path):
    comp = _competition(tmp_path, sample=None)
    sub, failed = make_submission(comp, ["joy"] * 4 + [None], failures={4: "decode error"})
    assert list(sub.columns) == ["filename", "emotion"]
    assert sub["emotion"].tolist() == ["joy"] * 4 + ["neutral"]
    assert failed["row"].tolist() == [4]
    assert list(failed.columns) == ["row", "filename", "reason", "fallback"]


def test_no_failures_still_writes_an_empty_failures_file(tmp_path):
    comp = _competition(tmp_path)
    files = write_submission(
        comp, [0, 1, 2, 0, 1], out_dir=tmp_path / "s", run_name="r", method="mean"
    )
    assert files.submission.name == "r__mean.csv"
    assert len(_read(files.failures)) == 0
    assert list(_read(files.failures).columns) == ["row", "file_id", "reason", "fallback"]
    probs = pd.read_csv(files.probabilities)  # one-hot of the labels when none given
    assert np.allclose(probs.iloc[:, 1:].to_numpy(float), np.eye(3)[[0, 1, 2, 0, 1]])


@pytest.mark.parametrize(
    ("labels", "failures", "match"),
    [
        ([0, 1, 2, 0], None, "4 predicted labels for 5"),
        ([0, 1, -1, 0, 1], None, r"no prediction.*broken\.mp3"),
        (["joy", "joy", "sadness", "joy", "joy"], None, "'sadness' is not a class"),
        ([0, 1, 7, 0, 1], None, "class index 7"),
        ([0, 1, 2, 0, 1], {9: "x"}, "outside"),
    ],
)
def test_bad_submissions_are_refused_and_nothing_is_written(tmp_path, labels, failures, match):
    comp = _competition(tmp_path)
    with pytest.raises(SubmissionError, match=match):
        write_submission(
            comp, labels, out_dir=tmp_path / "s", run_name="r", method="mode", failures=failures
        )
    assert not (tmp_path / "s").exists() or list((tmp_path / "s").iterdir()) == []


def test_validation_against_test_csv_and_sample_columns(tmp_path):
    comp = _competition(tmp_path)
    good, _ = make_submission(comp, [0, 1, 2, 0, 1])
    validate_submission(good, comp, data_config=DataConfig())

    with pytest.raises(SubmissionError, match="columns"):
        validate_submission(good.rename(columns={"label": "emotion"}), comp)
    with pytest.raises(SubmissionError, match=r"row 0: '12\.wav' != '907\.mp3'"):
        validate_submission(good.iloc[[1, 0, 2, 3, 4]], comp)
    with pytest.raises(SubmissionError, match="4 rows"):
        validate_submission(good.iloc[:4], comp)
    missing = good.copy()
    missing.loc[3, "label"] = ""
    with pytest.raises(SubmissionError, match="missing label"):
        validate_submission(missing, comp)
    wrong = good.copy()
    wrong.loc[0, "label"] = "Joy"
    with pytest.raises(SubmissionError, match="not classes"):
        validate_submission(wrong, comp)

    # The files on disk are the reference: a test.csv or sample changed since loading is caught.
    (tmp_path / "test.csv").write_text("filename\n" + "\n".join(reversed(TEST_NAMES)) + "\n")
    with pytest.raises(SubmissionError, match=r"test\.csv"):
        validate_submission(good, comp, data_config=DataConfig())
    (tmp_path / "test.csv").write_text("filename\n" + "\n".join(TEST_NAMES) + "\n")
    (tmp_path / "sample_submission.csv").write_text("id,emotion\n1,joy\n")
    with pytest.raises(SubmissionError, match="sample_submission"):
        validate_submission(good, comp, data_config=DataConfig())


def test_fallback_is_the_most_frequent_class_ties_alphabetical(tmp_path):
    comp = _competition(tmp_path)
    assert np.allclose(class_prior(comp), [1 / 6, 2 / 6, 3 / 6])
    assert fallback_label(comp) == 2
    (tmp_path / "train.csv").write_text("filename,emotion\na,joy\nb,fear\nc,joy\nd,fear\n")
    assert fallback_label(load_competition(tmp_path)) == 0  # fear == joy: "fear" first


def test_failures_from_store_uses_rows_not_names():
    image = np.zeros((3, 4, 5), dtype=np.float32)
    store = FeatureStore.from_arrays(
        ["x.wav", "y.wav", "x.wav"],
        [image, None, None],
        window_frames=5,
        reasons=["", "empty file", "unsupported format"],
    )
    assert failures_from_store(store) == {1: "empty file", 2: "unsupported format"}


def test_names_with_path_separators_are_refused(tmp_path):
    comp = _competition(tmp_path)
    with pytest.raises(SubmissionError, match="run name"):
        write_submission(comp, [0] * 5, out_dir=tmp_path, run_name="a/b", method="mode")
