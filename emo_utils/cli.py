"""Command line interface: python -m emo_utils COMMAND --help.

Commands (each one is a thin layer over emo_utils.pipeline, report over emo_utils.reports):

  demo-data   write the built-in synthetic competition folder
  preprocess  compute (or reuse) the feature cache of the train and test splits
  train       cross-validated training of every configured architecture
              (--pseudo-from RUN: a pseudo-label round on RUN's ensemble probabilities)
  predict     predict the test set, compare ensembles on OOF, write the submission
              (--engine onnx: the exported ONNX models on ONNX Runtime, CPU)
  run         preprocess + train + predict
  demo        demo-data + run with the cpu_demo preset, scored on the held-out answers
              (--rounds 2: then a pseudo-label round, both rounds' scores side by side)
  report      plots and README.md of a trained run into RUN/report/ (reads only)
  vote        vote over submission CSVs: mode per row, or per-label majority (multi-label)
  blend       mean / geometric / rank blend of probability files into a submission
  gather      copy runs trained on the same folds (other kernels) into one run folder
  verify      verification task (data.task=verification): train + score the test trials
  embed       one embedding per audio file from a fold model of any trained run
  export      write every fold model of a run as ONNX (normalisation built in)
  serve       serve a trained run with Temporal: worker, submit FILES, stream FILE, results,
              demo (dev server + worker + a streamed recording)
  detect      timelines, events and plots of audio files of any length with a trained run
              (--categorise RUN2: detect, then categorise each event; --stream: as a stream)

Configuration: --config FILE (JSON or YAML) or --preset NAME, then any number of
--set section.field=value overrides, e.g. --set train.epochs=3
--set "train.architectures=[resnest50d, efficientnet_b2]".
Every stage resumes where it stopped when run again with the same arguments.

Output: --quiet (before or after COMMAND) leaves warnings, errors and the final summary;
--verbose adds details (every feature-cache chunk, locks, tracebacks of errors).
Two commands on one feature cache or run folder take turns: the second waits, saying
which process it waits for, or with --no-wait stops at once naming it.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from ._console import set_verbosity
from .config import PRESETS, Config, resolve_config
from .errors import ConfigError, EmoUtilsError

__all__ = ["COMMANDS", "build_parser", "main"]

Runner = Callable[[argparse.Namespace], int]


# --------------------------------------------------------------------------- shared options
def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data", required=True, type=Path, help="competition folder (train.csv, test.csv, audio)"
    )


def _add_run(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument(
        "--run", required=required, type=Path, help="run folder (config, folds, models, reports)"
    )


def _add_config(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration")
    g.add_argument("--config", type=Path, help="config file (.json/.yaml); default: the preset")
    g.add_argument(
        "--preset", default=None, choices=sorted(PRESETS), help="named preset (default: 'default')"
    )
    g.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override one config value (repeatable)",
    )


def _add_runtime(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--jobs", type=int, default=-1, help="parallel workers for preprocessing (-1: all cores)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument(
        "--cache", type=Path, default=None, help="feature cache folder (default: DATA/.emo_cache)"
    )
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="stop at once (naming the holder) instead of waiting when another process "
        "is writing the same feature cache or run folder",
    )


def _add_verbosity(p: argparse.ArgumentParser, *, default: str | None) -> None:
    """``--quiet`` / ``--verbose``; on sub-commands without a default (the main one's holds)."""
    g = p.add_mutually_exclusive_group()
    kwargs = {"default": default} if default is not None else {"default": argparse.SUPPRESS}
    g.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const="quiet",
        help="only warnings, errors and the final summary (no progress)",
        **kwargs,
    )
    g.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="store_const",
        const="verbose",
        help="more detail: every feature-cache chunk, locks, tracebacks of errors",
        **kwargs,
    )


def _progress(args: argparse.Namespace) -> bool:
    """Progress output unless ``--no-progress`` or ``--quiet``."""
    return not getattr(args, "no_progress", False) and args.verbosity != "quiet"


def _add_submissions(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--submissions",
        type=Path,
        default=Path("submissions"),
        help="folder for the submission CSV",
    )


