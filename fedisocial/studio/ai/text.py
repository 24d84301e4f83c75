"""Text models: what the assistant and the drafting help ask a chat model.

A :class:`TextProvider` answers a conversation of :class:`Message` with one
:class:`TextAnswer`. Its errors are :mod:`fedisocial.errors` a user can act
on: :class:`TextRefused` when the model declines (a content filter, a
refusal), :class:`TextRateLimited` with ``retry_after`` for a quota, a
:class:`~fedisocial.errors.RemoteError` for an outage or a timeout. No
provider is configured when the instance has no text model: callers then
give their offline answer, never an invented one.

:class:`OpenAITextProvider` speaks the chat completions API of any
OpenAI-compatible endpoint through the official ``openai`` package, stream off
and without tools, and with no SDK retries: a 429 or 5xx ends the attempt at
once, and the caller's retry contract decides (the job queue for the
assistant, a 429/502 with ``Retry-After`` for an interactive request). The
errors are worded by the :class:`~fedisocial.studio.ai.openai_api.Endpoint` the
image model shares. :func:`text_provider` builds it from ``[ai.text]``.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

import openai

from fedisocial.errors import BadRequest, RateLimited, RemoteError
from fedisocial.studio.ai.openai_api import DEFAULT_BASE_URL, Endpoint

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

    from fedisocial.config import Settings

__all__ = [
    "Message",
    "OpenAITextProvider",
    "TextAnswer",
    "TextProvider",
    "TextRateLimited",
    "TextRefused",
    "text_provider",
]


@dataclass(frozen=True)
class Message:
    """One turn of a conversation; ``images`` are (bytes, media type) for a vision model."""

    role: Literal["system", "user", "assistant"]
    text: str
    images: tuple[tuple[bytes, str], ...] = ()


@dataclass(frozen=True)
class TextAnswer:
    text: str
    #: the model that answered, as the endpoint names it
    model: str


class TextRefused(BadRequest):
    """The model declined to answer (its content policy, or a refusal in the answer)."""


class TextRateLimited(RateLimited):
    """Quota or rate limit reached; ``retry_after`` (seconds) is read by the job worker."""


class TextProvider(Protocol):
    name: str
    model: str
    #: whether :meth:`complete` may be given images (a vision model is configured)
    vision: bool

    async def complete(
        self, messages: Sequence[Message], *, max_tokens: int | None = None
    ) -> TextAnswer: ...

    async def aclose(self) -> None: ...


def text_provider(settings: Settings) -> TextProvider | None:
    """The text model ``[ai.text]`` configures, or None: callers then answer offline."""
    return OpenAITextProvider(settings) if settings.text_provider == "openai" else None


class OpenAITextProvider:
    """Any OpenAI-compatible chat completions endpoint, through the official ``openai`` package."""

    name = "openai"

    def __init__(self, settings: Settings) -> None:
        self.model = settings.ai_text_model
        self.vision = settings.ai_text_vision
        self.max_tokens = settings.ai_text_max_tokens
        # One account often serves both: the text model falls back on [ai.images]'s endpoint.
        base_url = settings.ai_text_base_url or settings.ai_images_base_url or DEFAULT_BASE_URL
        self._endpoint = Endpoint(
            speaker="the text model",
            base_url=base_url,
            model=self.model,
            secret=settings.ai_text_api_key or settings.ai_images_api_key,
            timeout=settings.ai_text_timeout,
            key_setting="FEDISOCIAL_AI_TEXT_API_KEY",
            asked="this request",
            refused=TextRefused,
            limited=TextRateLimited,
        )
        self._openai = self._endpoint.client()

    @property
    def base_url(self) -> str:
        return self._endpoint.base_url

    async def aclose(self) -> None:
        await self._openai.close()

    def _message(self, message: Message) -> dict[str, Any]:
        """A chat message; images as ``image_url`` parts with ``data:`` URLs (vision only)."""
        if not (self.vision and message.images):
            return {"role": message.role, "content": message.text}
        parts: list[dict[str, Any]] = [{"type": "text", "text": message.text}]
        for data, media_type in message.images:
            url = f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        return {"role": message.role, "content": parts}

    async def complete(
        self, messages: Sequence[Message], *, max_tokens: int | None = None
    ) -> TextAnswer:
        endpoint = self._endpoint
        sent = cast("list[ChatCompletionMessageParam]", [self._message(m) for m in messages])
        try:
            # The SDK's timeout is per attempt; ours bounds the whole call.
            async with asyncio.timeout(endpoint.timeout):
                answer = await self._openai.chat.completions.create(
                    model=self.model,
                    messages=sent,
                    max_tokens=max_tokens or self.max_tokens,
                    stream=False,
                )
        except TimeoutError as exc:
            raise endpoint.timed_out() from exc
        except openai.APIError as exc:
            raise endpoint.translate(exc) from exc
        if not answer.choices:
            raise RemoteError(f"the text model at {endpoint.where} returned no answer")
        choice = answer.choices[0]
        if choice.message.refusal:
            raise endpoint.refusal(endpoint.hide(choice.message.refusal[:300]))
        if choice.finish_reason == "content_filter":
            raise endpoint.refusal("its content filter stopped the answer")
        text = (choice.message.content or "").strip()
        if not text:
            raise RemoteError(f"the text model at {endpoint.where} returned an empty answer")
        return TextAnswer(text, answer.model or self.model)
