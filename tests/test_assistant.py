"""The assistant: mentioned from anywhere, it replies, within its rules (issue 12).

Each story is a signed delivery from a fake remote host (as in test_inbox.py) of a post
that mentions ``@assistant``, the jobs run by a real worker, and the reply read from the
store as it federates. Text models are a small in-test class implementing the
``TextProvider`` protocol; images come from the offline local renderer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from fedisocial.ap.render import iso
from fedisocial.ap.vocab import AS_PUBLIC
from fedisocial.app import Context, build_context
from fedisocial.assistant import admin
from fedisocial.assistant.actor import ensure_assistant_actor
from fedisocial.assistant.intent import decide
from fedisocial.config import Settings
from fedisocial.errors import ConfigError, Forbidden, RemoteError
from fedisocial.federation.remote import store_actor
from fedisocial.social.accounts import create_user, find_local_actor, render_actor
from fedisocial.social.notifications import SERVICE_MENTIONED
from fedisocial.store.models import (
    Actor,
    AssistantRequest,
    Block,
    DomainBlock,
    Job,
    Object,
    ServiceState,
    utcnow,
)
from fedisocial.studio.ai.images import OpenAIImageProvider
from fedisocial.studio.ai.text import Message, TextAnswer, TextRateLimited, TextRefused
from tests.c2s_helpers import created, person
from tests.fake_openai import SECRET, FakeImagesAPI
from tests.loopback import serve
from tests.test_inbox import (
    AS2,
    BASE,
    BOB,
    CAROL,
    REMOTE,
    activity,
    actor_doc,
    count,
    deliver,
    object_row,
    remote_host,
    remote_key,
    run_jobs,
)

ASSISTANT = f"{BASE}/users/assistant"
MENTION = (f'<span class="h-card"><a href="{BASE}/@assistant" class="u-url mention">'
           f"@<span>assistant</span></a></span>")  # fmt: skip


# -- helpers ----------------------------------------------------------------------------


def ask(
    name: str, text: str, *, author: str = BOB, visibility: str = "public",
    language: str = "en", mention: bool = True, age: timedelta = timedelta(0),
    **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    """A Mastodon-like Note by ``author`` that mentions the assistant and says ``text``."""
    content = f"<p>{MENTION if mention else ''} {text}</p>"
    to, cc = {
        "public": ([AS_PUBLIC], [f"{author}/followers", ASSISTANT]),
        "unlisted": ([f"{author}/followers"], [AS_PUBLIC, ASSISTANT]),
        "followers": ([f"{author}/followers"], [ASSISTANT]),
        "direct": ([ASSISTANT], []),
    }[visibility]
    tags = [{"type": "Mention", "href": ASSISTANT, "name": "@assistant@127.0.0.1:8000"}]
    return {"id": f"{author}/statuses/{name}", "type": "Note", "attributedTo": author,
            "content": content, "contentMap": {language: content},
            "published": iso(utcnow() - age), "to": to, "cc": cc,
            "tag": tags if mention else [], **extra}  # fmt: skip


def key_of(actor: str) -> Any:
    """The key of a remote actor of the tests (bob's is test_inbox's default one)."""
    return remote_key() if actor == BOB else remote_key(actor.rsplit("/", 1)[-1])


async def send(client: httpx.AsyncClient, post: dict[str, Any], signer: str = BOB) -> None:
    create = activity("Create", post, actor=signer, name=post["id"].rsplit("/", 1)[-1])
    response = await deliver(client, create, signer=signer, key=key_of(signer))
    assert response.status_code == 202, response.text


async def request_of(context: Context, post_uri: str) -> AssistantRequest | None:
    async with context.db.session() as session:
        return await session.scalar(
            select(AssistantRequest).where(AssistantRequest.post_uri == post_uri)
        )


async def reply_to(context: Context, post_uri: str) -> Object:
    """The assistant's reply to ``post_uri`` (exactly one)."""
    async with context.db.session() as session:
        rows = list(await session.scalars(select(Object).where(
            Object.in_reply_to == post_uri, Object.actor_uri == ASSISTANT,
            Object.type == "Note", Object.deleted_at.is_(None),
        )))  # fmt: skip
    assert len(rows) == 1, [row.data.get("content") for row in rows]
    return rows[0]


