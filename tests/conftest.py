"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, an app, free ports.

Store tests take the ``db`` fixture and run once per backend. PostgreSQL is the
server named by FEDISOCIAL_TEST_POSTGRES_URL (default: the local ``test``
database); each test gets its own schema, dropped afterwards. Without a server
those runs are skipped with a message and the SQLite runs go on.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import event
from starlette.applications import Starlette

from fedisocial.app import Context, create_app
from fedisocial.config import Settings, load_settings
from fedisocial.jobs import Worker
from fedisocial.social import accounts
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


# Migrating takes a quarter of a second on SQLite and over half a second on PostgreSQL, and
# about 1,300 tests take a database: each test process migrates one database per backend
# and copies it (a file copy; PostgreSQL: the migrated schema's pg_dump, run again).
_migrated: dict[str, Any] = {}
_SCHEMA = "__migrated_schema__"


async def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "sqlite" not in _migrated:
        path = tmp_path_factory.mktemp("migrated") / "template.db"
        template = Database(f"sqlite+aiosqlite:///{path}")
        await migrate(template)
        await template.close()  # the last connection to close checkpoints the WAL into the file
        _migrated["sqlite"] = path
    template_path: Path = _migrated["sqlite"]
    return template_path


async def _postgres_schema_script() -> str | None:
    """The migrated schema as SQL (pg_dump's) with :data:`_SCHEMA` for its name; None when
    there is no pg_dump (each test then migrates its own schema)."""
    if "postgresql" not in _migrated:
        _migrated["postgresql"] = None
        if shutil.which("pg_dump"):
            name = f"migrated_{uuid.uuid4().hex[:12]}"
            await _pg_execute(f'CREATE SCHEMA "{name}"')
            try:
                template = Database(POSTGRES_URL, schema=name)
                await migrate(template)
                await template.close()
                dump = await asyncio.create_subprocess_exec(
                    "pg_dump", "--inserts", "--no-owner", "--schema", name, _asyncpg_dsn(),
                    stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                out, _ = await dump.communicate()
                assert dump.returncode == 0, f"pg_dump of the migrated schema: {dump.returncode}"
            finally:
                await _pg_execute(f'DROP SCHEMA "{name}" CASCADE')
            # psql's meta-commands (pg_dump's \restrict lines) are not SQL
            lines = [line for line in out.decode().splitlines() if not line.startswith("\\")]
            _migrated["postgresql"] = "\n".join(lines).replace(name, _SCHEMA)
    script: str | None = _migrated["postgresql"]
    return script


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    """argon2id with its lightest cost in the test process: a hash or a check takes about
    160 ms of CPU at the library's defaults, and most tests make or sign in accounts. Each
    hash names its cost, so the code under test is the same (servers started as
    subprocesses hash at the defaults)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8,
                                                          parallelism=1))  # fmt: skip
        yield


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db(
    request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Database]:
    """A freshly migrated database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copyfile(await _sqlite_template(tmp_path_factory), path)
        database = Database(f"sqlite+aiosqlite:///{path}")
        yield database
        await database.close()
        return
    reason = await postgres_unavailable()
    if reason and os.environ.get("FEDISOCIAL_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (FEDISOCIAL_REQUIRE_POSTGRES=1)")
    if reason:
        pytest.skip(reason)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    script = await _postgres_schema_script()
    database = Database(POSTGRES_URL, schema=schema)
    try:
        if script is None:
            await _pg_execute(f'CREATE SCHEMA "{schema}"')
            await migrate(database)
        else:
            await _pg_execute(script.replace(_SCHEMA, schema))
        yield database
    finally:
        await database.close()
        await _pg_execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


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


async def query_plan(db: Database, statement: str, parameters: Any) -> str:
    """The plan the database picks for ``statement`` (on SQLite: EXPLAIN QUERY PLAN)."""
    explain = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
    async with db.engine.connect() as connection:
        rows = await connection.exec_driver_sql(explain + statement, parameters)
        return "\n".join(" ".join(str(part) for part in row) for row in rows)


async def analyze(db: Database) -> None:
    """Gather the tables' statistics, as PostgreSQL's autovacuum does."""
    async with db.engine.begin() as connection:
        await connection.exec_driver_sql("ANALYZE")


async def run_worker_until(
    worker: Worker, done: Callable[[], Awaitable[bool]], *, seconds: float = 10.0
) -> None:
    """Run ``worker``'s loop until ``done()`` holds (or ``seconds`` pass), then stop it
    after its running jobs; the test asserts what it left."""
    running = asyncio.create_task(worker.run())
    try:
        for _ in range(round(seconds / 0.01)):  # the database is polled: no event says so
            if await done():
                break
            await asyncio.sleep(0.01)
    finally:
        worker.stop()
        await running
