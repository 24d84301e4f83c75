"""What every Mastodon client API handler shares: parameters, JSON answers, ids and paging.

Mastodon (Rails) reads a parameter from the query string, a form (urlencoded or
multipart) or a JSON body alike, arrays as ``name[]=…`` (form) or lists (JSON),
nested hashes as ``name[key]=…``; booleans are false for ``0``, ``f``,
``false``, ``off`` (any case) and true for anything else. :class:`Params` does
the same, so every client's way of sending works. Errors are answered as
Mastodon does, ``{"error": "…"}`` with the status of
:mod:`fedisocial.errors` (the app's one handler renders them).

Paging follows Mastodon: ``max_id`` (older than), ``since_id`` (newer than,
newest first), ``min_id`` (immediately newer than), ``limit`` (default 20,
at most 40), and a ``Link`` header with ``rel="next"`` and ``rel="prev"`` built
from the page's cursors, which clients follow as given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from fedisocial.ap.vocab import parse_json_object
from fedisocial.errors import BadRequest, NotFound, UnsupportedMediaType
from fedisocial.social.collections import Cursor, Page
from fedisocial.web.body import read_body
from fedisocial.web.context import get_context

__all__ = [
    "DEFAULT_LIMIT",
    "Params",
    "json_response",
    "page_links",
    "page_response",
    "paging",
    "path_id",
    "read_params",
]

DEFAULT_LIMIT = 20
#: a JSON or urlencoded parameter body (media come as multipart, with their own cap)
_PARAMS_CAP = 1 << 20
_FALSE = frozenset({"0", "f", "false", "off", "n", "no"})
_MAX_FIELDS = 256


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``data`` as JSON, never cached by a shared cache (every answer is someone's)."""
    return Response(orjson.dumps(data), status, media_type="application/json",
                    headers={"Cache-Control": "private, no-store", **(headers or {})})  # fmt: skip


def path_id(request: Request, name: str = "id") -> int:
    """The numeric id in the path (Mastodon's ids are decimal strings): 404 otherwise.

    A route may match digits only (``{id:int}``, so that ``/accounts/search`` falls through
    to its own route); the value is read back as text and checked the same way."""
    raw = str(request.path_params[name])
    if not raw.isdigit() or len(raw) > 19 or int(raw) >= 1 << 63:  # beyond BIGINT: no row
        raise NotFound(f"no such record: {raw}")
    return int(raw)


