"""Store contract: every test here runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, select, text, update

from fedisocial.errors import BadRequest, NotFound
from fedisocial.jobs import ClaimedJob, JobKind, JobQueue, PermanentFailure, Worker
from fedisocial.social.accounts import (
    create_user,
    ensure_instance_actor,
    find_local_actor,
    list_users,
    usage,
    verify_password,
)
from fedisocial.store.db import Database, migrate, pending_migrations
from fedisocial.store.models import Base, Job, Object, utcnow
from fedisocial.urls import Urls
from tests.conftest import query_plan, run_worker_until

URLS = Urls("https://social.example")


def _diff(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def test_migrations_match_the_models(db: Database) -> None:
    # Given a database migrated from the very first revision
    assert await pending_migrations(db) == []
    # When Alembic compares it with the models
    async with db.engine.connect() as connection:
        differences = await connection.run_sync(_diff)
    # Then nothing is missing or different, and migrating again is harmless
    assert differences == []
    await migrate(db)


async def test_json_columns_keep_what_orjson_cannot_write(db: Database) -> None:
    """JSON columns are written with orjson; integers beyond 64 bits and non-string keys
    (a value built in Python) still round-trip."""
    doc = {"id": "https://remote.example/n/1", "big": 2**70, "text": "héllo ✓", 3: "three"}
    async with db.transaction() as session:
        session.add(Object(uri=doc["id"], type="Note", data=doc))
    async with db.session() as session:
        stored = await session.scalar(select(Object.data).where(Object.uri == doc["id"]))
    assert stored == {"id": doc["id"], "big": 2**70, "text": "héllo ✓", "3": "three"}


async def _index_definitions(db: Database, table: str) -> dict[str, str]:
    if db.engine.dialect.name == "sqlite":
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"
    else:
        query = ("SELECT indexname, indexdef FROM pg_indexes "
                 "WHERE tablename = :t AND schemaname = current_schema()")  # fmt: skip
    async with db.session() as session:
        rows = await session.execute(text(query), {"t": table})
    return {name: " ".join(str(sql).split()) for name, sql in rows}


async def test_the_value_lookups_index_only_the_rows_that_have_a_value(db: Database) -> None:
    """Each index is written with every row: a received post's activity answers nothing and
    its post has no object, a queued job has not finished, the processing of a received
    activity is cancelled by no reference; none of them is in those indexes, and no index
    of actor_uri alone repeats the lead of ix_objects_actor_published."""
    objects, jobs = await _index_definitions(db, "objects"), await _index_definitions(db, "jobs")
    assert "ix_objects_actor_uri" not in objects
    assert "(actor_uri, published)" in objects["ix_objects_actor_published"]
    for definition, column in ((objects["ix_objects_in_reply_to"], "in_reply_to"),
                               (objects["ix_objects_object_uri"], "object_uri"),
                               (jobs["ix_jobs_finished"], "finished_at"),
                               (jobs["ix_jobs_ref"], "ref")):  # fmt: skip
        # PostgreSQL writes the condition in parentheses, SQLite as given
        assert f"WHERE {column} IS NOT NULL" in definition.replace("(", "").replace(")", ""), (
            definition)  # fmt: skip


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_the_partial_indexes_serve_the_lookups_by_value(db: Database) -> None:
    """SQLite's plans (they do not depend on statistics; PostgreSQL's do, and pick a
    sequential scan for tables this small): the queries by value use the partial indexes."""
    lookups = {
        "SELECT id FROM objects WHERE in_reply_to = ?": "ix_objects_in_reply_to",
        "SELECT in_reply_to, count(*) FROM objects WHERE in_reply_to IN (?, ?) "
        "GROUP BY in_reply_to": "ix_objects_in_reply_to",
        "SELECT id FROM objects WHERE type = 'Announce' AND object_uri IN (?, ?)":
            "ix_objects_object_uri",
        "SELECT id FROM objects WHERE actor_uri = ?": "ix_objects_actor_published",
        "SELECT id FROM jobs WHERE finished_at < ? AND status = 'done'": "ix_jobs_finished",
        "UPDATE jobs SET status = 'cancelled' WHERE ref = ? AND status = ?": "ix_jobs_ref",
    }  # fmt: skip
    for statement, index in lookups.items():
        plan = await query_plan(db, statement, ("x",) * statement.count("?"))
        assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, (
            statement, plan)  # fmt: skip


async def test_create_user_makes_an_actor_with_keys(db: Database) -> None:
    user = await create_user(db, URLS, "alice", "correct horse", is_admin=True)
    actor = await find_local_actor(db, URLS, "ALICE")
    assert actor.id == user.actor_id
    assert actor.uri == "https://social.example/users/alice"
    assert actor.public_key_pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert actor.private_key_pem and "PRIVATE KEY" in actor.private_key_pem
    assert actor.ed25519_public_multibase and actor.ed25519_public_multibase.startswith("z6Mk")
    assert verify_password(user.password_hash, "correct horse")
    assert not verify_password(user.password_hash, "wrong horse")
    assert user.password_hash.startswith("$argon2id$")


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [
        ("bad name", "long enough", "not valid"),
        ("admin", "long enough", "reserved"),
        ("bob", "short", "at least 8"),
    ],
)
async def test_create_user_refuses_bad_input(
    db: Database, name: str, password: str, message: str
) -> None:
    with pytest.raises(BadRequest, match=message):
        await create_user(db, URLS, name, password)
    assert await list_users(db) == []


async def test_usernames_are_unique_regardless_of_case(db: Database) -> None:
    await create_user(db, URLS, "Carol", "long enough")
    with pytest.raises(BadRequest, match="already taken"):
        await create_user(db, URLS, "carol", "long enough")
    assert len(await list_users(db)) == 1


async def test_instance_actor_is_made_once(db: Database) -> None:
    first, second = await asyncio.gather(
        ensure_instance_actor(db, URLS), ensure_instance_actor(db, URLS)
    )
    assert first.uri == second.uri == "https://social.example/actor"
    assert first.public_key_pem == second.public_key_pem
    assert first.type == "Application"


async def test_unknown_user_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound, match="no user called 'nobody'"):
        await find_local_actor(db, URLS, "nobody")


async def test_usage_counts_users(db: Database) -> None:
    await create_user(db, URLS, "dave", "long enough")
    await create_user(db, URLS, "erin", "long enough")
    counts = await usage(db)
    assert (counts.users_total, counts.active_month, counts.local_posts) == (2, 2, 0)


# -- the job queue ------------------------------------------------------------------


async def test_jobs_run_once_and_finish(db: Database) -> None:
    queue = JobQueue(db)
    seen: list[int] = []

    async def handler(payload: dict[str, int]) -> None:
        seen.append(payload["n"])

    await queue.enqueue_many("count", [{"n": n} for n in range(25)])
    await Worker(queue, {"count": handler}, concurrency=8).run_until_idle()
    assert sorted(seen) == list(range(25))
    assert await queue.counts() == {"done": 25}


async def test_concurrent_claims_never_share_a_job(db: Database) -> None:
    # Given 60 queued jobs
    queue = JobQueue(db)
    await queue.enqueue_many("noop", [{"n": n} for n in range(60)])
    # When four workers claim at the same moment
    batches = await asyncio.gather(*(queue.claim(f"w{i}", 20) for i in range(4)))
    # Then every job is claimed exactly once
    ids = [job.id for batch in batches for job in batch]
    assert len(ids) == len(set(ids)) == 60


async def test_failed_jobs_retry_later_then_give_up(db: Database) -> None:
    queue = JobQueue(db)

    async def flaky(payload: dict[str, str]) -> None:
        raise ConnectionError("remote down")

    async def hopeless(payload: dict[str, str]) -> None:
        raise PermanentFailure("gone for good")

    retry_id = await queue.enqueue("flaky", {})
    final_id = await queue.enqueue("hopeless", {})
    await Worker(queue, {"flaky": flaky, "hopeless": hopeless}).run_until_idle()
    async with db.session() as session:
        retry = await session.get(Job, retry_id)
        final = await session.get(Job, final_id)
    assert retry is not None and final is not None
    assert retry.status == "queued" and retry.run_at > utcnow() + timedelta(seconds=20)
    assert "remote down" in (retry.last_error or "")
    assert final.status == "failed" and final.last_error == "gone for good"


async def test_a_dead_workers_job_is_claimed_again_after_its_lease(db: Database) -> None:
    # Given a job claimed by a worker that then died
    queue = JobQueue(db, lease=timedelta(minutes=5))
    job_id = await queue.enqueue("deliver", {"to": "x"})
    assert [j.id for j in await queue.claim("dead-worker")] == [job_id]
    assert await queue.claim("other") == []
    # When its lease runs out
    async with db.transaction() as session:
        await session.execute(
            update(Job).where(Job.id == job_id).values(lease_until=utcnow() - timedelta(seconds=1))
        )
    # Then another worker picks it up, as a second attempt
    (again,) = await queue.claim("other")
    assert again.id == job_id and again.attempts == 2


async def test_unknown_job_kind_fails_with_a_message(db: Database) -> None:
    queue = JobQueue(db)
    job_id = await queue.enqueue("mystery", {})
    await Worker(queue, {}).run_until_idle()
    async with db.session() as session:
        job = await session.get(Job, job_id)
    assert job is not None and job.status == "failed"
    assert job.last_error == "no handler for job kind 'mystery'"


async def test_a_running_worker_fails_jobs_of_unknown_kinds_and_runs_the_others(
    db: Database,
) -> None:
    # Given a job of a kind nobody handles among jobs of a single kind and of a batch kind
    queue = JobQueue(db)
    ran: list[str] = []

    async def one(payload: dict[str, str]) -> None:
        ran.append(payload["name"])

    async def batch(jobs: list[ClaimedJob]) -> dict[int, Exception]:
        ran.extend(job.payload["name"] for job in jobs)
        return {}

    mystery = await queue.enqueue("mystery", {"name": "mystery"})
    await queue.enqueue("deliver", {"name": "delivery"})
    await queue.enqueue("process", {"name": "activity"})
    kinds = {"deliver": JobKind(one), "process": JobKind(one, run_batch=batch)}

    # When a worker runs until the queue holds no active job
    async def idle() -> bool:
        counts = await queue.counts()
        return not counts.get("queued") and not counts.get("running")

    await run_worker_until(Worker(queue, kinds, poll_interval=0.01), idle)
    # Then the known kinds ran, and the unknown one failed for good with its reason
    assert sorted(ran) == ["activity", "delivery"]
    async with db.session() as session:
        job = await session.get(Job, mystery)
    assert job is not None and job.status == "failed"
    assert job.last_error == "no handler for job kind 'mystery'"


async def test_a_job_longer_than_its_lease_is_not_run_twice(db: Database) -> None:
    # Given a queue whose leases last 1.2 s and a job that works for three leases
    # (renewed every 0.4 s: a beat would have to be 0.8 s late for the other worker to win)
    queue = JobQueue(db, lease=timedelta(seconds=1.2))
    runs: list[str] = []

    async def slow(payload: dict[str, str]) -> None:
        runs.append(payload["name"])
        await asyncio.sleep(3.6)

    job_id = await queue.enqueue("slow", {"name": "report"})
    first = Worker(queue, {"slow": slow}, poll_interval=0.05)
    second = Worker(queue, {"slow": slow}, poll_interval=0.05)
    # When one worker runs it while another keeps looking for work
    looking = asyncio.create_task(second.run())
    await first.run_until_idle()
    second.stop()
    await looking
    # Then the job ran once (its lease was renewed meanwhile), and is done
    assert runs == ["report"]
    async with db.session() as session:
        job = await session.get(Job, job_id)
    assert job is not None and job.status == "done" and job.attempts == 1
