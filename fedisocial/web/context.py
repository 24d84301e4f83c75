"""How a handler reaches the instance's services and the page templates."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jinja2 import Environment
from starlette.requests import HTTPConnection, Request

if TYPE_CHECKING:  # the app builds the context and imports the web layer, not the reverse
    from fedisocial.app import Context

__all__ = ["get_context", "get_templates"]


def get_context(request: HTTPConnection) -> Context:
    """The :class:`~fedisocial.app.Context` that the app's lifespan built."""
    context: Context = request.app.state.context
    return context


def get_templates(request: Request) -> Environment:
    templates: Environment = request.app.state.templates
    return templates
