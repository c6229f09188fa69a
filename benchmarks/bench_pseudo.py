"""Pseudo-label rounds on the emotion demo: OOF and held-out scores of round 0 and round 1.

Usage::

    .venv/bin/python benchmarks/bench_pseudo.py [--data DIR] [--run DIR] [--fresh] [--jobs N]

In one run:

1. **Round 0**: the demo folder (default ``data/demo``, the folder of ``make demo``: 350
   training and 150 test clips, generated once) and the whole pipeline with the
   ``cpu_demo`` preset into ``--run`` (default ``runs/bench_pseudo``): 5-fold CV of
   resnest14d and resnet18, test predictions, the ensembles compared on OOF, the
   submission, scored on ``test_answers.csv`` (which the pipeline never reads).
2. **Round 1** in ``RUN_round1``, the same config plus ``train.pseudo_from`` = round 0 (the
   defaults: every test clip kept, soft targets at power 1): every fold trains on its 280
   labelled clips plus the 150 test clips, fold k's targets made by round 0's fold-k models
   and its submission's ensemble method fitted on its OOF rows outside fold k
   (:mod:`emo_utils.endgame.pseudo`); same folds, same seed, same epochs.  Predicted and
   scored like round 0.
3. **Table**: per round, the OOF accuracy of each model and of every ensemble method (the
   labelled clips only, in the same folds: comparable), the submission's method, its OOF and
   held-out accuracy (and the other held-out metrics), the pseudo rows per fold and the
   seconds.  Then the changes from round 0 to round 1.

What the figures can and cannot say: round 1 differs from round 0 only by the pseudo rows
(and the batches they change), so a change is theirs or the noise of a different training
trajectory; one run on 350 clips does not separate the two (one OOF clip is 0.29 points,
one held-out clip 0.67).  The held-out clips are the clips round 1 trained on without
labels: the usual Kaggle setting (pseudo-labelling the test set), so the held-out score is a
transductive one.  Rounds already finished in the run folders are reused (their folds are
skipped; test predictions are made again); ``--fresh`` deletes both run folders first.

On the project's 2-core CPU machine round 0 takes about 6.5 minutes and round 1 about 1.5
times that (more clips per fold, plus the parent's fold models on the test clips).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from emo_utils.config import Config
from emo_utils.pipeline_demo import describe_rounds, round_run_dir, run_demo_rounds
from emo_utils.runs import RunDir


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("data/demo"))
    p.add_argument("--run", type=Path, default=Path("runs/bench_pseudo"))
    p.add_argument("--submissions", type=Path, default=Path("submissions"))
    p.add_argument("--jobs", type=int, default=-1)
    p.add_argument("--fresh", action="store_true", help="delete both rounds' run folders first")
    return p.parse_args()


def main() -> None:
    """Round 0 and round 1 on the demo, then their figures side by side."""
    args = _parse()
    rounds = 2
    if args.fresh:
        for number in range(rounds):
            shutil.rmtree(round_run_dir(args.run, number), ignore_errors=True)
    config = Config.preset("cpu_demo")
    start = time.perf_counter()
    results = run_demo_rounds(
        args.data,
        run_dir=args.run,
        config=config,
        rounds=rounds,
        submissions_dir=args.submissions,
        n_jobs=args.jobs,
        progress=False,
    )
    metric = config.ensemble.metric
    print(f"\n=== bench_pseudo: {rounds} rounds on {args.data} ({metric}) ===")
    for number, r in enumerate(results):
        report = RunDir(r.run_dir).read_cv_report() or {}
        kept = (report.get("pseudo") or {}).get("kept")
        print(f"\nround {number} ({r.run_dir}), {r.seconds:.0f} s")
        print(f"  pseudo rows per fold: {kept if kept else 'none (round 0)'}")
        for arch, score in r.cv_scores.items():
            print(f"  OOF {metric} {arch:<22s} {score:.4f}")
        for method, score in r.ensemble_scores.items():
            print(f"  OOF {metric} ensemble {method:<13s} {score:.4f}")
        print(
            f"  submission: {r.submission_method} (OOF "
            f"{r.ensemble_scores.get(r.submission_method, float('nan')):.4f}), held-out "
            f"{metric} {r.test_score:.4f}; "
            + ", ".join(f"{m} {v:.4f}" for m, v in r.test_scores.items() if m != metric)
        )
    print()
    print(describe_rounds(results))
    first, last = results[0], results[-1]
    print("\nround 1 - round 0:")
    for arch in first.cv_scores:
        print(f"  OOF {arch:<22s} {last.cv_scores[arch] - first.cv_scores[arch]:+.4f}")
    o0 = first.ensemble_scores.get(first.submission_method, float("nan"))
    o1 = last.ensemble_scores.get(last.submission_method, float("nan"))
    print(f"  OOF of the submission's method      {o1 - o0:+.4f}")
    print(f"  held-out {metric} of the submission {last.test_score - first.test_score:+.4f}")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
