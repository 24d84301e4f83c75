"""A remote actor on a loopback port, built with the bovine library rather than our code.

Its actor document is bovine's ``Actor`` builder (RSA key as ``publicKey``), its
activities come from bovine's ``ActivityFactory`` and ``ObjectFactory``, every
request it sends is signed by bovine's ``SignedHttpClient`` (draft-cavage
``rsa-sha256`` over ``(request-target) host date digest content-type``, with a
lower-case ``sha-256=`` Digest) and every POST to its inbox is checked by
bovine's ``SignatureChecker``, the sender's key fetched with a bovine-signed GET.
The only code of ours on this side is the Starlette app that serves it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urldefrag

from bovine import BovineActor
from bovine.activitystreams import Actor, factories_for_actor_object
from bovine.activitystreams.activity_factory import ActivityFactory
from bovine.activitystreams.object_factory import ObjectFactory
from bovine.crypto import generate_rsa_public_private_key
from bovine.crypto.signature_checker import SignatureChecker
from bovine.crypto.types import CryptographicIdentifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.loopback import serve

__all__ = ["ACTIVITY_JSON", "BovineRemote", "Delivery", "bovine_remote"]

ACTIVITY_JSON = "application/activity+json"
#: bovine's hook for the digest header: body -> (header name, value)
DigestMethod = Callable[[bytes], tuple[str, str]]


@dataclass
class Delivery:
    """One POST that reached the remote's inbox."""

    activity: dict[str, Any]
    headers: dict[str, str]
    #: the key owner that bovine's SignatureChecker names; None when the signature fails
    signer: str | None


@dataclass
class BovineRemote:
    """The remote actor: its keys, what it serves and what its inbox received."""

    public_pem: str
    private_pem: str
    #: set once the server listens (the port is only known then)
    base_url: str = ""
    inbox: list[Delivery] = field(default_factory=list)
    #: the objects it published, served at their ids
    published: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def actor_id(self) -> str:
        return f"{self.base_url}/actor"

    @property
    def key_id(self) -> str:
        return f"{self.actor_id}#main-key"

    def document(self) -> dict[str, Any]:
        """The actor document, as bovine builds it."""
        doc: dict[str, Any] = Actor(
            id=self.actor_id,
            preferred_username="bovine",
            name="A bovine actor",
            inbox=f"{self.actor_id}/inbox",
            outbox=f"{self.actor_id}/outbox",
            followers=f"{self.actor_id}/followers",
            public_key=self.public_pem,
            public_key_name="main-key",
        ).build()
        return doc

    def factories(self) -> tuple[ActivityFactory, ObjectFactory]:
        """bovine's activity and object factories for this actor (ids under /objects/)."""
        return factories_for_actor_object(self.document(), id_generator=self._new_id)

    def publish(self, document: dict[str, Any]) -> dict[str, Any]:
        """Serve ``document`` at its id from now on; returns it."""
        self.published[document["id"]] = document
        return document

    def client(
        self, *, private_pem: str | None = None, digest_method: DigestMethod | None = None
    ) -> BovineActor:
        """bovine's HTTP-signature client for this actor (use with ``async with``).

        ``private_pem`` signs with another key under the same key id;
        ``digest_method`` replaces how bovine computes the Digest of a body.
        """
        return BovineActor(
            actor_id=self.actor_id,
            public_key_url=self.key_id,
            secret=private_pem or self.private_pem,
            digest_method=digest_method,
        )

    def received(self, activity_type: str) -> list[Delivery]:
        return [d for d in self.inbox if d.activity.get("type") == activity_type]

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/actor", self._actor, methods=["GET"]),
                Route("/actor/inbox", self._receive, methods=["POST"]),
                Route("/objects/{ident}", self._object, methods=["GET"]),
            ]
        )

    def _new_id(self) -> str:
        return f"{self.base_url}/objects/{uuid.uuid4()}"

    async def _actor(self, request: Request) -> Response:
        return JSONResponse(self.document(), media_type=ACTIVITY_JSON)

    async def _object(self, request: Request) -> Response:
        document = self.published.get(str(request.url))
        if document is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(document, media_type=ACTIVITY_JSON)

    async def _receive(self, request: Request) -> Response:
        """Check the signature the way a bovine server does, record, answer 202 or 401."""
        body = await request.body()

        async def read_body() -> bytes:
            return body

        headers = dict(request.headers)
        checker = SignatureChecker(self._identify)
        signer = await checker.validate_signature("POST", str(request.url), headers, read_body)
        self.inbox.append(Delivery(json.loads(body), headers, signer))
        return Response(status_code=202 if signer else 401)

    async def _identify(self, key_id: str) -> CryptographicIdentifier | None:
        """The sender's key, from its actor document fetched with a bovine-signed GET."""
        async with self.client() as bovine:
            document = await bovine.get(urldefrag(key_id).url, fail_silently=True)
        key = (document or {}).get("publicKey")
        if not isinstance(key, dict) or key.get("id") != key_id:
            return None
        return CryptographicIdentifier.from_public_key(key)


@asynccontextmanager
async def bovine_remote() -> AsyncIterator[BovineRemote]:
    """A bovine actor with a fresh RSA-2048 key, served on a free loopback port."""
    public_pem, private_pem = generate_rsa_public_private_key()
    remote = BovineRemote(public_pem, private_pem)
    async with serve(remote.app()) as base_url:
        remote.base_url = base_url
        yield remote