async def replies(context: Context) -> list[Object]:
    async with context.db.session() as session:
        return list(await session.scalars(select(Object).where(
            Object.actor_uri == ASSISTANT, Object.type == "Note", Object.deleted_at.is_(None)
        ).order_by(Object.id)))  # fmt: skip


@dataclass
class Model:
    """A text model for the tests: answers ``answer`` (or refuses), keeps what it was asked."""

    answer: str = "Forty-two."
    refuse: bool = False
    name: str = "test"
    model: str = "test-chat-1"
    vision: bool = False
    asked: list[list[Message]] = field(default_factory=list)

    async def complete(
        self, messages: Sequence[Message], *, max_tokens: int | None = None
    ) -> TextAnswer:
        self.asked.append(list(messages))
        if self.refuse:
            raise TextRefused("the model declined: content policy")
        return TextAnswer(self.answer, self.model)

    async def aclose(self) -> None:
        return None


@dataclass
class Outage(Model):
    """A text model that is down: every call fails as an outage would."""

    async def complete(
        self, messages: Sequence[Message], *, max_tokens: int | None = None
    ) -> TextAnswer:
        self.asked.append(list(messages))
        raise RemoteError("the text model did not answer (connection refused)")


@pytest.fixture
async def bob(context: Context) -> Actor:
    return await store_actor(context.db, actor_doc(BOB, remote_key()))


@pytest.fixture
async def carol(context: Context) -> Actor:
    """Another remote account, on bob's server, who opted out of AI use (FEP-5e53)."""
    doc = actor_doc(CAROL, remote_key("carol"), xRobotsTag="noai, noimageai")
    return await store_actor(context.db, doc)


async def remote(context: Context, uri: str, **extra: Any) -> Actor:
    return await store_actor(context.db, actor_doc(uri, key_of(uri), **extra))


# -- the actor --------------------------------------------------------------------------


async def test_the_assistant_is_a_service_actor_found_by_webfinger(
    client: httpx.AsyncClient, context: Context
) -> None:
    # When a server looks @assistant up
    finger = await client.get("/.well-known/webfinger",
                              params={"resource": "acct:assistant@127.0.0.1:8000"})  # fmt: skip
    assert finger.status_code == 200
    self_link = next(link for link in finger.json()["links"] if link["rel"] == "self")
    assert self_link["href"] == ASSISTANT
    # Then its actor document is a Service whose profile says what it is and how to opt out
    doc = (await client.get(ASSISTANT, headers={"Accept": AS2})).json()
    assert doc["type"] == "Service" and doc["preferredUsername"] == "assistant"
    assert "AI assistant" in doc["summary"] and "noai" in doc["summary"]
    assert "local/" in doc["summary"] and "offline" in doc["summary"]
    assert "5 requests an hour" in doc["summary"]
    fields = {f["name"]: f["value"] for f in doc["attachment"] if f["type"] == "PropertyValue"}
    assert fields["Text"].startswith("offline") and fields["Images"].startswith("local/")
    assert doc["manuallyApprovesFollowers"] is False


async def test_a_changed_profile_is_sent_to_its_followers(
    context: Context, settings: Settings
) -> None:
    # When the instance starts again with the assistant turned off
    off = replace(settings, assistant_enabled=False)
    second = await build_context(off, context.db)
    try:
        # Then its profile says so, and an Update of it goes to its followers
        service = await find_local_actor(context.db, context.urls, "assistant")
        assert "switched off" in service.summary
        async with context.db.session() as session:
            updates = list(await session.scalars(select(Object).where(
                Object.type == "Update", Object.actor_uri == ASSISTANT
            )))  # fmt: skip
        assert [u.data["object"]["summary"] for u in updates] == [service.summary]
    finally:
        await second.close(database=False)
    # and starting once more, unchanged, tells nothing new
    third = await build_context(off, context.db)
    await third.close(database=False)
    assert await count(context, Object, Object.type == "Update") == 1


