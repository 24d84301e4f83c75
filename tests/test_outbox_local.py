"""Local actions the command line offers, on SQLite and PostgreSQL: local targets never go
to the network, no self-block, unblock, accounts that approve their followers."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from fedisocial.app import Context
from fedisocial.errors import BadRequest, NotFound
from fedisocial.social.accounts import create_user, find_local_actor, render_actor, set_locked
from fedisocial.store.models import Actor, Block, Follow, Job, Object


async def local_user(context: Context, name: str) -> Actor:
    await create_user(context.db, context.urls, name, "long enough password")
    return await find_local_actor(context.db, context.urls, name)


async def count(context: Context, model: type[object]) -> int:
    async with context.db.session() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


@pytest.mark.parametrize("target", ["garbage", "@garbage", "@garbage@127.0.0.1:8000",
                                    "http://127.0.0.1:8000/users/garbage"])  # fmt: skip
async def test_an_unknown_local_account_is_not_found_without_the_network(
    context: Context, target: str
) -> None:
    # Given alice (the instance's HTTP server is not even running)
    alice = await local_user(context, "alice")
    # When she follows an account of her own instance that does not exist
    with pytest.raises(NotFound) as raised:
        await context.outbox.follow(alice, target)
    # Then she hears that no such account exists, and nothing is stored
    assert raised.value.message == "no user called 'garbage' on this instance"
    assert await count(context, Follow) == 0


async def test_a_reply_to_a_missing_local_post_says_so(context: Context) -> None:
    alice = await local_user(context, "alice")
    missing = context.urls.note("alice", "nothere")
    with pytest.raises(NotFound) as raised:
        await context.outbox.post(alice, "an answer", in_reply_to=missing)
    assert raised.value.message == f"no post {missing} to reply to"
    async with context.db.session() as session:
        assert await session.scalar(select(func.count()).where(Object.type == "Note")) == 0


async def test_nobody_blocks_themselves(context: Context) -> None:
    alice = await local_user(context, "alice")
    with pytest.raises(BadRequest) as raised:
        await context.outbox.block(alice, "alice")
    assert raised.value.message == "you cannot block yourself"
    assert await count(context, Block) == 0


async def test_unblock_undoes_the_block(context: Context) -> None:
    # Given alice blocks bob
    alice, bob = await local_user(context, "alice"), await local_user(context, "bob")
    block = await context.outbox.block(alice, "bob")
    # When she unblocks him
    undo = await context.outbox.unblock(alice, "@bob")
    # Then the block is gone and bob is sent an Undo of that very Block
    assert await count(context, Block) == 0
    assert undo.type == "Undo" and undo.data["object"]["id"] == block.uri
    assert undo.data["object"]["type"] == "Block" and undo.data["object"]["object"] == bob.uri
    assert undo.data["to"] == [bob.uri]
    # And unblocking again says there is no block
    with pytest.raises(NotFound) as raised:
        await context.outbox.unblock(alice, "bob")
    assert raised.value.message == f"not blocking {bob.uri}"


async def test_a_locked_account_answers_follow_requests(context: Context) -> None:
    # Given alice makes her account approve its followers
    alice, bob = await local_user(context, "alice"), await local_user(context, "bob")
    await set_locked(context.db, context.urls, "alice", locked=True)
    alice = await find_local_actor(context.db, context.urls, "alice")
    # Then her actor says so
    assert render_actor(alice)["manuallyApprovesFollowers"] is True
    # When bob asks to follow her, the request waits for her answer
    request = await context.outbox.follow(bob, "alice")
    async with context.db.session() as session:
        follow = (await session.scalars(select(Follow))).one()
    assert follow.state == "pending" and follow.activity_uri == request.uri
    # And when she accepts it (by its id), he follows her
    await context.outbox.accept_follow(alice, request.uri)
    async with context.db.session() as session:
        assert (await session.scalars(select(Follow))).one().state == "accepted"
    # And unlocked again, the actor says so
    await set_locked(context.db, context.urls, "alice", locked=False)
    alice = await find_local_actor(context.db, context.urls, "alice")
    assert render_actor(alice)["manuallyApprovesFollowers"] is False


async def test_set_locked_names_a_missing_account(context: Context) -> None:
    with pytest.raises(NotFound):
        await set_locked(context.db, context.urls, "nobody", locked=True)


async def test_followers_are_told_when_an_account_starts_approving_followers(
    context: Context,
) -> None:
    # Given alice, followed by bob
    alice, bob = await local_user(context, "alice"), await local_user(context, "bob")
    await context.outbox.follow(bob, "alice")
    # When she makes her account approve its followers and her profile update is sent
    await set_locked(context.db, context.urls, "alice", locked=True)
    update = await context.outbox.update_profile(
        await find_local_actor(context.db, context.urls, "alice")
    )
    # Then an Update of her actor, saying so, is queued for her followers
    assert update.data["type"] == "Update" and update.data["cc"] == [alice.followers_url]
    assert update.data["object"]["id"] == alice.uri
    assert update.data["object"]["manuallyApprovesFollowers"] is True
    assert "@context" not in update.data["object"]
    async with context.db.session() as session:
        jobs = list(await session.scalars(select(Job).where(Job.kind == "fanout")))
    sent = [job.payload["recipients"] for job in jobs if job.payload["activity"] == update.uri]
    assert sent == [[alice.followers_url]]
