"""What crawlers are told: ``robots.txt``, and the AI opt-out signals of pages and files.

An account that opted out of AI use (``actors.noai``, set in its settings) gets
``X-Robots-Tag: noai, noimageai`` on its profile, its posts' pages, its Atom feed and its
media files, and its HTML pages carry ``<meta name="robots" content="noai, noimageai">``
(the DeviantArt/FEP-5e53 directives; crawlers that honour them skip the content for
training). ``robots.txt`` asks the known AI crawlers to keep out of those accounts' pages,
and of the whole instance when the admin sets ``ai_crawlers = "block"`` (then every page
and file is marked too).

Where the signals come from, in one place:

- :func:`robots_headers` (``*authors``): the header a handler adds to what it answers for
  those authors (a thread of a remote post, a feed of several authors);
  :func:`robots_content` is the same value for a template's ``robots`` variable.
- :class:`RobotsSignals`, a pure ASGI middleware: the URLs that belong to a local account
  (``/users/NAME…``, ``/@NAME…``) get the header from the cached list of opted-out
  accounts without their handler doing anything; and an HTML page that carries the
  header (however it got it) gets the ``<meta>`` tag in its ``<head>``, unless the page
  has one already.
- :func:`media_headers`: ``/media/…`` files, by the owners of the file.

The lists are cached per process for :data:`OPT_OUTS_TTL` seconds; :func:`forget_opt_outs`
drops this process's copy at once (the settings page calls it after a change).
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from typing import TYPE_CHECKING, Any

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fedisocial.cache import TTLCache
from fedisocial.social.opt_outs import local_opt_outs, media_opted_out
from fedisocial.store.models import Actor
from fedisocial.web.context import get_context

if TYPE_CHECKING:
    from fedisocial.app import Context

__all__ = [
    "AI_CRAWLERS",
    "NOAI",
    "PRIVATE_PATHS",
    "RobotsSignals",
    "forget_opt_outs",
    "media_headers",
    "robots_content",
    "robots_headers",
    "robots_txt_body",
    "routes",
]

#: the directives of an opted-out account's pages and files
NOAI = "noai, noimageai"
#: crawlers that collect for AI training or answers (their operators' documented names)
AI_CRAWLERS = (
    "GPTBot", "ChatGPT-User", "OAI-SearchBot", "CCBot", "Google-Extended", "Applebot-Extended",
    "ClaudeBot", "Claude-Web", "anthropic-ai", "PerplexityBot", "Perplexity-User", "Bytespider",
    "Amazonbot", "meta-externalagent", "FacebookBot", "Diffbot", "cohere-ai", "Omgilibot",
    "ImagesiftBot", "Timpibot", "YouBot", "AI2Bot", "DuckAssistBot",
)  # fmt: skip
#: the app's own paths, of no use to any crawler (sessions, forms, APIs, live streams)
PRIVATE_PATHS = (
    "/settings", "/notifications", "/compose", "/home", "/search", "/studio", "/live",
    "/api/", "/oauth/", "/auth/", "/admin/",
)  # fmt: skip
#: opted-out accounts robots.txt names at most (beyond: say so, and suggest "block")
ROBOTS_MAX_ACCOUNTS = 1000
#: opted-out accounts the header middleware knows at most
HEADER_MAX_ACCOUNTS = 100_000
#: seconds a process keeps the lists of opted-out accounts and files
OPT_OUTS_TTL = 30.0
#: how long crawlers and caches may keep robots.txt
ROBOTS_CACHE = "public, max-age=300"

#: a path that belongs to a local account: /users/NAME, /users/NAME/…, /users/NAME.atom, /@NAME…
_ACCOUNT_PATH = re.compile(r"^/(?:users/|@)([A-Za-z0-9_]{1,30})(?:[/.]|$)")
_HEAD = re.compile(rb"<head(?:\s[^>]*)?>", re.IGNORECASE)
_HAS_META = re.compile(rb"<meta\s+name=[\"']?robots", re.IGNORECASE)
#: where in a page the <head> tag must be for the meta tag to be added
_HEAD_WITHIN = 4096


# -- what handlers call ------------------------------------------------------------------------


def robots_content(*authors: Actor | None) -> str | None:
    """The robots directives of a page showing these authors' posts: :data:`NOAI` or None."""
    return NOAI if any(author is not None and author.noai for author in authors) else None


