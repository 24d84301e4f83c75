"""Atom feeds (RFC 4287) of a local account's posts and of a hashtag, for feed readers.

- ``/users/NAME.atom``: the account's newest :data:`FEED_SIZE` posts that anyone may read
  (public and unlisted, as Mastodon's ``/@name.rss``), without boosts and without replies
  to others (its own threads stay).
- ``/tags/NAME.atom``: the newest public posts with the hashtag, ours and other servers'
  (Mastodon's ``/tags/name.rss``).

Each entry links to the post's page (``rel="alternate"``), carries the post's sanitized
HTML as escaped ``type="html"`` content (a content warning first, images after with their
alt text) and its images as ``rel="enclosure"`` links; hashtags are categories. Entries are
built from the same cards the pages show (:func:`~fedisocial.web.pages.cards.cards`), so a
feed says what the page says. The XML is written by :mod:`xml.etree.ElementTree`, which
escapes every text and attribute; characters XML 1.0 cannot carry (most control
characters, which a remote server may send) are dropped first.

Answers may be cached for a minute by anyone (``Cache-Control: public``), carry an
``ETag`` (a ``304`` for ``If-None-Match``) and ``Last-Modified``, and the AI opt-out of
their authors (:func:`~fedisocial.web.robots.robots_headers`).
"""

from __future__ import annotations

import hashlib
import html
import mimetypes
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fedisocial import __version__
from fedisocial.ap.vocab import http_url
from fedisocial.errors import BadRequest
from fedisocial.social import timeline
from fedisocial.social.accounts import find_local_actor
from fedisocial.social.collections import Cursor, Listing, profile_posts, read_page
from fedisocial.social.content import plain_text
from fedisocial.social.opt_outs import opted_out
from fedisocial.store.models import Actor, Object
from fedisocial.web.context import get_context
from fedisocial.web.pages.base import profile_path, tag_path
from fedisocial.web.pages.cards import Card, cards
from fedisocial.web.robots import NOAI, robots_headers

__all__ = ["ATOM_TYPE", "FEED_SIZE", "FeedHead", "atom_document", "routes"]

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
#: entries per feed (Mastodon's RSS page)
FEED_SIZE = 20
#: feeds change often and are read by many: anyone may keep one for a minute (as Mastodon)
FEED_CACHE = "public, max-age=60"
#: longest entry title made from a post's text
TITLE_LENGTH = 80
#: the ``updated`` of a feed that has never had an entry
EPOCH = "1970-01-01T00:00:00.000Z"

_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
#: what XML 1.0 cannot carry (its ``Char`` production): C0 controls but tab, LF and CR,
#: lone surrogates, U+FFFE and U+FFFF
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_LANGUAGE = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")


@dataclass(frozen=True)
class FeedHead:
    """What a feed says about itself; ``author``: (name, uri) of a one-author feed."""

    id: str
    title: str
    subtitle: str
    self_url: str
    page_url: str
    updated: str
    author: tuple[str, str] | None = None
    icon: str | None = None


# -- the document ------------------------------------------------------------------------------


def _xml_text(value: object) -> str:
    return _NOT_XML.sub("", str(value))


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: _xml_text(v) for k, v in attrs.items()})
    if text is not None:
        element.text = _xml_text(text)
    return element


def _author(parent: ET.Element, name: str, uri: str | None) -> None:
    author = _sub(parent, "author")
    _sub(author, "name", name)
    if uri:
        _sub(author, "uri", uri)


def _author_of(card: Card) -> tuple[str, str | None]:
    account = card.status["account"]
    return account["display_name"] or account["username"], http_url(account["url"])


def _title(card: Card) -> str:
    """The content warning, else the text's first line (shortened), else what the post is."""
    status = card.status
    if status["spoiler_text"]:
        return str(status["spoiler_text"])
    text = plain_text(card.content_html).split("\n", 1)[0].strip()
    if len(text) > TITLE_LENGTH:
        text = text[: TITLE_LENGTH - 1].rstrip() + "…"
    if text:
        return text
    name = _author_of(card)[0]
    return f"Image by {name}" if status["media_attachments"] else f"Post by {name}"


def _images(card: Card) -> list[tuple[str, str, str | None]]:
    """(url, alt text, media type) of the post's attachments that have an http(s) URL."""
    found = []
    for index, item in enumerate(card.status["media_attachments"]):
        url = http_url(item.get("url"))
        if url is None:
            continue
        alt = str(item.get("description") or "")
        if index in card.ai_images and "ai" not in alt.lower():
            alt = f"AI-generated image. {alt}".strip()
        found.append((url, alt, mimetypes.guess_type(urlsplit(url).path)[0]))
    return found


def _content(card: Card) -> str:
    """The post as HTML: its content warning, its (sanitized) content, then its images."""
    parts = []
    if card.status["spoiler_text"]:
        parts.append(f"<p><strong>Content warning: "
                     f"{html.escape(card.status['spoiler_text'])}</strong></p>")  # fmt: skip
    parts.append(card.content_html)
    for url, alt, _media_type in _images(card):
        if _media_type is None or _media_type.startswith("image/"):
            parts.append(f'<p><a href="{html.escape(url)}"><img src="{html.escape(url)}" '
                         f'alt="{html.escape(alt)}"></a></p>')  # fmt: skip
        else:
            parts.append(f'<p><a href="{html.escape(url)}">{html.escape(alt or url)}</a></p>')
    return "".join(parts)


def _updated(card: Card) -> str:
    return str(card.status["edited_at"] or card.status["created_at"])