async def test_a_renamed_assistant_leaves_the_old_one_silent(
    context: Context, settings: Settings
) -> None:
    # When the instance starts again with the assistant called "helper"
    renamed = await build_context(replace(settings, assistant_username="helper"), context.db)
    await renamed.close(database=False)
    # Then "helper" answers mentions, and the old account no longer does
    async with context.db.session() as session:
        states = {s.actor_uri: s.enabled for s in await session.scalars(select(ServiceState))}
    assert states == {ASSISTANT: False, f"{BASE}/users/helper": True}


async def test_nobody_can_sign_up_with_the_assistants_name(context: Context) -> None:
    with pytest.raises(Exception, match="already taken"):
        await create_user(context.db, context.urls, "Assistant", "long enough")


async def test_a_person_with_the_name_stops_start_up(context: Context) -> None:
    # Given a person called "helper", and the assistant configured to be called so
    await create_user(context.db, context.urls, "helper", "long enough")
    settings = replace(context.settings, assistant_username="helper")
    # Then start-up refuses, naming the setting
    with pytest.raises(ConfigError) as refused:
        await ensure_assistant_actor(
            context.db, context.urls, settings, context.studio.provider, None
        )
    assert refused.value.field == "assistant.username" and "@helper" in refused.value.message


# -- answering --------------------------------------------------------------------------


@pytest.mark.parametrize(("asked", "replied"), [
    ("public", "unlisted"), ("unlisted", "unlisted"), ("followers", "direct"),
    ("direct", "direct"),
])  # fmt: skip
async def test_a_remote_ask_to_draw_gets_a_labeled_image_reply(
    client: httpx.AsyncClient, context: Context, bob: Actor, asked: str, replied: str
) -> None:
    # Given bob, on another server, asking for a picture in German
    post = ask("1", "zeichne eine Katze auf dem Mond", visibility=asked, language="de")
    # When his post arrives and the jobs run
    await send(client, post)
    await run_jobs(context)
    # Then the assistant replied to it, mentioning him, never wider than he asked
    reply = (await reply_to(context, post["id"])).data
    assert reply["inReplyTo"] == post["id"]
    assert {"type": "Mention", "href": BOB, "name": "@bob@remote.example"} in reply["tag"]
    audience = [*reply.get("to", ()), *reply.get("cc", ())]
    assert BOB in audience
    if replied == "unlisted":
        assert AS_PUBLIC in reply["cc"] and AS_PUBLIC not in reply["to"]
    else:
        assert AS_PUBLIC not in audience and f"{ASSISTANT}/followers" not in audience
        assert reply["to"] == [BOB]
    # in his language, with the prompt it used, and every AI label the studio applies
    assert list(reply["contentMap"]) == ["de"]
    assert "eine Katze auf dem Mond" in reply["content"] and "Prompt" in reply["content"]
    assert "Image generated by AI" in reply["content"]
    hashtag = {"type": "Hashtag", "href": f"{BASE}/tags/aigenerated", "name": "#AIGenerated"}
    assert hashtag in reply["tag"]
    [image] = reply["attachment"]
    assert image["type"] == "Image" and "eine Katze auf dem Mond" in image["name"]
    assert image["digitalSourceType"].endswith("trainedAlgorithmicMedia")
    request = await request_of(context, post["id"])
    assert request is not None and request.status == "answered" and request.kind == "image"
    # and the reply goes out to bob's server
    assert await count(context, Job, Job.kind == "fanout", Job.ref == reply["id"]) == 1


