"""Home feed: the first page for a user following 500 accounts, over 1,000,000 stored notes.

For each backend (SQLite, PostgreSQL) it builds a scratch database with the
real schema (``fedisocial.store.db.migrate``) and fills it as a busy instance
would have: 5,000 remote authors, 1,000,000 Notes by them spread over a year
(stored in arrival order, 1 % deleted), 10 local users who each follow 500 of
the authors, and the ``timeline_entries`` rows fan-out-on-write made for them
(one per followed author's note: 100,000 per user, 1,000,000 in all). The
bulk load goes through the plain drivers (``sqlite3`` executemany, asyncpg
``COPY``); PostgreSQL is ``ANALYZE``d afterwards as autovacuum would, SQLite
is left as the app leaves it (no ``ANALYZE``).

Then it calls ``fedisocial.social.timeline.home_feed(db, owner_id)`` (the first page,
20 items, through the app's own engine and ORM) many times for one user and
reports p50/p95/p99, prints the query plan (SQLite ``EXPLAIN QUERY PLAN``,
PostgreSQL ``EXPLAIN (ANALYZE, BUFFERS)``) and checks that the plan is an
index range scan of ``timeline_entries`` with no sort of the user's entries
(PostgreSQL's Incremental Sort presorted by ``published``, which only orders
entries with equal timestamps by id, is accepted).

Run::

    .venv/bin/python bench/feed.py [--database both] [--notes 1000000] [--calls 2000]

Prints figures and checks them against the targets; never asserts. Loading
takes about a minute per backend; the databases are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from discovery import Processes, progress, run_in_scratch
from federation import backends, mark, percentile, print_table, scratch_database

TARGET_P50_MS = 5.0
TARGET_P95_MS = 10.0
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
CONTEXT = "https://www.w3.org/ns/activitystreams"
WORDS = [
    "fediverse", "image", "model", "prompt", "sunset", "harbor", "lighthouse", "painting",
    "watercolor", "robot", "garden", "city", "night", "rain", "neon", "forest", "mountain",
    "river", "cat", "dog", "bread", "coffee", "morning", "sketch", "pixel",
]  # fmt: skip


@dataclass
class Shape:
    notes: int
    authors: int
    users: int
    follows: int
    seed: int = 42


@dataclass
class Result:
    backend: str
    load_s: float = 0.0
    timings_ms: list[float] = field(default_factory=list)
    raw_ms: list[float] = field(default_factory=list)
    plan: str = ""
    plan_ok: bool = False
    items: int = 0
    entries: int = 0

    def pct(self, p: float, raw: bool = False) -> float:
        return percentile(self.raw_ms if raw else self.timings_ms, p)


# -- the data -------------------------------------------------------------------------


@dataclass
class World:
    """What was generated: ids to query, and the followed author sets."""

    base: str
    authors: list[str]
    users: dict[str, int] = field(default_factory=dict)  # username -> actor id
    following: dict[int, list[int]] = field(default_factory=dict)  # actor id -> author indexes


def _note(uri: str, author: str, published: str, rng: random.Random) -> dict[str, Any]:
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30)))
    return {
        "@context": CONTEXT, "id": uri, "type": "Note", "attributedTo": author,
        "content": f"<p>{text}</p>", "published": published, "url": uri,
        "to": [PUBLIC], "cc": [f"{author}/followers"], "inReplyTo": None, "summary": None,
        "sensitive": False, "tag": [], "attachment": [],
        "replies": {"id": f"{uri}/replies", "type": "Collection", "totalItems": 0},
    }  # fmt: skip


def generate_notes(
    shape: Shape, world: World, start: datetime
) -> Iterator[tuple[int, str, str, datetime, dict[str, Any], bool]]:
    """(id, uri, author, published, data, deleted) in arrival order, ids rising with time."""
    rng = random.Random(shape.seed)
    span = 365 * 86400
    offsets = sorted(rng.random() * span for _ in range(shape.notes))
    for i, offset in enumerate(offsets, start=1):
        author = world.authors[rng.randrange(len(world.authors))]
        published = start + timedelta(seconds=offset)
        uri = f"{author}/statuses/{1_000_000_000 + i}"
        iso = published.strftime("%Y-%m-%dT%H:%M:%SZ")
        yield i, uri, author, published, _note(uri, author, iso, rng), rng.random() < 0.01


def _sqlite_time(moment: datetime) -> str:
    """How SQLAlchemy stores a UTC datetime in SQLite."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


