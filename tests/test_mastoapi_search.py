"""Mastodon's search methods: ``GET /api/v2/search`` and ``GET /api/v1/accounts/search``.

https://docs.joinmastodon.org/methods/search/ — behaviour as Mastodon 4.x's
``SearchService``, ``AccountSearchService`` and ``ResolveURLService``. Every
test runs on SQLite and PostgreSQL; the resolving tests fetch from a second,
real instance (``fedisocial serve`` on a loopback port).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from fedisocial.app import Context, create_app
from fedisocial.config import Settings
from fedisocial.federation.remote import store_actor
from fedisocial.social.accounts import find_local_actor
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Bookmark, Mute, Object
from tests.c2s_helpers import AS_PUBLIC, Person, another_token, person
from tests.conftest import free_port
from tests.instances import Instance, make_instance
from tests.loopback import serve
from tests.test_roundtrip import posted_uri, run

SEARCH = "/api/v2/search"
ACCOUNTS = "/api/v1/accounts/search"


@dataclass
class Site:
    """Our instance, served on a loopback port (remote servers fetch our instance actor's key)."""

    context: Context
    client: httpx.AsyncClient
    base_url: str

    async def actor(self, who: Person) -> Actor:
        return await find_local_actor(self.context.db, self.context.urls, who.name)

    async def post(self, who: Person, text: str, **options: Any) -> Object:
        return await self.context.outbox.post(await self.actor(who), text, **options)

    async def search(self, who: Person | None, **params: Any) -> httpx.Response:
        return await self.client.get(SEARCH, params=params, headers=who.auth if who else {})

    async def found(self, who: Person | None, **params: Any) -> dict[str, Any]:
        answer = await self.search(who, **params)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        assert set(body) == {"accounts", "statuses", "hashtags"}
        return body


@pytest.fixture
async def site(settings: Settings, db: Database, tmp_path: Path) -> AsyncIterator[Site]:
    port = free_port()
    ours = dataclasses.replace(settings, base_url=f"http://127.0.0.1:{port}", http_timeout=2.0)
    application: Starlette = create_app(ours, database=db)
    async with application.router.lifespan_context(application), serve(application, port) as url:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url=url) as client:
            yield Site(application.state.context, client, url)


@dataclass
class Remote:
    instance: Instance
    #: bob's public post and his followers-only one
    public: str
    private: str


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    """A second instance with bob, a public post of his and a followers-only one."""
    instance = make_instance(tmp_path_factory.mktemp("remote"))
    created = instance.cli("user", "create", "bob", "--password-stdin", stdin="a good password\n")
    assert created.returncode == 0, created.stderr
    public = posted_uri(run(instance, "post", "bob", "fetched by search #faraway"))
    private = posted_uri(run(instance, "post", "bob", "only followers", "--visibility",
                             "followers"))  # fmt: skip
    instance.start()
    try:
        yield Remote(instance, public, private)
    finally:
        instance.stop()


def ids(items: list[dict[str, Any]], key: str = "id") -> list[str]:
    return [item[key] for item in items]


# -- accounts ---------------------------------------------------------------------------------


async def test_accounts_are_found_by_username_and_display_name_prefix(site: Site) -> None:
    # Given alice, alberto (display name "Zed Alpha") and bob
    alice = await person(site.context, "alice")
    await person(site.context, "alberto")
    await person(site.context, "bob")
    zed = await site.actor(Person("alberto", ""))
    async with site.context.db.transaction() as session:
        (await session.get_one(Actor, zed.id)).name = "Zed Alpha"
    # When alice searches "al" and "alp"
    al = await site.client.get(ACCOUNTS, params={"q": "al"}, headers=alice.auth)
    alp = await site.client.get(ACCOUNTS, params={"q": "alp"}, headers=alice.auth)
    # Then usernames and display-name words match by prefix, the exact username first
    assert al.status_code == 200, al.text
    assert ids(al.json(), "acct") == ["alberto", "alice"]
    assert ids(alp.json(), "acct") == ["alberto"]
    exact = await site.client.get(ACCOUNTS, params={"q": "@alice"}, headers=alice.auth)
    assert ids(exact.json(), "acct")[0] == "alice"
    # and the instance actor is never an account to find
    netloc = site.context.urls.netloc
    assert (await site.found(alice, q=netloc.split(":")[0]))["accounts"] == []


