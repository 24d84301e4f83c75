"""Finding the instance a command runs against, and opening its services."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from fedisocial.config import Settings, find_config, load_settings
from fedisocial.store.db import Database

if TYPE_CHECKING:
    from fedisocial.app import Context

T = TypeVar("T")


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings of the instance named by --config, $FEDISOCIAL_CONFIG or ./fedisocial.toml."""
    return load_settings(find_config(args.config))


def with_db(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``action`` with the instance's database only (no HTTP client, no image model)."""

    async def run() -> T:
        db = Database(settings.effective_database_url)
        try:
            return await action(db)
        finally:
            await db.close()

    return asyncio.run(run())


def in_context(settings: Settings, action: Callable[[Context], Awaitable[T]]) -> T:
    """Run ``action`` with all the instance's services, closing them afterwards."""
    # the whole app (HTTP client, image model, web routes): only the commands that act need it
    from fedisocial.app import build_context

    async def run() -> T:
        context = await build_context(settings)
        try:
            return await action(context)
        finally:
            await context.close()

    return asyncio.run(run())
