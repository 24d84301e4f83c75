"""The web app in a real browser, across two real instances that federate over loopback.

Two ``fedisocial serve`` processes (alice on the first, bob on the second) and Debian's
Chromium driven by Playwright; one pair and one browser for the module. The journey is a
list of steps (:data:`JOURNEY`), each a small function of the :class:`Journey` it shares:
add a step where the pages for it land. Then every main page is photographed at desktop
and phone size (under ``$FEDISOCIAL_ARTIFACTS/screenshots``, default ``test-artifacts/``)
and checked with axe-core: no serious or critical violations.

Without Chromium (or axe-core in tests/interop) it is skipped, unless
FEDISOCIAL_REQUIRE_BROWSER=1, where that is a failure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browsers import CHROMIUM, CHROMIUM_ARGS, keep_policy_violations, require_browser
from tests.instances import Instance, alice_and_bob, eventually

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

PASSWORD = "a good password"  # what tests.instances.alice_and_bob gives alice and bob
ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "tests" / "interop" / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
COMPOSER_LABEL = "What\u2019s on your mind?"
#: answers the journey may meet that are not mistakes: a missing favicon.ico
EXPECTED_MISSING = [re.compile(r"/favicon\.ico$")]


def artifacts() -> Path:
    """Where screenshots go: ``$FEDISOCIAL_ARTIFACTS`` or ``test-artifacts/`` in the repo."""
    return Path(os.environ.get("FEDISOCIAL_ARTIFACTS") or ROOT / "test-artifacts")


@dataclass
class Journey:
    """What the steps share: the instances, alice's browser page, and what was made."""

    one: Instance
    two: Instance
    page: Page
    errors: list[str] = field(default_factory=list)
    #: what the steps made, by name (post texts, ids, paths) for later steps and the pages
    made: dict[str, str] = field(default_factory=dict)

    def go(self, path: str) -> None:
        self.page.goto(f"{self.one.base_url}{path}")

    def card(self, text: str) -> Any:
        """The first card of the page that shows ``text``."""
        return self.page.locator("article.post", has_text=text).first


# -- the journey ------------------------------------------------------------------------------


def sign_up_a_new_account(j: Journey) -> None:
    from playwright.sync_api import expect

    # Given a newcomer on the landing page of an instance with open sign-ups
    j.go("/")
    j.page.get_by_role("link", name="Sign up").click()
    j.page.get_by_label("Username").fill("dana")
    j.page.get_by_label("Password", exact=True).fill(PASSWORD)
    j.page.get_by_label("Password again").fill(PASSWORD)
    j.page.get_by_role("button", name="Create my account").click()
    # Then her account is made and she is on her (empty) home feed, signed in
    expect(j.page.get_by_role("heading", name="Home", level=1)).to_be_visible()
    expect(j.page.get_by_role("navigation", name="Main")).to_contain_text("@dana")
    # and she signs out again
    j.page.locator(".nav-menu > summary").click()
    j.page.get_by_role("button", name="Sign out").click()
    expect(j.page.get_by_role("link", name="Sign in")).to_be_visible()


def sign_in(j: Journey) -> None:
    from playwright.sync_api import expect

    # Given alice on the sign-in page, signed out
    j.go("/home")
    expect(j.page).to_have_url(re.compile(r"/auth/sign_in\?next=%2Fhome"))
    j.page.get_by_label("Username").fill("alice")
    j.page.get_by_label("Password").fill(PASSWORD)
    j.page.get_by_role("button", name="Sign in").click()
    # Then she is on her home feed, with the composer
    expect(j.page.get_by_role("heading", name="Home", level=1)).to_be_visible()
    expect(j.page.get_by_role("navigation", name="Main")).to_contain_text("@alice")


def post_from_the_home_composer(j: Journey) -> None:
    from playwright.sync_api import expect

    text = "First light over the #garden"
    j.page.evaluate("window.notReloaded = true")
    j.page.get_by_label(COMPOSER_LABEL).fill(text)
    j.page.get_by_role("button", name="Post", exact=True).click()
    # Then it is at the top of her feed, without a reload, and the composer is empty again
    first = j.page.locator("[data-feed=home] [data-cards] article.post").first
    expect(first).to_contain_text("First light over the")
    expect(j.page.locator("[data-message]")).to_have_text("Posted.")
    expect(j.page.get_by_label(COMPOSER_LABEL)).to_have_value("")
    assert j.page.evaluate("window.notReloaded") is True
    j.made["post"] = text
    j.made["post_id"] = str(first.get_attribute("data-id"))


def see_it_in_the_local_feed(j: Journey) -> None:
    from playwright.sync_api import expect

    j.page.get_by_role("link", name="Local", exact=True).click()
    expect(j.page.get_by_role("heading", name="Local", level=1)).to_be_visible()
    expect(j.card(j.made["post"])).to_be_visible()


