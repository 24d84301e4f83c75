"""The Mastodon entities and parameters every client API method shares."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.applications import Starlette

from fedisocial.app import Context
from fedisocial.web.mastoapi.common import Params
from fedisocial.web.mastoapi.entities import Entities, iso_time
from tests.c2s_helpers import person

MASTODON_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_params_read_arrays_flags_and_nested_hashes_as_rails_does() -> None:
    params = Params()
    for name, value in [("media_ids[]", "1"), ("media_ids[]", "2"), ("sensitive", "0"),
                        ("fields_attributes[0][name]", "Site"),
                        ("fields_attributes[0][value]", "https://example.com"),
                        ("locked", "true"), ("limit", "5")]:  # fmt: skip
        params.add(name, value)
    assert params.strings("media_ids") == ["1", "2"]
    assert params.flag("sensitive") is False and params.flag("locked") is True
    assert params.flag("missing", default=True) is True
    assert params.number("limit") == 5
    assert params.nested("fields_attributes") == {
        "0": {"name": "Site", "value": "https://example.com"}
    }
    json_params = Params()
    json_params.add("fields_attributes", [{"name": "A", "value": "b"}])
    json_params.add("media_ids", ["7"])
    assert json_params.nested("fields_attributes") == {"0": {"name": "A", "value": "b"}}
    assert json_params.strings("media_ids") == ["7"]


async def test_status_and_account_entities_have_every_field_apps_decode(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    await person(context, "alice")
    alice = await context.outbox.actor_of("alice@127.0.0.1:8000")
    parent = await context.outbox.post(alice, "Hello #Fediverse")
    reply = await context.outbox.post(alice, "A reply", in_reply_to=parent.uri, summary="cw")
    await context.outbox.like(alice, parent.uri)
    boost = await context.outbox.boost(alice, parent.uri)

    entities = Entities(context.db, context.urls, alice)
    rendered = await entities.statuses([reply, parent, boost])
    assert [s["id"] for s in rendered] == [str(reply.id), str(parent.id), str(boost.id)]
    first, second, third = rendered
    assert first["in_reply_to_id"] == str(parent.id)
    assert first["in_reply_to_account_id"] == first["account"]["id"]
    assert first["spoiler_text"] == "cw" and first["sensitive"] is True
    assert second["favourited"] is True and second["reblogged"] is True
    assert second["favourites_count"] == 1 and second["replies_count"] == 1
    assert second["tags"] == [{"name": "fediverse", "url": "http://127.0.0.1:8000/tags/fediverse"}]
    assert third["reblog"]["id"] == str(parent.id) and third["content"] == ""
    assert MASTODON_TIME.match(first["created_at"])
    account = first["account"]
    assert account["acct"] == "alice" and account["statuses_count"] == 2
    assert account["avatar"].startswith("http://127.0.0.1:8000/")
    assert iso_time(parent.published) == second["created_at"]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_a_status_whose_author_is_unknown_is_left_out(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    await person(context, "alice")
    alice = await context.outbox.actor_of("alice@127.0.0.1:8000")
    post = await context.outbox.post(alice, "Hello")
    post.actor_uri = "https://gone.example/users/nobody"
    assert await Entities(context.db, context.urls, None).statuses([post]) == []
