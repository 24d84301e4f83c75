"""The exception tree of fedisocial.

Every error a user or a remote server can cause maps to one HTTP status, so the
web layer turns any of them into a clear answer with a single handler::

    FedisocialError                 500  base class, never raised itself
    ├── ConfigError                 --   invalid configuration; stops start-up
    ├── BadRequest                  400  malformed input (JSON, resource, handle)
    │   ├── InvalidDocument         400  a remote document we cannot use
    │   └── Unprocessable           422  well-formed but invalid (Mastodon's validation errors)
    ├── Unauthorized                401  missing or wrong credentials
    │   └── SignatureError          401  an HTTP signature that does not verify
    ├── Forbidden                   403  credentials fine, action not allowed
    ├── NotFound                    404  no such user, object or route
    ├── Gone                        410  it existed and was deleted
    ├── PayloadTooLarge             413  a body over the configured cap
    ├── UnsupportedMediaType        415  a body of the wrong content type
    ├── RateLimited                 429  too many requests or jobs
    │   └── ServiceUnavailable      503  too busy to take more work now (says when to retry)
    └── RemoteError                 502  another server failed us (network, timeout, answer)
        ├── BlockedAddress          502  a fetch to a refused (private) address
        └── RemoteStatus            502  a remote answer with an error status

``RemoteError`` and ``RateLimited`` may carry ``retry_after`` (seconds, from the
server's ``Retry-After``); the job queue (:func:`fedisocial.jobs.is_final`)
decides from this tree which failures are worth retrying.
"""

from __future__ import annotations

import math

__all__ = [
    "BadRequest",
    "BlockedAddress",
    "ConfigError",
    "FedisocialError",
    "Forbidden",
    "Gone",
    "InvalidDocument",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "RemoteError",
    "RemoteStatus",
    "ServiceUnavailable",
    "SignatureError",
    "Unauthorized",
    "Unprocessable",
    "UnsupportedMediaType",
]


class FedisocialError(Exception):
    """Base class: ``status`` is the HTTP status the web layer answers with."""

    status = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: extra response headers (e.g. ``WWW-Authenticate`` on a 401)
        self.headers = headers or {}


class ConfigError(FedisocialError):
    """A configuration value is invalid; names the field and what would be valid."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class BadRequest(FedisocialError):
    status = 400


class InvalidDocument(BadRequest):
    pass


class Unprocessable(BadRequest):
    """A request Mastodon answers with 422 ("Validation failed: …"): read, but not valid."""

    status = 422


class Unauthorized(FedisocialError):
    status = 401


class SignatureError(Unauthorized):
    """A missing or bad HTTP signature; the 401 says how to sign (RFC 9110 §15.5.2)."""

    CHALLENGE = 'Signature realm="fedisocial", headers="(request-target) host date digest"'

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, headers=headers or {"WWW-Authenticate": self.CHALLENGE})


class Forbidden(FedisocialError):
    status = 403


class NotFound(FedisocialError):
    status = 404


class Gone(FedisocialError):
    status = 410


class PayloadTooLarge(FedisocialError):
    status = 413


class UnsupportedMediaType(FedisocialError):
    status = 415


class RateLimited(FedisocialError):
    """Too many at once; ``retry_after`` (seconds) is sent as ``Retry-After`` when known."""

    status = 429

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        headers = {} if retry_after is None else {"Retry-After": str(math.ceil(retry_after))}
        super().__init__(message, headers=headers)
        #: seconds to wait before trying again (read by the job worker too)
        self.retry_after = retry_after


class ServiceUnavailable(RateLimited):
    """We are too busy to take this now; ``Retry-After`` says when to try again."""

    status = 503


class RemoteError(FedisocialError):
    status = 502

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        #: seconds the remote asked us to wait before trying again
        self.retry_after = retry_after


class BlockedAddress(RemoteError):
    pass


class RemoteStatus(RemoteError):
    """An error status from ``url``; ``message`` defaults to "URL answered HTTP N"."""

    def __init__(
        self,
        url: str,
        status_code: int,
        message: str | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message or f"{url} answered HTTP {status_code}", retry_after=retry_after)
        self.url = url
        self.status_code = status_code
