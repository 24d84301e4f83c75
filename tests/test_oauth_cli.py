"""`fedisocial token`: tokens for scripts and bots, as Mastodon's Development → New
application gives them, used as Bearer tokens (RFC 6750) against a running instance."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.instances import Instance, make_instance

MISSING = "/api/studio/generations/999999"  # needs a signed-in user; 404 once signed in


@pytest.fixture
def site(tmp_path: Path) -> Instance:
    instance = make_instance(tmp_path / "site")
    created = instance.cli("user", "create", "alice", "--password-stdin", stdin="long enough\n")
    assert created.returncode == 0, created.stderr
    return instance


def test_create_use_list_and_revoke_a_token(site: Instance) -> None:
    # Given a token made on the command line
    made = site.cli("token", "create", "alice", "--scopes", "read,write", "--name", "my bot")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"Token 1 for @alice@{site.netloc}, scopes read write:")
    token = made.stdout.splitlines()[1]
    assert len(token) >= 43
    site.start()
    try:
        # When a script sends it as a Bearer token
        used = httpx.get(f"{site.base_url}{MISSING}", headers={"Authorization": f"Bearer {token}"})
        anonymous = httpx.get(f"{site.base_url}{MISSING}")
        # Then it acts as alice (signed in: the request is just not there); without it, 401
        assert used.status_code == 404, used.text
        assert anonymous.status_code == 401
        # and the list shows it, under its app's name
        listed = site.cli("token", "list", "alice")
        assert listed.returncode == 0
        assert "alice" in listed.stdout and "read write" in listed.stdout
        assert "active" in listed.stdout and "my bot" in listed.stdout
        # When it is revoked, it stops working at once
        revoked = site.cli("token", "revoke", "1")
        assert revoked.returncode == 0 and "revoked" in revoked.stdout
        after = httpx.get(f"{site.base_url}{MISSING}", headers={"Authorization": f"Bearer {token}"})
        assert after.status_code == 401
        assert 'error="invalid_token"' in after.headers["www-authenticate"]
        assert "revoked" in site.cli("token", "list").stdout
    finally:
        site.stop()


def test_a_read_token_may_not_upload(site: Instance) -> None:
    token = site.cli("token", "create", "alice").stdout.splitlines()[1]
    site.start()
    try:
        upload = httpx.post(f"{site.base_url}/api/studio/media",
                            headers={"Authorization": f"Bearer {token}"},
                            files={"file": ("a.png", b"not an image", "image/png")})  # fmt: skip
        assert upload.status_code == 403
        assert 'error="insufficient_scope"' in upload.headers["www-authenticate"]
    finally:
        site.stop()


def test_token_errors_are_one_line(site: Instance) -> None:
    nobody = site.cli("token", "create", "nobody")
    assert nobody.returncode == 1
    assert nobody.stderr == "error: no user called 'nobody' on this instance\n"
    scope = site.cli("token", "create", "alice", "--scopes", "read,admin")
    assert scope.returncode == 1 and "unknown scope 'admin'" in scope.stderr
    missing = site.cli("token", "revoke", "42")
    assert missing.returncode == 1 and missing.stderr == "error: no token with id 42\n"
    empty = site.cli("token", "list")
    assert empty.returncode == 0 and "No tokens yet" in empty.stdout
