"""The composer's images in a real browser, as a new user on a fresh instance would use them:
sign in, generate, watch it being made, preview, edit the alt text, keep, post.

A real ``fedisocial serve`` (no API key: the local renderer answers, the
job worker process beside it runs the job) and Debian's Chromium driven by Playwright.
Without /usr/bin/chromium the test is skipped with a message, unless
FEDISOCIAL_REQUIRE_BROWSER=1 (CI), where that is a failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from fedisocial.studio.ai.local import LOCAL_MODEL
from tests.browsers import CHROMIUM, CHROMIUM_ARGS, keep_policy_violations, require_browser
from tests.instances import Instance, make_instance

PASSWORD = "a lighthouse keeper's password"
PROMPT = "a lighthouse at dawn, watercolor"
ALT = "A watercolor lighthouse on a cliff, pink dawn sky behind it"


@pytest.fixture
def browser_ready() -> None:
    require_browser()


@pytest.fixture
def instance(browser_ready: None, tmp_path: Path) -> Iterator[Instance]:
    """A fresh instance with one user, alice, served by a real process."""
    social = make_instance(tmp_path / "social")
    created = social.cli("user", "create", "alice", "--password-stdin", stdin=PASSWORD)
    assert created.returncode == 0, created.stderr
    social.start()
    try:
        yield social
    finally:
        social.stop()


def test_a_new_user_generates_reviews_and_publishes_an_image(
    instance: Instance, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1100, "height": 900})
            page = context.new_page()
            page.set_default_timeout(30_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("response", lambda response: _keep_failures(errors, response))
            page.on("console", lambda message: keep_policy_violations(errors, message))

            # Given alice, who opens the studio: she signs in and is at the composer
            page.goto(f"{instance.base_url}/studio")
            page.get_by_label("Username").fill("alice")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_url(re.compile(r"/compose$"))
            # She posts from her home page, where the post appears in place
            page.goto(f"{instance.base_url}/")
            composer = page.locator("form.composer")

            # When she asks for an image (no API key: the offline renderer answers)
            composer.locator("summary", has_text="Generate").click()
            expect(composer).to_contain_text(f"{LOCAL_MODEL} (local)")
            composer.get_by_label("Describe the image you want").fill(PROMPT)
            composer.get_by_role("button", name="Generate").click()

            # Then it shows it is being made, then a preview with the AI description
            expect(composer.locator(".composer-pending")).to_contain_text(PROMPT)
            preview = composer.locator("[data-generated] .composer-image")
            expect(preview).to_be_visible(timeout=60_000)
            page.wait_for_function(
                "document.querySelector('[data-generated] .composer-image img').naturalWidth > 0"
            )
            expect(preview.locator(".composer-ai")).to_contain_text(LOCAL_MODEL)
            alt = preview.get_by_label("Alt text")
            expect(alt).to_have_value(re.compile(re.escape(PROMPT)))
            expect(alt).to_be_focused()

            # When she makes the alt text better (saved on the draft) and keeps the image
            alt.fill(ALT)
            preview.get_by_role("button", name="Keep").click()
            chosen = composer.locator("[data-chosen] .composer-image")
            expect(chosen).to_have_count(1)
            expect(chosen.get_by_label("Alt text")).to_have_value(ALT)
            expect(chosen.get_by_role("button", name="Remove")).to_be_focused()
            expect(composer.locator("[data-images-count]")).to_have_text(
                "1 of 4 images in this post."
            )

            # and writes the post and posts it
            composer.get_by_label("What\u2019s on your mind?").fill("Morning sketch")
            page.screenshot(path=tmp_path / "composer.png", full_page=True)
            composer.get_by_role("button", name="Post", exact=True).click()

            # Then it is on her home feed with the image, her alt text and the AI label line,
            # and the composer is empty again
            expect(composer.locator("[data-message]")).to_have_text("Posted.")
            post = page.locator("article.post").first
            expect(post.locator(".attachments img")).to_have_attribute("alt", ALT)
            content = post.locator(".post-content")
            expect(content).to_contain_text("Morning sketch")
            expect(content).to_contain_text(f"Image generated by AI ({LOCAL_MODEL})")
            expect(content).to_contain_text("#AIGenerated")
            expect(composer.locator("[data-chosen] .composer-image")).to_have_count(0)
            expect(composer.get_by_label("What\u2019s on your mind?")).to_have_value("")
            page.screenshot(path=tmp_path / "posted.png", full_page=True)
            assert errors == []
        finally:
            browser.close()


def _keep_failures(errors: list[str], response: Any) -> None:
    """Failed requests, but the favicon and the home feed's live stream (``/live``: app.js
    opens it on the home page; it has its own tests)."""
    path = urlsplit(response.url).path
    if response.status >= 400 and path not in ("/favicon.ico", "/live"):
        errors.append(f"{response.status} {response.url}")
