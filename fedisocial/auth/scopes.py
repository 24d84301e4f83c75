"""OAuth scopes: what a client may ask for, and whether a token's grant covers an action.

The top-level scopes are ``read``, ``write`` (FEP-d8c2 and Mastodon), ``follow`` and ``push``
(Mastodon apps ask for them). Mastodon's granular scopes (``read:statuses``, ``write:media``
…) are accepted too and implied by their parent: a ``read`` token may do what
``read:statuses`` allows. ``follow`` is Mastodon's old name for the follow, block and mute
scopes, and implies them. https://docs.joinmastodon.org/api/oauth-scopes/

A grant is kept as the client asked for it (the token answer echoes it exactly, RFC 6749
§5.1), and checks read it through :func:`covers`.
"""

from __future__ import annotations

from collections.abc import Iterable

from fedisocial.errors import BadRequest

__all__ = [
    "DEFAULT_SCOPE",
    "SCOPES",
    "TOP_LEVEL",
    "covers",
    "covers_all",
    "parse_scope",
]

#: what a client gets when it asks for nothing (Mastodon's default too)
DEFAULT_SCOPE = "read"

TOP_LEVEL = ("read", "write", "follow", "push")

_READ = ("accounts", "blocks", "bookmarks", "favourites", "filters", "follows", "lists",
         "mutes", "notifications", "search", "statuses")  # fmt: skip
_WRITE = ("accounts", "blocks", "bookmarks", "conversations", "favourites", "filters",
          "follows", "lists", "media", "mutes", "notifications", "reports", "statuses")  # fmt: skip

#: every scope we grant, top-level first
SCOPES: tuple[str, ...] = (
    *TOP_LEVEL,
    *(f"read:{name}" for name in _READ),
    *(f"write:{name}" for name in _WRITE),
)

#: what Mastodon's deprecated ``follow`` scope stands for
_FOLLOW = frozenset(
    {"read:follows", "write:follows", "read:blocks", "write:blocks", "read:mutes", "write:mutes"}
)


def parse_scope(text: str | None) -> list[str]:
    """The scopes of a ``scope`` parameter (space-separated; none: :data:`DEFAULT_SCOPE`).

    Order and spelling are kept; repeats are dropped. Unknown scopes raise BadRequest.
    """
    names = list(dict.fromkeys((text or "").split())) or [DEFAULT_SCOPE]
    unknown = [name for name in names if name not in SCOPES]
    if unknown:
        raise BadRequest(
            f"unknown scope {' '.join(unknown)!r}: this server grants {', '.join(TOP_LEVEL)} "
            "and Mastodon's read:* and write:* scopes"
        )
    return names


def covers(granted: Iterable[str], needed: str) -> bool:
    """Whether a grant allows ``needed``: itself, its parent (``read`` for ``read:lists``),
    or ``follow`` for the follow, block and mute scopes."""
    names = set(granted)
    if needed in names:
        return True
    parent, sep, _ = needed.partition(":")
    if sep and parent in names:
        return True
    return needed in _FOLLOW and "follow" in names


def covers_all(granted: Iterable[str], needed: Iterable[str]) -> bool:
    """Whether a grant allows every scope of ``needed``."""
    names = set(granted)
    return all(covers(names, scope) for scope in needed)