async def test_account_search_puts_follows_first_and_filters_by_following(site: Site) -> None:
    alice = await person(site.context, "alice", "read write follow")
    for name in ("sam", "sally", "sue"):
        await person(site.context, name)
    await site.context.outbox.follow(await site.actor(alice), site.context.urls.actor("sue"))
    every = await site.client.get(ACCOUNTS, params={"q": "s"}, headers=alice.auth)
    assert ids(every.json(), "acct") == ["sue", "sally", "sam"]
    followed = await site.client.get(ACCOUNTS, params={"q": "s", "following": "true"},
                                     headers=alice.auth)  # fmt: skip
    assert ids(followed.json(), "acct") == ["sue"]
    v2 = await site.found(alice, q="s", type="accounts", following="1")
    assert ids(v2["accounts"], "acct") == ["sue"]


async def test_account_search_limit_offset_and_past_the_end(site: Site) -> None:
    alice = await person(site.context, "alice")
    for n in range(5):
        await person(site.context, f"tom{n}")
    first = await site.client.get(ACCOUNTS, params={"q": "tom", "limit": 2}, headers=alice.auth)
    second = await site.client.get(ACCOUNTS, params={"q": "tom", "limit": 2, "offset": 2},
                                   headers=alice.auth)  # fmt: skip
    past = await site.client.get(ACCOUNTS, params={"q": "tom", "offset": 5}, headers=alice.auth)
    assert ids(first.json(), "acct") == ["tom0", "tom1"]
    assert ids(second.json(), "acct") == ["tom2", "tom3"]
    assert past.json() == []
    assert (await site.client.get(ACCOUNTS, headers=alice.auth)).json() == []  # no q: nothing
    bad = await site.client.get(ACCOUNTS, params={"q": "tom", "limit": "many"},
                                headers=alice.auth)  # fmt: skip
    assert bad.status_code == 400 and "limit" in bad.json()["error"]


async def test_account_search_needs_a_user_with_read_accounts(site: Site) -> None:
    alice = await person(site.context, "alice", "write")
    anonymous = await site.client.get(ACCOUNTS, params={"q": "alice"})
    assert anonymous.status_code == 401 and "error" in anonymous.json()
    wrong = await site.client.get(ACCOUNTS, params={"q": "alice"}, headers=alice.auth)
    assert wrong.status_code == 403 and "read:accounts" in wrong.json()["error"]
    bad = await site.client.get(ACCOUNTS, params={"q": "alice"},
                                headers={"Authorization": "Bearer nope"})  # fmt: skip
    assert bad.status_code == 401
    granular = await another_token(site.context, alice, "read:accounts")
    assert (await site.client.get(ACCOUNTS, params={"q": "alice"},
                                  headers=granular.auth)).status_code == 200  # fmt: skip


async def test_a_handle_without_resolve_finds_only_accounts_we_know(site: Site) -> None:
    alice = await person(site.context, "alice")
    # a handle on a host nobody answers at: without resolve, nothing is fetched
    body = await site.found(alice, q="@nobody@127.0.0.1:9")
    assert body == {"accounts": [], "statuses": [], "hashtags": []}
    # our own handle is ours
    mine = await site.found(alice, q=f"alice@{site.context.urls.netloc}")
    assert ids(mine["accounts"], "acct") == ["alice"]


# -- v2 search: authorization and parameters --------------------------------------------------


