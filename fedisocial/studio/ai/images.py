"""Image providers: any OpenAI-compatible endpoint, and an offline local renderer.

:class:`OpenAIImageProvider` speaks the images API through the official
``openai`` package (OpenAI, Azure, LocalAI, vLLM… by ``base_url``). The SDK
does not retry: a 429 or 5xx ends the attempt at once and the job queue tries
again on the generation's retry policy, honouring ``Retry-After`` (one retry
contract; a job never sleeps out a long ``Retry-After`` in its slot). Its
errors become :mod:`fedisocial.errors` with messages a user can act on (an
answer with an error status as :class:`~fedisocial.errors.RemoteStatus`, so
the job queue's one rule decides whether the generation is tried again); the
API key never appears in them. :class:`LocalImageProvider` is the embedded
default: a deterministic Pillow renderer that needs no account anywhere.
Providers are built by :func:`image_provider` from the settings; generation
always runs in a job.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import openai
from openai.types import ImagesResponse

from fedisocial.ap.client import network_failure, parse_retry_after
from fedisocial.errors import BadRequest, FedisocialError, RateLimited, RemoteError, RemoteStatus

if TYPE_CHECKING:
    from fedisocial.ap.client import FederationClient
    from fedisocial.config import Settings

__all__ = [
    "GeneratedImage",
    "ImageProvider",
    "ImageRateLimited",
    "ImageRefused",
    "OpenAIImageProvider",
    "alt_text",
    "download_image",
    "image_provider",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: Codes of a content-policy refusal: content_policy_violation (dall-e), moderation_blocked
#: (gpt-image).
REFUSAL_CODES = ("content_policy_violation", "moderation_blocked")
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))
_MAX_REDIRECTS = 5


class ImageRefused(BadRequest):
    """The model's content policy refused the prompt."""


class ImageRateLimited(RateLimited):
    """Quota or rate limit reached; ``retry_after`` (seconds) is read by the job worker."""


@dataclass(frozen=True)
class GeneratedImage:
    """An image as a provider returned it: to be checked by ``media.process_image``."""

    data: bytes
    media_type: str
    provider: str
    model: str
    revised_prompt: str | None


class ImageProvider(Protocol):
    name: str
    model: str

    async def generate(self, prompt: str) -> GeneratedImage: ...


def image_provider(settings: Settings, client: FederationClient) -> ImageProvider:
    """The provider ``settings.image_provider`` names (openai or local)."""
    if settings.image_provider == "openai":
        return OpenAIImageProvider(settings, client)
    from fedisocial.studio.ai.local import LocalImageProvider  # local.py builds on this module

    return LocalImageProvider(settings)


def alt_text(prompt: str, image: GeneratedImage) -> str:
    """Alt text saying the image was generated, by what, and from which prompt."""
    if image.provider == "local":
        return (f"Image drawn by fedisocial's offline renderer ({image.model}), an abstract "
                f"composition standing in for an AI model, from the prompt: {prompt}")  # fmt: skip
    return f"AI-generated image ({image.model}) from the prompt: {prompt}"


def _sniff(data: bytes) -> str | None:
    for magic, media_type in _MAGIC:
        if data.startswith(magic):
            return media_type
    return "image/webp" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else None


