"""Two real instances on loopback: every interaction arrives on the other side.

Each instance is a `fedisocial serve` process (web + its job worker process) with
its own SQLite database; all actions go through the command line, the way an
admin or a script would drive them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.instances import Instance, alice_and_bob, eventually


def rows(instance: Instance, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the instance's own database (SQLite, read-only)."""
    path = instance.root / "data" / "fedisocial.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        return connection.execute(sql, params).fetchall()


def run(instance: Instance, *args: str) -> str:
    result = instance.cli(*args)
    assert result.returncode == 0, f"{args}: {result.stderr}"
    return result.stdout


def posted_uri(stdout: str) -> str:
    return stdout.split()[1]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Instance, Instance]]:
    with alice_and_bob(tmp_path) as instances:
        yield instances


def test_follow_post_reply_like_boost_edit_delete_unfollow(
    pair: tuple[Instance, Instance],
) -> None:
    one, two = pair
    alice, bob = f"{one.base_url}/users/alice", f"{two.base_url}/users/bob"

    # alice follows bob; bob's server accepts, and alice's server records the Accept
    run(one, "follow", "alice", f"@bob@{two.netloc}")
    eventually(lambda: rows(two, "SELECT 1 FROM follows WHERE follower_uri=? AND state='accepted'",
                            alice), "bob's server has alice as a follower")  # fmt: skip
    eventually(lambda: rows(one, "SELECT 1 FROM follows WHERE followee_uri=? AND state='accepted'",
                            bob), "alice's server got the Accept")  # fmt: skip
    assert alice in run(two, "followers", "bob")

    # bob posts, mentioning alice: it lands in alice's home feed
    note = posted_uri(run(two, "post", "bob", f"Hello @alice@{one.netloc} #fediverse"))
    eventually(lambda: note in run(one, "feed", "alice"), "bob's post is in alice's feed")
    (content,) = rows(one, "SELECT json_extract(data, '$.content') FROM objects WHERE uri=?", note)[
        0
    ]
    assert "mention" in content and "#<span>fediverse</span>" in content

    # alice replies, likes and boosts; bob's server sees each of them
    reply = posted_uri(run(one, "post", "alice", "Hi Bob!", "--reply-to", note))
    eventually(lambda: rows(two, "SELECT 1 FROM objects WHERE uri=? AND in_reply_to=?",
                            reply, note), "bob's server has the reply")  # fmt: skip
    eventually(lambda: reply in run(two, "feed", "bob"), "the reply is in bob's feed")
    run(one, "like", "alice", note)
    run(one, "boost", "alice", note)
    eventually(lambda: sorted(k for (k,) in rows(
        two, "SELECT kind FROM engagements WHERE object_uri=? AND actor_uri=?", note, alice
    )) == ["announce", "like"], "bob's server counts the like and the boost")  # fmt: skip

    # bob edits the post: alice's copy changes and keeps `updated`
    run(two, "edit", "bob", note, "Hello again, edited")
    eventually(lambda: rows(one, "SELECT 1 FROM objects WHERE uri=? AND "
                            "json_extract(data, '$.content') LIKE '%edited%' AND "
                            "json_extract(data, '$.updated') IS NOT NULL", note),
               "alice's server has the edit")  # fmt: skip

    # bob deletes it: alice's copy becomes a tombstone and leaves her feed
    run(two, "delete", "bob", note)
    eventually(lambda: rows(one, "SELECT 1 FROM objects WHERE uri=? AND deleted_at IS NOT NULL",
                            note), "alice's server has the delete")  # fmt: skip
    assert note not in run(one, "feed", "alice")

    # alice unfollows: bob's server drops the follow
    run(one, "unfollow", "alice", f"@bob@{two.netloc}")
    eventually(lambda: not rows(two, "SELECT 1 FROM follows WHERE follower_uri=?", alice),
               "bob's server dropped the follow")  # fmt: skip

    # and the other direction: bob follows alice and sees her posts
    run(two, "follow", "bob", f"alice@{one.netloc}")
    eventually(lambda: rows(two, "SELECT 1 FROM follows WHERE followee_uri=? AND state='accepted'",
                            alice), "alice accepted bob")  # fmt: skip
    hello = posted_uri(run(one, "post", "alice", "Posts for my followers", "--visibility",
                           "followers"))  # fmt: skip
    eventually(lambda: hello in run(two, "feed", "bob"), "bob sees alice's followers-only post")

    # each side's collections show the state (served over HTTP)
    followers = httpx.get(f"{one.base_url}/users/alice/followers",
                          headers={"Accept": "application/activity+json"}).json()  # fmt: skip
    assert followers["totalItems"] == 1
