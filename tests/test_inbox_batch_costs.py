"""What a batch of received activities costs the database: the reads and transactions it
makes, and the plans of the lookups a busy feed table makes slow.

Counted in statements and transactions, never in time: a batch of boosts of posts we
store reads those posts once, a boost does not rewrite the post it shares, a batch
commits early only after a fair share of its activities, and the feed entries of a post
are found by an index, not by reading every feed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fedisocial.app import Context, job_handlers
from fedisocial.federation import handlers
from fedisocial.federation import inbox as inbox_module
from fedisocial.federation.inbox import PROCESS
from fedisocial.federation.remote import store_actor
from fedisocial.jobs import JobKind, Worker
from fedisocial.store import db as db_module
from fedisocial.store.models import Actor, Engagement, Job, Object, TimelineEntry
from tests import test_inbox
from tests.conftest import query_plan, sql_sent
from tests.loopback import serve
from tests.test_inbox import (
    BOB,
    CAROL,
    activity,
    actor_doc,
    count,
    deliver,
    follows,
    note,
    object_row,
    remote_key,
)

alice = test_inbox.alice
ALICE = test_inbox.BASE + "/users/alice"


@contextmanager
def _transactions(context: Context) -> Iterator[list[int]]:
    """One entry per write transaction begun while the block runs."""
    begun: list[int] = []

    def count_begin(_conn: Any) -> None:
        begun.append(1)

    engine = context.db.write_engine.sync_engine
    event.listen(engine, "begin", count_begin)
    try:
        yield begun
    finally:
        event.remove(engine, "begin", count_begin)


async def _in_one_batch(context: Context, size: int) -> None:
    kind = job_handlers(context)[PROCESS]
    together = JobKind(kind.run, kind.retry, run_batch=kind.run_batch, batch_size=size)
    await Worker(context.queue, {PROCESS: together}).run_until_idle()


async def _stored_posts(client: httpx.AsyncClient, context: Context, n: int) -> list[str]:
    """``n`` posts of carol's, received and stored (a batch of their own)."""
    await store_actor(context.db, actor_doc(CAROL, remote_key("carol")))
    posts = [f"{CAROL}/statuses/{i}" for i in range(n)]
    for i, uri in enumerate(posts):
        sent = activity("Create", note(uri, CAROL), CAROL, f"post-{i}")
        response = await deliver(client, sent, signer=CAROL, key=remote_key("carol"))
        assert response.status_code == 202, response.text
    await _in_one_batch(context, n)
    return posts


async def test_a_batch_of_boosts_reads_the_posts_it_shares_once(
    client: httpx.AsyncClient, context: Context, alice: Actor
) -> None:
    posts = await _stored_posts(client, context, 30)
    await store_actor(context.db, actor_doc(BOB, remote_key()))
    await follows(context, ALICE, BOB)
    begun: dict[int, int] = {}
    for first, last in ((0, 1), (1, len(posts))):  # one boost, then all the others at once
        for i in range(first, last):  # bob boosts carol's posts (on her host: not trusted)
            response = await deliver(client, activity("Announce", posts[i], BOB, f"boost-{i}"))
            assert response.status_code == 202, response.text
        with sql_sent(context.db) as sent, _transactions(context) as transactions:
            await _in_one_batch(context, len(posts))
        begun[last - first] = len(transactions)
        one_by_one = [s for s, _ in sent if s.startswith("SELECT") and "WHERE objects.uri = ?" in s]
        assert one_by_one == []  # read together, before the boosts were prepared and applied

    assert await count(context, Engagement, Engagement.kind == "announce") == len(posts)
    assert begun[len(posts) - 1] == begun[1]  # 29 boosts cost the transactions of one


async def test_a_boost_does_not_edit_the_post_it_shares(
    client: httpx.AsyncClient, context: Context, alice: Actor
) -> None:
    (uri,) = await _stored_posts(client, context, 1)
    # carol boosts her own post, embedding another text of it: Mastodon keeps the post
    # as it stored it (an Update edits a post, a boost shares it)
    changed = note(uri, CAROL, content="<p>not what she posted</p>")
    sent = activity("Announce", changed, CAROL, "self-boost")
    response = await deliver(client, sent, signer=CAROL, key=remote_key("carol"))
    assert response.status_code == 202, response.text
    await _in_one_batch(context, 1)

    row = await object_row(context, uri)
    assert row is not None
    assert row.data["content"] == "<p>hello</p>"
    assert await count(context, Engagement, Engagement.kind == "announce") == 1


