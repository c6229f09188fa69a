"""The verification notebook, run top to bottom in a real Jupyter kernel on a tiny demo."""

from __future__ import annotations

import pandas as pd
import pytest
from test_notebooks import _images, _outputs, _shown_text, run_notebook

NAME = "05_verification"
OVERRIDES = {
    "train.architectures": ["test_resnet"],
    "train.epochs": 1,
    "train.n_folds": 2,
    "train.batch_size": 8,
    "audio.duration": 1.5,
    "audio.max_duration": 1.5,
    "features.n_mels": 32,
    "features.n_fft": 512,
    "verification.embedding_dim": 16,
    "verification.clips_per_identity": 2,
}


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    root = tmp_path_factory.mktemp("notebook_verification")
    folders = {name: root / name for name in ("data", "run", "submissions", "work")}
    folders["work"].mkdir()
    values = {
        "DATA_DIR": str(folders["data"]),
        "RUN_DIR": str(folders["run"]),
        "SUBMISSIONS_DIR": str(folders["submissions"]),
        "OVERRIDES": OVERRIDES,
        "DEMO_N_TRAIN": 6,
        "DEMO_N_TEST": 3,
        "N_JOBS": 1,
    }
    return run_notebook(NAME, values, folders["work"]), folders


def test_verification_notebook_trains_scores_and_shows_the_reports(executed):
    nb, folders = executed
    assert not [o for o in _outputs(nb) if o.output_type == "error"]
    trials = pd.read_csv(folders["data"] / "test.csv")
    (submission,) = [p for p in folders["submissions"].glob("*.csv") if ".failures" not in p.name]
    assert pd.read_csv(submission)["id"].tolist() == trials["id"].tolist()
    text = _shown_text(nb)
    assert "OOF EER ensemble single" in text
    assert "held-out test EER" in text
    assert _images(nb) == 2  # DET curve and score histograms
