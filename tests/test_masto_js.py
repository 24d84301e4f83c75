"""masto.js (npm ``masto``, the Mastodon API client of Elk and Phanpy) against a live instance.

The script ``tests/interop/masto_client.mjs`` signs in with a token from
``fedisocial token create``, uploads a picture through ``/api/v2/media``,
posts it, pages the home timeline by following the ``Link`` header as Elk's
feed does, favourites the post, reads its context, and opens the user stream (a WebSocket)
that a new post then arrives on.
"""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.instances import Instance, make_instance
from tests.interop.packages import INTEROP, node_for

PASSWORD = "a good password"


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Instance]:
    one = make_instance(tmp_path / "one")
    created = one.cli("user", "create", "alice", "--password-stdin", stdin=f"{PASSWORD}\n")
    assert created.returncode == 0, created.stderr
    one.start()
    try:
        yield one
    finally:
        one.stop()


def test_masto_js_posts_a_picture_and_pages_the_home_timeline(
    instance: Instance, tmp_path: Path
) -> None:
    node = node_for("masto", "package.json")
    made = instance.cli("token", "create", "alice", "--scopes", "read,write,follow",
                        "--name", "masto.js")  # fmt: skip
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[1].strip()  # the line after "Token N for …:"
    picture = tmp_path / "pattern.png"
    buffer = io.BytesIO()
    Image.new("RGB", (80, 60), (30, 90, 200)).save(buffer, "PNG")
    picture.write_bytes(buffer.getvalue())

    ran = subprocess.run(
        [node, str(INTEROP / "masto_client.mjs"), instance.base_url, token, str(picture)],
        capture_output=True, text=True, timeout=120, check=False, cwd=INTEROP,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout)
    assert seen["acct"] == "alice"
    assert "compatible; fedisocial" in seen["version"]
    assert seen["media"]["type"] == "image"
    assert seen["media"]["description"] == "A test pattern from masto.js"
    assert seen["posted"]["attachments"] == 1
    assert seen["posted"]["tags"][0]["name"] == "elk"
    # four posts, two a page: the paginator followed rel="next" to the end
    assert seen["pages"] >= 2
    assert [t for t in seen["texts"] if "Paged post" in t] == [
        "<p>Paged post 3</p>", "<p>Paged post 2</p>", "<p>Paged post 1</p>"]  # fmt: skip
    assert any("Hello from masto.js" in t for t in seen["texts"])
    assert seen["favourited"] is True and seen["favourites"] == 1
    assert seen["context"] == {"ancestors": 0, "descendants": 0}
    assert seen["streamedBy"] == "alice"  # the user stream, over a WebSocket