async def test_a_slow_batch_still_applies_a_fair_share_per_transaction(
    client: httpx.AsyncClient, context: Context, alice: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a busy process makes every statement wait: the batch's time is up at once
    monkeypatch.setattr(inbox_module, "_APPLY_SECONDS", 0.0)
    await store_actor(context.db, actor_doc(BOB, remote_key()))
    begun: dict[int, int] = {}
    for first, last in ((0, 1), (1, 61)):  # one post, then sixty at once
        for i in range(first, last):
            sent = activity("Create", note(f"{BOB}/statuses/{i}"), BOB, f"create-{i}")
            response = await deliver(client, sent)
            assert response.status_code == 202, response.text
        with _transactions(context) as transactions:
            await _in_one_batch(context, 60)
        begun[last - first] = len(transactions)

    assert await count(context, Object, Object.type == "Note", Object.local.is_(False)) == 61
    # committing early after every activity would take 60 transactions and read the rest
    # of the batch up front each time; 25 at least per transaction: 3, two more than one
    assert begun[60] == begun[1] + 2


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_a_posts_feed_entries_are_found_by_index(
    client: httpx.AsyncClient, context: Context, alice: Actor
) -> None:
    """The lookups of a post's feed entries (a boost's fall-off check, a delete) read an
    index of entries by post, not every entry of every feed (SQLite's plans do not depend
    on table statistics; PostgreSQL picks a sequential scan for tables this small)."""
    await follows(context, ALICE, CAROL)
    (uri,) = await _stored_posts(client, context, 1)
    await store_actor(context.db, actor_doc(BOB, remote_key()))
    await follows(context, ALICE, BOB)
    with sql_sent(context.db) as sent:
        response = await deliver(client, activity("Announce", uri, BOB, "boost"))
        assert response.status_code == 202, response.text
        await _in_one_batch(context, 1)
    # alice's feed has carol's post: bob's boost of it is left out of her feed
    assert await count(context, TimelineEntry) == 1

    lookups = [s for s, _ in sent if "timeline_entries" in s and "objects.object_uri IN" in s]
    assert len(lookups) == 1, sent
    for statement in (lookups[0], "DELETE FROM timeline_entries WHERE object_id = ?"):
        plan = await query_plan(context.db, statement, (1,) * statement.count("?"))
        assert "ix_timeline_object" in plan, plan
        assert "SCAN timeline_entries" not in plan and "SCAN te" not in plan, plan


@pytest.mark.parametrize("liked_first", [False, True], ids=["boost", "like-then-boost"])
async def test_a_boost_whose_host_is_down_waits_for_its_retry_alone(
    client: httpx.AsyncClient, context: Context, alice: Actor, monkeypatch: pytest.MonkeyPatch,
    liked_first: bool,
) -> None:  # fmt: skip
    """A boost of a post on a host that fails (503) is not fetched a second time in its
    batch when nothing before it could have stored that post (a like of it stores no
    post): it waits for its retry while the batch's other activities are applied, in one
    transaction (a slow host is waited for once)."""
    asked: list[str] = []
    applied: list[int] = []
    apply = context.inbox._apply

    async def counted(ready: Any, *args: Any, **kwargs: Any) -> int:
        applied.append(len(ready))
        return await apply(ready, *args, **kwargs)

    monkeypatch.setattr(context.inbox, "_apply", counted)

    async def down(request: Request) -> Response:
        asked.append(request.url.path)
        return Response("try later", status_code=503)

    await store_actor(context.db, actor_doc(BOB, remote_key()))
    async with serve(Starlette(routes=[Route("/{path:path}", down)])) as origin:
        post = f"{origin}/statuses/1"
        sent = [activity("Create", note(f"{BOB}/statuses/{i}"), BOB, f"post-{i}") for i in range(3)]
        sent[1:1] = [activity("Like", post, BOB, "like")] if liked_first else []
        sent.insert(len(sent) - 1, activity("Announce", post, BOB, "boost"))
        for one in sent:
            response = await deliver(client, one)
            assert response.status_code == 202, response.text
        await _in_one_batch(context, len(sent))

    assert asked == ["/statuses/1"]  # once: nothing before it could store that post
    assert applied == [len(sent) - 1]  # all but the boost, together
    assert await count(context, Object, Object.type == "Note", Object.local.is_(False)) == 3
    assert await count(context, Job, Job.kind == PROCESS, Job.status == "done") == len(sent) - 1
    retried = await count(context, Job, Job.kind == PROCESS, Job.status == "queued",
                          Job.last_error.is_not(None))  # fmt: skip
    assert retried == 1


async def test_a_batch_cleans_its_posts_before_its_transaction(
    client: httpx.AsyncClient, context: Context, alice: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given three posts with HTML to clean, and a note of whether a write transaction was open
    # each time a post was cleaned (on SQLite it holds the file's one write lock)
    cleaned_in_transaction: list[bool] = []
    clean = handlers.clean_remote_post

    def noting(post: dict[str, Any], author: str) -> dict[str, Any]:
        cleaned_in_transaction.append(db_module._writing.get())
        return clean(post, author)

    monkeypatch.setattr(handlers, "clean_remote_post", noting)
    await store_actor(context.db, actor_doc(BOB, remote_key()))
    for i in range(3):
        post = {**note(f"{BOB}/statuses/{i}"), "content": f"<p>{i}<script>x()</script></p>"}
        response = await deliver(client, activity("Create", post, BOB, f"create-{i}"))
        assert response.status_code == 202, response.text
    # When they are processed in one batch
    await _in_one_batch(context, 3)
    # Then each was cleaned once, outside the transaction, and stored clean
    assert cleaned_in_transaction == [False, False, False]
    row = await object_row(context, f"{BOB}/statuses/2")
    assert row is not None and row.data["content"] == "<p>2</p>"


async def test_on_sqlite_a_worker_runs_one_batch_at_a_time(
    client: httpx.AsyncClient, context: Context, alice: Actor
) -> None:
    # Given twelve posts received
    await store_actor(context.db, actor_doc(BOB, remote_key()))
    for i in range(12):
        response = await deliver(client, activity("Create", note(f"{BOB}/statuses/{i}"), BOB,
                                                  f"create-{i}"))  # fmt: skip
        assert response.status_code == 202, response.text
    # When the worker the app configures processes them, three to a batch
    kind = job_handlers(context)[PROCESS]
    batched = JobKind(kind.run, kind.retry, run_batch=kind.run_batch, batch_size=3,
                      batches_at_once=kind.batches_at_once)  # fmt: skip
    await Worker(context.queue, {PROCESS: batched}).run_until_idle()
    # Then all are stored, one batch at a time on SQLite (the next batch's preparing would
    # run while one holds the file's write lock), two at once on PostgreSQL
    assert await count(context, Object, Object.type == "Note", Object.local.is_(False)) == 12
    assert kind.batches_at_once == (1 if context.db.is_sqlite else 2)
