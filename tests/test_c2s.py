"""The C2S outbox (ActivityPub §6) over HTTP with Bearer tokens, on SQLite and PostgreSQL.

Each activity a client posts has the side effect our own pages have (same rows, same
queue); the answer is 201 with ``Location`` and the stored activity.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from fedisocial.app import Context
from fedisocial.social.accounts import set_locked
from fedisocial.store.models import Actor, Block, Engagement, Follow
from tests.c2s_helpers import (
    AS_PUBLIC,
    BASE,
    Person,
    another_token,
    created,
    fanouts,
    get_as2,
    person,
    post,
    stored,
)


@pytest.fixture
async def alice(context: Context) -> Person:
    return await person(context, "alice")


@pytest.fixture
async def bob(context: Context) -> Person:
    return await person(context, "bob")


async def a_post(client: httpx.AsyncClient, who: Person, text: str = "hello") -> str:
    body = await created(client, who, {"type": "Note", "content": text, "to": [AS_PUBLIC]})
    uri: str = body["object"]["id"]
    return uri


# -- Create (§6.2) --------------------------------------------------------------------------------


async def test_a_bare_note_is_wrapped_in_a_create_with_its_addressing(
    client: httpx.AsyncClient, context: Context, alice: Person, bob: Person
) -> None:
    # Given alice's client posts a bare Note with a made-up id, a bcc and a hashtag
    note = {
        "@context": "https://www.w3.org/ns/activitystreams", "type": "Note",
        "id": "https://evil.example/notes/1", "attributedTo": "https://evil.example/u",
        "content": "Hello #fediverse", "to": [AS_PUBLIC], "cc": [alice.followers],
        "bcc": ["https://remote.example/users/carol"],
    }  # fmt: skip
    # When it is posted to her outbox
    body = await created(client, alice, note)
    # Then the answer is the Create, with ids of ours and her as actor and author
    assert body["type"] == "Create" and body["actor"] == alice.uri
    assert body["id"].startswith(f"{alice.uri}/activities/")
    made = body["object"]
    assert made["id"].startswith(f"{alice.uri}/statuses/") and made["attributedTo"] == alice.uri
    assert body["to"] == made["to"] == [AS_PUBLIC] and body["cc"] == made["cc"]
    # and bcc is delivered to but shown nowhere (§6.11)
    assert "bcc" not in body and "bcc" not in made
    (fanout,) = await fanouts(context, body["id"])
    assert "https://remote.example/users/carol" in fanout["recipients"]
    assert alice.followers in fanout["recipients"]
    # and the text is rendered like our own posts: paragraph, hashtag link and tag
    assert made["content"].startswith("<p>Hello <a href=")
    assert {"type": "Hashtag", "href": f"{BASE}/tags/fediverse",
            "name": "#fediverse"} in made["tag"]  # fmt: skip
    # and both are served at their ids
    assert (await get_as2(client, body["id"])).json()["object"]["id"] == made["id"]
    row = await stored(context, made["id"])
    assert row is not None and row.visibility == "public"


async def test_a_create_addressed_on_the_activity_only_addresses_its_note(
    client: httpx.AsyncClient, alice: Person
) -> None:
    # Given the ap client's shape: addressing on the Create, plain text content
    activity = {"type": "Create", "to": [AS_PUBLIC], "cc": [],
                "object": {"type": "Note", "content": "just text & more\nlines"}}  # fmt: skip
    body = await created(client, alice, activity)
    # Then the Note carries it too (§6.2.1), and the text is escaped, not read as HTML
    assert body["object"]["to"] == [AS_PUBLIC]
    assert body["object"]["content"] == "<p>just text &amp; more<br>lines</p>"


async def test_hostile_html_is_stripped_and_markdown_is_rendered(
    client: httpx.AsyncClient, alice: Person
) -> None:
    hostile = await created(client, alice, {
        "type": "Note", "to": [AS_PUBLIC],
        "content": '<p onclick="x()">Hi <script>alert(1)</script><img src=x>'
                   '<a href="javascript:alert(1)">there</a></p>',
    })  # fmt: skip
    content = hostile["object"]["content"]
    assert "script" not in content and "<img" not in content and "onclick" not in content
    assert "javascript:" not in content and "Hi" in content
    markdown = await created(client, alice, {
        "type": "Note", "to": [AS_PUBLIC],
        "source": {"content": "Some **bold** and <i>raw</i>", "mediaType": "text/markdown"},
    })  # fmt: skip
    made = markdown["object"]
    assert "<strong>bold</strong>" in made["content"] and "<i>" not in made["content"]
    assert made["source"] == {"content": "Some **bold** and <i>raw</i>",
                              "mediaType": "text/markdown"}  # fmt: skip


async def test_language_maps_content_warning_and_article(
    client: httpx.AsyncClient, alice: Person
) -> None:
    body = await created(client, alice, {
        "type": "Note", "to": [AS_PUBLIC],
        "contentMap": {"en": "<p>Hello</p>", "fr": "<p>Bonjour<script>x</script></p>"},
        "summaryMap": {"en": "spoilers"},
    })  # fmt: skip
    made = body["object"]
    assert made["content"] == "<p>Hello</p>"
    assert made["contentMap"] == {"en": "<p>Hello</p>", "fr": "<p>Bonjour</p>"}
    assert made["summary"] == "spoilers" and made["sensitive"] is True
    article = await created(
        client,
        alice,
        {"type": "Article", "name": "A title", "content": "<p>Long read</p>", "to": [AS_PUBLIC]},
    )
    assert article["object"]["type"] == "Article" and article["object"]["name"] == "A title"


@pytest.mark.parametrize(
    ("to", "cc", "visibility"),
    [
        ([AS_PUBLIC], [], "public"),
        (["FOLLOWERS"], [AS_PUBLIC], "unlisted"),
        (["FOLLOWERS"], [], "followers"),
        ([f"{BASE}/users/bob"], [], "direct"),
    ],
)
async def test_visibility_is_read_from_the_addressing_like_mastodon(
    client: httpx.AsyncClient, context: Context, alice: Person, bob: Person,
    to: list[str], cc: list[str], visibility: str,
) -> None:  # fmt: skip
    to = [alice.followers if r == "FOLLOWERS" else r for r in to]
    body = await created(client, alice, {"type": "Note", "content": "hi", "to": to, "cc": cc})
    row = await stored(context, body["object"]["id"])
    assert row is not None and row.visibility == visibility


async def test_a_reply_and_a_mention_address_their_people(
    client: httpx.AsyncClient, context: Context, alice: Person, bob: Person
) -> None:
    parent = await a_post(client, bob, "a question")
    body = await created(client, alice, {
        "type": "Note", "content": "an answer, @bob", "inReplyTo": parent, "to": [AS_PUBLIC],
    })  # fmt: skip
    made = body["object"]
    assert made["inReplyTo"] == parent and bob.uri in made["cc"]
    assert {"type": "Mention", "href": bob.uri, "name": "@bob@127.0.0.1:8000"} in made["tag"]


# -- Update (§6.3), Delete (§6.4) -----------------------------------------------------------------


async def test_an_update_changes_only_what_it_sends(
    client: httpx.AsyncClient, context: Context, alice: Person
) -> None:
    # Given a post with a content warning
    first = await created(client, alice, {"type": "Note", "content": "The text",
                                          "summary": "cw", "to": [AS_PUBLIC]})  # fmt: skip
    uri = first["object"]["id"]
    # When the client sends an Update with only a new summary
    update = await created(
        client, alice, {"type": "Update", "object": {"id": uri, "summary": "new cw"}}
    )
    # Then the summary changed, the text and addressing stayed, and it is marked updated
    assert update["type"] == "Update" and update["object"]["id"] == uri
    now = (await get_as2(client, uri)).json()
    assert now["summary"] == "new cw" and now["content"] == first["object"]["content"]
    assert now["to"] == [AS_PUBLIC] and "updated" in now
    # When it sends only new content, Then the content changes and the summary stays
    await created(client, alice, {"type": "Update", "object": {"id": uri, "content": "Edited"}})
    now = (await get_as2(client, uri)).json()
    assert now["content"] == "<p>Edited</p>" and now["summary"] == "new cw"
    # and followers were sent each Update
    assert await fanouts(context, update["id"])


async def test_the_profile_is_updated_partially(
    client: httpx.AsyncClient, context: Context, alice: Person
) -> None:
    body = await created(client, alice, {"type": "Update", "object": {
        "id": alice.uri, "type": "Person", "name": "Alice A.",
        "manuallyApprovesFollowers": True}})  # fmt: skip
    assert body["object"]["name"] == "Alice A."
    assert body["object"]["manuallyApprovesFollowers"] is True
    async with context.db.session() as session:
        actor = await session.scalar(select(Actor).where(Actor.uri == alice.uri))
    assert actor is not None and actor.manually_approves_followers and actor.summary == ""


async def test_delete_leaves_a_tombstone(client: httpx.AsyncClient, alice: Person) -> None:
    uri = await a_post(client, alice)
    body = await created(client, alice, {"type": "Delete", "object": uri})
    assert body["type"] == "Delete" and body["object"]["id"] == uri
    gone = await get_as2(client, uri)
    assert gone.status_code == 410 and gone.json()["type"] == "Tombstone"


# -- Follow, Accept, Reject, Block, Like, Announce, Add, Remove, Undo -----------------------------


async def follow_state(context: Context, follower: str, followee: str) -> str | None:
    async with context.db.session() as session:
        state: str | None = await session.scalar(select(Follow.state).where(
            Follow.follower_uri == follower, Follow.followee_uri == followee))  # fmt: skip
        return state


async def test_follow_and_undo_it(
    client: httpx.AsyncClient, context: Context, alice: Person, bob: Person
) -> None:
    follow = await created(client, alice, {"type": "Follow", "object": bob.uri})
    assert follow["object"] == bob.uri
    assert await follow_state(context, alice.uri, bob.uri) == "accepted"
    undo = await created(client, alice, {"type": "Undo", "object": follow["id"]})
    assert undo["object"]["type"] == "Follow" and undo["object"]["id"] == follow["id"]
    assert await follow_state(context, alice.uri, bob.uri) is None


@pytest.mark.parametrize("answer", ["Accept", "Reject"])
async def test_a_locked_account_answers_a_pending_follow(
    client: httpx.AsyncClient, context: Context, alice: Person, bob: Person, answer: str
) -> None:
    # Given bob approves his followers, and alice asks to follow him
    await set_locked(context.db, context.urls, "bob", locked=True)
    follow = await created(client, alice, {"type": "Follow", "object": bob.uri})
    assert await follow_state(context, alice.uri, bob.uri) == "pending"
    # When bob's client answers the Follow
    body = await created(client, bob, {"type": answer, "object": follow["id"]})
    # Then it is accepted (or gone), and alice is told
    assert body["object"]["id"] == follow["id"] and body["to"] == [alice.uri]
    expected = "accepted" if answer == "Accept" else None
    assert await follow_state(context, alice.uri, bob.uri) == expected


async def test_like_announce_and_their_undo(
    client: httpx.AsyncClient, context: Context, alice: Person, bob: Person
) -> None:
    uri = await a_post(client, bob)
    like = await created(client, alice, {"type": "Like", "object": uri})
    boost = await created(client, alice, {"type": "Announce", "object": uri})
    assert like["object"] == boost["object"] == uri and AS_PUBLIC in boost["to"]
    likes = (await get_as2(client, f"{uri}/likes?page=true")).json()
    assert likes["orderedItems"] == [like["id"]]
    for activity in (like, boost):
        undo = await created(client, alice, {"type": "Undo", "object": activity["id"]})
        assert undo["object"]["id"] == activity["id"]
    async with context.db.session() as session:
        assert list(await session.scalars(select(Engagement))) == []


async def test_an_undo_may_embed_what_it_undoes(
    client: httpx.AsyncClient, context: Context, alice: Person, bob: Person
) -> None:
    uri = await a_post(client, bob)
    await created(client, alice, {"type": "Like", "object": uri})
    await created(client, alice, {"type": "Undo", "object": {"type": "Like", "object": uri}})
    async with context.db.session() as session:
        assert list(await session.scalars(select(Engagement))) == []


async def test_block_and_undo_it(
    client: httpx.AsyncClient, context: Context, alice: Person, bob: Person
) -> None:
    await created(client, bob, {"type": "Follow", "object": alice.uri})
    block = await created(client, alice, {"type": "Block", "object": bob.uri})
    assert await follow_state(context, bob.uri, alice.uri) is None
    await created(client, alice, {"type": "Undo", "object": block["id"]})
    async with context.db.session() as session:
        assert list(await session.scalars(select(Block))) == []


async def test_add_and_remove_pin_to_featured(
    client: httpx.AsyncClient, context: Context, alice: Person
) -> None:
    uri = await a_post(client, alice)
    featured = f"{alice.uri}/collections/featured"
    add = await created(client, alice, {"type": "Add", "object": uri, "target": featured})
    assert add["target"] == featured and await fanouts(context, add["id"])
    items = (await get_as2(client, featured)).json()["orderedItems"]
    assert [item["id"] for item in items] == [uri]
    await created(client, alice, {"type": "Remove", "object": uri, "target": featured})
    assert "orderedItems" not in (await get_as2(client, featured)).json()


# -- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"type": "Travel"}, "cannot take a Travel here"),
        ({"content": "no type"}, "the body needs a type"),
        ({"type": "Like"}, "a Like needs an object"),
        ({"type": "Create", "object": "https://x.example/1"}, "needs its object embedded"),
        ({"type": "Create", "object": {"type": "Image"}}, "cannot create a Image"),
        ({"type": "Note", "content": "x" * 5001}, "at most 5,000 characters"),
        ({"type": "Note", "content": ""}, "a post needs text"),
        ({"type": "Add", "object": "x"}, "a Add needs a target"),
        (
            {"type": "Note", "content": "x", "source": {"content": "x", "mediaType": "text/html"}},
            "source.mediaType must be text/plain or text/markdown",
        ),
        (
            {"type": "Note", "attachment": [{"type": "Image", "url": "https://x.example/a.png"}]},
            "attach media uploaded here",
        ),
    ],
)
async def test_bad_input_is_400_with_a_reason_and_nothing_is_stored(
    client: httpx.AsyncClient, context: Context, alice: Person, doc: dict[str, object],
    message: str,
) -> None:  # fmt: skip
    answer = await post(client, alice, doc)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]
    async with context.db.session() as session:
        from fedisocial.store.models import Object

        assert list(await session.scalars(select(Object).where(Object.local.is_(True)))) == []


async def test_someone_elses_post_cannot_be_changed(
    client: httpx.AsyncClient, alice: Person, bob: Person
) -> None:
    uri = await a_post(client, bob)
    for doc in ({"type": "Update", "object": {"id": uri, "content": "mine now"}},
                {"type": "Delete", "object": uri}):  # fmt: skip
        answer = await post(client, alice, doc)
        assert answer.status_code == 403 and "is not a post of" in answer.json()["error"]
    other_actor = await post(client, alice, {"type": "Like", "object": uri, "actor": bob.uri})
    assert other_actor.status_code == 403


async def test_the_content_type_must_be_activity_json(
    client: httpx.AsyncClient, alice: Person
) -> None:
    for kind in ("application/activity+json", "application/json"):
        answer = await post(client, alice, {"type": "Note", "content": "x"}, content_type=kind)
        assert answer.status_code == 201
    wrong = await post(client, alice, {"type": "Note", "content": "x"}, content_type="text/plain")
    assert wrong.status_code == 415
    # a body sent with no Content-Type at all is read as JSON
    untyped = await client.post(alice.outbox, content=b'{"type": "Note", "content": "y"}',
                                headers=alice.auth)  # fmt: skip
    assert untyped.status_code == 201, untyped.text


# -- who may post ---------------------------------------------------------------------------------


async def test_without_a_token_401_with_a_bearer_challenge(
    client: httpx.AsyncClient, alice: Person
) -> None:
    answer = await client.post(alice.outbox, json={"type": "Note", "content": "x"})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer ")
    bad = await client.post(alice.outbox, json={"type": "Note", "content": "x"},
                            headers={"Authorization": "Bearer nope"})  # fmt: skip
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]


async def test_a_read_token_gets_403_insufficient_scope(
    client: httpx.AsyncClient, context: Context, alice: Person
) -> None:
    reader = await another_token(context, alice, "read")
    answer = await post(client, reader, {"type": "Note", "content": "x"})
    assert answer.status_code == 403
    challenge = answer.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="write:statuses"' in challenge


async def test_granular_scopes_allow_what_they_name(
    client: httpx.AsyncClient, context: Context, alice: Person, bob: Person
) -> None:
    uri = await a_post(client, bob)
    liker = await another_token(context, alice, "write:favourites")
    assert (await post(client, liker, {"type": "Like", "object": uri})).status_code == 201
    assert (await post(client, liker, {"type": "Announce", "object": uri})).status_code == 403
    assert (await post(client, liker, {"type": "Follow", "object": bob.uri})).status_code == 403


async def test_another_users_outbox_is_403(
    client: httpx.AsyncClient, alice: Person, bob: Person
) -> None:
    answer = await post(client, alice, {"type": "Note", "content": "x"}, outbox=bob.outbox)
    assert answer.status_code == 403 and "only bob" in answer.json()["error"]


async def test_the_actor_names_the_c2s_endpoints(client: httpx.AsyncClient, alice: Person) -> None:
    endpoints = (await get_as2(client, alice.uri)).json()["endpoints"]
    assert endpoints["uploadMedia"] == f"{alice.uri}/media"
    assert endpoints["proxyUrl"] == f"{BASE}/api/proxy"
    instance = (await get_as2(client, f"{BASE}/actor")).json()["endpoints"]
    assert "uploadMedia" not in instance and "proxyUrl" not in instance