def _add_pseudo(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pseudo-from",
        type=Path,
        default=None,
        metavar="RUN",
        help="pseudo-label round: add test (and data.unlabelled_dir) clips to the training "
        "folds with RUN's ensemble probabilities as soft targets, on RUN's folds "
        "(sets train.pseudo_from to RUN's absolute path; RUN must be trained and predicted)",
    )


def _with_pseudo(cfg: Config, args: argparse.Namespace) -> Config:
    """``cfg`` with ``train.pseudo_from`` from ``--pseudo-from`` (absolute), if given."""
    if getattr(args, "pseudo_from", None) is None:
        return cfg
    return cfg.override({"train.pseudo_from": os.fspath(args.pseudo_from.resolve())})


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(item, item, "overrides look like section.field=value")
        overrides[key.strip()] = value
    return overrides


def _config_from_args(args: argparse.Namespace, *, default_preset: str = "default") -> Config:
    if args.config is not None and args.preset is not None:
        raise ConfigError(
            "--config", str(args.config), "give either --config or --preset, not both"
        )
    return resolve_config(
        args.config, preset=args.preset or default_preset, overrides=_overrides(args)
    )


# --------------------------------------------------------------------------- commands
def _demo_data(p: argparse.ArgumentParser) -> Runner:
    p.add_argument("out", type=Path, help="folder to write (e.g. data/demo)")
    p.add_argument("--n-train", type=int, default=350)
    p.add_argument("--n-test", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--overwrite", action="store_true", help="regenerate even if the folder is complete"
    )

    def run(args: argparse.Namespace) -> int:
        from .datasets.synthetic import make_demo_dataset

        path = make_demo_dataset(
            args.out,
            n_train=args.n_train,
            n_test=args.n_test,
            seed=args.seed,
            overwrite=args.overwrite,
            progress=_progress(args),
        )
        print(f"demo competition folder: {path}")
        return 0

    return run


def _preprocess(p: argparse.ArgumentParser) -> Runner:
    _add_data(p)
    _add_config(p)
    _add_runtime(p)
    p.add_argument(
        "--engine",
        default=None,
        help="what computes the cache: local (this process and --jobs workers) or ray "
        "(Ray Data; the same cache); sets features.engine",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster of --engine ray: auto, ray://HOST:PORT (default: a local Ray "
        "instance); sets features.ray_address",
    )

    def run(args: argparse.Namespace) -> int:
        from .pipeline import preprocess

        engine = {"features.engine": args.engine, "features.ray_address": args.ray_address}
        cfg = _config_from_args(args).override({k: v for k, v in engine.items() if v is not None})
        result = preprocess(
            args.data,
            config=cfg,
            cache_dir=args.cache,
            n_jobs=args.jobs,
            progress=_progress(args),
            wait=not args.no_wait,
        )
        print(result.describe())
        return 0

    return run


def _train(p: argparse.ArgumentParser) -> Runner:
    _add_data(p)
    _add_run(p)
    _add_config(p)
    _add_runtime(p)
    _add_pseudo(p)

    def run(args: argparse.Namespace) -> int:
        from .pipeline import train
        from .train.distributed import is_main

        cfg = _with_pseudo(_config_from_args(args), args)
        result = train(
            args.data,
            run_dir=args.run,
            config=cfg,
            cache_dir=args.cache,
            n_jobs=args.jobs,
            progress=_progress(args),
            wait=not args.no_wait,
        )
        if is_main():  # one summary of a multi-process launch (accelerate launch, torchrun)
            print(result.describe())
        return 0

    return run


def _predict(p: argparse.ArgumentParser) -> Runner:
    _add_data(p)
    _add_run(p)
    _add_runtime(p)
    p.add_argument("--method", default=None, help="ensemble method (default: the run config's)")
    p.add_argument(
        "--engine",
        default="torch",
        help="run the fold models in torch (default), their exported model.onnx on ONNX "
        "Runtime (onnx; CPU; `export --format onnx` first) or its int8 quantisation "
        "(onnx-int8; `export --format onnx-int8` first)",
    )
    _add_submissions(p)

    def run(args: argparse.Namespace) -> int:
        from .pipeline import predict

        loader = None
        if args.engine != "torch":
            from .infer.onnx_export import ENGINES

            if args.engine not in ENGINES:
                raise ConfigError("--engine", args.engine, f"known: {sorted(ENGINES)}")
            loader = ENGINES[args.engine]
        result = predict(
            args.data,
            run_dir=args.run,
            method=args.method,
            loader=loader,
            submissions_dir=args.submissions,
            cache_dir=args.cache,
            n_jobs=args.jobs,
            progress=_progress(args),
            wait=not args.no_wait,
        )
        print(result.describe())
        return 0

    return run


