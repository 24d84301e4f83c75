"""Two real instances on loopback find each other (WebFinger + signed GET)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.instances import Instance, alice_and_bob, make_instance


@pytest.fixture
def two_instances(tmp_path: Path) -> Iterator[tuple[Instance, Instance]]:
    with alice_and_bob(tmp_path) as pair:
        yield pair


def test_instances_look_each_other_up(two_instances: tuple[Instance, Instance]) -> None:
    one, two = two_instances
    # When alice's admin looks up bob by handle, and bob's admin looks up alice by URL
    by_handle = one.cli("lookup", f"@bob@{two.netloc}")
    by_url = two.cli("lookup", f"{one.base_url}/users/alice")
    # Then each gets the other's actor document
    assert by_handle.returncode == 0, by_handle.stderr
    assert by_url.returncode == 0, by_url.stderr
    bob, alice = json.loads(by_handle.stdout), json.loads(by_url.stdout)
    assert bob["id"] == f"{two.base_url}/users/bob" and bob["preferredUsername"] == "bob"
    assert alice["id"] == f"{one.base_url}/users/alice"
    assert alice["publicKey"]["owner"] == alice["id"]


def test_lookup_errors_are_clear(two_instances: tuple[Instance, Instance]) -> None:
    one, two = two_instances
    missing = one.cli("lookup", f"nobody@{two.netloc}")
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: ") and "404" in missing.stderr
    malformed = one.cli("lookup", "not a handle")
    assert malformed.returncode == 1 and "error:" in malformed.stderr


def test_private_addresses_are_refused_unless_allowed(tmp_path: Path) -> None:
    # Given an instance with the default configuration (private networks refused)
    guarded = make_instance(tmp_path / "guarded")
    config = guarded.root / "fedisocial.toml"
    config.write_text(config.read_text().replace("allow_private_networks = true",
                                                 "allow_private_networks = false"))  # fmt: skip
    # When its admin looks up something on loopback, by address or by a name resolving there
    for target in ("https://127.0.0.1:9/users/x", "https://localhost:9/users/x"):
        result = guarded.cli("lookup", target)
        # Then it refuses before connecting, and says how to allow it
        assert result.returncode == 1
        assert "not a public address" in result.stderr
        assert "allow_private_networks" in result.stderr
    plain = guarded.cli("lookup", "http://social.example/users/x")
    assert "only https URLs are fetched" in plain.stderr
