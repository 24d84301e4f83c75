"""Drafting help: the offline hints (deterministic, multilingual), the model's suggestions
through the real ``openai`` client against the loopback chat API, alt text, the limit."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from fedisocial.app import Context
from fedisocial.assistant.drafting import DraftingHelp, HourlyLimit, parse_suggestions
from fedisocial.assistant.hints import detect_language, hashtag_candidates, offline_hints
from fedisocial.errors import BadRequest, NotFound, RateLimited, Unprocessable
from fedisocial.social.accounts import create_user, find_local_actor
from fedisocial.social.outbox import MAX_TEXT
from fedisocial.store.models import Actor, Media
from fedisocial.studio.ai.text import OpenAITextProvider, TextRefused
from tests.fake_openai import SECRET, FakeChatAPI, png
from tests.loopback import serve

# -- offline: hashtags ------------------------------------------------------------


def test_hashtags_are_names_in_camel_case_then_frequent_words() -> None:
    text = ("Spent the weekend in New York City with my sister. The bagels in New York City "
            "were great, the bagels of Brooklyn even better! #travel")  # fmt: skip
    tags = hashtag_candidates(text, "en")
    assert tags[:3] == ("NewYorkCity", "bagels", "Brooklyn")
    assert "travel" not in tags and "Travel" not in tags  # already tagged
    assert all(t.lower() not in ("the", "with", "were", "even") for t in tags)
    # the same draft, the same candidates
    assert hashtag_candidates(text, "en") == tags


def test_a_stop_word_opening_a_sentence_is_not_part_of_a_name() -> None:
    assert hashtag_candidates("The New York Times wrote about our Climate Camp.", "en")[:2] == (
        "NewYorkTimes",
        "ClimateCamp",
    )


@pytest.mark.parametrize(
    ("text", "language", "expected", "stop"),
    [
        ("Heute waren wir im Garten. Der Garten blüht und die Bienen summen.", "de",
         ("Garten", "Bienen"), {"der", "die", "und", "wir"}),
        ("Le marché de Lyon est magnifique ce matin, les fraises sont arrivées.", "fr",
         ("Lyon", "marché"), {"est", "les", "sont", "le"}),
        ("Mañana vamos a la playa de Barcelona con los niños.", "es",
         ("Barcelona", "mañana"), {"con", "los", "vamos"}),
    ],
)  # fmt: skip
def test_stop_words_of_several_languages_are_skipped(
    text: str, language: str, expected: tuple[str, ...], stop: set[str]
) -> None:
    tags = hashtag_candidates(text, language)
    assert tags[: len(expected)] == expected
    assert not stop & {t.lower() for t in tags}
    # detected when not given
    assert detect_language(text) == language
    assert hashtag_candidates(text, None)[: len(expected)] == expected


def test_elisions_and_links_and_mentions_give_no_tags() -> None:
    tags = hashtag_candidates("J'adore l'architecture de @bob https://example.com/paris", "fr")
    assert tags == ("adore", "architecture")


# -- offline: hints ---------------------------------------------------------------------


def codes(text: str, spoiler_text: str = "", language: str | None = "en") -> list[str]:
    return [h.code for h in offline_hints(text, language=language, spoiler_text=spoiler_text).hints]


def test_a_plain_good_post_gets_no_hints() -> None:
    found = offline_hints("Our garden is full of bees this morning.", language="en")
    assert found.hints == () and found.characters == 40 and found.max_characters == MAX_TEXT


def test_each_rule() -> None:
    assert codes("Short one. " * 500) == ["too_long"]
    long_sentence = " ".join(["the cat sat on a mat"] * 7) + "."
    assert codes(long_sentence) == ["long_sentence"]
    assert codes("THIS IS AMAZING NEWS for all of us") == ["all_caps"]
    assert codes("Sunset today #a #b #c #d #e #f") == ["many_hashtags"]
    assert codes("look https://example.com/x") == ["bare_link"]
    assert codes("A long read on gardens, worth it: https://example.com/x") == []


def test_too_long_says_by_how_much() -> None:
    hint = offline_hints("x" * (MAX_TEXT + 12), language="en").hints[0]
    assert hint.message.startswith("12 characters over this server's limit of 5,000")


@pytest.mark.parametrize(
    ("text", "language", "warning"),
    [
        ("Just watched the finale and the hero died. Wow.", "en", "Spoilers, Death"),
        ("Die Wahlen morgen und die Politik danach", "de", "Politik"),
        ("Un décès dans la famille cette semaine.", "fr", "Mort"),
    ],
)
def test_a_content_warning_is_proposed_for_sensitive_words(
    text: str, language: str, warning: str
) -> None:
    hint = offline_hints(text, language=language).hints[-1]
    assert hint.code == "content_warning" and hint.content_warning == warning
    # and not when there already is one
    assert "content_warning" not in codes(text, spoiler_text="cw", language=language)


# -- the model's suggestions -------------------------------------------------------------

DRAFT = "I went to the market today and I bought some really very nice apples there."
ANSWER = {
    "rewrites": [
        {"kind": "shorter", "text": "Bought lovely apples at the market today."},
        {"kind": "clearer", "text": "Today I bought very nice apples at the market."},
        {"kind": "engaging", "text": "Market day! Came home with the nicest apples."},
    ],
    "hashtags": ["#FarmersMarket", "apples", "not a tag", 7],
    "content_warning": None,
}


def test_a_json_answer_is_read_even_in_a_code_fence_or_amid_prose() -> None:
    for answer in (orjson.dumps(ANSWER).decode(),
                   f"```json\n{orjson.dumps(ANSWER).decode()}\n```",
                   f"Sure! Here you go: {orjson.dumps(ANSWER).decode()} Enjoy."):  # fmt: skip
        parsed = parse_suggestions(answer, model="m", draft=DRAFT, spoiler_text="")
        assert parsed is not None
        assert [r.kind for r in parsed.rewrites] == ["shorter", "clearer", "engaging"]
        assert parsed.hashtags == ("FarmersMarket", "apples") and parsed.content_warning is None


def test_prose_or_empty_json_is_nothing() -> None:
    assert parse_suggestions("Shorter: apples!", model="m", draft=DRAFT, spoiler_text="") is None
    assert parse_suggestions('{"rewrites": "no"}', model="m", draft=DRAFT, spoiler_text="") is None
    assert parse_suggestions("{not json}", model="m", draft=DRAFT, spoiler_text="") is None


@pytest.fixture
async def chat() -> AsyncIterator[tuple[FakeChatAPI, str]]:
    fake = FakeChatAPI()
    async with serve(fake.app) as base:
        yield fake, base
        fake.release.set()


@pytest.fixture
async def author(context: Context) -> Actor:
    await create_user(context.db, context.urls, "alice", "a good password")
    return await find_local_actor(context.db, context.urls, "alice")


class Helpers:
    """Builds drafting help over the test's instance, with or without the fake chat API,
    and closes the text models it made."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.made: list[OpenAITextProvider] = []

    def __call__(self, base: str | None, *, per_hour: int = 30, **changes: object) -> DraftingHelp:
        context, settings = self.context, self.context.settings
        if base is None:
            return DraftingHelp(context.db, context.media, settings, None)
        settings = dataclasses.replace(settings, ai_text_base_url=f"{base}/v1",
                                       ai_text_api_key=SECRET, **changes)  # fmt: skip
        self.made.append(OpenAITextProvider(settings))
        return DraftingHelp(context.db, context.media, settings, self.made[-1],
                            HourlyLimit(context.db, per_hour))  # fmt: skip


