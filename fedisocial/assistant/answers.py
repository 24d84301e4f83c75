"""The answer job: a mention of the assistant becomes a reply, within its rules.

A mention queues a :data:`~fedisocial.social.notifications.SERVICE_MENTIONED` job (in
the transaction that records it); :meth:`Assistant.answer` runs it. Each asking post
has one row in the ledger (``assistant_requests``), the admin's queue and the quota
counter. In order, the job

1. waits while the assistant is paused (the job comes back a minute later);
2. skips, with the reason in the ledger and the log: a deleted post, one older than
   ``max_post_age_hours``, its own post, a bot's (``type`` Service or Application, as
   Mastodon marks bots, or ``bot: true``), a post that does not mention it in its
   ``tag`` (a reply in a thread where it was mentioned does not ask again), a blocked
   author or server, or a thread with one;
3. keeps the quotas (:mod:`fedisocial.assistant.quotas`): over one, the asker is told
   once per window when to try again;
4. tells an asker who opted out of AI use (``noai``) that it does not put their posts
   into a prompt, not even this one;
5. decides what is asked (:mod:`fedisocial.assistant.intent`) and replies, as Mastodon
   addresses a reply: the asker mentioned, ``inReplyTo`` the post, and never wider than
   it — public and unlisted asks get an unlisted reply (an assistant must not flood
   public timelines), followers-only and direct ones a direct reply. An image reply is
   kept back until the studio has made the image and releases it, labeled; a text reply
   is the text model's answer with the thread as context (posts of authors who opted
   out left out, and counted in the reply), or, with no text model, an honest
   fixed answer.

A refused prompt gets a short polite reply; a rate limit or an outage retries the job
(:data:`ANSWER_RETRY`); when it gives up, an apology (:meth:`Assistant.gave_up`).
"""

from __future__ import annotations

import logging
import re
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fedisocial.ap.addressing import Visibility
from fedisocial.ap.client import FederationClient
from fedisocial.ap.vocab import as_list, host_of, is_automated, mention_hrefs
from fedisocial.config import Settings
from fedisocial.errors import FedisocialError
from fedisocial.federation.remote import fetch_actor
from fedisocial.jobs import JobQueue, RetryPolicy
from fedisocial.social.content import plain_text
from fedisocial.social.notifications import SERVICE_MENTIONED
from fedisocial.social.outbox import MAX_TEXT, Outbox
from fedisocial.store.db import Database
from fedisocial.store.models import (
    Actor,
    AssistantRequest,
    Block,
    DomainBlock,
    Object,
    ServiceState,
    utcnow,
)
from fedisocial.store.rows import upsert
from fedisocial.studio.ai.images import ImageRefused
from fedisocial.studio.ai.text import Message, TextProvider, TextRefused
from fedisocial.studio.generation import MAX_PROMPT, Studio

from .intent import Intent, decide
from .quotas import over_quota, told_in
from .replies import language_of, pick, read_line, say, wait_text
from .thread import Thread, read_thread

__all__ = ["ANSWER_RETRY", "PAUSED_WAIT", "Assistant", "reply_visibility"]

log = logging.getLogger(__name__)

#: a text model's rate limit or outage is tried again for about an hour (6 attempts), then
#: the asker gets an apology; a Retry-After of more than an hour is not waited out
ANSWER_RETRY = RetryPolicy(base=60.0, cap=1200.0, attempts=6, max_retry_after=3600.0)
#: while paused, a request looks again this much later (and stays queued)
PAUSED_WAIT = timedelta(minutes=1)
#: the longest text answer asked of the model (a post, not an essay)
MAX_ANSWER_TOKENS = 600
#: the most of a model's answer a reply carries, leaving room for the mention and the note
_MAX_ANSWER = MAX_TEXT - 600
#: an ``@`` before a name: defused in a model's words, so that they mention nobody
_AT = re.compile(r"@(?=[A-Za-z0-9_])")
#: statuses of a request still to be worked on
_OPEN = ("queued", "running")


def reply_visibility(asked: str) -> Visibility:
    """Never wider than the ask: unlisted for a public or unlisted ask, else direct."""
    return "unlisted" if asked in ("public", "unlisted") else "direct"


def _has_image(post: dict[str, Any]) -> bool:
    return any(isinstance(a, dict) and str(a.get("mediaType", "")).startswith("image/")
               for a in as_list(post.get("attachment")))  # fmt: skip


