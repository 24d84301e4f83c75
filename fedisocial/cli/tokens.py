"""OAuth tokens for scripts and bots: token create, token list, token revoke."""

from __future__ import annotations

import argparse

from fedisocial.auth.tokens import TokenRow, create_personal_token, list_tokens, revoke_token
from fedisocial.cli.instance import settings_of, with_db
from fedisocial.cli.output import echo
from fedisocial.store.db import Database
from fedisocial.urls import Urls


def _scopes(text: str) -> str:
    """``read,write`` or ``read write`` → ``read write``."""
    return " ".join(part for part in text.replace(",", " ").split() if part)


def cmd_token_create(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    scope = _scopes(args.scopes)

    async def create(db: Database) -> tuple[str, int]:
        return await create_personal_token(db, args.user, scope, args.name or "")

    token, token_id = with_db(settings, create)
    echo(f"Token {token_id} for @{args.user}@{Urls(settings.base_url).netloc}, "
         f"scopes {scope or 'read'}:")  # fmt: skip
    echo(token)
    echo("Shown once: keep it somewhere safe. Send it as `Authorization: Bearer TOKEN`; "
         f"`fedisocial token revoke {token_id}` ends it.")  # fmt: skip
    return 0


def _state(row: TokenRow) -> str:
    if row.revoked_at is not None:
        return f"revoked {row.revoked_at:%Y-%m-%d}"
    if row.expires_at is not None:
        return f"expires {row.expires_at:%Y-%m-%d %H:%M}"
    return "active"


def cmd_token_list(args: argparse.Namespace) -> int:
    async def read(db: Database) -> list[TokenRow]:
        return await list_tokens(db, args.user)

    rows = with_db(settings_of(args), read)
    if not rows:
        echo("No tokens yet: `fedisocial token create USER --scopes read,write` makes one.")
    for row in rows:
        echo(f"{row.id:<6} {row.username:<20} {row.scope:<24} {_state(row):<22} "
             f"{row.client_name}  (made {row.created_at:%Y-%m-%d})")  # fmt: skip
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    async def revoke(db: Database) -> None:
        await revoke_token(db, args.id)

    with_db(settings_of(args), revoke)
    echo(f"Token {args.id} is revoked: requests with it now get 401.")
    return 0
