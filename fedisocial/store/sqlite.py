"""SQLite connections for the async engine: one trip to the connection's thread per statement.

aiosqlite runs every call of a connection on that connection's own thread, and
SQLAlchemy's adapter makes four calls a statement (make a cursor, execute, fetch,
close) and two more a session (ROLLBACK at its end, and again when the pool takes
the connection back). Each trip hands the GIL over and wakes the event loop; on a
busy web process they were most of the cost of a read (nine trips and ~1.2 ms of
CPU for one ``SELECT`` of an actor by key id). Here a statement executes and
fetches its rows in one trip, a cursor is made and closed in place (cheap, and
never concurrent: SQLAlchemy runs one call at a time per connection), and
COMMIT/ROLLBACK make no trip when no transaction is open, which is what every
read session and every reset after a commit find.

Built on aiosqlite 0.22's ``Connection``/``Cursor`` (pinned in pyproject), whose
thread and queue do the real work.

A write that must hold the file's lock as briefly as possible (the inbox's group
commit) runs as one trip: :func:`run_transaction` takes the writers' turn, begins,
runs its statements, prepared beforehand as :class:`PreparedInsert`, and commits,
all on the connection's thread, never waiting for the event loop in between.
"""

from __future__ import annotations

import fcntl
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar, cast

import aiosqlite
from aiosqlite.context import contextmanager
from sqlalchemy import Column, Insert, Table
from sqlalchemy.engine import Dialect

__all__ = ["PreparedInsert", "connect", "run_transaction"]

T = TypeVar("T")


async def _trip(connection: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on the connection's thread."""
    run = cast("Callable[..., Awaitable[T]]", connection._execute)
    return await run(fn, *args)


def _execute(cursor: sqlite3.Cursor, sql: str, parameters: Any) -> deque[Any] | None:
    cursor.execute(sql, parameters)
    return deque(cursor.fetchall()) if cursor.description is not None else None


class _Cursor(aiosqlite.Cursor):
    """Rows are fetched with the statement that makes them, and read from memory."""

    _rows: deque[Any] | None = None

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> _Cursor:
        self._rows = await _trip(self._conn, _execute, self._cursor, sql, parameters or ())
        return self

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> _Cursor:
        self._rows = None
        await _trip(self._conn, self._cursor.executemany, sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        count = self._cursor.arraysize if size is None else size
        rows = self._rows or deque()
        return [rows.popleft() for _ in range(min(count, len(rows)))]

    async def fetchall(self) -> Sequence[Any]:
        rows, self._rows = self._rows, None
        return list(rows) if rows else []

    async def close(self) -> None:
        self._rows = None
        self._cursor.close()


class _Connection(aiosqlite.Connection):
    @contextmanager  # awaitable and an async context manager, as aiosqlite's own
    async def cursor(self) -> aiosqlite.Cursor:
        return _Cursor(self, self._conn.cursor())

    async def commit(self) -> None:
        if self._conn.in_transaction:
            await super().commit()

    async def rollback(self) -> None:
        if self._conn.in_transaction:
            await super().rollback()


async def connect(path: str, *, busy_seconds: float) -> aiosqlite.Connection:
    """An open connection to the SQLite file at ``path`` (for ``async_creator``).

    ``busy_seconds``: how long a statement waits for another process's lock.
    """
    # cursors are made and closed on the event loop's thread (never while the connection's
    # thread runs a statement of this connection)
    connector = partial(sqlite3.connect, path, timeout=busy_seconds, check_same_thread=False)
    connection = _Connection(connector, iter_chunk_size=64)
    connection._thread.daemon = True  # as SQLAlchemy's own aiosqlite connect does
    return await connection


class PreparedInsert:
    """An ``INSERT`` compiled for SQLite once, and rows bound for it as SQLAlchemy binds them.

    Every column but an autoincrementing key is bound: a value the row does not give
    is the column's default (``utcnow`` for a timestamp), and each value passes the
    column type's bind processor (JSON to text, datetimes to SQLAlchemy's format), so
    the rows read back through the ORM as rows it wrote itself.
    """

    def __init__(self, statement: Insert, dialect: Dialect) -> None:
        table = cast("Table", statement.table)
        columns = [c for c in table.columns if c is not table.autoincrement_column]
        compiled = statement.compile(dialect=dialect, column_keys=[c.key for c in columns])
        by_key: dict[str, Column[Any]] = {c.key: c for c in columns}
        assert compiled.positiontup is not None  # SQLite's parameters are positional
        self.sql = compiled.string
        self.returns_rows = bool(compiled.effective_returning)
        self._binds = [
            (key, by_key[key].type.dialect_impl(dialect).bind_processor(dialect),
             _default_of(by_key[key]))
            for key in compiled.positiontup
        ]  # fmt: skip

    def parameters(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        values: list[Any] = []
        for key, process, default in self._binds:
            if key in row:
                value = row[key]
            elif default is not None:
                value = default()
            else:
                values.append(None)  # SQL NULL, as SQLAlchemy binds a column left out
                continue
            values.append(value if process is None else process(value))
        return tuple(values)

    def run(self, connection: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Insert ``rows`` (bound by :meth:`parameters`); what RETURNING gave, in row order."""
        if not self.returns_rows:
            connection.executemany(self.sql, rows)
            return []
        returned: list[Any] = []
        for row in rows:
            returned.extend(connection.execute(self.sql, row).fetchall())
        return returned


def _default_of(column: Column[Any]) -> Callable[[], Any] | None:
    default: Any = column.default
    if default is None:
        return None
    if default.is_callable:
        return partial(default.arg, None)  # SQLAlchemy passes an execution context
    return lambda: default.arg


def _locked_transaction(
    connection: sqlite3.Connection, lock: int, work: Callable[[sqlite3.Connection], T]
) -> T:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = work(connection)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return result
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)


async def run_transaction(
    connection: aiosqlite.Connection, lock: int, work: Callable[[sqlite3.Connection], T]
) -> T:
    """``work(connection)`` in one write transaction, on the connection's thread throughout.

    ``lock``: the writers' lock file (``flock``), held from before ``BEGIN IMMEDIATE``
    to after ``COMMIT`` (or ``ROLLBACK`` when ``work`` raises), and only then.
    """
    return await _trip(connection, _locked_transaction, connection._conn, lock, work)