@dataclass(frozen=True)
class _Ask:
    """A request the rules let through: its row, the post, who asks, in what language."""

    request: AssistantRequest
    service: Actor
    post: Object
    asker: Actor
    #: the post's own language (None: it does not say), and the one our words are in
    language: str | None
    words: str

    @property
    def handle(self) -> str:
        return f"@{self.asker.username}@{self.asker.domain}"


@dataclass
class Assistant:
    """Answers the mentions of the instance's assistant actor (one per instance)."""

    db: Database
    queue: JobQueue
    client: FederationClient
    settings: Settings
    outbox: Outbox
    studio: Studio
    #: the text model, or None: text questions get the offline answer
    text: TextProvider | None
    actor_max_age: timedelta

    # -- the job ----------------------------------------------------------------------
    async def answer(self, payload: dict[str, Any]) -> None:
        """Job handler of :data:`SERVICE_MENTIONED`: the steps of the module's docstring."""
        async with self.db.session() as session:
            service = await session.scalar(select(Actor).where(Actor.uri == payload["service"]))
            state = await session.get(ServiceState, payload["service"])
            post = await session.scalar(select(Object).where(Object.uri == payload["post"]))
        if service is None:
            return  # the actor is gone: nobody to answer as
        request = await self._ledger(payload, post)
        if request.status not in _OPEN:
            return  # answered, skipped or cancelled already (a job run twice)
        try:
            if state is None or not state.enabled:
                await self._close(request, "skipped", "the assistant is turned off")
            elif state.paused_at is not None:
                await self._wait(payload, request)
            else:
                ask = await self._admit(request, service, post)
                if ask is not None:
                    await self._reply(ask)
        except _Cancelled:
            log.info("assistant: request %s was cancelled while it ran", request.id)

    async def gave_up(self, payload: dict[str, Any], exc: BaseException) -> None:
        """The job failed for good (the text model kept failing): a short apology."""
        async with self.db.session() as session:
            request = await session.scalar(
                select(AssistantRequest).where(AssistantRequest.post_uri == payload["post"])
            )
        if request is None or request.status not in _OPEN:
            return
        ask = await self._resume(request)
        with suppress(_Cancelled):  # cancelled meanwhile: nothing to say
            if ask is None:
                await self._close(request, "failed", _reason(exc))
            else:
                await self._say(ask, say("failed", ask.words), "failed", _reason(exc))

    async def image_gave_up(self, payload: dict[str, Any], exc: BaseException) -> None:
        """A generation for one of its replies failed for good (the studio withdrew the
        kept-back reply): a polite refusal, or an apology."""
        if "assistant" not in payload:
            return
        async with self.db.session() as session:
            request = await session.get(AssistantRequest, payload["assistant"])
        if request is None or request.status != "answered":
            return  # cancelled meanwhile
        ask = await self._resume(request)
        if ask is None:
            return
        refused = isinstance(exc, ImageRefused)
        with suppress(_Cancelled):
            await self._say(ask, say("refused" if refused else "failed", ask.words),
                            "refused" if refused else "failed", _reason(exc),
                            was=("answered",))  # fmt: skip

    # -- the ledger -------------------------------------------------------------------
    async def _ledger(self, payload: dict[str, Any], post: Object | None) -> AssistantRequest:
        """The request of this post, written on its first run (one per post)."""
        asker = (post.actor_uri or "") if post is not None else ""
        row = {"post_uri": payload["post"], "service_uri": payload["service"],
               "asker_uri": asker, "asker_domain": host_of(asker), "status": "queued",
               "created_at": utcnow()}  # fmt: skip
        async with self.db.transaction() as session:
            await session.execute(upsert(session, AssistantRequest).on_conflict_do_nothing(
                index_elements=["post_uri"]), [row])  # fmt: skip
            return (await session.scalars(select(AssistantRequest).where(
                AssistantRequest.post_uri == payload["post"]))).one()  # fmt: skip

    async def _close(
        self, request: AssistantRequest, status: str, reason: str | None,
        session: AsyncSession | None = None, *, was: tuple[str, ...] = _OPEN, **values: Any,
    ) -> None:  # fmt: skip
        """Record how the request ended (in ``session``, else a transaction of its own), if
        it still is in one of the statuses ``was``; else :class:`_Cancelled` (an admin
        cancelled it meanwhile: what was to be published with it is rolled back)."""
        if status in ("skipped", "limited"):
            log.info("assistant: %s %s: %s", status, request.post_uri, reason)
        statement = (
            update(AssistantRequest)
            .where(AssistantRequest.id == request.id, AssistantRequest.status.in_(was))
            .values(status=status, reason=reason, finished_at=utcnow(), **values)
        )
        if session is not None:
            done = await session.execute(statement)
        else:
            async with self.db.transaction() as own:
                done = await own.execute(statement)
        if not getattr(done, "rowcount", 0):
            raise _Cancelled(request.id)

    async def _wait(self, payload: dict[str, Any], request: AssistantRequest) -> None:
        """Paused: the request stays queued, and this job comes back in a minute."""
        async with self.db.transaction() as session:
            await session.execute(update(AssistantRequest)
                                  .where(AssistantRequest.id == request.id)
                                  .values(reason="waiting: the assistant is paused"))  # fmt: skip
            self.queue.add(session, SERVICE_MENTIONED, payload, ref=request.post_uri,
                           run_at=utcnow() + PAUSED_WAIT)  # fmt: skip

    # -- the rules --------------------------------------------------------------------
    async def _admit(
        self, request: AssistantRequest, service: Actor, post: Object | None
    ) -> _Ask | None:
        """The ask if every rule lets it through (quotas included), else None (closed)."""
        if post is None or post.deleted_at is not None:
            await self._close(request, "skipped", "the post is deleted")
            return None
        asker = await self._asker(post)
        reason = await self._refusal(service, post, asker)
        if reason is not None:
            await self._close(request, "skipped", reason)
            return None
        assert asker is not None
        language = language_of(post.data)
        ask = _Ask(request, service, post, asker, language, pick(language))
        return await self._within_quotas(ask)

    async def _asker(self, post: Object) -> Actor | None:
        try:
            return await fetch_actor(self.db, self.client, post.actor_uri or "",
                                     max_age=self.actor_max_age)  # fmt: skip
        except FedisocialError as exc:
            log.info("assistant: the author of %s cannot be read: %s", post.uri, exc)
            return None

    async def _refusal(self, service: Actor, post: Object, asker: Actor | None) -> str | None:
        """Why the assistant does not answer ``post`` (None: it may)."""
        max_age = timedelta(hours=self.settings.assistant_max_post_age_hours)
        if asker is None:
            return "its author's profile cannot be read"
        if asker.uri == service.uri:
            return "it is the assistant's own post"
        if is_automated(asker.type, asker.data):
            return f"its author is a bot ({asker.type})"
        if post.published < utcnow() - max_age:
            return f"it is older than {self.settings.assistant_max_post_age_hours} hours"
        if service.uri not in mention_hrefs(post.data):
            return "it does not mention the assistant (a reply in a thread it was in)"
        if await self._blocks(service, {asker.uri}):
            return "its author or server is blocked"
        return None

    async def _blocks(self, service: Actor, actors: set[str]) -> bool:
        """Whether the assistant blocks one of ``actors``, or the server of one."""
        async with self.db.session() as session:
            blocked = await session.scalar(select(Block.id).where(
                Block.blocker_uri == service.uri, Block.blocked_uri.in_(actors)
            ).limit(1))  # fmt: skip
            domains = await session.scalar(select(DomainBlock.id).where(
                DomainBlock.blocker_uri == service.uri,
                DomainBlock.domain.in_({host_of(a) for a in actors})).limit(1))  # fmt: skip
        return blocked is not None or domains is not None

    async def _within_quotas(self, ask: _Ask) -> _Ask | None:
        """The ask, marked running, if it is within the quotas; else told (once) or left."""
        now, request = utcnow(), ask.request
        async with self.db.transaction() as session:
            over = await over_quota(session, self.settings, request, now)
            if over is None:
                await session.execute(update(AssistantRequest)
                                      .where(AssistantRequest.id == request.id)
                                      .values(status="running", reason=None))  # fmt: skip
                return ask
            told = await told_in(session, ask.asker.uri, over.window, now)
        if told:
            await self._close(request, "limited", f"over the quota of {over.scope}; told")
            return None
        at, wait = wait_text(now, over.until)
        text = say("limited", ask.words, limit=over.scope, at=at, wait=wait)
        await self._say(ask, text, "limited", f"over the quota of {over.scope}")
        return None

    # -- replying ---------------------------------------------------------------------
    async def _reply(self, ask: _Ask) -> None:
        if ask.asker.noai:  # its own words are never a prompt either: say so, once per ask
            await self._say(ask, say("noai", ask.words), "refused", "the asker opted out of AI use")
            return
        intent = decide(plain_text(str(ask.post.data.get("content") or "")),
                        has_image=_has_image(ask.post.data))  # fmt: skip
        thread = await read_thread(self.db, self.client, ask.post, reader=ask.service.uri,
                                   depth=self.settings.assistant_thread_depth,
                                   max_age=self.actor_max_age)  # fmt: skip
        if thread.authors and await self._blocks(ask.service, thread.authors):
            await self._close(ask.request, "skipped", "a blocked account is in the thread",
                              kind=intent.kind)  # fmt: skip
            return
        if intent.kind == "image":
            await self._draw(ask, intent)
            return
        if self.text is None:
            await self._say(ask, say("offline", ask.words), "answered", "offline", kind="text")
            return
        try:
            answer = await self.text.complete(self._messages(ask, thread, intent),
                                              max_tokens=MAX_ANSWER_TOKENS)  # fmt: skip
        except TextRefused as exc:
            await self._say(ask, say("refused", ask.words), "refused", exc.message, kind="text")
            return
        words = _AT.sub("@\u200b", answer.text.strip())[:_MAX_ANSWER]
        told = f"{words}\n\n{read_line(ask.words, len(thread.quoted), thread.left_out)}"
        await self._say(ask, told, "answered", f"answered by {answer.model}", kind="text",
                        language=ask.language or ask.words)  # fmt: skip

    def _messages(self, ask: _Ask, thread: Thread, intent: Intent) -> list[Message]:
        """The system prompt, the thread above (oldest first, by who said it), the ask."""
        messages = [Message("system", self.settings.assistant_system_prompt)]
        for row, author in thread.quoted:
            said = plain_text(str(row.data.get("content") or ""))
            if author.uri == ask.service.uri:
                messages.append(Message("assistant", said))
            else:
                messages.append(Message("user", f"@{author.username}@{author.domain}: {said}"))
        messages.append(Message("user", f"{ask.handle}: {intent.prompt}"))
        return messages

    async def _draw(self, ask: _Ask, intent: Intent) -> None:
        """Reply with a picture: the reply is kept back until the studio releases it with the
        image attached and labeled (alt text, the visible line, the hashtag, IPTC)."""
        prompt = intent.prompt[:MAX_PROMPT]
        text = say("image", ask.words, prompt=prompt)
        if intent.edit:
            text = f"{say('edit', ask.words)} {text}"
        note = await self._compose(ask, text, ask.words)
        request = ask.request

        async def within(session: AsyncSession, row: Object) -> None:
            generation = await self.studio.request_in(
                session, ask.service, prompt, then={"note": row.uri, "assistant": request.id},
                limits=False,
            )  # fmt: skip
            await self._close(request, "answered", f"image by {generation.model}", session,
                              kind="image", reply_uri=row.uri,
                              generation_id=generation.id)  # fmt: skip

        await self.outbox.publish(ask.service, note, deliver=False, within=within)

    async def _compose(self, ask: _Ask, text: str, language: str) -> dict[str, Any]:
        return await self.outbox.compose(
            ask.service, f"{ask.handle} {text}", visibility=reply_visibility(ask.post.visibility),
            parent=ask.post, language=language,
        )  # fmt: skip

    async def _say(
        self, ask: _Ask, text: str, status: str, reason: str | None, *,
        language: str | None = None, was: tuple[str, ...] = _OPEN, **values: Any,
    ) -> None:  # fmt: skip
        """Reply ``text`` now and record how the request ended, in one transaction."""
        note = await self._compose(ask, text, language or ask.words)

        async def within(session: AsyncSession, row: Object) -> None:
            await self._close(ask.request, status, reason, session, was=was, reply_uri=row.uri,
                              **values)  # fmt: skip

        await self.outbox.publish(ask.service, note, within=within)

    async def _resume(self, request: AssistantRequest) -> _Ask | None:
        """The ask of a request taken on before (to reply once more), if still there."""
        async with self.db.session() as session:
            service = await session.scalar(select(Actor).where(Actor.uri == request.service_uri))
            post = await session.scalar(select(Object).where(Object.uri == request.post_uri))
            asker = await session.scalar(select(Actor).where(Actor.uri == request.asker_uri))
        if service is None or post is None or post.deleted_at is not None or asker is None:
            return None
        language = language_of(post.data)
        return _Ask(request, service, post, asker, language, pick(language))


class _Cancelled(Exception):
    """The request was cancelled while it ran: nothing of it is published."""


def _reason(exc: BaseException) -> str:
    return exc.message if isinstance(exc, FedisocialError) else type(exc).__name__