async def test_an_image_to_edit_is_drawn_anew_and_the_reply_says_so(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    photo = {"type": "Document", "mediaType": "image/jpeg", "url": f"{REMOTE}/media/1.jpg",
             "name": "a photo of my dog"}  # fmt: skip
    post = ask("2", "edit this so the dog wears a hat", attachment=[photo])
    await send(client, post)
    await run_jobs(context)
    reply = (await reply_to(context, post["id"])).data
    assert "cannot edit images" in reply["content"]
    assert "the dog wears a hat" in reply["content"] and len(reply["attachment"]) == 1


async def test_a_question_offline_gets_the_honest_fixed_answer(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    # Given no text model on this instance
    assert context.assistant.text is None
    # When bob asks a question in French
    post = ask("3", "quelle est la capitale de l'Australie ?", language="fr")
    await send(client, post)
    await run_jobs(context)
    # Then the reply says, in French, that it cannot answer here but can draw
    reply = (await reply_to(context, post["id"])).data
    assert "pas de modèle de texte" in reply["content"] and "dessine" in reply["content"]
    assert list(reply["contentMap"]) == ["fr"] and not reply.get("attachment")
    request = await request_of(context, post["id"])
    assert request is not None and (request.status, request.kind) == ("answered", "text")


async def test_a_question_with_a_text_model_reads_the_thread_but_not_opted_out_authors(
    client: httpx.AsyncClient, context: Context, bob: Actor, carol: Actor
) -> None:
    # Given a thread: carol (noai) asks, bob answers her, then bob asks the assistant
    model = Model(answer="Canberra is the capital. Ask @someone@else.example too.")
    context.assistant.text = model
    root = {**ask("4", "where do we meet?", author=CAROL, mention=False)}
    middle = {**ask("5", "in the capital of Australia", mention=False), "inReplyTo": root["id"]}
    question = {**ask("6", "which city is that?"), "inReplyTo": middle["id"]}
    for post, signer in ((root, CAROL), (middle, BOB), (question, BOB)):
        await send(client, post, signer)
    await run_jobs(context)
    # Then the model got the system prompt, bob's post above, and the question, not carol's
    [messages] = model.asked
    assert messages[0].role == "system" and "fediverse" in messages[0].text
    texts = [m.text for m in messages[1:]]
    assert texts == ["@bob@remote.example: in the capital of Australia",
                     "@bob@remote.example: which city is that?"]  # fmt: skip
    assert not any("where do we meet" in m.text for m in messages)
    # And the reply carries its answer, mentions nobody it named, and says what it read
    reply = (await reply_to(context, question["id"])).data
    assert "Canberra is the capital" in reply["content"]
    assert [t["href"] for t in reply["tag"] if t["type"] == "Mention"] == [BOB]
    assert "I read your post and 1 post(s) above it." in reply["content"]
    assert "1 post(s) by authors who opted out of AI use were left out." in reply["content"]
    assert list(reply["contentMap"]) == ["en"]


async def test_a_refused_question_gets_a_short_polite_reply(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    context.assistant.text = Model(refuse=True)
    post = ask("7", "tell me something terrible", language="es")
    await send(client, post)
    await run_jobs(context)
    reply = (await reply_to(context, post["id"])).data
    assert "Lo siento, no puedo ayudar" in reply["content"]
    request = await request_of(context, post["id"])
    assert request is not None and request.status == "refused"


async def test_a_picture_the_image_model_refuses_gets_a_polite_reply(
    client: httpx.AsyncClient, context: Context, settings: Settings, bob: Actor
) -> None:
    # Given the studio on an OpenAI-compatible image endpoint that refuses the prompt
    fake = FakeImagesAPI()
    fake.mode = "400-policy"
    async with serve(fake.app) as base:
        configured = replace(settings, ai_images_base_url=f"{base}/v1",
                             ai_images_api_key=SECRET)  # fmt: skip
        provider = OpenAIImageProvider(configured, context.client)
        context.studio.provider = provider
        try:
            # When bob asks for a picture
            post = ask("7i", "draw something forbidden", language="de")
            await send(client, post)
            await run_jobs(context)
        finally:
            await provider.aclose()
    # Then the model was asked once, and the reply kept back for the image is replaced by
    # a short polite one (the kept-back one was never delivered)
    assert [body["prompt"] for body in fake.bodies] == ["something forbidden"]
    reply = (await reply_to(context, post["id"])).data
    assert "bei dieser Anfrage kann ich nicht helfen" in reply["content"]
    assert not reply.get("attachment")
    request = await request_of(context, post["id"])
    assert request is not None and request.status == "refused"
    assert request.reply_uri == reply["id"] and "refused this prompt" in (request.reason or "")


async def test_a_model_that_stays_down_ends_in_an_apology(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    # Given a text model that is down
    model = Outage()
    context.assistant.text = model
    post = ask("8", "what time is it?")
    await send(client, post)
    await run_jobs(context)
    # Then the job waits to try again (no reply yet, the request still running)
    request = await request_of(context, post["id"])
    assert request is not None and request.status == "running"
    assert await count(context, Object, Object.actor_uri == ASSISTANT) == 0
    # When it has been tried for the last time
    await context.assistant.gave_up({"post": post["id"], "service": ASSISTANT},
                                    RemoteError("the text model did not answer"))  # fmt: skip
    # Then bob gets an apology
    reply = (await reply_to(context, post["id"])).data
    assert "something went wrong" in reply["content"]
    request = await request_of(context, post["id"])
    assert request is not None and request.status == "failed"


@dataclass
class Busy(Model):
    """A text model over its rate limit once, then answering."""

    async def complete(
        self, messages: Sequence[Message], *, max_tokens: int | None = None
    ) -> TextAnswer:
        if not self.asked:
            self.asked.append(list(messages))
            raise TextRateLimited("rate limited by the model's server", retry_after=120)
        return await super().complete(messages, max_tokens=max_tokens)


@pytest.mark.parametrize("settings", [{"FEDISOCIAL_ASSISTANT_PER_ACTOR_PER_HOUR": "1"}],
                         indirect=True)  # fmt: skip
async def test_a_rate_limited_model_is_asked_again_within_the_askers_quota(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    # Given a text model over its rate limit, and a quota of one request an hour
    model = Busy(answer="It is noon.")
    context.assistant.text = model
    post = ask("8b", "what time is it?")
    await send(client, post)
    await run_jobs(context)
    # Then the job waits as long as the model asked (no reply yet)
    async with context.db.session() as session:
        job = await session.scalar(select(Job).where(Job.kind == SERVICE_MENTIONED))
    assert job is not None and job.status == "queued" and job.last_error
    assert job.run_at >= utcnow() + timedelta(seconds=100)
    assert await replies(context) == []
    # When its time comes
    async with context.db.transaction() as session:
        await session.execute(update(Job).where(Job.id == job.id).values(run_at=utcnow()))
    await run_jobs(context)
    # Then the model is asked again and its answer is the reply (the request counted once)
    assert len(model.asked) == 2
    assert "It is noon." in (await reply_to(context, post["id"])).data["content"]


async def test_a_post_delivered_twice_or_edited_is_answered_once(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    post = ask("9", "draw a lighthouse")
    await send(client, post)
    await send(client, post)  # the same Create again
    update = activity("Update", {**post, "content": post["content"] + " at night"}, name="9u")
    assert (await deliver(client, update)).status_code == 202
    await run_jobs(context)
    await reply_to(context, post["id"])  # exactly one
    assert await count(context, Job, Job.kind == SERVICE_MENTIONED) == 1


# -- what it does not answer ------------------------------------------------------------


async def test_an_old_post_is_not_answered(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    post = ask("10", "draw a tree", age=timedelta(hours=25))
    await send(client, post)
    await run_jobs(context)
    await _skipped(context, post, "older than 24 hours")


@pytest.mark.parametrize("profile", [{"type": "Service"}, {"type": "Application"},
                                     {"bot": True}])  # fmt: skip
async def test_a_bot_is_not_answered(
    client: httpx.AsyncClient, context: Context, profile: dict[str, Any]
) -> None:
    robot = f"{REMOTE}/users/robot"
    await remote(context, robot, **profile)
    post = ask("11", "draw a robot", author=robot)
    await send(client, post, robot)
    await run_jobs(context)
    await _skipped(context, post, "is a bot")


async def test_its_own_post_mentioning_itself_asks_nothing(context: Context) -> None:
    service = await find_local_actor(context.db, context.urls, "assistant")
    await context.outbox.post(service, "@assistant draw yourself")
    await run_jobs(context)
    assert await count(context, AssistantRequest) == 0
    assert await count(context, Object, Object.actor_uri == ASSISTANT, Object.type == "Note") == 1


async def test_a_reply_in_its_thread_without_a_new_mention_is_not_answered(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    # Given the assistant answered bob
    first = ask("12", "draw a boat")
    await send(client, first)
    await run_jobs(context)
    answer = await reply_to(context, first["id"])
    # When bob thanks it in the thread, without mentioning it again
    thanks = {**ask("13", "thanks!", mention=False), "inReplyTo": answer.uri}
    await send(client, thanks)
    await run_jobs(context)
    # Then it does not answer
    await _skipped(context, thanks, "does not mention the assistant")


async def test_a_blocked_account_is_not_answered(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    await _block(context, Block(blocker_uri=ASSISTANT, blocked_uri=BOB, activity_uri="b1"))
    post = ask("14", "draw a wall")
    await send(client, post)
    await run_jobs(context)
    # the mention of a blocker is not even recorded: nothing is asked
    assert await request_of(context, post["id"]) is None
    assert await replies(context) == []


async def test_a_blocked_server_is_not_answered(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    await _block(context, DomainBlock(blocker_uri=ASSISTANT, domain="remote.example"))
    post = ask("15", "draw a fence")
    await send(client, post)
    await run_jobs(context)
    await _skipped(context, post, "blocked")


async def test_a_thread_with_a_blocked_account_is_not_answered(
    client: httpx.AsyncClient, context: Context, bob: Actor, carol: Actor
) -> None:
    await _block(context, Block(blocker_uri=ASSISTANT, blocked_uri=CAROL, activity_uri="b2"))
    root = ask("16", "I say something", author=CAROL, mention=False)
    question = {**ask("17", "what do you think of this?"), "inReplyTo": root["id"]}
    await send(client, root, CAROL)
    await send(client, question)
    await run_jobs(context)
    await _skipped(context, question, "a blocked account is in the thread")


async def test_paused_it_waits_and_resumed_it_answers(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    # Given a paused assistant
    assert await admin.set_paused(context.db, ASSISTANT, paused=True)
    post = ask("18", "draw a clock")
    await send(client, post)
    await run_jobs(context)
    # Then the request waits, queued, with a job to look again later
    request = await request_of(context, post["id"])
    assert request is not None and request.status == "queued"
    assert "paused" in (request.reason or "")
    assert await replies(context) == []
    assert await count(context, Job, Job.kind == SERVICE_MENTIONED, Job.status == "queued") == 1
    # When it is resumed
    assert await admin.set_paused(context.db, ASSISTANT, paused=False)
    await run_jobs(context)
    # Then it answers
    await reply_to(context, post["id"])


@pytest.mark.parametrize("settings", [{"FEDISOCIAL_ASSISTANT_ENABLED": "false"}],
                         indirect=True)  # fmt: skip
async def test_turned_off_it_queues_nothing_and_says_so(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    post = ask("19", "draw a switch")
    await send(client, post)
    await run_jobs(context)
    assert await count(context, Job, Job.kind == SERVICE_MENTIONED) == 0
    assert await replies(context) == []
    service = await find_local_actor(context.db, context.urls, "assistant")
    assert "switched off" in render_actor(service)["summary"]


# -- quotas -----------------------------------------------------------------------------


@pytest.mark.parametrize(("settings", "askers", "scope"), [
    ({"FEDISOCIAL_ASSISTANT_PER_ACTOR_PER_HOUR": "2"}, ["bob"] * 4, "2 per account per hour"),
    ({"FEDISOCIAL_ASSISTANT_PER_DOMAIN_PER_DAY": "2"}, ["bob", "dave", "dave", "dave"],
     "2 per server (remote.example) per day"),
    ({"FEDISOCIAL_ASSISTANT_PER_INSTANCE_PER_HOUR": "2"},
     ["bob", "erin", "erin", "erin"], "2 for everyone per hour"),
], indirect=["settings"])  # fmt: skip
async def test_over_a_quota_the_asker_is_told_once_when_to_try_again(
    client: httpx.AsyncClient, context: Context, bob: Actor, askers: list[str], scope: str
) -> None:
    # Given askers on bob's server and on another one
    actors = {
        "bob": BOB,
        "dave": f"{REMOTE}/users/dave",
        "erin": "https://other.example/users/erin",
    }
    for name in set(askers) - {"bob"}:
        await remote(context, actors[name])
    # When they ask one after another
    posts = []
    for number, name in enumerate(askers):
        posts.append(ask(f"q{number}", f"draw a star number {number}", author=actors[name]))
        await send(client, posts[-1], actors[name])
        await run_jobs(context)
    # Then two are answered, the third is told when to try again, the fourth left alone
    statuses = [getattr(await request_of(context, p["id"]), "status", None) for p in posts]
    assert statuses == ["answered", "answered", "limited", "limited"]
    told = (await reply_to(context, posts[2]["id"])).data
    assert f"You have reached my limit ({scope})" in told["content"]
    assert "try again after" in told["content"] and " UTC (in " in told["content"]
    assert len(await replies(context)) == 3


# -- the rules of intent ----------------------------------------------------------------


@pytest.mark.parametrize(("text", "kind", "prompt"), [
    ("@assistant draw a cat on the moon", "image", "a cat on the moon"),
    ("@assistant please make me a picture of a red fox", "image", "a red fox"),
    ("@assistant@social.example paint: stormy sea", "image", "stormy sea"),
    ("@assistant zeichne mir einen Hund", "image", "einen Hund"),
    ("@assistant erstelle ein Bild von einem Schloss", "image", "einem Schloss"),
    ("@assistant dessine-moi un mouton", "image", "un mouton"),
    ("@assistant fais une image d'un château", "image", "un château"),
    ("@assistant dibuja un gato", "image", "un gato"),
    ("@assistant hazme una imagen de un barco", "image", "un barco"),
    ("@assistant what is a drawing?", "text", "what is a drawing?"),
    ("@assistant draw", "text", "draw"),
    ("@assistant how do I draw a cat?", "text", "how do I draw a cat?"),
])  # fmt: skip
def test_what_a_post_asks_for(text: str, kind: str, prompt: str) -> None:
    intent = decide(text)
    assert (intent.kind, intent.prompt) == (kind, prompt)


def test_an_attached_image_and_an_ask_to_change_it_is_an_edit() -> None:
    assert decide("@a edit: make it blue", has_image=True).edit
    assert not decide("@a edit: make it blue").edit
    assert decide("@a what is in this picture?", has_image=True).kind == "text"


# -- helpers of the stories -------------------------------------------------------------


async def _skipped(context: Context, post: dict[str, Any], reason: str) -> None:
    request = await request_of(context, post["id"])
    assert request is not None and request.status == "skipped", request and request.status
    assert reason in (request.reason or "")
    for row in await replies(context):
        assert row.in_reply_to != post["id"]


async def _block(context: Context, row: Block | DomainBlock) -> None:
    async with context.db.transaction() as session:
        session.add(row)


async def test_the_reply_is_stored_as_a_normal_post(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    post = ask("20", "draw a bridge")
    await send(client, post)
    await run_jobs(context)
    reply = await reply_to(context, post["id"])
    stored = await object_row(context, reply.uri)
    assert stored is not None and stored.local and stored.visibility == "unlisted"
    # its page is served like any post's
    page = await client.get(reply.uri, headers={"Accept": AS2})
    assert page.status_code == 200 and page.json()["id"] == reply.uri


async def test_it_accepts_follows_and_follows_nobody(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    # When bob follows the assistant
    follow = activity("Follow", ASSISTANT, name="f1")
    assert (await deliver(client, follow)).status_code == 202
    await run_jobs(context)
    # Then it accepts at once, as an unlocked account does
    async with context.db.session() as session:
        accepts = list(await session.scalars(select(Object).where(
            Object.type == "Accept", Object.actor_uri == ASSISTANT
        )))  # fmt: skip
    assert [row.data["object"]["id"] for row in accepts] == [follow["id"]]
    # And it cannot be made to follow anyone
    service = await find_local_actor(context.db, context.urls, "assistant")
    with pytest.raises(Forbidden, match="never follows anyone"):
        await context.outbox.follow(service, BOB)


async def test_local_asks_through_the_mastodon_api_and_c2s_are_answered(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given alice, a local account with an app's token
    alice = await person(context, "alice", scope="read write")
    # When she asks through the Mastodon API (followers-only) and through C2S (direct)
    asked = {"status": "@assistant draw a kite", "visibility": "private"}
    masto = await client.post("/api/v1/statuses", headers=alice.auth, json=asked)
    assert masto.status_code == 200, masto.text
    note = {"@context": "https://www.w3.org/ns/activitystreams", "type": "Note",
            "content": "@assistant draw a drum", "to": [ASSISTANT],
            "tag": [{"type": "Mention", "href": ASSISTANT, "name": "@assistant"}]}  # fmt: skip
    c2s = await created(client, alice, note)
    await run_jobs(context)
    # Then each is answered with a direct reply to her alone, which she is told of
    assert c2s["type"] == "Create"
    for uri in (masto.json()["uri"], c2s["object"]["id"]):
        reply = (await reply_to(context, uri)).data
        assert reply["to"] == [alice.uri] and not reply.get("cc")
    told = await client.get("/api/v1/notifications", headers=alice.auth,
                            params={"types[]": "mention"})  # fmt: skip
    assert [n["account"]["acct"] for n in told.json()] == ["assistant", "assistant"]


async def test_a_request_cancelled_while_the_model_thinks_is_never_answered(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    # Given a text model during whose answer the admin cancels the request
    @dataclass
    class Slow(Model):
        async def complete(
            self, messages: Sequence[Message], *, max_tokens: int | None = None
        ) -> TextAnswer:
            [running] = await admin.queue(context.db, ASSISTANT)
            assert running.status == "running"
            await admin.cancel(context.outbox, ASSISTANT, running.id)
            return await super().complete(messages, max_tokens=max_tokens)

    context.assistant.text = Slow()
    post = ask("22", "what is the answer?")
    await send(client, post)
    await run_jobs(context)
    # Then its answer is not published, and the request stays cancelled
    assert await replies(context) == []
    request = await request_of(context, post["id"])
    assert request is not None and request.status == "cancelled"


async def test_an_asker_who_opted_out_is_told_and_never_prompted(
    client: httpx.AsyncClient, context: Context, carol: Actor
) -> None:
    # Given a text model, and carol, whose profile says noai, asking it something
    model = Model()
    context.assistant.text = model
    post = ask("23", "what do you think of my post?", author=CAROL)
    await send(client, post, CAROL)
    await run_jobs(context)
    # Then her words never reach the model; the reply says why
    assert model.asked == []
    reply = (await reply_to(context, post["id"])).data
    assert "Your profile says noai" in reply["content"]
    request = await request_of(context, post["id"])
    assert request is not None and request.status == "refused"


async def test_the_thread_above_is_fetched_and_a_failed_fetch_ends_the_walk(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given dana on a server that serves her post above the ask, but not the one above that
    docs: dict[str, dict[str, Any]] = {}
    model = Model(answer="Someone said hello.")
    context.assistant.text = model
    hits: list[str] = []
    async with remote_host(docs, hits) as host:
        dana = f"{host}/users/dana"
        await remote(context, dana)
        parent = {**ask("p", "hello, world", author=dana, mention=False),
                  "inReplyTo": f"{dana}/statuses/gone"}  # fmt: skip
        docs[parent["id"].removeprefix(host)] = parent
        question = {**ask("q", "what was said above?", author=dana), "inReplyTo": parent["id"]}
        # When she asks the assistant in reply to it
        await send(client, question, dana)
        await run_jobs(context)
    # Then the post above was fetched from her server, the missing one ended the walk,
    # and the answer went out with what it read
    assert "/users/dana/statuses/p" in hits and "/users/dana/statuses/gone" in hits
    [messages] = model.asked
    handle = f"@dana@{host.split('//')[1]}"
    assert [m.text for m in messages[1:]] == [f"{handle}: hello, world",
                                              f"{handle}: what was said above?"]  # fmt: skip
    reply = (await reply_to(context, question["id"])).data
    assert "Someone said hello." in reply["content"]
    assert "I read your post and 1 post(s) above it." in reply["content"]


async def test_its_profile_page_and_account_show_a_bot(client: httpx.AsyncClient) -> None:
    page = await client.get("/@assistant", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "AI assistant" in page.text
    account = await client.get("/api/v1/accounts/lookup", params={"acct": "assistant"})
    assert account.status_code == 200 and account.json()["bot"] is True
