"""Editing one's own profile: what changes, checked, stored and federated as an ``Update``.

Both ways of editing come here: a Mastodon app's ``update_credentials`` (plain
text, as Mastodon's settings page writes it) and a C2S client's ``Update`` of its
actor (HTML or plain text). Only what a :class:`ProfileChange` sets changes; the
followers then get the actor document again (Mastodon sends the same ``Update``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from fedisocial.errors import BadRequest
from fedisocial.social.content import plain_text, render, sanitize
from fedisocial.social.outbox import Outbox
from fedisocial.store.models import Actor, Object

__all__ = ["MAX_BIO", "MAX_DISPLAY_NAME", "MAX_FIELDS", "ProfileChange", "change_profile"]

MAX_DISPLAY_NAME = 100
MAX_BIO = 5000
#: profile fields (Mastodon's ``DEFAULT_FIELDS_SIZE``) and the length of each name and value
MAX_FIELDS = 4
MAX_FIELD_TEXT = 255
_ONE_PARAGRAPH = re.compile(r"^<p>(.*)</p>$", re.DOTALL)


@dataclass(frozen=True)
class ProfileChange:
    """What to change; None leaves it as it is."""

    #: the display name, as text
    name: str | None = None
    #: the bio as plain text (rendered with links and hashtags, as Mastodon does)
    note: str | None = None
    #: the bio as a C2S client sends it: HTML (sanitized) or plain text (rendered)
    summary: str | None = None
    #: the profile fields as (name, value) text pairs; they replace the old ones
    fields: Sequence[tuple[str, str]] | None = None
    locked: bool | None = None
    bot: bool | None = None
    discoverable: bool | None = None
    indexable: bool | None = None
    #: opt out of AI use of one's posts and images (FEP-5e53 ``noai``)
    noai: bool | None = None
    #: URLs of the new avatar and header (stored by the caller)
    icon_url: str | None = None
    image_url: str | None = None


def _check(change: ProfileChange) -> None:
    if change.name is not None and len(plain_text(change.name)) > MAX_DISPLAY_NAME:
        raise BadRequest(f"the name can have at most {MAX_DISPLAY_NAME} characters")
    for bio in (change.note, change.summary):
        if bio is not None and len(plain_text(bio)) > MAX_BIO:
            raise BadRequest(f"the summary can have at most {MAX_BIO} characters")
    if change.fields is not None:
        if len(change.fields) > MAX_FIELDS:
            raise BadRequest(f"a profile can have at most {MAX_FIELDS} fields")
        for name, value in change.fields:
            if len(name) > MAX_FIELD_TEXT or len(value) > MAX_FIELD_TEXT:
                raise BadRequest(f"a field's name and value can have at most "
                                 f"{MAX_FIELD_TEXT} characters each")  # fmt: skip


def _inline(outbox: Outbox, text: str) -> str:
    """One line of plain text as HTML with links (a field's value): no paragraph around it."""
    html = render(text.replace("\n", " "), {}, outbox.urls.hashtag).html
    found = _ONE_PARAGRAPH.match(html)
    return found[1] if found else html


def _apply(outbox: Outbox, row: Actor, change: ProfileChange) -> None:
    tag_url = outbox.urls.hashtag
    if change.name is not None:
        row.name = plain_text(change.name)
    if change.note is not None:
        row.summary = render(change.note, {}, tag_url).html if change.note.strip() else ""
    if change.summary is not None:
        summary = change.summary
        row.summary = sanitize(summary) if "<" in summary else render(summary, {}, tag_url).html
    if change.fields is not None:
        kept = [(name.strip(), value) for name, value in change.fields
                if name.strip() or value.strip()]  # fmt: skip
        row.fields = [{"name": name, "value": _inline(outbox, value)} for name, value in kept]
    if change.bot is not None and row.type in ("Person", "Service"):
        row.type = "Service" if change.bot else "Person"
    changed = {"manually_approves_followers": change.locked, "discoverable": change.discoverable,
               "indexable": change.indexable, "noai": change.noai, "icon_url": change.icon_url,
               "image_url": change.image_url}  # fmt: skip
    for column, value in changed.items():
        if value is not None:
            setattr(row, column, value)


async def change_profile(
    outbox: Outbox, actor: Actor, change: ProfileChange
) -> tuple[Actor, Object]:
    """Check ``change`` (BadRequest saying what is wrong), store it and send the ``Update``.

    Returns the actor as stored now and the Update."""
    _check(change)
    async with outbox.db.transaction() as session:
        row = await session.get_one(Actor, actor.id)
        _apply(outbox, row, change)
    return row, await outbox.update_profile(row)
