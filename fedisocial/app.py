"""The composition root: builds the engine, HTTP client, queue, services and routes once.

:class:`Context` is what every handler and command needs; :func:`build_context`
makes it (the worker and the CLI use it too, without any web parts), and
:func:`create_app` adds the web side: templates, routes and the lifespan.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from fedisocial.ap.client import FederationClient
from fedisocial.ap.httpsig import HttpSignatureAuth, load_private_key
from fedisocial.assistant.actor import ensure_assistant_actor
from fedisocial.assistant.answers import ANSWER_RETRY, Assistant
from fedisocial.assistant.drafting import DraftingHelp
from fedisocial.auth.clients import ClientDirectory
from fedisocial.auth.server import OAuthServer
from fedisocial.cache import ByteCache
from fedisocial.config import Settings, load_settings
from fedisocial.errors import ConfigError, FedisocialError
from fedisocial.federation.delivery import DELIVER, DELIVER_RETRY, FANOUT, FANOUT_RETRY, Delivery
from fedisocial.federation.inbox import (
    PROCESS,
    PROCESS_BATCH,
    PROCESS_RETRY,
    Inbox,
    batches_at_once,
)
from fedisocial.federation.signatures import SignatureVerifier
from fedisocial.jobs import JobKind, JobQueue, Worker
from fedisocial.social.accounts import ensure_instance_actor
from fedisocial.social.housekeeping import prune as prune_old_rows
from fedisocial.social.notifications import SERVICE_MENTIONED
from fedisocial.social.outbox import Outbox
from fedisocial.social.streaming import StreamHub
from fedisocial.store.db import Database, require_current_schema
from fedisocial.studio.ai.images import image_provider
from fedisocial.studio.ai.text import TextProvider, text_provider
from fedisocial.studio.generation import GENERATE, GENERATE_RETRY, Studio
from fedisocial.studio.media import LocalMediaStore, MediaStore
from fedisocial.urls import Urls
from fedisocial.web import (
    c2s,
    drafting,
    federation,
    mastoapi,
    oauth,
    objects,
    pages,
    robots,
    studio,
    syndication,
    wellknown,
)
from fedisocial.web import inbox as inbox_routes
from fedisocial.web.cors import Cors
from fedisocial.web.headers import SecurityHeaders

__all__ = [
    "Context",
    "app_from_environment",
    "build_context",
    "create_app",
    "housekeeping",
    "job_handlers",
]

log = logging.getLogger(__name__)


@dataclass
class Context:
    """The services of one instance, built once per process by :func:`build_context`."""

    settings: Settings
    urls: Urls
    db: Database
    client: FederationClient
    queue: JobQueue
    outbox: Outbox
    delivery: Delivery
    inbox: Inbox
    media: MediaStore
    studio: Studio
    verifier: SignatureVerifier
    #: the OAuth 2.0 authorization server (C2S, Mastodon API and web sign-in share it)
    oauth: OAuthServer
    #: the live streams of the streaming API (this process's subscribers)
    streams: StreamHub
    #: answers the mentions of the assistant actor
    assistant: Assistant
    #: rendered actor, WebFinger and NodeInfo bodies (see :class:`ByteCache`)
    cache: ByteCache = field(default_factory=lambda: ByteCache(ttl=10.0))
    #: the text model of ``[ai.text]``; None when there is none (callers answer offline)
    text: TextProvider | None = None
    #: the composer's drafting help (suggestions, alt text)
    drafting: DraftingHelp = field(kw_only=True)

    async def close(self, *, database: bool = True) -> None:
        """Release connections: the image and text models', the HTTP pool, the database's."""
        close_provider = getattr(self.studio.provider, "aclose", None)
        if close_provider is not None:
            await close_provider()
        if self.text is not None:
            await self.text.aclose()
        await self.streams.close()
        await self.client.aclose()
        self.oauth.close()
        if database:
            await self.db.close()


def job_handlers(context: Context) -> dict[str, JobKind]:
    """The job kinds this instance knows, bound to their services, each with its retry policy."""
    return {
        FANOUT: JobKind(context.delivery.fan_out, FANOUT_RETRY),
        DELIVER: JobKind(context.delivery.deliver, DELIVER_RETRY),
        PROCESS: JobKind(
            context.inbox.process,
            PROCESS_RETRY,
            run_batch=context.inbox.process_batch,
            batch_size=PROCESS_BATCH,
            batches_at_once=batches_at_once(context.db),
        ),
        GENERATE: JobKind(context.studio.run, GENERATE_RETRY, gave_up=_generation_gave_up(context)),
        SERVICE_MENTIONED: JobKind(
            context.assistant.answer, ANSWER_RETRY, gave_up=context.assistant.gave_up
        ),
    }


def _generation_gave_up(
    context: Context,
) -> Callable[[dict[str, Any], BaseException], Awaitable[None]]:
    """A generation failed for good: the studio marks it, and the assistant answers the
    ask it was for (if it was for one)."""

    async def gave_up(payload: dict[str, Any], exc: BaseException) -> None:
        await context.studio.gave_up(payload, exc)
        await context.assistant.image_gave_up(payload, exc)

    return gave_up


def housekeeping(context: Context) -> Callable[[], Awaitable[Mapping[str, int]]]:
    """What the workers prune besides finished jobs (:mod:`fedisocial.social.housekeeping`)."""
    db = context.db

    async def prune() -> Mapping[str, int]:
        return await prune_old_rows(db)

    return prune


async def build_context(settings: Settings, database: Database | None = None) -> Context:
    """Open the database, check its schema, load the instance key, build the client."""
    urls = Urls(settings.base_url)
    db = database or Database(settings.effective_database_url,
                              pool_size=settings.database_pool_size)  # fmt: skip
    try:
        await require_current_schema(db)
    except ConfigError:
        await db.close()
        raise
    instance = await ensure_instance_actor(db, urls)
    assert instance.private_key_pem is not None
    auth = HttpSignatureAuth(instance.public_key_id, load_private_key(instance.private_key_pem))
    client = FederationClient(
        allow_private=settings.allow_private_networks,
        timeout=settings.http_timeout,
        max_bytes=settings.max_fetch_bytes,
        user_agent_url=settings.base_url,
        auth=auth,
    )
    queue = JobQueue.from_settings(db, settings)
    actor_max_age = timedelta(seconds=settings.actor_cache_seconds)
    outbox = Outbox(db, client, urls, actor_max_age)
    delivery = Delivery(db, client, queue, actor_max_age)
    verifier = SignatureVerifier(db, client, actor_max_age)
    inbox = Inbox(db, client, queue, outbox, urls, settings, verifier)
    media = LocalMediaStore.from_settings(settings)
    studio = Studio(db, queue, settings, image_provider(settings, client), media, outbox)
    text = text_provider(settings)
    service, changed = await ensure_assistant_actor(db, urls, settings, studio.provider, text)
    if changed:  # what it says of itself (models, limits, on or off) is news to its followers
        await outbox.update_profile(service)
    assistant = Assistant(db, queue, client, settings, outbox, studio, text, actor_max_age)
    return Context(
        settings=settings,
        urls=urls,
        db=db,
        client=client,
        queue=queue,
        outbox=outbox,
        delivery=delivery,
        inbox=inbox,
        media=media,
        studio=studio,
        verifier=verifier,
        oauth=OAuthServer(db, ClientDirectory(db, client), urls, settings.oauth_token_lifetime),
        streams=StreamHub(db),
        assistant=assistant,
        text=text,
        drafting=DraftingHelp(db, media, settings, text),
    )


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


async def _error_response(
    request: Request, status: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    if _wants_html(request) and hasattr(request.app.state, "context"):
        response = await pages.page(request, "error.html", status, status=status,
                                    message=message)  # fmt: skip
    else:
        body = orjson.dumps({"error": message})
        response = Response(body, status_code=status, media_type="application/json")
    response.headers.update(headers or {})
    return response


async def _on_fedisocial_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FedisocialError)
    return await _error_response(request, exc.status, exc.message, exc.headers)


async def _on_sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, pages.SignInRequired)
    return pages.sign_in_redirect(request, exc)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "nothing here" if exc.status_code == 404 else str(exc.detail)
    return await _error_response(request, exc.status_code, message, exc.headers)


#: the cyclic garbage collector's thresholds in a serving process, once startup is frozen
#: (CPython's default is (700, 10, 10))
SERVING_GC_THRESHOLDS = (20_000, 20, 20)


def settle_heap() -> None:
    """Take what startup built out of the cyclic garbage collector's sight; collect less often.

    Requests and jobs allocate many short-lived containers (parsed JSON, rows,
    statements), so at CPython's default thresholds the collector runs every few
    requests, and each full collection walks every module, class and ORM mapping
    loaded at startup: 15 % of the accept path's CPU, measured in a web process.
    What startup left is frozen (it lives as long as the process); later cycles are
    still collected, in young generations that fill less often. Once per process,
    after startup: a process that builds apps repeatedly (the tests) must not.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)


