"""The run report of multi-label runs: per-label tables at the OOF-tuned thresholds, PR and
F1-threshold curves, co-occurrence, per-label errors and the label-set embedding map.

One tiny multi-label run is trained for real (timm's ``test_resnet`` from scratch, 2 folds
x 1 epoch, on in-memory images); a run folder written by hand (no training) covers the
cases that need no model.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emo_utils.cli import main
from emo_utils.config import Config
from emo_utils.data.competition import Competition
from emo_utils.data.labels import join_labels, split_labels
from emo_utils.ensemble import evaluate_ensembles
from emo_utils.errors import EmoUtilsWarning
from emo_utils.features.store import FeatureStore
from emo_utils.fileio import write_csv, write_json
from emo_utils.reports import REPORT_KINDS, make_run_report
from emo_utils.reports.multilabel import label_set_codes, per_label_table
from emo_utils.runs import RunDir
from emo_utils.tasks import get_task

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LABELS = ("bird", "rain", "voice")
ARCH = "test_resnet"
CONFIG = Config().override(
    {
        "data.task": "multilabel",
        "train.architectures": [ARCH],
        "train.pretrained": False,
        "train.n_folds": 2,
        "train.epochs": 1,
        "train.batch_size": 8,
        "train.lr": 3e-3,
    }
)
#: Per-kind figures of one model or method (``TAG``: the architecture or ``ensemble_M``).
PER_TAG = ("labels", "pr", "f1_threshold", "label_errors")


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


def _label_sets(n: int, seed: int) -> np.ndarray:
    """0/1 ``(n, 3)``, every clip holding one or two labels, every label on many clips."""
    rng = np.random.default_rng(seed)
    y = np.zeros((n, len(LABELS)), dtype=np.int64)
    y[np.arange(n), np.arange(n) % len(LABELS)] = 1
    y[rng.random(n) < 0.4, rng.integers(0, len(LABELS))] = 1
    return y


def make_multilabel_training_data(
    root: Path, *, n: int = 24, shape: tuple[int, int, int] = (3, 32, 48), seed: int = 0
) -> tuple[Competition, FeatureStore]:
    """conftest's ``make_training_data`` for label sets: one bright band per present label."""
    rng = np.random.default_rng(seed)
    y = _label_sets(n, seed)
    _, h, t = shape
    band = max(1, h // (2 * len(LABELS)))
    names, labels, images = [], [], []
    for i, row in enumerate(y):
        image = rng.normal(0.0, 1.0, shape).astype(np.float32)
        for k in np.flatnonzero(row):
            image[:, 2 * k * band : (2 * k + 1) * band, :] += 2.0
        names.append(f"clip_{i:03d}.wav")
        labels.append(join_labels([LABELS[k] for k in np.flatnonzero(row)]))
        images.append(image)
    train = pd.DataFrame(
        {"filename": names, "label": labels, "path": [str(root / "train" / n) for n in names]}
    )
    competition = Competition(
        root=root,
        train=train,
        test=pd.DataFrame({"filename": [], "path": []}),
        classes=LABELS,
        submission_columns=("fname", "labels"),
    )
    return competition, FeatureStore.from_arrays(names, images, window_frames=t)


@pytest.fixture(scope="module")
def trained_multilabel(tmp_path_factory) -> tuple[Path, FeatureStore]:
    """A real tiny multi-label CV run with its ensemble stage done (read-only: copy it)."""
    from emo_utils.train import train_cv

    root = tmp_path_factory.mktemp("ml_run")
    competition, store = make_multilabel_training_data(root / "data")
    run = root / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoUtilsWarning)  # a 1-epoch model learns little
        train_cv(competition, store, run_dir=run, config=CONFIG, progress=False)
    evaluate_ensembles(run, config=CONFIG)
    return run, store


def _expected(tags: list[str]) -> set[str]:
    return {f"{kind}_{tag}" for kind in PER_TAG for tag in tags}


