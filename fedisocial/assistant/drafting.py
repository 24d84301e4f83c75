"""Drafting help for our own authors: "help me write this", and alt text for an upload.

:meth:`DraftingHelp.suggest` always gives the offline part (:mod:`.hints`:
hashtag candidates, length and readability hints); with a text model it adds the
model's suggestions from one call: shorter, clearer and more engaging rewrites in
the draft's language and the author's voice, hashtags, and a content warning when
one fits. The model is asked for JSON in the prompt, not with ``response_format``:
``json_object`` is refused or ignored by some OpenAI-compatible servers, and an
answer in prose (or JSON in a code fence) is read as well as it can be — at worst
the offline part comes with a note, never a 500.

:meth:`DraftingHelp.alt_text` describes the author's own uploaded image through a
vision-capable model; without one it says so (a 422), and never invents a
description. A generated image's alt text comes from its prompt.

Nothing here posts: suggestions go back to the author, who decides. The model's
calls are limited per user (``ai.text.drafts_per_hour``, shared by every process),
with a 429 that says when to try again.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from fedisocial.assistant.hints import (
    OfflineHints,
    detect_language,
    offline_hints,
    primary_language,
)
from fedisocial.auth.throttle import swap_counter
from fedisocial.config import Settings
from fedisocial.errors import BadRequest, RateLimited, Unprocessable
from fedisocial.social.content import find_hashtags
from fedisocial.social.outbox import MAX_TEXT
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Media, utcnow
from fedisocial.studio.ai.images import GeneratedImage
from fedisocial.studio.ai.images import alt_text as generated_alt_text
from fedisocial.studio.ai.text import Message, TextProvider
from fedisocial.studio.media import MediaStore
from fedisocial.studio.uploads import own_upload

__all__ = [
    "AltText",
    "DraftingHelp",
    "HourlyLimit",
    "ModelSuggestions",
    "Rewrite",
    "Suggestions",
    "parse_suggestions",
]

#: the rewrites asked for, in the order shown
REWRITE_KINDS = ("shorter", "clearer", "engaging")
_HOUR = timedelta(hours=1)
#: the longest content warning taken from a model
_MAX_WARNING = 100
_HASHTAG = re.compile(r"^#?([^\W_][\w]*)$")
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)

SUGGEST_PROMPT = """You help an author improve a social media post before they publish it.
Answer with one JSON object only, no prose, of this shape:
{{"rewrites": [{{"kind": "shorter", "text": "..."}}, {{"kind": "clearer", "text": "..."}},
{{"kind": "engaging", "text": "..."}}], "hashtags": ["CamelCaseTag"], "content_warning": null}}
Rules: write every rewrite in {language}, the language of the draft, and keep the author's
voice, meaning, facts, @mentions and links; invent nothing. Rewrites carry no hashtags and
have at most {max_chars} characters. Suggest up to 3 hashtags (without #, CamelCase for
several words) that are not in the draft yet. Set "content_warning" to a short warning in
{language} only if the post touches a topic people often hide behind one (spoilers, death,
violence, politics, health...), else null."""

ALT_PROMPT = """You write alt text: a description of an image for people who cannot see it.
Describe what matters in one to three plain sentences in {language}, at most {max_chars}
characters. Say only what is visible; if there is text in the image, quote it. Answer with
the alt text alone, without quotes or a preface like "This image shows"."""


@dataclass(frozen=True)
class Rewrite:
    kind: str
    text: str


@dataclass(frozen=True)
class ModelSuggestions:
    """What the text model suggested (labeled "AI suggestion" in the composer)."""

    model: str
    rewrites: tuple[Rewrite, ...]
    hashtags: tuple[str, ...]
    content_warning: str | None


@dataclass(frozen=True)
class Suggestions:
    language: str | None
    offline: OfflineHints
    #: None without a text model, or when its answer could not be read (``note`` says which)
    model: ModelSuggestions | None
    note: str | None


@dataclass(frozen=True)
class AltText:
    text: str
    #: "model" (a vision model described it) or "prompt" (a generated image's own)
    source: str
    model: str | None


class HourlyLimit:
    """About ``per_hour`` model calls per user an hour, counted for every web process in the
    ``throttle_counters`` table (row ``drafting:ID``): a window opens with a user's first
    call and lasts an hour (the sign-in throttle's compare-and-swap counter, swap_counter)."""

    def __init__(self, db: Database, per_hour: int, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.per_hour = per_hour
        self.clock = clock

    async def charge(self, actor_id: int) -> None:
        """Count one call, or raise RateLimited saying when the next one is allowed."""

        def step(count: int, opened: datetime | None, now: datetime) -> tuple[int, datetime]:
            if opened is None or now - opened >= _HOUR:
                return 1, now
            if count >= self.per_hour:
                raise self._refusal(count, opened + _HOUR - now)
            return count + 1, opened

        await swap_counter(self.db, f"drafting:{actor_id}", step, clock=self.clock,
                           busy="drafting requests at once")  # fmt: skip

    def _refusal(self, count: int, left: timedelta) -> RateLimited:
        wait = max(1, math.ceil(left.total_seconds()))
        minutes = math.ceil(wait / 60)
        when = f"{minutes} minute{'s' if minutes != 1 else ''}"
        return RateLimited(
            f"you asked for {count} drafting suggestions in the last hour; the limit is "
            f"{self.per_hour} per hour. Try again in {when}.",
            retry_after=wait,
        )


def _json_object(text: str) -> dict[str, Any] | None:
    """The JSON object of a model's answer: bare, in a code fence, or amid prose."""
    body = _FENCE.sub("", text.strip())
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        found = orjson.loads(body[start : end + 1])
    except orjson.JSONDecodeError:
        return None
    return found if isinstance(found, dict) else None


def _rewrites(value: Any, draft: str) -> tuple[Rewrite, ...]:
    items = value if isinstance(value, list) else []
    kept: dict[str, Rewrite] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        kind, text = item.get("kind"), item.get("text")
        if kind in REWRITE_KINDS and isinstance(text, str):
            text = text.strip()
            if text and text != draft.strip() and len(text) <= MAX_TEXT:
                kept.setdefault(kind, Rewrite(kind, text))
    return tuple(kept[kind] for kind in REWRITE_KINDS if kind in kept)


def _hashtags(value: Any, draft: str) -> tuple[str, ...]:
    tagged = {tag.lower() for tag in find_hashtags(draft)}
    found: dict[str, str] = {}
    for item in value if isinstance(value, list) else []:
        match = _HASHTAG.match(item.strip()) if isinstance(item, str) else None
        if match and match[1].lower() not in tagged:
            found.setdefault(match[1].lower(), match[1])
    return tuple(found.values())[:5]


def _warning(value: Any, spoiler_text: str) -> str | None:
    if not isinstance(value, str):
        return None
    warning = value.strip()
    if not warning or len(warning) > _MAX_WARNING or warning == spoiler_text.strip():
        return None
    return warning


def parse_suggestions(
    answer: str, *, model: str, draft: str, spoiler_text: str
) -> ModelSuggestions | None:
    """The model's JSON answer as suggestions; None when it holds nothing we can use."""
    found = _json_object(answer)
    if found is None:
        return None
    parsed = ModelSuggestions(model, _rewrites(found.get("rewrites"), draft),
                              _hashtags(found.get("hashtags"), draft),
                              _warning(found.get("content_warning"), spoiler_text))  # fmt: skip
    if not (parsed.rewrites or parsed.hashtags or parsed.content_warning):
        return None
    return parsed


class DraftingHelp:
    """The composer's "help me write this" and "suggest alt text" (one per instance)."""

    def __init__(
        self,
        db: Database,
        media: MediaStore,
        settings: Settings,
        text: TextProvider | None,
        limit: HourlyLimit | None = None,
    ) -> None:
        self.db = db
        self.media = media
        self.settings = settings
        self.text = text
        self.limit = limit or HourlyLimit(db, settings.ai_text_drafts_per_hour)

    async def suggest(
        self, author: Actor, text: str, *, language: str | None, spoiler_text: str = ""
    ) -> Suggestions:
        """Offline hints always; the model's suggestions too when one is configured."""
        if not text.strip():
            raise BadRequest("write a draft first: there is nothing to suggest for yet")
        # a few ms of CPU for a long draft (and the language model's first load): off the loop
        code, offline = await asyncio.to_thread(_offline, text, language, spoiler_text)
        if self.text is None:
            note = "No text model is configured on this server: these are offline hints."
            return Suggestions(code, offline, None, note)
        if len(text) > MAX_TEXT:  # no rewrite could be posted: spare the model (and the quota)
            note = (f"Shorten the draft to {MAX_TEXT:,} characters, the post limit, for the "
                    "text model's suggestions.")  # fmt: skip
            return Suggestions(code, offline, None, note)
        await self.limit.charge(author.id)
        prompt = SUGGEST_PROMPT.format(language=_language_name(code, "the draft's language"),
                                       max_chars=MAX_TEXT)  # fmt: skip
        draft = f"Content warning: {spoiler_text}\n\n{text}" if spoiler_text.strip() else text
        answer = await self.text.complete([Message("system", prompt), Message("user", draft)])
        parsed = parse_suggestions(answer.text, model=answer.model, draft=text,
                                   spoiler_text=spoiler_text)  # fmt: skip
        if parsed is None:
            note = (f"The text model ({answer.model}) answered in a form we could not read, "
                    "so only the offline hints are shown. Try again in a moment.")  # fmt: skip
            return Suggestions(code, offline, None, note)
        return Suggestions(code, offline, parsed, None)

    async def alt_text(self, author: Actor, media_id: int, *, language: str | None) -> AltText:
        """Alt text for one of the author's images, for them to check and edit."""
        media = await own_upload(self.db, author, media_id)
        if media.ai_model and media.prompt:
            return AltText(media.description or _prompt_alt_text(media), "prompt", media.ai_model)
        if self.text is None or not self.text.vision:
            raise Unprocessable(
                "no vision-capable model is configured on this server (ai.text.vision), so "
                "alt text cannot be suggested: describe the image in your own words"
            )
        await self.limit.charge(author.id)
        longest = self.settings.media_max_description
        prompt = ALT_PROMPT.format(language=_language_name(primary_language(language), "English"),
                                   max_chars=longest)  # fmt: skip
        image = await self.media.get(media.path)
        ask = Message("user", "Write the alt text for this image.",
                      images=((image, media.media_type),))  # fmt: skip
        answer = await self.text.complete([Message("system", prompt), ask])
        return AltText(answer.text.strip().strip('"“”')[:longest], "model", answer.model)


def _offline(text: str, language: str | None, spoiler_text: str) -> tuple[str | None, OfflineHints]:
    """The draft's language (as given, else detected) and its offline hints."""
    code = primary_language(language) or detect_language(text)
    return code, offline_hints(text, language=code, spoiler_text=spoiler_text)


def _prompt_alt_text(media: Media) -> str:
    """A generated image's alt text from its prompt, as the studio writes it."""
    made = GeneratedImage(b"", media.media_type, media.ai_provider or "", media.ai_model or "",
                          media.revised_prompt)  # fmt: skip
    return generated_alt_text(media.prompt or "", made)


def _language_name(code: str | None, unknown: str) -> str:
    return f"the language with the code {code!r}" if code else unknown