async def test_v2_search_errors_are_mastodons(site: Site) -> None:
    alice = await person(site.context, "alice", "write")
    await person(site.context, "bob")
    missing = await site.search(None)
    assert missing.status_code == 400 and "q" in missing.json()["error"]
    blank = await site.search(None, q="  ")
    assert blank.status_code == 400
    resolve = await site.search(None, q="bob", resolve="true")
    assert resolve.status_code == 401 and "authentication" in resolve.json()["error"]
    paging = await site.search(None, q="bob", offset="1")
    assert paging.status_code == 401 and "pagination" in paging.json()["error"]
    wrong_scope = await site.search(alice, q="bob")
    assert wrong_scope.status_code == 403
    bad_token = await site.search(Person("x", "not-a-token"), q="bob")
    assert bad_token.status_code == 401
    search_scope = await another_token(site.context, alice, "read:search")
    assert (await site.search(search_scope, q="bob")).status_code == 200
    bad_limit = await site.search(search_scope, q="bob", limit="ten")
    assert bad_limit.status_code == 400


async def test_anonymous_search_finds_accounts_and_tags_but_no_statuses(site: Site) -> None:
    alice = await person(site.context, "alice")
    await site.post(alice, "hello #gardening friends")
    body = await site.found(None, q="ali")
    assert ids(body["accounts"], "acct") == ["alice"]
    assert (await site.found(None, q="al"))["accounts"] == []  # under three characters
    tags = await site.found(None, q="garden")
    assert tags["hashtags"] == [
        {"name": "gardening", "url": site.context.urls.hashtag("gardening"), "history": []}
    ]
    assert (await site.found(None, q="hello"))["statuses"] == []
    assert (await site.found(alice, q="hello"))["statuses"] != []


async def test_type_limits_results_to_one_kind(site: Site) -> None:
    alice = await person(site.context, "alice")
    await site.post(alice, "alice writes about #alice")
    every = await site.found(alice, q="alice")
    assert every["accounts"] and every["statuses"] and every["hashtags"]
    only = await site.found(alice, q="alice", type="hashtags")
    assert not only["accounts"] and not only["statuses"] and only["hashtags"]
    assert await site.found(alice, q="alice", type="nonsense") == {
        "accounts": [], "statuses": [], "hashtags": []}  # fmt: skip
    assert (await site.found(alice, q="alice", limit=0))["accounts"] == []


# -- statuses ---------------------------------------------------------------------------------


async def test_statuses_are_the_viewers_own_and_public_posts_of_indexable_authors(
    site: Site,
) -> None:
    alice, bob = await person(site.context, "alice"), await person(site.context, "bob")
    public = await site.post(alice, "The quick brown fox jumps to https://example.com/den")
    await site.post(alice, "slow turtles only")
    unlisted = await site.post(alice, "a quick unlisted fox", visibility="unlisted")
    found = await site.found(bob, q="quick FOX")
    assert ids(found["statuses"]) == [str(public.id)]  # unlisted: not in the public index
    assert found["statuses"][0]["account"]["acct"] == "alice"
    own = await site.found(alice, q="quick fox")
    assert ids(own["statuses"]) == [str(unlisted.id), str(public.id)]
    # markup is not text: the link's rel="noopener" is not a word of it
    assert (await site.found(bob, q="noopener"))["statuses"] == []
    assert ids((await site.found(bob, q="example.com/den"))["statuses"]) == [str(public.id)]
    # an author who is not indexable is found only by those who interacted
    async with site.context.db.transaction() as session:
        (await session.get_one(Actor, (await site.actor(alice)).id)).indexable = False
    assert (await site.found(bob, q="quick"))["statuses"] == []
    await site.context.outbox.like(await site.actor(bob), public.uri)
    assert ids((await site.found(bob, q="quick"))["statuses"]) == [str(public.id)]


