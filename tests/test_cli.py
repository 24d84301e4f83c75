"""The command line: help everywhere, clear errors, the first-run story."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.instances import FEDISOCIAL, make_instance

COMMANDS = [
    [], ["init"], ["migrate"], ["config"], ["status"], ["serve"], ["worker"], ["user"],
    ["user", "create"], ["user", "list"], ["user", "set"], ["user", "approve"],
    ["user", "reject"], ["lookup"], ["post"], ["edit"],
    ["delete"], ["follow"], ["unfollow"], ["block"], ["unblock"], ["like"], ["unlike"],
    ["boost"], ["unboost"], ["accept"], ["reject"], ["feed"], ["followers"], ["following"],
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


def run_here(
    folder: Path, *args: str, stdin: str = "", environ: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`fedisocial ARGS` run in ``folder`` with no FEDISOCIAL_* variable but ``environ``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDISOCIAL_")}
    return subprocess.run([*FEDISOCIAL, *args], capture_output=True, text=True, cwd=folder,
                          input=stdin, env={**env, **(environ or {})}, timeout=60,
                          check=False)  # fmt: skip


def test_errors_are_one_clear_line(tmp_path: Path) -> None:
    instance = make_instance(tmp_path / "site")
    instance.cli("user", "create", "bob", "--password-stdin", stdin="long enough\n")
    duplicate = instance.cli("user", "create", "bob", "--password-stdin", stdin="long enough\n")
    assert duplicate.returncode == 1
    assert duplicate.stderr == "error: username 'bob' is already taken\n"
    bad_config = instance.cli("config")
    assert bad_config.returncode == 0
    instance.environ["FEDISOCIAL_BASE_URL"] = "http://social.example"
    broken = instance.cli("config")
    assert broken.returncode == 1
    assert broken.stderr.startswith("error: base_url: must be https unless its host is loopback")


@pytest.mark.parametrize("command", [["user", "list"], ["serve"], ["feed", "alice"], ["config"]],
                         ids=" ".join)  # fmt: skip
def test_a_folder_without_an_instance_says_so(tmp_path: Path, command: list[str]) -> None:
    # Given a folder with no fedisocial.toml
    # When a command other than init runs there
    result = run_here(tmp_path, *command)
    # Then it says what to do, in one line, and leaves the folder as it was
    assert result.returncode == 1
    assert result.stderr == (
        "error: no fedisocial.toml here: run `fedisocial init` or pass --config PATH\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    # Given --config (or $FEDISOCIAL_CONFIG) naming a file that does not exist
    missing = tmp_path / "nowhere" / "fedisocial.toml"
    by_option = run_here(tmp_path, "--config", str(missing), "user", "list")
    by_variable = run_here(tmp_path, "user", "list", environ={"FEDISOCIAL_CONFIG": str(missing)})
    for result in (by_option, by_variable):
        # Then the command names the file and how to make it, and creates nothing
        assert result.returncode == 1
        assert result.stderr == (
            f"error: {missing}: no such config file (`fedisocial --config {missing} init`"
            " makes one)\n"
        )
    assert list(tmp_path.iterdir()) == []


def test_the_data_folder_is_found_beside_the_config_file(tmp_path: Path) -> None:
    # Given an instance made by a plain `fedisocial init` (data_dir = "data") with one account
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    site.mkdir(), elsewhere.mkdir()
    assert run_here(site, "init").returncode == 0
    created = run_here(site, "user", "create", "alice", "--password-stdin", stdin="long enough\n")
    assert created.returncode == 0, created.stderr
    # When a command runs from another folder with --config
    listed = run_here(elsewhere, "--config", str(site / "fedisocial.toml"), "user", "list")
    # Then it reads that instance's database and makes none where it runs
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("alice")
    assert list(elsewhere.iterdir()) == []


def test_init_tells_what_next_only_when_it_made_something(tmp_path: Path) -> None:
    # Given a first `fedisocial init`: it writes the config and makes the database
    first = run_here(tmp_path, "init")
    assert first.returncode == 0, first.stderr
    assert "Next: `fedisocial user create NAME --admin`" in first.stdout
    # When init runs again on the ready instance
    again = run_here(tmp_path, "init")
    # Then it says all is there, and no "what next" hint
    assert again.returncode == 0, again.stderr
    assert "existing configuration" in again.stdout and "Database ready" in again.stdout
    assert "Next:" not in again.stdout


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    (tmp_path / "fedisocial.toml").write_text('data_dir = "empty"\n')
    result = run_here(tmp_path, "serve")
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
    lines = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    imported = {line.rpartition("|")[2].strip().split(".")[0] for line in lines}
    # Then none of the libraries only some commands need was loaded
    assert "argparse" in imported
    assert imported.isdisjoint(HEAVY_MODULES), sorted(imported & set(HEAVY_MODULES))
