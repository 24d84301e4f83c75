"""Signatures and identity cannot be spoofed: keys, hosts and actor URIs.

Each story has an attacker try to speak for someone else, or make someone
else's real requests fail, and shows that the real owner still gets through.
Remote servers are real loopback servers (two ports are two origins).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from fedisocial.ap import httpsig
from fedisocial.app import Context
from fedisocial.errors import InvalidDocument
from fedisocial.federation.remote import store_actor
from fedisocial.social.accounts import create_user, find_local_actor
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Follow, utcnow
from tests.test_inbox import (
    AS2,
    CAROL,
    Documents,
    activity,
    actor_doc,
    deliver,
    remote_host,
    remote_key,
)


async def stored_actors(db: Database) -> list[str]:
    async with db.session() as session:
        return list(await session.scalars(select(Actor.uri).where(Actor.local.is_(False))))


# -- 1. key ids belong to the actor's own origin ---------------------------------------------


async def test_a_key_id_squatted_on_another_origin_does_not_break_its_owner(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given the victim on one server and evil on another, whose actor claims the victim's key id
    victim_docs: Documents = {}
    evil_docs: Documents = {}
    async with remote_host(victim_docs) as victim_origin, remote_host(evil_docs) as evil_origin:
        victim, evil = f"{victim_origin}/users/v", f"{evil_origin}/users/e"
        victim_docs["/users/v"] = actor_doc(victim, remote_key("victim"))
        squatter = actor_doc(evil, remote_key("evil"))
        squatter["publicKey"]["id"] = f"{victim}#main-key"
        evil_docs["/users/e"] = squatter
        # When evil delivers an activity, so that we fetch and read its actor document
        squatting = await deliver(client, activity("Like", f"{evil}/notes/1", actor=evil),
                                  signer=evil, key=remote_key("evil"))  # fmt: skip
        # And then the victim delivers a real, signed activity
        real = await deliver(client, activity("Like", f"{victim}/notes/1", actor=victim),
                             signer=victim, key=remote_key("victim"))  # fmt: skip
    # Then the victim's signature still verifies, and evil is refused with the reason
    assert real.status_code == 202, real.text
    assert squatting.status_code == 401
    assert "is not on the actor's host" in squatting.json()["error"]
    assert await stored_actors(context.db) == [victim]


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ({"id": "https://victim.example/users/v#main-key"}, "is not on the actor's host"),
        ({"owner": "https://evil.example/users/other"}, "is owned by https://evil.example/users/other"),
    ],
)  # fmt: skip
async def test_an_actor_with_someone_elses_key_is_not_stored(
    db: Database, key: dict[str, Any], reason: str
) -> None:
    # Given evil's actor document whose key names another origin or another owner
    doc = actor_doc("https://evil.example/users/e", remote_key("evil"))
    doc["publicKey"] |= key
    # When we store it / Then it is refused clearly, and nothing is kept
    with pytest.raises(InvalidDocument, match=reason):
        await store_actor(db, doc)
    assert await stored_actors(db) == []


async def test_a_key_id_squatted_before_the_check_existed_is_ignored(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given an evil actor row stored long ago with the victim's key id (and evil's key)
    victim_docs: Documents = {}
    async with remote_host(victim_docs) as victim_origin:
        victim = f"{victim_origin}/users/v"
        victim_docs["/users/v"] = actor_doc(victim, remote_key("victim"))
        async with context.db.transaction() as session:
            session.add(Actor(uri="https://evil.example/users/e", local=False, type="Person",
                              username="e", domain="evil.example", inbox="https://evil.example/i",
                              public_key_id=f"{victim}#main-key",
                              public_key_pem=actor_doc(victim, remote_key("evil"))["publicKey"]
                              ["publicKeyPem"], fetched_at=utcnow()))  # fmt: skip
        # When the victim delivers a real, signed activity
        real = await deliver(client, activity("Like", f"{victim}/notes/1", actor=victim),
                             signer=victim, key=remote_key("victim"))  # fmt: skip
    # Then the squatter's row is not taken for the key's owner: the signature verifies
    assert real.status_code == 202, real.text


# -- 2. signatures are bound to our host ------------------------------------------------------


async def test_a_signed_get_made_for_another_host_is_refused(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given alice's followers-only post, and carol (remote) who follows her
    await create_user(context.db, context.urls, "alice", "long enough")
    alice = await find_local_actor(context.db, context.urls, "alice")
    post = await context.outbox.post(alice, "friends only", visibility="followers")
    carol = await store_actor(context.db, actor_doc(CAROL, remote_key("carol")))
    async with context.db.transaction() as session:
        session.add(Follow(follower_uri=carol.uri, followee_uri=alice.uri,
                           activity_uri=f"{carol.uri}/follow", state="accepted"))  # fmt: skip
    # When a GET that carol signed for the same path on other.example is replayed to us
    path = urlsplit(post.uri).path
    signed = httpsig.sign_request("GET", f"https://other.example{path}", {"Accept": AS2}, None,
                                  f"{CAROL}#main-key", remote_key("carol"))  # fmt: skip
    replayed = await client.get(path, headers={"Accept": AS2, **signed})
    # Then it is refused, naming the host it was signed for; signed for us, it is served
    assert replayed.status_code == 401
    assert "signed for host other.example, not ours" in replayed.json()["error"]
    ours = httpsig.sign_request("GET", post.uri, {"Accept": AS2}, None, f"{CAROL}#main-key",
                                remote_key("carol"))  # fmt: skip
    assert (await client.get(path, headers={"Accept": AS2, **ours})).status_code == 200