async def test_a_private_post_is_never_found_by_someone_who_may_not_read_it(site: Site) -> None:
    alice = await person(site.context, "alice")
    bob, carol = await person(site.context, "bob"), await person(site.context, "carol")
    dave = await person(site.context, "dave")
    await site.context.outbox.follow(await site.actor(bob), site.context.urls.actor("alice"))
    secret = await site.post(alice, "the secret recipe", visibility="followers")
    direct = await site.post(alice, "@carol the secret handshake", visibility="direct")
    # carol (not a follower) never finds the followers-only post, even after trying to engage
    assert ids((await site.found(carol, q="secret"))["statuses"]) == [str(direct.id)]
    async with site.context.db.transaction() as session:
        session.add(Bookmark(owner_id=(await site.actor(carol)).id, object_id=secret.id))
    assert ids((await site.found(carol, q="secret"))["statuses"]) == [str(direct.id)]
    # dave, addressed by neither, finds nothing; alice finds both
    assert (await site.found(dave, q="secret"))["statuses"] == []
    assert ids((await site.found(alice, q="secret"))["statuses"]) == [
        str(direct.id), str(secret.id)]  # fmt: skip
    # bob may read the followers-only post: found once he bookmarked it (Mastodon's index)
    assert (await site.found(bob, q="recipe"))["statuses"] == []
    async with site.context.db.transaction() as session:
        session.add(Bookmark(owner_id=(await site.actor(bob)).id, object_id=secret.id))
    assert ids((await site.found(bob, q="recipe"))["statuses"]) == [str(secret.id)]
    # and its hashtags and URL are no more visible than the post
    await site.post(alice, "#hidden things", visibility="followers")
    assert (await site.found(dave, q="hidden"))["hashtags"] == []
    assert (await site.found(alice, q="hidden"))["hashtags"] != []
    resolved = await site.found(dave, q=secret.uri, resolve="true")
    assert resolved["statuses"] == []


async def test_remote_authors_are_indexable_only_when_they_say_so(site: Site) -> None:
    # Given two remote authors, one whose actor says "indexable": true, each with a public post
    alice = await person(site.context, "alice")
    for name, indexable in (("quiet", None), ("loud", True)):
        uri = f"https://remote.example/users/{name}"
        doc = {
            "id": uri,
            "type": "Person",
            "preferredUsername": name,
            "inbox": f"{uri}/inbox",
            "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": "x"},
        }
        await store_actor(site.context.db, {**doc, "indexable": indexable} if indexable else doc)
        async with site.context.db.transaction() as session:
            session.add(Object(uri=f"{uri}/notes/1", type="Note", actor_uri=uri, data={
                "id": f"{uri}/notes/1", "type": "Note", "attributedTo": uri, "to": [AS_PUBLIC],
                "content": f"<p>remote words from {name}</p>"}))  # fmt: skip
    # Then a search finds only the post of the one who opted in (Mastodon's default is no)
    found = await site.found(alice, q="remote words")
    assert [s["account"]["username"] for s in found["statuses"]] == ["loud"]
    assert {
        a["username"]: a["indexable"]
        for a in (await site.found(alice, q="@quiet@remote.example"))["accounts"]
    } == {"quiet": False}


async def test_blocked_and_muted_authors_are_not_found(site: Site) -> None:
    alice, bob = await person(site.context, "alice"), await person(site.context, "bob")
    carol = await person(site.context, "carol")
    await site.post(alice, "blockable words")
    await site.context.outbox.block(await site.actor(alice), site.context.urls.actor("bob"))
    assert (await site.found(bob, q="blockable"))["statuses"] == []
    assert (await site.found(bob, q="alice"))["accounts"] == []
    assert (await site.found(carol, q="blockable"))["statuses"] != []
    async with site.context.db.transaction() as session:
        session.add(Mute(owner_id=(await site.actor(carol)).id,
                         muted_uri=site.context.urls.actor("alice")))  # fmt: skip
    assert (await site.found(carol, q="blockable"))["statuses"] == []


