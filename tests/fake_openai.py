"""Loopback servers that speak the OpenAI images and chat APIs, for tests (real `openai` client)."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Callable
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SECRET = "sk-test-DO-NOT-LEAK-0123456789abcdef"


def png(colour: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, "PNG")
    return out.getvalue()


class FakeImagesAPI:
    """An OpenAI images endpoint on loopback; ``mode`` says how it answers."""

    def __init__(self) -> None:
        self.mode = "b64"
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.downloads: list[dict[str, str]] = []
        self.release = asyncio.Event()
        self.image = png()
        self.app = Starlette(routes=[
            Route("/v1/images/generations", self.generations, methods=["POST"]),
            Route("/files/generated.png", self.file),
        ])  # fmt: skip

    def b64(self) -> JSONResponse:
        item = {"b64_json": base64.b64encode(self.image).decode(), "revised_prompt": "A fox, red"}
        return JSONResponse({"created": 1, "data": [item], "output_format": "png"})

    @staticmethod
    def error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
        body = {"error": {"code": code, "message": message, "type": "invalid_request_error",
                          "param": None}}  # fmt: skip
        return JSONResponse(body, status_code=status, headers=headers)

    async def generations(self, request: Request) -> Response:
        self.bodies.append(await request.json())
        self.headers.append(dict(request.headers))
        if self.mode == "url":
            url = f"{request.base_url}files/generated.png?sig=opaque-signature"
            return JSONResponse({"created": 1, "data": [{"url": url}]})
        if self.mode == "429" or (self.mode == "429-once" and len(self.bodies) == 1):
            return self.error(429, "rate_limit_exceeded", "Rate limit reached for images per min",
                              **{"retry-after-ms": "50", "retry-after": "1"})  # fmt: skip
        if self.mode == "429-long":  # resets in 5 minutes: the SDK waits out 2 at most, not this
            return self.error(429, "rate_limit_exceeded", "Rate limit reached for images per day",
                              **{"retry-after": "300"})  # fmt: skip
        if self.mode == "400-policy":
            refusal = "Your request was rejected as a result of our safety system."
            return self.error(400, "content_policy_violation", refusal)
        if self.mode == "400-echo":  # a server that quotes the key back: we must not repeat it
            return self.error(400, "invalid_size", f"size is invalid for key {SECRET}")
        if self.mode == "401":
            return self.error(401, "invalid_api_key", "Incorrect API key provided: sk-test-***")
        if self.mode == "slow":
            await self.release.wait()
        return self.b64()

    async def file(self, request: Request) -> Response:
        self.downloads.append(dict(request.headers))
        return Response(self.image, media_type="image/png")


class FakeChatAPI:
    """An OpenAI chat completions endpoint on loopback (stream off, no tools), as documented
    at https://platform.openai.com/docs/api-reference/chat/object; ``mode`` says how it
    answers: answer, 429-once, 429-long, slow, refusal, content_filter, 400-policy, 401, 500."""

    def __init__(self) -> None:
        self.mode = "answer"
        #: the answer's text, or a function of the request body that makes it
        self.answer: str | Callable[[dict[str, Any]], str] = "A fine answer."
        self.model = "gpt-4o-mini-2024-07-18"
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.release = asyncio.Event()
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.completions,
                                           methods=["POST"])])  # fmt: skip

    def completion(self, content: str | None, *, refusal: str | None = None,
                   finish_reason: str = "stop") -> JSONResponse:  # fmt: skip
        message = {"role": "assistant", "content": content, "refusal": refusal}
        return JSONResponse({
            "id": f"chatcmpl-{len(self.bodies)}", "object": "chat.completion", "created": 1,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
        })  # fmt: skip

    async def completions(self, request: Request) -> Response:
        body = await request.json()
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        error = FakeImagesAPI.error  # the same error bodies as the images API
        if self.mode == "429-once" and len(self.bodies) == 1:
            return error(429, "rate_limit_exceeded", "Rate limit reached for requests",
                         **{"retry-after-ms": "50", "retry-after": "1"})  # fmt: skip
        if self.mode == "429-long":
            return error(429, "rate_limit_exceeded", "Rate limit reached for tokens per day",
                         **{"retry-after": "300"})  # fmt: skip
        if self.mode == "slow":
            await self.release.wait()
        if self.mode == "refusal":
            return self.completion(None, refusal="I'm sorry, I can't help with that.")
        if self.mode == "content_filter":
            return self.completion("", finish_reason="content_filter")
        if self.mode == "400-policy":
            return error(
                400,
                "content_policy_violation",
                "Your request was rejected as a result of our safety system.",
            )
        if self.mode == "401":
            return error(401, "invalid_api_key", f"Incorrect API key provided: {SECRET}")
        if self.mode == "500":
            return error(500, "server_error", "The server had an error processing your request.")
        answer = self.answer(body) if callable(self.answer) else self.answer
        return self.completion(answer)