def _run(p: argparse.ArgumentParser) -> Runner:
    _add_data(p)
    _add_run(p)
    _add_config(p)
    _add_runtime(p)
    _add_submissions(p)
    _add_pseudo(p)

    def run(args: argparse.Namespace) -> int:
        from .pipeline import run_pipeline

        cfg = _with_pseudo(_config_from_args(args), args)
        result = run_pipeline(
            args.data,
            run_dir=args.run,
            config=cfg,
            submissions_dir=args.submissions,
            cache_dir=args.cache,
            n_jobs=args.jobs,
            progress=_progress(args),
            wait=not args.no_wait,
        )
        print(result.describe())
        return 0

    return run


#: ``demo --task`` -> (default preset, default data folder, default run folder); the keys
#: are those of :data:`emo_utils.datasets.DEMO_DATASETS` (a test checks).
_DEMOS = {
    "classification": ("cpu_demo", "data/demo", "runs/demo"),
    "multilabel": ("cpu_demo_multilabel", "data/demo_multilabel", "runs/demo_multilabel"),
    "verification": (
        "cpu_demo_verification",
        "data/demo_verification",
        "runs/demo_verification",
    ),
}


def _verification_demo(args: argparse.Namespace, cfg: Config, data: str, run_dir: str) -> int:
    from .pipeline_verification import run_verification_demo

    result = run_verification_demo(
        args.data or Path(data),
        run_dir=args.run or Path(run_dir),
        config=cfg,
        submissions_dir=args.submissions,
        cache_dir=args.cache,
        n_jobs=args.jobs,
        progress=_progress(args),
        n_train=args.n_train,
        n_test=args.n_test,
    )
    print(result.describe())
    return 0


#: ``demo --task`` -> its own runner, for tasks whose stages are not ``pipeline``'s.
_DEMO_RUNNERS: dict[str, Callable[[argparse.Namespace, Config, str, str], int]] = {
    "verification": _verification_demo,
}


def _demo(p: argparse.ArgumentParser) -> Runner:
    p.add_argument(
        "--task",
        choices=sorted(_DEMOS),
        default="classification",
        help="which demo: single-label emotions (default), multi-label tagging or speaker "
        "verification",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="demo data folder, generated once (default: data/demo or data/demo_multilabel)",
    )
    _add_run(p, required=False)
    _add_config(p)
    _add_runtime(p)
    p.add_argument("--n-train", type=int, default=None, help="default: the generator's")
    p.add_argument("--n-test", type=int, default=None, help="default: the generator's")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="1 (default): one run; N > 1: then N - 1 pseudo-label rounds, round r in "
        "RUN_round{r} labelled by round r - 1, every round's OOF and held-out scores printed",
    )
    _add_submissions(p)

    def run(args: argparse.Namespace) -> int:
        from .pipeline_demo import describe_rounds, run_demo_rounds

        preset, data, run_dir = _DEMOS[args.task]
        cfg = _config_from_args(args, default_preset=preset)
        if args.preset not in (None, preset):  # another preset's run goes to its own folder
            run_dir = f"{run_dir}_{args.preset}"
        if cfg.data.task != args.task:
            raise ConfigError(
                "data.task", cfg.data.task, f"differs from --task {args.task}; give one of them"
            )
        if args.task in _DEMO_RUNNERS:
            return _DEMO_RUNNERS[args.task](args, cfg, data, run_dir)
        results = run_demo_rounds(
            args.data or Path(data),
            run_dir=args.run or Path(run_dir),
            config=cfg,
            rounds=args.rounds,
            n_train=args.n_train,
            n_test=args.n_test,
            submissions_dir=args.submissions,
            cache_dir=args.cache,
            n_jobs=args.jobs,
            progress=_progress(args),
            wait=not args.no_wait,
        )
        for number, result in enumerate(results):
            if len(results) > 1:
                print(f"== round {number} ==")
            print(result.describe())
        if len(results) > 1:
            print(describe_rounds(results))
        return 0

    return run


