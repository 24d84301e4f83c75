"""SQLite's connections (store/sqlite.py): one trip to a connection's thread per statement.

Each trip hands the GIL to the connection's thread and wakes the event loop when
it is done; counted here as calls of aiosqlite's ``Connection._execute``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import event, insert, select, text

from fedisocial.store.db import Database, migrate
from fedisocial.store.models import Actor, Object
from fedisocial.store.sqlite import PreparedInsert

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
    await migrate(database)
    yield database
    await database.close()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    counted: Counter[str] = Counter()
    real = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        counted[getattr(fn, "__name__", "call")] += 1
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    yield counted


def _actor(n: int) -> dict[str, Any]:
    uri = f"https://remote.example/users/u{n}"
    return {"uri": uri, "type": "Person", "username": f"u{n}", "domain": "remote.example",
            "local": False, "name": "", "summary": "", "inbox": f"{uri}/inbox",
            "public_key_id": f"{uri}#main-key", "public_key_pem": "PEM"}  # fmt: skip


async def test_a_read_is_one_trip_and_a_write_transaction_three(
    sqlite_db: Database, trips: Counter[str]
) -> None:
    # Given warm connections
    async with sqlite_db.session() as session:
        await session.scalar(select(Actor.id).limit(1))
    async with sqlite_db.transaction() as session:
        await session.scalar(select(Actor.id).limit(1))
    # When a read session runs one query
    trips.clear()
    async with sqlite_db.session() as session:
        await session.scalar(select(Actor).where(Actor.public_key_id == "x"))
    # Then it went to the connection's thread once (it was 9: BEGIN, cursor, execute, fetch,
    # close, and two ROLLBACKs of nothing)
    assert sum(trips.values()) == 1
    # And a write transaction of one statement goes three times: BEGIN IMMEDIATE, it, COMMIT
    trips.clear()
    async with sqlite_db.transaction() as session:
        await session.execute(insert(Actor).values(_actor(1)))
    assert sum(trips.values()) == 3
    assert trips["commit"] == 1


async def test_rows_read_every_way_and_writes_commit_or_roll_back(sqlite_db: Database) -> None:
    # Given 250 actors inserted in one executemany, and one more with RETURNING
    async with sqlite_db.transaction() as session:
        await session.execute(insert(Actor), [_actor(n) for n in range(250)])
        returned = await session.scalar(insert(Actor).values(_actor(250)).returning(Actor.uri))
    assert returned == "https://remote.example/users/u250"
    # When they are read one, some and all at a time
    async with sqlite_db.session() as session:
        result = await session.execute(text("SELECT username FROM actors ORDER BY id"))
        first = result.fetchone()
        some = result.fetchmany(100)
        rest = result.fetchall()
        none_left = result.fetchone()
    # Then every row comes once, in order
    assert first is not None and first[0] == "u0"
    assert [row[0] for row in some] == [f"u{n}" for n in range(1, 101)]
    assert [row[0] for row in rest] == [f"u{n}" for n in range(101, 251)]
    assert none_left is None
    # And a transaction that fails leaves nothing, a savepoint rolls back alone
    with pytest.raises(RuntimeError):
        async with sqlite_db.transaction() as session:
            await session.execute(insert(Actor).values(_actor(300)))
            raise RuntimeError("the handler failed")
    async with sqlite_db.transaction() as session:
        async with session.begin_nested() as savepoint:
            await session.execute(insert(Actor).values(_actor(301)))
            await savepoint.rollback()
        await session.execute(insert(Actor).values(_actor(302)))
    async with sqlite_db.session() as session:
        names = set(await session.scalars(select(Actor.username).where(Actor.id > 251)))
    assert names == {"u302"}


async def test_a_reader_sees_what_another_process_committed(
    sqlite_db: Database, tmp_path: Path
) -> None:
    # Given a second Database on the same file (another process's connections)
    other = Database(sqlite_db.url)
    try:
        async with sqlite_db.session() as session:
            assert await session.scalar(select(Actor.id).limit(1)) is None
        # When the other one commits an actor
        async with other.transaction() as session:
            await session.execute(insert(Actor).values(_actor(1)))
        # Then our pooled reader sees it at its next statement (no read transaction held open)
        async with sqlite_db.session() as session:
            assert await session.scalar(select(Actor.username)) == "u1"
    finally:
        await other.close()


async def test_migrations_run_in_one_write_transaction(tmp_path: Path) -> None:
    # Given a new SQLite file, and the statements each of its engines runs
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'new.db'}")
    ran: dict[str, list[str]] = {"reader": [], "writer": []}
    for name, engine in (("reader", database.engine), ("writer", database.write_engine)):
        event.listen(engine.sync_engine, "before_cursor_execute",
                     lambda _c, _cur, sql, *_a, name=name: ran[name].append(sql))  # fmt: skip
    try:
        # When it is migrated
        await migrate(database)
    finally:
        await database.close()
    # Then every table was made by the writer, inside BEGIN IMMEDIATE (readers run each
    # statement on its own: a failed migration there would leave half a schema)
    assert ran["writer"][0] == "BEGIN IMMEDIATE"
    assert any(sql.lstrip().startswith("CREATE TABLE") for sql in ran["writer"])
    assert not any(sql.lstrip().startswith(("CREATE", "ALTER")) for sql in ran["reader"])


def _note(n: int, **more: Any) -> dict[str, Any]:
    uri = f"https://remote.example/notes/{n}"
    return {"uri": uri, "type": "Note", "actor_uri": "https://remote.example/users/u1",
            "published": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
            "visibility": "followers", "local": False, "in_reply_to": None,
            "data": {"type": "Note", "content": "<p>caf\u00e9 \U0001f600</p>", "tag": [1, None]},
            **more}  # fmt: skip


async def test_a_write_at_once_is_one_trip_with_rows_bound_as_sqlalchemy_binds_them(
    sqlite_db: Database, trips: Counter[str]
) -> None:
    # Given a note inserted through SQLAlchemy, and the same insert prepared for one trip
    moment = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    # (an explicit None: JSON binds it as the JSON null, a column left out is SQL NULL)
    times = {"created_at": moment, "updated_at": moment, "original": None}
    async with sqlite_db.transaction() as session:
        await session.execute(insert(Object).values(_note(1, **times)))
    dialect = sqlite_db.write_engine.dialect
    prepared = PreparedInsert(insert(Object).returning(Object.uri), dialect)
    rows = [prepared.parameters(_note(2, **times)), prepared.parameters(_note(3))]
    # When both notes are written at once (the second leaves its timestamps to the defaults)
    trips.clear()
    written = await sqlite_db.write_at_once(lambda connection: prepared.run(connection, rows))
    # Then it went to the writer's thread once, and gave what RETURNING returned
    assert sum(trips.values()) == 1
    assert written == [("https://remote.example/notes/2",), ("https://remote.example/notes/3",)]
    # And the row holds exactly what SQLAlchemy stores for the same values
    async with sqlite_db.session() as session:
        stored = (await session.execute(text("SELECT * FROM objects ORDER BY id"))).all()
    columns = [c.key for c in Object.__table__.columns if c.key not in ("id", "uri")]
    as_sqlalchemy, at_once, defaulted = ({c: row._mapping[c] for c in columns} for row in stored)
    assert at_once == as_sqlalchemy
    # And the ORM reads it back as it wrote it, defaults filled in
    async with sqlite_db.session() as session:
        note = await session.scalar(select(Object).where(Object.uri.endswith("/3")))
    assert note is not None and note.published == _note(3)["published"]
    assert note.data == _note(3)["data"] and note.created_at is not None
    assert defaulted["created_at"] is not None and defaulted["original"] is None


async def test_a_write_at_once_rolls_back_and_holds_the_writers_turn_throughout(
    sqlite_db: Database,
) -> None:
    # Given another process's writers on the same file
    other = Database(sqlite_db.url)
    try:
        # When a write at once fails half-way
        prepared = PreparedInsert(insert(Actor), sqlite_db.write_engine.dialect)

        def fail(connection: sqlite3.Connection) -> None:
            prepared.run(connection, [prepared.parameters(_actor(2))])
            raise ValueError("the work failed")

        with pytest.raises(ValueError, match="the work failed"):
            await sqlite_db.write_at_once(fail)
        # Then nothing of it is stored
        async with sqlite_db.session() as session:
            assert await session.scalar(select(Actor.id).limit(1)) is None
        # And while one runs, the other process's writer waits for its turn, then goes on
        started, finish = threading.Event(), threading.Event()

        def slow(connection: sqlite3.Connection) -> None:
            started.set()
            finish.wait(10)

        running = asyncio.ensure_future(sqlite_db.write_at_once(slow))
        await asyncio.to_thread(started.wait, 10)

        async def write_other() -> None:
            async with other.transaction() as session:
                await session.execute(insert(Actor).values(_actor(1)))

        waiting = asyncio.ensure_future(write_other())
        await asyncio.sleep(0.3)
        assert not waiting.done()
        finish.set()
        await asyncio.gather(running, waiting)
        async with sqlite_db.session() as session:
            assert await session.scalar(select(Actor.username)) == "u1"
    finally:
        await other.close()
