"""The cache builder's work scheduler: this process plus a warm loky worker pool.

Private to :mod:`emo_utils.features`.  :func:`_run_chunks` runs a list of tasks in this
process at once while worker processes start, handing tasks to each worker only after it
has warmed up (:func:`_worker_ready`), so workers never delay a job.  :func:`_worker_count`
decides how many workers a job is worth: starting one costs about as much CPU as computing
a few hundred images.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from queue import SimpleQueue
from typing import Any

import librosa
import numpy as np
from joblib import effective_n_jobs
from joblib.executor import get_memmapping_executor
from threadpoolctl import ThreadpoolController

from ..config import AudioConfig, FeatureConfig
from .channels import ChannelSpec, _compute_image

#: Seconds an idle worker process stays up for the next build_cache call (joblib's default).
_WORKER_IDLE_SECONDS = 300
#: Clips of work per worker process started by build_cache: starting one costs about as much
#: CPU (importing librosa, scipy, numba) as computing a few hundred images.
_CLIPS_PER_WORKER = 400


def _worker_count(n_jobs: int, *, clips: int, chunks: int) -> int:
    """Worker processes worth starting for ``clips`` clips in ``chunks`` chunks.

    ``n_jobs`` counts this process too (joblib's convention, -1: every core).  One worker
    per :data:`_CLIPS_PER_WORKER` clips of work, and never fewer than two chunks each.
    """
    processes = min(effective_n_jobs(n_jobs), clips // _CLIPS_PER_WORKER + 1, chunks // 2)
    return max(0, processes - 1)


@functools.cache
def _threadpools() -> ThreadpoolController:
    """The BLAS/OpenMP thread pools of this process, inspected once (that takes milliseconds)."""
    return ThreadpoolController()


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Run BLAS single-threaded inside.

    The matrices are small, and extra threads only compete with the other workers (several
    times slower on a busy machine).
    """
    with _threadpools().limit(limits=1, user_api="blas"):
        yield


def _worker_ready(audio: AudioConfig, features: FeatureConfig, specs: Sequence[ChannelSpec]) -> int:
    """First task of a worker: import and warm up everything a chunk needs; return its pid.

    One image of a short tone (not silence, so that every code path runs) loads librosa's
    lazily imported modules, the resampler and the filter banks.
    """
    t = np.arange(audio.sample_rate) / audio.sample_rate
    y = (0.1 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    librosa.resample(y[:64], orig_sr=audio.sample_rate, target_sr=2 * audio.sample_rate)
    with _one_blas_thread():
        _compute_image(y, sample_rate=audio.sample_rate, config=features, specs=specs)
    return os.getpid()


def _run_chunks(
    tasks: list[tuple[Any, ...]],
    *,
    run: Callable[..., int],
    run_in_worker: Callable[..., int],
    warm_up: Callable[[], Any],
    n_workers: int,
    done: Callable[[int], Any],
) -> None:
    """Run every task, here and in worker processes; ``done(clips)`` after each.

    This process runs ``run(*task)`` from the start (from the front of the list).
    ``n_workers`` worker processes (joblib's shared loky pool, kept for the next call)
    start meanwhile; each first runs ``warm_up()``, and a dispatcher thread hands tasks
    (from the back of the list, as ``run_in_worker(*task)``) only to workers that have
    answered, at most two per ready worker at a time.  Workers therefore never delay the
    job: a job that ends before they are up costs what it costs in one process, and a long
    job gets every worker as soon as it is up.  Errors of a worker's task are raised here.

    Parameters
    ----------
    tasks : list of tuple
        Arguments of each task; every task returns the number of clips it did.
    run : callable
        Runs a task in this process.
    run_in_worker : callable
        Runs a task in a worker: a module-level function (sent by reference) doing what
        ``run`` does.
    warm_up : callable
        First call in each worker (imports, caches); picklable, e.g. a
        :func:`functools.partial` of a module-level function.
    n_workers : int
        Worker processes to use besides this one (0: this process alone).
    done : callable
        ``done(clips)`` after each task, in this process.
    """
    queue = collections.deque(tasks)
    if n_workers < 1:
        while queue:
            done(run(*queue.popleft()))
        return
    lock = threading.Lock()
    finished: SimpleQueue[Future] = SimpleQueue()
    failures: list[BaseException] = []
    stop = threading.Event()

    def take(*, front: bool) -> tuple[Any, ...] | None:
        with lock:
            if not queue:
                return None
            return queue.popleft() if front else queue.pop()

    def left() -> bool:
        with lock:
            return bool(queue)

    # joblib's own accessor of the shared loky pool: it also sets up what joblib.Parallel
    # expects of that pool, so later Parallel calls (demo data, duplicates) can reuse it.
    executor = get_memmapping_executor(n_workers, timeout=_WORKER_IDLE_SECONDS)
    starting = {executor.submit(warm_up) for _ in range(n_workers)}

    def dispatch() -> None:
        n_ready, running = 0, set()
        try:
            while not stop.is_set():
                while len(running) < 2 * n_ready and (task := take(front=False)) is not None:
                    running.add(executor.submit(run_in_worker, *task))
                if not running and (not left() or (n_ready == 0 and not starting)):
                    return
                ended, _ = wait(starting | running, timeout=0.1, return_when=FIRST_COMPLETED)
                for future in ended:
                    if future in starting:
                        starting.discard(future)
                        n_ready += not future.cancelled() and future.exception() is None
                    else:
                        running.discard(future)
                        finished.put(future)
        except BaseException as exc:  # e.g. a broken pool: raised by this process
            failures.append(exc)

    def collect() -> None:
        if failures:
            raise failures[0]
        while not finished.empty():
            done(finished.get().result())

    dispatcher = threading.Thread(target=dispatch, name="emo_utils-cache-dispatch", daemon=True)
    dispatcher.start()
    try:
        while (task := take(front=True)) is not None:
            done(run(*task))
            collect()
        dispatcher.join()
        collect()
    finally:
        stop.set()
        dispatcher.join()
        for future in starting:
            future.cancel()
