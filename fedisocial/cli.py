"""The ``fedisocial`` command: run, administer and debug an instance."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import select

from fedisocial import __version__
from fedisocial.ap.addressing import VISIBILITIES
from fedisocial.app import RUN_WORKER_ENV, Context, build_context, job_handlers
from fedisocial.config import Settings, config_path, example_toml, load_settings
from fedisocial.errors import FedisocialError
from fedisocial.federation.remote import lookup
from fedisocial.jobs import Worker
from fedisocial.social.accounts import (
    create_user,
    ensure_instance_actor,
    find_local_actor,
    list_users,
)
from fedisocial.social.content import plain_text
from fedisocial.social.timeline import FeedItem, home_feed
from fedisocial.store.db import Database, migrate, require_current_schema
from fedisocial.store.models import Actor, Follow, Object
from fedisocial.studio.media import check_alt_text
from fedisocial.urls import Urls

__all__ = ["main"]


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


# -- init / migrate / config ------------------------------------------------------


async def _migrate(settings: Settings) -> None:
    db = Database(settings.effective_database_url)
    try:
        await migrate(db)
        await ensure_instance_actor(db, Urls(settings.base_url))
    finally:
        await db.close()


def cmd_init(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    if path.exists():
        print(f"Using the existing configuration in {path}")
    else:
        text = example_toml(
            base_url=args.base_url, data_dir=args.data_dir, database_url=args.database_url
        )
        path.write_text(text, encoding="utf-8")
        print(f"Wrote {path} (edit it to set your domain, name and database)")
    settings = load_settings(path)
    asyncio.run(_migrate(settings))
    print(f"Database ready: {_mask_url(settings)}")
    print("Next: `fedisocial user create NAME --admin`, then `fedisocial serve`.")
    return 0


def _mask_url(settings: Settings) -> str:
    return dict((name, value) for name, value, _ in settings.describe())["(effective database)"]


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    asyncio.run(_migrate(settings))
    print(f"Database schema is current: {_mask_url(settings)}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    path = config_path(args.config)
    print(f"# from {path if path.exists() else 'defaults'} and FEDISOCIAL_* variables")
    rows = settings.describe()
    width = max(len(name) for name, _, _ in rows)
    for name, value, env in rows:
        print(f"{name:<{width}}  {value:<40}  {env}")
    return 0


# -- serve / worker -----------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings(args)
    if args.config:
        os.environ["FEDISOCIAL_CONFIG"] = str(args.config)
    os.environ[RUN_WORKER_ENV] = "0" if args.no_worker else "1"
    asyncio.run(_preflight(settings, args.host, args.port))
    uvicorn.run(
        "fedisocial.app:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level,
        proxy_headers=True,
        server_header=False,
        access_log=settings.log_level == "debug",
    )
    return 0


async def _preflight(settings: Settings, host: str, port: int) -> None:
    """Refuse to start on an outdated schema; greet the admin with what to do next."""
    db = Database(settings.effective_database_url)
    try:
        await require_current_schema(db)
        users = await list_users(db)
    finally:
        await db.close()
    print(f"fedisocial {__version__}: {settings.instance_name} at {settings.base_url}")
    print(f"listening on http://{host}:{port}")
    public = urlsplit(settings.base_url)
    if public.hostname in ("127.0.0.1", "localhost", "::1") and public.port not in (None, port):
        print(f"warning: base_url is {settings.base_url} but the server listens on port {port};"
              " links and federation will use base_url (set it in the config file)")  # fmt: skip
    if not users:
        print("No accounts yet. Create the first one in another terminal:")
        print("    .venv/bin/fedisocial user create alice --admin")


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run() -> None:
        context = await build_context(settings)
        worker = Worker(context.queue, job_handlers(context), concurrency=args.concurrency)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop)
        print(f"worker {worker.name} running; Ctrl-C stops it after the running jobs")
        try:
            await worker.run()
        finally:
            await context.close()

    asyncio.run(run())
    return 0


# -- users ---------------------------------------------------------------------------


def _read_password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, generated?)"""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n"), False
    if sys.stdin.isatty():
        first = getpass.getpass("Password (empty: generate one): ")
        if not first:
            return secrets.token_urlsafe(12), True
        if getpass.getpass("Repeat it: ") != first:
            raise FedisocialError("the two passwords differ")
        return first, False
    return secrets.token_urlsafe(12), True


