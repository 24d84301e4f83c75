"""What a local account sees: its feed, followers and follows; lookups of actors and posts."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from fedisocial.ap.vocab import as_list
from fedisocial.cli.instance import in_context, settings_of, with_db
from fedisocial.cli.output import echo
from fedisocial.errors import NotFound
from fedisocial.federation.remote import lookup
from fedisocial.social.accounts import find_local_actor, render_actor
from fedisocial.social.content import plain_text
from fedisocial.social.timeline import FeedItem, home_feed
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Follow, Object
from fedisocial.urls import Urls

if TYPE_CHECKING:  # built by in_context when the command runs
    from fedisocial.app import Context


def cmd_lookup(args: argparse.Namespace) -> int:
    doc = in_context(settings_of(args), lambda context: _lookup(context, args.target))
    echo(json.dumps(doc, indent=2, ensure_ascii=False))
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
    return render_actor(await context.outbox.actor_of(target))


async def _local_document(context: Context, uri: str) -> dict[str, Any]:
    async with context.db.session() as session:
        actor = await session.scalar(select(Actor).where(Actor.uri == uri))
        stored = await session.scalar(select(Object).where(Object.uri == uri))
    if actor is not None:
        return render_actor(actor)
    if stored is None or stored.deleted_at is not None:
        raise NotFound(f"nothing at {uri}")
    return stored.data


def cmd_feed(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def read(db: Database) -> tuple[list[FeedItem], dict[str, str]]:
        actor = await find_local_actor(db, Urls(settings.base_url), args.user)
        items = (await home_feed(db, actor.id, limit=args.limit)).items
        authors = {o.actor_uri for i in items for o in (i.object, i.boosted) if o and o.actor_uri}
        return items, await _handles(db, authors)

    items, handles = with_db(settings, read)
    if args.json:
        echo(json.dumps([item.object.data for item in items], indent=2, ensure_ascii=False))
        return 0
    if not items:
        echo("The feed is empty: follow someone with `fedisocial follow USER HANDLE`.")
    shown: set[str] = set()
    for item in items:
        post = item.boosted or item.object
        if post.uri not in shown:  # a post and its boosts (or several boosts) are shown once
            shown.add(post.uri)
            echo(_feed_entry(item, handles))
    return 0


async def _handles(db: Database, uris: set[str]) -> dict[str, str]:
    """``@user@host`` of each actor we know among ``uris``."""
    query = select(Actor.uri, Actor.username, Actor.domain).where(Actor.uri.in_(uris))
    async with db.session() as session:
        return {uri: f"@{name}@{domain}" for uri, name, domain in await session.execute(query)}


_MARKS = {"direct": "  [direct]", "followers": "  [followers only]"}


def _feed_entry(item: FeedItem, handles: dict[str, str]) -> str:
    """A post as a few lines: when, who (and who boosted it), its text indented, its media."""
    post = item.boosted or item.object
    author = handles.get(post.actor_uri or "", post.actor_uri or "")
    head = f"{item.object.published:%Y-%m-%d %H:%M}  "
    if item.object.type == "Announce":
        booster = item.object.actor_uri or ""
        head += f"{handles.get(booster, booster)} boosted {author}:"
    else:
        head += f"{author}{_MARKS.get(post.visibility, '')}"
    body = [f"[CW: {post.data['summary']}]"] if post.data.get("summary") else []
    body += plain_text(post.data.get("content") or "").splitlines()
    body += [_attachment(a) for a in as_list(post.data.get("attachment")) if isinstance(a, dict)]
    body.append(post.uri)
    return "\n".join([head, *(f"    {line}" for line in body)])


def _attachment(attachment: dict[str, Any]) -> str:
    """``[image: alt text]``, ``[video]``..."""
    kind = str(attachment.get("mediaType") or attachment.get("type") or "").lower()
    kind = next((k for k in ("image", "video", "audio") if kind.startswith(k)), "attachment")
    alt = attachment.get("name") or attachment.get("summary")
    return f"[{kind}: {alt}]" if alt else f"[{kind}]"


async def _follows(db: Database, actor_uri: str, *, followers: bool) -> list[tuple[Follow, str]]:
    """The follows to (``followers``) or from ``actor_uri``, each with ``@handle  URI``."""
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
    return [(follow, f"@{name}@{domain}  {uri}" if name else uri)
            for follow, uri, name, domain in rows]  # fmt: skip


def _list_follows(args: argparse.Namespace, *, followers: bool) -> list[tuple[Follow, str]]:
    settings = settings_of(args)

    async def read(db: Database) -> list[tuple[Follow, str]]:
        actor = await find_local_actor(db, Urls(settings.base_url), args.user)
        return await _follows(db, actor.uri, followers=followers)

    return with_db(settings, read)


def cmd_followers(args: argparse.Namespace) -> int:
    follows = _list_follows(args, followers=True)
    if not follows:
        echo(f"{args.user} has no followers yet.")
    for follow, handle in follows:
        waiting = (
            "" if follow.state == "accepted" else f"  pending  FOLLOW-ID: {follow.activity_uri}"
        )
        echo(f"{handle}{waiting}")
    if any(follow.state != "accepted" for follow, _ in follows):
        echo(f"Answer a request with `fedisocial accept|reject {args.user} FOLLOW-ID`.")
    return 0


def cmd_following(args: argparse.Namespace) -> int:
    follows = _list_follows(args, followers=False)
    if not follows:
        echo(f"{args.user} follows nobody yet: `fedisocial follow {args.user} HANDLE`.")
    for follow, handle in follows:
        echo(handle if follow.state == "accepted" else f"{handle}  pending (not answered yet)")
    return 0