def robots_headers(*authors: Actor | None) -> dict[str, str]:
    """``{"X-Robots-Tag": "noai, noimageai"}`` when one of ``authors`` opted out, else ``{}``.

    ``response.headers.update(robots_headers(author))``: the middleware then adds the
    ``<meta>`` tag to an HTML page too.
    """
    content = robots_content(*authors)
    return {"X-Robots-Tag": content} if content else {}


async def media_headers(request: Request, key: str) -> dict[str, str]:
    """The header of a stored file (``ab/<sha256>[.small].ext``) whose owner opted out."""
    context = get_context(request)
    if context.settings.ai_crawlers == "block":
        return {"X-Robots-Tag": NOAI}
    sha256 = key.rpartition("/")[2].partition(".")[0]
    signals = _signals(request.app)
    marked = signals.media.get(sha256)
    if marked is None:
        marked = await media_opted_out(context.db, sha256)
        signals.media.put(sha256, marked)
    return {"X-Robots-Tag": NOAI} if marked else {}


def forget_opt_outs(app: Any) -> None:
    """Drop this process's cached opt-outs (``request.app``, after an account changed its
    choice): its pages, feed, files and robots.txt say so at once in this process, and in
    the others within :data:`OPT_OUTS_TTL` seconds."""
    signals = _signals(app)
    signals.usernames = signals.robots = None
    signals.media = TTLCache(OPT_OUTS_TTL, max_entries=signals.media.max_entries)


# -- the cached lists --------------------------------------------------------------------------


class _Signals:
    """One app's cached opt-outs: local usernames (lower case) and stored files by hash."""

    def __init__(self) -> None:
        #: (fresh until, value) of the opted-out usernames and of robots.txt
        self.usernames: tuple[float, frozenset[str]] | None = None
        self.robots: tuple[float, bytes] | None = None
        self.media: TTLCache[str, bool] = TTLCache(OPT_OUTS_TTL, max_entries=50_000)
        self.lock = asyncio.Lock()

    async def opted_out_usernames(self, context: Context) -> frozenset[str]:
        cached = self.usernames
        if cached is None or cached[0] <= time.monotonic():
            async with self.lock:  # one query per expiry, however many requests wait
                cached = self.usernames
                if cached is None or cached[0] <= time.monotonic():
                    names = await local_opt_outs(context.db, context.urls.netloc,
                                                 HEADER_MAX_ACCOUNTS)  # fmt: skip
                    fresh = frozenset(name.lower() for name in names)
                    cached = self.usernames = (time.monotonic() + OPT_OUTS_TTL, fresh)
        return cached[1]

    async def robots_txt(self, context: Context) -> bytes:
        cached = self.robots
        if cached is None or cached[0] <= time.monotonic():
            async with self.lock:
                cached = self.robots
                if cached is None or cached[0] <= time.monotonic():
                    body = await _robots_txt(context)
                    cached = self.robots = (time.monotonic() + OPT_OUTS_TTL, body)
        return cached[1]


def _signals(app: Any) -> _Signals:
    found: _Signals | None = getattr(app.state, "robots_signals", None)
    if found is None:
        found = _Signals()
        app.state.robots_signals = found
    return found


# -- robots.txt --------------------------------------------------------------------------------


def _account_rules(username: str) -> list[str]:
    """The paths of one account (its profile, feed, posts, collections; exactly, not prefixes
    of other names: ``$`` ends a rule, RFC 9309 §2.2.3)."""
    names = dict.fromkeys([username, username.lower()])
    return [f"Disallow: {path}" for name in names
            for path in (f"/users/{name}$", f"/users/{name}/", f"/users/{name}.atom",
                         f"/@{name}$", f"/@{name}/")]  # fmt: skip