def cmd_user_create(args: argparse.Namespace) -> int:
    settings = _settings(args)
    urls = Urls(settings.base_url)
    password, generated = _read_password(args)

    async def run() -> None:
        db = Database(settings.effective_database_url)
        try:
            await create_user(db, urls, args.name, password, is_admin=args.admin,
                              display_name=args.display_name or "")  # fmt: skip
        finally:
            await db.close()

    asyncio.run(run())
    print(f"Created {'admin ' if args.admin else ''}@{args.name}@{urls.netloc}")
    print(f"  profile: {urls.profile(args.name)}")
    print(f"  actor:   {urls.actor(args.name)}")
    if generated:
        print(f"  password: {password}   (shown once; keep it somewhere safe)")
    print(f"Others find this account by searching for @{args.name}@{urls.netloc}.")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run() -> list[Any]:
        db = Database(settings.effective_database_url)
        try:
            return await list_users(db)
        finally:
            await db.close()

    rows = asyncio.run(run())
    if not rows:
        print("No accounts yet: `fedisocial user create NAME --admin` makes the first.")
    for user, actor in rows:
        role = "admin" if user.is_admin else "user"
        print(f"{user.username:<20} {role:<6} {actor.uri}  joined {user.created_at:%Y-%m-%d}")
    return 0


# -- with a running context ------------------------------------------------------------

T = TypeVar("T")


def _in_context(args: argparse.Namespace, action: Callable[[Context], Awaitable[T]]) -> T:
    """Run ``action`` with the instance's services, closing them afterwards."""
    settings = _settings(args)

    async def run() -> T:
        context = await build_context(settings)
        try:
            return await action(context)
        finally:
            await context.close()

    return asyncio.run(run())


def cmd_lookup(args: argparse.Namespace) -> int:
    doc = _in_context(args, lambda c: lookup(c.db, c.client, args.target))
    print(json.dumps(doc, indent=2, ensure_ascii=False))
    return 0


# -- actions: post, follow, like, boost, delete ----------------------------------------

_QUEUED = "queued for delivery (sent by `fedisocial serve` or `fedisocial worker`)"


def cmd_post(args: argparse.Namespace) -> int:
    max_alt = _settings(args).media_max_description
    files = [_read_image(path, args.alt, max_alt) for path in args.image]

    async def act(context: Context) -> Object:
        actor = await find_local_actor(context.db, context.urls, args.user)
        media_ids = [await _generate(context, actor, prompt, args.alt) for prompt in args.generate]
        for name, data in files:
            media = await context.studio.upload(actor, data, filename=name, description=args.alt)
            print(f"image ready: {context.media.url(media.path)} ({media.width}x{media.height})")
            media_ids.append(media.id)
        if media_ids:
            return await context.studio.publish(
                actor, args.text, media_ids, visibility=args.visibility, summary=args.cw
            )
        return await context.outbox.post(
            actor, args.text, visibility=args.visibility, in_reply_to=args.reply_to,
            summary=args.cw,
        )  # fmt: skip

    note = _in_context(args, act)
    print(f"posted {note.uri} ({note.visibility}); {_QUEUED}")
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
            await studio.run({"generation": generation.id})
            continue
        line = f"{status['status']} {elapsed:4.1f}s  {where}: {prompt[:50]}"
        if sys.stdout.isatty():
            print(f"\r{_SPINNER[tick % len(_SPINNER)]} {line}", end="", flush=True)
        elif status["status"] != shown:
            print(line, flush=True)
        shown, tick = status["status"], tick + 1
        if status["status"] in ("done", "failed"):
            break
        await asyncio.sleep(0.25)
    if sys.stdout.isatty():
        print()
    if status["status"] == "failed":
        raise FedisocialError(f"the image could not be made: {status['error']}")
    media = status["media"]
    print(f"image ready: {media['url']} ({media['width']}x{media['height']})")
    if alt:
        await studio.describe_media(actor, media["id"], alt)
    media_id: int = media["id"]
    return media_id


