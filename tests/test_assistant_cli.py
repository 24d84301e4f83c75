"""`fedisocial assistant` against a running instance: status, queue, pause, cancel, resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.instances import Instance, eventually, serving


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Instance]:
    """A running instance with alice (its worker runs in the server)."""
    with serving(tmp_path / "site", password="long enough") as instance:
        yield instance


def _queue(site: Instance) -> list[list[str]]:
    listed = site.cli("assistant", "queue")
    assert listed.returncode == 0, listed.stderr
    return [line.split() for line in listed.stdout.splitlines()[1:]]


def test_pause_cancel_resume_and_status(site: Instance) -> None:
    # Given a fresh assistant: on, offline, with no requests
    status = site.cli("assistant", "status")
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[0] == "@assistant: on"
    assert "images: local/" in status.stdout and "text: offline" in status.stdout
    assert "per account 5/hour 20/day" in status.stdout and "requests: none yet" in status.stdout
    assert site.cli("assistant", "queue").stdout.startswith("No requests yet")
    # When the admin pauses it and alice asks twice
    paused = site.cli("assistant", "pause")
    assert paused.returncode == 0 and "paused" in paused.stdout
    assert site.cli("assistant", "pause").stdout == "The assistant was paused already.\n"
    assert site.cli("assistant", "status").stdout.startswith("@assistant: paused (paused since")
    for text in ("@assistant draw a kite", "@assistant draw a drum"):
        posted = site.cli("post", "alice", text)
        assert posted.returncode == 0, posted.stderr
    # Then both wait in the queue, queued, saying why
    rows = eventually(lambda: len(_queue(site)) == 2 and _queue(site), "two requests wait")
    assert [row[3] for row in rows] == ["queued", "queued"]
    assert all(row[1].endswith("/users/alice") for row in rows)
    assert all("paused" in " ".join(row[5:]) for row in rows)
    # When the admin cancels the first one, and names one that does not exist
    cancelled = site.cli("assistant", "cancel", rows[0][0])
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.startswith(f"request {rows[0][0]} from ") and "1 queued job" in (
        cancelled.stdout
    )
    unknown = site.cli("assistant", "cancel", "999")
    assert unknown.returncode == 1
    assert unknown.stderr == "error: no assistant request 999 (`fedisocial assistant queue` " \
                             "lists them)\n"  # fmt: skip
    again = site.cli("assistant", "cancel", rows[0][0])
    assert again.returncode == 1 and "has ended already (cancelled)" in again.stderr
    # And resumes it
    resumed = site.cli("assistant", "resume")
    assert resumed.returncode == 0 and "answers again" in resumed.stdout
    # Then the other one is answered, the cancelled one never
    eventually(lambda: {row[3] for row in _queue(site)} == {"answered", "cancelled"},
               "the second request is answered")  # fmt: skip
    status = site.cli("assistant", "status").stdout
    assert status.startswith("@assistant: on") and "1 answered, 1 cancelled" in status
    # and alice has its reply in her feed: to the second ask, with its image
    items = json.loads(site.cli("feed", "alice", "--json").stdout)
    [reply] = [item for item in items if item["attributedTo"].endswith("/users/assistant")]
    assert "Prompt: “a drum”" in reply["content"] and len(reply["attachment"]) == 1


def test_a_server_block_and_its_mistakes(site: Instance) -> None:
    blocked = site.cli("assistant", "block-domain", "spam.example")
    assert blocked.returncode == 0 and blocked.stdout == "The assistant blocks spam.example.\n"
    assert site.cli("assistant", "block-domain", "spam.example").stdout == "Nothing changed.\n"
    wrong = site.cli("assistant", "block-domain", "not a domain")
    assert wrong.returncode == 1 and "is not a server's domain" in wrong.stderr
    undone = site.cli("assistant", "unblock-domain", "https://spam.example/")
    assert undone.stdout == "The assistant no longer blocks https://spam.example/.\n"
