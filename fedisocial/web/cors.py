"""Cross-origin requests (CORS) for browser apps such as Elk and Phanpy, as Mastodon allows them.

Mastodon's ``config/initializers/cors.rb`` (rack-cors) opens these paths to any origin,
never with credentials (no cookies, so a page elsewhere cannot act with someone's
session; apps send ``Authorization: Bearer``):

- ``/api/*``: GET, POST, PUT, PATCH, DELETE, OPTIONS; exposes ``Link`` (paging) and the
  ``X-RateLimit-*`` headers;
- ``/oauth/token``, ``/oauth/revoke``: POST;
- ``/.well-known/*``, ``/nodeinfo/*``: GET.

A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is
answered here, 200 with an empty body and without asking for credentials: the methods,
the request headers asked for (any, as rack-cors's ``headers: :any``), and a max age of
two hours. Other responses on these paths get ``Access-Control-Allow-Origin: *``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Cors", "rule_for"]

_API_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_EXPOSE = "Link, X-RateLimit-Reset, X-RateLimit-Limit, X-RateLimit-Remaining, X-Request-Id"
#: what a preflight may cache (rack-cors's default)
_MAX_AGE = "7200"
#: header names as RFC 9110 tokens, comma-separated: what may be echoed back
_HEADER_LIST = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*$")
_DEFAULT_HEADERS = "Authorization, Content-Type, Idempotency-Key"


@dataclass(frozen=True)
class Rule:
    """The methods a path allows across origins, and the headers its answers expose."""

    methods: tuple[str, ...]
    expose: str = ""


_API = Rule(_API_METHODS, _EXPOSE)
_POST = Rule(("POST",))
_GET = Rule(("GET",))
_EXACT = {"/oauth/token": _POST, "/oauth/revoke": _POST}
_PREFIXES = (("/api/", _API), ("/.well-known/", _GET), ("/nodeinfo/", _GET))


def rule_for(path: str) -> Rule | None:
    """The CORS rule of a path; None: same-origin only."""
    if path in _EXACT:
        return _EXACT[path]
    return next((rule for prefix, rule in _PREFIXES if path.startswith(prefix)), None)


class Cors:
    """Pure ASGI middleware: answers preflights and marks cross-origin answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rule = rule_for(scope["path"]) if scope["type"] == "http" else None
        if rule is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(rule, headers, send)
            return

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer = MutableHeaders(scope=message)
                answer.setdefault("Access-Control-Allow-Origin", "*")
                if rule.expose:
                    answer.setdefault("Access-Control-Expose-Headers", rule.expose)
            await send(message)

        await self.app(scope, receive, send_marked)

    @staticmethod
    async def _preflight(rule: Rule, headers: Headers, send: Send) -> None:
        answer: list[tuple[str, str]] = [("Content-Length", "0")]
        method = headers["access-control-request-method"].strip().upper()
        if method in rule.methods:
            asked = headers.get("access-control-request-headers", "").strip()
            allowed = asked if _HEADER_LIST.match(asked) else _DEFAULT_HEADERS
            answer += [
                ("Access-Control-Allow-Origin", "*"),
                ("Access-Control-Allow-Methods", ", ".join(rule.methods)),
                ("Access-Control-Allow-Headers", allowed),
                ("Access-Control-Max-Age", _MAX_AGE),
            ]
            if rule.expose:
                answer.append(("Access-Control-Expose-Headers", rule.expose))
        answer.append(("Vary", "Access-Control-Request-Headers"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                                for k, v in answer]})  # fmt: skip
        await send({"type": "http.response.body", "body": b""})
