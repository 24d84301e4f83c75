"""The text model: the real ``openai`` client against a loopback chat completions API.

The fake server answers POST /v1/chat/completions the way OpenAI does
(https://platform.openai.com/docs/api-reference/chat/create), stream off and without
tools: answers, refusals (three ways), 429 with Retry-After, 401, 500 and slow answers.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fedisocial.config import Settings, load_settings
from fedisocial.errors import BadRequest, ConfigError, RemoteError, RemoteStatus
from fedisocial.studio.ai.text import (
    Message,
    OpenAITextProvider,
    TextRateLimited,
    TextRefused,
    text_provider,
)
from tests.fake_openai import SECRET, FakeChatAPI, png
from tests.loopback import serve


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeChatAPI, str]]:
    fake = FakeChatAPI()
    async with serve(fake.app) as base:
        yield fake, base
        fake.release.set()  # let a slow handler finish, or the server waits for it


def configure(settings: Settings, base: str, **changes: Any) -> Settings:
    values = {"ai_text_base_url": f"{base}/v1", "ai_text_api_key": SECRET,
              "ai_text_timeout": 10.0, **changes}  # fmt: skip
    return dataclasses.replace(settings, **values)


@pytest.fixture
async def provider(
    settings: Settings, api: tuple[FakeChatAPI, str]
) -> AsyncIterator[OpenAITextProvider]:
    built = OpenAITextProvider(configure(settings, api[1]))
    yield built
    await built.aclose()


ASK = [Message("system", "You help people write."), Message("user", "Make it shorter.")]


async def failure(provider: OpenAITextProvider) -> Exception:
    """The exception complete() raises; checks the API key appears nowhere in it."""
    with pytest.raises(Exception) as raised:
        await provider.complete(ASK)
    assert SECRET not in str(raised.value) and SECRET not in repr(raised.value)
    return raised.value


# -- answers --------------------------------------------------------------------


async def test_an_answer_with_the_system_prompt_and_max_tokens_sent(
    provider: OpenAITextProvider, api: tuple[FakeChatAPI, str]
) -> None:
    fake, _ = api
    answer = await provider.complete(ASK, max_tokens=55)
    assert answer.text == "A fine answer." and answer.model == "gpt-4o-mini-2024-07-18"
    body = fake.bodies[0]
    assert body["model"] == "gpt-4o-mini" and body["max_tokens"] == 55
    assert body["messages"] == [{"role": "system", "content": "You help people write."},
                                {"role": "user", "content": "Make it shorter."}]  # fmt: skip
    assert "tools" not in body and not body.get("stream")
    assert fake.headers[0]["authorization"] == f"Bearer {SECRET}"


async def test_the_configured_max_tokens_is_the_default(
    provider: OpenAITextProvider, api: tuple[FakeChatAPI, str]
) -> None:
    api[0].answer = lambda body: f"you said {body['messages'][-1]['content']}"
    answer = await provider.complete(ASK)
    assert answer.text == "you said Make it shorter."
    assert api[0].bodies[0]["max_tokens"] == 400


async def test_images_go_as_data_urls_to_a_vision_model_only(
    settings: Settings, api: tuple[FakeChatAPI, str]
) -> None:
    fake, base = api
    image = png()
    asked = [Message("user", "Describe this image.", images=((image, "image/png"),))]
    for vision in (True, False):
        provider = OpenAITextProvider(configure(settings, base, ai_text_vision=vision))
        await provider.complete(asked)
        await provider.aclose()
    with_vision, without = (body["messages"][0]["content"] for body in fake.bodies)
    data_url = f"data:image/png;base64,{base64.b64encode(image).decode()}"
    assert with_vision == [{"type": "text", "text": "Describe this image."},
                           {"type": "image_url", "image_url": {"url": data_url}}]  # fmt: skip
    assert without == "Describe this image."


# -- refusals -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("refusal", "I'm sorry, I can't help with that."),
        ("content_filter", "its content filter stopped the answer"),
        ("400-policy", "Your request was rejected as a result of our safety system."),
    ],
)
async def test_a_refusal_is_text_refused(
    provider: OpenAITextProvider, api: tuple[FakeChatAPI, str], mode: str, said: str
) -> None:
    api[0].mode = mode
    error = await failure(provider)
    assert isinstance(error, TextRefused) and isinstance(error, BadRequest)
    assert error.status == 400
    assert error.message == f"The text model refused this request: {said}"


async def test_an_empty_answer_is_a_remote_error(
    provider: OpenAITextProvider, api: tuple[FakeChatAPI, str]
) -> None:
    api[0].answer = "   "
    error = await failure(provider)
    assert type(error) is RemoteError and error.status == 502
    assert error.message == f"the text model at {api[1]}/v1 returned an empty answer"


# -- errors ---------------------------------------------------------------------


async def test_a_429_ends_the_attempt_with_its_retry_after_then_succeeds(
    provider: OpenAITextProvider, api: tuple[FakeChatAPI, str]
) -> None:
    # Given a model that is rate limited once
    fake, base = api
    fake.mode = "429-once"
    # When it is asked, the attempt ends at once with the server's Retry-After
    error = await failure(provider)
    assert isinstance(error, TextRateLimited) and error.status == 429
    assert error.retry_after == 0.05 and error.headers == {"Retry-After": "1"}
    assert error.message.startswith(f"quota or rate limit reached at {base}/v1")
    assert len(fake.bodies) == 1  # the SDK did not retry by itself
    # Then the caller's retry gets the answer
    assert (await provider.complete(ASK)).text == "A fine answer."


async def test_a_long_429_is_not_slept_out(
    provider: OpenAITextProvider, api: tuple[FakeChatAPI, str]
) -> None:
    api[0].mode = "429-long"
    error = await failure(provider)
    assert isinstance(error, TextRateLimited) and error.retry_after == 300
    assert len(api[0].bodies) == 1


async def test_a_timeout(settings: Settings, api: tuple[FakeChatAPI, str]) -> None:
    fake, base = api
    fake.mode = "slow"
    provider = OpenAITextProvider(configure(settings, base, ai_text_timeout=0.3))
    error = await failure(provider)
    await provider.aclose()
    assert type(error) is RemoteError
    assert str(error) == "the text model did not answer within 0.3 s"


async def test_a_refused_key_names_the_setting_and_never_the_key(
    provider: OpenAITextProvider, api: tuple[FakeChatAPI, str]
) -> None:
    api[0].mode = "401"  # the fake quotes the key back in its message
    error = await failure(provider)
    assert isinstance(error, RemoteStatus) and error.status_code == 401
    assert str(error) == (f"the text model at {api[1]}/v1 refused our API key: "
                          "set FEDISOCIAL_AI_TEXT_API_KEY to a valid key")  # fmt: skip


async def test_a_500_is_a_remote_status(
    provider: OpenAITextProvider, api: tuple[FakeChatAPI, str]
) -> None:
    api[0].mode = "500"
    error = await failure(provider)
    assert isinstance(error, RemoteStatus) and error.status == 502 and error.status_code == 500
    assert "failed with HTTP 500: The server had an error" in str(error)


# -- choosing a provider ----------------------------------------------------------


async def test_no_text_model_without_configuration(settings: Settings) -> None:
    assert text_provider(settings) is None
    assert text_provider(dataclasses.replace(settings, ai_images_api_key=SECRET)) is None
    off = dataclasses.replace(settings, ai_text_api_key=SECRET, ai_text_provider="off")
    assert text_provider(off) is None


async def test_a_key_or_a_base_url_selects_openai_and_the_images_endpoint_is_shared(
    settings: Settings,
) -> None:
    for changes in ({"ai_text_api_key": SECRET}, {"ai_text_base_url": "http://x.test/v1"}):
        chosen = text_provider(dataclasses.replace(settings, **changes))
        assert isinstance(chosen, OpenAITextProvider)
        await chosen.aclose()
    shared = dataclasses.replace(settings, ai_text_provider="openai",
                                 ai_images_base_url="http://images.test/v1")  # fmt: skip
    chosen = text_provider(shared)
    assert isinstance(chosen, OpenAITextProvider) and chosen.base_url == "http://images.test/v1"
    await chosen.aclose()


def test_the_settings_of_ai_text_are_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "fedisocial.toml"
    path.write_text('[ai.text]\nmodel = "llama3.1"\nvision = true\nmax_tokens = 200\n')
    settings = load_settings(path, environ={"FEDISOCIAL_AI_TEXT_API_KEY": SECRET})
    assert (settings.ai_text_model, settings.ai_text_vision, settings.ai_text_max_tokens) == (
        "llama3.1", True, 200)  # fmt: skip
    assert settings.text_provider == "openai"
    assert ("ai.text.api_key", "********", "FEDISOCIAL_AI_TEXT_API_KEY") in settings.describe()
    with pytest.raises(ConfigError, match=r"ai\.text\.provider: must be auto, openai or off"):
        load_settings(path, environ={"FEDISOCIAL_AI_TEXT_PROVIDER": "local"})
    with pytest.raises(ConfigError, match="ai_text_drafts_per_hour: must be greater than zero"):
        load_settings(path, environ={"FEDISOCIAL_AI_TEXT_DRAFTS_PER_HOUR": "0"})
