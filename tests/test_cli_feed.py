"""What `fedisocial feed`, `lookup` and `followers` print of posts from another server:
handles, indented text, attachments, visibility, boosts once, and no terminal control codes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from fedisocial.cli.output import clean
from tests.instances import alice_and_bob, eventually
from tests.test_roundtrip import posted_uri, run

#: a window-title change (OSC), clear screen and colour (CSI), an 8-bit CSI (C1), a bell,
#: a right-to-left override: what a hostile server puts in a post to take over a terminal
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x1b[31m\x9b2J\x07\u202e"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"first line{HOSTILE}", "first line"),
        ("8-bit OSC \x9d0;title\x9cdone", "8-bit OSC done"),
        ("a lone escape\x1b", "a lone escape"),
        ("keep\ttabs\nand newlines, drop \r and \x7f", "keep\ttabs\nand newlines, drop  and "),
        ("isolates \u2066and\u2069 embeddings \u202band\u202c", "isolates and embeddings and"),
        (
            "Ünïcödé, 日本語, emoji 🎨 and العربية stay",
            "Ünïcödé, 日本語, emoji 🎨 and العربية stay",
        ),
    ],
)
def test_clean_leaves_text_and_no_terminal_control(text: str, shown: str) -> None:
    assert clean(text) == shown


def _png(path: Path) -> Path:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return path


def _accepted(following: str) -> bool:
    return len(following.splitlines()) == 2 and "pending" not in following


def test_the_feed_reads_like_a_timeline(tmp_path: Path) -> None:
    with alice_and_bob(tmp_path) as (one, two):
        # Given carol beside bob on the other server, and alice following them both
        assert two.cli("user", "create", "carol", "--password-stdin",
                       stdin="long enough\n").returncode == 0  # fmt: skip
        for name in ("bob", "carol"):
            run(one, "follow", "alice", f"@{name}@{two.netloc}")
        eventually(lambda: _accepted(run(one, "following", "alice")), "both follows are accepted")
        # When bob posts two lines with control codes, a followers-only post, a direct one to
        # alice and a picture, and boosts what carol posted
        run(two, "post", "bob", f"first line{HOSTILE}\nsecond line")
        run(two, "post", "bob", "for friends", "--visibility", "followers")
        run(two, "post", "bob", f"psst @alice@{one.netloc}", "--visibility", "direct")
        run(two, "post", "bob", "look", "--image", str(_png(tmp_path / "red.png")),
            "--alt", "a red square")  # fmt: skip
        assert two.cli("user", "create", "dave", "--password-stdin",
                       stdin="long enough\n").returncode == 0  # fmt: skip
        carols = posted_uri(run(two, "post", "carol", "carol here"))
        daves = posted_uri(run(two, "post", "dave", "dave here"))
        run(one, "lookup", f"@dave@{two.netloc}")  # so that alice's server knows dave
        run(two, "boost", "bob", carols)
        run(two, "boost", "bob", daves)
        feed = eventually(lambda: (out := run(one, "feed", "alice")).count("boosted") and out,
                          "the boost arrives")  # fmt: skip
        # Then alice's feed names people by handle, indents their text, marks the picture and
        # the followers-only and direct posts, shows dave's post (whom she does not follow)
        # as bob's boost, carol's once (her feed has it: the boost is left out, as Mastodon
        # does), and prints no control code
        bob, carol, dave = f"@bob@{two.netloc}", f"@carol@{two.netloc}", f"@dave@{two.netloc}"
        lines = feed.splitlines()
        assert not any(line.endswith(f"{two.base_url}/users/bob") for line in lines), feed
        assert any(line.endswith(f"  {bob}") for line in lines), feed
        assert "    first line" in lines and "    second line" in lines
        assert "    [image: a red square]" in lines
        assert any(line.endswith(f"  {bob}  [followers only]") for line in lines), feed
        assert any(line.endswith(f"  {bob}  [direct]") for line in lines), feed
        assert any(line.endswith(f"  {bob} boosted {dave}:") for line in lines), feed
        assert not any(line.endswith(f"  {bob} boosted {carol}:") for line in lines), feed
        assert feed.count("carol here") == 1 and feed.count("dave here") == 1
        assert not any(code in feed for code in "\x1b\x07\x9b\u202e"), repr(feed)
        # And the other commands that print what bob's server says are as clean
        assert two.cli("user", "create", "mallory", "--password-stdin", "--display-name",
                       f"Mallory{HOSTILE}", stdin="long enough\n").returncode == 0  # fmt: skip
        looked_up = run(one, "lookup", f"@mallory@{two.netloc}")
        assert "Mallory" in looked_up
        assert not any(code in looked_up for code in "\x1b\x07\x9b\u202e"), repr(looked_up)
