"""Run ``python -m emo_utils`` in a subprocess, as a user does, for the CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 900, check: bool = True
) -> subprocess.CompletedProcess:
    """``python -m emo_utils ARGS`` with captured text output (Python warnings off).

    ``check``: fail the test with the exit code and the output's tails unless it exits 0.
    """
    proc = subprocess.run(
        [sys.executable, "-m", "emo_utils", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def sets(*overrides: str) -> list[str]:
    """``["--set", o1, "--set", o2, ...]``."""
    return [arg for override in overrides for arg in ("--set", override)]


def small_demo(
    root: Path, *overrides: str, n_train: int = 40, n_test: int = 10, extra: Iterable[str] = ()
) -> list[str]:
    """``demo`` arguments for a small run in ``root`` (data/, run/, subs/; one job).

    Two folds of one epoch on 32-mel images, then ``overrides`` (``section.field=value``).
    """
    return [
        "demo",
        "--data",
        str(root / "data"),
        "--run",
        str(root / "run"),
        "--submissions",
        str(root / "subs"),
        "--n-train",
        str(n_train),
        "--n-test",
        str(n_test),
        "--jobs",
        "1",
        *extra,
        *sets("train.epochs=1", "train.n_folds=2", "features.n_mels=32", *overrides),
    ]
