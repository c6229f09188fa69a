"""Model families on two differently generated datasets: CNNs, classical models, ensembles.

Usage::

    .venv/bin/python benchmarks/bench_families.py [--root DIR] [--fresh] [--jobs N]

In one run, on each of two single-label datasets the project generates:

* ``emotion`` -- the emotion demo of ``make demo`` (:func:`emo_utils.datasets.make_demo_dataset`:
  voices in seven emotions, 350 training and 150 test clips);
* ``sources`` -- other sources: the clips of the multi-label demo
  (:func:`emo_utils.datasets.make_multilabel_demo`, 600 training and 200 test clips of
  speech, music, bird-like chirps, water, or background only) that hold exactly one source
  (or none: ``Silence``), as a single-label competition folder, clean test labels.

it runs the pipeline (``cpu_demo`` preset, ``ensemble.method = best``) with the preset's
CNNs (``resnest14d``, ``resnet18``, trained from scratch) and two classical models
(``classical:logreg``, ``classical:hgb``) on the same folds, then prints for each family
(``cnn``, ``classical``) the OOF accuracy of its best model and of its best ensemble, the
cross-family ensemble the pipeline chooses (``best``: honest OOF, never below the best single
model), the held-out test accuracy of the submission, and the training time per fold of
every model.  The issue's target: the chosen ensemble's OOF score >= the best single
model's, and strictly above it when two families each beat the majority baseline.

Scores are deterministic (seeded CPU training); timings depend on the machine's load.
The first run trains 2 CNNs x 5 folds x 6 epochs per dataset: about 15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import pandas as pd

from emo_utils.config import Config
from emo_utils.datasets import make_demo
from emo_utils.ensemble import score_ensembles
from emo_utils.models import resolve_architecture
from emo_utils.pipeline import run_pipeline
from emo_utils.runs import RunDir
from emo_utils.tasks import get_task

ARCHITECTURES = ["resnest14d", "resnet18", "classical:logreg", "classical:hgb"]
FAMILY_NAMES = {"image": "cnn", "features": "classical"}


def _sources_folder(root: Path, jobs: int) -> Path:
    """The single-source clips of a multi-label demo as a single-label competition folder."""
    out = root / "sources"
    if (out / "test_answers.csv").is_file():
        return out
    ml = make_demo("multilabel", root / "sources_multilabel", n_train=600, n_test=200, n_jobs=jobs)
    train = pd.read_csv(ml / "train.csv", dtype=str, keep_default_na=False)
    answers = pd.read_csv(ml / "test_answers.csv", dtype=str, keep_default_na=False)
    tables = {}
    for split, table in (("train", train), ("test", answers)):
        labels = table["labels"].str.split(",")
        one = table[labels.map(lambda x: len([v for v in x if v]) <= 1)].copy()
        one["emotion"] = one["labels"].replace("", "Silence")
        (out / split).mkdir(parents=True, exist_ok=True)
        for name in one["fname"]:
            shutil.copy2(ml / split / name, out / split / name)
        tables[split] = one.rename(columns={"fname": "filename"})[["filename", "emotion"]]
    tables["train"].to_csv(out / "train.csv", index=False)
    tables["test"][["filename"]].to_csv(out / "test.csv", index=False)
    tables["test"].assign(emotion=tables["test"]["filename"].map(lambda _: "Speech")).to_csv(
        out / "sample_submission.csv", index=False
    )
    tables["test"].to_csv(out / "test_answers.csv", index=False)
    return out


def _datasets(root: Path, jobs: int) -> dict[str, Path]:
    emotion = make_demo("classification", root / "emotion", n_jobs=jobs)
    return {"emotion": emotion, "sources": _sources_folder(root, jobs)}


def _family(arch: str) -> str:
    return FAMILY_NAMES[resolve_architecture(arch)[0].input]


def _report(name: str, data: Path, run_path: Path, config: Config, jobs: int, fresh: bool) -> None:
    if fresh and run_path.exists():
        shutil.rmtree(run_path)
    t0 = time.perf_counter()
    result = run_pipeline(
        data,
        run_dir=run_path,
        config=config,
        submissions_dir=run_path / "submissions",
        n_jobs=jobs,
        progress=False,
    )
    run = RunDir(run_path)
    task = get_task(config.data.task)
    classes = run.read_classes()
    oof = run.load_oof(ARCHITECTURES, classes, encode=task.encode)
    baseline = json.loads(run.cv_report_file(".json").read_text())["baseline"]["scores"]["accuracy"]
    answers = pd.read_csv(data / "test_answers.csv", dtype=str)
    sub = pd.read_csv(result.submission, dtype=str)
    held_out = float((sub.iloc[:, 1].to_numpy() == answers["emotion"].to_numpy()).mean())
    print(
        f"\n== {name}: {len(oof.filenames)} training clips, {len(classes)} classes, "
        f"majority baseline {baseline:.4f}; pipeline {time.perf_counter() - t0:.0f} s"
    )
    ec = config.ensemble

    def best_of(names: list[str]) -> tuple[str, float, str, float]:
        idx = [ARCHITECTURES.index(a) for a in names]
        report = score_ensembles(
            oof.probas[idx],
            oof.y,
            model_names=names,
            folds=oof.folds,
            metric="accuracy",
            method="best",
            stacking_model=ec.stacking_model,
            seed=config.train.seed,
            methods=task.ensembles,
            metrics=task.metrics,
        )
        models = report.model_scores
        return (
            report.best_model,
            models[report.best_model],
            report.method,
            report.ensemble_scores[report.method],
        )

    print(f"{'':34s} {'best model':>26s} {'best ensemble':>26s}")
    beat = 0
    for family in ("cnn", "classical"):
        members = [a for a in ARCHITECTURES if _family(a) == family]
        model, m_score, method, e_score = best_of(members)
        beat += m_score > baseline
        print(f"{family:34s} {model:>18s} {m_score:.4f} {method:>18s} {e_score:.4f}")
    model, m_score, method, e_score = best_of(ARCHITECTURES)
    print(
        f"{'cross-family (the pipeline choice)':34s} {model:>18s} {m_score:.4f} {method:>18s} {e_score:.4f}"
    )
    target = e_score >= m_score and (beat < 2 or e_score > m_score)
    print(
        f"chosen ensemble {method}: OOF {e_score:.4f} vs best single {m_score:.4f} "
        f"({'met' if target else 'MISSED'}; two families above the baseline: {beat == 2}); "
        f"held-out test accuracy of the submission ({result.lines[-1].split(': ')[-1]}): "
        f"{held_out:.4f}"
    )
    times = {}
    for arch in ARCHITECTURES:
        secs = [run.read_done(arch, k)["seconds"] for k in range(config.train.n_folds)]
        times[arch] = sum(secs) / len(secs)
    print("seconds per fold: " + ", ".join(f"{a} {s:.1f}" for a, s in times.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("data/bench_families"))
    parser.add_argument("--fresh", action="store_true", help="retrain the run folders")
    parser.add_argument("--jobs", type=int, default=-1, help="joblib workers (-1: all cores)")
    args = parser.parse_args()
    config = Config.preset("cpu_demo").override(
        {"train.architectures": ARCHITECTURES, "ensemble.method": "best"}
    )
    t0 = time.perf_counter()
    print(f"cores: {os.cpu_count()}, architectures {ARCHITECTURES}")
    for name, data in _datasets(args.root, args.jobs).items():
        _report(name, data, args.root / f"run_{name}", config, args.jobs, args.fresh)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
