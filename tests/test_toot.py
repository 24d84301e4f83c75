"""toot, the Mastodon command-line client (PyPI ``toot``), against two live instances.

toot signs in the way a person does: ``toot login`` prints the authorization URL,
the person opens it in a browser, signs in, allows, and pastes the code shown
(``urn:ietf:wg:oauth:2.0:oob``). Here a script is that person: it reads the URL
from toot's output, drives our sign-in and consent pages over HTTP, and types
the code into toot's prompt. Then toot posts a picture with alt text, follows
bob on the second instance, and shows the home timeline and notifications,
where bob's reply arrives; the app's live user stream (with toot's token) gets
the reply as it comes, in the home timeline and as a mention.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.instances import Instance, alice_and_bob, eventually
from tests.mastoclient import approve

PASSWORD = "a good password"
TOOT = str(Path(sys.executable).with_name("toot"))


class Toot:
    """The ``toot`` command with its own config folder (XDG_CONFIG_HOME)."""

    def __init__(self, home: Path) -> None:
        self.env = {**os.environ, "XDG_CONFIG_HOME": str(home), "PYTHONUNBUFFERED": "1",
                    "COLUMNS": "200", "NO_COLOR": "1"}  # fmt: skip

    def __call__(self, *args: str) -> str:
        done = subprocess.run([TOOT, *args], env=self.env, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, f"toot {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done.stdout

    def token(self) -> str:
        """The access token toot keeps for its active account (its config file)."""
        config = json.loads(
            (Path(self.env["XDG_CONFIG_HOME"]) / "toot" / "config.json").read_text()
        )
        token: str = config["users"][config["active_user"]]["access_token"]
        return token

    def login(self, instance: Instance, username: str) -> str:
        """``toot login`` through the browser flow; returns what toot said at the end."""
        process = subprocess.Popen(
            [TOOT, "login", "--instance", instance.base_url], env=self.env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        assert process.stdout is not None and process.stdin is not None
        try:
            said = []
            for line in process.stdout:
                said.append(line)
                if line.startswith(f"{instance.base_url}/oauth/authorize"):
                    url = line.strip()
                    break
            else:
                raise AssertionError("toot printed no login URL:\n" + "".join(said))
            code = approve(url, username, PASSWORD)  # the person, in a browser
            rest, _ = process.communicate(f"n\n{code}\n", timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, "".join(said) + rest
        return rest


class UserStream:
    """An app's user stream (server-sent events), read in a thread: the events it got."""

    def __init__(self, base_url: str, token: str) -> None:
        self.events: list[tuple[str, str]] = []
        self._http = httpx.Client(base_url=base_url, timeout=httpx.Timeout(10, read=None))
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(token,), daemon=True)
        self._thread.start()
        assert self._opened.wait(20), "the user stream did not open"

    def _read(self, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        event = ""
        with (
            contextlib.suppress(httpx.HTTPError),
            self._http.stream("GET", "/api/v1/streaming/user", headers=headers) as answer,
        ):
            for line in answer.iter_lines():
                if line == ":)":  # the server's first line: subscribed from here on
                    self._opened.set()
                elif line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    self.events.append((event, line.removeprefix("data: ")))

    def has(self, event: str, text: str) -> bool:
        return any(kind == event and text in data for kind, data in self.events)

    def close(self) -> None:
        self._http.close()


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Instance, Instance]]:
    with alice_and_bob(tmp_path) as instances:
        yield instances


def _picture(path: Path) -> Path:
    image = Image.new("RGB", (64, 48), (200, 80, 40))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return path


def test_toot_logs_in_posts_a_picture_follows_and_sees_a_reply(
    two: tuple[Instance, Instance], tmp_path: Path
) -> None:
    one, other = two
    toot = Toot(tmp_path / "toot-config")
    assert "Successfully logged in" in toot.login(one, "alice")
    assert "@alice" in toot("whoami")

    picture = _picture(tmp_path / "sunset.png")
    posted = toot("post", "A sunset from toot #photo", "--media", str(picture),
                  "--description", "An orange rectangle, like a sunset")  # fmt: skip
    assert "Toot posted" in posted
    post_url = posted.strip().split()[-1]

    status = httpx.get(f"{one.base_url}/api/v1/timelines/public", params={"local": "true"}).json()
    mine = next(s for s in status if s["url"] == post_url or s["uri"] == post_url)
    attachment = mine["media_attachments"][0]
    assert attachment["description"] == "An orange rectangle, like a sunset"
    assert attachment["meta"]["original"]["width"] == 64

    followed = toot("follow", f"bob@{other.netloc}")
    assert "You are now following" in followed

    def bob_has_a_follower() -> bool:
        listed = other.cli("followers", "bob")
        return f"alice@{one.netloc}" in listed.stdout

    eventually(bob_has_a_follower, "bob sees alice's follow")
    stream = UserStream(one.base_url, toot.token())
    reply = other.cli("post", "bob", f"@alice@{one.netloc} lovely colours", "--reply-to",
                      mine["uri"])  # fmt: skip
    assert reply.returncode == 0, reply.stderr

    def reply_in_notifications() -> str | None:
        shown = toot("notifications")
        return shown if "lovely colours" in shown else None

    shown = eventually(reply_in_notifications, "bob's reply is in alice's notifications")
    assert f"bob@{other.netloc}" in shown
    # and the app's live stream had it too: in the home timeline, and as a mention
    streamed = eventually(lambda: stream.has("update", "lovely colours")
                          and stream.has("notification", "lovely colours"),
                          "bob's reply is streamed to alice")  # fmt: skip
    assert streamed
    stream.close()

    later = other.cli("post", "bob", "Good morning from the second instance")
    assert later.returncode == 0, later.stderr

    def home() -> str:
        return toot("timelines", "home", "--no-pager", "--no-clear")

    eventually(lambda: "Good morning from the second" in home(),
               "bob's new post is in alice's home timeline")  # fmt: skip
