"""Mastodon client API: accounts (https://docs.joinmastodon.org/methods/accounts/).

verify_credentials, update_credentials, an account by id and by handle, its
statuses with Mastodon's filters, its followers and follows; each on SQLite and
PostgreSQL, with the error paths apps meet (no token, a bad one, a missing scope,
unknown ids, paging past the end).
"""

from __future__ import annotations

import io
from typing import Any

import httpx
from PIL import Image
from sqlalchemy import select
from starlette.applications import Starlette

from fedisocial.app import Context
from fedisocial.store.models import Actor, Job, Object, utcnow
from tests.c2s_helpers import BASE, Person, another_token, person, png

API = "/api/v1/accounts"


async def actor_of(context: Context, name: str) -> Actor:
    return await context.outbox.actor_of(name)


async def account_id(context: Context, name: str) -> str:
    return str((await actor_of(context, name)).id)


async def get(client: httpx.AsyncClient, path: str, who: Person | None = None,
              **params: Any) -> httpx.Response:  # fmt: skip
    return await client.get(path, params=params, headers=who.auth if who else {})


async def remote_actor(context: Context, name: str, host: str = "remote.example") -> Actor:
    """A remote account we stored earlier (as a fetch or a delivery would have)."""
    uri = f"https://{host}/users/{name}"
    actor = Actor(uri=uri, type="Person", username=name, domain=host, local=False, name=name,
                  summary="", inbox=f"{uri}/inbox", followers_url=f"{uri}/followers",
                  public_key_id=f"{uri}#main-key", public_key_pem="unused", fields=[],
                  fetched_at=utcnow())  # fmt: skip
    async with context.db.transaction() as session:
        session.add(actor)
    return actor


# -- verify_credentials --------------------------------------------------------------------------


