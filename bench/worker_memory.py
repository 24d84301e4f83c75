"""A job worker's memory over a long ingest: 100,000 received activities processed in one run.

For each backend it makes a throwaway instance whose ``alice`` follows 1,000
remote actors, stores N ``Create{Note}`` activities from them with their
``process_activity`` jobs exactly as the inbox accepts them (rows written in
bulk: no HTTP, no signatures, which ``bench/inbox.py`` measures), then starts
one ``fedisocial worker`` and samples its resident memory (RSS) and the jobs
done twice a second until every job is done. It prints RSS at each tenth of
the run beside the rate, and whether memory stayed flat (the last tenth within
10% of the first tenth's peak, after the warm-up). Prints figures; never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from discovery import FEDISOCIAL, Processes, progress, rss_kb, run_in_scratch
from federation import (
    analyze_as_autovacuum_would,
    backends,
    make_instance,
    mark,
    print_table,
    scratch_database,
)
from inbox import _activity, _scalar, make_senders, store_senders

#: tolerated growth of RSS from the first tenth of the run to the last
FLAT = 0.10


async def store_activities(database_url: str, base_url: str, count: int) -> None:
    """``count`` Create{Note}s from the stored senders, with their jobs, as accepts store them."""
    from fedisocial.ap.vocab import normalize
    from fedisocial.federation.inbox import PROCESS
    from fedisocial.jobs import JobQueue
    from fedisocial.store.db import Database
    from fedisocial.store.models import Object
    from fedisocial.store.rows import object_columns, upsert

    db = Database(database_url)
    iso = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    actors = [f"https://remote{n % 100}.example/users/u{n}" for n in range(1_000)]
    try:
        for start in range(0, count, 2_000):
            rows: list[dict[str, Any]] = []
            for n in range(start, min(count, start + 2_000)):
                actor = actors[n % len(actors)]
                doc = _activity("Create", actor, n, "mem", iso, None, None, base_url)
                columns = object_columns(normalize(doc), f"{actor}/followers")
                rows.append({"uri": doc["id"], "local": False, "data": doc, **columns})
            async with db.transaction() as session:
                statement = upsert(session, Object).returning(Object.id, Object.uri)
                stored = list(await session.execute(statement, rows))
                jobs = [({"object_id": object_id, "recipient": None}, None)
                        for object_id, _ in stored]  # fmt: skip
                await JobQueue.add_many(session, PROCESS, jobs)
    finally:
        await db.close()


async def _done(database_url: str) -> int:
    from sqlalchemy import func, select

    from fedisocial.store.models import Job

    query = select(func.count()).select_from(Job).where(Job.kind == "process_activity",
                                                        Job.status == "done")  # fmt: skip
    return int(await _scalar(database_url, query))


def run_backend(backend: str, args: argparse.Namespace, procs: Processes, tmp: Path) -> list[str]:
    with scratch_database(backend, tmp, "memory") as database_url:
        root = tmp / backend
        base_url = "http://127.0.0.1:9"
        progress(f"[{backend}] creating the instance (alice) in {root}")
        env = make_instance(root, base_url, database_url, ["alice"], private=False)
        senders = make_senders(1_000, 20, 100)
        asyncio.run(store_senders(database_url, base_url, senders))
        progress(f"[{backend}] storing {args.activities:,} received activities with their jobs")
        asyncio.run(store_activities(database_url, base_url, args.activities))
        analyze_as_autovacuum_would(database_url)
        progress(f"[{backend}] one `fedisocial worker` processes them")
        worker = procs.start([FEDISOCIAL, "worker"], log=root / "worker.log", cwd=root, env=env)
        samples: list[tuple[float, int, int]] = []  # seconds, jobs done, RSS kB
        started = time.monotonic()
        while True:
            done = asyncio.run(_done(database_url))
            samples.append((time.monotonic() - started, done, rss_kb(worker.pid)))
            if done >= args.activities or worker.poll() is not None:
                break
            time.sleep(0.5)
        procs.stop(worker)
    return report_row(backend, samples, args.activities)


def report_row(backend: str, samples: list[tuple[float, int, int]], total: int) -> list[str]:
    """RSS (MB) when each tenth of the jobs was done, the rate, and whether it stayed flat."""
    at_tenths = []
    for tenth in range(1, 11):
        reached = next((s for s in samples if s[1] >= total * tenth / 10), samples[-1])
        at_tenths.append(reached)
    first_peak = max(s[2] for s in samples if s[1] <= total / 10) / 1024
    last = at_tenths[-1][2] / 1024
    seconds = samples[-1][0]
    flat = last <= first_peak * (1 + FLAT)
    return [backend, f"{samples[-1][1]:,}", f"{samples[-1][1] / seconds:,.0f}",
            " ".join(f"{s[2] / 1024:.0f}" for s in at_tenths), f"{first_peak:.0f}",
            f"{last:.0f} {mark(flat)}"]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both",
                        help="backend(s) to measure (default both)")  # fmt: skip
    parser.add_argument("--activities", type=int, default=100_000,
                        help="received activities to process (default 100,000)")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    def body(procs: Processes, tmp: Path) -> int:
        rows = [run_backend(backend, args, procs, tmp) for backend in backends(args.database)]
        print(f"\nWorker memory over {args.activities:,} Create{{Note}} activities, one "
              f"`fedisocial worker`, {datetime.now(UTC):%Y-%m-%d}")  # fmt: skip
        print_table(["backend", "done", "per s", "RSS MB at each tenth", "first tenth peak",
                     f"last (flat: ≤ +{FLAT:.0%})"], rows)  # fmt: skip
        return 0

    return run_in_scratch("fedisocial-memory-", args.keep, body)


if __name__ == "__main__":
    sys.exit(main())
