"""Real instances for end-to-end tests: `fedisocial serve` processes on loopback ports."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port
from tests.tls import Certificate

FEDISOCIAL = [sys.executable, "-m", "fedisocial"]


def eventually(check: Callable[[], Any], what: str = "the check holds", timeout: float = 20) -> Any:
    """What ``check()`` returns once it is truthy (deliveries and jobs take a moment);
    AssertionError naming ``what`` when it is not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting until {what}")


@dataclass
class Instance:
    """One instance: its folder, config, port and (while running) server process."""

    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    #: extra environment for its commands and server (e.g. FEDISOCIAL_OPENAI_BASE_URL)
    environ: dict[str, str] = field(default_factory=dict)
    #: serve https with this certificate (base_url ``https://127.0.0.1:PORT``), else http
    tls: Certificate | None = None

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What an httpx client passes as ``verify=`` to talk to this instance."""
        return self.tls.client_context() if self.tls else True

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        # with https, its fetches and deliveries (OpenSSL, under aiohttp) trust the test
        # certificate, which every https instance of a test shares, and nothing else
        trust = {"SSL_CERT_FILE": str(self.tls.certfile)} if self.tls else {}
        return {**os.environ, "FEDISOCIAL_CONFIG": str(self.root / "fedisocial.toml"),
                **trust, **self.environ}  # fmt: skip

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """Run a `fedisocial` command against this instance; returns the finished process."""
        return subprocess.run(
            [*FEDISOCIAL, *args], env=self.env, cwd=self.root, input=stdin,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def serve_command(self, *extra: str) -> list[str]:
        """`fedisocial serve` on its port, over https when it has a certificate."""
        command = [*FEDISOCIAL, "serve", "--port", str(self.port), *extra]
        if self.tls:
            command += ["--ssl-certfile", str(self.tls.certfile),
                        "--ssl-keyfile", str(self.tls.keyfile)]  # fmt: skip
        return command

    def start(self, *extra: str) -> None:
        """Start `fedisocial serve` (with ``extra`` options) and wait until it answers."""
        with (self.root / "serve.log").open("wb") as log:
            self.process = subprocess.Popen(
                self.serve_command(*extra), env=self.env, cwd=self.root, stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 90  # generous: a busy CI machine starts slowly
        verify = self.verify
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.root / "serve.log").read_text())
            try:
                httpx.get(f"{self.base_url}/.well-known/nodeinfo", timeout=1, verify=verify)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"instance on port {self.port} did not start")

    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` of its server's output (stdout and stderr)."""
        log = self.root / "serve.log"
        tail = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
        return "\n".join([f"--- the last {len(tail)} lines of {log}", *tail])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def make_instance(
    root: Path, database_url: str = "", *, tls: Certificate | None = None
) -> Instance:
    """A new, initialised (not yet started) instance in ``root`` on a free port; with ``tls``,
    its base_url is ``https://127.0.0.1:PORT`` and it serves https with that certificate."""
    root.mkdir(parents=True, exist_ok=True)
    instance = Instance(root, free_port(), tls=tls)
    done = instance.cli("init", "--base-url", instance.base_url, "--data-dir", str(root / "data"),
                        "--database-url", database_url)  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = root / "fedisocial.toml"
    config.write_text(
        config.read_text().replace(
            "allow_private_networks = false", "allow_private_networks = true"
        )
    )
    return instance


@contextmanager
def serving(
    root: Path, user: str = "alice", password: str = "a good password", *,
    environ: dict[str, str] | None = None,
) -> Iterator[Instance]:  # fmt: skip
    """A running instance in ``root`` with one account, ``user``; stopped after."""
    instance = make_instance(root)
    instance.environ.update(environ or {})
    created = instance.cli("user", "create", user, "--password-stdin", stdin=f"{password}\n")
    assert created.returncode == 0, created.stderr
    instance.start()
    try:
        with _logs_on_failure(instance):
            yield instance
    finally:
        instance.stop()


@contextmanager
def _logs_on_failure(*instances: Instance) -> Iterator[None]:
    """Print the instances' server logs when the block fails: pytest shows them beside the
    failure, after the test's folder (and the logs in it) may be gone."""
    try:
        yield
    except BaseException:
        for instance in instances:
            print(instance.log_tail())
        raise


@contextmanager
def alice_and_bob(
    root: Path, *, environ_one: dict[str, str] | None = None,
    environ_two: dict[str, str] | None = None,
) -> Iterator[tuple[Instance, Instance]]:  # fmt: skip
    """Two running instances: ``alice`` on the first, ``bob`` on the second; stopped after."""
    one, two = make_instance(root / "one"), make_instance(root / "two")
    one.environ.update(environ_one or {})
    two.environ.update(environ_two or {})
    try:
        for instance, name in ((one, "alice"), (two, "bob")):
            created = instance.cli("user", "create", name, "--password-stdin",
                                   stdin="a good password\n")  # fmt: skip
            assert created.returncode == 0, created.stderr
            instance.start()
        with _logs_on_failure(one, two):
            yield one, two
    finally:
        one.stop()
        two.stop()