@dataclass
class Params:
    """A request's parameters, wherever the client put them.

    ``values`` maps a name (without ``[]``) to its values as sent; files are
    in ``files``. Nested names (``fields_attributes[0][name]``) are kept whole
    and read with :meth:`nested`.
    """

    values: dict[str, list[Any]] = field(default_factory=dict)
    files: dict[str, UploadFile] = field(default_factory=dict)

    def add(self, name: str, value: Any) -> None:
        if name.endswith("[]"):
            name = name[:-2]
        if isinstance(value, list) and not any(isinstance(v, (dict, list)) for v in value):
            self.values.setdefault(name, []).extend(value)  # an array of values
        else:
            self.values.setdefault(name, []).append(value)

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def text(self, name: str, default: str | None = None) -> str | None:
        """The last value of ``name`` as text (what Rails keeps for a repeated scalar)."""
        found = self.values.get(name)
        if not found:
            return default
        value = found[-1]
        if value is None:
            return default
        if isinstance(value, (dict, list)):
            raise BadRequest(f"{name} must be a single value")
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.text(name)
        if value is None or value == "":
            return default
        return value.strip().lower() not in _FALSE

    def number(self, name: str, default: int | None = None) -> int | None:
        value = self.text(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise BadRequest(f"{name} must be a whole number, not {value!r}") from None

    def strings(self, name: str) -> list[str]:
        """All values of ``name`` (``name[]=a&name[]=b``, a JSON list, or one value)."""
        out: list[str] = []
        for value in self.values.get(name, []):
            if isinstance(value, (dict, list)):
                raise BadRequest(f"{name} must be a list of values")
            out.append(str(value))
        return out

    def nested(self, name: str) -> dict[str, Any]:
        """A hash parameter: JSON ``{"name": {...}}`` or form ``name[key]=…`` (one level
        of keys; a second level, as in ``fields_attributes[0][name]``, gives dicts)."""
        merged: dict[str, Any] = {}
        for value in self.values.get(name, []):
            if isinstance(value, dict):
                merged.update(value)
            elif isinstance(value, list):  # fields_attributes as a JSON list
                merged.update({str(i): item for i, item in enumerate(value)})
        prefix = f"{name}["
        for key, values in self.values.items():
            if not key.startswith(prefix) or not values:
                continue
            parts = key[len(prefix) :].replace("][", "[").rstrip("]").split("[")
            target = merged
            for part in parts[:-1]:
                target = target.setdefault(part, {})
                if not isinstance(target, dict):
                    raise BadRequest(f"{key} mixes a value and a hash")
            target[parts[-1]] = values[-1]
        return merged


def _add_form(params: Params, form: FormData) -> None:
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            params.files[name] = value
        else:
            params.add(name, value)


async def read_params(request: Request, *, files: int = 0) -> Params:
    """The query string, then the body (JSON, urlencoded or multipart with up to ``files``
    files); a body over the cap is refused with 413, malformed JSON with 400.

    A multipart form's files are spooled: the handler closes them (``await request.close()``;
    Starlette does not)."""
    params = Params()
    for name, value in request.query_params.multi_items():
        params.add(name, value)
    if request.method in ("GET", "HEAD", "DELETE") and not request.headers.get("content-length"):
        return params
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        cap = get_context(request).settings.media_max_bytes
        form = await request.form(max_files=files, max_fields=_MAX_FIELDS, max_part_size=cap)
        _add_form(params, form)
    elif kind == "application/x-www-form-urlencoded":
        body = await read_body(request, _PARAMS_CAP, what="a form")
        try:  # parsed here: read_body consumed the stream that request.form() would read
            pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True,
                              max_num_fields=_MAX_FIELDS)  # fmt: skip
        except ValueError as exc:
            raise BadRequest(f"a form can have at most {_MAX_FIELDS} fields") from exc
        for name, value in pairs:
            params.add(name, value)
    elif kind == "application/json" or kind.endswith("+json"):
        body = await read_body(request, _PARAMS_CAP, what="a JSON body")
        if body.strip():
            for name, value in parse_json_object(body).items():
                params.add(name, value)
    elif kind:
        body = await read_body(request, _PARAMS_CAP, what="a request")
        if body:
            raise UnsupportedMediaType(
                f"send parameters as JSON, a form or multipart/form-data, not {kind}"
            )
    return params


def paging(params: Params, default: int = DEFAULT_LIMIT) -> tuple[Cursor, int]:
    """The cursor (``max_id``, ``min_id``, ``since_id``) and limit of a listing request;
    ``limit`` is at most twice ``default``, as Rails' ``limit_param`` has it
    (notifications: 40, at most 80)."""
    limit = params.number("limit", default) or default
    limit = max(1, min(limit, 2 * default))
    cursor = Cursor(max_id=params.number("max_id"), min_id=params.number("min_id"),
                    since_id=params.number("since_id"))  # fmt: skip
    return cursor, limit


def _link(request: Request, rel: str, **cursor: int) -> str:
    kept = [(k, v) for k, v in request.query_params.multi_items()
            if k not in ("max_id", "min_id", "since_id")]  # fmt: skip
    query = urlencode([*kept, *((k, str(v)) for k, v in cursor.items())])
    return f'<{request.url.replace(query=query)}>; rel="{rel}"'


def page_links(request: Request, page: Page[Any]) -> dict[str, str]:
    """The ``Link`` header of ``page``'s neighbours (none: no header)."""
    links = []
    if page.next_max_id is not None:
        links.append(_link(request, "next", max_id=page.next_max_id))
    if page.prev_min_id is not None:
        links.append(_link(request, "prev", min_id=page.prev_min_id))
    return {"Link": ", ".join(links)} if links else {}


def page_response(request: Request, page: Page[Any], items: Iterable[Any]) -> Response:
    """``items`` (the page rendered) with the ``Link`` header of ``page``'s neighbours."""
    return json_response(list(items), headers=page_links(request, page))
