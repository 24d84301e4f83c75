"""The web app's feeds, composer and post buttons, as a browser uses them (no script)."""

from __future__ import annotations

import re

from starlette.applications import Starlette

from fedisocial.app import Context
from tests.webapp import browser, csrf_of, signed_in_browser


def _ids(page: str) -> list[str]:
    return re.findall(r'<article class="post" id="post-(\d+)"', page)


async def _post(http, text: str, **fields: str):  # type: ignore[no-untyped-def]
    home = await http.get("/")
    return await http.post(
        "/compose",
        data={"csrf_token": csrf_of(home.text), "text": text, "visibility": "public", **fields},
    )


async def test_a_signed_out_visitor_sees_the_landing_page_and_public_feeds(
    app: Starlette, context: Context
) -> None:
    async with signed_in_browser(app, context, "alice") as alice:
        await _post(alice, "Hello from the #Garden")
    async with browser(app) as visitor:
        front = await visitor.get("/")
        assert front.status_code == 200
        assert "People here" in front.text and "composer" not in front.text
        for path in ("/local", "/federated", "/tags/garden", "/tags/Garden"):
            page = await visitor.get(path)
            assert page.status_code == 200, path
            assert "Hello from the" in page.text, path
        home = await visitor.get("/home", follow_redirects=False)
        assert home.status_code == 303
        assert home.headers["location"].endswith("/auth/sign_in?next=%2Fhome")


async def test_posting_from_the_home_page_shows_the_post_in_the_feed(
    app: Starlette, context: Context
) -> None:
    async with signed_in_browser(app, context, "alice") as alice:
        home = await alice.get("/")
        assert 'action="/compose"' in home.text and "characters left" in home.text
        answer = await _post(
            alice, "First <b>post</b> & more", cw="spoilers", language="en", **{"from": "/"}
        )
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/#post-")
        home = await alice.get("/")
        assert "First &lt;b&gt;post&lt;/b&gt; &amp; more" in home.text
        assert "spoilers" in home.text and 'lang="en"' in home.text
        assert len(_ids(home.text)) == 1


async def test_the_buttons_of_a_post_work_as_forms_and_as_json(
    app: Starlette, context: Context
) -> None:
    async with signed_in_browser(app, context, "alice") as alice:
        await _post(alice, "Like me")
    async with signed_in_browser(app, context, "bob") as bob:
        local = await bob.get("/local")
        (post_id,) = _ids(local.text)
        csrf = csrf_of(local.text)
        liked = await bob.post(
            f"/statuses/{post_id}/favourite",
            data={"csrf_token": csrf},
            headers={"Referer": "http://127.0.0.1:8000/local"},
        )
        assert liked.status_code == 303
        assert liked.headers["location"] == f"/local#post-{post_id}"
        page = await bob.get("/local")
        assert f'action="/statuses/{post_id}/unfavourite"' in page.text
        boosted = await bob.post(
            f"/statuses/{post_id}/reblog",
            data={"csrf_token": csrf},
            headers={"Accept": "application/json"},
        )
        assert boosted.status_code == 200
        state = boosted.json()
        assert state["reblogged"] is True and state["reblogs_count"] == 1
        assert state["favourited"] is True and state["favourites_count"] == 1
        home = await bob.get("/")
        assert "boosted" in home.text and "Like me" in home.text
        undone = await bob.post(
            f"/statuses/{post_id}/unfavourite",
            data={"csrf_token": csrf},
            headers={"Accept": "application/json"},
        )
        assert undone.json()["favourited"] is False


async def test_forms_without_the_csrf_value_are_refused(app: Starlette, context: Context) -> None:
    async with signed_in_browser(app, context, "alice") as alice:
        refused = await alice.post("/compose", data={"text": "forged"})
        assert refused.status_code == 403
        assert "reload the page" in refused.text
        assert _ids((await alice.get("/")).text) == []


async def test_load_more_pages_the_feed(app: Starlette, context: Context) -> None:
    async with signed_in_browser(app, context, "alice") as alice:
        for n in range(23):
            await _post(alice, f"post number {n}")
        first = await alice.get("/local")
        ids = _ids(first.text)
        assert len(ids) == 20
        more = re.search(r'href="(/local\?max_id=\d+)" data-load-more', first.text)
        assert more is not None
        rest = await alice.get(more.group(1) + "&fragment=1")
        assert "<html" not in rest.text
        assert len(_ids(rest.text)) == 3 and not set(_ids(rest.text)) & set(ids)
