"""Discovery: WebFinger (RFC 7033), host-meta (RFC 6415) and NodeInfo 2.0 / 2.1."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import quoteattr

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fedisocial import __version__
from fedisocial.ap.vocab import ACTIVITY_JSON
from fedisocial.errors import BadRequest, NotFound
from fedisocial.social.accounts import find_local_actor, usage
from fedisocial.web.context import get_context

if TYPE_CHECKING:
    from fedisocial.app import Context

__all__ = ["routes"]

_CORS = {"Access-Control-Allow-Origin": "*"}
_NODEINFO_SCHEMA = "http://nodeinfo.diaspora.software/ns/schema/{version}"
_REPOSITORY = "https://github.com/fedisocial/fedisocial"


def _json(body: bytes, media_type: str, max_age: int) -> Response:
    headers = {**_CORS, "Cache-Control": f"public, max-age={max_age}"}
    return Response(body, media_type=media_type, headers=headers)


def _username_for(context: Context, resource: str) -> str:
    """The local username a WebFinger resource names, or BadRequest/NotFound."""
    urls = context.urls
    if resource.startswith("acct:"):
        user, sep, host = resource[5:].lstrip("@").rpartition("@")
        if not sep or not user or not host:
            raise BadRequest(f"malformed resource {resource!r}: expected acct:NAME@HOST")
        if host.lower() != urls.netloc:
            raise NotFound(f"{host} is not this instance ({urls.netloc})")
        return user
    if resource.startswith(("https://", "http://")):
        if resource == urls.instance_actor:
            return urls.netloc
        username = urls.local_username(resource)
        if username is None:
            raise NotFound(f"{resource} is not an actor of this instance")
        return username
    raise BadRequest(f"malformed resource {resource!r}: expected acct:NAME@HOST or an actor URL")


async def webfinger(request: Request) -> Response:
    context = get_context(request)
    resource = request.query_params.get("resource", "").strip()
    if not resource:
        raise BadRequest("the resource query parameter is required, e.g. acct:alice@host")
    username = _username_for(context, resource)

    async def render() -> bytes:
        actor = await find_local_actor(context.db, context.urls, username)
        profile = actor.url or actor.uri
        links = [
            {"rel": "self", "type": ACTIVITY_JSON, "href": actor.uri},
            {"rel": "http://webfinger.net/rel/profile-page", "type": "text/html",
             "href": profile},
        ]  # fmt: skip
        if actor.icon_url:
            links.append({"rel": "http://webfinger.net/rel/avatar", "type": "image/png",
                          "href": actor.icon_url})  # fmt: skip
        jrd = {
            "subject": f"acct:{actor.username}@{context.urls.netloc}",
            "aliases": [actor.uri, profile],
            "links": links,
        }
        return orjson.dumps(jrd)

    body = await context.cache.get_or_render(f"webfinger:{username.lower()}", render)
    return _json(body, "application/jrd+json", 300)


async def host_meta(request: Request) -> Response:
    template = quoteattr(get_context(request).urls.webfinger_template)
    xrd = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n'
        f'  <Link rel="lrdd" template={template}/>\n'
        "</XRD>\n"
    )
    return Response(xrd, media_type="application/xrd+xml", headers=_CORS)


async def host_meta_json(request: Request) -> Response:
    template = get_context(request).urls.webfinger_template
    body = orjson.dumps({"links": [{"rel": "lrdd", "template": template}]})
    return _json(body, "application/json", 3600)


async def nodeinfo_links(request: Request) -> Response:
    urls = get_context(request).urls
    links: list[dict[str, str]] = [
        {"rel": _NODEINFO_SCHEMA.format(version=v), "href": urls.nodeinfo(v)}
        for v in ("2.1", "2.0")
    ]
    # FEP-2677: where the instance (Application) actor lives
    links.append({"rel": "https://www.w3.org/ns/activitystreams#Application",
                  "href": urls.instance_actor})  # fmt: skip
    return _json(orjson.dumps({"links": links}), "application/json", 3600)


async def nodeinfo(request: Request) -> Response:
    context = get_context(request)
    version = request.path_params["version"]
    if version not in ("2.0", "2.1"):
        raise NotFound(f"NodeInfo {version} is not served; try 2.0 or 2.1")

    async def render() -> bytes:
        return orjson.dumps(await _nodeinfo_document(context, version))

    body = await context.cache.get_or_render(f"nodeinfo:{version}", render)
    schema = _NODEINFO_SCHEMA.format(version=version)
    return _json(body, f'application/json; profile="{schema}#"', 60)


async def _nodeinfo_document(context: Context, version: str) -> dict[str, Any]:
    counts = await usage(context.db)
    software: dict[str, Any] = {"name": "fedisocial", "version": __version__}
    if version == "2.1":
        software.update(repository=_REPOSITORY, homepage=_REPOSITORY)
    settings = context.settings
    return {
        "version": version,
        "software": software,
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": []},
        "openRegistrations": settings.registrations == "open",
        "usage": {
            "users": {
                "total": counts.users_total,
                "activeMonth": counts.active_month,
                "activeHalfyear": counts.active_halfyear,
            },
            "localPosts": counts.local_posts,
        },
        "metadata": {
            "nodeName": settings.instance_name,
            "nodeDescription": settings.instance_description,
            "registrations": settings.registrations,
        },
    }


routes = [
    Route("/.well-known/webfinger", webfinger),
    Route("/.well-known/host-meta", host_meta),
    Route("/.well-known/host-meta.json", host_meta_json),
    Route("/.well-known/nodeinfo", nodeinfo_links),
    Route("/nodeinfo/{version}", nodeinfo),
]
