"""The Mastodon client API (https://docs.joinmastodon.org/methods/): what apps speak.

Toot, Mastodon.py, masto.js (Elk, Phanpy), Tusky and Ivory use these paths with
the OAuth tokens of :mod:`fedisocial.auth`. One module per group of methods;
:mod:`.common` holds parameters, answers and paging, :mod:`.entities` the JSON
shapes. Handlers stay thin: what an action does lives in the domain packages.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from fedisocial.web.mastoapi import (
    accounts,
    apps,
    grouped_notifications,
    instance,
    media,
    notifications,
    relationships,
    search,
    statuses,
    streaming,
    timelines,
)

__all__ = ["routes"]

# search first: /api/v1/accounts/search must win over /api/v1/accounts/{id}
routes: list[BaseRoute] = [
    *search.routes,
    *apps.routes,
    *instance.routes,
    *accounts.routes,
    *relationships.routes,
    *statuses.routes,
    *media.routes,
    *timelines.routes,
    *notifications.routes,
    *grouped_notifications.routes,
    *streaming.routes,
]
