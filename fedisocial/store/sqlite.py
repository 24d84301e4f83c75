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
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import Any, TypeVar, cast

import aiosqlite
from aiosqlite.context import contextmanager

__all__ = ["connect"]

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
