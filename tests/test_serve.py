"""`fedisocial serve` runs a job worker process of its own beside the web processes.

It is restarted when it dies, stopped with serve, and stops by itself when serve
is killed (no orphan left running).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedisocial.app import SERVING_GC_THRESHOLDS
from fedisocial.cli.serving import WORKER_NICENESS
from tests.instances import Instance, eventually, make_instance
from tests.mastoclient import database_url


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            found.append(int(entry))
    return found


def _is_job_worker(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    # multiprocessing's spawn children run "-c from multiprocessing.spawn import spawn_main"
    return b"spawn_main" in command and b"resource_tracker" not in command


def _job_workers(pid: int) -> list[int]:
    return [child for child in _children(pid) if _is_job_worker(child)]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Instance]:
    running = make_instance(tmp_path / "one")
    created = running.cli("user", "create", "alice", "--password-stdin", stdin="a password!\n")
    assert created.returncode == 0, created.stderr
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _serve_pid(instance: Instance) -> int:
    assert instance.process is not None
    return instance.process.pid


def test_serve_runs_one_job_worker_process_and_restarts_it(instance: Instance) -> None:
    # Given a running instance: one job worker process beside the web process
    serve = _serve_pid(instance)
    assert eventually(lambda: len(_job_workers(serve)) == 1)
    [first] = _job_workers(serve)
    # When the worker dies
    os.kill(first, signal.SIGKILL)
    # Then serve starts one other in its place, and says so
    assert eventually(lambda: [w for w in _job_workers(serve) if w != first] != [])
    assert len(_job_workers(serve)) == 1
    log = (instance.root / "serve.log").read_text()
    assert "the job worker stopped (exit code -9); started again" in log


def test_the_worker_stops_with_serve_and_when_serve_is_killed(instance: Instance) -> None:
    # Given a running instance and its job worker
    serve = _serve_pid(instance)
    assert eventually(lambda: len(_job_workers(serve)) == 1)
    [worker] = _job_workers(serve)
    # When serve is killed outright (SIGKILL: nothing of it runs to stop the worker)
    assert instance.process is not None
    instance.process.kill()
    instance.process.wait()
    # Then the worker notices and stops by itself: no orphan keeps running
    assert eventually(lambda: not _alive(worker)), "the job worker outlived serve"


def test_stopping_serve_stops_its_worker(instance: Instance) -> None:
    # Given a running instance and its job worker
    serve = _serve_pid(instance)
    assert eventually(lambda: len(_job_workers(serve)) == 1)
    [worker] = _job_workers(serve)
    # When serve is stopped as a terminal's Ctrl-C does (SIGINT)
    instance.stop()
    # Then its worker is gone too, and serve exited cleanly
    assert eventually(lambda: not _alive(worker))
    assert instance.process is not None and instance.process.returncode in (0, -2, 130)


_HEAP_AFTER_STARTUP = """
import gc, json, sys
from starlette.testclient import TestClient
from fedisocial.app import app_from_environment, create_app
from fedisocial.config import load_settings
app = app_from_environment() if sys.argv[1] == "serving" else create_app(load_settings())
with TestClient(app):
    print(json.dumps({"thresholds": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


@pytest.mark.parametrize("kind", ["serving", "built"])
def test_a_web_process_settles_its_heap_after_startup(tmp_path: Path, kind: str) -> None:
    # Given an instance, and an app started as a web process of serve starts it, or not
    instance = make_instance(tmp_path / "one")
    done = subprocess.run([sys.executable, "-c", _HEAP_AFTER_STARTUP, kind], env=instance.env,
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    heap = json.loads(done.stdout)
    if kind == "serving":
        # Then what startup built is out of the collector's sight, which runs less often
        assert heap["frozen"] > 10_000
        assert tuple(heap["thresholds"]) == SERVING_GC_THRESHOLDS
    else:
        # An app built in a process that may build others (the tests) leaves the collector be
        assert heap["frozen"] == 0
        assert tuple(heap["thresholds"]) == (700, 10, 10)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_on_postgresql_the_worker_yields_the_cpu_to_the_web_processes(
    tmp_path: Path, backend: str
) -> None:
    # Given a running instance on each backend
    with database_url(backend, tmp_path / "db") as url:
        running = make_instance(tmp_path / "one", url)
        running.start()
        try:
            serve = _serve_pid(running)
            assert eventually(lambda: len(_job_workers(serve)) == 1)
            [worker] = _job_workers(serve)
            others = [child for child in _children(serve) if child != worker]  # web processes
            # Then on PostgreSQL its job worker runs at a lower CPU priority than the web
            # processes; on SQLite, whose write lock it holds while web processes wait, not
            expected = WORKER_NICENESS if backend == "postgresql" else 0
            assert eventually(lambda: _niceness(worker) == _niceness(serve) + expected)
            assert others and all(_niceness(pid) == _niceness(serve) for pid in others)
        finally:
            running.stop()