def find_bob_and_follow_him(j: Journey) -> None:
    from playwright.sync_api import expect

    # Given alice searches for bob's handle on the other instance
    handle = f"@bob@{j.two.netloc}"
    j.page.get_by_role("link", name="Search", exact=True).click()
    j.page.get_by_label("Search for people, posts and hashtags").fill(handle)
    j.page.get_by_role("button", name="Search", exact=True).click()
    # When she presses Follow on the account it found
    j.page.get_by_role("button", name=f"Follow {handle}").click()
    # Then his profile says she follows him, once his server accepts
    eventually(lambda: _total(j.one, "/users/alice/following") == 1,
               "bob's server accepts alice's follow")  # fmt: skip
    j.go(f"/{handle}")
    expect(j.page.get_by_role("button", name="Unfollow")).to_be_visible()


def bobs_post_arrives_live(j: Journey) -> None:
    from playwright.sync_api import expect

    # Given alice on her home page, its live stream open
    with j.page.expect_response(lambda r: "/live?feed=home" in r.url):
        j.go("/")
    bar = j.page.locator(".new-posts")
    expect(bar).to_be_hidden()
    # When bob posts on his instance
    text = "Hello from the other instance"
    posted = j.two.cli("post", "bob", text)
    assert posted.returncode == 0, posted.stderr
    # Then the bar tells her, and shows it when she asks
    button = j.page.get_by_role("button", name="Show 1 new post")
    expect(button).to_be_visible(timeout=30_000)
    expect(j.card(text)).to_have_count(0)
    button.click()
    expect(j.card(text)).to_be_visible()
    expect(bar).to_be_hidden()
    expect(j.card(text)).to_contain_text(f"@bob@{j.two.netloc}")
    j.made["remote"] = text


def like_and_boost_it(j: Journey) -> None:
    from playwright.sync_api import expect

    j.page.evaluate("window.notReloaded = true")
    card = j.card(j.made["remote"])
    for name in ("Like", "Boost"):
        button = card.get_by_role("button", name=name)
        expect(button).to_have_attribute("aria-pressed", "false")
        button.click()
        expect(button).to_have_attribute("aria-pressed", "true")
        expect(button.locator(".count")).to_have_text("1")
    assert j.page.evaluate("window.notReloaded") is True


def reply_from_the_composer(j: Journey) -> None:
    from playwright.sync_api import expect

    j.card(j.made["remote"]).get_by_role("link", name="Reply").click()
    expect(j.page.locator(".reply-context")).to_contain_text(j.made["remote"])
    text = "Welcome, bob"
    j.page.get_by_label("Your reply").fill(text)
    j.page.get_by_role("button", name="Reply", exact=True).click()
    # Then the thread shows bob's post and her reply under it
    expect(j.page).to_have_url(re.compile(r"/statuses/\d+$"))
    expect(j.page.locator("main")).to_contain_text(j.made["remote"])
    expect(j.page.locator("main")).to_contain_text(text)
    j.made["thread"] = j.page.url.removeprefix(j.one.base_url)
    j.go("/")
    reply = j.card(text)
    expect(reply).to_contain_text("Replying to")
    expect(reply.get_by_role("link", name=f"@bob@{j.two.netloc}")).to_be_visible()
    j.made["reply"] = text


def a_like_from_bob_is_a_notification(j: Journey) -> None:
    from playwright.sync_api import expect

    # Given alice on her home page; When bob likes her first post from his instance
    with j.page.expect_response(lambda r: "/live?feed=home" in r.url):
        j.go("/")
    post_uri = _post_uri(j.one, j.made["post_id"])
    liked = j.two.cli("like", "bob", post_uri)
    assert liked.returncode == 0, liked.stderr
    # Then the unread count appears in the navigation without a reload
    badge = j.page.locator("[data-unread]")
    expect(badge).to_be_visible(timeout=30_000)
    # and the notifications page says who liked what, and the count goes
    j.page.get_by_role("link", name=re.compile("^Notifications")).click()
    expect(j.page.locator("main")).to_contain_text("liked your post")
    expect(j.page.locator("main")).to_contain_text(j.made["post"])
    expect(badge).to_be_hidden()


def change_the_avatar(j: Journey) -> None:
    from playwright.sync_api import expect

    picture = j.made["avatar_file"]
    j.go("/settings/profile")
    j.page.get_by_label("Avatar", exact=True).set_input_files(picture)
    j.page.get_by_role("button", name="Save profile").click()
    expect(j.page.locator("main")).to_contain_text("Saved.")
    avatar = j.page.locator(".nav-avatar")
    expect(avatar).to_have_attribute("src", re.compile(r"/media/"))


#: the steps, in order: add new ones where they belong
JOURNEY: list[Callable[[Journey], None]] = [
    sign_up_a_new_account,
    sign_in,
    post_from_the_home_composer,
    see_it_in_the_local_feed,
    find_bob_and_follow_him,
    bobs_post_arrives_live,
    like_and_boost_it,
    reply_from_the_composer,
    a_like_from_bob_is_a_notification,
    change_the_avatar,
]


# -- the main pages, photographed and checked -------------------------------------------------