async def test_statuses_page_by_offset_and_ids_and_filter_by_account(site: Site) -> None:
    alice, bob = await person(site.context, "alice"), await person(site.context, "bob")
    posts = [await site.post(alice, f"numbered note {n}") for n in range(4)]
    theirs = await site.post(bob, "numbered note by bob")
    newest_first = [str(p.id) for p in (theirs, *reversed(posts))]
    every = await site.found(alice, q="numbered", type="statuses")
    assert ids(every["statuses"]) == newest_first
    page = await site.found(alice, q="numbered", type="statuses", limit=2, offset=2)
    assert ids(page["statuses"]) == newest_first[2:4]
    assert (await site.found(alice, q="numbered", type="statuses", offset=9))["statuses"] == []
    # offset counts only with a type, as in Mastodon
    assert ids((await site.found(alice, q="numbered", offset=2))["statuses"]) == newest_first
    older = await site.found(alice, q="numbered", max_id=posts[2].id)
    assert ids(older["statuses"]) == [str(posts[1].id), str(posts[0].id)]
    newer = await site.found(alice, q="numbered", min_id=posts[2].id)
    assert ids(newer["statuses"]) == [str(theirs.id), str(posts[3].id)]
    bob_id = (await site.actor(bob)).id
    assert ids((await site.found(alice, q="numbered", account_id=bob_id))["statuses"]) == [
        str(theirs.id)]  # fmt: skip
    assert (await site.found(alice, q="numbered", account_id=999999))["statuses"] == []


async def test_a_lone_tag_or_handle_searches_no_statuses(site: Site) -> None:
    alice = await person(site.context, "alice")
    await site.post(alice, "#solo and @alice")
    assert (await site.found(alice, q="#solo"))["statuses"] == []
    assert ids((await site.found(alice, q="#solo"))["hashtags"], "name") == ["solo"]
    assert (await site.found(alice, q="#solo and"))["statuses"] != []


# -- hashtags ---------------------------------------------------------------------------------


async def test_hashtags_by_prefix_exact_first_then_most_used(site: Site) -> None:
    alice = await person(site.context, "alice")
    await site.post(alice, "#CatsOfMastodon #cat")
    await site.post(alice, "#catsofmastodon again")
    await site.post(alice, "#caterpillar #dog")
    found = await site.found(alice, q="#cat")
    assert ids(found["hashtags"], "name") == ["cat", "catsofmastodon", "caterpillar"]
    assert ids((await site.found(alice, q="cat", type="hashtags", limit=1, offset=1))[
        "hashtags"], "name") == ["catsofmastodon"]  # fmt: skip
    assert (await site.found(alice, q="cat", type="hashtags", offset=3))["hashtags"] == []
    assert (await site.found(alice, q="zebra"))["hashtags"] == []


# -- resolving URLs ---------------------------------------------------------------------------


async def test_resolving_our_own_urls(site: Site) -> None:
    alice, bob = await person(site.context, "alice"), await person(site.context, "bob")
    post = await site.post(alice, "resolve me")
    status = await site.found(bob, q=post.uri, resolve="true")
    assert ids(status["statuses"]) == [str(post.id)] and status["accounts"] == []
    profile = await site.found(bob, q=site.context.urls.profile("alice"), resolve="true")
    assert ids(profile["accounts"], "acct") == ["alice"]
    actor = await site.found(bob, q=site.context.urls.actor("alice"), resolve="1")
    assert ids(actor["accounts"], "acct") == ["alice"]
    # the kind asked for must match, and offset gives nothing
    assert (await site.found(bob, q=post.uri, resolve="true", type="accounts"))["statuses"] == []
    assert (await site.found(bob, q=post.uri, resolve="true", type="statuses", offset=1))[
        "statuses"] == []  # fmt: skip
    # without resolve a URL is plain text
    assert (await site.found(bob, q=post.uri))["statuses"] == []
    await site.context.outbox.delete(await site.actor(alice), post.uri)
    assert (await site.found(bob, q=post.uri, resolve="true"))["statuses"] == []
    missing = f"{site.context.urls.actor('alice')}/statuses/123"
    assert await site.found(bob, q=missing, resolve="true") == {
        "accounts": [], "statuses": [], "hashtags": []}  # fmt: skip


