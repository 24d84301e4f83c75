"""Security headers on every response, chosen by what the response is.

- HTML pages: a strict Content-Security-Policy (our own script and styles only,
  images also from other servers, whose avatars and attachments we show), and no
  framing by other sites (``frame-ancestors`` and ``X-Frame-Options``).
- Everything else (media, JSON, AS2, static files): ``default-src 'none'`` and
  ``sandbox``, so a file opened on its own runs nothing on our origin even if a
  browser were to render it.
- All: ``X-Content-Type-Options: nosniff``, so the declared type is the only one.

A handler that sets one of these headers itself keeps its own value.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SecurityHeaders", "page_policy"]

#: for anything that is not one of our pages: runs nothing, loads nothing, is not framed
INERT_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"


def page_policy(base_url: str, form_targets: Sequence[str] = ()) -> str:
    """The CSP of our HTML pages; http images are allowed only on an http (loopback) instance.

    ``form_targets``: sources a form of the page may also end up at. Browsers apply
    ``form-action`` to the redirect that answers a form, so the OAuth consent page names
    the client's redirect URI there.
    """
    images = "'self' https:" + (" http:" if urlsplit(base_url).scheme == "http" else "")
    forms = " ".join(["'self'", *(target for target in form_targets if target)])
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src {images}; connect-src 'self'; form-action {forms}; "
        "base-uri 'none'; frame-ancestors 'none'"
    )


class SecurityHeaders:
    """Pure ASGI middleware adding the headers above to each HTTP response."""

    def __init__(self, app: ASGIApp, base_url: str) -> None:
        self.app = app
        self.page = page_policy(base_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._add(MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _add(self, headers: MutableHeaders) -> None:
        headers.setdefault("X-Content-Type-Options", "nosniff")
        if headers.get("content-type", "").startswith("text/html"):
            headers.setdefault("Content-Security-Policy", self.page)
            headers.setdefault("X-Frame-Options", "DENY")
        else:
            headers.setdefault("Content-Security-Policy", INERT_POLICY)
