"""The settings pages in a browser: the profile (stored, federated, FEP-5e53 ``noai``), the
password, the sessions, the apps and the exports."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select, update
from starlette.applications import Starlette

from fedisocial.app import Context
from fedisocial.federation.remote import store_actor
from fedisocial.social import mutes
from fedisocial.social.relations import block
from fedisocial.store.models import Actor, Block, Follow, Job, Object, WebSession, utcnow
from tests.c2s_helpers import png
from tests.oauthflow import PASSWORD, Browser
from tests.test_inbox import actor_doc, remote_key
from tests.webapp import BASE, browser, csrf_of, signed_in_browser

SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"], indirect=True)
NEW_PASSWORD = "a longer secret 42"


async def alice_row(context: Context) -> Actor:
    async with context.db.session() as session:
        return (await session.scalars(select(Actor).where(Actor.username == "alice"))).one()


async def updates(context: Context) -> list[Object]:
    async with context.db.session() as session:
        return list(await session.scalars(select(Object).where(Object.type == "Update")))


def profile_form(csrf: str, **changes: str) -> dict[str, str]:
    form = {"csrf_token": csrf, "display_name": "Alice & <b>Bo</b>",
            "note": "I draw things.\nSee https://alice.example #art",
            "field_name_0": "Site", "field_value_0": "https://alice.example",
            "field_name_1": "Pronouns", "field_value_1": "she/her",
            "locked": "on", "indexable": "on", "noai": "on"}  # fmt: skip
    form.update(changes)
    return {k: v for k, v in form.items() if v != "off"}


@SQLITE_ONLY
async def test_the_profile_is_stored_and_federated_with_the_ai_opt_out(
    app: Starlette, context: Context
) -> None:
    async with signed_in_browser(app, context, "alice") as alice:
        # Given alice opens her settings from the menu
        page = await alice.get("/settings")
        assert page.status_code == 200 and 'aria-label="Settings"' in page.text
        assert 'href="/settings/profile" aria-current="page"' in page.text
        assert 'enctype="multipart/form-data"' in page.text and 'for="noai"' in page.text
        # When she saves her profile with a new avatar (a real PNG)
        files = {"avatar": ("me.png", png(120, 120, "red"), "image/png"),
                 "header": ("", b"", "application/octet-stream")}  # fmt: skip
        saved = await alice.post("/settings/profile", data=profile_form(csrf_of(page.text)),
                                 files=files)  # fmt: skip
        assert saved.status_code == 303 and saved.headers["location"] == "/settings/profile?saved=1"
        # Then it is stored: plain text rendered, the switches set, the avatar served
        actor = await alice_row(context)
        assert actor.name == "Alice & Bo"  # text only, escaped where shown
        assert actor.summary.startswith("<p>I draw things.<br")
        assert [f["name"] for f in actor.fields] == ["Site", "Pronouns"]
        assert actor.manually_approves_followers and actor.indexable and actor.noai
        assert not actor.discoverable
        assert actor.icon_url and actor.icon_url.startswith(f"{BASE}/media/")
        assert (await alice.get(actor.icon_url.removeprefix(BASE))).status_code == 200
        assert actor.image_url == context.urls.header("alice")  # none chosen: unchanged
        # and the page shows it again as the form edits it
        again = await alice.get("/settings/profile?saved=1")
        assert "Saved." in again.text and 'value="Alice &amp; Bo"' in again.text
        assert "See https://alice.example #art</textarea>" in again.text
        assert 'id="noai" name="noai" checked' in again.text
        assert 'id="discoverable" name="discoverable" aria' in again.text
    # and her actor says noai (FEP-5e53), and the Update goes to her followers
    doc = (await httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE).get(
        "/users/alice", headers={"Accept": "application/activity+json"})).json()  # fmt: skip
    assert doc["xRobotsTag"] == "noai, noimageai" and doc["manuallyApprovesFollowers"] is True
    (sent,) = await updates(context)
    assert sent.data["object"]["xRobotsTag"] == "noai, noimageai"
    async with context.db.session() as session:
        jobs = list(await session.scalars(select(Job).where(Job.kind == "fanout")))
    assert any(job.payload["activity"] == sent.uri for job in jobs)


@SQLITE_ONLY
async def test_a_broken_image_or_a_bad_field_changes_nothing(
    app: Starlette, context: Context
) -> None:
    async with signed_in_browser(app, context, "alice") as alice:
        page = await alice.get("/settings/profile")
        before = await alice_row(context)
        # When the avatar is not an image, or a field is too long
        broken = await alice.post(
            "/settings/profile", data=profile_form(csrf_of(page.text), display_name="Changed"),
            files={"avatar": ("me.png", b"\x89PNG\r\n\x1a\nnot really", "image/png")},
        )  # fmt: skip
        too_long = await alice.post("/settings/profile", data=profile_form(
            csrf_of(page.text), display_name="Changed", field_value_0="x" * 300))  # fmt: skip
        # Then each says what is wrong, keeps what she typed, and nothing is stored or sent
        for answer in (broken, too_long):
            assert answer.status_code in (400, 422), answer.text
            assert "Nothing was changed" in answer.text and 'value="Changed"' in answer.text
        assert "255" in too_long.text
        after = await alice_row(context)
        assert (after.name, after.icon_url, after.noai) == (before.name, before.icon_url, False)
        assert await updates(context) == []
        # and a form without its token is refused
        forged = await alice.post("/settings/profile", data=profile_form("wrong"))
        assert forged.status_code == 403 and "reload the page" in forged.text


@SQLITE_ONLY
async def test_remote_actors_carry_their_ai_opt_out(context: Context) -> None:
    key = remote_key()
    marked = await store_actor(context.db, actor_doc(
        "https://remote.example/users/bob", key, xRobotsTag="noindex, NoAI"))  # fmt: skip
    plain = await store_actor(context.db, actor_doc("https://remote.example/users/cy", key))
    assert marked.noai is True and plain.noai is False
    # and a later document without it lifts it
    again = await store_actor(context.db, actor_doc("https://remote.example/users/bob", key))
    assert again.noai is False


@SQLITE_ONLY
async def test_a_new_password_ends_the_other_sessions_but_this_one(
    app: Starlette, context: Context
) -> None:
    async with (
        signed_in_browser(app, context, "alice") as here,
        signed_in_browser(app, context, "alice", create=False) as there,
    ):
        page = await here.get("/settings/password")
        csrf = csrf_of(page.text)

        async def change(current: str, new: str, confirmation: str) -> httpx.Response:
            return await here.post("/settings/password", data={
                "csrf_token": csrf, "current": current, "new": new,
                "confirmation": confirmation})  # fmt: skip

        # Mistakes are said beside their field, and change nothing
        wrong = await change("not it at all", NEW_PASSWORD, NEW_PASSWORD)
        assert wrong.status_code == 422 and "not your current password" in wrong.text
        short = await change(PASSWORD, "short", "short")
        assert short.status_code == 422 and "at least 8 characters" in short.text
        differ = await change(PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!")
        assert differ.status_code == 422 and "differ" in differ.text
        assert (await there.get("/settings")).status_code == 200
        # When she changes it
        done = await change(PASSWORD, NEW_PASSWORD, NEW_PASSWORD)
        assert done.status_code == 303
        said = await here.get(done.headers["location"])
        assert "Your password is changed" in said.text and "(1 session)" in said.text
        # Then the other browser is signed out, this one is not
        gone = await there.get("/settings")
        assert gone.status_code == 303 and "/auth/sign_in" in gone.headers["location"]
        assert (await here.get("/settings")).status_code == 200
    # and only the new password signs in
    async with browser(app) as http:
        assert (await Browser(http).sign_in("alice", PASSWORD)).status_code == 401
        assert (await Browser(http).sign_in("alice", NEW_PASSWORD)).status_code == 303


@SQLITE_ONLY
async def test_sessions_are_listed_and_ended_and_idle_ones_expire(
    app: Starlette, context: Context
) -> None:
    async with (
        signed_in_browser(app, context, "alice") as here,
        signed_in_browser(app, context, "alice", create=False) as phone,
        signed_in_browser(app, context, "alice", create=False) as tablet,
    ):
        async with context.db.transaction() as session:
            ids = list(await session.scalars(select(WebSession.id).order_by(WebSession.id)))
            hostile = '<img src=x onerror="alert(1)">Evil/1.0'
            await session.execute(update(WebSession).where(WebSession.id == ids[2]).values(
                user_agent=hostile))  # fmt: skip
        page = await here.get("/settings/sessions")
        assert page.text.count('class="auth-app"') == 3 and "This browser" in page.text
        assert page.text.count("python-httpx") == 2
        assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;Evil/1.0" in page.text
        assert "<img src=x" not in page.text
        # When she signs out the phone from here
        ended = await here.post(f"/settings/sessions/{ids[1]}/end",
                                data={"csrf_token": csrf_of(page.text)})  # fmt: skip
        assert ended.status_code == 303
        assert (await phone.get("/settings")).status_code == 303
        assert (await tablet.get("/settings")).status_code == 200
        # and the tablet goes idle past the limit: it must sign in again
        async with context.db.transaction() as session:
            await session.execute(update(WebSession).where(WebSession.id == ids[2]).values(
                last_seen_at=utcnow() - timedelta(days=31)))  # fmt: skip
        idle = await tablet.get("/settings/sessions")
        assert idle.status_code == 303
        assert idle.headers["location"].endswith("/auth/sign_in?next=%2Fsettings%2Fsessions")
        # a forged "sign out everywhere else" does nothing; the real one ends the rest
        assert (await here.post("/settings/sessions/end_others",
                                data={"csrf_token": "nope"})).status_code == 403  # fmt: skip
        rest = await here.post("/settings/sessions/end_others",
                               data={"csrf_token": csrf_of(page.text)})  # fmt: skip
        assert rest.status_code == 303 and rest.headers["location"] == "/settings/sessions?ended=1"
        after = await here.get("/settings/sessions")
        assert after.text.count('class="auth-app"') == 1
        # this browser's own session is ended by signing out, not from the list
        mine = await here.post(f"/settings/sessions/{ids[0]}/end",
                               data={"csrf_token": csrf_of(page.text)})  # fmt: skip
        assert mine.status_code == 400
        # the apps page is part of the settings too
        apps = await here.get("/settings/apps")
        assert 'href="/settings/apps" aria-current="page"' in apps.text
        assert "No app has access" in apps.text


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


async def test_the_exports_are_mastodons_csv_files_and_an_outbox(
    app: Starlette, context: Context
) -> None:
    async with signed_in_browser(app, context, "alice") as alice:
        await Browser(alice).http.get("/")
        me = await alice_row(context)
        key = remote_key()
        bob = await store_actor(context.db, actor_doc("https://remote.example/users/bob", key))
        spam = await store_actor(context.db, actor_doc("https://spam.example/users/spam", key))
        # Given alice follows bob, blocks spam, mutes bob (notifications shown) and posts
        async with context.db.transaction() as session:
            session.add(Follow(follower_uri=me.uri, followee_uri=bob.uri, state="accepted",
                               activity_uri=f"{me.uri}#follow-bob"))  # fmt: skip
        await block(context.outbox, me, spam)
        await mutes.mute(context.db, me, bob, notifications=False)
        home = await alice.get("/")
        for text, visibility in (("First, public", "public"),
                                 ("Second, followers only", "followers")):  # fmt: skip
            form = {"csrf_token": csrf_of(home.text), "text": text, "visibility": visibility}
            await alice.post("/compose", data=form)
        page = await alice.get("/settings/export")
        assert 'href="/settings/export/following_accounts.csv"' in page.text

        async def download(name: str) -> httpx.Response:
            answer = await alice.get(f"/settings/export/{name}")
            assert answer.status_code == 200, name
            assert answer.headers["content-disposition"] == f'attachment; filename="{name}"'
            return answer

        # Then each file is what Mastodon's import reads
        follows = await download("following_accounts.csv")
        assert follows.headers["content-type"].startswith("text/csv")
        assert rows(follows.text) == [
            ["Account address", "Show boosts", "Notify on new posts", "Languages"],
            ["bob@remote.example", "true", "false", ""],
        ]
        assert rows((await download("blocked_accounts.csv")).text) == [
            ["Account address"], ["spam@spam.example"]]  # fmt: skip
        assert rows((await download("muted_accounts.csv")).text) == [
            ["Account address", "Hide notifications"], ["bob@remote.example", "false"]]  # fmt: skip
        # and the posts are her outbox: every post of hers, as its Create
        outbox: dict[str, Any] = orjson.loads((await download("outbox.json")).content)
        assert outbox["type"] == "OrderedCollection" and outbox["totalItems"] == 2
        assert [item["type"] for item in outbox["orderedItems"]] == ["Create", "Create"]
        texts = [item["object"]["content"] for item in outbox["orderedItems"]]
        assert "First, public" in texts[0] and "Second, followers only" in texts[1]
        assert (await alice.get("/settings/export/passwords.txt")).status_code == 404
    async with context.db.session() as session:
        assert len(list(await session.scalars(select(Block)))) == 1
    # and none of it is there for someone signed out
    async with browser(app) as visitor:
        answer = await visitor.get("/settings/export/following_accounts.csv")
        assert answer.status_code == 303
