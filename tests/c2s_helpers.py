"""Shared pieces of the C2S tests: accounts with tokens, and posting to an outbox."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image
from sqlalchemy import select

from fedisocial.app import Context, job_handlers
from fedisocial.auth.tokens import create_personal_token
from fedisocial.jobs import Worker
from fedisocial.social.accounts import create_user
from fedisocial.store.models import Job, Object

BASE = "http://127.0.0.1:8000"
AS_PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
AP_JSON = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'


@dataclass
class Person:
    name: str
    token: str

    @property
    def uri(self) -> str:
        return f"{BASE}/users/{self.name}"

    @property
    def outbox(self) -> str:
        return f"{self.uri}/outbox"

    @property
    def followers(self) -> str:
        return f"{self.uri}/followers"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def person(context: Context, name: str, scope: str = "read write") -> Person:
    await create_user(context.db, context.urls, name, "a good password")
    token, _ = await create_personal_token(context.db, name, scope)
    return Person(name, token)


async def another_token(context: Context, who: Person, scope: str) -> Person:
    token, _ = await create_personal_token(context.db, who.name, scope)
    return Person(who.name, token)


async def post(
    client: httpx.AsyncClient,
    who: Person,
    doc: dict[str, Any],
    *,
    outbox: str | None = None,
    content_type: str = AP_JSON,
) -> httpx.Response:
    import orjson

    return await client.post(
        outbox or who.outbox, content=orjson.dumps(doc),
        headers={**who.auth, "Content-Type": content_type},
    )  # fmt: skip


async def created(client: httpx.AsyncClient, who: Person, doc: dict[str, Any]) -> dict[str, Any]:
    """Post ``doc``; assert 201 with Location = the body's id; return the body."""
    answer = await post(client, who, doc)
    assert answer.status_code == 201, answer.text
    assert answer.headers["content-type"] == "application/activity+json"
    body: dict[str, Any] = answer.json()
    assert answer.headers["location"] == body["id"]
    return body


async def get_as2(client: httpx.AsyncClient, uri: str, who: Person | None = None) -> httpx.Response:
    headers = {"Accept": "application/activity+json", **(who.auth if who else {})}
    return await client.get(uri.removeprefix(BASE), headers=headers)


async def stored(context: Context, uri: str) -> Object | None:
    async with context.db.session() as session:
        found: Object | None = await session.scalar(select(Object).where(Object.uri == uri))
        return found


async def fanouts(context: Context, activity_uri: str) -> list[dict[str, Any]]:
    """Payloads of the fan-out jobs queued for an activity."""
    async with context.db.session() as session:
        jobs = await session.scalars(select(Job).where(Job.kind == "fanout"))
        return [job.payload for job in jobs if job.payload["activity"] == activity_uri]


async def run_jobs(context: Context) -> None:
    await Worker(context.queue, job_handlers(context)).run_until_idle()


def png(width: int = 64, height: int = 48, color: str = "teal") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()