async def _make_users(database_url: str, shape: Shape, base: str) -> World:
    """Migrate, create the local users (real accounts) and return the world to fill."""
    from fedisocial.social.accounts import create_user
    from fedisocial.store.db import Database, migrate
    from fedisocial.urls import Urls

    db = Database(database_url)
    try:
        await migrate(db)
        world = World(
            base, [f"https://remote{n % 50}.example/users/a{n}" for n in range(shape.authors)]
        )
        rng = random.Random(shape.seed + 1)
        for u in range(shape.users):
            name = "reader" if u == 0 else f"user{u}"
            user = await create_user(db, Urls(base), name, "a long enough password")
            world.users[name] = user.actor_id
            world.following[user.actor_id] = rng.sample(range(shape.authors), shape.follows)
        return world
    finally:
        await db.close()


def _actor_rows(world: World, now: datetime) -> Iterator[dict[str, Any]]:
    for uri in world.authors:
        host = uri.split("/")[2]
        yield {
            "uri": uri, "type": "Person", "username": uri.rsplit("/", 1)[1], "domain": host,
            "local": False, "name": "", "summary": "", "inbox": f"{uri}/inbox",
            "shared_inbox": f"https://{host}/inbox", "followers_url": f"{uri}/followers",
            "public_key_id": f"{uri}#main-key", "public_key_pem": "unused", "fetched_at": now,
        }  # fmt: skip


async def _add_authors_and_follows(database_url: str, world: World) -> None:
    from sqlalchemy import insert

    from fedisocial.store.db import Database
    from fedisocial.store.models import Actor, Follow, utcnow

    db = Database(database_url)
    now = utcnow()
    try:
        async with db.transaction() as session:
            await session.execute(insert(Actor), list(_actor_rows(world, now)))
            follows = []
            for name, actor_id in world.users.items():
                for index in world.following[actor_id]:
                    author = world.authors[index]
                    follows.append({
                        "follower_uri": f"{world.base}/users/{name}", "followee_uri": author,
                        "activity_uri": f"{world.base}/users/{name}/follows/{index}",
                        "state": "accepted", "accepted_at": now,
                    })  # fmt: skip
            await session.execute(insert(Follow), follows)
    finally:
        await db.close()


def _owners_by_author(world: World) -> dict[str, list[int]]:
    owners: dict[str, list[int]] = {}
    for actor_id, indexes in world.following.items():
        for index in indexes:
            owners.setdefault(world.authors[index], []).append(actor_id)
    return owners


def load_sqlite(path: str, shape: Shape, world: World) -> int:
    """Bulk-load notes and timeline entries with sqlite3; returns the entries written."""
    owners = _owners_by_author(world)
    now = _sqlite_time(datetime.now(UTC))
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-400000")
    objects_sql = (
        "INSERT INTO objects (id, uri, type, actor_uri, published, visibility, in_reply_to, "
        "object_uri, local, data, pinned_at, deleted_at, created_at, updated_at) "
        "VALUES (?, ?, 'Note', ?, ?, 'public', NULL, NULL, 0, ?, NULL, ?, ?, ?)"
    )
    entries_sql = "INSERT INTO timeline_entries (owner_id, object_id, published) VALUES (?, ?, ?)"
    entries = 0
    start = datetime.now(UTC) - timedelta(days=365)
    notes, timeline = [], []
    for i, uri, author, published, data, deleted in generate_notes(shape, world, start):
        when = _sqlite_time(published)
        notes.append((i, uri, author, when, json.dumps(data), now if deleted else None, now, now))
        for owner in owners.get(author, ()):
            timeline.append((owner, i, when))
        if len(notes) >= 50_000:
            con.executemany(objects_sql, notes)
            con.executemany(entries_sql, timeline)
            con.commit()
            entries += len(timeline)
            notes, timeline = [], []
            progress(f"  {i:,} notes, {entries:,} timeline entries")
    con.executemany(objects_sql, notes)
    con.executemany(entries_sql, timeline)
    con.commit()
    entries += len(timeline)
    con.close()
    return entries


