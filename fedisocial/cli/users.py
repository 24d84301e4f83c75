"""Local accounts: user create, list, set, and approve or reject waiting sign-ups."""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fedisocial.cli.instance import in_context, settings_of, with_db
from fedisocial.cli.output import echo
from fedisocial.errors import FedisocialError
from fedisocial.social.accounts import (
    approve,
    create_user,
    list_users,
    pending_users,
    reject,
    set_locked,
)
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, User
from fedisocial.urls import Urls

if TYPE_CHECKING:  # the whole app is imported by `user set` only, when it runs
    from fedisocial.app import Context


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
    settings = settings_of(args)
    urls = Urls(settings.base_url)
    password, generated = _read_password(args)

    async def create(db: Database) -> None:
        await create_user(db, urls, args.name, password, is_admin=args.admin,
                          display_name=args.display_name or "")  # fmt: skip

    with_db(settings, create)
    echo(f"Created {'admin ' if args.admin else ''}@{args.name}@{urls.netloc}")
    echo(f"  profile: {urls.profile(args.name)}")
    echo(f"  actor:   {urls.actor(args.name)}")
    if generated:
        echo(f"  password: {password}   (shown once; keep it somewhere safe)")
    echo(f"Others find this account by searching for @{args.name}@{urls.netloc}.")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    pending = getattr(args, "pending", False)
    rows: list[tuple[User, Actor]] = with_db(settings_of(args),
                                             pending_users if pending else list_users)  # fmt: skip
    if not rows:
        echo("No sign-up waits for approval." if pending else
             "No accounts yet: `fedisocial user create NAME --admin` makes the first.")  # fmt: skip
    for user, actor in rows:
        role = "admin" if user.is_admin else "user" if user.approved else "waits"
        echo(f"{user.username:<20} {role:<6} {actor.uri}  joined {user.created_at:%Y-%m-%d}")
        if pending and user.sign_up_reason:
            echo(f"    why: {' '.join(user.sign_up_reason.split())}")
    return 0


def _decide_sign_up(args: argparse.Namespace,
                    decide: Callable[[Database, str], Awaitable[User]]) -> User:  # fmt: skip
    return with_db(settings_of(args), lambda db: decide(db, args.name))


def cmd_user_approve(args: argparse.Namespace) -> int:
    user = _decide_sign_up(args, approve)
    netloc = Urls(settings_of(args).base_url).netloc
    echo(f"@{user.username}@{netloc} is approved and can sign in now")
    return 0


def cmd_user_reject(args: argparse.Namespace) -> int:
    user = _decide_sign_up(args, reject)
    echo(f"The sign-up of @{user.username} is refused; its account is deleted")
    return 0


def cmd_user_set(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    urls = Urls(settings.base_url)

    async def change(context: Context) -> None:
        actor = await set_locked(context.db, urls, args.name, locked=args.locked)
        await context.outbox.update_profile(actor)

    in_context(settings, change)
    if args.locked:
        echo(f"@{args.name}@{urls.netloc} now approves each follower: `fedisocial followers "
              f"{args.name}` lists the requests, `fedisocial accept|reject {args.name} FOLLOW-ID` "
              "answers them")  # fmt: skip
    else:
        echo(f"@{args.name}@{urls.netloc} now accepts followers at once")
    return 0
