"""The posts a C2S client sends, made into ours (ActivityPub §6.2 and §6.3).

A client's ``Note`` (or ``Article``) is read tolerantly and rebuilt by
:func:`fedisocial.ap.render.note`, so a post from a client and one from our own
pages cannot differ in shape. The text comes from, in this order:

- ``source`` with ``mediaType`` ``text/plain`` (rendered like our own posts:
  links, mentions and hashtags) or ``text/markdown`` (CommonMark, raw HTML off,
  then sanitized);
- ``content`` (or the first entry of ``contentMap``): HTML is sanitized with
  Mastodon's allow-list; text without any tag is rendered as plain text, as
  the ``ap`` client sends it.

Addressing is the client's (§6.2.1: the object's and the activity's ``to``,
``cc``, ``bto``, ``bcc`` and ``audience`` merged), plus whoever the post mentions
and the author replied to, and the followers of a public or unlisted post (the
``ap`` client addresses ``--public`` posts to Public only), the way Mastodon
addresses them; ``bto``/``bcc`` are
delivered to but never stored or shown. The visibility of the post is read from
that addressing as Mastodon reads it (``fedisocial.ap.addressing``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from markdown_it import MarkdownIt

from fedisocial.ap import render as as2
from fedisocial.ap.vocab import ADDRESSING, AS_PUBLIC, as_list, get_id, http_url, normalize
from fedisocial.errors import BadRequest
from fedisocial.social.content import (
    MentionTarget,
    find_hashtags,
    plain_text,
    render,
    sanitize,
)
from fedisocial.social.outbox import Outbox, check_length
from fedisocial.store.models import Actor, Object, utcnow

__all__ = [
    "POSTABLE",
    "Draft",
    "client_addressing",
    "edit_context",
    "make_note",
    "merge_partial",
    "new_context",
]

#: what a client may post (bare, or in a Create)
POSTABLE = frozenset({"Note", "Article"})
_TEXT_TYPES = ("text/plain", "text/markdown")
_TAG = re.compile(r"<[A-Za-z!/]")
_MAX_NAME = 500
_LANGUAGE = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$|^und$")


@dataclass
class Draft:
    """A client's post as we will store it: the Note, and who gets it unseen."""

    note: dict[str, Any]
    #: ``bto`` and ``bcc``: delivered to, never written in the Note or the Create
    hidden: list[str] = field(default_factory=list)


def client_addressing(activity: Mapping[str, Any], obj: Mapping[str, Any]) -> dict[str, list[str]]:
    """The object's and the activity's addressing merged (§6.2.1: a Create and its object
    address the same people), normalized: ``as:Public`` and ``Public`` read as Public."""
    one, two = normalize(dict(activity)), normalize(dict(obj))
    return {key: list(dict.fromkeys([*two[key], *one[key]])) for key in ADDRESSING}


