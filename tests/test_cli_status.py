"""`fedisocial status`: what the job queue holds, what failed lately, what waits to be pruned."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from fedisocial.jobs import JobQueue
from fedisocial.store.db import Database
from fedisocial.store.models import Job, utcnow
from tests.instances import Instance, make_instance

#: an error text a remote server chose: a window-title change, a colour and a bidi override
HOSTILE_ERROR = "HTTP 410 from \x1b]0;pwned\x07remote\x1b[31m.example\u202e"


async def _fill(database_url: str) -> None:
    """Jobs in every state: due, later, running, failed lately and long ago, done long ago."""
    db = Database(database_url)
    queue = JobQueue(db)
    try:
        now = utcnow()
        for _ in range(3):
            await queue.enqueue("deliver", {}, run_at=now - timedelta(hours=1))
        await queue.enqueue("deliver", {}, run_at=now + timedelta(days=1))
        await queue.enqueue("fetch", {}, run_at=now - timedelta(minutes=1))
        running = await queue.claim("w", 1)  # the oldest due delivery
        for error in ("first", HOSTILE_ERROR):
            await queue.enqueue("generate", {}, run_at=now - timedelta(hours=2))
            (failing,) = await queue.claim("w", 1)
            await queue.fail(failing, error, final=True)
        old = await queue.enqueue("fetch", {})
        async with db.transaction() as session:
            finished = {"status": "done", "finished_at": now - timedelta(days=2)}
            await session.execute(update(Job).where(Job.id == old).values(**finished))
        assert [job.kind for job in running] == ["deliver"]
    finally:
        await db.close()


def _instance_with_jobs(tmp_path: Path) -> Instance:
    instance = make_instance(tmp_path / "site")
    asyncio.run(_fill(f"sqlite+aiosqlite:///{instance.root / 'data' / 'fedisocial.db'}"))
    return instance


def test_status_tells_the_queue_failures_and_prunable_rows(tmp_path: Path) -> None:
    # Given an instance whose queue holds jobs in several states
    instance = _instance_with_jobs(tmp_path)
    # When the admin asks for the status, for a script and for a person
    scripted = instance.cli("status", "--json")
    shown = instance.cli("status")
    # Then the script gets the depth by kind and state, the oldest due job's age, the
    # failures of the last hour with the latest error (no control codes), the prunable rows
    assert scripted.returncode == 0, scripted.stderr
    status = json.loads(scripted.stdout)
    assert status["queue"] == {
        "deliver": {"due": 2, "later": 1, "running": 1},
        "fetch": {"due": 1, "later": 0, "running": 0},
    }
    assert status["oldest_due_seconds"] >= 3600
    assert status["failed_last_hour"] == {
        "generate": {"count": 2, "last_error": "HTTP 410 from remote.example"}
    }
    assert status["prunable"] == 1
    # And the person reads the same figures in a table, without control codes
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[1].split() == ["deliver", "2", "1", "1"], shown.stdout
    assert lines[2].split() == ["fetch", "1", "0", "0"], shown.stdout
    assert any(line.startswith("oldest due job has waited 1h") for line in lines), shown.stdout
    assert "  generate  2  last error: HTTP 410 from remote.example" in lines, shown.stdout
    assert "finished jobs past their retention (pruned soon): 1" in lines, shown.stdout
    assert "\x1b" not in shown.stdout + scripted.stdout and "\u202e" not in shown.stdout


def test_status_of_an_idle_instance(tmp_path: Path) -> None:
    # Given a new instance with no job at all
    instance = make_instance(tmp_path / "site")
    # When the admin asks for the status
    shown = instance.cli("status")
    scripted = instance.cli("status", "--json")
    # Then it says the queue is empty, and the script gets zeros and nulls
    assert shown.returncode == 0, shown.stderr
    assert "no job is queued or running" in shown.stdout
    assert "no job is due" in shown.stdout
    assert json.loads(scripted.stdout) == {
        "inbox": {"due": 0, "bound": 10_000, "refusing": False},
        "queue": {}, "oldest_due_seconds": None, "failed_last_hour": {}, "prunable": 0,
    }  # fmt: skip
    assert "inbox: 0 activities to process (refuses past 10000)" in shown.stdout


def test_status_says_when_the_inbox_refuses_deliveries(tmp_path: Path) -> None:
    # Given an instance whose inbox bound is 2, with 3 received activities waiting
    instance = make_instance(tmp_path / "site")
    config = instance.root / "fedisocial.toml"
    config.write_text(
        config.read_text().replace("inbox_max_backlog = 10000", "inbox_max_backlog = 2")
    )
    asyncio.run(_waiting_activities(instance, 3))
    # When the admin asks for the status
    shown = instance.cli("status")
    scripted = instance.cli("status", "--json")
    # Then both say the inbox is past its bound and refusing new deliveries
    assert shown.returncode == 0, shown.stderr
    assert "inbox: over 2 activities to process: refusing new deliveries" in shown.stdout
    assert json.loads(scripted.stdout)["inbox"] == {"due": 3, "bound": 2, "refusing": True}


async def _waiting_activities(instance: Instance, count: int) -> None:
    db = Database(f"sqlite+aiosqlite:///{instance.root / 'data' / 'fedisocial.db'}")
    try:
        await JobQueue(db).enqueue_many(
            "process_activity", [{"object_id": n} for n in range(count)]
        )
    finally:
        await db.close()
