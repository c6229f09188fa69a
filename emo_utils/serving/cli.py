"""``python -m emo_utils serve worker|submit|stream|results|demo``: the serving commands.

Only :mod:`argparse` at import time; each runner imports the Temporal code it needs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
from collections.abc import Callable
from pathlib import Path

__all__ = ["SERVE_COMMANDS", "add_serve_arguments"]

Runner = Callable[[argparse.Namespace], int]


def _add_connection(p: argparse.ArgumentParser) -> None:
    from .connect import DEFAULT_TASK_QUEUE
    from .store import DEFAULT_STORE_URL

    g = p.add_argument_group("Temporal and the results store")
    g.add_argument("--address", default="localhost:7233", help="Temporal front end host:port")
    g.add_argument("--namespace", default="default", help="Temporal namespace")
    g.add_argument("--task-queue", default=DEFAULT_TASK_QUEUE, help="task queue")
    g.add_argument(
        "--store",
        default=DEFAULT_STORE_URL,
        help="SQLAlchemy URL of the results store (default: %(default)s)",
    )
    g.add_argument("--tls", action="store_true", help="connect with TLS (system root CAs)")
    g.add_argument("--tls-ca", default="", help="PEM file of the server's root CA")
    g.add_argument("--tls-cert", default="", help="PEM client certificate (mTLS)")
    g.add_argument("--tls-key", default="", help="PEM client private key (mTLS)")
    g.add_argument("--tls-server-name", default="", help="server name to verify")
    g.add_argument(
        "--api-key", default="", help="API key (Temporal Cloud); default $TEMPORAL_API_KEY"
    )


def _options(args: argparse.Namespace):
    from .connect import ServeOptions

    return ServeOptions(
        address=args.address,
        namespace=args.namespace,
        task_queue=args.task_queue,
        store_url=args.store,
        tls=args.tls,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_server_name=args.tls_server_name,
        api_key=args.api_key,
    )


def _timeouts(args: argparse.Namespace):
    from .messages import TimeoutSettings

    return TimeoutSettings(heartbeat_s=args.heartbeat, max_attempts=args.attempts)


def _add_timeouts(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--heartbeat",
        type=float,
        default=10.0,
        help="seconds without a heartbeat before a piece moves to another worker",
    )
    p.add_argument(
        "--attempts", type=int, default=5, help="attempts per piece before a stored failure"
    )


def _load_factory(spec: str) -> Callable:
    """``module:callable`` -> the callable (``--classifier``)."""
    from ..errors import ConfigError

    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ConfigError("--classifier", spec, "must look like module:callable")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError("--classifier", spec, f"cannot be loaded: {exc}") from exc


def _worker(p: argparse.ArgumentParser) -> Runner:
    p.add_argument("--run", required=True, type=Path, help="trained run folder to serve")
    _add_connection(p)
    p.add_argument(
        "--concurrency", type=int, default=1, help="pieces this worker classifies at once"
    )
    p.add_argument("--device", default=None, help="torch device (default: GPU if any)")
    p.add_argument(
        "--classifier",
        default=None,
        metavar="MODULE:CALLABLE",
        help="build the classifier with CALLABLE(run_dir) instead of the run's ensemble",
    )

    def run(args: argparse.Namespace) -> int:
        from .worker import run_worker

        classifier = None
        if args.classifier:
            classifier = _load_factory(args.classifier)(args.run)
        asyncio.run(
            run_worker(
                run_dir=args.run,
                options=_options(args),
                classifier=classifier,
                max_concurrent_activities=args.concurrency,
                device=args.device,
            )
        )
        return 0

    return run


def _submit(p: argparse.ArgumentParser) -> Runner:
    p.add_argument("files", nargs="+", type=Path, help="recordings to classify")
    p.add_argument("--piece", type=float, default=5.0, help="seconds per piece")
    p.add_argument("--no-wait", action="store_true", help="start the workflows and return")
    _add_connection(p)
    _add_timeouts(p)

    def run(args: argparse.Namespace) -> int:
        from .client import submit_files
        from .connect import connect

        async def go() -> list:
            client = await connect(_options(args))
            return await submit_files(
                client,
                args.files,
                task_queue=args.task_queue,
                piece_s=args.piece,
                timeouts=_timeouts(args),
                wait=not args.no_wait,
            )

        for item in asyncio.run(go()):
            print(
                item
                if isinstance(item, str)
                else f"{item.recording}: {item.pieces} pieces, {item.failed} failed"
            )
        return 0

    return run


def _stream(p: argparse.ArgumentParser) -> Runner:
    p.add_argument("file", type=Path, help="recording replayed as a live stream")
    p.add_argument("--chunk", type=float, default=5.0, help="seconds per piece")
    p.add_argument("--recording", default=None, help="stream id (default: the file's stem)")
    p.add_argument(
        "--spool",
        type=Path,
        default=Path("serve_spool"),
        help="folder the pieces are written to (the workers must read it)",
    )
    p.add_argument("--fast", action="store_true", help="send pieces at once, not in real time")
    p.add_argument(
        "--pieces-per-run", type=int, default=500, help="pieces per workflow run (continue-as-new)"
    )
    _add_connection(p)
    _add_timeouts(p)

    def run(args: argparse.Namespace) -> int:
        from .client import stream_file
        from .connect import connect

        async def go():
            client = await connect(_options(args))
            return await stream_file(
                client,
                args.file,
                task_queue=args.task_queue,
                spool_dir=args.spool,
                chunk_s=args.chunk,
                recording=args.recording,
                realtime=not args.fast,
                pieces_per_run=args.pieces_per_run,
                timeouts=_timeouts(args),
            )

        summary = asyncio.run(go())
        print(f"stream {summary.recording}: {summary.pieces} pieces, {summary.failed} failed")
        return 0

    return run


def _results(p: argparse.ArgumentParser) -> Runner:
    p.add_argument("--recording", default=None, help="only this recording")
    p.add_argument("--start", type=float, default=None, help="pieces starting at >= seconds")
    p.add_argument("--end", type=float, default=None, help="pieces starting before seconds")
    p.add_argument("--csv", type=Path, default=None, help="also write the results to a CSV")
    p.add_argument(
        "--timeline",
        type=Path,
        default=None,
        help="write the --recording's stored timeline windows (file,start,end,<classes>, as "
        "`detect` writes) to this CSV (recordings sent with `serve submit`)",
    )
    p.add_argument(
        "--store",
        default=None,
        help="SQLAlchemy URL of the results store (default: sqlite:///serve_results.sqlite)",
    )

    def run(args: argparse.Namespace) -> int:
        from ..fileio import write_csv
        from .demo import format_results
        from .store import DEFAULT_STORE_URL, query_results, query_timeline

        if args.timeline is not None and args.recording is None:
            p.error("--timeline needs --recording")
        url = args.store or DEFAULT_STORE_URL
        results = query_results(url, recording=args.recording, start_s=args.start, end_s=args.end)
        print(format_results(results))
        if args.csv is not None:
            write_csv(args.csv, results, index=False)
        if args.timeline is not None:
            timeline = query_timeline(url, recording=args.recording)
            write_csv(args.timeline, timeline, index=False)
            print(f"timeline: {len(timeline)} windows -> {args.timeline}")
        return 0

    return run


def _demo(p: argparse.ArgumentParser) -> Runner:
    p.add_argument(
        "--workdir", type=Path, default=Path("serve_demo"), help="folder of the demo's files"
    )
    p.add_argument(
        "--run", type=Path, default=None, help="trained run (default: train a small one)"
    )
    p.add_argument("--seconds", type=float, default=30.0, help="length of the demo stream")
    p.add_argument(
        "--recording", type=Path, default=None, help="stream this file instead of demo clips"
    )
    p.add_argument("--chunk", type=float, default=5.0, help="seconds per piece")
    p.add_argument("--fast", action="store_true", help="stream as fast as possible")

    def run(args: argparse.Namespace) -> int:
        from .demo import run_demo

        run_demo(
            workdir=args.workdir,
            run_dir=args.run,
            seconds=args.seconds,
            chunk_s=args.chunk,
            realtime=not args.fast,
            recording=args.recording,
            progress=args.verbosity != "quiet",
        )
        return 0

    return run


#: Sub-command -> (help, function adding its arguments and returning its runner).
SERVE_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], Runner]]] = {
    "worker": ("serve a trained run: poll Temporal and classify pieces", _worker),
    "submit": ("classify recording files, one workflow each", _submit),
    "stream": ("replay a recording as a live stream of pieces", _stream),
    "results": ("print the stored results (by recording and time)", _results),
    "demo": ("dev server + worker + a streamed demo recording, results printed", _demo),
}


def add_serve_arguments(p: argparse.ArgumentParser) -> Runner:
    """Add the ``serve`` sub-commands to ``p``; return the runner dispatching to them."""
    sub = p.add_subparsers(dest="serve_command", required=True, metavar="SUBCOMMAND")
    for name, (help_text, add_arguments) in SERVE_COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_serve_run=add_arguments(sp))

    def run(args: argparse.Namespace) -> int:
        return args._serve_run(args)

    return run
