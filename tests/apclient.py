"""The `ap` command-line client (PyPI ``activitypub-cli``, evanp/ap) run against a live instance.

``ap`` needs Python 3.12 or later: :func:`ap_client_venv` makes a virtualenv with a 3.12
interpreter found on PATH or under pyenv, with the client and its dependencies at
exact versions, once per version set (cached in ``.cache/ap-client/``), and says why
it cannot when there is no such interpreter.

What the client does (read in its source, ``ap/commands/``), and what drives it here:

- ``ap login ID`` finds the actor (WebFinger over https for ``user@host``; an
  ``https://`` id on a host with a dot as it is), reads
  ``/.well-known/oauth-authorization-server`` (falling back to the actor's
  ``endpoints``), and, since we say ``client_id_metadata_document_supported``, uses
  the client id ``https://evanp.github.io/ap/cimd.json`` (not reachable here: our
  server then allows loopback redirects only). It opens the authorization URL with
  Python's ``webbrowser`` and takes the code on ``http://127.0.0.1:63546/callback``,
  a fixed port: two logins cannot run at once. ``BROWSER`` is a script that hands the
  URL over and returns; a :class:`Person` signs in and answers the consent page as
  someone would, meanwhile, then opens the callback.
- It keeps ``$HOME/.ap/token.json`` (the token answer plus ``actor_id``); every other
  command sends that Bearer token with requests-oauthlib, which sends tokens over
  https only. requests trusts our test certificate through ``REQUESTS_CA_BUNDLE``.
- A login that fails after the browser step still exits 0 (the callback handler's
  exception is only printed): check the token file, not the exit status.
- ``LANG`` must be set (it reads the language of ``nameMap``/``summaryMap`` from it).
"""

from __future__ import annotations

import fcntl
import hashlib
import html
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx

from tests.oauthflow import hidden_fields
from tests.tls import Certificate

#: the client and everything it installs, pinned (``pip freeze`` of a fresh install)
REQUIREMENTS = (
    "activitypub-cli==0.5.1",
    "certifi==2026.10.19.post1",
    "charset-normalizer==3.5.3",
    "idna==3.20",
    "oauthlib==4.0.1",
    "requests==2.34.2",
    "requests-oauthlib==2.0.0",
    "tabulate==0.10.0",
    "toml==0.10.2",
    "urllib3==2.8.0",
    "webfinger==1.0",
)
#: where the client listens for the authorization code (login.py: REDIRECT_URI)
CALLBACK_PORT = 63546
REDIRECT_URI = f"http://127.0.0.1:{CALLBACK_PORT}/callback"
REQUIRE_ENV = "FEDISOCIAL_REQUIRE_AP_CLIENT"
ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "ap-client"


class ApClientUnavailable(Exception):
    """Why the `ap` client cannot run on this machine (no Python 3.12, no install)."""


def _is_python312(candidate: str) -> bool:
    try:
        done = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    except OSError:
        return False
    return done.returncode == 0 and done.stdout.strip() == "(3, 12)"


def _pyenv_versions() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"


def find_python312() -> str | None:
    """A Python 3.12 interpreter: ``python3.12`` on PATH, else the newest under pyenv."""
    found = sorted(_pyenv_versions().glob("3.12*/bin/python3.12"), reverse=True)
    candidates = [shutil.which("python3.12"), *map(str, found)]
    return next((c for c in candidates if c and _is_python312(c)), None)


def _install(venv: Path, python: str) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    steps = [[python, "-m", "venv", str(venv)],
             [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
              "--disable-pip-version-check", "--no-input", *REQUIREMENTS]]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise ApClientUnavailable(f"could not install the ap client ({' '.join(step)}): "
                                      f"{done.stderr.strip()[-2000:]}")  # fmt: skip


def ap_client_venv() -> Path:
    """The virtualenv with the pinned client, made on first use; ApClientUnavailable if not."""
    python = find_python312()
    if python is None:
        raise ApClientUnavailable(
            "the ap client (activitypub-cli) needs Python 3.12: none on PATH (python3.12) "
            f"nor in {_pyenv_versions()}/3.12*; install one (pyenv install 3.12)"
        )
    key = hashlib.sha256("\n".join(REQUIREMENTS).encode()).hexdigest()[:10]
    venv = CACHE / f"{REQUIREMENTS[0].replace('==', '-')}-py3.12-{key}"
    CACHE.mkdir(parents=True, exist_ok=True)
    # one installer at a time (two test runs may start together); a venv cannot be moved
    # once made, so it is made in place and marked complete last
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "complete").exists():
            _install(venv, python)
            (venv / "complete").write_text(f"{python}\n")
    return venv


