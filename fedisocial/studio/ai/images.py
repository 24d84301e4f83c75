"""Image providers: any OpenAI-compatible endpoint, and an offline local renderer.

:class:`OpenAIImageProvider` speaks the images API through the official
``openai`` package (OpenAI, Azure, LocalAI, vLLM… by ``base_url``). The SDK
does not retry: a 429 or 5xx ends the attempt at once and the job queue tries
again on the generation's retry policy, honouring ``Retry-After`` (one retry
contract; a job never sleeps out a long ``Retry-After`` in its slot). Its
errors become :mod:`fedisocial.errors` with messages a user can act on, through
the :class:`~fedisocial.studio.ai.openai_api.Endpoint` the text model shares (an
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

import openai
from openai.types import ImagesResponse

from fedisocial.errors import BadRequest, RateLimited, RemoteError
from fedisocial.studio.ai.openai_api import DEFAULT_BASE_URL, Endpoint, public_url

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


async def download_image(client: FederationClient, url: str, max_bytes: int) -> tuple[bytes, str]:
    """GET an image through the guarded client, capped at ``max_bytes``: (body, Content-Type)."""
    try:
        return await client.get_bytes(
            url, accept="image/png, image/jpeg, image/webp", max_bytes=max_bytes
        )
    except RemoteError as exc:
        # the URL may carry a signed query string: show only where it points
        exc.message = exc.message.replace(url, public_url(url))
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
        self._endpoint = Endpoint(
            speaker="the image model",
            base_url=self.base_url,
            model=self.model,
            secret=settings.ai_images_api_key,
            timeout=settings.ai_images_timeout,
            key_setting="FEDISOCIAL_OPENAI_API_KEY (or OPENAI_API_KEY)",
            asked="this prompt",
            refused=ImageRefused,
            limited=ImageRateLimited,
        )
        self._openai = self._endpoint.client()

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
        try:
            # The SDK's timeout is per attempt; ours bounds the whole call, retries included.
            async with asyncio.timeout(self._endpoint.timeout):
                answer = await self._openai.images.generate(prompt=prompt, **self.request_params())
        except TimeoutError as exc:
            raise self._endpoint.timed_out() from exc
        except openai.APIError as exc:
            raise self._endpoint.translate(exc) from exc
        return await self._image(answer)

    async def _image(self, answer: ImagesResponse) -> GeneratedImage:
        where = self._endpoint.where
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