def _text(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be a string")
    return value


def _language_map(obj: Mapping[str, Any], name: str) -> dict[str, str] | None:
    value = obj.get(f"{name}Map")
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise BadRequest(f"{name}Map must map language tags to strings")
    for language, text in value.items():
        if not _LANGUAGE.match(language) or not isinstance(text, str):
            raise BadRequest(f"{name}Map must map language tags to strings, not {language!r}")
    return dict(value)


def _is_html(text: str) -> bool:
    return bool(_TAG.search(text))


_MARKDOWN = MarkdownIt("commonmark", {"html": False})


@dataclass(frozen=True)
class _Body:
    html: str
    mentions: tuple[MentionTarget, ...]
    hashtags: tuple[str, ...]
    source: dict[str, str] | None


async def _from_text(outbox: Outbox, text: str) -> _Body:
    mentions = await outbox.mentions(text)
    rendered = render(text, mentions, outbox.urls.hashtag)
    return _Body(rendered.html, rendered.mentions, rendered.hashtags, None)


async def _from_source(outbox: Outbox, source: Any) -> _Body:
    if not isinstance(source, dict) or not isinstance(source.get("content"), str):
        raise BadRequest("source must be an object with content (a string) and a mediaType")
    kind = source.get("mediaType", "text/plain")
    if kind not in _TEXT_TYPES:
        raise BadRequest(f"source.mediaType must be text/plain or text/markdown, not {kind!r}")
    text = source["content"]
    check_length(text)
    kept = {"content": text, "mediaType": kind}
    if kind == "text/plain":
        body = await _from_text(outbox, text)
        return _Body(body.html, body.mentions, body.hashtags, kept)
    mentions = await outbox.mentions(text)
    html = sanitize(_MARKDOWN.render(text))
    return _Body(html, tuple(mentions.values()), tuple(find_hashtags(text)), kept)


async def _from_content(outbox: Outbox, content: str) -> _Body:
    if not _is_html(content):
        check_length(content)
        return await _from_text(outbox, content)
    html = sanitize(content)
    check_length(plain_text(html))
    return _Body(html, (), (), None)


def _clean_map(values: dict[str, str] | None, *, plain: bool = False) -> dict[str, str] | None:
    if values is None:
        return None
    if plain:
        return {k: plain_text(v)[:_MAX_NAME] for k, v in values.items()}
    return {k: sanitize(v) for k, v in values.items()}


async def _body(outbox: Outbox, obj: Mapping[str, Any]) -> tuple[_Body, dict[str, str] | None]:
    """The post's HTML (and its ``contentMap``, each language sanitized)."""
    content_map = _language_map(obj, "content")
    for value in (content_map or {}).values():
        check_length(plain_text(sanitize(value)))
    if obj.get("source") is not None:
        return await _from_source(outbox, obj["source"]), _clean_map(content_map)
    content = _text(obj.get("content"), "content")
    if content is None and content_map:
        content = next(iter(content_map.values()))
    return await _from_content(outbox, content or ""), _clean_map(content_map)


def _client_tags(obj: Mapping[str, Any]) -> tuple[list[as2.Mention], list[str]]:
    """The Mention and Hashtag entries of the client's ``tag`` (others are dropped)."""
    mentions, hashtags = [], []
    for item in as_list(obj.get("tag")):
        if not isinstance(item, dict):
            continue
        name = str(item["name"]) if isinstance(item.get("name"), str) else ""
        if item.get("type") == "Mention" and (href := http_url(get_id(item.get("href")))):
            mentions.append(as2.Mention(href, name.lstrip("@") or href))
        elif item.get("type") == "Hashtag" and name.lstrip("#"):
            hashtags.append(name.lstrip("#"))
    return mentions, hashtags


@dataclass(frozen=True)
class _Context:
    """What a post is made from besides the client's object: its id, time and parent."""

    uri: str
    published: datetime
    in_reply_to: str | None = None
    replied_to: str | None = None
    updated: datetime | None = None


async def make_note(
    outbox: Outbox,
    actor: Actor,
    obj: Mapping[str, Any],
    addressing: Mapping[str, list[str]],
    attachments: Sequence[Mapping[str, Any]],
    where: _Context,
) -> Draft:
    """Our Note for a client's object (see the module docstring); BadRequest naming the fault."""
    kind = obj.get("type", "Note")
    body, content_map = await _body(outbox, obj)
    summary = _text(obj.get("summary"), "summary")
    summary_map = _clean_map(_language_map(obj, "summary"))
    if summary is None and summary_map:
        summary = next(iter(summary_map.values()))
    tagged, tags = _client_tags(obj)
    mentions = [as2.Mention(m.uri, m.acct) for m in body.mentions]
    mentions += [m for m in tagged if m.href not in {n.href for n in mentions}]
    hashtags = list(dict.fromkeys([*body.hashtags, *tags]))
    if not plain_text(body.html) and not attachments and kind != "Article":
        raise BadRequest("a post needs text (content or source) or an attachment")
    cc = list(addressing["cc"])
    everyone = {*addressing["to"], *cc}
    if AS_PUBLIC in everyone and actor.followers_url not in everyone:
        cc.append(str(actor.followers_url))  # a public post reaches the followers (Mastodon)
    mentioned = [m.href for m in mentions]
    if where.replied_to and where.replied_to != actor.uri:
        mentioned.append(where.replied_to)
    everyone = {*addressing["to"], *cc}
    cc += [m for m in dict.fromkeys(mentioned) if m not in everyone]
    post = as2.Note(
        id=where.uri, attributed_to=actor.uri, content=body.html, published=where.published,
        to=addressing["to"], cc=cc, in_reply_to=where.in_reply_to,
        summary=sanitize(summary) if summary else None, mentions=mentions, hashtags=hashtags,
        attachments=attachments, updated=where.updated,
    )  # fmt: skip
    note = as2.note(post, outbox.urls)
    _extras(note, obj, kind, body, content_map, summary_map, addressing)
    hidden = [r for r in [*addressing["bto"], *addressing["bcc"]] if r not in everyone]
    return Draft(note, hidden)


def _extras(
    note: dict[str, Any],
    obj: Mapping[str, Any],
    kind: str,
    body: _Body,
    content_map: dict[str, str] | None,
    summary_map: dict[str, str] | None,
    addressing: Mapping[str, list[str]],
) -> None:
    """What :func:`fedisocial.ap.render.note` does not write: type, maps, title, source."""
    note["type"] = kind
    if content_map:
        note["contentMap"] = content_map
    if summary_map:
        note["summaryMap"] = summary_map
    if obj.get("sensitive") is True:
        note["sensitive"] = True
    name = _text(obj.get("name"), "name")
    name_map = _clean_map(_language_map(obj, "name"), plain=True)
    if name is not None:
        note["name"] = plain_text(name)[:_MAX_NAME]
    if name_map:
        note["nameMap"] = name_map
    if kind == "Article" and not note.get("name"):
        raise BadRequest("an Article needs a name (its title)")
    if body.source is not None:
        note["source"] = body.source
    if addressing["audience"]:
        note["audience"] = addressing["audience"]


# -- partial updates (§6.3) ------------------------------------------------------------------

#: properties an Update may change, each with the ones it replaces
_REPLACES = {
    "content": ("content", "contentMap", "source"),
    "contentMap": ("content", "contentMap", "source"),
    "source": ("content", "contentMap", "source"),
    "summary": ("summary", "summaryMap"),
    "summaryMap": ("summary", "summaryMap"),
    "name": ("name", "nameMap"),
    "nameMap": ("name", "nameMap"),
    "sensitive": ("sensitive",),
    "tag": ("tag",),
}
#: what the stored Note keeps of what its author sent, to be read again on an update
_KEPT = ("type", "content", "contentMap", "source", "summary", "summaryMap", "name", "nameMap",
         "sensitive", "tag")  # fmt: skip
_FIXED = frozenset({"id", "type", "@context", "attributedTo", "published", "updated", "url",
                    "to", "cc", "bto", "bcc", "audience", "inReplyTo", "attachment", "replies",
                    "likes", "shares"})  # fmt: skip


def merge_partial(stored: Mapping[str, Any], sent: Mapping[str, Any]) -> dict[str, Any]:
    """The client object an Update means: the stored post with only the sent properties
    changed (§6.3.1); a property sent as null is removed. Others than text, title, content
    warning and tags cannot change (400), except that sending them unchanged is fine."""
    changing = [k for k in sent if k not in _FIXED and k in _REPLACES]
    refused = [k for k in sent if k not in _FIXED and k not in _REPLACES]
    if refused:
        raise BadRequest(f"an Update of a post cannot change {', '.join(sorted(refused))}")
    moved = [k for k in ("to", "cc", "inReplyTo", "attachment") if k in sent
             and sent[k] != stored.get(k)]  # fmt: skip
    if moved:
        raise BadRequest(f"an Update cannot change a post's {', '.join(moved)}")
    base = {k: stored[k] for k in _KEPT if k in stored}
    if "source" in stored and not _is_html(str(stored["source"].get("content", ""))):
        base.pop("content", None)  # the source is the text; the content was made from it
    for key in changing:
        for replaced in _REPLACES[key]:
            base.pop(replaced, None)
    for key in changing:
        if sent[key] is not None:
            base[key] = sent[key]
    text_changes = any(k in changing for k in _REPLACES["content"])
    if text_changes and "tag" not in changing:
        base.pop("tag", None)  # made again from the new text, as for a new post
    return base


def edit_context(row: Object, replied_to: str | None) -> _Context:
    """Where an edited post stays: its id, time and parent; now is when it was updated."""
    return _Context(row.uri, row.published, row.in_reply_to, replied_to, updated=utcnow())


def new_context(uri: str, parent: Object | None) -> _Context:
    return _Context(uri, utcnow(), parent.uri if parent else None,
                    parent.actor_uri if parent else None)  # fmt: skip