@pytest.fixture
async def helper(context: Context) -> AsyncIterator[Helpers]:
    helpers = Helpers(context)
    yield helpers
    for provider in helpers.made:
        await provider.aclose()


async def test_without_a_model_the_offline_part_and_a_note(
    context: Context, author: Actor, helper: Helpers
) -> None:
    found = await helper(None).suggest(author, DRAFT, language=None)
    assert found.model is None and found.language == "en"
    assert found.note == "No text model is configured on this server: these are offline hints."
    assert found.offline == offline_hints(DRAFT, language="en")


async def test_the_model_is_asked_once_for_json_in_the_drafts_language(
    context: Context, author: Actor, helper: Helpers, chat: tuple[FakeChatAPI, str]
) -> None:
    fake, base = chat
    fake.answer = orjson.dumps(ANSWER).decode()
    found = await helper(base).suggest(author, DRAFT, language="en-GB", spoiler_text="")
    assert found.model is not None and found.model.model == "gpt-4o-mini-2024-07-18"
    assert found.model.rewrites[0].text == "Bought lovely apples at the market today."
    assert found.offline.hashtags and found.note is None and found.language == "en"
    (body,) = fake.bodies
    system, user = body["messages"]
    assert "JSON" in system["content"] and "'en'" in system["content"]
    assert user == {"role": "user", "content": DRAFT}
    assert "response_format" not in body  # not every OpenAI-compatible server takes it


async def test_a_draft_over_the_limit_gets_the_offline_part_only(
    context: Context, author: Actor, helper: Helpers, chat: tuple[FakeChatAPI, str]
) -> None:
    found = await helper(chat[1]).suggest(author, "Apples. " * 700, language="en")
    assert found.model is None and [h.code for h in found.offline.hints] == ["too_long"]
    assert found.note == ("Shorten the draft to 5,000 characters, the post limit, for the "
                          "text model's suggestions.")  # fmt: skip
    assert chat[0].bodies == []


async def test_a_prose_answer_gives_the_offline_part_and_a_note(
    context: Context, author: Actor, helper: Helpers, chat: tuple[FakeChatAPI, str]
) -> None:
    fake, base = chat
    fake.answer = "Here is a shorter version: apples!"
    found = await helper(base).suggest(author, DRAFT, language="en")
    assert found.model is None and found.offline.hashtags
    assert found.note is not None and "could not read" in found.note


