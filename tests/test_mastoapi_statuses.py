"""``/api/v1/statuses`` as Mastodon apps use it (https://docs.joinmastodon.org/methods/statuses/).

Every test runs on SQLite and PostgreSQL (the ``db`` fixture). Posts made here
go through the outbox, so each also proves a federation job is queued.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from fedisocial.app import Context
from fedisocial.federation.remote import store_actor
from fedisocial.store.models import IdempotencyKey, Media, Object, PostVersion
from tests.c2s_helpers import Person, fanouts, person, png
from tests.test_inbox import BOB, activity, actor_doc, deliver, note, remote_key, run_jobs

API = "/api/v1/statuses"


async def status(client: httpx.AsyncClient, who: Person, **form: Any) -> dict[str, Any]:
    """Post a status as ``who``; assert 200; the Status entity."""
    answer = await client.post(API, headers=who.auth, json=form)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def upload(client: httpx.AsyncClient, who: Person, alt: str = "A teal square") -> str:
    answer = await client.post("/api/v2/media", headers=who.auth,
                               files={"file": ("a.png", png(), "image/png")},
                               data={"description": alt} if alt else {})  # fmt: skip
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


async def rows(context: Context, model: Any, *where: Any) -> int:
    async with context.db.session() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


# -- posting ----------------------------------------------------------------------------------


async def test_a_post_from_an_app_is_stored_rendered_and_federated(
    client: httpx.AsyncClient, context: Context, alice: Person
) -> None:
    # When alice's app posts a status with a content warning, a language and unlisted
    body = await status(client, alice, status="Hello #fediverse", spoiler_text="greeting",
                        visibility="unlisted", language="en")  # fmt: skip
    # Then the Status entity says what was posted
    assert body["content"].startswith("<p>Hello") and body["visibility"] == "unlisted"
    assert body["spoiler_text"] == "greeting" and body["sensitive"] is True
    assert body["language"] == "en" and body["account"]["acct"] == "alice"
    assert body["tags"][0]["name"] == "fediverse" and body["edited_at"] is None
    assert body["favourited"] is False and body["bookmarked"] is False
    # and the Note went through the outbox: stored with its contentMap, a Create queued
    async with context.db.session() as session:
        row = await session.get_one(Object, int(body["id"]))
        create = await session.scalar(select(Object).where(Object.object_uri == row.uri,
                                                           Object.type == "Create"))  # fmt: skip
    assert row.data["contentMap"] == {"en": row.data["content"]}
    assert row.visibility == "unlisted" and create is not None
    assert await fanouts(context, create.uri)
    # and a form-encoded post (toot, Tusky) works the same way
    form = await client.post(API, headers=alice.auth, data={"status": "form", "sensitive": "1"})
    assert form.status_code == 200 and form.json()["sensitive"] is True


@pytest.mark.parametrize(
    ("form", "status_code", "says"),
    [
        ({"status": "  "}, 422, "can't be blank"),
        ({"status": "x" * 5001}, 422, "at most 5,000"),
        ({"status": "hi", "visibility": "everyone"}, 422, "Visibility"),
        ({"status": "hi", "scheduled_at": "2030-01-01T00:00:00Z"}, 422, "scheduled"),
        ({"status": "hi", "poll": {"options": ["a", "b"], "expires_in": 600}}, 422, "polls"),
        ({"status": "hi", "in_reply_to_id": "999999"}, 404, "does not appear to exist"),
        ({"status": "hi", "media_ids": ["1", "2", "3", "4", "5"]}, 422, "at most 4"),
        ({"status": "hi", "media_ids": ["424242"]}, 422, "no media 424242"),
    ],
)
async def test_invalid_posts_are_refused_as_mastodon_refuses_them(
    client: httpx.AsyncClient,
    context: Context,
    alice: Person,
    form: dict[str, Any],
    status_code: int,
    says: str,
) -> None:
    answer = await client.post(API, headers=alice.auth, json=form)
    assert answer.status_code == status_code, answer.text
    assert says in answer.json()["error"]
    assert await rows(context, Object, Object.type == "Note") == 0


async def test_posting_needs_a_token_with_write_statuses(
    client: httpx.AsyncClient, context: Context
) -> None:
    reader = await person(context, "reader", scope="read")
    assert (await client.post(API, json={"status": "hi"})).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert (await client.post(API, headers=bad, json={"status": "hi"})).status_code == 401
    refused = await client.post(API, headers=reader.auth, json={"status": "hi"})
    assert refused.status_code == 403 and "insufficient_scope" in refused.headers.get(
        "www-authenticate", refused.text
    )
    writer = await person(context, "writer", scope="write:statuses")
    assert (await client.post(API, headers=writer.auth, json={"status": "ok"})).status_code == 200


async def test_the_same_idempotency_key_posts_once(
    client: httpx.AsyncClient, context: Context, alice: Person, carol: Person
) -> None:
    # When alice's app sends the same post twice with one Idempotency-Key
    headers = {**alice.auth, "Idempotency-Key": "post-1"}
    first = await client.post(API, headers=headers, json={"status": "once"})
    again = await client.post(API, headers=headers, json={"status": "once"})
    # Then the second answer is the first status, and one post exists
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert await rows(context, Object, Object.type == "Note") == 1
    # while another key, or another account with the same key, posts again
    other = await client.post(API, headers={**alice.auth, "Idempotency-Key": "post-2"},
                              json={"status": "once"})  # fmt: skip
    carols = await client.post(API, headers={**carol.auth, "Idempotency-Key": "post-1"},
                               json={"status": "once"})  # fmt: skip
    assert len({first.json()["id"], other.json()["id"], carols.json()["id"]}) == 3
    assert await rows(context, IdempotencyKey) == 3


async def test_a_reply_names_its_parent_and_a_private_parent_stays_hidden(
    client: httpx.AsyncClient, context: Context, alice: Person, carol: Person
) -> None:
    parent = await status(client, carol, status="Question?")
    reply = await status(client, alice, status="Answer", in_reply_to_id=parent["id"])
    assert reply["in_reply_to_id"] == parent["id"]
    assert reply["in_reply_to_account_id"] == parent["account"]["id"]
    # a followers-only post of carol's is not there for alice (who does not follow her)
    hidden = await status(client, carol, status="Friends only", visibility="private")
    answer = await client.post(API, headers=alice.auth,
                               json={"status": "hi", "in_reply_to_id": hidden["id"]})  # fmt: skip
    assert answer.status_code == 404


async def test_a_post_with_media_carries_them_described(
    client: httpx.AsyncClient, context: Context, alice: Person, carol: Person
) -> None:
    media_id = await upload(client, alice)
    body = await status(client, alice, status="Look", media_ids=[media_id])
    (attached,) = body["media_attachments"]
    assert attached["id"] == media_id and attached["description"] == "A teal square"
    assert attached["type"] == "image" and attached["blurhash"]
    assert attached["meta"]["original"] == {"width": 64, "height": 48, "size": "64x48",
                                            "aspect": 64 / 48}  # fmt: skip
    assert attached["meta"]["small"]["width"] == 64 and attached["preview_url"].endswith(".webp")
    # the same upload cannot be attached twice, nor carol's, nor one without alt text
    again = {"status": "x", "media_ids": [media_id]}
    twice = await client.post(API, headers=alice.auth, json=again)
    assert twice.status_code == 422 and "already attached" in twice.json()["error"]
    carols = await upload(client, carol)
    stolen = await client.post(API, headers=alice.auth, json={"status": "x", "media_ids": [carols]})
    assert stolen.status_code == 422
    bare = await upload(client, alice, alt="")
    undescribed = await client.post(API, headers=alice.auth, json={"media_ids": [bare]})
    assert undescribed.status_code == 422 and "alt text" in undescribed.json()["error"]
    # media alone (no text) is a post
    described = await client.put(f"/api/v1/media/{bare}", headers=alice.auth,
                                  json={"description": "Now described"})  # fmt: skip
    assert described.status_code == 200
    alone = await status(client, alice, media_ids=[bare])
    assert alone["media_attachments"][0]["description"] == "Now described"


# -- reading ----------------------------------------------------------------------------------


async def test_a_status_is_shown_only_to_who_may_read_it(
    client: httpx.AsyncClient, context: Context, alice: Person, carol: Person
) -> None:
    public = await status(client, carol, status="Hi all")
    private = await status(client, carol, status="Followers", visibility="private")
    direct = await status(client, carol, status="@alice psst", visibility="direct")
    # anyone reads a public one, without a token
    assert (await client.get(f"{API}/{public['id']}")).json()["content"] == public["content"]
    # a followers-only one is 404 for alice, who does not follow carol, and for anonymous
    assert (await client.get(f"{API}/{private['id']}", headers=alice.auth)).status_code == 404
    assert (await client.get(f"{API}/{private['id']}")).status_code == 404
    # a direct one mentioning alice is hers to read; its author reads all
    assert (await client.get(f"{API}/{direct['id']}", headers=alice.auth)).status_code == 200
    assert (await client.get(f"{API}/{private['id']}", headers=carol.auth)).status_code == 200
    # unknown and malformed ids are 404; a token without read is 403
    assert (await client.get(f"{API}/123456789")).status_code == 404
    assert (await client.get(f"{API}/abc")).status_code == 404
    writer = await person(context, "writer", scope="write")
    assert (await client.get(f"{API}/{public['id']}", headers=writer.auth)).status_code == 403
    # several at once: the readable ones, in the order asked
    ids = [direct["id"], private["id"], public["id"], "999999"]
    many = await client.get(API, headers=alice.auth, params={"id[]": ids})
    assert [s["id"] for s in many.json()] == [direct["id"], public["id"]]
    assert (await client.get(API, headers=alice.auth)).status_code == 400


async def test_context_shows_the_thread_the_viewer_may_read(
    client: httpx.AsyncClient, context: Context, alice: Person, carol: Person
) -> None:
    # Given a thread: root, a reply, a private reply to it by carol, a reply to the root
    root = await status(client, alice, status="Root")
    one = await status(client, carol, status="One", in_reply_to_id=root["id"])
    hidden = await status(client, carol, status="Hidden", in_reply_to_id=one["id"],
                          visibility="private")  # fmt: skip
    deep = await status(client, carol, status="Deep", in_reply_to_id=hidden["id"])
    two = await status(client, alice, status="Two", in_reply_to_id=root["id"])
    # When anyone asks for the root's context
    seen = (await client.get(f"{API}/{root['id']}/context")).json()
    # Then descendants come depth first, without what they may not read
    assert [s["id"] for s in seen["descendants"]] == [one["id"], deep["id"], two["id"]]
    assert seen["ancestors"] == []
    # and carol, its author, sees her private reply too
    mine = (await client.get(f"{API}/{root['id']}/context", headers=carol.auth)).json()
    assert [s["id"] for s in mine["descendants"]] == [one["id"], hidden["id"], deep["id"],
                                                      two["id"]]  # fmt: skip
    # ancestors run from the root down
    up = (await client.get(f"{API}/{deep['id']}/context")).json()
    assert [s["id"] for s in up["ancestors"]] == [root["id"], one["id"]]
    assert (await client.get(f"{API}/{hidden['id']}/context")).status_code == 404


# -- deleting and editing ---------------------------------------------------------------------


async def test_delete_gives_back_the_source_and_federates(
    client: httpx.AsyncClient, context: Context, alice: Person, carol: Person
) -> None:
    media_id = await upload(client, alice)
    body = await status(client, alice, status="Oops @carol #typo", media_ids=[media_id])
    # carol cannot delete alice's post (404, as Mastodon scopes it to one's own)
    assert (await client.delete(f"{API}/{body['id']}", headers=carol.auth)).status_code == 404
    # alice deletes it: the status comes back with its text, for delete and redraft
    deleted = await client.delete(f"{API}/{body['id']}", headers=alice.auth)
    assert deleted.status_code == 200 and deleted.json()["text"] == "Oops @carol #typo"
    assert deleted.json()["media_attachments"][0]["id"] == media_id
    assert (await client.get(f"{API}/{body['id']}")).status_code == 404
    assert (await client.delete(f"{API}/{body['id']}", headers=alice.auth)).status_code == 404
    assert await rows(context, Object, Object.type == "Delete") == 1
    # and its media can go in the redraft
    redraft = await status(client, alice, status="Fixed", media_ids=[media_id])
    assert redraft["media_attachments"][0]["id"] == media_id


async def test_an_edit_federates_and_keeps_the_history(
    client: httpx.AsyncClient, context: Context, alice: Person, carol: Person
) -> None:
    body = await status(client, alice, status="First words", spoiler_text="cw")
    url = f"{API}/{body['id']}"
    # carol cannot edit it
    assert (await client.put(url, headers=carol.auth, json={"status": "x"})).status_code == 404
    # When alice edits the text and drops the content warning, adding an image
    media_id = await upload(client, alice)
    edited = await client.put(url, headers=alice.auth, json={
        "status": "Second words", "spoiler_text": "", "media_ids": [media_id]})  # fmt: skip
    assert edited.status_code == 200, edited.text
    after = edited.json()
    assert "Second words" in after["content"] and after["spoiler_text"] == ""
    assert after["edited_at"] is not None and after["media_attachments"][0]["id"] == media_id
    # Then an Update is queued and the earlier version kept
    assert await rows(context, Object, Object.type == "Update") == 1
    assert await rows(context, PostVersion) == 1
    # history: oldest first, the current one last
    versions = (await client.get(f"{url}/history")).json()
    assert ["First words" in v["content"] for v in versions] == [True, False]
    assert versions[0]["spoiler_text"] == "cw" and versions[1]["media_attachments"]
    # source: the text to edit
    source = (await client.get(f"{url}/source", headers=alice.auth)).json()
    assert source == {"id": body["id"], "text": "Second words", "spoiler_text": ""}
    assert (await client.get(f"{url}/source")).status_code == 401
    # an edit without media_ids keeps the media
    kept = await client.put(url, headers=alice.auth, json={"status": "Third"})
    assert kept.json()["media_attachments"][0]["id"] == media_id
    assert len((await client.get(f"{url}/history")).json()) == 3
    # an edit over the length limit is refused and changes nothing
    long = await client.put(url, headers=alice.auth, json={"status": "x" * 5001})
    assert long.status_code == 422 and await rows(context, PostVersion) == 2


async def test_a_remote_edit_shows_in_the_history(
    client: httpx.AsyncClient, context: Context, alice: Person
) -> None:
    # Given bob's post on another server, edited there
    await store_actor(context.db, actor_doc(BOB, remote_key()))
    post = note(f"{BOB}/notes/1")
    await deliver(client, activity("Create", post))
    await run_jobs(context)
    edited = {**post, "content": "<p>edited</p>", "updated": "2026-11-27T10:00:00Z"}
    await deliver(client, activity("Update", edited))
    await deliver(client, activity("Update", edited, name="again"))  # redelivered
    await run_jobs(context)
    async with context.db.session() as session:
        row = await session.scalar(select(Object).where(Object.uri == post["id"]))
    assert row is not None
    # Then its history has both versions, oldest first
    versions = (await client.get(f"{API}/{row.id}/history", headers=alice.auth)).json()
    assert [v["content"] for v in versions] == ["<p>hello</p>", "<p>edited</p>"]
    assert versions[1]["created_at"] == "2026-11-27T10:00:00.000Z"


# -- favourites, boosts, bookmarks, pins ------------------------------------------------------


async def test_favourite_and_favourited_by(
    client: httpx.AsyncClient, context: Context, alice: Person, carol: Person
) -> None:
    body = await status(client, carol, status="Like me")
    url = f"{API}/{body['id']}"
    liked = await client.post(f"{url}/favourite", headers=alice.auth)
    assert liked.status_code == 200 and liked.json()["favourited"] is True
    assert liked.json()["favourites_count"] == 1
    # twice is fine, and counts once
    again = await client.post(f"{url}/favourite", headers=alice.auth)
    assert again.json()["favourites_count"] == 1
    await client.post(f"{url}/favourite", headers=carol.auth)
    # favourited_by pages with a Link header, the latest first
    first = await client.get(f"{url}/favourited_by", params={"limit": 1})
    assert [a["acct"] for a in first.json()] == ["carol"]
    assert 'rel="next"' in first.headers["link"]
    next_url = first.headers["link"].split(";")[0].strip("<>")
    second = await client.get(next_url)
    assert [a["acct"] for a in second.json()] == ["alice"]
    beyond = await client.get(f"{url}/favourited_by", params={"max_id": 1})
    assert beyond.status_code == 200 and beyond.json() == []
    # unfavourite, twice too
    for _ in range(2):
        undone = await client.post(f"{url}/unfavourite", headers=alice.auth)
        assert undone.json()["favourited"] is False and undone.json()["favourites_count"] == 1
    assert await rows(context, Object, Object.type == "Undo") == 1
    # scope and readability
    reader = await person(context, "reader", scope="read")
    assert (await client.post(f"{url}/favourite", headers=reader.auth)).status_code == 403
    assert (await client.post(f"{API}/999999/favourite", headers=alice.auth)).status_code == 404
    hidden = await status(client, carol, status="not for alice", visibility="private")
    refused = await client.post(f"{API}/{hidden['id']}/favourite", headers=alice.auth)
    assert refused.status_code == 404
    assert (await client.get(f"{API}/{hidden['id']}/favourited_by")).status_code == 404


async def test_reblog_and_reblogged_by(
    client: httpx.AsyncClient, context: Context, alice: Person, carol: Person
) -> None:
    body = await status(client, carol, status="Boost me")
    url = f"{API}/{body['id']}"
    boosted = await client.post(f"{url}/reblog", headers=alice.auth,
                                json={"visibility": "unlisted"})  # fmt: skip
    assert boosted.status_code == 200, boosted.text
    boost = boosted.json()
    assert boost["reblog"]["id"] == body["id"] and boost["id"] != body["id"]
    assert boost["reblog"]["reblogged"] is True and boost["visibility"] == "unlisted"
    # boosting again gives the same boost; the boost's own id reads and favourites the post
    assert (await client.post(f"{url}/reblog", headers=alice.auth)).json()["id"] == boost["id"]
    assert (await client.get(f"{API}/{boost['id']}")).json()["reblog"]["id"] == body["id"]
    by = (await client.get(f"{url}/reblogged_by")).json()
    assert [a["acct"] for a in by] == ["alice"]
    undone = await client.post(f"{url}/unreblog", headers=alice.auth)
    assert undone.json()["id"] == body["id"] and undone.json()["reblogged"] is False
    assert (await client.get(f"{API}/{boost['id']}")).status_code == 404
    # a followers-only post cannot be boosted by its author's follower either
    private = await status(client, carol, status="mine", visibility="private")
    own = await client.post(f"{API}/{private['id']}/reblog", headers=carol.auth)
    assert own.status_code == 403
    direct = await client.post(f"{url}/reblog", headers=alice.auth, json={"visibility": "direct"})
    assert direct.status_code == 422


async def test_bookmarks_are_private_to_their_owner(
    client: httpx.AsyncClient, context: Context, alice: Person, carol: Person
) -> None:
    body = await status(client, carol, status="Save me")
    url = f"{API}/{body['id']}"
    saved = await client.post(f"{url}/bookmark", headers=alice.auth)
    assert saved.status_code == 200 and saved.json()["bookmarked"] is True
    assert (await client.post(f"{url}/bookmark", headers=alice.auth)).status_code == 200
    assert (await client.get(url, headers=alice.auth)).json()["bookmarked"] is True
    assert (await client.get(url, headers=carol.auth)).json()["bookmarked"] is False
    removed = await client.post(f"{url}/unbookmark", headers=alice.auth)
    assert removed.json()["bookmarked"] is False
    assert (await client.post(f"{url}/bookmark")).status_code == 401


async def test_pins_are_for_ones_own_public_posts(
    client: httpx.AsyncClient, context: Context, alice: Person, carol: Person
) -> None:
    mine = await status(client, alice, status="Pin me")
    url = f"{API}/{mine['id']}"
    pinned = await client.post(f"{url}/pin", headers=alice.auth)
    assert pinned.status_code == 200 and pinned.json()["pinned"] is True
    assert (await client.get(url, headers=carol.auth)).json()["pinned"] is False
    assert await rows(context, Object, Object.type == "Add") == 1
    assert (await client.post(f"{url}/pin", headers=alice.auth)).status_code == 422
    # not carol's post, not a private one, not more than five
    assert (await client.post(f"{url}/pin", headers=carol.auth)).status_code == 422
    private = await status(client, alice, status="p", visibility="private")
    assert (await client.post(f"{API}/{private['id']}/pin", headers=alice.auth)).status_code == 422
    for n in range(4):
        more = await status(client, alice, status=f"more {n}")
        assert (await client.post(f"{API}/{more['id']}/pin", headers=alice.auth)).status_code == 200
    sixth = await status(client, alice, status="sixth")
    refused = await client.post(f"{API}/{sixth['id']}/pin", headers=alice.auth)
    assert refused.status_code == 422 and "at most 5" in refused.json()["error"]
    # unpin, and unpinning what is not pinned is fine
    for _ in range(2):
        unpinned = await client.post(f"{url}/unpin", headers=alice.auth)
        assert unpinned.status_code == 200 and unpinned.json()["pinned"] is False
    assert await rows(context, Object, Object.type == "Remove") == 1
    reader = await person(context, "reader", scope="read")
    assert (await client.post(f"{url}/pin", headers=reader.auth)).status_code == 403


async def test_muting_a_conversation_is_not_supported_yet(
    client: httpx.AsyncClient, context: Context, alice: Person
) -> None:
    body = await status(client, alice, status="Thread")
    answer = await client.post(f"{API}/{body['id']}/mute", headers=alice.auth)
    assert answer.status_code == 422 and "not supported" in answer.json()["error"]
    assert (await client.post(f"{API}/999999/mute", headers=alice.auth)).status_code == 404


async def test_generated_media_carry_the_ai_label(
    client: httpx.AsyncClient, context: Context, alice: Person
) -> None:
    # Given an image alice's studio made (the offline model)
    actor = await context.outbox.actor_of("alice")
    generation = await context.studio.request(actor, "a lighthouse at dawn")
    from tests.c2s_helpers import run_jobs as run_all

    await run_all(context)
    async with context.db.session() as session:
        media = await session.scalar(select(Media).where(Media.owner_id == actor.id))
    assert media is not None and generation.id
    # Then its MediaAttachment says it was generated, and a post of it is labeled
    shown = (await client.get(f"/api/v1/media/{media.id}", headers=alice.auth)).json()
    assert "a lighthouse at dawn" in shown["description"]
    body = await status(client, alice, status="Made this", media_ids=[str(media.id)])
    assert "Image generated by AI" in body["content"]
    edited = await client.put(f"{API}/{body['id']}", headers=alice.auth, json={"status": "Made"})
    assert "Image generated by AI" in edited.json()["content"]
    source = await client.get(f"{API}/{body['id']}/source", headers=alice.auth)
    assert source.json()["text"] == "Made"
