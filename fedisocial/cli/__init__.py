"""The ``fedisocial`` command: run, administer and debug an instance.

Building the parser imports nothing heavy: each command names its handler as
``module:function`` of this package, and only the command that runs imports
its module (and with it SQLAlchemy, the HTTP client or the image model), so
``--help`` answers at once.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable

from fedisocial.cli.output import echo
from fedisocial.cli.parser import build_parser
from fedisocial.errors import FedisocialError

__all__ = ["main"]


def _handler(spec: str) -> Callable[..., int]:
    module, _, name = spec.partition(":")
    handler: Callable[..., int] = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    return handler


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = _handler(args.handler)(args)
    except FedisocialError as exc:
        echo(f"error: {exc.message}", err=True)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