def _report(p: argparse.ArgumentParser) -> Runner:
    _add_run(p)
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="competition folder; with it the embedding map is drawn from its finished "
        "feature cache (never computed; without --data or a cache the map is skipped)",
    )
    p.add_argument(
        "--cache", type=Path, default=None, help="feature cache folder (default: DATA/.emo_cache)"
    )

    def run(args: argparse.Namespace) -> int:
        from .data.competition import load_competition
        from .reports import make_run_report
        from .runs import RunDir

        run_dir = RunDir(args.run)
        competition = None
        if args.data is not None:
            competition = load_competition(args.data, run_dir.read_config().data)
        elif args.cache is not None:
            raise ConfigError("--cache", str(args.cache), "needs --data (the competition folder)")
        written = make_run_report(run_dir, competition=competition, cache_dir=args.cache)
        print(f"report: {len(written)} figures and README.md in {run_dir.report_dir}")
        return 0

    return run


def _parse_weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(w) for w in text.split(",")]
    except ValueError:
        raise ConfigError("--weights", text, "comma-separated numbers, e.g. 1,2,1") from None


def _add_endgame_inputs(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("files", nargs="+", type=Path, help=what)
    _add_data(p)
    p.add_argument("--out", required=True, type=Path, help="the submission CSV to write")
    p.add_argument(
        "--weights", default=None, help="one weight per file, comma-separated (e.g. 1,2,1)"
    )
    p.add_argument(
        "--run",
        type=Path,
        default=None,
        help="take the config (task, CSV names, label separator) from this run folder's "
        "config.json instead of --config/--preset; --set still applies",
    )
    _add_config(p)


def _endgame_config(args: argparse.Namespace, *, default_run: Path | None = None) -> Config:
    """The competition's config: ``--run``'s, else ``--config``/``--preset``, else ``default_run``'s.

    ``default_run`` (the run folder of ``blend --thresholds``) is used only when it holds a
    ``config.json`` and neither ``--config`` nor ``--preset`` is given; ``--set`` overrides
    apply on top of a run's config too.
    """
    from .runs import RunDir

    explicit = args.config is not None or args.preset is not None
    if args.run is not None and explicit:
        raise ConfigError("--run", str(args.run), "give either --run or --config/--preset")
    run = args.run
    if run is None and not explicit and default_run is not None:
        run = default_run if RunDir(default_run).config_file.is_file() else None
    if run is None:
        return _config_from_args(args)
    config = RunDir(run).read_config()
    overrides = _overrides(args)
    return config.override(overrides) if overrides else config


def _vote(p: argparse.ArgumentParser) -> Runner:
    _add_endgame_inputs(p, "submission CSVs, in tie-break order (single-label)")

    def run(args: argparse.Namespace) -> int:
        from .endgame import vote_submissions

        cfg = _endgame_config(args)
        result = vote_submissions(
            args.files,
            data_dir=args.data,
            out=args.out,
            weights=_parse_weights(args.weights),
            data_config=cfg.data,
        )
        print(result.describe())
        return 0

    return run


def _thresholds_run(path: Path | None) -> Path | None:
    """The run folder of ``--thresholds`` (the folder itself, or the file's parent)."""
    if path is None:
        return None
    return path if path.is_dir() else path.parent


def _blend(p: argparse.ArgumentParser) -> Runner:
    _add_endgame_inputs(p, "*.probabilities.csv or RUN/predictions/ARCH.csv files")
    p.add_argument(
        "--method", default="mean", help="a name in emo_utils.endgame.BLENDS: mean, geometric, rank"
    )
    p.add_argument(
        "--thresholds",
        type=Path,
        default=None,
        help="multi-label: per-label decision thresholds from RUN/thresholds.json (default "
        "0.5); without --run/--config/--preset the config is that run's",
    )
    p.add_argument(
        "--thresholds-key",
        default=None,
        help="the thresholds.json entry to apply (a model or method name; default: --method)",
    )

    def run(args: argparse.Namespace) -> int:
        from .endgame import blend_submission

        cfg = _endgame_config(args, default_run=_thresholds_run(args.thresholds))
        result = blend_submission(
            args.files,
            data_dir=args.data,
            out=args.out,
            method=args.method,
            weights=_parse_weights(args.weights),
            data_config=cfg.data,
            thresholds=args.thresholds,
            thresholds_key=args.thresholds_key,
        )
        print(result.describe())
        return 0

    return run


def _gather(p: argparse.ArgumentParser) -> Runner:
    p.add_argument("runs", nargs="+", type=Path, help="run folders trained on the same folds")
    p.add_argument("--into", required=True, type=Path, help="the gathered run folder")

    def run(args: argparse.Namespace) -> int:
        from .endgame import gather_runs

        target = gather_runs(args.runs, into=args.into)
        archs = list(target.read_config().train.architectures)
        print(f"gathered {len(args.runs)} runs into {target.path}: architectures {archs}")
        return 0

    return run


def _verify(p: argparse.ArgumentParser) -> Runner:
    _add_data(p)
    _add_run(p)
    _add_config(p)
    _add_runtime(p)
    _add_submissions(p)
    p.add_argument(
        "--predict-only", action="store_true", help="score the trials of a trained run only"
    )

    def run(args: argparse.Namespace) -> int:
        from .pipeline_verification import predict_verification, run_verification

        common = {
            "run_dir": args.run,
            "submissions_dir": args.submissions,
            "cache_dir": args.cache,
            "n_jobs": args.jobs,
            "progress": _progress(args),
        }
        if args.predict_only:
            result = predict_verification(args.data, **common)
        else:
            cfg = _config_from_args(args, default_preset="cpu_demo_verification")
            result = run_verification(args.data, config=cfg, **common)
        print(result.describe())
        return 0

    return run


def _embed(p: argparse.ArgumentParser) -> Runner:
    _add_run(p)
    p.add_argument("files", nargs="+", type=Path, help="audio files, one embedding each")
    p.add_argument(
        "--out", type=Path, default=None, help="CSV to write (default: RUN/embeddings.csv)"
    )
    p.add_argument("--arch", default=None, help="architecture (default: the run's first)")
    p.add_argument("--fold", type=int, default=0, help="fold model that embeds (default 0)")
    p.add_argument("--cache", type=Path, default=None, help="feature cache (default: beside --out)")
    p.add_argument("--no-progress", action="store_true", help="hide progress output")

    def run(args: argparse.Namespace) -> int:
        from .pipeline_verification import embed_files

        embed_files(
            args.run,
            args.files,
            out=args.out or args.run / "embeddings.csv",
            arch=args.arch,
            fold=args.fold,
            cache_dir=args.cache,
            progress=_progress(args),
        )
        return 0

    return run


def _serve(p: argparse.ArgumentParser) -> Runner:
    from .serving.cli import add_serve_arguments

    return add_serve_arguments(p)


def _export(p: argparse.ArgumentParser) -> Runner:
    _add_run(p)
    p.add_argument(
        "--format",
        default="onnx",
        help="model format: onnx (default) or onnx-int8 (static int8 quantisation of the "
        "onnx files, calibrated on each fold's training rows: needs --data)",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="onnx-int8: the competition folder the run was trained on (its training cache)",
    )
    p.add_argument("--cache", type=Path, default=None, help="its feature cache folder")
    p.add_argument(
        "--force", action="store_true", help="export again folds whose file is up to date"
    )
    p.add_argument("--no-progress", action="store_true", help="no line per exported fold")

    def run(args: argparse.Namespace) -> int:
        from .infer.onnx_export import EXPORT_FORMATS

        if args.format not in EXPORT_FORMATS:
            raise ConfigError("--format", args.format, f"known: {sorted(EXPORT_FORMATS)}")
        written = EXPORT_FORMATS[args.format](
            args.run,
            force=args.force,
            progress=_progress(args),
            data_dir=args.data,
            cache_dir=args.cache,
        )
        print(f"export: {len(written)} {args.format} fold model(s) in {args.run}")
        return 0

    return run


def _detect(p: argparse.ArgumentParser) -> Runner:
    p.add_argument("inputs", nargs="+", type=Path, metavar="FILES_OR_FOLDER", help="audio")
    p.add_argument("--run", required=True, type=Path, help="the detector run folder")
    p.add_argument(
        "--categorise",
        type=Path,
        default=None,
        metavar="RUN2",
        help="a second run that classifies the audio of every detected event",
    )
    p.add_argument(
        "--out", type=Path, default=Path("detections"), help="output folder (default: detections)"
    )
    p.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="reference events CSV (file,onset,offset,label): writes evaluation.csv",
    )
    p.add_argument(
        "--stream",
        action="store_true",
        help="classify each file as a stream of --chunk pieces, one line per window (no files)",
    )
    p.add_argument("--chunk", type=float, default=0.5, help="--stream piece length (seconds)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="timeline.FIELD=VALUE",
        help="override a timeline.* setting of the run's config (repeatable)",
    )
    p.add_argument("--device", default=None, help="torch device (default: the GPU if any)")
    p.add_argument(
        "--engine",
        default="auto",
        help="what runs the CNN fold models: auto (default: the ONNX export where up to "
        "date, on the CPU), torch, onnx, or onnx-int8 (opt-in: `export --format onnx-int8`)",
    )

    def run(args: argparse.Namespace) -> int:
        from .timeline.detect import audio_files, detect_files
        from .timeline.stream import stream_file

        if args.stream:
            from .timeline import RunClassifier

            clf = RunClassifier(args.run, device=args.device, engine=args.engine)
            settings = clf.config.override(_overrides(args)).timeline
            for path in audio_files(args.inputs):
                for w in stream_file(
                    clf, path, chunk=args.chunk, window=settings.window, hop=settings.hop
                ):
                    print(
                        f"{path.name} {w.start:9.2f} {w.end:9.2f}  {w.label:<12} "
                        f"{float(w.probabilities.max()):.3f}  {1000 * w.seconds:6.1f} ms",
                        flush=True,
                    )
            return 0
        result = detect_files(
            args.inputs,
            run_dir=args.run,
            out_dir=args.out,
            categorise=args.categorise,
            reference=args.reference,
            overrides=_overrides(args),
            device=args.device,
            engine=args.engine,
            log=(lambda line: print(line, flush=True)) if args.verbosity != "quiet" else None,
        )
        print(f"detect: {len(result.timelines)} file(s), {len(result.events)} events in {args.out}")
        if result.evaluation is not None:
            overall = result.evaluation.iloc[-1]
            print(
                f"event-based F1 {overall['event_f1']:.4f}, "
                f"segment-based F1 {overall['segment_f1']:.4f} (evaluation.csv)"
            )
        return 0

    return run


