"""A post's page: the thread around it, as Mastodon's web UI and Elk show one.

``/statuses/ID`` (any post we have, local or remote; a boost's id shows the post
it boosts) and, for browsers, a local post's own URI (``/users/NAME/statuses/ID``,
``/@NAME/ID``: :func:`fedisocial.web.pages.public.post_page` renders the same
page there, so link previews of the canonical URL read the post). Above: the
posts it replies to that we have (the thread's first post first), and a link
to the one we miss; then the post itself, highlighted, with the reply composer
in place for a signed-in person; below: the replies we have, depth first. Only
what the viewer may read is shown (:func:`fedisocial.social.statuses.ancestors`
and ``descendants`` filter); a post the viewer may not read is 404.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from fedisocial.ap.vocab import http_url
from fedisocial.errors import NotFound
from fedisocial.federation.remote import fetch_parents
from fedisocial.social import relations, statuses
from fedisocial.social.content import plain_text, sanitize
from fedisocial.social.statuses import readable_status
from fedisocial.store.models import Actor, Object
from fedisocial.web.context import get_context
from fedisocial.web.pages.base import page, thread_path, viewer
from fedisocial.web.pages.cards import Card, cards
from fedisocial.web.pages.compose import composer_values
from fedisocial.web.robots import NOAI, robots_content, robots_headers
from fedisocial.web.session import current_session

__all__ = ["robots", "routes", "thread_page"]

#: replies are indented by how deep they are in the thread, at most this many steps
_MAX_DEPTH = 4


def _status_id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound("There is no such post here")
    return int(raw)


async def thread(request: Request) -> Response:
    """``/statuses/ID``: the thread of a post the viewer may read (404 otherwise)."""
    me = await viewer(request)
    db = get_context(request).db
    row = await readable_status(db, _status_id(request.path_params["id"]), me.uri if me else None)
    if row.type == "Announce":  # a boost's page is its post's
        post = await statuses.target_of(db, row)
        return RedirectResponse(thread_path(post.id), 302)
    return await thread_page(request, row, me)


def _image(card: Card) -> str | None:
    for item in card.status.get("media_attachments", []):
        if item.get("type") == "image":
            return str(item.get("preview_url") or item.get("url"))
    return None


async def thread_page(request: Request, post: Object, me: Actor | None) -> Response:
    """The page of ``post`` (which ``me`` may read: the caller checked) with its thread."""
    context = get_context(request)
    who = me.uri if me else None
    above = await statuses.ancestors(context.db, post, who)
    top = above[0] if above else post
    session = await current_session(request)
    if session is not None and _is_remote(request, top.in_reply_to):
        # someone signed in opens a thread whose beginning we miss: fetch it (bounded)
        found = await fetch_parents(context.db, context.client, top,
                                    max_age=context.outbox.actor_max_age)  # fmt: skip
        if found:
            above = await statuses.ancestors(context.db, post, who)
    below = await statuses.descendants(context.db, post, who)
    authors = await relations.actors_by_uri(
        context.db, list(dict.fromkeys(p.actor_uri for p in [post, *above, *below] if p.actor_uri))
    )
    if me is not None:  # as Mastodon's context: not the posts of whom the viewer blocks, mutes
        hidden = await _silenced(request, me, [a for a in authors if a.uri != me.uri])
        above = [p for p in above if p.actor_uri not in hidden]
        below = [p for p in below if p.actor_uri not in hidden]
        authors = [a for a in authors if a.uri not in hidden]
    shown = await cards(context.db, context.urls, me, [*above, post, *below])
    by_id = {card.status["id"]: card for card in shown}
    depth = {post.uri: 0}
    for reply in below:  # depth first: a reply's parent comes before it
        depth[reply.uri] = min(depth.get(reply.in_reply_to or "", 0) + 1, _MAX_DEPTH)
    focus = by_id.get(str(post.id))
    # the post it answers, when we do not have it (or may not show it): a link to it
    first = above[0] if above else post
    # (one of ours that is not shown is not for this viewer: no link)
    missing = first.in_reply_to if _is_remote(request, first.in_reply_to) else None
    composer = None
    if session is not None and focus is not None:
        composer = await composer_values(request, session.actor, post)
    status = focus.status if focus else None
    partial = None if focus else _partial(post)
    canonical = post.uri if post.local else f"{context.urls.base_url}{thread_path(post.id)}"
    author = next((a for a in authors if a.uri == post.actor_uri), None)
    meta_robots, robots_header = robots(
        request, authors, noindex=not post.local or author is None or not author.indexable
    )
    response = await page(
        request,
        "thread.html",
        robots=meta_robots,
        post=post,
        focus=focus,
        above=[by_id[str(p.id)] for p in above if str(p.id) in by_id],
        below=[(by_id[str(p.id)], depth[p.uri]) for p in below if str(p.id) in by_id],
        missing=missing,
        composer=composer,
        canonical=canonical,
        original=(status.get("url") or post.uri) if status and not post.local else None,
        image=_image(focus) if focus else None,
        partial=partial,
        meta=_meta(focus, partial, context.urls.netloc),
    )
    response.headers.update(robots_header)
    return response


def robots(request: Request, authors: Sequence[Actor | None], *,
           noindex: bool) -> tuple[str | None, dict[str, str]]:  # fmt: skip
    """A page's ``<meta name="robots">`` content and its headers, for the authors it shows.

    The AI opt-out (:mod:`fedisocial.web.robots`) is the header; its middleware adds the
    meta tag, except to a page that has one: so a page that says ``noindex`` says the
    opt-out in the same tag.
    """
    ai = robots_content(*authors)
    if ai is None and get_context(request).settings.ai_crawlers == "block":
        ai = NOAI
    meta = ", ".join(["noindex", *([ai] if ai else [])]) if noindex else None
    return meta, robots_headers(*authors)


def _is_remote(request: Request, uri: str | None) -> bool:
    return bool(uri and http_url(uri) and not get_context(request).urls.is_local(uri))


async def _silenced(request: Request, me: Actor, authors: list[Actor]) -> set[str]:
    """The ``authors`` that ``me`` blocks or mutes."""
    found = await relations.relationships(get_context(request).db, me, authors)
    return {a.uri for a, r in zip(authors, found, strict=True) if r.blocking or r.muting}


def _meta(focus: Card | None, partial: dict[str, str | None] | None,
          netloc: str) -> dict[str, str]:  # fmt: skip
    """What the title and the link previews say: who, and the text (never behind a warning)."""
    if focus is not None:
        account = focus.status["account"]
        author = str(account["display_name"] or account["username"])
        acct = str(account["acct"])
        handle = f"@{acct}" if "@" in acct else f"@{acct}@{netloc}"
        warning = str(focus.status.get("spoiler_text") or "")
        text = plain_text(focus.content_html)
    else:
        assert partial is not None
        author, handle = partial["author"] or "Someone", ""
        warning, text = partial["summary"] or "", plain_text(partial["content_html"] or "")
    about = f"Content warning: {warning}" if warning else _shorten(text, 160)
    return {"author": author, "handle": handle, "warning": warning, "text": text,
            "about": about}  # fmt: skip


def _shorten(text: str, length: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


def _partial(post: Object) -> dict[str, str | None]:
    """What a post shows without its author's account (we do not have it): its text."""
    summary = post.data.get("summary")
    return {
        "content_html": sanitize(str(post.data.get("content") or "")),
        "summary": summary if isinstance(summary, str) and summary else None,
        "author": http_url(post.actor_uri),
        "url": http_url(post.data.get("url")) or http_url(post.uri),
    }


routes: list[BaseRoute] = [Route("/statuses/{id}", thread, methods=["GET"])]
