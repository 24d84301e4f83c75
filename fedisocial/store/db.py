"""The async engine for SQLite and PostgreSQL, and Alembic migrations.

SQLite runs in WAL mode with a busy timeout, so several readers and one writer
per moment work from one or more processes; PostgreSQL is the engine for
instances with many web processes and workers.

On SQLite each process has **one writer**: every write transaction
(:meth:`Database.transaction`) runs on one connection, one at a time, in
arrival order (an ``asyncio.Lock``), and begins with ``BEGIN IMMEDIATE``, so
it holds the file's write lock from its first statement and a transaction that
read first can never fail to upgrade to a write. Between processes sharing the
file (web processes, workers, CLI commands), the writers take turns on an
``flock`` of a lock file beside the database before they begin: the kernel
wakes the next one as soon as the lock is free, where SQLite's busy handler
would poll in sleeps of up to 100 ms (which, with three processes writing,
made most of an accept's latency). A process that does not take part (the
``sqlite3`` shell) still waits in the busy handler (``busy_timeout``). Reads use
a pool of their own connections (WAL: they never wait for the writer). A write
transaction must not open another one (it would wait for itself):
:meth:`Database.transaction` refuses. A write that must hold the file's lock
as briefly as it can (the inbox's group commit) runs on the writer's thread
from its turn to its commit, without awaiting between statements
(:meth:`Database.write_at_once`).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import aiosqlite
import orjson
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from fedisocial.errors import ConfigError
from fedisocial.store import sqlite

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

__all__ = [
    "Database",
    "alembic_config",
    "migrate",
    "pending_migrations",
    "require_current_schema",
]

MIGRATIONS = Path(__file__).parent / "migrations"

T = TypeVar("T")


#: PostgreSQL connections a process keeps by default: a worker runs 16 single jobs and two
#: batches at once, a web process about as many requests; three processes (``serve
#: --workers 2`` and a ``fedisocial worker``) then open at most 90 of PostgreSQL's 100
DEFAULT_POOL_SIZE = 20


def _dump_json(value: Any) -> str:
    """A JSON column's text: orjson (a tenth of ``json.dumps``' time on a received post).

    orjson refuses integers beyond 64 bits, which no parsed document holds (``load_json``
    reads them as floats) but a value built in Python may: those take ``json.dumps``.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value)


#: how every engine writes and reads JSON columns (SQLite's text, PostgreSQL's jsonb)
_JSON_CODEC: dict[str, Any] = {"json_serializer": _dump_json, "json_deserializer": orjson.loads}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # the driver's own transaction handling would defer BEGIN and break SAVEPOINT: the writer
    # emits BEGIN IMMEDIATE itself; readers run each statement on its own (one snapshot per
    # statement, as PostgreSQL's READ COMMITTED) and so never hold a read transaction open
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, schema: str | None = None, *, writer: bool = False,
                pool_size: int = DEFAULT_POOL_SIZE) -> AsyncEngine:  # fmt: skip
    """An engine for ``url``; ``schema`` sets the PostgreSQL search_path (tests).

    ``pool_size`` (PostgreSQL): the connections the process keeps, and half as many more
    it may open for a burst: every web process and worker has a pool of its own, and
    together they must stay below the server's ``max_connections`` (100 by default).

    ``writer`` (SQLite): the one-connection engine of the process's writer, whose
    transactions begin with ``BEGIN IMMEDIATE``.
    """
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1]
        if not path or path == ":memory:":
            raise ConfigError("database_url", "an SQLite database must be a file, not :memory:")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Readers: as many pooled connections as requests and jobs run at once, so that busy
        # processes do not open and close connections (each one a thread, a file opened, its
        # schema read); the writer: one.
        pool: dict[str, Any] = {"pool_size": 1 if writer else 32,
                                "max_overflow": 0 if writer else 16}  # fmt: skip
        creator = partial(sqlite.connect, path, busy_seconds=10)
        engine = create_async_engine(url, async_creator=creator, **pool, **_JSON_CODEC)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        if writer:
            event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    connect_args: dict[str, Any] = {}
    if schema:
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size // 2,
                               connect_args=connect_args, **_JSON_CODEC)  # fmt: skip


class _WriterTurn:
    """A writer's turn on an SQLite file: first among this process's writers (in order),
    then among the processes sharing the file (``flock`` of ``path``)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = asyncio.Lock()
        self._fd: int | None = None

    def _lock_file(self) -> int:
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._fd

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        async with self._local:
            fd = self._lock_file()
            await self._lock(fd)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    async def run(self, engine: AsyncEngine, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` in one transaction on the writer's thread, this process's turn first."""
        async with self._local, engine.connect() as connection:
            pooled = await connection.get_raw_connection()
            driver = cast("aiosqlite.Connection", pooled.driver_connection)
            return await sqlite.run_transaction(driver, self._lock_file(), work)

    @staticmethod
    async def _lock(fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        waiting = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX))
        try:
            await asyncio.shield(waiting)
        except asyncio.CancelledError:  # the thread may still get the lock: give it back then

            def give_back(got: asyncio.Future[None]) -> None:
                if not got.cancelled() and got.exception() is None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

            waiting.add_done_callback(give_back)
            raise

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