async def test_verify_credentials_is_the_users_own_account_with_source(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    # Given alice, who approves followers, and bob, who asked to follow her
    alice = await person(context, "alice", scope="read write follow")
    await person(context, "bob")
    await context.outbox.actor_of("alice")
    async with context.db.transaction() as session:
        row = await session.scalar(select(Actor).where(Actor.username == "alice"))
        assert row is not None
        row.manually_approves_followers = True
    await context.outbox.follow(await actor_of(context, "bob"), "alice")
    # When her app verifies its token
    answer = await get(client, f"{API}/verify_credentials", alice)
    # Then it is her CredentialAccount, with the request counted
    assert answer.status_code == 200, answer.text
    me = answer.json()
    assert me["username"] == "alice" and me["acct"] == "alice" and me["locked"] is True
    assert me["source"]["follow_requests_count"] == 1
    assert me["source"]["privacy"] == "public" and me["source"]["note"] == ""
    assert answer.headers["cache-control"] == "private, no-store"


async def test_verify_credentials_refuses_missing_bad_and_narrow_tokens(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    alice = await person(context, "alice", scope="write")
    assert (await get(client, f"{API}/verify_credentials")).status_code == 401
    bad = await client.get(f"{API}/verify_credentials", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and "error" in bad.json()
    narrow = await get(client, f"{API}/verify_credentials", alice)
    assert narrow.status_code == 403, narrow.text
    granular = await another_token(context, alice, "read:accounts")
    assert (await get(client, f"{API}/verify_credentials", granular)).status_code == 200


# -- update_credentials --------------------------------------------------------------------------


async def test_update_credentials_as_a_form_with_avatar_header_and_fields(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    alice = await person(context, "alice", scope="read write")
    form = {
        "display_name": "Alice A.",
        "note": "I draw things.\n\nSee https://alice.example #art",
        "locked": "true",
        "bot": "1",
        "discoverable": "false",
        "fields_attributes[0][name]": "Site",
        "fields_attributes[0][value]": "https://alice.example",
        "fields_attributes[1][name]": "Pronouns",
        "fields_attributes[1][value]": "she/her",
    }
    header = io.BytesIO()
    Image.new("RGB", (300, 100), "blue").save(header, "JPEG")
    files = {"avatar": ("me.png", png(120, 120, "red"), "image/png"),
             "header": ("top.jpg", header.getvalue(), "image/jpeg")}  # fmt: skip
    # When her app saves her profile (Mastodon's settings form, multipart)
    answer = await client.patch(f"{API}/update_credentials", data=form, files=files,
                                headers=alice.auth)  # fmt: skip
    # Then the answer is her CredentialAccount as it is now
    assert answer.status_code == 200, answer.text
    me = answer.json()
    assert me["display_name"] == "Alice A." and me["locked"] is True and me["bot"] is True
    assert me["discoverable"] is False and me["indexable"] is True
    assert me["note"].startswith('<p>I draw things.</p><p>See <a href="https://alice.example"')
    assert 'class="mention hashtag"' in me["note"]
    assert me["source"]["note"].startswith("I draw things.")
    assert [f["name"] for f in me["fields"]] == ["Site", "Pronouns"]
    assert me["fields"][0]["value"].startswith('<a href="https://alice.example"')
    assert me["source"]["fields"][0]["value"] == "https://alice.example"
    # and the avatar and header are stored, cleaned, and served
    assert me["avatar"].startswith(f"{BASE}/media/") and me["avatar"].endswith(".png")
    served = await client.get(me["avatar"].removeprefix(BASE))
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    top = await client.get(me["header"].removeprefix(BASE))
    assert top.status_code == 200 and top.headers["content-type"] == "image/jpeg"
    # and the actor document says so, and its Update goes to her followers
    doc = (await client.get("/users/alice", headers={"Accept": "application/activity+json"})).json()
    assert doc["icon"] == {"type": "Image", "mediaType": "image/png", "url": me["avatar"]}
    assert doc["image"] == {"type": "Image", "mediaType": "image/jpeg", "url": me["header"]}
    assert doc["type"] == "Service" and doc["manuallyApprovesFollowers"] is True
    assert doc["name"] == "Alice A." and len(doc["attachment"]) == 2
    async with context.db.session() as session:
        updates = list(await session.scalars(select(Object).where(Object.type == "Update")))
        jobs = list(await session.scalars(select(Job).where(Job.kind == "fanout")))
    assert len(updates) == 1 and updates[0].data["object"]["id"] == f"{BASE}/users/alice"
    assert any(job.payload["activity"] == updates[0].uri for job in jobs)


async def test_update_credentials_as_json_changes_only_what_is_sent(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    alice = await person(context, "alice", scope="read write")
    first = {"display_name": "Alice", "fields_attributes": [{"name": "A", "value": "1"}]}
    await client.patch(f"{API}/update_credentials", json=first, headers=alice.auth)
    # When only `indexable` is sent (a JSON body, as masto.js sends it)
    answer = await client.patch(f"{API}/update_credentials", json={"indexable": False},
                                headers=alice.auth)  # fmt: skip
    # Then the name and fields stay
    me = answer.json()
    assert answer.status_code == 200 and me["indexable"] is False and me["noindex"] is True
    assert me["display_name"] == "Alice" and me["fields"][0]["name"] == "A"
    # and a JSON hash of fields (Mastodon.py's shape) replaces them all
    hashed = {"0": {"name": "B", "value": "2"}, "1": {"name": "", "value": ""}}
    fields = {"fields_attributes": hashed}
    me = (await client.patch(f"{API}/update_credentials", json=fields, headers=alice.auth)).json()
    assert [f["name"] for f in me["fields"]] == ["B"]
    # and an urlencoded form (toot's way) works the same
    form = {"display_name": "Alice B", "locked": "1", "note": ""}
    me = (await client.patch(f"{API}/update_credentials", data=form, headers=alice.auth)).json()
    assert me["display_name"] == "Alice B" and me["locked"] is True and me["note"] == ""


async def test_update_credentials_refuses_bad_input_and_changes_nothing(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    alice = await person(context, "alice", scope="read write")
    five = {"fields_attributes": [{"name": f"f{i}", "value": "v"} for i in range(5)]}
    too_many = await client.patch(f"{API}/update_credentials", json=five, headers=alice.auth)
    assert too_many.status_code == 400 and "4 fields" in too_many.json()["error"]
    text = {"avatar": ("me.png", b"<svg onload=alert(1)>", "image/png")}
    not_image = await client.patch(f"{API}/update_credentials", files=text,
                                   data={"display_name": "Evil"}, headers=alice.auth)  # fmt: skip
    assert not_image.status_code == 400, not_image.text
    long_name = {"display_name": "x" * 101}
    assert (await client.patch(f"{API}/update_credentials", json=long_name,
                               headers=alice.auth)).status_code == 400  # fmt: skip
    me = (await get(client, f"{API}/verify_credentials", alice)).json()
    assert me["display_name"] == "alice" and me["fields"] == []
    assert me["avatar"] == f"{BASE}/users/alice/avatar.png"
    # and a read-only token, or none, may not change anything
    reader = await another_token(context, alice, "read")
    assert (await client.patch(f"{API}/update_credentials", json={"display_name": "R"},
                               headers=reader.auth)).status_code == 403  # fmt: skip
    assert (await client.patch(f"{API}/update_credentials", json={})).status_code == 401


# -- an account, by id and by handle ---------------------------------------------------------------


async def test_an_account_by_id_for_anyone_and_404_for_unknown_ids(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    alice = await person(context, "alice", scope="write")
    remote = await remote_actor(context, "zoe")
    own = await get(client, f"{API}/{await account_id(context, 'alice')}")
    assert own.status_code == 200 and own.json()["acct"] == "alice"
    theirs = (await get(client, f"{API}/{remote.id}")).json()
    assert theirs["acct"] == "zoe@remote.example" and theirs["id"] == str(remote.id)
    for missing in ("999999", "abc", "99999999999999999999", "9223372036854775808"):
        answer = await get(client, f"{API}/{missing}")
        assert answer.status_code == 404 and "error" in answer.json(), missing
    # a token without read:accounts is refused, as Mastodon's authorize_if_got_token! does
    assert (await get(client, f"{API}/{remote.id}", alice)).status_code == 403


async def test_lookup_finds_local_and_known_remote_accounts_without_fetching(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    await person(context, "alice")
    await remote_actor(context, "zoe")
    for acct in ("alice", "@alice", "Alice@127.0.0.1:8000"):
        answer = await get(client, f"{API}/lookup", acct=acct)
        assert answer.status_code == 200 and answer.json()["username"] == "alice", acct
    zoe = await get(client, f"{API}/lookup", acct="zoe@Remote.Example")
    assert zoe.status_code == 200 and zoe.json()["acct"] == "zoe@remote.example"
    # a local name is not a remote one's, and unknown accounts are not looked up elsewhere
    for acct in ("zoe", "nobody", "nobody@unknown.example", "alice@remote.example", ""):
        answer = await get(client, f"{API}/lookup", acct=acct)
        assert answer.status_code == 404, acct


# -- an account's statuses -----------------------------------------------------------------------


async def test_statuses_show_only_what_the_reader_may_read(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    bob = await person(context, "bob", scope="read")
    carol = await person(context, "carol", scope="read")
    await person(context, "alice")
    alice = await actor_of(context, "alice")
    public = await context.outbox.post(alice, "for everyone")
    private = await context.outbox.post(alice, "for followers", visibility="followers")
    direct = await context.outbox.post(alice, "for @carol only", visibility="direct")
    await context.outbox.follow(await actor_of(context, "bob"), "alice")
    path = f"{API}/{alice.id}/statuses"

    def ids(answer: httpx.Response) -> list[str]:
        assert answer.status_code == 200, answer.text
        return [status["id"] for status in answer.json()]

    assert ids(await get(client, path)) == [str(public.id)]
    assert ids(await get(client, path, bob)) == [str(private.id), str(public.id)]
    assert ids(await get(client, path, carol)) == [str(direct.id), str(public.id)]
    # and a boost of a post whose author the reader blocks is left out for that reader
    await person(context, "dave")
    dave = await actor_of(context, "dave")
    boost = await context.outbox.boost(alice, (await context.outbox.post(dave, "dave's")).uri)
    assert ids(await get(client, path, bob))[0] == str(boost.id)
    await context.outbox.block(await actor_of(context, "bob"), "dave")
    assert str(boost.id) not in ids(await get(client, path, bob))
    assert ids(await get(client, path))[0] == str(boost.id)
    # and when alice blocks carol, carol sees nothing of hers
    await context.outbox.block(alice, "carol")
    assert ids(await get(client, path, carol)) == []


async def test_statuses_filters_replies_boosts_media_tags_and_pins(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    await person(context, "alice")
    await person(context, "bob")
    alice, bob = await actor_of(context, "alice"), await actor_of(context, "bob")
    theirs = await context.outbox.post(bob, "bob's post")
    hidden = await context.outbox.post(bob, "bob's private post", visibility="followers")
    first = await context.outbox.post(alice, "a thread #Art")
    own_reply = await context.outbox.post(alice, "more of it", in_reply_to=first.uri)
    reply = await context.outbox.post(alice, "hi bob", in_reply_to=theirs.uri)
    picture = {"type": "Image", "mediaType": "image/png", "url": f"{BASE}/media/x.png",
               "name": "a square"}  # fmt: skip
    pictured = await context.outbox.post(alice, "a picture", attachments=[picture])
    boost = await context.outbox.boost(alice, theirs.uri)
    await context.outbox.pin(alice, first.uri)
    path = f"{API}/{alice.id}/statuses"

    async def ids(**params: Any) -> list[str]:
        answer = await get(client, path, **params)
        assert answer.status_code == 200, answer.text
        return [status["id"] for status in answer.json()]

    everything = [boost, pictured, reply, own_reply, first]
    assert await ids() == [str(row.id) for row in everything]
    shown = (await get(client, path)).json()[0]
    assert shown["reblog"]["id"] == str(theirs.id) and shown["account"]["acct"] == "alice"
    assert await ids(exclude_reblogs="true") == [str(r.id) for r in everything[1:]]
    assert await ids(exclude_replies="1") == [str(r.id) for r in (boost, pictured, own_reply,
                                                                  first)]  # fmt: skip
    assert await ids(only_media="true") == [str(pictured.id)]
    assert await ids(tagged="art") == [str(first.id)] == await ids(tagged="#ART")
    assert await ids(tagged="nothing") == []
    assert await ids(pinned="true") == [str(first.id)]
    # a boost of a post the reader may not read is left out
    assert str(hidden.id) not in await ids()


async def test_statuses_page_with_link_headers_and_past_the_end(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    await person(context, "alice")
    alice = await actor_of(context, "alice")
    posts = [await context.outbox.post(alice, f"post {i}") for i in range(5)]
    path = f"{API}/{alice.id}/statuses"
    first = await get(client, path, limit="2")
    assert [s["id"] for s in first.json()] == [str(posts[4].id), str(posts[3].id)]
    links = httpx.Response(200, headers={"Link": first.headers["link"]}).links
    assert f"max_id={posts[3].id}" in links["next"]["url"] and "limit=2" in links["next"]["url"]
    following = await client.get(links["next"]["url"].removeprefix(BASE))
    assert [s["id"] for s in following.json()] == [str(posts[2].id), str(posts[1].id)]
    back = httpx.Response(200, headers={"Link": following.headers["link"]}).links["prev"]["url"]
    assert f"min_id={posts[2].id}" in back
    assert [s["id"] for s in (await client.get(back.removeprefix(BASE))).json()] == [
        str(posts[4].id), str(posts[3].id)]  # fmt: skip
    newer = await get(client, path, min_id=str(posts[2].id), limit="1")
    assert [s["id"] for s in newer.json()] == [str(posts[3].id)]
    since = await get(client, path, since_id=str(posts[3].id))
    assert [s["id"] for s in since.json()] == [str(posts[4].id)]
    past = await get(client, path, max_id=str(posts[0].id))
    assert past.status_code == 200 and past.json() == [] and "link" not in past.headers
    assert (await get(client, f"{API}/424242/statuses")).status_code == 404


async def test_statuses_of_a_remote_account_are_what_we_stored(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    zoe = await remote_actor(context, "zoe")
    note = {"id": f"{zoe.uri}/statuses/1", "type": "Note", "attributedTo": zoe.uri,
            "content": "<p>hello</p>", "to": ["https://www.w3.org/ns/activitystreams#Public"],
            "published": "2026-11-01T10:00:00Z"}  # fmt: skip
    async with context.db.transaction() as session:
        session.add(Object(uri=note["id"], type="Note", actor_uri=zoe.uri, local=False,
                           data=note, visibility="public"))  # fmt: skip
    answer = await get(client, f"{API}/{zoe.id}/statuses")
    assert [s["content"] for s in answer.json()] == ["<p>hello</p>"]


# -- followers and following ---------------------------------------------------------------------


async def test_followers_and_following_are_paged_account_lists(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    names = ["alice", "bob", "carol", "dave"]
    for name in names:
        await person(context, name)
    for name in names[1:]:
        await context.outbox.follow(await actor_of(context, name), "alice")
    alice = await actor_of(context, "alice")
    await context.outbox.follow(alice, "bob")
    first = await get(client, f"{API}/{alice.id}/followers", limit="2")
    assert [a["acct"] for a in first.json()] == ["dave", "carol"]
    assert first.json()[0]["following_count"] == 1
    next_url = httpx.Response(200, headers={"Link": first.headers["link"]}).links["next"]["url"]
    rest = await client.get(next_url.removeprefix(BASE))
    assert [a["acct"] for a in rest.json()] == ["bob"]
    end = httpx.Response(200, headers={"Link": rest.headers.get("link", "")}).links
    assert "next" not in end
    follows = await get(client, f"{API}/{alice.id}/following")
    assert [a["acct"] for a in follows.json()] == ["bob"]
    assert (await get(client, f"{API}/31337/followers")).status_code == 404
    assert (await get(client, f"{API}/31337/following")).status_code == 404


async def test_an_account_that_blocks_the_reader_hides_its_follows(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    await person(context, "alice")
    bob = await person(context, "bob", scope="read")
    await person(context, "carol")
    alice = await actor_of(context, "alice")
    await context.outbox.follow(await actor_of(context, "carol"), "alice")
    assert len((await get(client, f"{API}/{alice.id}/followers", bob)).json()) == 1
    await context.outbox.block(alice, "bob")
    assert (await get(client, f"{API}/{alice.id}/followers", bob)).json() == []
    assert len((await get(client, f"{API}/{alice.id}/followers")).json()) == 1
