"""Text models: what the assistant and the drafting help ask a chat model.

A :class:`TextProvider` answers a conversation of :class:`Message` with one
:class:`TextAnswer`. Its errors are :mod:`fedisocial.errors` a user can act
on: :class:`TextRefused` when the model declines (a content filter, a
refusal), :class:`TextRateLimited` with ``retry_after`` for a quota, a
:class:`~fedisocial.errors.RemoteError` for an outage or a timeout. No
provider is configured when the instance has no text model: callers then
give their offline answer, never an invented one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from fedisocial.errors import BadRequest, RateLimited

__all__ = ["Message", "TextAnswer", "TextProvider", "TextRateLimited", "TextRefused"]


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
