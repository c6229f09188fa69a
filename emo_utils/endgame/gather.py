"""Gathering runs trained on the same folds into one run folder: :func:`gather_runs`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

from ..config import Config
from ..errors import TrainingError
from ..fileio import atomic_path, write_json
from ..runs import RunDir

#: Config sections that must be equal in every gathered run (they define the inputs).
SHARED_SECTIONS = ("data", "audio", "features")
#: ``train`` fields that must be equal in every gathered run (they define the folds).
SHARED_TRAIN_FIELDS = ("n_folds", "seed", "use_groups")


def _gathered_config(runs: Sequence[RunDir], configs: Sequence[Config]) -> Config:
    """The first input's config with every architecture; refuse runs that differ."""
    first_run, first = runs[0], configs[0].to_dict()
    for run, config in zip(runs[1:], configs[1:], strict=True):
        other = config.to_dict()
        for section in SHARED_SECTIONS:
            if other[section] != first[section]:
                changed = [k for k in first[section] if other[section].get(k) != first[section][k]]
                raise TrainingError(
                    f"cannot gather {run.config_file} with {first_run.config_file}: the "
                    f"{section} settings differ ({changed}); the models saw other inputs"
                )
        changed = [k for k in SHARED_TRAIN_FIELDS if other["train"][k] != first["train"][k]]
        if changed:
            raise TrainingError(
                f"cannot gather {run.config_file} with {first_run.config_file}: train "
                f"settings {changed} differ; OOF would leak: the folds differ"
            )
    archs = [a for config in configs for a in config.train.architectures]
    return configs[0].override({"train.architectures": archs, "ensemble.weights": []})


def gather_runs(
    runs: Sequence[str | os.PathLike | RunDir], *, into: str | os.PathLike | RunDir
) -> RunDir:
    """Copy the architectures of runs trained on the same folds into one run folder.

    The gathered folder holds ``config.json`` (the first input's, listing every
    architecture; ``ensemble.weights`` cleared), ``classes.json``, ``folds.csv``, every
    architecture's fold folders, OOF and test predictions (copied, not linked, each file
    atomically), and ``gathered.json`` (which input each architecture came from).  Running
    it again with the same inputs refreshes the copies.

    Parameters
    ----------
    runs : sequence of str, os.PathLike or RunDir
        Two or more trained run folders.
    into : str, os.PathLike or RunDir
        The gathered run folder (new, or made by an earlier gather of the same runs).

    Returns
    -------
    RunDir

    Raises
    ------
    TrainingError
        Fewer than two runs, an unfinished fold or missing OOF file, an architecture in two
        runs, different ``classes.json``, different data/audio/features settings, or
        ``folds.csv`` files that are not byte-identical ("OOF would leak").
    ConfigError
        ``into`` holds a run made with another config.
    """
    inputs = [RunDir(r) for r in runs]
    target = RunDir(into)
    if len(inputs) < 2:
        raise TrainingError(f"gather needs two or more run folders, got {len(inputs)}")
    if any(r.path.resolve() == target.path.resolve() for r in inputs):
        raise TrainingError(f"{target.path}: the gathered folder must not be one of the inputs")
    configs = [r.read_config() for r in inputs]
    first = inputs[0]
    for run in inputs:
        if not run.folds_file.is_file():
            raise TrainingError(f"{run.folds_file}: not found; train the run first")
    folds = first.folds_file.read_bytes()
    classes = first.read_classes()
    for run in inputs[1:]:
        if run.folds_file.read_bytes() != folds:
            raise TrainingError(
                f"OOF would leak: folds differ: {run.folds_file} is not byte-identical to "
                f"{first.folds_file}; only runs trained on the same folds can be gathered"
            )
        if run.read_classes() != classes:
            raise TrainingError(
                f"{run.classes_file}: classes {list(run.read_classes())} differ from "
                f"{first.classes_file}'s {list(classes)}"
            )
    owner: dict[str, RunDir] = {}
    for run, config in zip(inputs, configs, strict=True):
        for arch in config.train.architectures:
            if arch in owner:
                raise TrainingError(
                    f"architecture {arch!r} is in both {owner[arch].path} and {run.path}; "
                    "gather each architecture from one run only"
                )
            owner[arch] = run
        run.require_trained(config.train.architectures, config.train.n_folds)
        missing = [a for a in config.train.architectures if not run.oof_file(a).is_file()]
        if missing:
            raise TrainingError(f"{run.oof_dir}: no OOF predictions for {missing}")
    config = _gathered_config(inputs, configs)
    target.prepare()
    target.check_config(config)
    copies = [(first.folds_file, target.folds_file), (first.classes_file, target.classes_file)]
    for arch, run in owner.items():
        copies += [(f, target.path / f.relative_to(run.path)) for f in run.architecture_files(arch)]
    for src, dst in copies:
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
    write_json(
        target.gathered_file,
        {arch: os.fspath(run.path.resolve()) for arch, run in owner.items()},
    )
    if not target.config_file.is_file():
        config.save(target.config_file)  # last: the folder is a run once it has its config
    return target