def _public(url: str) -> str:
    """A URL fit for a message: no credentials, no query (it may hold a signature)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


async def download_image(client: FederationClient, url: str, max_bytes: int) -> tuple[bytes, str]:
    """GET an image through the guarded client, capped at ``max_bytes``: (body, Content-Type)."""
    try:
        return await client.get_bytes(
            url, accept="image/png, image/jpeg, image/webp", max_bytes=max_bytes
        )
    except RemoteError as exc:
        # the URL may carry a signed query string: show only where it points
        exc.message = exc.message.replace(url, _public(url))
        exc.args = (exc.message,)
        raise


class OpenAIImageProvider:
    """Any OpenAI-compatible images endpoint, through the official ``openai`` package."""

    name = "openai"

    def __init__(self, settings: Settings, client: FederationClient) -> None:
        self.model = settings.ai_images_model
        self.base_url = settings.ai_images_base_url or DEFAULT_BASE_URL
        self.settings = settings
        self._client = client
        self._secret = settings.ai_images_api_key
        # Servers like LocalAI need no key, but the SDK insists on one: send a dummy.
        self._openai = openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self._secret or "none",
            timeout=settings.ai_images_timeout, max_retries=0,
        )  # fmt: skip

    async def aclose(self) -> None:
        await self._openai.close()

    def request_params(self) -> dict[str, Any]:
        """What this model family accepts (an unknown parameter is a 400 on most servers)."""
        params: dict[str, Any] = {"model": self.model, "size": self.settings.ai_images_size}
        quality = self.settings.ai_images_quality
        if self.model.startswith(("gpt-image", "chatgpt-image")):
            quality = {"hd": "high", "standard": "medium"}.get(quality, quality)
            params.update(n=1, quality=quality,
                          output_format=self.settings.ai_images_output_format)  # fmt: skip
        elif self.model.startswith("dall-e"):
            params.update(n=1, response_format="b64_json")
            if self.model.startswith("dall-e-3"):
                params["quality"] = "hd" if quality in ("hd", "high") else "standard"
        else:  # LocalAI, vLLM, …: the common subset
            params["response_format"] = "b64_json"
        return params

    async def generate(self, prompt: str) -> GeneratedImage:
        timeout = self.settings.ai_images_timeout
        try:
            # The SDK's timeout is per attempt; ours bounds the whole call, retries included.
            async with asyncio.timeout(timeout):
                answer = await self._openai.images.generate(prompt=prompt, **self.request_params())
        except TimeoutError as exc:
            raise RemoteError(f"the image model did not answer within {timeout:g} s") from exc
        except openai.APIError as exc:
            raise self._translate(exc) from exc
        return await self._image(answer)

    async def _image(self, answer: ImagesResponse) -> GeneratedImage:
        where = _public(self.base_url)
        if not answer.data:
            raise RemoteError(f"the image model at {where} returned no image")
        item = answer.data[0]
        if item.b64_json:
            try:
                data = base64.b64decode(item.b64_json, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise RemoteError(f"the image model at {where} returned invalid base64") from exc
            declared = f"image/{answer.output_format or self.settings.ai_images_output_format}"
        elif item.url:
            data, declared = await download_image(
                self._client, item.url, self.settings.media_max_bytes
            )
        else:
            raise RemoteError(f"the image model at {where} returned neither b64_json nor url")
        media_type = _sniff(data) or declared.split(";", 1)[0].strip() or "application/octet-stream"
        return GeneratedImage(data, media_type, self.name, self.model, item.revised_prompt or None)

    def _detail(self, exc: openai.APIError) -> str:
        body = exc.body
        message = body.get("message") if isinstance(body, dict) else None
        text = str(message or exc.message or type(exc).__name__)[:300]
        return text.replace(self._secret, "***") if self._secret else text

    def _status_message(self, exc: openai.APIStatusError, detail: str) -> str:
        where = _public(self.base_url)
        if isinstance(exc, openai.AuthenticationError):
            return (f"the image model at {where} refused our API key: set "
                    "FEDISOCIAL_OPENAI_API_KEY (or OPENAI_API_KEY) to a valid key")  # fmt: skip
        if isinstance(exc, openai.PermissionDeniedError):
            return f"the API key may not use {self.model} at {where}: {detail}"
        if isinstance(exc, openai.NotFoundError):
            return f"no image model {self.model!r} or images API at {where}"
        return f"the image model at {where} failed with HTTP {exc.status_code}: {detail}"

    def _translate(self, exc: openai.APIError) -> FedisocialError:
        """An SDK error as a user-facing fedisocial error (never with the API key)."""
        where = _public(self.base_url)
        if isinstance(exc, openai.APITimeoutError):
            timeout = self.settings.ai_images_timeout
            return RemoteError(f"the image model did not answer within {timeout:g} s")
        if isinstance(exc, openai.APIConnectionError):
            why = network_failure(exc, urlsplit(self.base_url).hostname or where,
                                  self.settings.ai_images_timeout)  # fmt: skip
            return RemoteError(f"cannot reach the image model at {where}: {why}")
        detail = self._detail(exc)
        if isinstance(exc, openai.BadRequestError):
            if exc.code in REFUSAL_CODES:
                return ImageRefused(f"The image model refused this prompt: {detail}")
            return BadRequest(f"the image model at {where} rejected the request: {detail}")
        if isinstance(exc, openai.RateLimitError):
            return ImageRateLimited(
                f"quota or rate limit reached at {where}; try again later ({detail})",
                retry_after=parse_retry_after(exc.response.headers),
            )
        if isinstance(exc, openai.APIStatusError):
            return RemoteStatus(where, exc.status_code, self._status_message(exc, detail),
                                retry_after=parse_retry_after(exc.response.headers))  # fmt: skip
        return RemoteError(f"the image model at {where} sent an answer we cannot read: {detail}")
