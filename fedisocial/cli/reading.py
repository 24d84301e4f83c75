"""What a local account sees: its feed and followers; lookups of remote documents."""

from __future__ import annotations

import argparse
import json

from sqlalchemy import select

from fedisocial.app import Context
from fedisocial.cli.instance import in_context
from fedisocial.federation.remote import lookup
from fedisocial.social.accounts import find_local_actor
from fedisocial.social.content import plain_text
from fedisocial.social.timeline import FeedItem, home_feed
from fedisocial.store.models import Follow


def cmd_lookup(args: argparse.Namespace) -> int:
    doc = in_context(args, lambda c: lookup(c.db, c.client, args.target))
    print(json.dumps(doc, indent=2, ensure_ascii=False))
    return 0


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


def cmd_followers(args: argparse.Namespace) -> int:
    async def read(context: Context) -> list[Follow]:
        actor = await find_local_actor(context.db, context.urls, args.user)
        async with context.db.session() as session:
            query = select(Follow).where(Follow.followee_uri == actor.uri).order_by(Follow.id)
            return list(await session.scalars(query))

    follows = in_context(args, read)
    if not follows:
        print(f"{args.user} has no followers yet.")
    for follow in follows:
        waiting = "" if follow.state == "accepted" else f"  (pending: {follow.activity_uri})"
        print(f"{follow.follower_uri}{waiting}")
    return 0