def _entry(feed: ET.Element, card: Card, base_url: str, *, with_author: bool) -> None:
    status = card.status
    entry = _sub(feed, "entry")
    language = status.get("language")
    if isinstance(language, str) and _LANGUAGE.match(language):
        entry.set(_XML_LANG, language)
    _sub(entry, "id", status["uri"])
    _sub(entry, "title", _title(card), type="text")
    _sub(entry, "updated", _updated(card))
    _sub(entry, "published", str(status["created_at"]))
    if with_author:
        _author(entry, *_author_of(card))
    page = http_url(status["url"]) or status["uri"]
    _sub(entry, "link", rel="alternate", type="text/html", href=page)
    for url, alt, media_type in _images(card):
        attrs = {"type": media_type} if media_type else {}
        _sub(entry, "link", rel="enclosure", href=url, title=alt or "attachment", **attrs)
    for tag in status.get("tags", []):
        _sub(entry, "category", term=tag["name"], label=f"#{tag['name']}",
             scheme=f"{base_url}/tags/")  # fmt: skip
    _sub(entry, "content", _content(card), type="html")


def atom_document(head: FeedHead, shown: list[Card], base_url: str) -> bytes:
    """The feed as UTF-8 XML: the head, then an entry per card, newest first."""
    # plain names under a default namespace declared by hand (ElementTree's own
    # ``default_namespace`` refuses attributes without a namespace, such as ``rel``)
    feed = ET.Element("feed", {"xmlns": ATOM_NS})
    _sub(feed, "id", head.id)
    _sub(feed, "title", head.title, type="text")
    if head.subtitle:
        _sub(feed, "subtitle", head.subtitle, type="text")
    _sub(feed, "updated", max([head.updated, *(_updated(card) for card in shown)]))
    if head.author is not None:
        _author(feed, *head.author)
    _sub(feed, "link", rel="self", type="application/atom+xml", href=head.self_url)
    _sub(feed, "link", rel="alternate", type="text/html", href=head.page_url)
    if head.icon:
        _sub(feed, "icon", head.icon)
    _sub(feed, "generator", "fedisocial", version=__version__)
    for card in shown:
        _entry(feed, card, base_url, with_author=head.author is None)
    ET.indent(feed)
    xml: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return xml + b"\n"


# -- answers -----------------------------------------------------------------------------------


def _http_date(rfc3339: str) -> str:
    moment = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    return format_datetime(moment, usegmt=True)


def _answer(request: Request, body: bytes, updated: str, headers: dict[str, str]) -> Response:
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {"Cache-Control": FEED_CACHE, "ETag": etag, "Last-Modified": _http_date(updated),
               "Access-Control-Allow-Origin": "*", **headers}  # fmt: skip
    asked = {tag.strip().removeprefix("W/") for tag in
             request.headers.get("if-none-match", "").split(",")}  # fmt: skip
    if etag in asked or "*" in asked:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=ATOM_TYPE, headers=headers)


async def _feed(request: Request, listing: Listing[Object],
                head: FeedHead) -> tuple[bytes, str, list[Card]]:  # fmt: skip
    context = get_context(request)
    found = await read_page(context.db, listing, Cursor(), FEED_SIZE)
    shown = await cards(context.db, context.urls, None, found.items)
    body = atom_document(head, shown, context.urls.base_url)
    return body, max([head.updated, *(_updated(card) for card in shown)]), shown


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def profile_feed(request: Request) -> Response:
    """``/users/NAME.atom``: a local account's public posts."""
    context = get_context(request)
    actor: Actor = await find_local_actor(context.db, context.urls,
                                          request.path_params["username"])  # fmt: skip
    name = actor.name or actor.username
    handle = f"@{actor.username}@{context.urls.netloc}"
    profile = http_url(actor.url) or f"{context.urls.base_url}{profile_path(actor.username)}"
    head = FeedHead(
        id=context.urls.profile_feed(actor.username), title=f"{name} ({handle})",
        subtitle=plain_text(actor.summary), self_url=context.urls.profile_feed(actor.username),
        page_url=profile, updated=_iso(actor.created_at), author=(name, profile),
        icon=http_url(actor.icon_url) or context.urls.avatar(actor.username),
    )  # fmt: skip
    listing = profile_posts(actor.uri, None, replies=False)
    body, updated, _shown = await _feed(request, listing, head)
    return _answer(request, body, updated, robots_headers(actor))


async def tag_feed(request: Request) -> Response:
    """``/tags/NAME.atom``: the public posts with a hashtag, here and elsewhere."""
    context = get_context(request)
    name = timeline.tag_name(request.path_params["name"])
    if not name:
        raise BadRequest("A hashtag is letters, digits and underscores")
    instance = context.settings.instance_name
    head = FeedHead(
        id=context.urls.hashtag_feed(name), title=f"#{name} on {instance}",
        subtitle=f"Public posts tagged #{name}, from {context.urls.netloc} and the fediverse",
        self_url=context.urls.hashtag_feed(name),
        page_url=f"{context.urls.base_url}{tag_path(name)}", updated=EPOCH,
    )  # fmt: skip
    body, updated, shown = await _feed(request, timeline.tagged(name, None), head)
    # one entry's author opted out: the feed as a whole carries the signal
    authors = [card.status["account"]["uri"] for card in shown]
    marked = await opted_out(context.db, authors)
    return _answer(request, body, updated, {"X-Robots-Tag": NOAI} if marked else {})


routes: list[BaseRoute] = [
    Route("/users/{username}.atom", profile_feed, methods=["GET", "HEAD"]),
    Route("/tags/{name}.atom", tag_feed, methods=["GET", "HEAD"]),
]