async def test_a_refusal_is_a_clear_400(
    context: Context, author: Actor, helper: Helpers, chat: tuple[FakeChatAPI, str]
) -> None:
    chat[0].mode = "refusal"
    with pytest.raises(TextRefused) as raised:
        await helper(chat[1]).suggest(author, DRAFT, language="en")
    assert raised.value.status == 400 and "refused this request" in raised.value.message


async def test_an_empty_draft_is_a_400(context: Context, author: Actor, helper: Helpers) -> None:
    with pytest.raises(BadRequest, match="write a draft first"):
        await helper(None).suggest(author, "   ", language=None)


async def test_the_hourly_limit_says_when_to_try_again(
    context: Context, author: Actor, helper: Helpers, chat: tuple[FakeChatAPI, str]
) -> None:
    now = [datetime(2026, 12, 2, 9, 0, tzinfo=UTC)]
    drafting = helper(chat[1], per_hour=2)
    drafting.limit.clock = lambda: now[0]
    for _ in range(2):
        await drafting.suggest(author, DRAFT, language="en")
    now[0] += timedelta(minutes=10)  # ten minutes later: the window closes in 50 minutes
    with pytest.raises(RateLimited) as raised:
        await drafting.suggest(author, DRAFT, language="en")
    assert raised.value.retry_after == 3000 and raised.value.headers == {"Retry-After": "3000"}
    assert "the limit is 2 per hour. Try again in 50 minutes." in raised.value.message
    assert len(chat[0].bodies) == 2  # the refused call never reached the model
    now[0] += timedelta(minutes=50)  # a new window
    await drafting.suggest(author, DRAFT, language="en")
    await drafting.suggest(author, DRAFT, language="en")
    with pytest.raises(RateLimited):
        await drafting.suggest(author, DRAFT, language="en")
    assert len(chat[0].bodies) == 4


async def test_the_limit_is_shared_by_every_process(context: Context, author: Actor) -> None:
    # Given two web processes, each with its own limit over the one database
    one, two = HourlyLimit(context.db, 2), HourlyLimit(context.db, 2)
    # When the user's calls go to one and then the other
    await one.charge(author.id)
    await two.charge(author.id)
    # Then the third call is refused by either
    for limit in (one, two):
        with pytest.raises(RateLimited):
            await limit.charge(author.id)


# -- alt text -----------------------------------------------------------------------------


async def upload(context: Context, author: Actor) -> Media:
    return await context.studio.upload(author, png(), filename="garden.png", description=None)


async def test_alt_text_through_a_vision_model(
    context: Context, author: Actor, helper: Helpers, chat: tuple[FakeChatAPI, str]
) -> None:
    fake, base = chat
    fake.answer = '"A small blue rectangle on a white background."'
    media = await upload(context, author)
    found = await helper(base, ai_text_vision=True).alt_text(author, media.id, language="de")
    assert found.text == "A small blue rectangle on a white background."
    assert found.source == "model" and found.model == "gpt-4o-mini-2024-07-18"
    system, user = fake.bodies[0]["messages"]
    assert "'de'" in system["content"]
    assert user["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


@pytest.mark.parametrize("vision", [False, None])
async def test_without_a_vision_model_alt_text_is_refused_not_invented(
    context: Context,
    author: Actor,
    helper: Helpers,
    chat: tuple[FakeChatAPI, str],
    vision: bool | None,
) -> None:
    media = await upload(context, author)
    drafting = helper(None if vision is None else chat[1])
    with pytest.raises(Unprocessable) as raised:
        await drafting.alt_text(author, media.id, language=None)
    assert raised.value.status == 422
    assert raised.value.message.startswith("no vision-capable model is configured")
    assert chat[0].bodies == []


async def test_alt_text_is_for_ones_own_images_only(
    context: Context, author: Actor, helper: Helpers, chat: tuple[FakeChatAPI, str]
) -> None:
    media = await upload(context, author)
    await create_user(context.db, context.urls, "bob", "a good password")
    bob = await find_local_actor(context.db, context.urls, "bob")
    with pytest.raises(NotFound):
        await helper(chat[1], ai_text_vision=True).alt_text(bob, media.id, language=None)
    assert chat[0].bodies == []


async def test_a_generated_image_has_its_alt_text_from_its_prompt(
    context: Context, author: Actor, helper: Helpers
) -> None:
    media = await upload(context, author)
    async with context.db.transaction() as session:
        row = await session.get(Media, media.id)
        assert row is not None
        row.ai_provider, row.ai_model, row.prompt = "openai", "gpt-image-1", "a fox in snow"
    found = await helper(None).alt_text(author, media.id, language=None)
    assert found.source == "prompt" and found.model == "gpt-image-1"
    assert found.text == "AI-generated image (gpt-image-1) from the prompt: a fox in snow"
