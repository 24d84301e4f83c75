"""`fedisocial assistant`: its state, its queue, cancel, pause and resume, server blocks.

The commands that change something open the whole instance (:func:`in_context`), which
makes the assistant's actor if the server has not run yet.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from fedisocial.assistant import admin
from fedisocial.assistant.actor import text_model
from fedisocial.cli.instance import in_context, settings_of, with_db
from fedisocial.cli.output import echo
from fedisocial.config import Settings
from fedisocial.store.db import Database
from fedisocial.store.models import AssistantRequest, utcnow
from fedisocial.urls import Urls

if TYPE_CHECKING:
    from fedisocial.app import Context


def _service(settings: Settings) -> str:
    return Urls(settings.base_url).actor(settings.assistant_username)


def _age(since: datetime, now: datetime) -> str:
    seconds = int((now - since) / timedelta(seconds=1))
    if seconds < 120:
        return f"{seconds}s"
    return f"{seconds // 60}m" if seconds < 7200 else f"{seconds // 3600}h"


def cmd_assistant_status(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def read(context: Context) -> tuple[admin.Overview, str, str]:
        found = await admin.overview(context.db, _service(settings))
        image = f"{context.studio.provider.name}/{context.studio.provider.model}"
        return found, image, text_model(context.assistant.text)

    found, image, text = in_context(settings, read)
    s = settings
    echo(
        f"@{s.assistant_username}: {found.state}"
        + (f" (paused since {found.paused_at:%Y-%m-%d %H:%M} UTC)" if found.paused_at else "")
    )
    echo(f"images: {image}; text: {text}")
    echo(f"quotas: per account {s.assistant_per_actor_per_hour}/hour "
         f"{s.assistant_per_actor_per_day}/day; per server {s.assistant_per_domain_per_hour}/hour "
         f"{s.assistant_per_domain_per_day}/day; in all {s.assistant_per_instance_per_hour}/hour "
         f"{s.assistant_per_instance_per_day}/day")  # fmt: skip
    counts = ", ".join(f"{n} {status}" for status, n in sorted(found.counts.items()))
    echo(f"requests: {counts or 'none yet'}")
    return 0


def _row(request: AssistantRequest, now: datetime) -> str:
    age = _age(request.created_at, now)
    return (f"{request.id:<6} {request.asker_uri:<48} {request.kind or '-':<6} "
            f"{request.status:<10} {age:>5}  {request.reason or ''}")  # fmt: skip


def cmd_assistant_queue(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def read(db: Database) -> list[AssistantRequest]:
        return await admin.queue(db, _service(settings), recent=args.recent)

    rows = with_db(settings, read)
    if not rows:
        echo("No requests yet: nobody has mentioned the assistant.")
        return 0
    now = utcnow()
    echo(f"{'id':<6} {'asker':<48} {'kind':<6} {'status':<10} {'age':>5}  reason")
    for request in rows:
        echo(_row(request, now))
    return 0


def cmd_assistant_cancel(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def cancel(context: Context) -> admin.Cancelled:
        return await admin.cancel(context.outbox, _service(settings), args.id)

    done = in_context(settings, cancel)
    parts = [f"request {args.id} from {done.request.asker_uri} is cancelled"]
    parts.append(f"{done.jobs} queued job(s) cancelled" if done.jobs else "no job was queued")
    if done.generation:
        parts.append("its image will not be made")
    if done.withdrawn:
        parts.append(f"the reply waiting for it ({done.withdrawn}) is withdrawn, never sent")
    echo("; ".join(parts) + ".")
    return 0


def _pause(args: argparse.Namespace, paused: bool) -> int:
    settings = settings_of(args)

    async def switch(context: Context) -> bool:
        return await admin.set_paused(context.db, _service(settings), paused=paused)

    changed = in_context(settings, switch)
    if paused:
        echo("The assistant is paused: mentions wait, queued, until `fedisocial assistant "
             "resume`." if changed else "The assistant was paused already.")  # fmt: skip
    else:
        echo("The assistant answers again; the waiting mentions run now." if changed
             else "The assistant was not paused.")  # fmt: skip
    return 0


def cmd_assistant_pause(args: argparse.Namespace) -> int:
    return _pause(args, True)


def cmd_assistant_resume(args: argparse.Namespace) -> int:
    return _pause(args, False)


def cmd_assistant_block_domain(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def block(context: Context) -> bool:
        service = _service(settings)
        return await admin.block_domain(context.db, service, args.domain, blocked=args.block)

    changed = in_context(settings, block)
    verb = "blocks" if args.block else "no longer blocks"
    echo(f"The assistant {verb} {args.domain}." if changed else "Nothing changed.")
    return 0