def robots_txt_body(instance: str, opted_out: list[str], *, block_ai: bool,
                    truncated: bool) -> str:  # fmt: skip
    """robots.txt (RFC 9309): everyone may read public pages, not the app's private paths;
    AI crawlers also not the accounts that opted out (or nothing, with ``block_ai``).

    A crawler follows only the group naming it, so the AI group repeats the private paths.
    """
    private = [f"Disallow: {path}" for path in PRIVATE_PATHS]
    lines = [f"# robots.txt of {instance}", "", "User-agent: *", *private, "Allow: /", ""]
    lines += ["# AI crawlers (training and answer engines)"]
    lines += [f"User-agent: {name}" for name in AI_CRAWLERS]
    if block_ai:
        lines += ["Disallow: /", ""]
        return "\n".join(lines)
    lines += private
    if opted_out:
        lines.append("# accounts that opted out of AI use")
    for username in opted_out:
        lines += _account_rules(username)
    if truncated:
        lines.append(f"# (the first {len(opted_out)} accounts that opted out; the others' "
                     "pages and files say X-Robots-Tag: noai)")  # fmt: skip
    lines += ["Allow: /", ""]
    return "\n".join(lines)


async def _robots_txt(context: Context) -> bytes:
    block = context.settings.ai_crawlers == "block"
    names = [] if block else await local_opt_outs(context.db, context.urls.netloc,
                                                  ROBOTS_MAX_ACCOUNTS + 1)  # fmt: skip
    return robots_txt_body(context.settings.instance_name, names[:ROBOTS_MAX_ACCOUNTS],
                           block_ai=block,
                           truncated=len(names) > ROBOTS_MAX_ACCOUNTS).encode()  # fmt: skip


async def robots_txt(request: Request) -> Response:
    body = await _signals(request.app).robots_txt(get_context(request))
    return Response(body, media_type="text/plain; charset=utf-8",
                    headers={"Cache-Control": ROBOTS_CACHE})  # fmt: skip


routes: list[BaseRoute] = [Route("/robots.txt", robots_txt, methods=["GET", "HEAD"])]


# -- the middleware ----------------------------------------------------------------------------


class RobotsSignals:
    """Adds the AI opt-out header to an account's URLs, and the meta tag to marked pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        marked = await self._marked(scope)
        held: list[Message] = []
        chunks: list[bytes] = []

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if marked:
                    headers.setdefault("X-Robots-Tag", NOAI)
                directives = headers.get("x-robots-tag", "")
                if ("noai" in directives and scope["method"] == "GET"
                        and headers.get("content-type", "").startswith("text/html")):  # fmt: skip
                    held.append(message)  # the body may grow: send the start with it
                    return
            elif message["type"] == "http.response.body" and held:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                start = held.pop()
                headers = MutableHeaders(scope=start)
                body = _with_meta(b"".join(chunks), headers["x-robots-tag"])
                headers["content-length"] = str(len(body))
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, send_marked)

    @staticmethod
    async def _marked(scope: Scope) -> bool:
        app = scope.get("app")
        context = getattr(getattr(app, "state", None), "context", None)
        if context is None:
            return False
        if context.settings.ai_crawlers == "block":
            return True
        found = _ACCOUNT_PATH.match(scope["path"])
        if found is None:
            return False
        return found.group(1).lower() in await _signals(app).opted_out_usernames(context)


def _with_meta(body: bytes, directives: str) -> bytes:
    """``body`` with ``<meta name="robots" content=directives>`` first in its ``<head>``."""
    head = _HEAD.search(body, 0, _HEAD_WITHIN)
    if head is None or _HAS_META.search(body):
        return body
    meta = f'\n  <meta name="robots" content="{html.escape(directives)}">'.encode()
    return body[: head.end()] + meta + body[head.end() :]
