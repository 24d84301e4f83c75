"""What an admin does with the assistant: look at it, its queue, cancel, pause, resume,
and block whole servers (accounts are blocked as any account blocks: ``fedisocial block``).

The pause lives in the database (``service_states``), so every web and worker process
sees it at once; a paused assistant keeps its requests queued (each looks again a
minute later) and resuming lets them run at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update

from fedisocial.errors import BadRequest, NotFound
from fedisocial.jobs import JobQueue
from fedisocial.social.notifications import SERVICE_MENTIONED
from fedisocial.social.outbox import Outbox
from fedisocial.store.db import Database
from fedisocial.store.models import (
    AssistantRequest,
    DomainBlock,
    Generation,
    Job,
    ServiceState,
    utcnow,
)

__all__ = ["Cancelled", "Overview", "block_domain", "cancel", "overview", "queue", "set_paused"]

#: requests the queue lists besides the open ones: the most recent that ended
RECENT = 20


@dataclass(frozen=True)
class Overview:
    """``fedisocial assistant status``: on, off or paused, and the requests by status."""

    enabled: bool
    paused_at: datetime | None
    counts: dict[str, int]

    @property
    def state(self) -> str:
        if not self.enabled:
            return "off"
        return "paused" if self.paused_at is not None else "on"


@dataclass(frozen=True)
class Cancelled:
    """What :func:`cancel` did: the request, its queued jobs, its image (if one was coming)."""

    request: AssistantRequest
    jobs: int
    #: the generation stopped before it ran (False: none, or it was already being made)
    generation: bool
    #: the reply that waited for the image, withdrawn (never delivered)
    withdrawn: str | None


async def _state(db: Database, service_uri: str) -> ServiceState:
    async with db.session() as session:
        state = await session.get(ServiceState, service_uri)
    if state is None:
        raise NotFound(f"{service_uri} is not an assistant of this instance")
    return state


async def overview(db: Database, service_uri: str) -> Overview:
    state = await _state(db, service_uri)
    async with db.session() as session:
        rows = await session.execute(
            select(AssistantRequest.status, func.count())
            .where(AssistantRequest.service_uri == service_uri)
            .group_by(AssistantRequest.status)
        )
        counts = {status: count for status, count in rows}
    return Overview(state.enabled, state.paused_at, counts)


async def queue(db: Database, service_uri: str, *, recent: int = RECENT) -> list[AssistantRequest]:
    """The open requests (queued, running), oldest first, then the ``recent`` latest ended."""
    mine = AssistantRequest.service_uri == service_uri
    is_open = AssistantRequest.status.in_(("queued", "running"))
    async with db.session() as session:
        pending = list(await session.scalars(
            select(AssistantRequest).where(mine, is_open).order_by(AssistantRequest.id)
        ))  # fmt: skip
        ended = list(await session.scalars(
            select(AssistantRequest).where(mine, ~is_open)
            .order_by(AssistantRequest.id.desc()).limit(recent)
        ))  # fmt: skip
    return [*pending, *ended]


async def set_paused(db: Database, service_uri: str, *, paused: bool) -> bool:
    """Pause or resume; False when it already was so. Resuming runs the waiting at once."""
    state = await _state(db, service_uri)
    if (state.paused_at is not None) == paused:
        return False
    async with db.transaction() as session:
        await session.execute(update(ServiceState).where(ServiceState.actor_uri == service_uri)
                              .values(paused_at=utcnow() if paused else None))  # fmt: skip
        if not paused:
            await session.execute(
                update(Job).where(Job.kind == SERVICE_MENTIONED, Job.status == "queued")
                .values(run_at=utcnow())
            )  # fmt: skip
    return True


async def cancel(outbox: Outbox, service_uri: str, request_id: int) -> Cancelled:
    """Cancel an open request: its queued jobs, and the image being waited for if it has
    not started (the reply kept back for it is withdrawn). NotFound, or BadRequest when it
    has ended already."""
    async with outbox.db.transaction() as session:
        request = await session.get(AssistantRequest, request_id)
        if request is None or request.service_uri != service_uri:
            raise NotFound(f"no assistant request {request_id} (`fedisocial assistant queue` "
                           "lists them)")  # fmt: skip
        waits_for_image = request.status == "answered" and request.generation_id is not None
        generation = await session.get(Generation, request.generation_id or 0)
        stopped = generation is not None and generation.status == "queued"
        if request.status not in ("queued", "running") and not stopped:
            raise BadRequest(f"request {request_id} has ended already ({request.status})")
        jobs = await JobQueue.cancel(session, request.post_uri)
        if stopped and generation is not None:
            generation.status, generation.error = "failed", "cancelled by an admin"
            generation.finished_at = utcnow()
        request.status, request.reason = "cancelled", "cancelled by an admin"
        request.finished_at = utcnow()
    withdrawn = request.reply_uri if waits_for_image and stopped else None
    if withdrawn is not None:
        await outbox.withdraw(withdrawn)
    return Cancelled(request, jobs, stopped, withdrawn)


def _host(domain: str) -> str:
    """``social.example`` from a domain, a handle's host or a URL; BadRequest if none."""
    host = domain.strip().lower().removeprefix("https://").removeprefix("http://")
    host = host.rsplit("@", 1)[-1].split("/", 1)[0]
    if not host or " " in host or ("." not in host and ":" not in host):
        raise BadRequest(f"{domain!r} is not a server's domain (like social.example)")
    return host


async def block_domain(db: Database, service_uri: str, domain: str, *, blocked: bool) -> bool:
    """Block (or unblock) a whole server for the assistant; False when nothing changed."""
    host = _host(domain)
    await _state(db, service_uri)
    async with db.transaction() as session:
        row = await session.scalar(select(DomainBlock).where(
            DomainBlock.blocker_uri == service_uri, DomainBlock.domain == host
        ))  # fmt: skip
        if (row is not None) == blocked:
            return False
        if blocked:
            session.add(DomainBlock(blocker_uri=service_uri, domain=host))
        else:
            await session.delete(row)
    return True
