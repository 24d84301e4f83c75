"""Job claims beside 1,000,000 finished jobs: the due lookup must not read the finished rows.

For each backend (SQLite, PostgreSQL when reachable) it builds a scratch database
with the real schema (``fedisocial.store.db.migrate``) and first measures the bare
bound: ``JobQueue.claim(limit=100)`` and ``JobQueue.has_due()`` on the empty
table (one transaction and one statement that finds nothing). Then it bulk-loads
the jobs table as a busy instance between two prunes leaves it: 1,000,000 done
jobs (finished within the retention, so none is prunable) and 1,000 queued jobs,
all due. The load goes through the plain drivers (``sqlite3`` executemany,
asyncpg ``COPY``); PostgreSQL is ``ANALYZE``d afterwards as autovacuum would,
SQLite is left as the app leaves it (no ``ANALYZE``).

Then it times ``claim(limit=100)`` (through the app's own engine; the claimed
jobs are put back in the queue after each call, outside the timing) and
``has_due()``, reports p50/p99 beside the bound, and prints the plans of both
statements as the app sends them (SQLite ``EXPLAIN QUERY PLAN``, PostgreSQL
``EXPLAIN``).

Run::

    .venv/bin/python bench/jobs.py [--database both] [--done 1000000] [--queued 1000] [--calls 300]

Prints figures; never asserts. Loading takes up to a minute per backend; the
databases are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from discovery import progress, run_in_scratch
from federation import (
    POSTGRES_URL,
    _asyncpg_dsn,
    backends,
    percentile,
    print_table,
    scratch_database,
)

_COLUMNS = ["id", "kind", "payload", "status", "attempts", "run_at", "created_at", "finished_at"]


@dataclass
class Result:
    backend: str
    load_s: float = 0.0
    timings: dict[str, list[float]] = field(default_factory=dict)
    plans: list[str] = field(default_factory=list)

    def pct(self, name: str, p: float) -> float:
        return percentile(self.timings.get(name, []), p)


def _rows(done: int, queued: int, now: datetime) -> Iterator[tuple[Any, ...]]:
    """(id, kind, payload, status, attempts, run_at, created_at, finished_at), oldest first."""
    for i in range(1, done + 1):
        when = now - timedelta(hours=20) + timedelta(seconds=i * 0.05)
        yield i, "deliver", "{}", "done", 1, when, when, when + timedelta(seconds=1)
    for i in range(done + 1, done + queued + 1):
        when = now - timedelta(seconds=queued - (i - done))
        yield i, "deliver", "{}", "queued", 0, when, when, None


def _sqlite_time(moment: datetime | None) -> str | None:
    """How SQLAlchemy stores a UTC datetime in SQLite."""
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def load_sqlite(path: str, done: int, queued: int) -> None:
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    sql = f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
    batch: list[tuple[Any, ...]] = []
    for row in _rows(done, queued, datetime.now(UTC)):
        batch.append((*row[:5], _sqlite_time(row[5]), _sqlite_time(row[6]), _sqlite_time(row[7])))
        if len(batch) >= 100_000:
            con.executemany(sql, batch)
            con.commit()
            progress(f"  {row[0]:,} jobs")
            batch = []
    con.executemany(sql, batch)
    con.commit()
    con.close()


async def load_postgres(database_url: str, done: int, queued: int) -> None:
    import asyncpg

    connection = await asyncpg.connect(_asyncpg_dsn(database_url))
    try:
        batch: list[tuple[Any, ...]] = []
        for row in _rows(done, queued, datetime.now(UTC)):
            batch.append(row)
            if len(batch) >= 100_000:
                await connection.copy_records_to_table("jobs", records=batch, columns=_COLUMNS)
                progress(f"  {row[0]:,} jobs")
                batch = []
        await connection.copy_records_to_table("jobs", records=batch, columns=_COLUMNS)
        await connection.execute(
            "SELECT setval(pg_get_serial_sequence('jobs', 'id'), (SELECT max(id) FROM jobs))"
        )
        progress("  ANALYZE")
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


@contextmanager
def _captured(engine: Any) -> Iterator[list[tuple[str, Any]]]:
    from sqlalchemy import event

    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)


async def _timed(calls: int, call: Callable[[], Awaitable[Any]],
                 after: Callable[[Any], Awaitable[None]] | None = None) -> list[float]:  # fmt: skip
    timings = []
    for _ in range(calls):
        start = time.perf_counter()
        value = await call()
        timings.append((time.perf_counter() - start) * 1000)
        if after is not None:
            await after(value)
    return timings


async def measure(database_url: str, calls: int, result: Result, label: str) -> None:
    """Time claim(limit=100) and has_due(); on the loaded table, also print their plans."""
    from sqlalchemy import update

    from fedisocial.jobs import ClaimedJob, JobQueue
    from fedisocial.store.db import Database
    from fedisocial.store.models import Job

    db = Database(database_url)
    queue = JobQueue(db)

    async def put_back(claimed: list[ClaimedJob]) -> None:
        if claimed:
            async with db.transaction() as session:
                await session.execute(update(Job).where(Job.id.in_([j.id for j in claimed]))
                                      .values(status="queued", lease_until=None))  # fmt: skip

    try:
        result.timings[f"claim {label}"] = await _timed(
            calls, lambda: queue.claim("bench", 100), put_back
        )
        result.timings[f"has_due {label}"] = await _timed(calls, queue.has_due)
        if label == "loaded":
            with _captured(db.engine) as statements:
                await queue.has_due()
                await put_back(await queue.claim("bench", 100))
            explain = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
            async with db.engine.connect() as connection:
                for statement, parameters in statements[:2]:
                    rows = await connection.exec_driver_sql(explain + statement, parameters)
                    result.plans.append("\n".join(f"  {row[-1] if db.is_sqlite else row[0]}"
                                                  for row in rows))  # fmt: skip
    finally:
        await db.close()


def run_backend(backend: str, tmp: Path, args: argparse.Namespace) -> Result:
    from fedisocial.store.db import Database, migrate

    result = Result(backend)
    with scratch_database(backend, tmp, "jobs") as url:

        async def setup() -> None:
            db = Database(url)
            await migrate(db)
            await db.close()

        asyncio.run(setup())
        progress(f"{backend}: bare bound on the empty table")
        asyncio.run(measure(url, args.calls, result, "empty"))
        progress(f"{backend}: loading {args.done:,} done + {args.queued:,} queued jobs")
        start = time.perf_counter()
        if backend == "sqlite":
            load_sqlite(url.removeprefix("sqlite+aiosqlite:///"), args.done, args.queued)
        else:
            asyncio.run(load_postgres(url, args.done, args.queued))
        result.load_s = time.perf_counter() - start
        progress(f"{backend}: timing {args.calls} claims of 100 and has_due() calls")
        asyncio.run(measure(url, args.calls, result, "loaded"))
    return result


async def _postgres_reachable() -> str | None:
    import asyncpg

    try:
        connection = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL), timeout=3)
        await connection.close()
        return None
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return str(exc)


def report(results: list[Result], args: argparse.Namespace) -> None:
    print(f"\njobs table: {args.done:,} done + {args.queued:,} queued (all due); "
          f"{args.calls} calls each; ms")  # fmt: skip
    rows = []
    for r in results:
        for call in ("claim", "has_due"):
            loaded, empty = f"{call} loaded", f"{call} empty"
            rows.append([r.backend, f"{call}(limit=100)" if call == "claim" else "has_due()",
                         f"{r.pct(loaded, 50):.2f}", f"{r.pct(loaded, 99):.2f}",
                         f"{r.pct(empty, 50):.2f}", f"{r.pct(empty, 99):.2f}",
                         f"{r.load_s:.0f} s"])  # fmt: skip
    print_table(["backend", "call", "p50", "p99", "empty p50", "empty p99", "load"], rows)
    for r in results:
        for name, plan in zip(("has_due()", "claim()"), r.plans, strict=False):
            print(f"\n{r.backend} {name} plan:\n{plan}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=["both", "sqlite", "postgresql"], default="both")
    parser.add_argument("--done", type=int, default=1_000_000, help="done jobs to load")
    parser.add_argument("--queued", type=int, default=1_000, help="queued (due) jobs to load")
    parser.add_argument("--calls", type=int, default=300, help="timed calls of each kind")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    chosen = backends(args.database)
    if "postgresql" in chosen and (reason := asyncio.run(_postgres_reachable())):
        print(f"PostgreSQL not reachable at {POSTGRES_URL} ({reason}): SQLite only")
        chosen = [b for b in chosen if b != "postgresql"]

    def body(_procs: object, tmp: Path) -> int:
        report([run_backend(backend, tmp, args) for backend in chosen], args)
        return 0

    return run_in_scratch("fedisocial-bench-jobs-", args.keep, body)


if __name__ == "__main__":
    raise SystemExit(main())