#: set while the current task is inside a write transaction (to refuse nesting one)
_writing: ContextVar[bool] = ContextVar("fedisocial_writing", default=False)


def _refuse_nesting() -> None:
    if _writing.get():
        raise RuntimeError("a write transaction cannot open another one (it would wait "
                           "for itself): pass its session down instead")  # fmt: skip


class Database:
    """An engine and its session factory, built once by the app and passed in.

    On SQLite, write transactions go through the process's one writer (module docstring).
    """

    def __init__(self, url: str, schema: str | None = None, *,
                 pool_size: int = DEFAULT_POOL_SIZE) -> None:  # fmt: skip
        self.url = url
        self.schema = schema
        self.engine = make_engine(url, schema, pool_size=pool_size)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.write_engine = self.engine
        self._write_sessions = self.sessions
        self._writer: _WriterTurn | None = None
        if self.is_sqlite:
            self.write_engine = make_engine(url, writer=True)
            self._write_sessions = async_sessionmaker(self.write_engine, expire_on_commit=False)
            self._writer = _WriterTurn(Path(url.split(":///", 1)[1] + "-writer.lock"))

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads, or writes that the caller commits."""
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits at the end of the block (rolls back on error).

        On SQLite it waits for the process's writer (module docstring).
        """
        _refuse_nesting()
        token = _writing.set(True)
        try:
            if self._writer is None:
                async with self._write_sessions() as session, session.begin():
                    yield session
                return
            async with self._writer.hold(), self._write_sessions() as session, session.begin():
                yield session
        finally:
            _writing.reset(token)

    async def write_at_once(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """SQLite: ``work`` as one write transaction, run start to end on the writer's thread.

        A transaction of SQLAlchemy statements awaits each one, and a busy web process
        runs other requests between them while the file's write lock is held: for a
        group commit of the inbox, ten times as long as SQLite needed, with every other
        process's writers waiting. Here the lock is held only while SQLite works.
        ``work`` runs on another thread: it must touch nothing but its connection.
        Shielded: once begun, it ends (committed or rolled back) even if the caller is
        cancelled.
        """
        if self._writer is None:
            raise RuntimeError("write_at_once is for SQLite, whose writer has a thread")
        _refuse_nesting()
        return await asyncio.shield(self._writer.run(self.write_engine, work))

    async def close(self) -> None:
        if self.write_engine is not self.engine:
            await self.write_engine.dispose()
        if self._writer is not None:
            self._writer.close()
        await self.engine.dispose()


# Alembic is imported only when migrating: it costs ~7 MB in every process otherwise.


def alembic_config(db: Database) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database"] = db
    return config


def _upgrade(connection: Connection, config: AlembicConfig) -> None:
    from alembic import command

    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(db: Database) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    config = alembic_config(db)
    async with db.transaction() as session:  # on SQLite: the writer's turn, BEGIN IMMEDIATE
        connection = await session.connection()
        await connection.run_sync(_upgrade, config)


def _pending(connection: Connection) -> list[str]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS))
    current = MigrationContext.configure(connection).get_current_heads()
    return [
        rev.revision
        for rev in script.iterate_revisions("heads", current or "base")
        if rev is not None and rev.revision not in current
    ]


_REVISION = re.compile(r'^(down_revision|revision): str(?: \| None)? = "?(\w+)"?$', re.MULTILINE)


def head_revisions() -> set[str]:
    """The newest revisions, read from the migration files without loading Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for name, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            (revisions if name == "revision" else parents).add(value)
    return revisions - parents


async def pending_migrations(db: Database) -> list[str]:
    """Revisions not yet applied (empty when the schema is current)."""
    async with db.engine.connect() as connection:
        try:
            applied = set(await connection.scalars(text("SELECT version_num FROM alembic_version")))
        except DBAPIError:
            applied = set()
            await connection.rollback()
        if applied == head_revisions():
            return []
        return await connection.run_sync(_pending)


async def require_current_schema(db: Database) -> None:
    """Raise ConfigError, saying what to run, unless every migration is applied."""
    pending = await pending_migrations(db)
    if pending:
        raise ConfigError(
            "database_url",
            f"the database schema is not current ({len(pending)} migrations pending); "
            "run `fedisocial migrate` (or `fedisocial init` for a new instance)",
        )
