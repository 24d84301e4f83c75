"""A person in a browser, for the OAuth tests: signs in, reads the consent page, decides."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

PASSWORD = "long enough"
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge), RFC 7636 §4.1-4.2."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def hidden_fields(page: str) -> dict[str, str]:
    """The hidden inputs of a page's form (the first form wins on repeats)."""
    fields: dict[str, str] = {}
    for name, value in _HIDDEN.findall(page):
        fields.setdefault(html.unescape(name), html.unescape(value))
    return fields


def query_of(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


class Browser:
    """Cookies and forms over an httpx client (ASGI or a live server)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def sign_in(self, username: str = "alice", password: str = PASSWORD,
                      next_path: str = "/") -> httpx.Response:  # fmt: skip
        form = await self.http.get("/auth/sign_in", params={"next": next_path})
        fields = hidden_fields(form.text)
        return await self.http.post("/auth/sign_in", data={
            **fields, "username": username, "password": password})  # fmt: skip

    async def consent_page(self, params: dict[str, str]) -> httpx.Response:
        return await self.http.get("/oauth/authorize", params=params)

    async def decide(self, params: dict[str, str], decision: str = "allow") -> httpx.Response:
        """Open the consent page and press Allow or Deny; the answer (a redirect)."""
        page = await self.consent_page(params)
        assert page.status_code == 200, page.text
        assert 'value="allow"' in page.text, page.text
        return await self.http.post(
            "/oauth/authorize", data={**hidden_fields(page.text), "decision": decision}
        )

    async def code(self, params: dict[str, str]) -> str:
        answer = await self.decide(params)
        assert answer.status_code == 303, answer.text
        got = query_of(answer.headers["location"])
        assert got.get("state") == params.get("state")
        return got["code"]


def code_params(client_id: str, redirect_uri: str, challenge: str, **extra: Any) -> dict[str, str]:
    return {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
            "state": secrets.token_urlsafe(8), "code_challenge": challenge,
            "code_challenge_method": "S256", **extra}  # fmt: skip