def _oof_scores(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """Targets and probabilities of ``oof/ARCH.csv``, in file order."""
    oof = pd.read_csv(run / "oof" / f"{ARCH}.csv", dtype={"label": str}, keep_default_na=False)
    y = get_task("multilabel").encode(oof["label"].tolist(), LABELS).astype(np.int64)
    return y, oof[list(LABELS)].to_numpy(np.float64)


@pytest.mark.slow
def test_report_of_a_trained_multilabel_run(tmp_path, trained_multilabel):
    source, store = trained_multilabel
    run = Path(shutil.copytree(source, tmp_path / "run"))
    written = make_run_report(run, store=store)
    report = json.loads((run / "ensemble_report.json").read_text())
    method = report["submission_method"]
    expected = _expected([ARCH, f"ensemble_{method}"])
    expected |= {"label_cooccurrence", f"training_{ARCH}", "scores", f"embeddings_{ARCH}_fold0"}
    assert set(written) == expected
    assert all(_is_png(p) and p.parent == run / "report" for p in written.values())
    # No single-label figure: nothing argmax-decoded.
    assert not list((run / "report").glob("confusion_*")) + list((run / "report").glob("roc_*"))

    # The table is per_label_table at the model's thresholds from thresholds.json.
    thresholds = RunDir(run).read_thresholds(LABELS)
    table = pd.read_csv(run / "report" / f"labels_{ARCH}.csv", keep_default_na=False)
    assert table["label"].tolist() == list(LABELS)
    y, proba = _oof_scores(run)
    want = per_label_table(y, proba, thresholds[ARCH], LABELS)
    for column in ("precision", "recall", "f1", "threshold"):
        np.testing.assert_allclose(table[column], want[column], atol=1e-12)
    for column in ("support", "fp", "fn"):
        assert table[column].tolist() == want[column].tolist()
    assert table["support"].tolist() == y.sum(axis=0).tolist()
    ens = pd.read_csv(run / "report" / f"labels_ensemble_{method}.csv")
    np.testing.assert_allclose(ens["threshold"], thresholds[method])

    readme = (run / "report" / "README.md").read_text()
    assert "## Decision thresholds" in readme
    assert "From `thresholds.json`" in readme
    assert f"| {ARCH} | thresholds.json | {thresholds[ARCH][0]:.4f} |" in readme
    assert f"## Per-label scores of the submission (ensemble **{method}**" in readme
    assert "| label | precision | recall | f1 | ap | support | fp | fn | threshold | note |" in (
        readme
    )
    assert all(f"({p.name})" in readme for p in written.values())


@pytest.mark.slow
def test_cli_report_of_a_multilabel_run_without_thresholds(tmp_path, trained_multilabel, capsys):
    """No thresholds.json (and no ensemble report): labels at 0.5, scores recomputed."""
    source, _ = trained_multilabel
    run = Path(shutil.copytree(source, tmp_path / "run"))
    (run / "thresholds.json").unlink()
    (run / "ensemble_report.json").unlink()
    with pytest.warns(EmoUtilsWarning, match="embedding map skipped"):
        assert main(["report", "--run", str(run)]) == 0
    assert "figures and README.md" in capsys.readouterr().out
    assert not (run / "thresholds.json").exists()  # the report only reads
    table = pd.read_csv(run / "report" / f"labels_{ARCH}.csv")
    assert table["threshold"].tolist() == [0.5] * len(LABELS)
    readme = (run / "report" / "README.md").read_text()
    assert "`thresholds.json` is absent" in readme
    assert "every label is decided at 0.5" in readme
    assert f"| {ARCH} | 0.5 (no thresholds.json) | 0.5000 |" in readme
    assert "| name | kind | map |" in readme  # recomputed with the task's metric


# ---------------------------------------------------------------------------- no training
def make_synthetic_multilabel_run(run: Path, *, n: int = 40, n_folds: int = 2) -> Config:
    """A multi-label run folder following the design contract, without training anything."""
    archs = ["net_a", "net_b"]
    config = CONFIG.override({"train.architectures": archs, "train.n_folds": n_folds})
    config.save(run / "config.json")
    write_json(run / "classes.json", list(LABELS))
    y = _label_sets(n, seed=1)
    y[-1] = 0  # a clip without any label: no label set, "(none)" on the embedding map
    names = [f"{i}.wav" for i in range(n)]
    labels = [join_labels([LABELS[k] for k in np.flatnonzero(row)]) for row in y]
    folds = np.arange(n) % n_folds
    write_csv(run / "folds.csv", pd.DataFrame({"filename": names, "label": labels, "fold": folds}))
    rng = np.random.default_rng(2)
    for k, arch in enumerate(archs):
        oof = pd.DataFrame({"filename": names, "label": labels, "fold": folds})
        oof[list(LABELS)] = np.clip(0.5 * y + rng.random(y.shape) * (0.6 + 0.1 * k), 0, 1)
        write_csv(run / "oof" / f"{arch}.csv", oof)
    return config


def test_report_of_a_synthetic_multilabel_run(tmp_path):
    config = make_synthetic_multilabel_run(tmp_path)
    evaluate_ensembles(tmp_path, config=config)  # ensemble_report.json and thresholds.json
    written = make_run_report(tmp_path, embeddings=False)
    method = json.loads((tmp_path / "ensemble_report.json").read_text())["submission_method"]
    tags = ["net_a", "net_b", f"ensemble_{method}"]
    folds = pd.read_csv(tmp_path / "folds.csv", dtype=str, keep_default_na=False)
    support = [sum(label in split_labels(t) for t in folds["label"]) for label in LABELS]
    assert set(written) == _expected(tags) | {"label_cooccurrence", "scores"}
    assert all(_is_png(p) for p in written.values())
    for tag in tags:
        table = pd.read_csv(tmp_path / "report" / f"labels_{tag}.csv")
        assert table.columns.tolist()[:8] == [
            "label",
            "precision",
            "recall",
            "f1",
            "ap",
            "support",
            "fp",
            "fn",
        ]
        assert table["support"].tolist() == support
        assert (
            table[["precision", "recall", "f1", "ap"]]
            .apply(lambda c: c.between(0, 1))
            .all(axis=None)
        )
    readme = (tmp_path / "report" / "README.md").read_text()
    assert "| net_b | thresholds.json |" in readme
    assert "Embedding map skipped" not in readme  # embeddings=False: nothing to say


def test_thresholds_missing_for_a_name_fall_back_to_half(tmp_path):
    config = make_synthetic_multilabel_run(tmp_path)
    evaluate_ensembles(tmp_path, config=config)
    saved = json.loads((tmp_path / "thresholds.json").read_text())
    del saved["thresholds"]["net_b"]
    write_json(tmp_path / "thresholds.json", saved)
    make_run_report(tmp_path, embeddings=False)
    table = pd.read_csv(tmp_path / "report" / "labels_net_b.csv")
    assert table["threshold"].tolist() == [0.5] * len(LABELS)
    readme = (tmp_path / "report" / "README.md").read_text()
    assert "| net_b | 0.5 (not in thresholds.json) |" in readme
    assert "| net_a | thresholds.json |" in readme


def test_thresholds_of_other_classes_warn_and_fall_back_to_half(tmp_path):
    config = make_synthetic_multilabel_run(tmp_path)
    evaluate_ensembles(tmp_path, config=config)
    saved = json.loads((tmp_path / "thresholds.json").read_text())
    write_json(tmp_path / "thresholds.json", {**saved, "classes": ["x", "y", "z"]})
    with pytest.warns(EmoUtilsWarning, match="other classes"):
        make_run_report(tmp_path, embeddings=False)
    readme = (tmp_path / "report" / "README.md").read_text()
    assert "`thresholds.json` cannot be used" in readme


def test_embedding_colours_are_label_sets_most_frequent_first(tmp_path):
    make_synthetic_multilabel_run(tmp_path)
    folds = pd.read_csv(tmp_path / "folds.csv", dtype=str, keep_default_na=False)
    y = get_task("multilabel").encode(folds["label"].tolist(), LABELS).astype(np.int64)
    codes, names = label_set_codes(y, LABELS)
    counts = [int(c) for c, name in zip(np.bincount(codes), names, strict=True) if name != "other"]
    assert counts == sorted(counts, reverse=True)
    assert "(none)" in names
    shown = [names[c] for c in codes]
    assert shown[-1] == "(none)"
    for name, label in zip(shown, folds["label"], strict=True):
        if name not in ("other", "(none)"):
            assert name.split("+") == split_labels(label)
    assert set(REPORT_KINDS) == {"single", "multi"}
