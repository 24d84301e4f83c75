"""The image studio in a real browser, as a new user on a fresh instance would use it.

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
            context = browser.new_context(
                http_credentials={"username": "alice", "password": PASSWORD},
                viewport={"width": 1100, "height": 900},
            )
            page = context.new_page()
            page.set_default_timeout(30_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("response", lambda response: _keep_failures(errors, response))
            page.on("console", lambda message: keep_policy_violations(errors, message))

            # Given alice signed in to the studio of a fresh instance with no API key
            page.goto(f"{instance.base_url}/studio")
            expect(page.get_by_role("heading", name="Image studio")).to_be_visible()
            expect(page.locator("#studio-provider")).to_contain_text(f"{LOCAL_MODEL} (local)")

            # When she asks for an image
            page.get_by_label("Describe the image you want").fill(PROMPT)
            page.get_by_role("button", name="Generate").click()

            # Then a card shows it waiting, then the image, made by the local model
            card = page.locator(".studio-card").first
            expect(card.locator(".studio-prompt")).to_have_text(f"“{PROMPT}”")
            expect(card.locator(".studio-state")).to_have_text(
                re.compile(r"Sending|Queued|Being made")
            )
            image = card.locator(".studio-frame img")
            expect(image).to_be_visible(timeout=60_000)
            page.wait_for_function("document.querySelector('.studio-frame img').naturalWidth > 0")
            expect(card.locator(".studio-credit")).to_have_text(f"AI made by {LOCAL_MODEL} (local)")
            expect(card.locator(".studio-badge")).to_have_text("AI")
            expect(page.locator("#studio-announce")).to_contain_text("Image ready")

            # And the alt text defaults to the prompt, and she makes it better
            alt = card.get_by_label("Alt text")
            expect(alt).to_have_value(re.compile(re.escape(PROMPT)))
            alt.fill(ALT)
            expect(image).to_have_attribute("alt", ALT)
            expect(card.get_by_label("Include in post")).to_be_checked()
            expect(page.locator("#studio-chosen")).to_have_text("1 of 4 images chosen.")

            # When she writes the post and publishes it
            page.get_by_label("Text", exact=True).fill("Morning sketch from the studio")
            page.screenshot(path=tmp_path / "studio.png", full_page=True)
            page.get_by_role("button", name="Publish").click()

            # Then she gets a link to the post, and the composer is reset
            link = page.get_by_role("link", name="See your post")
            expect(link).to_be_visible()
            expect(link).to_be_focused()
            expect(page.locator(".studio-card")).to_have_count(0)
            expect(page.get_by_label("Text", exact=True)).to_have_value("")

            # And the post shows the image with her alt text and the AI label line
            link.click()
            expect(page).to_have_url(re.compile(r"/users/alice/statuses/"))
            posted = page.locator(".attachments img")
            expect(posted).to_have_attribute("alt", ALT)
            content = page.locator(".post-content")
            expect(content).to_contain_text("Morning sketch from the studio")
            expect(content).to_contain_text(f"Image generated by AI ({LOCAL_MODEL})")
            expect(content).to_contain_text("#AIGenerated")
            page.screenshot(path=tmp_path / "post.png", full_page=True)
            assert errors == []
        finally:
            browser.close()


def _keep_failures(errors: list[str], response: Any) -> None:
    """Failed requests, but the favicon (none yet) and the first 401 (the sign-in challenge)."""
    challenge = response.status == 401 and response.url.endswith("/studio")
    if response.status >= 400 and not challenge and not response.url.endswith("/favicon.ico"):
        errors.append(f"{response.status} {response.url}")
