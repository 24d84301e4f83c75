"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, an app, free ports.

Store tests take the ``db`` fixture and run once per backend. PostgreSQL is the
server named by FEDISOCIAL_TEST_POSTGRES_URL (default: the local ``test``
database); each test gets its own schema, dropped afterwards. Without a server
those runs are skipped with a message and the SQLite runs go on.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import event
from starlette.applications import Starlette

from fedisocial.app import Context, create_app
from fedisocial.config import Settings, load_settings
from fedisocial.store.db import Database, migrate
from tests.c2s_helpers import Person, person

POSTGRES_URL = os.environ.get(
    "FEDISOCIAL_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
FIXTURES = Path(__file__).parent / "fixtures"
_pg_status: dict[str, str | None] = {}


def _asyncpg_dsn() -> str:
    return POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://", 1)


async def postgres_unavailable() -> str | None:
    """None when PostgreSQL answers, else why the PostgreSQL runs are skipped."""
    if "reason" not in _pg_status:
        try:
            connection = await asyncpg.connect(_asyncpg_dsn(), timeout=3)
            await connection.close()
            _pg_status["reason"] = None
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            _pg_status["reason"] = f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}"
    return _pg_status["reason"]


async def _pg_execute(statement: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn())
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A freshly migrated database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
        await migrate(database)
        yield database
        await database.close()
        return
    reason = await postgres_unavailable()
    if reason and os.environ.get("FEDISOCIAL_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (FEDISOCIAL_REQUIRE_POSTGRES=1)")
    if reason:
        pytest.skip(reason)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    await _pg_execute(f'CREATE SCHEMA "{schema}"')
    database = Database(POSTGRES_URL, schema=schema)
    try:
        await migrate(database)
        yield database
    finally:
        await database.close()
        await _pg_execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The test instance's settings; a test may add environment settings with
    ``@pytest.mark.parametrize("settings", [{"FEDISOCIAL_…": "…"}], indirect=True)``."""
    extra: dict[str, str] = getattr(request, "param", {})
    return load_settings(
        tmp_path / "none.toml",
        environ={
            "FEDISOCIAL_BASE_URL": "http://127.0.0.1:8000",
            "FEDISOCIAL_DATA_DIR": str(tmp_path),
            "FEDISOCIAL_ALLOW_PRIVATE_NETWORKS": "true",
            "FEDISOCIAL_INSTANCE_NAME": "Test Social",
            **extra,
        },
    )


@pytest.fixture
async def app(settings: Settings, db: Database) -> AsyncIterator[Starlette]:
    """The instance's ASGI app with its lifespan running, on the ``db`` backend."""
    application = create_app(settings, database=db)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def context(app: Starlette) -> Context:
    """The running app's services (its database, outbox, streams, …)."""
    found: Context = app.state.context
    return found


@pytest.fixture
async def alice(context: Context) -> Person:
    """A local account with a token for reading, writing and following (an app's)."""
    return await person(context, "alice", scope="read write follow")


@pytest.fixture
async def carol(context: Context) -> Person:
    return await person(context, "carol", scope="read write follow")


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
        yield c


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def port() -> Iterator[int]:
    yield free_port()


@contextmanager
def sql_sent(db: Database) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements (and driver parameters) the app sends while the block runs."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    engines = {db.engine.sync_engine, db.write_engine.sync_engine}  # reads, and the writer
    for engine in engines:
        event.listen(engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", capture)
