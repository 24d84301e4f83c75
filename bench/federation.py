"""Shared pieces of the federation benchmarks (fanout.py, feed.py, inbox.py); runs all three.

* scratch databases: a SQLite file in the run's temporary folder, or a fresh
  PostgreSQL database (``CREATE DATABASE``) dropped at the end;
* throwaway instances (``fedisocial init`` + ``user create``) on either;
* a printed table with targets and ✓/✗.

Process handling, CPU accounting and progress lines come from ``discovery.py``.

Run all three benchmarks, one after the other::

    .venv/bin/python bench/federation.py [--database both]

Each also runs alone (see ``--help`` of each script).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from discovery import FEDISOCIAL, cpu_seconds, progress

POSTGRES_URL = os.environ.get(
    "FEDISOCIAL_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
BENCH = Path(__file__).resolve().parent

__all__ = [
    "BENCH",
    "POSTGRES_URL",
    "DbCpu",
    "backends",
    "bench_env",
    "make_instance",
    "mark",
    "postgres_pids",
    "print_table",
    "scratch_database",
]


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``; NaN when there are none."""
    data = sorted(values)
    if not data:
        return float("nan")
    return data[min(len(data) - 1, round(p / 100 * (len(data) - 1)))]


def mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def backends(choice: str) -> list[str]:
    return ["sqlite", "postgresql"] if choice == "both" else [choice]


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _pg_execute(url: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.contextmanager
def scratch_database(backend: str, tmp: Path, label: str) -> Iterator[str]:
    """A SQLAlchemy URL of an empty database, removed afterwards (PostgreSQL: dropped)."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp / f'{label}.db'}"
        return
    name = f"fedisocial_bench_{label}_{uuid.uuid4().hex[:8]}"
    progress(f"CREATE DATABASE {name}")
    asyncio.run(_pg_execute(POSTGRES_URL, f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        progress(f"DROP DATABASE {name}")
        asyncio.run(_pg_execute(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _autovacuum_is_off(url: str) -> bool:
    import asyncpg

    connection = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        return str(await connection.fetchval("SHOW autovacuum")) == "off"
    finally:
        await connection.close()


def analyze_as_autovacuum_would(database_url: str) -> None:
    """ANALYZE the database when the server runs with autovacuum off (this machine's test
    server does), as autovacuum would on a default install: planning on the statistics of
    empty tables, a batch's audience query ran 4x slower (420 vs 1,640 activities/s)."""
    if database_url.startswith("postgresql") and asyncio.run(_autovacuum_is_off(database_url)):
        progress("  ANALYZE (this PostgreSQL runs with autovacuum off)")
        asyncio.run(_pg_execute(database_url, "ANALYZE"))


def postgres_pids(database: str) -> list[int]:
    """The PostgreSQL backends serving ``database`` now (their CPU is part of the cost).

    Found by their process title (``postgres: [CLUSTER:] USER DATABASE HOST(PORT) STATE``);
    the server's shared processes (WAL writer, checkpointer) are not counted.
    """
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                if title.startswith(b"postgres: ") and f" {database} ".encode() in title:
                    pids.append(int(entry.name))
    return pids


class DbCpu:
    """CPU of the PostgreSQL backends serving one database, new backends included.

    A backend that exits before the end (a pool's overflow connection) is not counted.
    """

    def __init__(self, database: str | None) -> None:
        self.database = database
        self.start: dict[int, float] = {}

    def _now(self) -> dict[int, float]:
        if self.database is None:
            return {}
        return {pid: cpu_seconds([pid]) for pid in postgres_pids(self.database)}

    def begin(self) -> None:
        self.start = self._now()

    def seconds(self) -> float:
        """CPU since :meth:`begin` of the backends alive now (ones that exited are missed)."""
        return sum(cpu - self.start.get(pid, 0.0) for pid, cpu in self._now().items())


def bench_env(config: Path) -> dict[str, str]:
    """The environment of the instance's processes: its config file, nothing else of ours."""
    env = {**os.environ, "FEDISOCIAL_CONFIG": str(config), "PYTHONUNBUFFERED": "1"}
    for name in list(env):
        if name.startswith("FEDISOCIAL_") and name != "FEDISOCIAL_CONFIG":
            del env[name]
    return env


def make_instance(
    root: Path, base_url: str, database_url: str, users: Sequence[str], *, private: bool = True
) -> dict[str, str]:
    """``fedisocial init`` + one account per name; returns the environment to run it with."""
    root.mkdir(parents=True, exist_ok=True)
    config = root / "fedisocial.toml"
    env = bench_env(config)
    init = [FEDISOCIAL, "init", "--base-url", base_url, "--data-dir", str(root / "data"),
            "--database-url", database_url]  # fmt: skip
    subprocess.run(init, cwd=root, env=env, check=True, capture_output=True, timeout=120)
    text = config.read_text(encoding="utf-8").replace('log_level = "info"', 'log_level = "warning"')
    if private:
        text = text.replace("allow_private_networks = false", "allow_private_networks = true")
    config.write_text(text, encoding="utf-8")
    for user in users:
        subprocess.run(
            [FEDISOCIAL, "user", "create", user, "--password-stdin"],
            cwd=root, env=env, input=b"correct horse battery staple\n", check=True,
            capture_output=True, timeout=120,
        )  # fmt: skip
    return env


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    table = [list(header), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("-+-".join("-" * w for w in widths))


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(
        description="Run the three federation benchmarks in order: fanout.py, feed.py, "
        "inbox.py (each prints its own table; see their --help for their options)."
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both",
                        help="backend(s) to measure (default both)")  # fmt: skip
    args = parser.parse_args()
    code = 0
    for script in ("fanout.py", "feed.py", "inbox.py"):
        progress(f"=== bench/{script} ===")
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(BENCH / script), "--database", args.database])
        progress(f"bench/{script} finished in {time.monotonic() - started:.0f}s")
        code = code or done.returncode
    return code


if __name__ == "__main__":
    sys.exit(main())
