"""Reading a request body within a size bound, for every handler that reads one."""

from __future__ import annotations

from starlette.requests import Request

from fedisocial.errors import BadRequest, PayloadTooLarge

__all__ = ["read_body"]


async def read_body(request: Request, cap: int, *, what: str = "a request") -> bytes:
    """The body, refused with 413 as soon as it is known to be over ``cap`` bytes (its
    Content-Length, or what has arrived): a huge body is never read whole into memory.
    ``what`` names it in the message ("an activity")."""
    too_large = PayloadTooLarge(f"{what} can have at most {cap} bytes")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise BadRequest(f"Content-Length is not a number: {declared!r}")
        if int(declared) > cap:
            raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
