"""What a local account does: post, edit, and the Outbox actions on one target."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fedisocial.cli.instance import in_context, settings_of
from fedisocial.cli.output import echo
from fedisocial.errors import FedisocialError
from fedisocial.social.accounts import find_local_actor
from fedisocial.store.models import Actor, Object

if TYPE_CHECKING:  # built by in_context when the command runs
    from fedisocial.app import Context

QUEUED = "queued for delivery (sent by `fedisocial serve` or `fedisocial worker`)"


def cmd_post(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    files = [_read_image(path, args.alt, settings.media_max_description) for path in args.image]

    async def act(context: Context) -> Object:
        actor = await find_local_actor(context.db, context.urls, args.user)
        media_ids = [await _generate(context, actor, prompt, args.alt) for prompt in args.generate]
        for name, data in files:
            media = await context.studio.upload(actor, data, filename=name, description=args.alt)
            echo(f"image ready: {context.media.url(media.path)} ({media.width}x{media.height})")
            media_ids.append(media.id)
        if media_ids:
            return await context.studio.publish(
                actor, args.text, media_ids, visibility=args.visibility, summary=args.cw
            )
        return await context.outbox.post(
            actor, args.text, visibility=args.visibility, in_reply_to=args.reply_to,
            summary=args.cw,
        )  # fmt: skip

    note = in_context(settings, act)
    echo(f"posted {note.uri} ({note.visibility}); {QUEUED}")
    return 0


_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


async def _generate(context: Context, actor: Actor, prompt: str, alt: str | None) -> int:
    """Ask for an image and wait, showing progress; returns the draft's media id.

    A running server's worker usually makes it; if none picks the job up within
    a few seconds, this command makes it itself (the studio lets one runner in).
    """
    studio = context.studio
    generation = await studio.request(actor, prompt)
    where = f"{studio.provider.model} ({studio.provider.name})"
    started, tick, shown = time.monotonic(), 0, ""
    while True:
        status = await studio.status(actor, generation.id)
        elapsed = time.monotonic() - started
        if status["status"] == "queued" and elapsed > 3:
            payload = {"generation": generation.id}
            try:
                await studio.run(payload)
            except Exception as exc:  # no worker will retry a run made here: it failed
                await studio.gave_up(payload, exc)
            continue
        line = f"{status['status']} {elapsed:4.1f}s  {where}: {prompt[:50]}"
        if sys.stdout.isatty():
            print("\r", end="")  # back to the start of the progress line
            echo(f"{_SPINNER[tick % len(_SPINNER)]} {line}", end="", flush=True)
        elif status["status"] != shown:
            echo(line, flush=True)
        shown, tick = status["status"], tick + 1
        if status["status"] in ("done", "failed"):
            break
        await asyncio.sleep(0.25)
    if sys.stdout.isatty():
        echo()
    if status["status"] == "failed":
        raise FedisocialError(f"the image could not be made: {status['error']}")
    media = status["media"]
    echo(f"image ready: {media['url']} ({media['width']}x{media['height']})")
    if alt:
        from fedisocial.studio.uploads import change  # Pillow: only when posting images

        await change(context.db, actor, media["id"], description=alt, focus=None,
                     max_description=context.settings.media_max_description)  # fmt: skip
    media_id: int = media["id"]
    return media_id


def _read_image(path: str, alt: str | None, max_alt: int) -> tuple[str, bytes]:
    from fedisocial.studio.media import check_alt_text  # Pillow: only when posting images

    file = Path(path)
    if not file.is_file():
        raise FedisocialError(f"{path}: no such file")
    check_alt_text(alt, max_alt)
    return file.name, file.read_bytes()


def cmd_edit(args: argparse.Namespace) -> int:
    async def act(context: Context) -> Object:
        actor = await find_local_actor(context.db, context.urls, args.user)
        return await context.outbox.edit(actor, args.target, args.text)

    note = in_context(settings_of(args), act)
    echo(f"edited {note.uri}; {QUEUED}")
    return 0


def cmd_outbox_action(args: argparse.Namespace) -> int:
    """Run the Outbox method ``args.method`` on ``args.target``; print the activity id."""

    async def act(context: Context) -> Object:
        actor = await find_local_actor(context.db, context.urls, args.user)
        method: Callable[[Actor, str], Awaitable[Object]] = getattr(context.outbox, args.method)
        return await method(actor, args.target)

    activity = in_context(settings_of(args), act)
    echo(f"{activity.type} {activity.uri}; {QUEUED}")
    return 0
