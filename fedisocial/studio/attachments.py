"""Media for C2S clients: ``uploadMedia``, and the ``attachment`` of a posted Note.

An upload goes through :meth:`Studio.upload` (the checks and limits of every
image) and answers an ``Image`` document whose id is minted by
:meth:`Urls.media_object`. A Note posted to the outbox may then attach it by
that id or by its file URL; its alt text may be given again there (``name`` or
``summary``). An ``Image`` carrying our ``prompt`` property
(``https://fedisocial.github.io/ns#prompt``) instead of a ``url`` asks the
studio's model for the picture: the post is stored at once and delivered, with
the image and every AI label, when the generation job is done
(:meth:`Studio.request_in`); if the image cannot be made the post is withdrawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fedisocial.ap import render as as2
from fedisocial.ap.jsonld import FEDISOCIAL_NS, OBJECT_CONTEXT
from fedisocial.ap.vocab import as_list, get_id
from fedisocial.errors import BadRequest, NotFound, Unprocessable
from fedisocial.social.c2s import Attached
from fedisocial.store.models import Actor, Media, Object
from fedisocial.studio.generation import MAX_ATTACHMENTS, Studio, attachment, check_prompt
from fedisocial.studio.media import check_alt_text

__all__ = [
    "PROMPT",
    "StudioAttacher",
    "alt_of",
    "attach_uploads",
    "image_document",
    "upload_object",
]

#: the property of an attached ``Image`` that asks for a generated picture
PROMPT = f"{FEDISOCIAL_NS}prompt"
_PROMPT_KEYS = ("prompt", "fedisocial:prompt", PROMPT)
_MEDIA_TYPES = frozenset({"Image", "Document"})


def _first(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return next((v for v in value.values() if isinstance(v, str)), None)
    return None


def alt_of(obj: Mapping[str, Any]) -> str | None:
    """The alt text a client gives: ``summary`` (or ``summaryMap``), else ``name`` (``nameMap``)."""
    for key in ("summary", "summaryMap", "name", "nameMap"):
        found = _first(obj.get(key))
        if found and found.strip():
            return found
    return None


def upload_object(obj: Any) -> Mapping[str, Any]:
    """The ``object`` part of an upload, checked: an Image or Document (400 otherwise)."""
    if not isinstance(obj, dict):
        raise BadRequest("the object part must be a JSON object, e.g. "
                         '{"type": "Image", "name": "alt text"}')  # fmt: skip
    kind = obj.get("type", "Image")
    if kind not in _MEDIA_TYPES:
        raise BadRequest(f"uploads are images: the object's type must be Image, not {kind!r}")
    return obj


def image_document(studio: Studio, actor: Actor, media: Media) -> dict[str, Any]:
    """The ``Image`` an upload answers (and its id serves)."""
    doc = attachment(media, studio.store.url(media.path))
    uri = studio.outbox.urls.media_object(actor.username, media.id)
    result: dict[str, Any] = as2.compact({
        "@context": OBJECT_CONTEXT, "id": uri, "attributedTo": actor.uri,
        "published": as2.iso(media.created_at), **doc,
    })  # fmt: skip
    return result


def _prompt(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    for key in _PROMPT_KEYS:
        if key in item:
            value = item[key]
            if not isinstance(value, str):
                raise BadRequest("the prompt of an attached Image must be a string")
            return value
    return None


@dataclass
class StudioAttacher:
    """The studio's side of a posted Note's ``attachment`` (see the module docstring)."""

    studio: Studio

    async def prepare(self, actor: Actor, items: Any) -> Attached:
        listed = as_list(items)
        if len(listed) > MAX_ATTACHMENTS:
            raise BadRequest(f"a post can carry at most {MAX_ATTACHMENTS} images")
        prompts = [(p, item) for item in listed if (p := _prompt(item)) is not None]
        if len(prompts) > 1:
            raise BadRequest("a post can ask for one generated image")
        prompt = check_prompt(prompts[0][0]) if prompts else None
        media = [await self._media(actor, item) for item in listed if _prompt(item) is None]
        attachments = [attachment(m, self.studio.store.url(m.path)) for m in media]
        models = sorted({m.ai_model for m in media if m.ai_model})

        def finish(note: dict[str, Any]) -> dict[str, Any]:
            return self.studio.label(note, models) if models and prompt is None else note

        async def link(session: AsyncSession, note: Object, hidden: list[str]) -> None:
            for item in media:
                await session.execute(update(Media).where(Media.id == item.id).values(
                    note_uri=note.uri, description=item.description))  # fmt: skip
            if prompt is not None:
                then = {"note": note.uri, "hidden": hidden}
                await self.studio.request_in(session, actor, prompt, then=then)

        return Attached(attachments, pending=prompt is not None, finish=finish, link=link)

    async def _media(self, actor: Actor, item: Any) -> Media:
        """One of the actor's unpublished uploads, by its Image id or file URL."""
        ref = get_id(item)
        url = get_id(item.get("url")) if isinstance(item, dict) else None
        urls = self.studio.outbox.urls
        query = select(Media).where(Media.owner_id == actor.id)
        named = urls.media_object_id(ref) if ref else None
        key = urls.media_key(url or ref or "")
        if named is not None and named[0].lower() == actor.username.lower():
            query = query.where(Media.id == named[1])
        elif key is not None:
            query = query.where(Media.path == key)
        else:
            what = ref or url or "this item"
            raise BadRequest(f"attach media uploaded here (uploadMedia), by id or url, or ask "
                             f"for an image with a prompt; {what} is neither")  # fmt: skip
        async with self.studio.db.session() as session:
            media = await session.scalar(query.order_by(Media.id.desc()).limit(1))
        if media is None:
            raise NotFound(f"no uploaded image {ref or url} of yours")
        if media.note_uri:
            raise BadRequest(f"{ref or url} is already attached to {media.note_uri}")
        alt = alt_of(item) if isinstance(item, dict) else None
        # an upload described later (the Mastodon API) must be described by now
        media.description = check_alt_text(alt if alt is not None else media.description,
                                           self.studio.settings.media_max_description)  # fmt: skip
        return media


