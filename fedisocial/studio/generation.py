"""The AI image studio: generate as a job, review the draft, publish it as a Note.

A generation is a row (``queued → running → done | failed``) plus a job, so it
never runs inside a request and survives a restart. A run that fails goes back
to ``queued`` and the job queue decides (its one rule, :data:`GENERATE_RETRY`):
a rate limit or an outage is tried again after ``Retry-After``, while the user
still sees it queued; a final failure, or the last attempt, shows it
``failed`` with the reason (:meth:`Studio.gave_up`). The finished image is a
draft ``Media`` row the author reviews (alt text defaults to the prompt) before
``publish`` posts it through the normal outbox, labeled as AI media: alt text
naming the model, a visible line and a hashtag in the post, and the IPTC
digital source type on the attachment and inside the file's XMP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from fedisocial.ap import render as as2
from fedisocial.ap.addressing import Visibility
from fedisocial.config import Settings
from fedisocial.errors import BadRequest, FedisocialError, NotFound, RateLimited
from fedisocial.jobs import JobQueue, RetryPolicy
from fedisocial.social import notifications
from fedisocial.social.content import render
from fedisocial.social.outbox import Outbox
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Generation, Media, Object, utcnow
from fedisocial.studio.ai.images import GeneratedImage, ImageProvider, alt_text
from fedisocial.studio.media import (
    AiLabel,
    ImagePipeline,
    MediaStore,
    ProcessedImage,
    check_alt_text,
    store_processed,
)

__all__ = ["GENERATE", "GENERATE_RETRY", "Studio", "attachment", "check_prompt"]

GENERATE = "generate_image"
#: Someone waits at the composer: retry a rate limit or an outage for about eight minutes
#: (6 attempts), then say it failed; a Retry-After of more than ten minutes is not waited out.
GENERATE_RETRY = RetryPolicy(base=15.0, cap=300.0, attempts=6, max_retry_after=600.0)
MAX_ATTACHMENTS = 4
MAX_PROMPT = 1000


def attachment(media: Media, url: str) -> dict[str, Any]:
    """The ``Image`` attachment of ``media`` served at ``url``, labeled if AI-made."""
    return as2.attachment(as2.Attachment(
        media_type=media.media_type, url=url, description=media.description,
        width=media.width, height=media.height, blurhash=media.blurhash,
        focal_point=(media.focal_x, media.focal_y), ai_generated=bool(media.ai_model),
    ))  # fmt: skip


def check_prompt(prompt: str) -> str:
    """The prompt with its whitespace tidied; BadRequest when empty or too long."""
    prompt = " ".join(prompt.split())
    if not prompt:
        raise BadRequest("describe the image you want: the prompt is empty")
    if len(prompt) > MAX_PROMPT:
        raise BadRequest(f"the prompt can have at most {MAX_PROMPT} characters")
    return prompt


@dataclass
class Studio:
    db: Database
    queue: JobQueue
    settings: Settings
    provider: ImageProvider
    store: MediaStore
    outbox: Outbox
    #: checks and cleans every image, a few at a time (one pipeline per process)
    images: ImagePipeline = field(init=False)

    def __post_init__(self) -> None:
        self.images = ImagePipeline.from_settings(self.settings)

    # -- asking for an image ------------------------------------------------------------
    async def request(self, actor: Actor, prompt: str) -> Generation:
        """Queue a generation for ``actor``, within the per-user limits."""
        async with self.db.transaction() as session:
            return await self.request_in(session, actor, prompt)

    async def request_in(
        self, session: Any, actor: Actor, prompt: str, *, then: dict[str, Any] | None = None,
        limits: bool = True,
    ) -> Generation:  # fmt: skip
        """:meth:`request` in the caller's transaction. ``then`` rides in the job's payload:
        ``{"note": URI, "hidden": [...]}`` publishes that post, kept back by
        :meth:`Outbox.publish`, with the image once it is made. ``limits`` False: the
        per-user limits are not for ``actor`` (the assistant, which has quotas of its own)."""
        prompt = check_prompt(prompt)
        if limits:
            await self._check_limits(session, actor)
        generation = Generation(owner_id=actor.id, prompt=prompt, provider=self.provider.name,
                                model=self.provider.model)  # fmt: skip
        session.add(generation)
        await session.flush()
        self.queue.add(session, GENERATE, {"generation": generation.id, **(then or {})})
        return generation

    async def _check_limits(self, session: Any, actor: Actor) -> None:
        hour_ago = utcnow() - timedelta(hours=1)
        recent = await session.scalar(
            select(func.count()).select_from(Generation)
            .where(Generation.owner_id == actor.id, Generation.created_at >= hour_ago)
        )  # fmt: skip
        if recent >= self.settings.ai_images_per_hour:
            raise RateLimited(
                f"you asked for {recent} images in the last hour; the limit is "
                f"{self.settings.ai_images_per_hour} per hour. Try again a little later."
            )
        active = await session.scalar(
            select(func.count()).select_from(Generation)
            .where(Generation.owner_id == actor.id, Generation.status.in_(("queued", "running")))
        )  # fmt: skip
        if active >= self.settings.ai_images_concurrent:
            raise RateLimited(
                f"{active} of your images are still being made (at most "
                f"{self.settings.ai_images_concurrent} at once); wait for one to finish"
            )

    # -- the job --------------------------------------------------------------------------
    async def run(self, payload: dict[str, Any]) -> None:
        """Job handler: generate, check and store the image; a failure goes to the queue.

        The generation is queued again until the job queue gives up (then
        :meth:`gave_up` records the reason).
        """
        generation = await self._claim(payload["generation"])
        if generation is None:
            return  # done, failed, or being made by someone else right now
        try:
            image = await self.provider.generate(generation.prompt)
            media = await self._keep(generation, image)
        except Exception:
            await self._requeue(generation.id)
            raise
        await self._finish(generation.id, media_id=media.id)
        note = await self._release(payload, media) if payload.get("note") else None
        await self._notify_done(generation, note)

    async def gave_up(self, payload: dict[str, Any], exc: BaseException) -> None:
        """The job failed for good: show the generation failed, with a reason a user can read.

        A post waiting for the image is withdrawn (it was never delivered)."""
        reason = exc.message if isinstance(exc, FedisocialError) else "an internal error"
        await self._finish(payload["generation"], error=reason)
        if payload.get("note"):
            await self.outbox.withdraw(payload["note"])

    async def _notify_done(self, generation: Generation, note: Object | None) -> None:
        """Tell the owner the image is made: ``status`` with the post it was for, now
        published; else our own type (see :mod:`fedisocial.social.notifications`)."""
        kind = "status" if note is not None else notifications.GENERATION
        async with self.db.transaction() as session:
            owner = await session.scalar(select(Actor.uri).where(Actor.id == generation.owner_id))
            if owner is not None:
                told = notifications.Notice(owner, kind, owner, f"generation:{generation.id}",
                                            note, own=True)  # fmt: skip
                await notifications.record(session, [told])

    async def _release(self, payload: dict[str, Any], media: Media) -> Object | None:
        """Deliver the post that waited for this image, the image attached and labeled."""
        item = attachment(media, self.store.url(media.path))

        def revise(note: dict[str, Any]) -> dict[str, Any]:
            with_image = {**note, "attachment": [*note.get("attachment", ()), item]}
            return self.label(with_image, [media.ai_model or self.provider.model])

        note = await self.outbox.release(payload["note"], revise, hidden=payload.get("hidden", ()))
        if note is not None:
            async with self.db.transaction() as session:
                await session.execute(
                    update(Media).where(Media.id == media.id).values(note_uri=note.uri)
                )
        return note

    def label(self, note: dict[str, Any], models: list[str]) -> dict[str, Any]:
        """A Note made elsewhere (a C2S client) with the AI label :meth:`publish` writes: the
        visible line and the hashtag, in ``content`` (and each ``contentMap`` language)."""
        line = f"🤖 Image generated by AI ({', '.join(sorted(set(models)))}) " \
               f"#{self.settings.ai_hashtag}"  # fmt: skip
        urls = self.outbox.urls
        rendered = render(line, {}, urls.hashtag)
        labeled = {**note, "content": f"{note.get('content', '')}{rendered.html}"}
        if isinstance(note.get("contentMap"), dict):
            labeled["contentMap"] = {
                k: f"{v}{rendered.html}" for k, v in note["contentMap"].items()
            }
        tags = list(note.get("tag", ()))
        for tag in rendered.hashtags:
            entry = {"type": "Hashtag", "href": urls.hashtag(tag), "name": f"#{tag}"}
            if entry not in tags:
                tags.append(entry)
        labeled["tag"] = tags
        return labeled

    async def _requeue(self, generation_id: int) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(Generation).where(Generation.id == generation_id)
                .values(status="queued", started_at=None)
            )  # fmt: skip

    async def _claim(self, generation_id: int) -> Generation | None:
        """Mark a generation running, atomically: one runner at a time.

        A generation left ``running`` by a runner that died is taken over once it
        is older than twice the model's timeout.
        """
        now = utcnow()
        stale = now - timedelta(seconds=2 * self.settings.ai_images_timeout)
        async with self.db.transaction() as session:
            claimed = await session.execute(
                update(Generation)
                .where(Generation.id == generation_id)
                .where((Generation.status == "queued")
                       | ((Generation.status == "running") & (Generation.started_at < stale)))
                .values(status="running", started_at=now)
            )  # fmt: skip
            if not getattr(claimed, "rowcount", 0):
                return None
            return await session.get(Generation, generation_id)

    async def _keep(self, generation: Generation, image: GeneratedImage) -> Media:
        label = AiLabel(prompt=image.revised_prompt or generation.prompt, model=image.model,
                        provider=image.provider)  # fmt: skip
        processed = await self.images.process(image.data, ai=label)
        media = await self._store(processed, generation.owner_id)
        media.ai_provider, media.ai_model = image.provider, image.model
        media.prompt, media.revised_prompt = generation.prompt, image.revised_prompt
        default_alt = alt_text(image.revised_prompt or generation.prompt, image)
        media.description = default_alt[: self.settings.media_max_description]
        async with self.db.transaction() as session:
            session.add(media)
        return media

    async def _store(self, processed: ProcessedImage, owner_id: int) -> Media:
        await store_processed(self.store, processed)
        return Media(
            owner_id=owner_id, sha256=processed.sha256, path=processed.key,
            thumbnail_path=processed.thumbnail_key,
            media_type=processed.media_type, size_bytes=len(processed.data),
            width=processed.width, height=processed.height, blurhash=processed.blurhash,
        )  # fmt: skip

    async def _finish(
        self, generation_id: int, *, media_id: int | None = None, error: str | None = None
    ) -> None:
        async with self.db.transaction() as session:
            generation = await session.get(Generation, generation_id)
            if generation is None:
                return  # its owner was deleted meanwhile
            generation.status = "failed" if error else "done"
            generation.error, generation.media_id = error, media_id
            generation.finished_at = utcnow()

    # -- reading --------------------------------------------------------------------------
    async def status(self, actor: Actor, generation_id: int) -> dict[str, Any]:
        """The JSON a page or client polls while it waits."""
        async with self.db.session() as session:
            generation = await session.get(Generation, generation_id)
            if generation is None or generation.owner_id != actor.id:
                raise NotFound(f"no image request {generation_id}")
            media = await session.get(Media, generation.media_id) if generation.media_id else None
        body: dict[str, Any] = {
            "id": generation.id, "status": generation.status, "prompt": generation.prompt,
            "provider": generation.provider, "model": generation.model, "error": generation.error,
            "media": None,
        }  # fmt: skip
        if media is not None:
            body["media"] = self.describe(media)
        return body

    def describe(self, media: Media) -> dict[str, Any]:
        return {
            "id": media.id, "url": self.store.url(media.path),
            "thumbnail": self.store.url(media.thumbnail_path), "width": media.width,
            "height": media.height, "blurhash": media.blurhash, "description": media.description,
            "provider": media.ai_provider, "model": media.ai_model,
            "revised_prompt": media.revised_prompt,
        }  # fmt: skip

    async def pending(self, actor: Actor) -> list[Generation]:
        """The actor's generations still queued or being made, oldest first (a page that
        was left while they ran shows them again and waits for them)."""
        async with self.db.session() as session:
            return list(await session.scalars(
                select(Generation)
                .where(Generation.owner_id == actor.id,
                       Generation.status.in_(("queued", "running")))
                .order_by(Generation.id)
            ))  # fmt: skip

    def _alt(self, description: str | None) -> str:
        return check_alt_text(description, self.settings.media_max_description)

    # -- uploads and publishing ------------------------------------------------------------
    async def upload(
        self, actor: Actor, data: bytes, *, filename: str | None, description: str | None
    ) -> Media:
        """Check, clean and keep an uploaded image as a draft; it must have alt text.

        ``description`` None: the alt text is given later (Mastodon apps upload first and
        describe afterwards), and checked when the image is posted.
        """
        alt = self._alt(description) if description is not None else ""
        processed = await self.images.process(data, filename=filename)
        media = await self._store(processed, actor.id)
        media.description = alt
        async with self.db.transaction() as session:
            session.add(media)
        return media

    async def profile_image(self, data: bytes, *, filename: str | None) -> str:
        """An uploaded avatar or header, checked and cleaned as every image is (InvalidImage,
        a 400, otherwise), and stored: its URL. Mastodon apps and the settings page use it."""
        processed = await self.images.process(data, filename=filename)
        await store_processed(self.store, processed)
        return self.store.url(processed.key)

    async def publish(
        self,
        actor: Actor,
        text: str,
        media_ids: list[int],
        *,
        descriptions: dict[int, str] | None = None,
        visibility: Visibility = "public",
        summary: str | None = None,
    ) -> Object:
        """Post ``text`` with up to four of the actor's draft images, labeled if AI-made."""
        if not media_ids:
            raise BadRequest("choose at least one image to publish")
        if len(media_ids) > MAX_ATTACHMENTS:
            raise BadRequest(f"a post can carry at most {MAX_ATTACHMENTS} images")
        async with self.db.session() as session:
            rows = {m.id: m for m in await session.scalars(
                select(Media).where(Media.id.in_(media_ids), Media.owner_id == actor.id)
            )}  # fmt: skip
        missing = [i for i in media_ids if i not in rows]
        if missing:
            raise NotFound(f"no draft image {missing[0]} of yours")
        media = [rows[i] for i in media_ids]
        for item in media:
            if item.note_uri:
                raise BadRequest(f"image {item.id} is already published in {item.note_uri}")
            alt = (descriptions or {}).get(item.id, item.description)
            item.description = self._alt(alt)
        models = sorted({m.ai_model for m in media if m.ai_model})
        if models:
            text = f"{text.rstrip()}\n\n🤖 Image generated by AI ({', '.join(models)}) " \
                   f"#{self.settings.ai_hashtag}"  # fmt: skip
        attachments = [attachment(m, self.store.url(m.path)) for m in media]
        note = await self.outbox.post(actor, text, visibility=visibility, summary=summary,
                                      attachments=attachments)  # fmt: skip
        async with self.db.transaction() as session:
            for item in media:
                item.note_uri = note.uri
                await session.merge(item)
        return note
