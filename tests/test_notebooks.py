"""The notebooks, run top to bottom in a real Jupyter kernel on tiny demo data.

``01_preprocess`` -> ``02_train`` -> ``03_inference`` (and ``00_eda``) are executed with
nbclient, sharing one demo competition, cache, run folder and submissions folder, with tiny
settings injected right after each notebook's ``parameters`` cell (what papermill does).
The tests then check what they wrote and showed.  Other tests check the committed notebooks
themselves: no outputs, one literal parameter cell first, no ``sys.path`` edits (``make lint``
runs ruff on them).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from emo_utils.config import resolve_config
from emo_utils.data.competition import load_competition
from emo_utils.features.store import open_cache

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NAMES = ("00_eda", "01_preprocess", "02_train", "03_inference")
#: Every committed notebook (the timeline and verification ones run in their own test files).
COMMITTED = tuple(sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")))
KERNEL = "python3"
ARCH = "test_resnet"  # timm's tiny test network
PRESET = "cpu_demo"
OVERRIDES = {
    "audio.duration": 2.0,
    "audio.max_duration": 2.0,
    "features.n_mels": 32,
    "train.architectures": [ARCH],
    "train.epochs": 1,
    "train.n_folds": 2,
    "train.batch_size": 16,
}
N_TRAIN, N_TEST = 40, 12


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def _parameter_cells(nb: nbformat.NotebookNode) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]


def inject_parameters(nb: nbformat.NotebookNode, values: dict[str, Any]) -> None:
    """Insert a cell assigning ``values`` right after the ``parameters`` cell (as papermill)."""
    (index,) = _parameter_cells(nb)
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(index + 1, cell)


def run_notebook(name: str, values: dict[str, Any], workdir: Path) -> nbformat.NotebookNode:
    """Execute a copy of ``notebooks/NAME.ipynb`` with ``values`` in ``workdir``.

    The executed copy is saved as ``workdir/NAME.ipynb`` (also when a cell fails), so a
    failure can be inspected.
    """
    nb = _read(name)
    inject_parameters(nb, values)
    client = NotebookClient(
        nb, timeout=900, kernel_name=KERNEL, resources={"metadata": {"path": str(workdir)}}
    )
    try:
        client.execute()
    finally:
        nbformat.write(nb, workdir / f"{name}.ipynb")
    return nb


def _outputs(nb: nbformat.NotebookNode) -> list[dict[str, Any]]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def _shown_text(nb: nbformat.NotebookNode) -> str:
    """What the outputs show as text: streams and every ``text/*`` representation."""
    parts = []
    for out in _outputs(nb):
        if out.output_type == "stream":
            parts.append(out.text)
        parts += [str(v) for kind, v in out.get("data", {}).items() if kind.startswith("text/")]
    return "\n".join(parts)


def _images(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for o in _outputs(nb))


# ------------------------------------------------------------------ executed notebooks
@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("notebooks")
    out = {name: root / name for name in ("data", "run", "submissions", "work")}
    out["work"].mkdir()
    return out


def notebook_parameters(
    name: str,
    folders: dict[str, Path],
    *,
    preset: str = PRESET,
    overrides: dict[str, Any] = OVERRIDES,
    n_train: int = N_TRAIN,
    n_test: int = N_TEST,
) -> dict[str, Any]:
    """What the tests put in each notebook's injected parameter cell (also for other presets)."""
    common = {"DATA_DIR": str(folders["data"]), "N_JOBS": 1}
    training = {
        **common,
        "PRESET": preset,
        "OVERRIDES": overrides,
        "MAKE_DEMO_DATA": True,
        "DEMO_N_TRAIN": n_train,
        "DEMO_N_TEST": n_test,
    }
    return {
        "00_eda": {**training, "N_STATS_PER_CLASS": 2, "N_PER_CLASS": 1},
        "01_preprocess": training,
        "02_train": {**training, "RUN_DIR": str(folders["run"])},
        "03_inference": {
            **common,
            "RUN_DIR": str(folders["run"]),
            "SUBMISSIONS_DIR": str(folders["submissions"]),
        },
    }[name]


def _run(name: str, folders: dict[str, Path]) -> nbformat.NotebookNode:
    return run_notebook(name, notebook_parameters(name, folders), folders["work"])


@pytest.fixture(scope="module")
def preprocessed(folders) -> nbformat.NotebookNode:
    return _run("01_preprocess", folders)


@pytest.fixture(scope="module")
def trained(folders, preprocessed) -> nbformat.NotebookNode:
    return _run("02_train", folders)


@pytest.fixture(scope="module")
def inferred(folders, trained) -> nbformat.NotebookNode:
    return _run("03_inference", folders)


@pytest.fixture(scope="module")
def explored(folders, preprocessed) -> nbformat.NotebookNode:
    return _run("00_eda", folders)


@pytest.mark.slow
def test_preprocess_notebook_makes_the_demo_data_and_caches_both_splits(folders, preprocessed):
    data = folders["data"]
    assert len(pd.read_csv(data / "train.csv")) == N_TRAIN
    assert len(pd.read_csv(data / "test.csv")) == N_TEST
    config = resolve_config(preset=PRESET, overrides=OVERRIDES)
    competition = load_competition(data, config.data)
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        # The default cache folder, finished: open_cache computes nothing and fails otherwise.
        store = open_cache(competition, split, config=config, cache_dir=data / ".emo_cache")
        assert len(store) == n
        assert store.ok.all()
        assert store.image_shape[:2] == (3, 32)
    shown = _shown_text(preprocessed)
    assert "features train" in shown  # the tqdm bars of both splits (widget or text)
    assert "features test" in shown
    assert _images(preprocessed) >= 1  # the channel grid


@pytest.mark.slow
def test_train_notebook_writes_the_run_folder(folders, trained):
    run = folders["run"]
    saved = json.loads((run / "config.json").read_text())
    assert saved == resolve_config(preset=PRESET, overrides=OVERRIDES).to_dict()
    folds = pd.read_csv(run / "folds.csv")
    assert len(folds) == N_TRAIN
    assert set(folds["fold"]) == {0, 1}
    for fold in (0, 1):
        assert (run / "models" / ARCH / f"fold{fold}" / "done.json").is_file()
        assert (run / "models" / ARCH / f"fold{fold}" / "model.pth").is_file()
    oof = pd.read_csv(run / "oof" / f"{ARCH}.csv")
    assert sorted(oof["filename"]) == sorted(folds["filename"])
    assert (run / "cv_report.md").is_file()
    assert (run / "cv_report.json").is_file()
    assert list((run / "report").glob(f"training_{ARCH}.png"))
    shown = _shown_text(trained)
    assert "train_loss" in shown  # fastai's progress output: its per-epoch table
    assert "valid_loss" in shown
    assert _images(trained) >= 3


@pytest.mark.slow
def test_inference_notebook_writes_one_submission_row_per_test_row(folders, inferred):
    test = pd.read_csv(folders["data"] / "test.csv", dtype=str)
    # <run folder name>__<ensemble method>.csv, the method that ``best`` resolved to (the vote
    # cell writes other methods' submissions after it, so ``submission_method`` is theirs).
    method = json.loads((folders["run"] / "ensemble_report.json").read_text())
    path = folders["submissions"] / f"{folders['run'].name}__{method['best_method']}.csv"
    submission = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(submission.columns) == ["filename", "emotion"]
    assert submission["filename"].tolist() == test["filename"].tolist()
    classes = json.loads((folders["run"] / "classes.json").read_text())
    assert set(submission["emotion"]) <= set(classes)
    assert (folders["run"] / "ensemble_report.md").is_file()
    assert (folders["run"] / "predictions" / f"{ARCH}.csv").is_file()
    assert (folders["run"] / "report" / "scores.png").is_file()
    assert _images(inferred) >= 1


@pytest.mark.slow
def test_inference_notebook_votes_over_several_submission_files(folders, inferred):
    test = pd.read_csv(folders["data"] / "test.csv", dtype=str)
    for method in ("single", "mean", "geometric"):  # VOTE_METHODS: one submission each
        assert (folders["submissions"] / f"{folders['run'].name}__{method}.csv").is_file()
    voted = pd.read_csv(folders["submissions"] / "voted.csv", dtype=str, keep_default_na=False)
    assert list(voted.columns) == ["filename", "emotion"]
    assert voted["filename"].tolist() == test["filename"].tolist()
    shown = _shown_text(inferred)
    assert "voted 3 submissions into" in shown
    assert "pairwise agreement" in shown


@pytest.mark.slow
def test_eda_notebook_draws_every_plot(explored):
    # class balance, durations, formats, signal statistics, channel grid
    assert _images(explored) >= 5
    assert not [o for o in _outputs(explored) if o.output_type == "error"]


# ------------------------------------------------------------------ committed notebooks
@pytest.mark.parametrize("name", COMMITTED)
def test_committed_notebook_has_no_outputs(name):
    nb = _read(name)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name} cell {i} has outputs; strip them"
            assert cell.execution_count is None, f"{name} cell {i} has an execution count"


@pytest.mark.parametrize("name", COMMITTED)
def test_first_code_cell_is_the_only_parameter_cell(name):
    nb = _read(name)
    assert nb.cells[0].cell_type == "markdown"
    assert nb.cells[0].source.startswith(f"# {name[:2]} ")  # the title numbers the file
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    assert _parameter_cells(nb) == [code[0]]
    # Only literal assignments, so papermill or the tests can override any of them.
    tree = ast.parse(nb.cells[code[0]].source)
    for node in tree.body:
        assert isinstance(node, ast.Assign), ast.unparse(node)
        ast.literal_eval(node.value)


@pytest.mark.parametrize("name", NAMES)
def test_parameters_set_by_the_tests_exist_in_the_notebook(name, tmp_path):
    nb = _read(name)
    (index,) = _parameter_cells(nb)
    defined = {t.id for node in ast.parse(nb.cells[index].source).body for t in node.targets}
    folders = {k: tmp_path / k for k in ("data", "run", "submissions", "work")}
    assert set(notebook_parameters(name, folders)) <= defined


@pytest.mark.parametrize("name", NAMES)
def test_notebook_does_not_edit_sys_path(name):
    text = (NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8")
    assert "sys.path" not in text
