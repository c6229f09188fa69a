"""Verification demo: test-trial EER of the trained models and their ensemble vs an MFCC baseline.

Usage::

    .venv/bin/python benchmarks/bench_verification.py [--data DIR] [--run DIR] [--fresh] [--jobs N]
        [--set SECTION.FIELD=VALUE ...]

In one run:

1. **Pipeline.** Generates (or reuses) the verification demo folder
   (:func:`emo_utils.datasets.make_verification_demo`: 64 training and 24 test speakers) in
   ``--data`` (default ``data/demo_verification``, the folder of ``python -m emo_utils demo
   --task verification``), then trains (or resumes: finished folds are skipped) the
   ``cpu_demo_verification`` preset, plus any ``--set`` overrides, into ``--run`` (default
   ``runs/bench_verification``) and scores the test trials
   (:func:`emo_utils.pipeline_verification.run_verification`).  ``--fresh`` deletes the run
   folder first.
2. **Classical baseline.** Every file of the test trials is decoded with
   :mod:`emo_utils.audio` at the config's sample rate (the whole clip up to
   ``audio.max_duration``) and described by the mean and standard deviation over time of 20
   MFCCs (librosa); a trial's score is the cosine similarity of its two vectors.
3. **Supervised linear probe** (a diagnosis of the data, not a competitor: it is trained on
   the training speakers' labels): the same MFCC vectors of the training clips, standardised,
   projected by shrinkage LDA (scikit-learn) fitted on the training speakers; a trial's score
   is the cosine similarity of the two projected test clips.  It shows how much speaker
   identity the clips carry for a linear model on utterance statistics.
4. **Table** of the held-out test-trial EER (answers in ``test_answers.csv``, read only here)
   of every model, every ensemble method and the baseline, then the ratio
   ensemble EER / baseline EER against the target of at most 0.5.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.preprocessing import StandardScaler

from emo_utils.audio import load_clip
from emo_utils.config import Config
from emo_utils.data.verification import load_verification
from emo_utils.datasets import make_demo
from emo_utils.pipeline_verification import held_out_eer, run_verification
from emo_utils.verification import equal_error_rate
from emo_utils.verification.scoring import enroll_sides


def mfcc_vectors(paths: list[str], config: Config) -> np.ndarray:
    """MFCC mean+std vectors ``(n, 40)`` of the clips (whole clip up to ``audio.max_duration``)."""
    vectors = []
    for path in paths:
        y = load_clip(path, config=config.audio)
        m = librosa.feature.mfcc(y=y, sr=config.audio.sample_rate, n_mfcc=20)
        vectors.append(np.concatenate([m.mean(axis=1), m.std(axis=1)]))
    return np.array(vectors)


def mfcc_baseline(data_dir: Path, config: Config) -> tuple[float, float]:
    """Test-trial EER of the MFCC cosine baseline and of the supervised LDA probe."""
    data = load_verification(data_dir, config)
    test = mfcc_vectors(list(data.competition.test["path"]), config)
    answers = pd.read_csv(data_dir / "test_answers.csv", dtype={"id": str}).set_index("id")
    labels = answers.loc[data.trials["id"], "same"].to_numpy()
    a, b = data.trials["rows_a"], data.trials["rows_b"]

    def scores(vectors: np.ndarray) -> np.ndarray:  # a side of several clips: their mean
        return np.einsum("ij,ij->i", enroll_sides(vectors, a), enroll_sides(vectors, b))

    baseline = equal_error_rate(labels, scores(test))
    train = mfcc_vectors(list(data.competition.train["path"]), config)
    scaler = StandardScaler().fit(train)
    identities = data.competition.train["label"].to_numpy()
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto")
    lda.fit(scaler.transform(train), identities)
    probe = equal_error_rate(labels, scores(lda.transform(scaler.transform(test))))
    return baseline, probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/demo_verification"))
    parser.add_argument("--run", type=Path, default=Path("runs/bench_verification"))
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--jobs", type=int, default=-1)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    config = Config.preset("cpu_demo_verification").override(
        dict(item.split("=", 1) for item in args.overrides)
    )
    if args.fresh and args.run.exists():
        shutil.rmtree(args.run)
    start = time.perf_counter()
    data = make_demo("verification", args.data, progress=True)
    result = run_verification(
        data,
        run_dir=args.run,
        config=config,
        submissions_dir=args.run / "submissions",
        n_jobs=args.jobs,
        progress=True,
    )
    pipeline_s = time.perf_counter() - start
    start = time.perf_counter()
    baseline, probe = mfcc_baseline(data, config)
    baseline_s = time.perf_counter() - start
    test = held_out_eer(data, args.run)
    print()
    print(f"{'scorer':<36} {'OOF EER':>8} {'test EER':>9}")
    report = result.ensemble
    for arch in report.members:
        print(f"{arch:<36} {report.member_eer[arch]:>8.4f} {test[arch]:>9.4f}")
    for name in report.method_eer:
        print(
            f"{'ensemble ' + name:<36} {report.method_eer[name]:>8.4f} {test['ensemble ' + name]:>9.4f}"
        )
    print(f"{'MFCC mean+std cosine (baseline)':<36} {'':>8} {baseline:>9.4f}")
    print(f"{'MFCC + LDA on train speakers (probe)':<36} {'':>8} {probe:>9.4f}")
    chosen = test[f"ensemble {result.method}"]
    print(
        f"\nsubmission method {result.method}: test EER {chosen:.4f}, baseline {baseline:.4f}, "
        f"ratio {chosen / baseline:.3f} (target <= 0.5: {'met' if chosen <= 0.5 * baseline else 'missed'})"
    )
    print(f"pipeline {pipeline_s:.1f} s, baseline and probe {baseline_s:.1f} s")


if __name__ == "__main__":
    main()
