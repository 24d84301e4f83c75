"""A bare Starlette app serving fixed bytes: the ceiling fedisocial is measured against.

No middleware of our own, no database, no content negotiation: each route returns
the bytes and headers read at startup from a manifest written by
``bench/discovery.py``. It runs under uvicorn with the settings ``fedisocial
serve`` uses (workers, uvloop/httptools when installed, no access log, no
``Server`` header, proxy headers on), so the difference between the two is the
cost of fedisocial's own request handling.

Manifest (JSON)::

    {"routes": [{"path": "/users/alice",
                 "body_file": "/tmp/.../actor.body",
                 "content_type": "application/activity+json",
                 "headers": {"Vary": "Accept", "Cache-Control": "max-age=60"}}]}

Run::

    .venv/bin/python bench/bare_app.py --manifest MANIFEST.json --port 8001 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

MANIFEST_ENV = "BENCH_BARE_MANIFEST"


def _handler(body: bytes, content_type: str, headers: dict[str, str]) -> Any:
    from starlette.responses import Response

    async def endpoint(request: Any) -> Response:
        return Response(body, media_type=content_type, headers=headers)

    return endpoint


def create_app() -> Any:
    """Factory for uvicorn (called once per worker process)."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    manifest = json.loads(Path(os.environ[MANIFEST_ENV]).read_text(encoding="utf-8"))
    routes = []
    for entry in manifest["routes"]:
        body = Path(entry["body_file"]).read_bytes()
        endpoint = _handler(body, entry["content_type"], dict(entry.get("headers", {})))
        routes.append(Route(entry["path"], endpoint))
    return Starlette(routes=routes)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Serve fixed response bodies from a manifest with a bare Starlette app."
    )
    parser.add_argument("--manifest", required=True, help="JSON manifest written by discovery.py")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import uvicorn

    os.environ[MANIFEST_ENV] = str(Path(args.manifest).resolve())
    uvicorn.run(
        "bare_app:create_app",
        factory=True,
        app_dir=str(Path(__file__).resolve().parent),
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        proxy_headers=True,
        server_header=False,
        access_log=False,
    )


if __name__ == "__main__":
    main()