def create_app(
    settings: Settings,
    *,
    database: Database | None = None,
    run_worker: bool = False,
    serving: bool = False,
) -> Starlette:
    """The ASGI app of one instance; ``run_worker`` adds an in-process job worker.

    ``serving``: the app is its process's only one (a web process of ``serve``), so
    its startup ends with :func:`settle_heap`.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        context = await build_context(settings, database)
        app.state.context = context
        app.state.templates = Environment(
            loader=PackageLoader("fedisocial.web", "templates"), autoescape=select_autoescape()
        )
        worker_task = None
        worker = Worker(context.queue, job_handlers(context), housekeeping=housekeeping(context))
        if run_worker:
            worker_task = asyncio.create_task(worker.run())
        if serving:
            settle_heap()
        try:
            yield
        finally:
            worker.stop()
            if worker_task is not None:
                with suppress(asyncio.CancelledError):
                    await worker_task
            await context.close(database=database is None)

    static = StaticFiles(directory=Path(__file__).parent / "web" / "static")
    return Starlette(
        routes=[
            *syndication.routes,  # before /users/{username} and /tags/{name}
            *robots.routes,
            *wellknown.routes,
            *federation.routes,
            *inbox_routes.routes,
            *objects.routes,
            *c2s.routes,
            *studio.routes,
            *drafting.routes,
            *oauth.routes,
            *mastoapi.routes,
            *pages.routes,
            Mount("/static", static, name="static"),
        ],
        lifespan=lifespan,
        middleware=[
            Middleware(SecurityHeaders, base_url=settings.base_url),
            Middleware(Cors),
            Middleware(robots.RobotsSignals),
        ],
        exception_handlers={
            pages.SignInRequired: _on_sign_in_required,
            FedisocialError: _on_fedisocial_error,
            HTTPException: _on_http_error,
        },
    )


def app_from_environment() -> Starlette:
    """Factory for ``uvicorn --factory`` (one call per web process)."""
    return create_app(load_settings(), serving=True)
