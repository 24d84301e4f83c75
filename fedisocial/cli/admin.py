"""Setting an instance up and running it: init, migrate, config, serve, worker.

How serve and worker run is in :mod:`fedisocial.cli.serving`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from urllib.parse import urlsplit

from fedisocial import __version__
from fedisocial.cli.instance import settings_of
from fedisocial.cli.output import echo
from fedisocial.cli.tls import check_tls_files
from fedisocial.config import Settings, config_path, example_toml, load_settings
from fedisocial.social.accounts import ensure_instance_actor, list_users
from fedisocial.store.db import Database, migrate, pending_migrations, require_current_schema
from fedisocial.urls import Urls


async def _migrate(settings: Settings) -> int:
    """Apply the pending migrations; returns how many there were."""
    db = Database(settings.effective_database_url)
    try:
        pending = await pending_migrations(db)
        await migrate(db)
        await ensure_instance_actor(db, Urls(settings.base_url))
    finally:
        await db.close()
    return len(pending)


def cmd_init(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    wrote = not path.exists()
    if not wrote:
        echo(f"Using the existing configuration in {path}")
    else:
        text = example_toml(
            base_url=args.base_url, data_dir=args.data_dir, database_url=args.database_url
        )
        path.write_text(text, encoding="utf-8")
        echo(f"Wrote {path} (edit it to set your domain, name and database)")
    settings = load_settings(path)
    migrated = asyncio.run(_migrate(settings))
    echo(f"Database ready: {_mask_url(settings)}")
    if wrote or migrated:
        echo("Next: `fedisocial user create NAME --admin`, then `fedisocial serve`.")
    return 0


def _mask_url(settings: Settings) -> str:
    return dict((name, value) for name, value, _ in settings.describe())["(effective database)"]


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    asyncio.run(_migrate(settings))
    echo(f"Database schema is current: {_mask_url(settings)}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    echo(f"# from {config_path(args.config)} and FEDISOCIAL_* variables")
    rows = settings.describe()
    width = max(len(name) for name, _, _ in rows)
    for name, value, env in rows:
        echo(f"{name:<{width}}  {value:<40}  {env}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fedisocial.cli.serving import JobWorkerProcess

    settings = settings_of(args)
    if args.config:
        os.environ["FEDISOCIAL_CONFIG"] = str(args.config)
    tls = check_tls_files(args.ssl_certfile, args.ssl_keyfile)
    asyncio.run(_preflight(settings, args.host, args.port, tls=tls))
    job_worker = None if args.no_worker else JobWorkerProcess()
    if job_worker is not None:
        job_worker.start()
    try:
        uvicorn.run(
            "fedisocial.app:app_from_environment",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=settings.log_level,
            proxy_headers=True,
            server_header=False,
            # open live streams (/live, the streaming API) must not hold a shutdown up
            timeout_graceful_shutdown=5,
            access_log=settings.log_level == "debug",
            ssl_certfile=args.ssl_certfile,
            ssl_keyfile=args.ssl_keyfile,
        )
    finally:
        if job_worker is not None:
            job_worker.stop()
    return 0


async def _preflight(settings: Settings, host: str, port: int, *, tls: bool) -> None:
    """Refuse to start on an outdated schema; greet the admin with what to do next."""
    db = Database(settings.effective_database_url)
    try:
        await require_current_schema(db)
        users = await list_users(db)
    finally:
        await db.close()
    echo(f"fedisocial {__version__}: {settings.instance_name} at {settings.base_url}")
    scheme = "https" if tls else "http"
    echo(f"listening on {scheme}://{host}:{port}")
    public = urlsplit(settings.base_url)
    if public.hostname in ("127.0.0.1", "localhost", "::1"):
        if public.port not in (None, port):
            echo(
                f"warning: base_url is {settings.base_url} but the server listens on port "
                f"{port}; links and federation will use base_url (set it in the config file)"
            )
        if public.scheme != scheme:
            fix = "make base_url https://" if tls else "give --ssl-certfile and --ssl-keyfile"
            echo(f"warning: base_url is {settings.base_url} but the server speaks {scheme}: {fix}")
    if not users:
        echo("No accounts yet. Create the first one in another terminal:")
        echo("    .venv/bin/fedisocial user create alice --admin")


def cmd_worker(args: argparse.Namespace) -> int:
    from fedisocial.cli.serving import run_worker

    run_worker(settings_of(args), args.concurrency)
    return 0