def main_pages(j: Journey) -> list[tuple[str, str, bool]]:
    """(name, path, signed in) of every main page, with what the journey made."""
    return [
        ("sign-in", "/auth/sign_in", False),
        ("landing", "/", False),
        ("home", "/", True),
        ("local", "/local", True),
        ("federated", "/federated", True),
        ("tag", "/tags/garden", True),
        ("post", _public_path(j.one, j.made["post_id"]), True),
        ("thread", j.made["thread"], True),
        ("profile", "/@alice", True),
        ("remote-profile", f"/@bob@{j.two.netloc}", True),
        ("notifications", "/notifications", True),
        ("search", f"/search?q=%40bob%40{j.two.netloc}", True),
        ("settings", "/settings/profile", True),
        ("sign-up", "/auth/sign_up", False),
        ("profile-signed-out", "/@alice", False),
        ("compose", "/compose", True),
        ("reply", f"/compose?in_reply_to={j.made['post_id']}", True),
        ("local-signed-out", "/local", False),
    ]


def axe_problems(page: Page, axe: str) -> list[str]:
    """axe-core's serious and critical violations on the page, each with its targets.

    The script goes in through the DevTools protocol (``evaluate``), which the page's
    ``script-src 'self'`` does not govern; the page itself runs only our own scripts."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe)
    found = page.evaluate("async () => (await axe.run(document)).violations")
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at "
        + "; ".join(" ".join(node["target"]) for node in v["nodes"][:5])
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def check_pages(j: Journey, browser: Browser, signed_in: BrowserContext, axe: str) -> list[str]:
    """Photograph each main page at both sizes and run axe-core; the problems found."""
    shots = artifacts() / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    state = signed_in.storage_state()
    problems: list[str] = []
    for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        contexts = {signed: _context(browser, size, state if signed else None)
                    for signed in (True, False)}  # fmt: skip
        try:
            for name, path, signed in main_pages(j):
                page = contexts[signed].new_page()
                watch(page, j.errors)
                page.goto(f"{j.one.base_url}{path}")
                page.screenshot(path=shots / f"{name}-{size_name}.png", full_page=True)
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                if overflow > 0:
                    problems.append(f"{name} ({size_name}): {overflow} px wider than the screen")
                problems += [f"{name} ({size_name}) {p}" for p in axe_problems(page, axe)]
                page.close()
        finally:
            for context in contexts.values():
                context.close()
    return problems


# -- running it -------------------------------------------------------------------------------


def _context(browser: Browser, size: dict[str, int], state: Any = None) -> BrowserContext:
    phone = size is PHONE
    return browser.new_context(viewport=size, is_mobile=phone, has_touch=phone,  # type: ignore[arg-type]
                               storage_state=state)  # fmt: skip


def _total(instance: Instance, path: str) -> int:
    accept = {"Accept": "application/activity+json"}
    answer = httpx.get(f"{instance.base_url}{path}", headers=accept)
    total: int = answer.json().get("totalItems", 0)
    return total


def _avatar_file(path: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (256, 256), (90, 75, 219)).save(path, "PNG")
    return path


def _post_uri(instance: Instance, status_id: str) -> str:
    answer = httpx.get(f"{instance.base_url}/api/v1/statuses/{status_id}")
    uri: str = answer.json()["uri"]
    return uri


def _public_path(instance: Instance, status_id: str) -> str:
    """The post's own address (its ``url``), which browsers are shown the thread page at."""
    answer = httpx.get(f"{instance.base_url}/api/v1/statuses/{status_id}")
    url: str = answer.json()["url"]
    return url.removeprefix(instance.base_url)


def watch(page: Page, errors: list[str]) -> None:
    """Keep the page's script errors, failed answers and what the CSP blocked in ``errors``."""
    page.set_default_timeout(20_000)
    page.on("pageerror", lambda exc: errors.append(f"script error: {exc}"))
    page.on("console", lambda message: keep_policy_violations(errors, message))

    def answered(response: Any) -> None:
        if response.status >= 400 and not any(p.search(response.url) for p in EXPECTED_MISSING):
            errors.append(f"{response.status} {response.url}")

    page.on("response", answered)


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Instance, Instance]]:
    require_browser(None if AXE.exists() else f"{AXE} is missing: `npm ci` in tests/interop")
    with alice_and_bob(tmp_path_factory.mktemp("web-browser"),
                       environ_one={"FEDISOCIAL_REGISTRATIONS": "open"}) as pair:  # fmt: skip
        yield pair


def test_a_day_in_the_web_app_across_two_instances(instances: tuple[Instance, Instance]) -> None:
    from playwright.sync_api import sync_playwright

    one, two = instances
    axe = AXE.read_text()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = _context(browser, DESKTOP)
            journey = Journey(one, two, context.new_page())
            journey.made["avatar_file"] = str(_avatar_file(one.root / "avatar.png"))
            watch(journey.page, journey.errors)
            for step in JOURNEY:
                step(journey)
            problems = check_pages(journey, browser, context, axe)
            context.close()
        finally:
            browser.close()
    assert journey.errors == []
    assert problems == [], "\n".join(problems)
