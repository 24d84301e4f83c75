"""A worker killed with SIGKILL in the middle of a fan-out loses no delivery."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fedisocial.federation.remote import store_actor
from fedisocial.store.db import Database
from fedisocial.store.models import Follow, Job
from tests.instances import FEDISOCIAL, Instance, make_instance
from tests.loopback import serve_in_thread
from tests.mastoclient import BACKENDS
from tests.mastoclient import database_url as fresh_database

FOLLOWERS = 300


class Sink:
    """A slow loopback server that records which inbox got which activity."""

    def __init__(self) -> None:
        self.received: set[tuple[str, str]] = set()
        self.lock = threading.Lock()

        async def inbox(request: Request) -> Response:
            body = await request.json()
            await asyncio.sleep(0.1)
            with self.lock:
                self.received.add((request.url.path, body["id"]))
            return Response(status_code=202)

        self.app = Starlette(routes=[Route("/users/{name}/inbox", inbox, methods=["POST"])])

    def count(self) -> int:
        with self.lock:
            return len(self.received)


def _follower(sink_url: str, n: int) -> dict[str, object]:
    base = f"{sink_url}/users/f{n}"
    return {
        "id": base, "type": "Person", "preferredUsername": f"f{n}", "inbox": f"{base}/inbox",
        "publicKey": {"id": f"{base}#main-key", "owner": base, "publicKeyPem": "unused"},
    }  # fmt: skip


async def _add_followers(database_url: str, sink_url: str, followee: str) -> None:
    db = Database(database_url)
    try:
        for n in range(FOLLOWERS):
            await store_actor(db, _follower(sink_url, n))
        async with db.transaction() as session:
            session.add_all(
                Follow(follower_uri=f"{sink_url}/users/f{n}",
                       followee_uri=followee, activity_uri=f"urn:test:follow:{n}",
                       state="accepted")
                for n in range(FOLLOWERS)
            )  # fmt: skip
    finally:
        await db.close()


async def _unfinished_jobs(database_url: str) -> list[tuple[str, str]]:
    from sqlalchemy import select

    db = Database(database_url)
    try:
        async with db.session() as session:
            rows = await session.execute(
                select(Job.kind, Job.status).where(Job.status.in_(("queued", "running")))
            )
            return [(kind, status) for kind, status in rows]
    finally:
        await db.close()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path / "db") as url:
        yield url


def _start_worker(instance: Instance) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*FEDISOCIAL, "worker", "--concurrency", "8"], env=instance.env, cwd=instance.root,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_sigkill_in_the_middle_of_a_fanout_loses_nothing(tmp_path: Path, database_url: str) -> None:
    # Given an instance whose alice has 300 followers on a slow remote server
    instance = make_instance(tmp_path / "site", database_url=database_url)
    config = instance.root / "fedisocial.toml"
    config.write_text(config.read_text().replace("job_lease_seconds = 300",
                                                 "job_lease_seconds = 2"))  # fmt: skip
    assert instance.cli("user", "create", "alice", "--password-stdin",
                        stdin="a good password\n").returncode == 0  # fmt: skip
    sink = Sink()
    with serve_in_thread(sink.app) as sink_url:
        asyncio.run(_add_followers(database_url, sink_url, f"{instance.base_url}/users/alice"))
        # and a post that must reach all of them
        posted = instance.cli("post", "alice", "Hello, all 300 of you!")
        assert posted.returncode == 0, posted.stderr
        # When the worker is killed with SIGKILL half-way through the fan-out
        worker = _start_worker(instance)
        deadline = time.monotonic() + 60
        while sink.count() < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        at_kill = sink.count()
        assert 0 < at_kill < FOLLOWERS, "the kill must land in the middle of the fan-out"
        # and a new worker starts (the dead one's claims expire after their lease)
        worker = _start_worker(instance)
        try:
            deadline = time.monotonic() + 120
            while sink.count() < FOLLOWERS and time.monotonic() < deadline:
                time.sleep(0.05)
            # jobs the dead worker sent but never marked done run again after their lease
            while asyncio.run(_unfinished_jobs(database_url)) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(15)
        # Then every follower's inbox got the post (at least once), and no job is left
        inboxes = {path for path, _ in sink.received}
        assert inboxes == {f"/users/f{n}/inbox" for n in range(FOLLOWERS)}
        assert len({activity for _, activity in sink.received}) == 1
    assert asyncio.run(_unfinished_jobs(database_url)) == []


ACTIVITIES = 3000
SENDERS = 300
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


async def _queue_activities(database_url: str, base_url: str) -> None:
    """Creates (alice follows their authors) and Follows of alice, stored with their jobs."""
    from sqlalchemy import insert

    from fedisocial.federation.inbox import PROCESS
    from fedisocial.jobs import JobQueue
    from fedisocial.store.models import Actor, Object

    alice = f"{base_url}/users/alice"
    db = Database(database_url)
    try:
        async with db.transaction() as session:
            await session.execute(insert(Actor), [
                {"uri": f"https://r{n % 10}.example/users/s{n}", "type": "Person",
                 "username": f"s{n}", "domain": f"r{n % 10}.example", "local": False,
                 "inbox": f"https://r{n % 10}.example/users/s{n}/inbox",
                 "public_key_id": f"https://r{n % 10}.example/users/s{n}#main-key",
                 "public_key_pem": ""}
                for n in range(SENDERS)
            ])  # fmt: skip
            session.add_all(Follow(follower_uri=alice, followee_uri=f"https://r{n % 10}.example"
                                   f"/users/s{n}", activity_uri=f"urn:test:f{n}",
                                   state="accepted") for n in range(SENDERS))  # fmt: skip
        rows = []
        for n in range(ACTIVITIES):
            actor = f"https://r{n % 10}.example/users/s{n % SENDERS}"
            if n % 10 == 9:  # one in ten: a Follow of alice (answered with one Accept each)
                doc = {"id": f"{actor}/follows/{n}", "type": "Follow", "actor": actor,
                       "object": alice}  # fmt: skip
            else:
                post = {"id": f"{actor}/statuses/{n}", "type": "Note", "attributedTo": actor,
                        "content": f"<p>post {n}</p>", "to": [PUBLIC]}  # fmt: skip
                doc = {"id": f"{post['id']}/activity", "type": "Create", "actor": actor,
                       "object": post}  # fmt: skip
            rows.append({"uri": doc["id"], "type": doc["type"], "actor_uri": actor,
                         "local": False, "data": doc})  # fmt: skip
        async with db.transaction() as session:
            stored = await session.execute(insert(Object).returning(Object.id), rows)
            jobs = [({"object_id": i, "recipient": None}, None) for i in stored.scalars()]
            await JobQueue.add_many(session, PROCESS, jobs)
    finally:
        await db.close()


async def _processing_state(database_url: str, base_url: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from fedisocial.store.models import Object, TimelineEntry

    db = Database(database_url)
    try:
        async with db.session() as session:

            async def count(query: object) -> int:
                return int(await session.scalar(query) or 0)  # type: ignore[arg-type]

            return {
                "done": await count(select(func.count()).select_from(Job)
                                    .where(Job.kind == "process_activity", Job.status == "done")),
                "notes": await count(select(func.count()).select_from(Object)
                                     .where(Object.type == "Note")),
                "feed": await count(select(func.count()).select_from(TimelineEntry)),
                "accepts": await count(select(func.count()).select_from(Object)
                                       .where(Object.type == "Accept")),
            }  # fmt: skip
    finally:
        await db.close()


def test_sigkill_in_the_middle_of_inbox_batches_loses_nothing_and_does_nothing_twice(
    tmp_path: Path, database_url: str
) -> None:
    # Given 3,000 received activities waiting to be processed (Creates and Follows)
    instance = make_instance(tmp_path / "site", database_url=database_url)
    config = instance.root / "fedisocial.toml"
    config.write_text(config.read_text().replace("job_lease_seconds = 300",
                                                 "job_lease_seconds = 2"))  # fmt: skip
    assert instance.cli("user", "create", "alice", "--password-stdin",
                        stdin="a good password\n").returncode == 0  # fmt: skip
    asyncio.run(_queue_activities(database_url, instance.base_url))
    # When the worker is killed with SIGKILL while it processes them in batches
    worker = _start_worker(instance)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if asyncio.run(_processing_state(database_url, instance.base_url))["done"] >= 300:
            break
        time.sleep(0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    at_kill = asyncio.run(_processing_state(database_url, instance.base_url))["done"]
    assert 0 < at_kill < ACTIVITIES, "the kill must land in the middle of the processing"
    # and a new worker takes over (the dead one's claims expire after their lease)
    worker = _start_worker(instance)
    try:
        while time.monotonic() < deadline:
            if (
                asyncio.run(_processing_state(database_url, instance.base_url))["done"]
                == ACTIVITIES
            ):
                break
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(15)
    # Then every activity was processed, and each exactly once (one Accept per Follow)
    follows = ACTIVITIES // 10
    assert asyncio.run(_processing_state(database_url, instance.base_url)) == {
        "done": ACTIVITIES, "notes": ACTIVITIES - follows, "feed": ACTIVITIES - follows,
        "accepts": follows,
    }  # fmt: skip