#: Name -> (help, function adding the arguments and returning the runner).
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], Runner]]] = {
    "demo-data": ("write the built-in synthetic competition folder", _demo_data),
    "preprocess": ("compute or reuse the feature cache of both splits", _preprocess),
    "train": ("cross-validated training of every configured architecture", _train),
    "predict": ("predict the test set, compare ensembles on OOF, write the submission", _predict),
    "run": ("preprocess, train and predict in one go", _run),
    "demo": ("generate the demo data and run the whole pipeline on it (CPU preset)", _demo),
    "report": ("plots and README.md of a trained run into RUN/report/ (reads only)", _report),
    "vote": (
        "vote over submission CSVs: mode per row, or per-label majority for multi-label",
        _vote,
    ),
    "blend": ("mean / geometric / rank blend of probability files into a submission", _blend),
    "gather": ("copy runs trained on the same folds into one run folder", _gather),
    "verify": (
        "verification task: train the embedding networks and score the test trials",
        _verify,
    ),
    "embed": ("one embedding per audio file from a fold model of a trained run", _embed),
    "export": ("write every fold model of a run as ONNX (normalisation built in)", _export),
    "serve": (
        "serve a trained run durably with Temporal (worker, submit, stream, results)",
        _serve,
    ),
    "detect": ("timelines, events and plots of audio files of any length", _detect),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m emo_utils`` parser: one sub-command per entry of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="python -m emo_utils",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_verbosity(parser, default="normal")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        _add_verbosity(p, default=None)
        p.set_defaults(_run=add_arguments(p))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m emo_utils`` and the ``emo-utils`` script."""
    args = build_parser().parse_args(argv)
    previous = set_verbosity(args.verbosity)
    try:
        return int(args._run(args) or 0)
    except EmoUtilsError as exc:
        if args.verbosity == "verbose":
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume where it stopped", file=sys.stderr)
        return 130
    finally:
        set_verbosity(previous)
