"""Security headers on every response, chosen by what the response is.

- HTML pages: a strict Content-Security-Policy (our own script and styles only,
  images and media also from other servers, whose avatars and attachments we show, and
  ``data:``/``blob:`` images, which the script makes for blurhash placeholders and the
  composer's previews), no framing by other sites (``frame-ancestors`` and
  ``X-Frame-Options``), and a browsing context of their own
  (``Cross-Origin-Opener-Policy: same-origin``: a page we link to cannot reach back
  through ``window.opener``).
- Everything else (media, JSON, AS2, static files): ``default-src 'none'`` and
  ``sandbox``, so a file opened on its own runs nothing on our origin even if a
  browser were to render it.
- All: ``X-Content-Type-Options: nosniff``, so the declared type is the only one;
  ``Referrer-Policy: same-origin`` (other servers never learn which of our pages a
  reader came from, as on Mastodon; our own forms still see theirs); and a
  ``Permissions-Policy`` that turns off the powerful features no page of ours uses
  (camera, microphone, geolocation and the like).

A handler that sets one of these headers itself keeps its own value.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["INERT_POLICY", "PERMISSIONS_POLICY", "REFERRER_POLICY", "SecurityHeaders",
           "page_policy"]  # fmt: skip

#: for anything that is not one of our pages: runs nothing, loads nothing, is not framed
INERT_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"
#: links to other servers carry no Referer; our own pages see where a form was
REFERRER_POLICY = "same-origin"
#: features no page of ours uses, off for the page and anything it could embed
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in ("camera", "microphone", "geolocation", "payment", "usb", "midi",
                    "display-capture", "browsing-topics")
)  # fmt: skip


def page_policy(base_url: str, form_targets: Sequence[str] = ()) -> str:
    """The CSP of our HTML pages; http images are allowed only on an http (loopback) instance.

    ``form_targets``: sources a form of the page may also end up at. Browsers apply
    ``form-action`` to the redirect that answers a form, so the OAuth consent page names
    the client's redirect URI there.
    """
    remote = "https:" + (" http:" if urlsplit(base_url).scheme == "http" else "")
    forms = " ".join(["'self'", *(target for target in form_targets if target)])
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' {remote} data: blob:; media-src 'self' {remote}; "
        f"connect-src 'self'; form-action {forms}; base-uri 'none'; frame-ancestors 'none'"
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
        headers.setdefault("Referrer-Policy", REFERRER_POLICY)
        headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        if headers.get("content-type", "").startswith("text/html"):
            headers.setdefault("Content-Security-Policy", self.page)
            headers.setdefault("X-Frame-Options", "DENY")
            headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        else:
            headers.setdefault("Content-Security-Policy", INERT_POLICY)
