"""Who signed a request: one verifier for inbox POSTs and signed GETs alike.

The signer's actor is found by key id (cached in memory for a minute, in the
actors table for ``actor_cache_seconds``). When a signature does not verify
with the cached key, the key is fetched once more — keys rotate — but only if
the cached copy is over a minute old, so a stream of bad requests cannot make
us hammer the sender's server.
"""

from __future__ import annotations

from datetime import timedelta

from fedisocial.ap import httpsig
from fedisocial.ap.client import FederationClient
from fedisocial.cache import TTLCache
from fedisocial.errors import FedisocialError, SignatureError
from fedisocial.federation.remote import signer_of
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, utcnow

__all__ = ["SignatureVerifier"]

#: a key that fails is fetched again only if our copy is older than this
KEY_REFRESH_AFTER = timedelta(seconds=60)
#: signers found by key id are kept in memory this long (seconds)
SIGNER_CACHE_SECONDS = 60.0


class SignatureVerifier:
    def __init__(self, db: Database, client: FederationClient, max_age: timedelta) -> None:
        self.db = db
        self.client = client
        self.max_age = max_age
        self._signers: TTLCache[str, Actor] = TTLCache(SIGNER_CACHE_SECONDS)

    async def verify(self, parsed: httpsig.ParsedSignature, body: bytes | None) -> Actor:
        """The actor whose key made ``parsed``; SignatureError (401) when it does not verify."""
        signer = await self._signer(parsed.key_id, refresh=False)
        try:
            self._check(parsed, signer, body)
        except SignatureError:
            fetched = signer.fetched_at
            if signer.local or (fetched is not None and utcnow() - fetched < KEY_REFRESH_AFTER):
                raise
            signer = await self._signer(parsed.key_id, refresh=True)
            self._check(parsed, signer, body)
        return signer

    async def _signer(self, key_id: str, *, refresh: bool) -> Actor:
        cached = None if refresh else self._signers.get(key_id)
        if cached is not None:
            return cached
        try:
            signer = await signer_of(self.db, self.client, key_id, max_age=self.max_age,
                                     refresh=refresh)  # fmt: skip
        except SignatureError:
            raise
        except FedisocialError as exc:
            raise SignatureError(f"could not get the signing key {key_id}: {exc.message}") from exc
        self._signers.put(key_id, signer)
        return signer

    @staticmethod
    def _check(parsed: httpsig.ParsedSignature, signer: Actor, body: bytes | None) -> None:
        if not signer.public_key_pem:
            raise SignatureError(f"{signer.uri} publishes no public key")
        key = httpsig.load_public_key(signer.public_key_pem)
        httpsig.verify_signature(parsed, key, body, now=utcnow())