async def attach_uploads(studio: Studio, actor: Actor, ids: list[int], post: Object | None,
                         descriptions: Mapping[int, str] | None = None) -> Attached:  # fmt: skip
    """The media ``ids`` (in order) for a post: the actor's uploads not yet attached, or
    (editing) those of ``post``; labeled when a model made any of them. ``descriptions``:
    new alt text for some of them, saved with the post. What is wrong is a 422 that says
    what (Mastodon's ``Validation failed``)."""
    if not ids:
        return Attached()
    given = {i: alt for i, alt in (descriptions or {}).items() if i in ids}
    for alt in given.values():
        try:
            check_alt_text(alt, studio.settings.media_max_description)
        except BadRequest as exc:
            raise Unprocessable(f"Validation failed: {exc.message}") from exc
    async with studio.db.session() as session:
        found = {m.id: m for m in await session.scalars(
            select(Media).where(Media.id.in_(ids), Media.owner_id == actor.id))}  # fmt: skip
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise Unprocessable(f"Validation failed: no media {', '.join(missing)} of yours")
    kept = {i for i in ids if post is not None and found[i].note_uri == post.uri}
    new = [found[i] for i in ids if i not in kept]
    uri = studio.outbox.urls.media_object
    items: list[Any] = [{"id": uri(actor.username, m.id), "name": given[m.id]} if m.id in given
                        else uri(actor.username, m.id) for m in new]  # fmt: skip
    try:
        prepared = await StudioAttacher(studio).prepare(actor, items)
    except (BadRequest, NotFound) as exc:
        raise Unprocessable(f"Validation failed: {exc.message}") from exc
    made = dict(zip((m.id for m in new), prepared.attachments, strict=True))
    docs = [made[i] if i in made else attachment(found[i], studio.store.url(found[i].path))
            for i in ids]  # fmt: skip
    models = sorted({model for i in ids if (model := found[i].ai_model)})

    def finish(note: dict[str, Any]) -> dict[str, Any]:
        return studio.label(note, models) if models else note

    return Attached(docs, finish=finish, link=prepared.link)
