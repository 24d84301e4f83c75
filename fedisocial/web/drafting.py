"""Drafting help over HTTP, for the composer and for client apps.

``POST /api/v1/fedisocial/suggestions`` (``text``, ``language``, ``spoiler_text`` as
JSON or a form, as Mastodon's own endpoints take them) answers with suggestions for
a draft; ``POST /api/v1/fedisocial/media/ID/alt_text`` (``language``) suggests alt
text for one of the caller's images. Both act for a local user: an app's Bearer
token (``write:statuses``, ``write:media``) or the browser's session with its CSRF
value (:func:`fedisocial.web.auth.app_or_session_user`). Nothing is posted or saved:
the author takes what they like into their draft. Model suggestions carry
``"label": "AI suggestion"``; the post stays the author's, and is not labeled.
"""

from __future__ import annotations

from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fedisocial.assistant.drafting import Suggestions
from fedisocial.web import auth
from fedisocial.web.context import get_context
from fedisocial.web.mastoapi.common import json_response, path_id, read_params

__all__ = ["AI_LABEL", "routes", "suggestions_document"]

#: how the composer names what a model wrote (offline hints are "Suggestion")
AI_LABEL = "AI suggestion"


def suggestions_document(found: Suggestions) -> dict[str, object]:
    """The JSON answer: the offline part at the top level, the model's under ``ai``."""
    offline = found.offline
    model = None if found.model is None else {"label": AI_LABEL, **asdict(found.model)}
    return {
        "language": found.language,
        "characters": offline.characters,
        "max_characters": offline.max_characters,
        "hashtags": list(offline.hashtags),
        "hints": [asdict(hint) for hint in offline.hints],
        "ai": model,
        "note": found.note,
    }


async def suggestions(request: Request) -> Response:
    actor = await auth.app_or_session_user(request, "write:statuses")
    params = await read_params(request)
    found = await get_context(request).drafting.suggest(
        actor,
        params.text("text") or "",
        language=params.text("language"),
        spoiler_text=params.text("spoiler_text") or "",
    )
    return json_response(suggestions_document(found))


async def alt_text(request: Request) -> Response:
    actor = await auth.app_or_session_user(request, "write:media")
    params = await read_params(request)
    media_id = path_id(request)
    found = await get_context(request).drafting.alt_text(
        actor, media_id, language=params.text("language")
    )
    label = AI_LABEL if found.source == "model" else None
    return json_response({"description": found.text, "source": found.source,
                          "model": found.model, "label": label})  # fmt: skip


routes = [
    Route("/api/v1/fedisocial/suggestions", suggestions, methods=["POST"]),
    Route("/api/v1/fedisocial/media/{id}/alt_text", alt_text, methods=["POST"]),
]
