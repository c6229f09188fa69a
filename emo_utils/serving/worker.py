"""A serving worker: one trained run's ensemble, loaded once, behind the serving workflows."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor

from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from .activities import ServingActivities
from .classifier import PieceClassifier, run_classifier
from .connect import ServeOptions, connect
from .workflows import RecordingWorkflow, StreamWorkflow

__all__ = ["run_worker", "workflow_runner"]


def workflow_runner() -> SandboxedWorkflowRunner:
    """Temporal's workflow sandbox, with ``emo_utils`` passed through.

    The sandbox re-imports a workflow's modules for every run; the package's ``__init__``
    imports numpy (and the activities' side torch), whose extension modules load once per
    process, so the package comes from outside the sandbox.  The workflows themselves only
    use ``temporalio.workflow`` APIs and the standard-library payloads of ``messages``.
    """
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("emo_utils")
    )


async def run_worker(
    *,
    run_dir: str | os.PathLike | None = None,
    options: ServeOptions,
    classifier: PieceClassifier | None = None,
    max_concurrent_activities: int = 1,
    device: str | None = None,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Poll ``options.task_queue`` until ``stop`` is set (or SIGINT/SIGTERM in the main thread).

    Parameters
    ----------
    run_dir : str or os.PathLike, optional
        The trained run to serve (its models are loaded before polling starts).
    options : ServeOptions
        Where Temporal and the results store are.
    classifier : PieceClassifier, optional
        Instead of ``run_dir``.
    max_concurrent_activities : int
        Pieces classified at once by this process (threads sharing the models).
    device : str, optional
        Torch device of the models (default: the GPU when there is one).
    stop : asyncio.Event, optional
        Set it to shut the worker down.
    ready : asyncio.Event, optional
        Set once the worker polls.
    """
    if classifier is None:
        if run_dir is None:
            raise ValueError("give run_dir or classifier")
        classifier = run_classifier(os.fspath(run_dir), device)
    identity = f"{os.getpid()}@{socket.gethostname()}"
    activities = ServingActivities(classifier, store_url=options.store_url, identity=identity)
    client = await connect(options)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
        pass
    with ThreadPoolExecutor(max_workers=max_concurrent_activities) as executor:
        worker = Worker(
            client,
            task_queue=options.task_queue,
            workflows=[StreamWorkflow, RecordingWorkflow],
            workflow_runner=workflow_runner(),
            activities=activities.all,
            activity_executor=executor,
            max_concurrent_activities=max_concurrent_activities,
            identity=identity,
        )
        async with worker:
            print(
                f"worker {identity} serving {getattr(classifier, 'run', classifier)} on "
                f"{options.address} / {options.namespace} / {options.task_queue}",
                flush=True,
            )
            if ready is not None:
                ready.set()
            await stop.wait()
