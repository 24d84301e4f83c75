"""Joining in a browser: the sign-up page in each registration mode, its mistakes and its
throttle, and the admins' queue of sign-ups that wait for approval."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update
from starlette.applications import Starlette

from fedisocial.app import Context
from fedisocial.cli.instance import with_db
from fedisocial.config import load_settings
from fedisocial.social.accounts import create_user
from fedisocial.store.db import Database
from fedisocial.store.models import User
from fedisocial.urls import Urls
from tests.instances import make_instance
from tests.oauthflow import PASSWORD, Browser
from tests.webapp import browser, csrf_of, signed_in_browser

SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"], indirect=True)


def registrations(context: Context, mode: str) -> None:
    context.settings = replace(context.settings, registrations=mode)


async def users(context: Context) -> list[tuple[str, bool, str | None]]:
    async with context.db.session() as session:
        rows = await session.execute(
            select(User.username, User.approved, User.sign_up_reason).order_by(User.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def sign_up(http: httpx.AsyncClient, username: str, password: str = PASSWORD,
                  confirmation: str | None = None, **extra: str) -> httpx.Response:  # fmt: skip
    form = await http.get("/auth/sign_up")
    assert form.status_code == 200
    return await http.post("/auth/sign_up", data={
        "csrf_token": csrf_of(form.text), "username": username, "password": password,
        "confirmation": password if confirmation is None else confirmation, **extra})  # fmt: skip


@SQLITE_ONLY
async def test_open_sign_ups_make_the_account_and_sign_it_in(
    app: Starlette, context: Context
) -> None:
    registrations(context, "open")
    async with browser(app) as visitor:
        # Given the sign-in page points to the sign-up page, which asks for no reason
        sign_in = await visitor.get("/auth/sign_in")
        assert 'href="/auth/sign_up">Create an account' in sign_in.text
        form = await visitor.get("/auth/sign_up")
        assert 'name="reason"' not in form.text and 'for="confirmation"' in form.text
        # When dora signs up
        answer = await sign_up(visitor, "dora")
        # Then she lands on her home feed, signed in
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        home = await visitor.get("/")
        assert 'data-signed-in="1"' in home.text and "@dora" in home.text
        # and a signed-in person asking for the sign-up page goes home
        again = await visitor.get("/auth/sign_up")
        assert again.status_code == 303
    assert await users(context) == [("dora", True, None)]


@SQLITE_ONLY
async def test_sign_up_mistakes_are_said_by_field_and_nothing_is_stored(
    app: Starlette, context: Context
) -> None:
    registrations(context, "approval")
    async with browser(app) as visitor:
        cases = [
            ({"username": "no spaces!"}, "username", "is not valid"),
            ({"username": "Admin"}, "username", "is reserved"),
            ({"username": "dora", "password": "short"}, "password", "at least 8 characters"),
            ({"username": "dora", "confirmation": "something else"}, "confirmation", "differ"),
            ({"username": "dora", "reason": "   "}, "reason", "why you want to join"),
        ]
        for fields, field, said in cases:
            fields.setdefault("reason", "I grow tomatoes")
            answer = await sign_up(visitor, **fields)  # type: ignore[arg-type]
            assert answer.status_code == 422, fields
            assert f'id="{field}-error"' in answer.text and said in answer.text, fields
            assert f'id="{field}"' in answer.text and 'aria-invalid="true"' in answer.text
            # the form comes back filled in, except the passwords
            assert f'value="{fields["username"]}"' in answer.text
            assert "I grow tomatoes" in answer.text or fields["reason"].isspace()
            assert PASSWORD not in answer.text
        # A name already taken (in any case) is refused too
        await sign_up(visitor, "dora", reason="first")
        taken = await sign_up(visitor, "DORA", reason="second")
        assert taken.status_code == 422 and "already taken" in taken.text
    assert await users(context) == [("dora", False, "first")]


async def test_a_sign_up_waits_for_an_admin_who_approves_or_rejects_it(
    app: Starlette, context: Context
) -> None:
    registrations(context, "approval")
    async with browser(app) as dora:
        # Given dora asks to join, with a reason that is hostile HTML
        form = await dora.get("/auth/sign_up")
        assert "Why do you want to join?" in form.text
        asked = await sign_up(dora, "dora", reason="<script>alert(1)</script>\nI paint walls")
        assert asked.status_code == 303
        waits = await dora.get(asked.headers["location"])
        assert "waits for an admin" in waits.text
        # Then she cannot sign in yet, and is told why
        early = await Browser(dora).sign_in("dora")
        assert early.status_code == 401 and "waiting for an admin" in early.text
    async with browser(app) as erin:
        await sign_up(erin, "erin", reason="spam spam")
    # When the admin opens the queue
    async with signed_in_browser(app, context, "alice") as alice:
        async with context.db.transaction() as session:
            admin = update(User).where(User.username == "alice").values(is_admin=True)
            await session.execute(admin)
        queue = await alice.get("/admin/sign_ups")
        assert queue.status_code == 200
        assert "@dora" in queue.text and "@erin" in queue.text
        assert queue.text.index("@dora") < queue.text.index("@erin")  # the oldest first
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in queue.text
        assert "<script>alert" not in queue.text
        csrf = csrf_of(queue.text)
        # a form without its token does nothing
        forged = await alice.post("/admin/sign_ups/dora/approve", data={"csrf_token": "x"})
        assert forged.status_code == 403
        assert ("dora", False) in [(u, a) for u, a, _ in await users(context)]
        # she approves dora and rejects erin
        approved = await alice.post("/admin/sign_ups/dora/approve", data={"csrf_token": csrf})
        assert approved.status_code == 303
        said = await alice.get(approved.headers["location"])
        assert "@dora is approved" in said.text and "@erin" in said.text
        rejected = await alice.post("/admin/sign_ups/erin/reject", data={"csrf_token": csrf})
        assert rejected.status_code == 303
        empty = await alice.get("/admin/sign_ups")
        assert "Nobody waits" in empty.text
        # approving someone already in is a clear 400
        twice = await alice.post("/admin/sign_ups/dora/approve", data={"csrf_token": csrf})
        assert twice.status_code == 400 and "not waiting" in twice.text
    # Then dora can sign in, and erin's account is gone (her name is free again)
    async with browser(app) as dora:
        assert (await Browser(dora).sign_in("dora")).status_code == 303
    assert [name for name, _, _ in await users(context)] == ["dora", "alice"]
    # and someone who is not an admin cannot see the queue
    async with signed_in_browser(app, context, "bob") as bob:
        assert (await bob.get("/admin/sign_ups")).status_code == 403
        token = csrf_of((await bob.get("/")).text)
        refused = await bob.post("/admin/sign_ups/dora/reject", data={"csrf_token": token})
        assert refused.status_code == 403
    async with browser(app) as visitor:
        queue = await visitor.get("/admin/sign_ups")
        assert queue.status_code == 303 and "/auth/sign_in" in queue.headers["location"]


@SQLITE_ONLY
async def test_closed_sign_ups_say_so_and_refuse_the_form(app: Starlette, context: Context) -> None:
    registrations(context, "closed")
    async with browser(app) as visitor:
        page = await visitor.get("/auth/sign_up")
        assert "Sign-ups are closed" in page.text and 'name="password"' not in page.text
        sign_in = await visitor.get("/auth/sign_in")
        assert "Create an account" not in sign_in.text
        answer = await visitor.post("/auth/sign_up", data={
            "csrf_token": csrf_of(sign_in.text), "username": "dora", "password": PASSWORD,
            "confirmation": PASSWORD})  # fmt: skip
        assert answer.status_code == 403 and "closed" in answer.text
    assert await users(context) == []


@SQLITE_ONLY
async def test_sign_ups_are_throttled_per_address(app: Starlette, context: Context) -> None:
    registrations(context, "open")
    # Given five accounts made from one address
    for number in range(5):
        async with browser(app) as visitor:
            assert (await sign_up(visitor, f"person{number}")).status_code == 303
    # When a sixth comes at once
    async with browser(app) as visitor:
        answer = await sign_up(visitor, "person5")
        # Then it must wait, the page says so, and the form keeps the name
        assert answer.status_code == 429 and "Retry-After" in answer.headers
        assert "too many sign-ups from this address" in answer.text
        assert 'value="person5"' in answer.text
    async with context.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 5


def test_the_command_line_approves_and_rejects_sign_ups(tmp_path: Path) -> None:
    # Given an instance where dora and erin signed up and wait
    site = make_instance(tmp_path / "site")
    settings = load_settings(site.root / "fedisocial.toml", environ={})

    async def ask(db: Database) -> None:
        for name in ("dora", "erin"):
            await create_user(db, Urls(settings.base_url), name, PASSWORD, approved=False,
                              sign_up_reason=f"{name} likes\nplants")  # fmt: skip

    with_db(settings, ask)
    # When the admin lists them, approves dora and rejects erin
    listed = site.cli("user", "list", "--pending")
    assert listed.returncode == 0, listed.stderr
    assert "dora" in listed.stdout and "why: dora likes plants" in listed.stdout
    assert site.cli("user", "approve", "dora").returncode == 0
    assert site.cli("user", "reject", "erin").returncode == 0
    # Then dora is an account and erin is gone
    everyone = site.cli("user", "list").stdout
    assert "dora" in everyone and "waits" not in everyone and "erin" not in everyone
