"""The Mastodon client API (https://docs.joinmastodon.org/methods/): what apps speak.

Toot, Mastodon.py, masto.js (Elk, Phanpy), Tusky and Ivory use these paths with
the OAuth tokens of :mod:`fedisocial.auth`. One module per group of methods;
:mod:`.common` holds parameters, answers and paging, :mod:`.entities` the JSON
shapes. Handlers stay thin: what an action does lives in the domain packages.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from fedisocial.web.mastoapi import notifications, timelines

__all__ = ["routes"]

routes: list[BaseRoute] = [
    *notifications.routes,
    *timelines.routes,
]
