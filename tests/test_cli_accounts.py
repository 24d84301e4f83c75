"""The command line on one instance, as a new user tries it: local accounts are found
without the network, blocks, and accounts that approve their followers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.instances import Instance, make_instance

README = Path(__file__).parent.parent / "README.md"


@pytest.fixture
def site(tmp_path: Path) -> Instance:
    """An instance with alice and bob; its server is not running."""
    instance = make_instance(tmp_path / "site")
    for name in ("alice", "bob"):
        created = instance.cli("user", "create", name, "--password-stdin", stdin="long enough\n")
        assert created.returncode == 0, created.stderr
    return instance


def test_local_targets_that_do_not_exist_are_named(site: Instance) -> None:
    # When alice follows a name nobody has here, or answers a post that does not exist
    follow = site.cli("follow", "alice", "garbage")
    reply = site.cli("post", "alice", "hi", "--reply-to", f"{site.base_url}/users/bob/notes/x")
    # Then each says so in one line
    assert follow.returncode == 1
    assert follow.stderr == "error: no user called 'garbage' on this instance\n"
    assert reply.returncode == 1
    assert reply.stderr == f"error: no post {site.base_url}/users/bob/notes/x to reply to\n"


@pytest.mark.parametrize("target", ["alice", "@alice@{netloc}", "{base_url}/users/alice"])
def test_lookup_reads_our_own_accounts_from_the_store(site: Instance, target: str) -> None:
    # When the admin looks up a local account (the server is not running)
    found = site.cli("lookup", target.format(netloc=site.netloc, base_url=site.base_url))
    # Then its actor document is printed
    assert found.returncode == 0, found.stderr
    actor = json.loads(found.stdout)
    assert actor["id"] == f"{site.base_url}/users/alice" and actor["type"] == "Person"


def test_lookup_prints_a_local_post(site: Instance) -> None:
    posted = site.cli("post", "alice", "Hello from the shell")
    note_uri = posted.stdout.split()[1]
    found = site.cli("lookup", note_uri)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["id"] == note_uri
    missing = site.cli("lookup", f"{site.base_url}/users/alice/notes/nothere")
    assert missing.returncode == 1
    assert missing.stderr == f"error: nothing at {site.base_url}/users/alice/notes/nothere\n"


def test_block_and_unblock(site: Instance) -> None:
    # Given alice, who cannot block herself
    myself = site.cli("block", "alice", "alice")
    assert myself.returncode == 1 and myself.stderr == "error: you cannot block yourself\n"
    # When she blocks bob and unblocks him
    blocked = site.cli("block", "alice", "bob")
    unblocked = site.cli("unblock", "alice", "@bob")
    # Then each prints the activity it made, and a second unblock says there is none
    assert blocked.returncode == 0 and blocked.stdout.startswith("Block ")
    assert unblocked.returncode == 0 and unblocked.stdout.startswith("Undo ")
    again = site.cli("unblock", "alice", "bob")
    assert again.returncode == 1
    assert again.stderr == f"error: not blocking {site.base_url}/users/bob\n"


def test_a_locked_account_accepts_follow_requests_by_follow_id(site: Instance) -> None:
    # Given alice makes her account approve its followers
    locked = site.cli("user", "set", "alice", "--locked")
    assert locked.returncode == 0, locked.stderr
    actor = json.loads(site.cli("lookup", "alice").stdout)
    assert actor["manuallyApprovesFollowers"] is True
    # When bob asks to follow her
    asked = site.cli("follow", "bob", "alice")
    assert asked.returncode == 0, asked.stderr
    # Then her followers list shows the request with the FOLLOW-ID that accept takes
    pending = site.cli("followers", "alice").stdout
    request_line = next(line for line in pending.splitlines() if "pending" in line)
    assert request_line.startswith(f"@bob@{site.netloc}")
    follow_id = request_line.split("FOLLOW-ID: ")[1]
    assert follow_id == asked.stdout.split()[1].rstrip(";")
    # And once she accepts it, each list shows the other
    accepted = site.cli("accept", "alice", follow_id)
    assert accepted.returncode == 0 and accepted.stdout.startswith("Accept ")
    bob, alice = f"{site.base_url}/users/bob", f"{site.base_url}/users/alice"
    assert site.cli("followers", "alice").stdout == f"@bob@{site.netloc}  {bob}\n"
    assert site.cli("following", "bob").stdout == f"@alice@{site.netloc}  {alice}\n"
    # And unlocked, the actor says so again
    assert site.cli("user", "set", "alice", "--unlocked").returncode == 0
    assert json.loads(site.cli("lookup", "alice").stdout)["manuallyApprovesFollowers"] is False


def test_readme_and_help_name_the_follow_id_alike(site: Instance) -> None:
    readme = README.read_text()
    assert "`fedisocial accept|reject USER FOLLOW-ID`" in readme
    for command in ("accept", "reject"):
        usage = " ".join(site.cli(command, "--help").stdout.split())
        assert f"usage: fedisocial {command} [-h] user FOLLOW-ID" in usage
        assert "FOLLOW-ID: `fedisocial followers USER` shows it" in usage