def callback_port_free() -> bool:
    """Whether `ap login` can listen for the code (as it does, with SO_REUSEADDR: the last
    login's connection may still be in TIME_WAIT there)."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", CALLBACK_PORT))
        except OSError:
            return False
        return True


@dataclass
class ApClient:
    """One person's `ap`: its own HOME (token file), talking to instances that trust ``cert``."""

    venv: Path
    home: Path
    cert: Certificate

    @property
    def token_file(self) -> Path:
        return self.home / ".ap" / "token.json"

    def token(self) -> dict[str, Any] | None:
        """What `ap login` saved (its OAuth token answer and ``actor_id``), if anything."""
        if not self.token_file.exists():
            return None
        saved: dict[str, Any] = json.loads(self.token_file.read_text())
        return saved

    def env(self, browser: Path | None = None) -> dict[str, str]:
        """Only what the client needs: no display, no proxy, our certificate, its HOME."""
        env = {
            "PATH": f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.home),
            "LANG": "en_US.UTF-8",
            "REQUESTS_CA_BUNDLE": str(self.cert.certfile),
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
        }
        if browser is not None:
            env["BROWSER"] = str(browser)
        return env

    def run_ap(self, *args: str, timeout: float = 60,
               browser: Path | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """``ap ARGS…`` as this person; the finished process, its output captured."""
        self.home.mkdir(parents=True, exist_ok=True)
        return subprocess.run(
            [str(self.venv / "bin" / "ap"), *args], env=self.env(browser), cwd=self.home,
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def login(self, actor: str, username: str, password: str, *,
              decision: str = "allow") -> subprocess.CompletedProcess[str]:  # fmt: skip
        """``ap login ACTOR``, with a person at the browser who signs in as ``username`` and
        presses ``decision`` (allow or deny) on the consent page; AssertionError when an
        allowed login saved no token."""
        if not callback_port_free():
            raise RuntimeError(f"port {CALLBACK_PORT} is taken: `ap login` listens there for "
                               "the code (is another ap login running?)")  # fmt: skip
        self.home.mkdir(parents=True, exist_ok=True)
        script, opened = self._browser()
        command = [str(self.venv / "bin" / "ap"), "login", actor]
        with subprocess.Popen(command, env=self.env(script), cwd=self.home, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) as ap:  # fmt: skip
            try:
                url = _wait_for(opened, ap)
                person = Person(self.cert, username, password)
                try:
                    callback = person.authorize(url, decision)
                except Exception:
                    person.open_callback(_failed(url), timeout=5)  # or ap waits forever
                    raise
                person.open_callback(callback)
                stdout, stderr = ap.communicate(timeout=60)
            finally:
                if ap.poll() is None:
                    ap.kill()
                    ap.communicate()
        # a failed login exits 0 too: the token file is the answer
        if decision == "allow" and self.token() is None:
            raise AssertionError(f"ap login saved no token:\n{stdout}{stderr}")
        return subprocess.CompletedProcess(command, ap.returncode, stdout, stderr)

    def _browser(self) -> tuple[Path, Path]:
        """The BROWSER script, and the file where it leaves the URL it was asked to open.

        Python's webbrowser runs ``$BROWSER URL`` and waits for it: the script hands the
        URL over and returns at once; the person (:class:`Person`) takes it from there.
        """
        folder = self.home.parent / f"{self.home.name}-browser"
        folder.mkdir(parents=True, exist_ok=True)
        script, opened = folder / "browser", folder / "opened"
        opened.unlink(missing_ok=True)
        q = shlex.quote(str(opened))
        script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$1\" >{q}.part && mv {q}.part {q}\n")
        script.chmod(0o700)
        return script, opened


def _wait_for(opened: Path, ap: subprocess.Popen[str], timeout: float = 30) -> str:
    """The URL `ap login` opened in the browser."""
    deadline = time.monotonic() + timeout
    while not opened.exists():
        if ap.poll() is not None or time.monotonic() > deadline:
            ap.kill()
            out, err = ap.communicate()
            raise AssertionError(f"ap login opened no browser:\n{out}{err}")
        time.sleep(0.05)
    return opened.read_text().strip()


def _failed(url: str) -> str:
    """The callback that tells the waiting client its browser failed (so it ends)."""
    state = parse_qs(urlsplit(url).query).get("state", [""])[0]
    return f"{REDIRECT_URI}?{urlencode({'error': 'browser_failed', 'state': state})}"


_FORM = re.compile(r'<form method="post" action="([^"]+)"')


@dataclass
class Person:
    """Someone at a browser that trusts ``cert``: signs in when asked, answers consent."""

    cert: Certificate
    username: str
    password: str

    def authorize(self, url: str, decision: str) -> str:
        """Open the authorization URL, sign in, press ``decision``; the callback URL."""
        with httpx.Client(verify=self.cert.client_context(), timeout=15,
                          trust_env=False) as http:  # fmt: skip
            page = http.get(url)
            if 'name="password"' in page.text:  # the sign-in form comes first
                signed_in = self._submit(http, page, username=self.username,
                                         password=self.password)  # fmt: skip
                assert signed_in.status_code == 303, (
                    f"signing in as {self.username} failed ({signed_in.status_code})"
                )
                page = http.get(urljoin(url, signed_in.headers["location"]))
            assert page.status_code == 200 and 'value="allow"' in page.text, page.text
            answer = self._submit(http, page, decision=decision)
            assert answer.status_code == 303, answer.text
            location: str = answer.headers["location"]
            assert location.startswith(REDIRECT_URI), location
            return location

    @staticmethod
    def _submit(http: httpx.Client, page: httpx.Response, **fields: str) -> httpx.Response:
        action = _FORM.search(page.text)
        assert action, page.text
        target = urljoin(str(page.url), html.unescape(action.group(1)))
        return http.post(target, data={**hidden_fields(page.text), **fields})

    def open_callback(self, url: str, timeout: float = 30) -> None:
        """Follow the redirect to the client's loopback server, once it listens."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=timeout, trust_env=False) as http:
            while True:
                try:
                    http.get(url)
                    return
                except httpx.ConnectError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
