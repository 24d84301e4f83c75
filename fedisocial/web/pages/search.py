"""The search page: ``/search?q=``, for anyone; finding things elsewhere for signed-in people.

What is found is :class:`fedisocial.social.search.Search`'s, as ``/api/v2/search`` finds it:
accounts (a complete handle first, then by the start of a name), posts by their words
(signed-in people, what they may read), hashtags by the start of their name. Signed in,
a handle (``@bob@example.org`` or ``bob@example.org``) or a URL is resolved on its server
through the guarded client (Mastodon's ``resolve=true``, which Mastodon's web UI sends);
signed out, only what this server knows is searched, as Mastodon does.

Accounts come with a Follow form (the profile pages' ``/@acct/follow``), posts as cards,
hashtags as links to their feeds. When a handle or URL gives nothing the page says why in
plain words: no such account, an address this server does not fetch from (a private or
loopback one, refused by the guarded client), or a server that did not answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fedisocial.errors import (
    BadRequest,
    BlockedAddress,
    FedisocialError,
    NotFound,
    RemoteStatus,
)
from fedisocial.social import relations
from fedisocial.social.search import Query, Results, Search
from fedisocial.store.models import Actor
from fedisocial.web.context import get_context
from fedisocial.web.pages.base import page, tag_path
from fedisocial.web.pages.cards import cards
from fedisocial.web.pages.notifications import Person, person
from fedisocial.web.session import current_session

__all__ = ["routes"]

#: results of each kind on the page
LIMIT = 20
#: the longest query taken (a handle or a URL fits)
MAX_QUERY = 500
_URL = re.compile(r"\Ahttps?://", re.I)
_HANDLE = re.compile(r"\A@?[^@\s]+@[^@\s]+\Z")


@dataclass(frozen=True)
class Found:
    """An account found, and where the searcher stands with it."""

    person: Person
    #: "self", "following", "requested" or "" (a Follow form is shown)
    standing: str
    follow_path: str


def _problem(text: str, results: Results, signed_in: bool) -> str | None:
    """What to say when a handle or URL found nothing (None: nothing to explain)."""
    failure: FedisocialError | None = results.failure
    url, handle = bool(_URL.match(text)), bool(_HANDLE.match(text))
    if (not url and not handle) or results.accounts or results.statuses:
        return None
    if not signed_in:
        if handle:
            return "Nothing here matches. Sign in to look it up on its own server."
        return "This server does not know that address. Sign in to fetch it."
    if isinstance(failure, BlockedAddress):
        return ("That address couldn't be fetched: this server does not fetch from private, "
                "local or plain-http addresses.")  # fmt: skip
    gone = isinstance(failure, NotFound) or (
        isinstance(failure, RemoteStatus) and failure.status_code in (404, 410)
    )
    if handle and (failure is None or gone):
        return f"No account {text if text.startswith('@') else '@' + text} could be found."
    if url and (failure is None or gone):
        return ("Nothing at that address can be shown here: "
                "it is not a post or an account you may see.")  # fmt: skip
    what = "That account's server" if handle else "That address"
    return f"{what} couldn't be fetched: the server did not answer with something we can use."


async def _found(request: Request, me: Actor | None, actors: list[Actor]) -> list[Found]:
    context = get_context(request)
    standing: dict[int, str] = {}
    if me is not None and actors:
        for rel in await relations.relationships(context.db, me, actors):
            standing[rel.actor_id] = ("following" if rel.following else
                                      "requested" if rel.requested else "")  # fmt: skip
        standing[me.id] = "self"
    out = []
    for actor in actors:
        shown = person(actor, context.urls)
        out.append(Found(shown, standing.get(actor.id, ""), f"{shown.path}/follow"))
    return out


async def index(request: Request) -> Response:
    """The search form, and what the query finds."""
    session = await current_session(request)
    me = session.actor if session is not None else None
    text = (request.query_params.get("q") or "").strip()
    if len(text) > MAX_QUERY:
        raise BadRequest(f"A search is at most {MAX_QUERY} characters")
    if not text:
        return await page(request, "search.html", q="", searched=False, title="Search")
    context = get_context(request)
    search = Search(context.db, context.client, context.urls, context.outbox)
    results = await search.search(Query(text, resolve=me is not None, limit=LIMIT), me)
    shown = await cards(context.db, context.urls, me, results.statuses)
    return await page(
        request, "search.html", q=text, searched=True, title=f"Search: {text}",
        accounts=await _found(request, me, results.accounts), cards=shown,
        hashtags=[(name, tag_path(name)) for name in results.hashtags],
        problem=_problem(text, results, me is not None),
    )  # fmt: skip


routes: list[BaseRoute] = [Route("/search", index)]
