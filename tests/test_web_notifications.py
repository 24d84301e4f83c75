"""The notifications page as a browser uses it: what each notification says, groups,
follow requests answered from the page, the unread badge and paging (no script)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update
from starlette.applications import Starlette

from fedisocial.app import Context
from fedisocial.social import markers, notifications
from fedisocial.social.accounts import create_user, find_local_actor
from fedisocial.store.models import Actor, Follow
from tests.oauthflow import PASSWORD
from tests.webapp import csrf_of, signed_in_browser

pytestmark = pytest.mark.parametrize("db", ["sqlite"], indirect=True)


async def _actor(context: Context, name: str, *, display: str = "") -> Actor:
    try:
        return await find_local_actor(context.db, context.urls, name)
    except Exception:
        await create_user(context.db, context.urls, name, PASSWORD, display_name=display)
        return await find_local_actor(context.db, context.urls, name)


def _entries(html: str) -> list[tuple[str, str]]:
    """(type, text) of each entry, the text without tags and with spaces squeezed."""
    found = re.findall(r'<article class="notification[^"]*"[^>]*data-type="([^"]+)"'
                       r'.*?class="notification-text">(.*?)</span>', html, re.S)  # fmt: skip
    return [(kind, " ".join(re.sub(r"<[^>]+>", " ", text).split())) for kind, text in found]


def _badge(html: str) -> str | None:
    found = re.search(r'<span class="badge" data-unread>(\d+)', html)
    return found.group(1) if found else None


async def test_each_kind_of_notification_says_what_happened_and_reading_clears_the_badge(
    app: Starlette, context: Context
) -> None:
    async with signed_in_browser(app, context, "alice") as alice:
        me = await _actor(context, "alice")
        bob = await _actor(context, "bob", display="Bob B")
        carol = await _actor(context, "carol", display="Carol")
        dave = await _actor(context, "dave", display="Dave")
        outbox = context.outbox
        # Given a post of alice's that bob, carol and dave like, bob boosts, and bob answers
        post = await outbox.post(me, "Alice's garden post")
        for who in (bob, carol, dave):
            await outbox.like(who, post.uri)
        await outbox.boost(bob, post.uri)
        await outbox.post(bob, "@alice lovely garden", in_reply_to=post.uri)
        await outbox.post(carol, "hello @alice, are you there?")
        await outbox.follow(dave, me.uri)
        # and bob edits a post alice boosted
        bobs = await outbox.post(bob, "Bob's first take")
        await outbox.boost(me, bobs.uri)
        await outbox.edit(bob, bobs.uri, "Bob's second take")

        # When alice opens the notifications page
        home = await alice.get("/")
        assert _badge(home.text) == "8"  # notifications, not groups
        page = await alice.get("/notifications")
        assert page.status_code == 200
        entries = _entries(page.text)
        # Then each is there once, newest first, saying what happened in words
        assert entries == [
            ("update", "Bob B edited a post you interacted with"),
            ("follow", "Dave followed you"),
            ("mention", "Carol mentioned you"),
            ("mention", "Bob B replied to your post"),
            ("reblog", "Bob B boosted your post"),
            ("favourite", "Dave and 2 others liked your post"),
        ], entries
        text = page.text
        assert "Bob&#39;s second take" in text  # the edited post, as it is now
        assert "lovely garden" in text and "are you there?" in text
        assert text.count("Alice&#39;s garden post") == 2  # excerpts of the like and the boost
        assert f'href="/statuses/{post.id}"' in text
        assert 'href="/@dave"' in text and 'href="/@carol"' in text
        assert re.search(r'<time datetime="[0-9T:-]+Z"[^>]*data-relative>', text)
        assert text.count("notification-new") == 6
        # and the unread badge is gone, on this page and the next
        assert _badge(text) is None
        assert _badge((await alice.get("/")).text) is None
        assert await notifications.unread_count(context.db, me, limit=40) == 0
        (marker,) = await markers.read(context.db, me.id, ["notifications"])
        again = await alice.get("/notifications")
        assert "notification-new" not in again.text
        assert (await markers.read(context.db, me.id, ["notifications"]))[0].version == (
            marker.version
        )

        # The Mentions tab lists only mentions and replies, and does not move the marker
        await outbox.like(carol, bobs.uri)  # (not alice's: she is not told)
        await outbox.boost(carol, post.uri)
        mentions = await alice.get("/notifications?filter=mentions")
        assert [kind for kind, _ in _entries(mentions.text)] == ["mention", "mention"]
        assert 'aria-current="page">Mentions' in mentions.text
        assert _badge(mentions.text) == "1"
        bad = await alice.get("/notifications?filter=likes")
        assert bad.status_code == 400


async def test_a_follow_request_is_approved_or_rejected_from_the_page(
    app: Starlette, context: Context
) -> None:
    async with signed_in_browser(app, context, "alice") as alice:
        me = await _actor(context, "alice")
        async with context.db.transaction() as session:
            await session.execute(
                update(Actor).where(Actor.id == me.id).values(manually_approves_followers=True)
            )
        me = await _actor(context, "alice")
        bob = await _actor(context, "bob")
        carol = await _actor(context, "carol")
        await context.outbox.follow(bob, me.uri)
        await context.outbox.follow(carol, me.uri)
        page = await alice.get("/notifications")
        kinds = _entries(page.text)
        assert kinds == [("follow_request", "carol asked to follow you"),
                         ("follow_request", "bob asked to follow you")]  # fmt: skip
        approve = f'action="/notifications/requests/{bob.id}/authorize"'
        assert approve in page.text
        assert f'action="/notifications/requests/{carol.id}/reject"' in page.text
        csrf = csrf_of(page.text)

        # A forged form (no CSRF value) changes nothing
        forged = await alice.post(f"/notifications/requests/{bob.id}/authorize")
        assert forged.status_code == 403
        forged = await alice.post(f"/notifications/requests/{carol.id}/reject",
                                  data={"csrf_token": "not-it"})  # fmt: skip
        assert forged.status_code == 403
        assert await _state(context, bob, me) == "pending"

        # When alice approves bob and rejects carol
        done = await alice.post(f"/notifications/requests/{bob.id}/authorize",
                                data={"csrf_token": csrf})  # fmt: skip
        assert done.status_code == 303 and done.headers["location"] == "/notifications"
        answered = await alice.post(f"/notifications/requests/{carol.id}/reject",
                                    data={"csrf_token": csrf},
                                    headers={"Accept": "application/json"})  # fmt: skip
        assert answered.status_code == 200 and answered.json() == {"request": "answered"}
        # Then bob follows her, carol does not, and the page says so without buttons
        assert await _state(context, bob, me) == "accepted"
        assert await _state(context, carol, me) is None
        page = await alice.get("/notifications")
        assert "Approved: @bob follows you." in page.text
        assert "This request was answered or withdrawn." in page.text
        assert "/authorize" not in page.text
        # and a request that is no more cannot be answered again
        again = await alice.post(f"/notifications/requests/{carol.id}/authorize",
                                 data={"csrf_token": csrf})  # fmt: skip
        assert again.status_code == 404
        assert await _state(context, carol, me) is None


async def _state(context: Context, follower: Actor, followee: Actor) -> str | None:
    async with context.db.session() as session:
        row = await session.scalar(
            Follow.__table__.select()
            .with_only_columns(Follow.state)
            .where(Follow.follower_uri == follower.uri, Follow.followee_uri == followee.uri)
        )
    return None if row is None else str(row)


async def test_notifications_page_with_load_more_and_a_finished_image_links_to_the_composer(
    app: Starlette, context: Context
) -> None:
    async with signed_in_browser(app, context, "alice") as alice:
        me = await _actor(context, "alice")
        bob = await _actor(context, "bob")
        # Given an image alice asked for, made, and then 22 mentions of her
        async with context.db.transaction() as session:
            made = notifications.Notice(me.uri, notifications.GENERATION, me.uri, "generation:7",
                                        None, own=True)  # fmt: skip
            await notifications.record(session, [made])
        for n in range(22):
            await context.outbox.post(bob, f"@alice number {n}")
        # When she opens the page, 20 entries and a link to the next ones
        first = await alice.get("/notifications")
        assert len(_entries(first.text)) == 20
        more = re.search(r'href="(/notifications\?max_id=\d+)" data-load-more', first.text)
        assert more is not None
        # Then "Load more" brings the rest (as a piece of page for the script) and no more link
        rest = await alice.get(more.group(1) + "&fragment=1")
        assert "<html" not in rest.text and "data-load-more" not in rest.text
        entries = _entries(rest.text)
        assert entries[:2] == [("mention", "bob mentioned you")] * 2
        assert entries[-1] == (
            "fedisocial:generation",
            "Your image is ready. Open the composer to post it: it waits there with your drafts.",
        )
        assert 'href="/compose">Open the composer</a>' in rest.text
        # Paging on the Mentions tab keeps the tab, and an older page does not mark anything
        mentions = await alice.get("/notifications?filter=mentions")
        assert 'href="/notifications?filter=mentions&amp;max_id=' in mentions.text
        bad = await alice.get("/notifications?max_id=abc")
        assert bad.status_code == 400
    # Signed out, the page asks to sign in first
    async with signed_in_browser(app, context, "alice", create=False) as again:
        csrf = csrf_of((await again.get("/")).text)
        await again.post("/auth/sign_out", data={"csrf_token": csrf})
        gone = await again.get("/notifications", follow_redirects=False)
        assert gone.status_code == 303 and "next=%2Fnotifications" in gone.headers["location"]