async def load_postgres(database_url: str, shape: Shape, world: World) -> int:
    """Bulk-load notes and timeline entries with asyncpg COPY; returns the entries written."""
    import asyncpg

    owners = _owners_by_author(world)
    now = datetime.now(UTC)
    connection = await asyncpg.connect(
        database_url.replace("postgresql+asyncpg://", "postgresql://")
    )
    columns = ["id", "uri", "type", "actor_uri", "published", "visibility", "local", "data",
               "deleted_at", "created_at", "updated_at"]  # fmt: skip
    entries, next_entry = 0, 1
    start = now - timedelta(days=365)
    try:
        notes: list[tuple[Any, ...]] = []
        timeline: list[tuple[Any, ...]] = []
        for i, uri, author, published, data, deleted in generate_notes(shape, world, start):
            notes.append((i, uri, "Note", author, published, "public", False, json.dumps(data),
                          now if deleted else None, now, now))  # fmt: skip
            for owner in owners.get(author, ()):
                timeline.append((next_entry, owner, i, published))
                next_entry += 1
            if len(notes) >= 50_000 or i == shape.notes:
                await connection.copy_records_to_table("objects", records=notes, columns=columns)
                await connection.copy_records_to_table(
                    "timeline_entries", records=timeline,
                    columns=["id", "owner_id", "object_id", "published"],
                )  # fmt: skip
                entries += len(timeline)
                notes, timeline = [], []
                progress(f"  {i:,} notes, {entries:,} timeline entries")
        for table in ("objects", "timeline_entries"):
            await connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        progress("  ANALYZE")
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    return entries


# -- the measurement ------------------------------------------------------------------


def _compiled(db: Any, owner_id: int) -> tuple[str, dict[str, Any]]:
    """The SQL home_feed runs (first page), with its parameters inlined for EXPLAIN."""
    from fedisocial.social.timeline import home
    from fedisocial.store.models import TimelineEntry

    listing = home(owner_id)
    query = (
        listing.query(*listing.values)
        .order_by(TimelineEntry.published.desc(), TimelineEntry.id.desc())
        .limit(20)
    )
    compiled = query.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True})
    return str(compiled), {}


async def measure(database_url: str, owner_id: int, calls: int, result: Result) -> None:
    from sqlalchemy import func, select, text

    from fedisocial.social.timeline import home_feed
    from fedisocial.store.db import Database
    from fedisocial.store.models import TimelineEntry

    db = Database(database_url)
    try:
        async with db.session() as session:
            result.entries = int(await session.scalar(
                select(func.count()).select_from(TimelineEntry)
                .where(TimelineEntry.owner_id == owner_id)
            ) or 0)  # fmt: skip
        sql, _ = _compiled(db, owner_id)
        async with db.session() as session:
            if db.is_sqlite:
                rows = await session.execute(text(f"EXPLAIN QUERY PLAN {sql}"))
                result.plan = "\n".join(f"  {row[-1]}" for row in rows)
                plan = result.plan.upper()
                result.plan_ok = (
                    "TIMELINE_ENTRIES USING INDEX IX_TIMELINE_OWNER_PUBLISHED" in plan
                    and "TEMP B-TREE" not in plan
                )
            else:
                rows = await session.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"))
                result.plan = "\n".join(f"  {row[0]}" for row in rows)
                plan = result.plan
                # an index scan in feed order: no full Sort of the user's entries (an
                # Incremental Sort presorted by published only orders equal timestamps)
                full_sort = any(
                    line.strip().removeprefix("->").strip().startswith("Sort  (cost=")
                    for line in plan.splitlines()
                )
                result.plan_ok = "ix_timeline_owner_published" in plan and not full_sort
        for _ in range(50):  # warm-up: connection pool, statement caches, page cache
            await home_feed(db, owner_id)
        progress(f"  {calls:,} calls of home_feed(db, {owner_id}) (first page)")
        for _ in range(calls):
            started = time.perf_counter()
            items = (await home_feed(db, owner_id)).items
            result.timings_ms.append(1000 * (time.perf_counter() - started))
        result.items = len(items)
        # the same SQL without the ORM, to tell the database's share from ours
        async with db.engine.connect() as connection:
            statement = text(sql)
            for _ in range(min(calls, 500)):
                started = time.perf_counter()
                (await connection.execute(statement)).fetchall()
                result.raw_ms.append(1000 * (time.perf_counter() - started))
    finally:
        await db.close()