def _read_image(path: str, alt: str | None, max_alt: int) -> tuple[str, bytes]:
    file = Path(path)
    if not file.is_file():
        raise FedisocialError(f"{path}: no such file")
    check_alt_text(alt, max_alt)
    return file.name, file.read_bytes()


def cmd_edit(args: argparse.Namespace) -> int:
    async def act(context: Context) -> Object:
        actor = await find_local_actor(context.db, context.urls, args.user)
        return await context.outbox.edit(actor, args.target, args.text)

    note = _in_context(args, act)
    print(f"edited {note.uri}; {_QUEUED}")
    return 0


def _action(name: str) -> Callable[[argparse.Namespace], int]:
    """A command that runs one Outbox action on a target and prints the activity id."""

    def command(args: argparse.Namespace) -> int:
        async def act(context: Context) -> Object:
            actor = await find_local_actor(context.db, context.urls, args.user)
            method: Callable[[Actor, str], Awaitable[Object]] = getattr(context.outbox, name)
            result: Object = await method(actor, args.target)
            return result

        activity = _in_context(args, act)
        print(f"{activity.type} {activity.uri}; {_QUEUED}")
        return 0

    return command


def cmd_feed(args: argparse.Namespace) -> int:
    async def read(context: Context) -> list[FeedItem]:
        actor = await find_local_actor(context.db, context.urls, args.user)
        return (await home_feed(context.db, actor.id, limit=args.limit)).items

    items = _in_context(args, read)
    if args.json:
        print(json.dumps([item.object.data for item in items], indent=2, ensure_ascii=False))
        return 0
    if not items:
        print("The feed is empty: follow someone with `fedisocial follow USER HANDLE`.")
    for item in items:
        post, when = item.boosted or item.object, f"{item.object.published:%Y-%m-%d %H:%M}"
        if item.boosted is not None:
            print(f"{when}  {item.object.actor_uri} boosted:")
        cw = f"[CW: {post.data['summary']}] " if post.data.get("summary") else ""
        print(f"{when}  {post.actor_uri}\n    {cw}{plain_text(post.data.get('content') or '')}")
        print(f"    {post.uri}")
    return 0


def cmd_followers(args: argparse.Namespace) -> int:
    async def read(context: Context) -> list[Follow]:
        actor = await find_local_actor(context.db, context.urls, args.user)
        async with context.db.session() as session:
            query = select(Follow).where(Follow.followee_uri == actor.uri).order_by(Follow.id)
            return list(await session.scalars(query))

    follows = _in_context(args, read)
    if not follows:
        print(f"{args.user} has no followers yet.")
    for follow in follows:
        waiting = "" if follow.state == "accepted" else f"  (pending: {follow.activity_uri})"
        print(f"{follow.follower_uri}{waiting}")
    return 0


