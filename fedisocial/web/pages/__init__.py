"""The web app: pages for people in a browser, server-rendered, that work without JavaScript.

One module per part of the app: :mod:`.feeds` (home, local, federated, hashtags),
:mod:`.compose` (the one composer), :mod:`.actions` (the buttons of a post),
:mod:`.threads` (a post's page), :mod:`.profiles` (local and remote accounts, their
follows and the buttons), :mod:`.public` (the landing page, and what the negotiating
handlers show browsers at our URIs: the same post and profile pages). :mod:`.base`
holds what they share (rendering, who is signed in, forms and answers) and
:mod:`.cards` what a post shows. ``static/app.js`` enhances the pages (actions in
place, live posts, counts); handlers stay thin: what an action does lives in the
domain packages.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from fedisocial.web.pages import (
    accounts,
    actions,
    compose,
    feeds,
    live,
    notifications,
    profiles,
    search,
    settings,
    threads,
)
from fedisocial.web.pages.base import SignInRequired, page, render_page, sign_in_redirect

__all__ = ["SignInRequired", "page", "render_page", "routes", "sign_in_redirect"]

routes: list[BaseRoute] = [
    *feeds.routes,
    *compose.routes,
    *actions.routes,
    *live.routes,
    *notifications.routes,
    *search.routes,
    *accounts.routes,
    *settings.routes,
    *threads.routes,
    *profiles.routes,
]
