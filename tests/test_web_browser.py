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
#: answers the journey may meet that are not mistakes: a missing favicon.ico, and the
#: thread page (``/statuses/ID``) the composer goes to after a reply, until it lands
EXPECTED_MISSING = [re.compile(r"/favicon\.ico$"), re.compile(r"/statuses/\d+$")]


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


def follow_bob_on_the_other_instance(j: Journey) -> None:
    # (with the command line until the profile's Follow button lands)
    done = j.one.cli("follow", "alice", f"bob@{j.two.netloc}")
    assert done.returncode == 0, done.stderr
    eventually(lambda: _total(j.one, "/users/alice/following") == 1,
               "bob's server accepts alice's follow")  # fmt: skip


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
    expect(j.page).to_have_url(re.compile(r"/statuses/\d+$"))  # the new reply's thread
    j.go("/")
    reply = j.card(text)
    expect(reply).to_contain_text("Replying to")
    expect(reply.get_by_role("link", name=f"@bob@{j.two.netloc}")).to_be_visible()
    j.made["reply"] = text


#: the steps, in order: add new ones where they belong
JOURNEY: list[Callable[[Journey], None]] = [
    sign_in,
    post_from_the_home_composer,
    see_it_in_the_local_feed,
    follow_bob_on_the_other_instance,
    bobs_post_arrives_live,
    like_and_boost_it,
    reply_from_the_composer,
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


def _public_path(instance: Instance, status_id: str) -> str:
    """The public page of a post (its ``url``), until the thread page lands."""
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
    with alice_and_bob(tmp_path_factory.mktemp("web-browser")) as pair:
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
            watch(journey.page, journey.errors)
            for step in JOURNEY:
                step(journey)
            problems = check_pages(journey, browser, context, axe)
            context.close()
        finally:
            browser.close()
    assert journey.errors == []
    assert problems == [], "\n".join(problems)
