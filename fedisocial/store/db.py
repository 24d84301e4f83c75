"""The async engine for SQLite and PostgreSQL, and Alembic migrations.

SQLite runs in WAL mode with a busy timeout, so several readers and one writer
per moment work from one or more processes; PostgreSQL is the engine for
instances with many web processes and workers.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from fedisocial.errors import ConfigError

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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, schema: str | None = None) -> AsyncEngine:
    """An engine for ``url``; ``schema`` sets the PostgreSQL search_path (tests)."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 10})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict[str, Any] = {}
    if schema:
        connect_args["server_settings"] = {"search_path": schema}
    # as many pooled connections as a worker runs jobs at once (32 by default), so busy
    # workers do not open and close a connection per job
    return create_async_engine(url, pool_size=32, max_overflow=16, connect_args=connect_args)


class Database:
    """An engine and its session factory, built once by the app and passed in."""

    def __init__(self, url: str, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema
        self.engine = make_engine(url, schema)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

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
        """A session whose work commits at the end of the block (rolls back on error)."""
        async with self.sessions() as session, session.begin():
            yield session

    async def close(self) -> None:
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
    async with db.engine.begin() as connection:
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
