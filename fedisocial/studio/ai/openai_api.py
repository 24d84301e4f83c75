"""What the image and the text provider share about an OpenAI-compatible endpoint.

An :class:`Endpoint` is one configured model behind one base URL: it builds the
``openai`` client (no SDK retries: a 429 or 5xx ends the attempt at once, and the
caller's retry contract decides — the job queue's policy for jobs, a 429/502 with
``Retry-After`` for an interactive request) and turns the SDK's errors into
:mod:`fedisocial.errors` with messages a user can act on, naming what speaks ("the
image model", "the text model") and where, never with the API key.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import openai

from fedisocial.ap.client import network_failure, parse_retry_after
from fedisocial.errors import BadRequest, FedisocialError, RateLimited, RemoteError, RemoteStatus

__all__ = ["DEFAULT_BASE_URL", "REFUSAL_CODES", "Endpoint", "public_url"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: Codes of a content-policy refusal: content_policy_violation (dall-e, chat),
#: content_filter (Azure), moderation_blocked (gpt-image).
REFUSAL_CODES = ("content_policy_violation", "content_filter", "moderation_blocked")


def public_url(url: str) -> str:
    """A URL fit for a message: no credentials, no query (it may hold a signature)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@dataclass(frozen=True)
class Endpoint:
    """One model at one OpenAI-compatible base URL, and how its failures are worded."""

    #: what speaks, in messages: "the image model", "the text model"
    speaker: str
    base_url: str
    model: str
    secret: str
    timeout: float
    #: the environment variable(s) that set the key, named when the key is refused
    key_setting: str
    #: what was asked, in a refusal: "this prompt", "this request"
    asked: str
    refused: type[BadRequest]
    limited: type[RateLimited]

    @property
    def where(self) -> str:
        return public_url(self.base_url)

    def client(self) -> openai.AsyncOpenAI:
        # Servers like LocalAI need no key, but the SDK insists on one: send a dummy.
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=self.secret or "none",
                                  timeout=self.timeout, max_retries=0)  # fmt: skip

    def timed_out(self) -> RemoteError:
        return RemoteError(f"{self.speaker} did not answer within {self.timeout:g} s")

    def refusal(self, detail: str) -> BadRequest:
        return self.refused(f"{self.speaker.capitalize()} refused {self.asked}: {detail}")

    def hide(self, text: str) -> str:
        """``text`` with the API key masked (a server may quote it back)."""
        return text.replace(self.secret, "***") if self.secret else text

    def detail(self, exc: openai.APIError) -> str:
        body = exc.body
        message = body.get("message") if isinstance(body, dict) else None
        return self.hide(str(message or exc.message or type(exc).__name__)[:300])

    def _status_message(self, exc: openai.APIStatusError, detail: str) -> str:
        where = self.where
        if isinstance(exc, openai.AuthenticationError):
            return (f"{self.speaker} at {where} refused our API key: "
                    f"set {self.key_setting} to a valid key")  # fmt: skip
        if isinstance(exc, openai.PermissionDeniedError):
            return f"the API key may not use {self.model} at {where}: {detail}"
        if isinstance(exc, openai.NotFoundError):
            return f"no {self.speaker.removeprefix('the ')} {self.model!r} at {where}"
        return f"{self.speaker} at {where} failed with HTTP {exc.status_code}: {detail}"

    def translate(self, exc: openai.APIError) -> FedisocialError:
        """An SDK error as a user-facing fedisocial error (never with the API key)."""
        where = self.where
        if isinstance(exc, openai.APITimeoutError):
            return self.timed_out()
        if isinstance(exc, openai.APIConnectionError):
            why = network_failure(exc, urlsplit(self.base_url).hostname or where, self.timeout)
            return RemoteError(f"cannot reach {self.speaker} at {where}: {why}")
        detail = self.detail(exc)
        if isinstance(exc, openai.BadRequestError):
            if exc.code in REFUSAL_CODES:
                return self.refusal(detail)
            return BadRequest(f"{self.speaker} at {where} rejected the request: {detail}")
        if isinstance(exc, openai.RateLimitError):
            return self.limited(
                f"quota or rate limit reached at {where}; try again later ({detail})",
                retry_after=parse_retry_after(exc.response.headers),
            )
        if isinstance(exc, openai.APIStatusError):
            return RemoteStatus(where, exc.status_code, self._status_message(exc, detail),
                                retry_after=parse_retry_after(exc.response.headers))  # fmt: skip
        return RemoteError(f"{self.speaker} at {where} sent an answer we cannot read: {detail}")
