"""HTML pages for people: the instance front page and profiles."""

from __future__ import annotations

import nh3
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from fedisocial import __version__
from fedisocial.accounts import find_local_actor, list_users, usage
from fedisocial.web.context import get_context

__all__ = ["profile_page", "render_page", "routes"]


def render_page(
    request: Request, template: str, status_code: int = 200, **values: object
) -> Response:
    context = get_context(request)
    page = context.templates.get_template(template).render(
        settings=context.settings, urls=context.urls, version=__version__, **values
    )
    return HTMLResponse(page, status_code=status_code)


async def profile_page(request: Request, username: str) -> Response:
    context = get_context(request)
    actor = await find_local_actor(context.db, context.urls, username)
    return render_page(
        request,
        "profile.html",
        actor=actor,
        handle=f"@{actor.username}@{context.urls.netloc}",
        summary_html=nh3.clean(actor.summary),
    )


async def home(request: Request) -> Response:
    context = get_context(request)
    people = [actor for _, actor in await list_users(context.db)]
    return render_page(request, "home.html", people=people, usage=await usage(context.db))


routes = [Route("/", home), Route("/about", home)]
