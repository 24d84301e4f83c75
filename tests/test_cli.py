"""The command line: help everywhere, clear errors, the first-run story."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.instances import make_instance

COMMANDS = [
    [], ["init"], ["migrate"], ["config"], ["serve"], ["worker"], ["user"],
    ["user", "create"], ["user", "list"], ["lookup"], ["post"], ["edit"], ["delete"],
    ["follow"], ["unfollow"], ["block"], ["like"], ["unlike"], ["boost"], ["unboost"],
    ["accept"], ["reject"], ["feed"], ["followers"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "fedisocial")
def test_every_command_has_help(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fedisocial", *command, "--help"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0
    assert result.stdout.startswith("usage: fedisocial")
    assert len(result.stdout.splitlines()) > 3


def test_first_run_story(tmp_path: Path) -> None:
    # Given a new instance (init wrote a documented config and made the database)
    instance = make_instance(tmp_path / "site")
    config = (instance.root / "fedisocial.toml").read_text()
    assert "# env: FEDISOCIAL_BASE_URL" in config
    # When the admin creates the first account without giving a password
    created = instance.cli("user", "create", "alice", "--admin")
    # Then one is generated and shown once, with the handle people search for
    assert created.returncode == 0, created.stderr
    assert "password: " in created.stdout
    assert f"@alice@{instance.netloc}" in created.stdout
    listed = instance.cli("user", "list")
    assert listed.stdout.startswith("alice") and "admin" in listed.stdout
    # And running init again keeps the config and the account
    again = instance.cli("init")
    assert again.returncode == 0 and "existing configuration" in again.stdout
    assert "alice" in instance.cli("user", "list").stdout


def test_errors_are_one_clear_line(tmp_path: Path) -> None:
    instance = make_instance(tmp_path / "site")
    instance.cli("user", "create", "bob", "--password-stdin", stdin="long enough\n")
    duplicate = instance.cli("user", "create", "bob", "--password-stdin", stdin="long enough\n")
    assert duplicate.returncode == 1
    assert duplicate.stderr == "error: username 'bob' is already taken\n"
    bad_config = instance.cli("config")
    assert bad_config.returncode == 0
    broken = subprocess.run(
        [sys.executable, "-m", "fedisocial", "config"], capture_output=True, text=True,
        env={"FEDISOCIAL_BASE_URL": "http://social.example", "PATH": "/usr/bin"},
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert broken.returncode == 1
    assert broken.stderr.startswith("error: base_url: must be https unless its host is loopback")


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fedisocial", "serve"], capture_output=True, text=True,
        env={"FEDISOCIAL_DATA_DIR": str(tmp_path / "empty"), "PATH": "/usr/bin"},
        cwd=tmp_path, check=False, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert "migrations pending" in result.stderr and "fedisocial migrate" in result.stderr


HEAVY_MODULES = ("openai", "PIL", "sqlalchemy", "starlette", "pyld", "cryptography", "httpx",
                 "aiohttp", "jinja2", "argon2", "alembic")  # fmt: skip


@pytest.mark.parametrize("command", [[], ["post"], ["user", "list"]], ids=" ".join)
def test_help_imports_no_heavy_module(command: list[str]) -> None:
    # Given the import log of `fedisocial … --help` (what a new user types first)
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "fedisocial", *command, "--help"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    imported = {line.rpartition("|")[2].strip().split(".")[0]
                for line in result.stderr.splitlines() if line.startswith("import time:")}  # fmt: skip
    # Then none of the libraries only some commands need was loaded
    assert "argparse" in imported
    assert imported.isdisjoint(HEAVY_MODULES), sorted(imported & set(HEAVY_MODULES))
