"""What a local account sees: its feed and followers; lookups of remote documents."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sqlalchemy import select

from fedisocial.app import Context
from fedisocial.cli.instance import in_context
from fedisocial.errors import NotFound
from fedisocial.federation.remote import lookup
from fedisocial.social.accounts import find_local_actor, render_actor
from fedisocial.social.content import plain_text
from fedisocial.social.timeline import FeedItem, home_feed
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Follow, Object


def cmd_lookup(args: argparse.Namespace) -> int:
    doc = in_context(args, lambda context: _lookup(context, args.target))
    print(json.dumps(doc, indent=2, ensure_ascii=False))
    return 0


async def _lookup(context: Context, target: str) -> dict[str, Any]:
    """Our own actors and objects from the database; anything else from its server."""
    urls = context.urls
    if target.startswith(("https://", "http://")):
        if not urls.is_local(target):
            return await lookup(context.db, context.client, target)
        if urls.local_username(target) is None:
            return await _local_document(context, target)
    elif target.strip().lstrip("@").partition("@")[2].lower() not in ("", urls.netloc):
        return await lookup(context.db, context.client, target)
    return render_actor(await context.outbox.actor_of(target), urls)


async def _local_document(context: Context, uri: str) -> dict[str, Any]:
    async with context.db.session() as session:
        actor = await session.scalar(select(Actor).where(Actor.uri == uri))
        stored = await session.scalar(select(Object).where(Object.uri == uri))
    if actor is not None:
        return render_actor(actor, context.urls)
    if stored is None or stored.deleted_at is not None:
        raise NotFound(f"nothing at {uri}")
    return stored.data


def cmd_feed(args: argparse.Namespace) -> int:
    async def read(context: Context) -> list[FeedItem]:
        actor = await find_local_actor(context.db, context.urls, args.user)
        return (await home_feed(context.db, actor.id, limit=args.limit)).items

    items = in_context(args, read)
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


async def _follows(db: Database, actor_uri: str, *, followers: bool) -> list[tuple[Follow, str]]:
    """The follows to (``followers``) or from ``actor_uri``, each with the other side's handle."""
    mine, other = (Follow.followee_uri, Follow.follower_uri) if followers else (
        Follow.follower_uri, Follow.followee_uri)  # fmt: skip
    query = (
        select(Follow, other, Actor.username, Actor.domain)
        .outerjoin(Actor, Actor.uri == other)
        .where(mine == actor_uri)
        .order_by(Follow.id)
    )
    async with db.session() as session:
        rows = await session.execute(query)
    return [(follow, f"@{name}@{domain}" if name else uri) for follow, uri, name, domain in rows]


def _list_follows(args: argparse.Namespace, *, followers: bool) -> list[tuple[Follow, str]]:
    async def read(context: Context) -> list[tuple[Follow, str]]:
        actor = await find_local_actor(context.db, context.urls, args.user)
        return await _follows(context.db, actor.uri, followers=followers)

    return in_context(args, read)


def cmd_followers(args: argparse.Namespace) -> int:
    follows = _list_follows(args, followers=True)
    if not follows:
        print(f"{args.user} has no followers yet.")
    for follow, handle in follows:
        waiting = (
            "" if follow.state == "accepted" else f"  pending  FOLLOW-ID: {follow.activity_uri}"
        )
        print(f"{handle}{waiting}")
    if any(follow.state != "accepted" for follow, _ in follows):
        print(f"Answer a request with `fedisocial accept|reject {args.user} FOLLOW-ID`.")
    return 0


def cmd_following(args: argparse.Namespace) -> int:
    follows = _list_follows(args, followers=False)
    if not follows:
        print(f"{args.user} follows nobody yet: `fedisocial follow {args.user} HANDLE`.")
    for follow, handle in follows:
        print(handle if follow.state == "accepted" else f"{handle}  pending (not answered yet)")
    return 0
