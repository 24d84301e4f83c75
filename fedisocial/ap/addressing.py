"""Visibility ↔ ``to``/``cc``, the way Mastodon reads and writes them.

See https://docs.joinmastodon.org/spec/activitypub/#visibility: public posts
are ``to`` Public, unlisted ones ``cc`` Public, followers-only ones go to the
followers collection, direct ones only to the mentioned actors. Received
objects may also name their ``audience``, which counts like ``to``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from fedisocial.ap.vocab import AS_PUBLIC, PUBLIC_ALIASES, as_list

__all__ = ["VISIBILITIES", "Visibility", "address", "visibility_of"]

Visibility = Literal["public", "unlisted", "followers", "direct"]
VISIBILITIES: tuple[Visibility, ...] = ("public", "unlisted", "followers", "direct")


def address(
    visibility: Visibility, followers: str, mentions: Sequence[str] = ()
) -> tuple[list[str], list[str]]:
    """``(to, cc)`` for a post of ``visibility`` by an actor with ``followers``."""
    mentioned = list(dict.fromkeys(mentions))
    if visibility == "public":
        return [AS_PUBLIC], [followers, *mentioned]
    if visibility == "unlisted":
        return [followers], [AS_PUBLIC, *mentioned]
    if visibility == "followers":
        return [followers], mentioned
    return mentioned, []


def visibility_of(
    to: Iterable[str], cc: Iterable[str], followers: str | None, audience: Iterable[str] = ()
) -> Visibility:
    """The visibility of a received object from its (normalized) ``to``, ``cc``, ``audience``.

    ``audience`` (AS2: the total population the object is relevant to; FEP-1b12
    groups set it) reads like ``to``: Public there makes the object public.
    """
    to_list, cc_list = as_list(to) + as_list(audience), as_list(cc)
    if any(iri in PUBLIC_ALIASES for iri in to_list):
        return "public"
    if any(iri in PUBLIC_ALIASES for iri in cc_list):
        return "unlisted"
    recipients = to_list + cc_list
    if followers and followers in recipients:
        return "followers"
    # Actors whose followers URL we do not know yet: Mastodon-style collection names
    if any(isinstance(iri, str) and iri.endswith("/followers") for iri in recipients):
        return "followers"
    return "direct"
