"""Drafting help in a real browser: sign in, write a draft, ask "Help me write this", take
a rewrite and a hashtag, add a photo and ask for its alt text, post; the post is the
author's edited text with her edited alt text. The composer with its
suggestions shown passes axe-core and fits a phone and a desktop.

A real ``fedisocial serve`` whose ``[ai.text]`` points at the loopback chat API (the real
``openai`` client inside the server speaks to it), and Debian's Chromium driven by
Playwright. Without /usr/bin/chromium (or axe-core in tests/interop) the test is skipped,
unless FEDISOCIAL_REQUIRE_BROWSER=1 (CI), where that is a failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from tests.browsers import CHROMIUM, CHROMIUM_ARGS, require_browser, watch
from tests.fake_openai import SECRET, FakeChatAPI, png
from tests.instances import Instance, make_instance, serving
from tests.loopback import serve_in_thread
from tests.test_web_browser import AXE, DESKTOP, PHONE, artifacts, axe_problems

if TYPE_CHECKING:
    from playwright.sync_api import Page

PASSWORD = "a market gardener's password"
DRAFT = "I went to the Farmers Market today and I bought some really very nice apples there"
SHORTER = "Bought lovely apples at the Farmers Market today"
ANSWER = {
    "rewrites": [
        {"kind": "shorter", "text": SHORTER},
        {"kind": "clearer", "text": "Today I bought very nice apples at the Farmers Market."},
        {"kind": "engaging", "text": "Market day! Came home with the nicest apples."},
    ],
    "hashtags": ["Apples"],
    "content_warning": None,
}
ALT = "Red apples in a wooden crate at a market stall."


def answer(body: dict[str, Any]) -> str:
    """Alt text when the request carries an image, else the suggestions as JSON."""
    content = body["messages"][-1]["content"]
    return ALT if isinstance(content, list) else orjson.dumps(ANSWER).decode()


@pytest.fixture
def chat() -> Iterator[tuple[FakeChatAPI, str]]:
    require_browser(None if AXE.exists() else f"{AXE} is missing (npm ci in tests/interop)")
    fake = FakeChatAPI()
    fake.answer = answer
    with serve_in_thread(fake.app) as base:
        yield fake, base


@pytest.fixture
def instance(chat: tuple[FakeChatAPI, str], tmp_path: Path) -> Iterator[Instance]:
    """A fresh instance with one user, alice, whose text model is the fake chat API."""
    environ = {"FEDISOCIAL_AI_TEXT_BASE_URL": f"{chat[1]}/v1",
                           "FEDISOCIAL_AI_TEXT_API_KEY": SECRET,
                           "FEDISOCIAL_AI_TEXT_VISION": "true"}  # fmt: skip
    with serving(tmp_path / "social", password=PASSWORD, environ=environ) as social:
        yield social


def composer_checked(page: Page, name: str) -> list[str]:
    """Screenshot the composer with its suggestions at both sizes; axe and overflow problems."""
    shots = artifacts() / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    axe = AXE.read_text()
    for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=shots / f"{name}-{size_name}.png", full_page=True)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        if overflow > 0:
            problems.append(f"{size_name}: {overflow} px wider than the screen")
        problems += [f"{size_name}: {p}" for p in axe_problems(page, axe)]
    page.set_viewport_size(DESKTOP)
    return problems


def test_an_author_takes_a_rewrite_a_hashtag_and_alt_text_and_posts_her_text(
    instance: Instance, chat: tuple[FakeChatAPI, str], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=DESKTOP).new_page()
            errors = watch(page)

            # Given alice, signed in, with a draft on her home page
            page.goto(f"{instance.base_url}/compose")
            page.get_by_label("Username").fill("alice")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.goto(f"{instance.base_url}/")
            composer = page.locator("form.composer")
            text = composer.get_by_label("What\u2019s on your mind?")
            text.fill(DRAFT)

            # When she asks for help
            composer.get_by_role("button", name="Help me write this").click()

            # Then suggestions show, the model's labeled as AI's, the offline ones as hints
            assist = composer.get_by_role("region", name="Writing suggestions")
            expect(assist).to_be_visible()
            expect(assist.locator(".composer-assist-label.is-ai").first).to_have_text(
                "AI suggestion"
            )
            expect(assist).to_contain_text(SHORTER)
            expect(assist.locator(".composer-assist-label:not(.is-ai)").first).to_have_text(
                "Suggestion"
            )
            assert chat[0].bodies[0]["messages"][1]["content"] == DRAFT
            problems = composer_checked(page, "composer-suggestions")

            # When she takes the shorter text, then undoes it, then takes it again
            assist.get_by_role("button", name="Use the shorter text (AI suggestion)").click()
            expect(text).to_have_value(SHORTER)
            composer.get_by_role("button", name="Undo: put back your own text").click()
            expect(text).to_have_value(DRAFT)
            assist.get_by_role("button", name="Use the shorter text (AI suggestion)").click()
            # and adds the offline hashtag for the market, and edits the text herself
            assist.get_by_role("button", name="Add the hashtag #FarmersMarket (Suggestion)").click()
            expect(text).to_have_value(f"{SHORTER} #FarmersMarket")
            text.press("End")
            text.type(" \U0001f34e")
            edited = f"{SHORTER} #FarmersMarket \U0001f34e"
            expect(composer.locator("[data-count]")).to_have_text(
                f"{5000 - len(edited)} characters left"
            )

            # When she adds a photo with a first alt text, and asks for a better one
            photo = tmp_path / "apples.png"
            photo.write_bytes(png((200, 30, 30)))
            composer.locator("summary", has_text="Add image").click()
            composer.locator("[data-file]").set_input_files(photo)
            composer.locator("[data-file-alt]").fill("apples")
            composer.get_by_role("button", name="Add image", exact=True).click()
            chosen = composer.locator("[data-chosen] .composer-image")
            expect(chosen).to_have_count(1)
            chosen.get_by_role("button", name="Suggest alt text").click()
            # Then the model's description fills the field, for her to edit; she edits it
            alt = chosen.get_by_label("Alt text")
            expect(alt).to_have_value(ALT)
            expect(chosen.locator("[data-image-message]")).to_contain_text("AI suggestion")
            assert chat[0].bodies[-1]["messages"][-1]["content"][1]["type"] == "image_url"
            alt.fill(f"{ALT} Sunny day.")

            # Nothing was posted by itself
            expect(page.locator("article.post")).to_have_count(0)
            composer.get_by_role("button", name="Post", exact=True).click()

            # Then her post is her edited text, not labeled as AI's, and the slot is closed
            expect(composer.locator("[data-message]")).to_have_text("Posted.")
            post = page.locator("article.post").first
            expect(post.locator(".post-content")).to_have_text(edited)
            expect(post).not_to_contain_text("AI")
            expect(post.locator(".attachments img")).to_have_attribute("alt", f"{ALT} Sunny day.")
            expect(assist).to_be_hidden()
            assert len(chat[0].bodies) == 2
            assert errors == [] and problems == []
        finally:
            browser.close()


def test_without_a_text_model_the_offline_hints(tmp_path: Path) -> None:
    require_browser(None if AXE.exists() else f"{AXE} is missing (npm ci in tests/interop)")
    from playwright.sync_api import expect, sync_playwright

    social = make_instance(tmp_path / "offline")
    assert social.cli("user", "create", "alice", "--password-stdin", stdin=PASSWORD).returncode == 0
    social.start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                 args=CHROMIUM_ARGS)  # fmt: skip
            try:
                page = browser.new_context(viewport=PHONE, is_mobile=True).new_page()
                page.goto(f"{social.base_url}/compose")
                page.get_by_label("Username").fill("alice")
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                composer = page.locator("form.composer")
                composer.get_by_label(re.compile("What\u2019s on your mind")).fill(
                    "Just watched the finale, the hero died!"
                )
                composer.get_by_role("button", name="Help me write this").click()
                assist = composer.get_by_role("region", name="Writing suggestions")
                expect(assist).to_contain_text("No text model is configured on this server")
                expect(assist.locator(".composer-assist-label.is-ai")).to_have_count(0)
                assist.get_by_role("button", name=re.compile("^Set the content warning")).click()
                expect(composer.locator("[name=cw]")).to_have_value("Spoilers, Death")
                problems = composer_checked(page, "composer-offline-hints")
                assert problems == []
            finally:
                browser.close()
    finally:
        social.stop()
