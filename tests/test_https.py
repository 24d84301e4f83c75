"""`fedisocial serve --ssl-certfile F --ssl-keyfile K`: https without a proxy in front, with a
certificate made for 127.0.0.1 at test time; and the clear errors when the files are wrong."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.instances import Instance, make_instance
from tests.tls import Certificate, self_signed


@pytest.fixture
def cert(tmp_path: Path) -> Certificate:
    return self_signed(tmp_path / "tls")


def https_instance(root: Path, cert: Certificate) -> Instance:
    instance = make_instance(root, tls=cert)
    created = instance.cli("user", "create", "alice", "--password-stdin",
                           stdin="a good password\n")  # fmt: skip
    assert created.returncode == 0, created.stderr
    return instance


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_instance_serves_https_with_its_base_url(
    tmp_path: Path, cert: Certificate, workers: str
) -> None:
    # Given an instance whose base_url is https://127.0.0.1:PORT, served with a certificate
    instance = https_instance(tmp_path / "site", cert)
    assert instance.base_url.startswith("https://127.0.0.1:")
    instance.start("--workers", workers)
    try:
        with httpx.Client(base_url=instance.base_url, verify=cert.client_context()) as http:
            # When a client that trusts the certificate looks alice up
            finger = http.get("/.well-known/webfinger",
                              params={"resource": f"acct:alice@{instance.netloc}"})  # fmt: skip
            actor = http.get("/users/alice", headers={"Accept": "application/activity+json"})
            # Then it gets https ids, over https, from every web process
            assert finger.status_code == 200, finger.text
            assert actor.json()["id"] == f"{instance.base_url}/users/alice"
            assert actor.json()["inbox"].startswith("https://127.0.0.1:")
            for _ in range(8):
                assert http.get("/.well-known/nodeinfo").status_code == 200
        # and the server said where it listens
        log = (instance.root / "serve.log").read_text()
        assert f"listening on https://127.0.0.1:{instance.port}" in log
        # and a client that does not trust it is refused by its own TLS check
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{instance.base_url}/.well-known/nodeinfo")
    finally:
        instance.stop()


def test_plain_http_to_the_https_port_gets_no_page(tmp_path: Path, cert: Certificate) -> None:
    instance = https_instance(tmp_path / "site", cert)
    instance.start()
    try:
        plain = f"http://127.0.0.1:{instance.port}/.well-known/nodeinfo"
        with pytest.raises(httpx.TransportError):
            httpx.get(plain, timeout=5)
    finally:
        instance.stop()


def _broken_files(tmp_path: Path, cert: Certificate) -> dict[str, tuple[list[str], str]]:
    """Each wrong way to give the files: the options, and what the error says."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    other = self_signed(tmp_path / "other")
    c, k = str(cert.certfile), str(cert.keyfile)
    return {
        "missing certificate": (["--ssl-certfile", "nope.pem", "--ssl-keyfile", k],
                                "--ssl-certfile: no file at nope.pem"),
        "missing key": (["--ssl-certfile", c, "--ssl-keyfile", "nope.key"],
                        "--ssl-keyfile: no file at nope.key"),
        "a folder": (["--ssl-certfile", str(tmp_path / "folder"), "--ssl-keyfile", k],
                     "--ssl-certfile: cannot read"),
        "not PEM": (["--ssl-certfile", str(tmp_path / "garbage.pem"), "--ssl-keyfile", k],
                    "are not a PEM certificate (chain) and its private key"),
        "another key": (["--ssl-certfile", c, "--ssl-keyfile", str(other.keyfile)],
                        "are not a PEM certificate (chain) and its private key"),
        "certificate alone": (["--ssl-certfile", c],
                              "--ssl-certfile: needs its pair: give both"),
        "key alone": (["--ssl-keyfile", k], "--ssl-keyfile: needs its pair: give both"),
    }  # fmt: skip


def test_wrong_certificate_files_are_one_clear_error(tmp_path: Path, cert: Certificate) -> None:
    # Given an instance ready to serve
    instance = https_instance(tmp_path / "site", cert)
    for case, (options, message) in _broken_files(tmp_path, cert).items():
        # When serve is given files it cannot use
        result = instance.cli("serve", "--port", str(instance.port), *options)
        # Then it stops at once with one line that names the option and the file
        assert result.returncode == 1, (case, result.stdout, result.stderr)
        assert result.stderr.startswith("error: "), (case, result.stderr)
        assert message in result.stderr, (case, result.stderr)
        assert "Traceback" not in result.stderr, case


def test_an_encrypted_key_is_refused_without_a_prompt(tmp_path: Path, cert: Certificate) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(cert.keyfile.read_bytes(), password=None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    ))  # fmt: skip
    instance = https_instance(tmp_path / "site", cert)
    result = instance.cli("serve", "--ssl-certfile", str(cert.certfile),
                          "--ssl-keyfile", str(locked))  # fmt: skip
    assert result.returncode == 1
    assert "is encrypted with a passphrase" in result.stderr, result.stderr


def test_an_https_base_url_served_over_http_is_warned_about(
    tmp_path: Path, cert: Certificate
) -> None:
    instance = https_instance(tmp_path / "site", cert)
    instance.tls = None  # serve it without the certificate
    instance.start()
    try:
        log = (instance.root / "serve.log").read_text()
        assert "but the server speaks http: give --ssl-certfile and --ssl-keyfile" in log
    finally:
        instance.stop()


def test_two_https_instances_find_each_other_by_handle(tmp_path: Path, cert: Certificate) -> None:
    # Given two instances on loopback, both https (a LAN or one machine, without a proxy)
    one, two = https_instance(tmp_path / "one", cert), https_instance(tmp_path / "two", cert)
    assert two.cli("user", "create", "bob", "--password-stdin",
                   stdin="a good password\n").returncode == 0  # fmt: skip
    one.start()
    two.start()
    try:
        # When alice follows bob by his handle (WebFinger on his host first)
        followed = one.cli("follow", "alice", f"bob@{two.netloc}")
        # Then his instance was found over https, and he accepts
        assert followed.returncode == 0, followed.stderr
        deadline = time.monotonic() + 20
        while f"bob@{two.netloc}" not in one.cli("following", "alice").stdout:
            assert time.monotonic() < deadline, one.cli("following", "alice").stdout
            time.sleep(0.2)
    finally:
        one.stop()
        two.stop()
