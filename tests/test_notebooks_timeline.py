"""The timeline notebook, run top to bottom in a real Jupyter kernel on a tiny demo run."""

from __future__ import annotations

import pandas as pd
import pytest
from test_notebooks import _images, _outputs, _shown_text, run_notebook

from emo_utils.config import Config
from emo_utils.datasets import make_demo_dataset
from emo_utils.pipeline import run_pipeline

NAME = "04_timeline"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    root = tmp_path_factory.mktemp("notebook_timeline")
    data = make_demo_dataset(root / "data", n_train=40, n_test=10, n_jobs=1)
    config = Config.preset("cpu_demo").override(
        {
            "train.architectures": ["test_resnet"],
            "train.epochs": 1,
            "train.n_folds": 2,
            "features.n_mels": 32,
        }
    )
    run_pipeline(
        data,
        run_dir=root / "run",
        config=config,
        submissions_dir=root / "subs",
        n_jobs=1,
        progress=False,
    )
    (root / "work").mkdir()
    values = {
        "DATA_DIR": str(data),
        "RUN_DIR": str(root / "run"),
        "LONG_DIR": str(root / "long"),
        "MINUTES": [0.5],
        "OUT_DIR": str(root / "long" / "detections"),
        "STREAM_SECONDS": 6.0,
    }
    return run_notebook(NAME, values, root / "work"), root


@pytest.mark.slow
def test_timeline_notebook_writes_the_timeline_and_shows_events_and_stream(executed):
    nb, root = executed
    assert not [o for o in _outputs(nb) if o.output_type == "error"]
    reference = pd.read_csv(root / "long" / "reference.csv")
    (recording,) = reference["file"].unique()
    (table,) = (root / "long" / "detections").glob(f"{recording}*.csv")
    timeline = pd.read_csv(table)
    assert list(timeline.columns[:3]) == ["file", "start", "end"]
    assert timeline["end"].max() == pytest.approx(30.0, abs=2.5)  # 0.5 minute, last window
    text = _shown_text(nb)
    assert "windows; written" in text
    assert " ms" in text  # the stream's per-window lines
    assert _images(nb) >= 1  # the timeline plot
