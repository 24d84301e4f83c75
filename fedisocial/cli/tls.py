"""Checking the certificate and key `fedisocial serve` hands to uvicorn, before it starts.

uvicorn reads them in every web process and, when one is wrong, dies with an
OpenSSL traceback per worker; this says what is wrong in one line instead.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import NoReturn

from fedisocial.errors import ConfigError

__all__ = ["check_tls_files"]


def _readable(option: str, name: str) -> None:
    path = Path(name)
    if not path.exists():
        raise ConfigError(option, f"no file at {name}")
    try:
        with path.open("rb") as file:
            file.read(1)
    except OSError as exc:
        raise ConfigError(option, f"cannot read {name}: {exc.strerror or exc}") from exc


def _encrypted(keyfile: str) -> NoReturn:
    raise ConfigError("--ssl-keyfile", f"{keyfile} is encrypted with a passphrase: serve reads "
                      f"a key without one (openssl pkey -in {keyfile} -out plain.key)")  # fmt: skip


def check_tls_files(certfile: str | None, keyfile: str | None) -> bool:
    """Whether to serve https: both files given, readable, a certificate and its own key.

    ConfigError when only one is given or either cannot be used.
    """
    if certfile is None and keyfile is None:
        return False
    if certfile is None or keyfile is None:
        given = "--ssl-certfile" if certfile else "--ssl-keyfile"
        raise ConfigError(given, "needs its pair: give both --ssl-certfile and --ssl-keyfile")
    _readable("--ssl-certfile", certfile)
    _readable("--ssl-keyfile", keyfile)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # the password callback runs only for an encrypted key (instead of a prompt)
        context.load_cert_chain(certfile, keyfile, password=lambda: _encrypted(keyfile))
    except ssl.SSLError as exc:
        raise ConfigError("--ssl-certfile", f"{certfile} and {keyfile} are not a PEM certificate "
                          f"(chain) and its private key: {exc.reason or exc}") from exc  # fmt: skip
    return True
