"""The assistant through the real text provider: the `openai` client speaking to a loopback
server that answers the chat completions API (tests/fake_openai.py), end to end from a
signed remote ask to the reply that federates."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest

from fedisocial.app import Context
from fedisocial.store.models import Actor
from fedisocial.studio.ai.text import OpenAITextProvider, text_provider
from tests.fake_openai import SECRET, FakeChatAPI
from tests.loopback import serve
from tests.test_assistant import ask, bob, reply_to, request_of, send
from tests.test_inbox import BOB, run_jobs

__all__ = ["bob"]  # the fixture, used by name


@pytest.fixture
async def chat(context: Context) -> AsyncIterator[FakeChatAPI]:
    """The assistant of ``context`` answers through an OpenAI-compatible endpoint."""
    fake = FakeChatAPI()
    async with serve(fake.app) as base:
        settings = dataclasses.replace(context.settings, ai_text_base_url=f"{base}/v1",
                                       ai_text_api_key=SECRET)  # fmt: skip
        provider = text_provider(settings)
        assert isinstance(provider, OpenAITextProvider)
        context.assistant.text = provider
        yield fake
        fake.release.set()
        await provider.aclose()


async def test_a_question_is_answered_by_the_chat_model_with_the_thread(
    client: httpx.AsyncClient, context: Context, bob: Actor, chat: FakeChatAPI
) -> None:
    chat.answer = "Die Hauptstadt ist Canberra."
    above = ask("20", "Wir treffen uns in der Hauptstadt Australiens.", language="de",
                mention=False)  # fmt: skip
    question = {**ask("21", "welche Stadt ist das?", language="de"), "inReplyTo": above["id"]}
    for post in (above, question):
        await send(client, post)
    await run_jobs(context)

    # The model got the admin's system prompt and the thread, in order, with our key
    [body] = chat.bodies
    assert body["model"] == context.settings.ai_text_model and not body.get("stream")
    roles = [m["role"] for m in body["messages"]]
    assert roles[0] == "system" and roles[1:] == ["user", "user"]
    said = [m["content"] for m in body["messages"][1:]]
    assert "Hauptstadt Australiens" in said[0] and "welche Stadt" in said[1]
    assert chat.headers[0]["authorization"] == f"Bearer {SECRET}"
    # and the reply, to bob, in German, is the model's answer
    reply = (await reply_to(context, question["id"])).data
    assert "Die Hauptstadt ist Canberra." in reply["content"]
    assert list(reply["contentMap"]) == ["de"]
    assert [t["href"] for t in reply["tag"] if t["type"] == "Mention"] == [BOB]
    request = await request_of(context, question["id"])
    assert request is not None and (request.status, request.kind) == ("answered", "text")


async def test_a_content_filter_gets_a_polite_reply_and_no_model_text(
    client: httpx.AsyncClient, context: Context, bob: Actor, chat: FakeChatAPI
) -> None:
    chat.mode = "content_filter"
    post = ask("22", "tell me something terrible")
    await send(client, post)
    await run_jobs(context)

    reply = (await reply_to(context, post["id"])).data
    request = await request_of(context, post["id"])
    assert request is not None and request.status == "refused"
    assert SECRET not in reply["content"] and len(chat.bodies) == 1


async def test_a_rate_limited_model_leaves_the_ask_queued_for_its_retry(
    client: httpx.AsyncClient, context: Context, bob: Actor, chat: FakeChatAPI
) -> None:
    chat.mode = "429-long"  # resets in 5 minutes
    post = ask("23", "what is a fediverse?")
    await send(client, post)
    await run_jobs(context)

    request = await request_of(context, post["id"])
    assert request is not None and request.status not in ("answered", "failed", "refused")
    with pytest.raises(AssertionError):
        await reply_to(context, post["id"])  # nothing posted yet