def run_backend(backend: str, args: argparse.Namespace, tmp: Path) -> Result:
    shape = Shape(args.notes, args.authors, args.users, args.follows)
    result = Result(backend)
    with scratch_database(backend, tmp, "feed") as database_url:
        base = "http://127.0.0.1:8000"
        progress(f"[{backend}] schema and {shape.users} local users")
        world = asyncio.run(_make_users(database_url, shape, base))
        asyncio.run(_add_authors_and_follows(database_url, world))
        progress(
            f"[{backend}] loading {shape.notes:,} notes by {shape.authors:,} authors; "
            f"each user follows {shape.follows}"
        )
        started = time.monotonic()
        if backend == "sqlite":
            load_sqlite(database_url.split(":///", 1)[1], shape, world)
        else:
            asyncio.run(load_postgres(database_url, shape, world))
        result.load_s = time.monotonic() - started
        progress(f"  loaded in {result.load_s:.0f}s")
        asyncio.run(measure(database_url, world.users["reader"], args.calls, result))
        progress(
            f"  p50 {result.pct(50):.2f} ms, p95 {result.pct(95):.2f} ms, "
            f"p99 {result.pct(99):.2f} ms; plan {'ok' if result.plan_ok else 'NOT as expected'}"
        )
    return result


def print_report(results: list[Result], args: argparse.Namespace) -> None:
    print()
    print(
        f"Home feed, first page (20 items) of a user following {args.follows} of "
        f"{args.authors:,} authors, {args.notes:,} notes stored, {args.users} local users' "
        f"timelines; {args.calls:,} sequential calls; {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d')}"
    )
    print(f"Targets: p50 < {TARGET_P50_MS:g} ms, p95 < {TARGET_P95_MS:g} ms on each backend")
    print()
    header = ("backend", "user's entries", "p50 ms", "p95 ms", "p99 ms", "max ms",
              "SQL alone p50/p95 ms", "plan", "load")  # fmt: skip
    rows = []
    for r in results:
        rows.append((
            r.backend, f"{r.entries:,}", f"{r.pct(50):.2f} {mark(r.pct(50) < TARGET_P50_MS)}",
            f"{r.pct(95):.2f} {mark(r.pct(95) < TARGET_P95_MS)}", f"{r.pct(99):.2f}",
            f"{max(r.timings_ms, default=float('nan')):.2f}",
            f"{r.pct(50, raw=True):.2f} / {r.pct(95, raw=True):.2f}",
            "index range scan ✓" if r.plan_ok else "unexpected ✗", f"{r.load_s:.0f}s",
        ))  # fmt: skip
    print_table(header, rows)
    for r in results:
        print()
        print(f"{r.backend} plan:")
        print(r.plan)
    print()
    print(
        "home_feed runs through the app's engine (aiosqlite / asyncpg) and ORM, loading the 20 "
        "Object rows\nwith their JSON; 'SQL alone' is the same SELECT on a plain connection "
        "(no ORM objects)."
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Home feed first page over a million stored notes, on SQLite and "
        "PostgreSQL: p50/p95 of fedisocial.social.timeline.home_feed and its query plan. "
        "Prints figures; never asserts."
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both",
                        help="backend(s) to measure (default both)")  # fmt: skip
    parser.add_argument("--notes", type=int, default=1_000_000,
                        help="notes stored (default 1000000)")  # fmt: skip
    parser.add_argument("--authors", type=int, default=5_000,
                        help="remote authors of the notes (default 5000)")  # fmt: skip
    parser.add_argument("--users", type=int, default=10,
                        help="local users with a home timeline (default 10)")  # fmt: skip
    parser.add_argument("--follows", type=int, default=500,
                        help="authors each local user follows (default 500)")  # fmt: skip
    parser.add_argument("--calls", type=int, default=2_000,
                        help="measured calls per backend (default 2000)")  # fmt: skip
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (the SQLite database)")  # fmt: skip
    args = parser.parse_args()

    def body(procs: Processes, tmp: Path) -> int:
        results = [run_backend(backend, args, tmp) for backend in backends(args.database)]
        print_report(results, args)
        return 0

    return run_in_scratch("fedisocial-feed-", args.keep, body)


if __name__ == "__main__":
    sys.exit(main())