# -- the parser ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedisocial",
        description="A self-hostable ActivityPub server with an AI image studio.",
    )
    parser.add_argument("--version", action="version", version=f"fedisocial {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $FEDISOCIAL_CONFIG or ./fedisocial.toml)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], help_text: str,
                parent: Any = sub) -> argparse.ArgumentParser:  # fmt: skip
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    p = command("init", cmd_init, "write a config file (if none) and create the database")
    p.add_argument("--base-url", default="http://127.0.0.1:8000", help="public URL of the instance")
    p.add_argument("--data-dir", default="data", help="folder for the database and media")
    p.add_argument(
        "--database-url",
        default="",
        help="postgresql+asyncpg://USER@HOST/DB (default: SQLite in the data folder)",
    )
    command("migrate", cmd_migrate, "bring the database schema up to date (Alembic)")
    command("config", cmd_config, "print the effective configuration, secrets masked")

    p = command("serve", cmd_serve, "run the web server and an in-process job worker")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="web processes (default 1)")
    p.add_argument("--no-worker", action="store_true",
                   help="serve web requests only; run `fedisocial worker` separately")  # fmt: skip

    p = command("worker", cmd_worker, "run a job worker alone (to scale out deliveries)")
    p.add_argument("--concurrency", type=int, default=32, help="jobs run at once (default 32)")

    users = command("user", lambda a: 2, "manage local accounts").add_subparsers(
        dest="user_command", required=True, metavar="SUBCOMMAND"
    )
    p = command("create", cmd_user_create, "create an account", users)
    p.add_argument("name", help="username: letters, digits and underscores")
    p.add_argument("--admin", action="store_true", help="give the account admin rights")
    p.add_argument("--display-name", help="name shown on the profile (default: the username)")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")  # fmt: skip
    command("list", cmd_user_list, "list local accounts", users)

    p = command("lookup", cmd_lookup, "fetch a remote actor or object (WebFinger + signed GET)")
    p.add_argument("target", metavar="HANDLE|URL", help="@user@host, user@host or an https URL")

    p = command("post", cmd_post, "publish a post as USER")
    p.add_argument("user", help="local username")
    p.add_argument("text", help="the text; @user@host mentions and #tags become links")
    p.add_argument("--visibility", choices=VISIBILITIES, default="public",
                   help="who sees it (default public)")  # fmt: skip
    p.add_argument("--reply-to", metavar="URL", help="the post this one answers")
    p.add_argument("--cw", metavar="TEXT", help="content warning shown before the text")
    p.add_argument(
        "--generate",
        metavar="PROMPT",
        action="append",
        default=[],
        help="attach an image made by the image model from PROMPT (repeatable)",
    )
    p.add_argument(
        "--image",
        metavar="PATH",
        action="append",
        default=[],
        help="attach a JPEG, PNG or WebP file (repeatable; needs --alt)",
    )
    p.add_argument(
        "--alt", metavar="TEXT", help="alt text for the images (generated ones: the prompt)"
    )
    for name, method, help_text, target in (
        ("follow", "follow", "follow an account (asks, when it approves followers)", "HANDLE|URL"),
        ("unfollow", "unfollow", "stop following an account", "HANDLE|URL"),
        ("block", "block", "block an account (ends follows both ways)", "HANDLE|URL"),
        ("like", "like", "like a post", "URL"),
        ("unlike", "unlike", "take a like back", "URL"),
        ("boost", "boost", "boost (announce) a post to your followers", "URL"),
        ("unboost", "unboost", "take a boost back", "URL"),
        ("delete", "delete", "delete one of your posts", "URL"),
        ("accept", "accept_follow", "accept a pending follow request (its id)", "URL"),
        ("reject", "reject_follow", "reject a pending follow request (its id)", "URL"),
    ):
        p = command(name, _action(method), help_text)
        p.add_argument("user", help="local username")
        p.add_argument("target", metavar=target)
    p = command("edit", cmd_edit, "change the text of one of your posts")
    p.add_argument("user", help="local username")
    p.add_argument("target", metavar="URL", help="the post")
    p.add_argument("text", help="the new text")
    p = command("feed", cmd_feed, "show USER's home feed, newest first")
    p.add_argument("user", help="local username")
    p.add_argument("--limit", type=int, default=20, help="how many items (default 20)")
    p.add_argument("--json", action="store_true", help="print the items as AS2 JSON")
    p = command("followers", cmd_followers, "list USER's followers (and pending requests)")
    p.add_argument("user", help="local username")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = args.handler(args)
    except FedisocialError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
