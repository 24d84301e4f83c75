"""`fedisocial status`: the job queue at a glance, for people and (``--json``) for scripts.

Besides the queue, it shows the inbox's backlog against ``inbox_max_backlog``:
past it, the inbox answers 503 with Retry-After (see
:mod:`fedisocial.federation.backpressure`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fedisocial.cli.instance import settings_of, with_db
from fedisocial.cli.output import clean, echo
from fedisocial.federation.inbox import PROCESS
from fedisocial.jobs import QUEUE_STATES, JobQueue, JobStats
from fedisocial.store.db import Database


@dataclass(frozen=True)
class InboxBacklog:
    """Received activities waiting to be processed, counted up to just past ``bound``."""

    due: int
    bound: int

    @property
    def refusing(self) -> bool:
        return 0 < self.bound < self.due


def cmd_status(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    bound = settings.inbox_max_backlog

    async def read(db: Database) -> JobStats:
        return await JobQueue.from_settings(db, settings).stats()

    stats = with_db(settings, read)
    processing = stats.depth.get(PROCESS, {})
    # what the inbox counts: received activities due now or being processed
    inbox = InboxBacklog(processing.get("due", 0) + processing.get("running", 0), bound)
    if args.json:
        echo(json.dumps(_document(stats, inbox), indent=2, ensure_ascii=False))
    else:
        _print(stats, inbox)
    return 0


def _document(stats: JobStats, inbox: InboxBacklog) -> dict[str, Any]:
    oldest = stats.oldest_due
    return {
        "inbox": {"due": inbox.due, "bound": inbox.bound, "refusing": inbox.refusing},
        "queue": stats.depth,
        "oldest_due_seconds": None if oldest is None else round(oldest.total_seconds(), 3),
        "failed_last_hour": {kind: {"count": count, "last_error": clean(error)}
                             for kind, (count, error) in stats.failed_last_hour.items()},
        "prunable": stats.prunable,
    }  # fmt: skip


def _print(stats: JobStats, inbox: InboxBacklog) -> None:
    if stats.depth:
        width = max(len("kind"), *map(len, stats.depth))
        echo(f"{'kind':<{width}}  " + "  ".join(f"{state:>7}" for state in QUEUE_STATES))
        for kind, states in sorted(stats.depth.items()):
            echo(f"{kind:<{width}}  " + "  ".join(f"{states[s]:>7}" for s in QUEUE_STATES))
    else:
        echo("no job is queued or running")
    if stats.oldest_due is None:
        echo("no job is due")
    else:
        echo(f"oldest due job has waited {_age(stats.oldest_due)}")
    if stats.failed_last_hour:
        echo("failed for good in the last hour:")
        for kind, (count, error) in sorted(stats.failed_last_hour.items()):
            echo(f"  {kind}  {count}  last error: {error}")
    echo(f"finished jobs past their retention (pruned soon): {stats.prunable}")
    if inbox.bound <= 0:
        echo(f"inbox: {inbox.due} activities to process (no backlog bound: never refuses)")
    elif inbox.refusing:
        echo(f"inbox: over {inbox.bound} activities to process: refusing new deliveries "
             "(503 with Retry-After) until the workers catch up")  # fmt: skip
    else:
        echo(f"inbox: {inbox.due} activities to process (refuses past {inbox.bound})")


def _age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    hours, rest = divmod(seconds, 3600)
    if hours:
        return f"{hours}h {rest // 60}m"
    return f"{rest // 60}m {rest % 60}s" if rest >= 60 else f"{rest}s"