async def test_a_failing_remote_gives_an_empty_result(site: Site) -> None:
    alice = await person(site.context, "alice")
    closed = f"http://127.0.0.1:{free_port()}"
    assert await site.found(alice, q=f"{closed}/users/x", resolve="true") == {
        "accounts": [], "statuses": [], "hashtags": []}  # fmt: skip
    assert (await site.found(alice, q=f"@x@127.0.0.1:{free_port()}", resolve="true"))[
        "accounts"] == []  # fmt: skip
    accounts = await site.client.get(ACCOUNTS, headers=alice.auth, params={
        "q": f"x@127.0.0.1:{free_port()}", "resolve": "true"})  # fmt: skip
    assert accounts.status_code == 200 and accounts.json() == []


async def test_a_stalling_remote_times_out_into_an_empty_result(site: Site) -> None:
    # Given a server that accepts connections and never answers
    handlers: list[asyncio.Task[Any]] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        await reader.read()  # until the client gives up and hangs up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    alice = await person(site.context, "alice")
    try:
        started = time.monotonic()
        # When alice resolves a URL there and a handle there
        url = await site.found(alice, q=f"http://127.0.0.1:{port}/notes/1", resolve="true")
        handle = await site.found(alice, q=f"@x@127.0.0.1:{port}", resolve="true")
        # Then both are empty once the client's timeout (2 s here) has passed, not later
        assert url["statuses"] == [] and handle["accounts"] == []
        assert time.monotonic() - started < 10
    finally:
        server.close()
        if handlers:
            await asyncio.wait(handlers, timeout=5)
        for task in handlers:
            task.cancel()
        await server.wait_closed()


async def test_resolving_a_remote_account_and_post(site: Site, remote: Remote) -> None:
    alice = await person(site.context, "alice", "read write follow")
    instance = remote.instance
    handle = f"@bob@{instance.netloc}"
    # Given bob on the other instance, unknown here: without resolve nothing is found
    assert (await site.found(alice, q=handle))["accounts"] == []
    # When alice resolves his handle (WebFinger, then a signed fetch)
    found = await site.found(alice, q=handle, resolve="true")
    # Then his account is there, with its remote acct, and known from now on
    (bob,) = found["accounts"]
    assert (
        bob["acct"] == f"bob@{instance.netloc}" and bob["uri"] == f"{instance.base_url}/users/bob"
    )
    assert ids((await site.found(alice, q=handle))["accounts"]) == [bob["id"]]
    again = await site.client.get(ACCOUNTS, params={"q": f"bob@{instance.netloc}"},
                                  headers=alice.auth)  # fmt: skip
    assert ids(again.json()) == [bob["id"]]
    by_url = await site.found(alice, q=f"{instance.base_url}/@bob", resolve="true")
    assert ids(by_url["accounts"]) == [bob["id"]]

    # When alice resolves the URL of one of his posts
    uri = remote.public
    post = await site.found(alice, q=uri, resolve="true")
    # Then it is stored as a remote post with an id of ours, which she can act on
    (status,) = post["statuses"]
    assert status["uri"] == uri and status["account"]["id"] == bob["id"]
    assert "fetched by search" in status["content"]
    async with site.context.db.session() as session:
        row = await session.get_one(Object, int(status["id"]))
    assert row.uri == uri and not row.local
    await site.context.outbox.like(await site.actor(alice), uri)
    assert (await site.found(alice, q=uri, resolve="true"))["statuses"][0]["favourited"] is True
    # and, bob being indexable on his server, anyone here finds it by its words now
    carol = await person(site.context, "carol")
    assert ids((await site.found(carol, q="fetched by search"))["statuses"]) == [status["id"]]
    assert ids((await site.found(carol, q="faraway"))["hashtags"], "name") == ["faraway"]

    # A followers-only post of his is not for us: the other server refuses, we show nothing
    assert (await site.found(alice, q=remote.private, resolve="true"))["statuses"] == []
    # A URL there that is no post, a page that is no AS2 document, a missing post: nothing
    for url in (f"{instance.base_url}/users/bob/statuses/1", f"{instance.base_url}/about",
                f"{instance.base_url}/users/bob/followers"):  # fmt: skip
        answer = await site.search(alice, q=url, resolve="true")
        assert answer.status_code == 200 and answer.json()["statuses"] == [], url
