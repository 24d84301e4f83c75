"""Running an instance: `serve` (web processes and a job worker process) and `worker`.

``serve`` starts the web processes (uvicorn) and, beside them, one job worker
process of its own, like ``fedisocial worker`` alongside ``serve --no-worker``.
The worker used to run inside each web process: its batches then took the CPU
and the database's one writer from the requests of the same process (on SQLite,
one writer per file at a time), so accepting slowed while processing. A process
of its own gives the kernel two things to schedule, and SQLite one writer
process more, not two competing in every web process.

On PostgreSQL the worker process runs at a lower CPU priority than the web
processes (:data:`WORKER_NICENESS`): on a machine short of cores, accepting then
comes first and processing takes what is left (measured on two cores: 1,460 →
1,860 accepts a second, processing unchanged). Not on SQLite: there the worker
holds the one write lock the web processes wait for, and a lower priority would
keep it held longer.

The worker process is restarted when it dies (after 1 s, doubling up to 30 s), and
stopped after the web processes. It ignores Ctrl-C from the terminal (the serve
process stops it, after the web processes have finished their requests) and stops
by itself when the serve process is gone (SIGKILL), finishing its running jobs:
anything it had not finished is claimed again after its lease.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
from multiprocessing.process import BaseProcess

from fedisocial.cli.output import echo
from fedisocial.config import Settings, load_settings

__all__ = ["WORKER_NICENESS", "JobWorkerProcess", "run_worker"]

#: first wait before starting a dead worker again, and the longest (seconds)
RESTART_DELAYS = (1.0, 30.0)
#: how long the worker may take to finish its running jobs when serve stops (seconds)
STOP_TIMEOUT = 30.0
#: how much lower the CPU priority of serve's worker process is on PostgreSQL (``nice``)
WORKER_NICENESS = 5


def run_worker(settings: Settings, concurrency: int, *, parent: int | None = None) -> None:
    """Run a job worker until SIGINT/SIGTERM (or, with ``parent``, until that process is gone)."""
    import uvloop

    from fedisocial.app import build_context, housekeeping, job_handlers, settle_heap
    from fedisocial.jobs import Worker

    async def run() -> None:
        context = await build_context(settings)
        worker = Worker(context.queue, job_handlers(context), concurrency=concurrency,
                        housekeeping=housekeeping(context))  # fmt: skip
        settle_heap()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM,) if parent else (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop)
        orphaned = asyncio.create_task(_parent_gone(parent)) if parent else None
        if orphaned is not None:
            orphaned.add_done_callback(lambda _: worker.stop())
        else:
            echo(f"worker {worker.name} running; Ctrl-C stops it after the running jobs")
        try:
            await worker.run()
        finally:
            if orphaned is not None:
                orphaned.cancel()
            await context.close()

    uvloop.run(run())  # as the web processes (uvicorn): less CPU per task and thread wake-up


async def _parent_gone(parent: int) -> None:
    while os.getppid() == parent:  # noqa: ASYNC110 (no event tells a process its parent died)
        await asyncio.sleep(1.0)
    echo("the serve process is gone: the job worker stops after its running jobs")


def _worker_main(parent: int, concurrency: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the serve process decides when to stop
    settings = load_settings()
    if not settings.is_sqlite:
        os.nice(WORKER_NICENESS)
    run_worker(settings, concurrency, parent=parent)


class JobWorkerProcess:
    """The job worker process of ``serve``: started, kept running, stopped."""

    def __init__(self, concurrency: int = 32) -> None:
        self.concurrency = concurrency
        # spawned, not forked: the serve process may already hold threads and sockets
        self._context = multiprocessing.get_context("spawn")
        self._process: BaseProcess | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            self._process = self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="worker-watch", daemon=True)
        self._watcher.start()

    def _spawn(self) -> BaseProcess:
        process = self._context.Process(target=_worker_main, name="fedisocial-worker",
                                        args=(os.getpid(), self.concurrency))  # fmt: skip
        process.start()
        return process

    def _watch(self) -> None:
        delay, longest = RESTART_DELAYS
        while True:
            process = self._process
            assert process is not None
            process.join()
            if self._stopping.wait(delay):
                return
            echo(f"the job worker stopped (exit code {process.exitcode}); started again")
            with self._lock:
                if self._stopping.is_set():
                    return
                self._process = self._spawn()
            delay = min(delay * 2, longest)

    def stop(self) -> None:
        """Stop the worker after its running jobs (SIGTERM; SIGKILL after STOP_TIMEOUT)."""
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is None or not process.is_alive():
            return
        process.terminate()
        process.join(STOP_TIMEOUT)
        if process.is_alive():
            echo(f"the job worker did not stop within {STOP_TIMEOUT:.0f} s: killed")
            process.kill()
            process.join()
