"""Image providers: the real ``openai`` client against a loopback OpenAI images API,
and the offline local renderer.

The fake server speaks POST /v1/images/generations the way OpenAI does
(https://platform.openai.com/docs/api-reference/images/create): b64_json or url
answers, 429 with Retry-After, 400 content-policy refusals, slow answers.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageStat

from fedisocial.ap.client import FederationClient
from fedisocial.config import Settings
from fedisocial.errors import BadRequest, BlockedAddress, RateLimited, RemoteError
from fedisocial.studio.ai.images import (
    GeneratedImage,
    ImageRateLimited,
    ImageRefused,
    OpenAIImageProvider,
    alt_text,
    image_provider,
)
from fedisocial.studio.ai.local import LOCAL_MODEL, LocalImageProvider, render_local
from fedisocial.studio.media import AiLabel, process_image, read_xmp
from tests.conftest import free_port
from tests.fake_openai import SECRET, FakeImagesAPI
from tests.loopback import serve


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeImagesAPI, str]]:
    fake = FakeImagesAPI()
    async with serve(fake.app) as base:
        yield fake, base
        fake.release.set()  # let a slow handler finish, or the server waits for it


@pytest.fixture
async def client() -> AsyncIterator[FederationClient]:
    http = FederationClient(allow_private=True, timeout=5.0, max_bytes=1_000_000,
                            user_agent_url="http://127.0.0.1:8000")  # fmt: skip
    yield http
    await http.aclose()


def configure(settings: Settings, base: str, **changes: Any) -> Settings:
    values = {"ai_images_base_url": f"{base}/v1", "ai_images_api_key": SECRET,
              "ai_images_timeout": 10.0, **changes}  # fmt: skip
    return dataclasses.replace(settings, **values)


@pytest.fixture
async def provider(
    settings: Settings, client: FederationClient, api: tuple[FakeImagesAPI, str]
) -> AsyncIterator[OpenAIImageProvider]:
    built = OpenAIImageProvider(configure(settings, api[1]), client)
    yield built
    await built.aclose()


async def failure(provider: OpenAIImageProvider, prompt: str = "a red fox") -> Exception:
    """The exception generate() raises; checks the API key appears nowhere in it."""
    with pytest.raises(Exception) as raised:
        await provider.generate(prompt)
    assert SECRET not in str(raised.value) and SECRET not in repr(raised.value)
    return raised.value


# -- answers ------------------------------------------------------------------


async def test_b64_answer_with_gpt_image_parameters(
    provider: OpenAIImageProvider, api: tuple[FakeImagesAPI, str]
) -> None:
    fake, _ = api
    # When the provider asks gpt-image-1 (the default) for an image
    image = await provider.generate("a red fox")
    # Then the decoded PNG comes back with its provenance and the revised prompt
    assert image == GeneratedImage(fake.image, "image/png", "openai", "gpt-image-1", "A fox, red")
    # and the request carried what gpt-image accepts, and no response_format
    assert fake.bodies == [{"prompt": "a red fox", "model": "gpt-image-1", "size": "1024x1024",
                            "n": 1, "quality": "auto", "output_format": "png"}]  # fmt: skip
    assert fake.headers[0]["authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize(
    ("model", "quality", "expected"),
    [
        ("dall-e-3", "high", {"n": 1, "response_format": "b64_json", "quality": "hd"}),
        ("dall-e-3", "auto", {"n": 1, "response_format": "b64_json", "quality": "standard"}),
        ("dall-e-2", "high", {"n": 1, "response_format": "b64_json"}),
        ("gpt-image-1-mini", "hd", {"n": 1, "quality": "high", "output_format": "png"}),
        ("stablediffusion", "high", {"response_format": "b64_json"}),  # LocalAI, vLLM…
    ],
)
async def test_parameters_per_model_family(
    settings: Settings,
    client: FederationClient,
    api: tuple[FakeImagesAPI, str],
    model: str,
    quality: str,
    expected: dict[str, Any],
) -> None:
    fake, base = api
    provider = OpenAIImageProvider(
        configure(settings, base, ai_images_model=model, ai_images_quality=quality), client
    )
    image = await provider.generate("a lighthouse")
    await provider.aclose()
    assert image.model == model
    assert fake.bodies == [{"prompt": "a lighthouse", "model": model, "size": "1024x1024",
                            **expected}]  # fmt: skip


async def test_url_answer_is_downloaded_through_the_guarded_client(
    provider: OpenAIImageProvider, api: tuple[FakeImagesAPI, str]
) -> None:
    fake, _ = api
    fake.mode = "url"
    image = await provider.generate("a red fox")
    assert image.data == fake.image and image.media_type == "image/png"
    assert image.revised_prompt is None
    # the download went through FederationClient (its User-Agent), not the SDK
    assert fake.downloads[0]["user-agent"].startswith("fedisocial/")


async def test_url_answer_pointing_at_a_private_address_is_refused(
    settings: Settings, api: tuple[FakeImagesAPI, str]
) -> None:
    # Given the guarded client of a production instance (no private networks)
    fake, base = api
    fake.mode = "url"
    guarded = FederationClient(allow_private=False, timeout=5.0, max_bytes=1_000_000,
                               user_agent_url="https://social.example")  # fmt: skip
    provider = OpenAIImageProvider(configure(settings, base), guarded)
    try:
        # When the model answers with a URL on loopback, Then it is not fetched
        with pytest.raises(BlockedAddress):
            await provider.generate("a red fox")
    finally:
        await provider.aclose()
        await guarded.aclose()
    assert fake.downloads == []


# -- errors -------------------------------------------------------------------


async def test_a_429_is_left_to_the_job_queue_then_succeeds(
    provider: OpenAIImageProvider, api: tuple[FakeImagesAPI, str]
) -> None:
    # Given a model that is rate limited once
    fake, _ = api
    fake.mode = "429-once"
    # When a picture is asked for, the attempt ends at once with the server's Retry-After
    error = await failure(provider)
    assert isinstance(error, ImageRateLimited) and error.retry_after == 0.05
    assert len(fake.bodies) == 1  # the SDK did not retry by itself
    # Then the next attempt (the job queue's retry) gets the picture
    image = await provider.generate("a red fox")
    assert image.data == fake.image


async def test_a_429_is_rate_limited_with_its_retry_after(
    settings: Settings, client: FederationClient, api: tuple[FakeImagesAPI, str]
) -> None:
    fake, base = api
    fake.mode = "429"
    provider = OpenAIImageProvider(configure(settings, base), client)
    error = await failure(provider)
    await provider.aclose()
    assert isinstance(error, ImageRateLimited) and isinstance(error, RateLimited)
    assert error.status == 429
    assert error.message.startswith(f"quota or rate limit reached at {base}/v1; try again later")
    assert error.retry_after == 0.05  # read by the job worker to schedule the retry
    assert len(fake.bodies) == 1


async def test_content_policy_refusal(
    provider: OpenAIImageProvider, api: tuple[FakeImagesAPI, str]
) -> None:
    api[0].mode = "400-policy"
    error = await failure(provider)
    assert isinstance(error, ImageRefused) and isinstance(error, BadRequest)
    assert error.status == 400
    assert error.message == (
        "The image model refused this prompt: "
        "Your request was rejected as a result of our safety system."
    )
    assert len(api[0].bodies) == 1  # a 400 is not retried


async def test_other_400_never_repeats_the_key(
    provider: OpenAIImageProvider, api: tuple[FakeImagesAPI, str]
) -> None:
    api[0].mode = "400-echo"
    error = await failure(provider)
    assert type(error) is BadRequest
    assert error.message.endswith("rejected the request: size is invalid for key ***")


async def test_bad_key_names_the_setting(
    provider: OpenAIImageProvider, api: tuple[FakeImagesAPI, str]
) -> None:
    api[0].mode = "401"
    error = await failure(provider)
    assert isinstance(error, RemoteError)
    assert "FEDISOCIAL_OPENAI_API_KEY" in str(error)


async def test_timeout(
    settings: Settings, client: FederationClient, api: tuple[FakeImagesAPI, str]
) -> None:
    fake, base = api
    fake.mode = "slow"
    provider = OpenAIImageProvider(configure(settings, base, ai_images_timeout=0.3), client)
    error = await failure(provider)
    await provider.aclose()
    assert isinstance(error, RemoteError)
    assert str(error) == "the image model did not answer within 0.3 s"


async def test_unreachable_endpoint(settings: Settings, client: FederationClient) -> None:
    base = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    provider = OpenAIImageProvider(configure(settings, base), client)
    error = await failure(provider)
    await provider.aclose()
    assert isinstance(error, RemoteError)
    assert str(error) == f"cannot reach the image model at {base}/v1: connection refused"


# -- choosing a provider --------------------------------------------------------


async def test_a_key_or_a_base_url_selects_openai(
    settings: Settings, client: FederationClient
) -> None:
    assert isinstance(image_provider(settings, client), LocalImageProvider)
    for changes in ({"ai_images_api_key": SECRET}, {"ai_images_base_url": "http://x.test/v1"}):
        chosen = image_provider(dataclasses.replace(settings, **changes), client)
        assert isinstance(chosen, OpenAIImageProvider)
        await chosen.aclose()


# -- the local renderer ---------------------------------------------------------


def pixels(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.convert("RGB")


def test_local_renderer_is_deterministic() -> None:
    first = render_local("A quiet dawn over the hills", 256, 256)
    assert render_local("A quiet dawn over the hills", 256, 256) == first
    # the prompt is normalized: case and spacing do not matter
    assert render_local("  a quiet   DAWN over the hills ", 256, 256) == first


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("a quiet dawn over the hills", "a quiet dawn over the hills!"),  # same theme
        ("a red fox in a forest", "night sea with the moon"),
        ("quarterly report", "my cat Biscuit"),  # no theme word: hash-derived palettes
    ],
)
def test_different_prompts_give_clearly_different_images(one: str, other: str) -> None:
    a, b = pixels(render_local(one, 256, 256)), pixels(render_local(other, 256, 256))
    difference = ImageStat.Stat(ImageChops.difference(a, b)).mean
    assert sum(difference) / 3 > 8  # mean difference per channel, out of 255


async def test_local_provider_output_is_labelled(settings: Settings) -> None:
    provider = LocalImageProvider(dataclasses.replace(settings, ai_images_size="2048x1024"))
    image = await provider.generate("a lighthouse on the coast")
    assert (image.provider, image.model, image.media_type) == ("local", LOCAL_MODEL, "image/png")
    assert pixels(image.data).size == (1024, 512)  # capped at 1024 for speed
    # the stored file says what made it, and so does the alt text
    label = AiLabel("a lighthouse on the coast", image.model, image.provider)
    stored = process_image(image.data, max_bytes=16_000_000, max_pixels=40_000_000, ai=label)
    packet = read_xmp(stored.data)
    assert packet is not None and LOCAL_MODEL in packet and "trainedAlgorithmicMedia" in packet
    assert "offline renderer" in alt_text("a lighthouse on the coast", image)
    assert alt_text("x", dataclasses.replace(image, provider="openai", model="gpt-image-1")) == (
        "AI-generated image (gpt-image-1) from the prompt: x"
    )
