"""The only place that mints and parses our URIs.

Handlers and services call ``urls.actor("alice")``, never an f-string, so the
URI scheme can change in one file. Shapes follow Mastodon where remote software
has expectations (``/users/NAME``, ``/@NAME``, ``#main-key``).
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

__all__ = ["USERNAME_RE", "Urls", "new_id"]

#: Local usernames: what Mastodon allows (letters, digits, underscore), up to 30.
USERNAME_RE = re.compile(r"^[A-Za-z0-9_]{1,30}$")


def new_id() -> str:
    """A time-ordered id (milliseconds << 16 | 16 random bits), like Mastodon's snowflakes.

    Ids sort by creation time, so collections page by id.
    """
    return str((int(time.time() * 1000) << 16) | secrets.randbits(16))


@dataclass(frozen=True)
class Urls:
    """URIs of one instance, rooted at its ``base_url`` (no trailing slash)."""

    base_url: str

    @property
    def netloc(self) -> str:
        return urlsplit(self.base_url).netloc.lower()

    # -- actors -------------------------------------------------------------
    def actor(self, username: str) -> str:
        return f"{self.base_url}/users/{username}"

    def actor_key(self, username: str) -> str:
        return f"{self.actor(username)}#main-key"

    def inbox(self, username: str) -> str:
        return f"{self.actor(username)}/inbox"

    def outbox(self, username: str) -> str:
        return f"{self.actor(username)}/outbox"

    def followers(self, username: str) -> str:
        return f"{self.actor(username)}/followers"

    def following(self, username: str) -> str:
        return f"{self.actor(username)}/following"

    def liked(self, username: str) -> str:
        return f"{self.actor(username)}/liked"

    def pending_followers(self, username: str) -> str:
        return f"{self.actor(username)}/pendingFollowers"

    def pending_following(self, username: str) -> str:
        return f"{self.actor(username)}/pendingFollowing"

    def featured(self, username: str) -> str:
        return f"{self.actor(username)}/collections/featured"

    def avatar(self, username: str) -> str:
        return f"{self.actor(username)}/avatar.png"

    def header(self, username: str) -> str:
        return f"{self.actor(username)}/header.png"

    def profile(self, username: str) -> str:
        return f"{self.base_url}/@{username}"

    def acct(self, username: str) -> str:
        return f"acct:{username}@{self.netloc}"

    # -- objects and activities of a local actor ------------------------------
    def note(self, username: str, note_id: str) -> str:
        return f"{self.actor(username)}/statuses/{note_id}"

    def activity(self, username: str, activity_id: str) -> str:
        return f"{self.actor(username)}/activities/{activity_id}"

    def replies(self, object_uri: str) -> str:
        return f"{object_uri}/replies"

    def likes(self, object_uri: str) -> str:
        return f"{object_uri}/likes"

    def shares(self, object_uri: str) -> str:
        return f"{object_uri}/shares"

    def hashtag(self, tag: str) -> str:
        return f"{self.base_url}/tags/{quote(tag.lower())}"

    def profile_feed(self, username: str) -> str:
        """The Atom feed of a local account's public posts."""
        return f"{self.base_url}/users/{username}.atom"

    def hashtag_feed(self, tag: str) -> str:
        """The Atom feed of the public posts with a hashtag."""
        return f"{self.base_url}/tags/{quote(tag.lower())}.atom"

    def media(self, key: str) -> str:
        """Where a stored media file is served (no authentication: servers fetch it)."""
        return f"{self.base_url}/media/{key}"

    # -- the client-to-server API (ActivityPub §6, the actor's ``endpoints``) ----------
    def upload_media(self, username: str) -> str:
        """Where a C2S client uploads a file (``endpoints.uploadMedia``)."""
        return f"{self.actor(username)}/media"

    def media_object(self, username: str, media_id: int) -> str:
        """The id of an uploaded file's ``Image`` document."""
        return f"{self.upload_media(username)}/{media_id}"

    @property
    def proxy(self) -> str:
        """Where a C2S client has us fetch a remote object (``endpoints.proxyUrl``)."""
        return f"{self.base_url}/api/proxy"

    @property
    def shared_inbox(self) -> str:
        return f"{self.base_url}/inbox"

    # -- the instance actor (signs the server's own fetches) ------------------
    @property
    def instance_actor(self) -> str:
        return f"{self.base_url}/actor"

    @property
    def instance_actor_key(self) -> str:
        return f"{self.instance_actor}#main-key"

    @property
    def about(self) -> str:
        return f"{self.base_url}/about"

    # -- OAuth 2.0 and sign-in (Mastodon's paths, so its apps find them too) -----
    @property
    def oauth_authorize(self) -> str:
        return f"{self.base_url}/oauth/authorize"

    @property
    def oauth_token(self) -> str:
        return f"{self.base_url}/oauth/token"

    @property
    def oauth_revoke(self) -> str:
        return f"{self.base_url}/oauth/revoke"

    @property
    def oauth_register(self) -> str:
        return f"{self.base_url}/oauth/register"

    @property
    def oauth_metadata(self) -> str:
        return f"{self.base_url}/.well-known/oauth-authorization-server"

    @property
    def authorized_apps(self) -> str:
        return f"{self.base_url}/oauth/authorized_applications"

    @property
    def sign_in(self) -> str:
        return f"{self.base_url}/auth/sign_in"

    @property
    def sign_out(self) -> str:
        return f"{self.base_url}/auth/sign_out"

    # -- discovery ----------------------------------------------------------
    def nodeinfo(self, version: str) -> str:
        return f"{self.base_url}/nodeinfo/{version}"

    @property
    def webfinger_template(self) -> str:
        return f"{self.base_url}/.well-known/webfinger?resource={{uri}}"

    # -- parsing ------------------------------------------------------------
    def local_username(self, uri: str) -> str | None:
        """The username of a local actor URI or profile URL, else None."""
        for prefix in (f"{self.base_url}/users/", f"{self.base_url}/@"):
            if uri.startswith(prefix):
                name = uri[len(prefix) :]
                return name if USERNAME_RE.match(name) else None
        return None

    def media_key(self, url: str) -> str | None:
        """The storage key of one of our media file URLs, else None."""
        prefix = f"{self.base_url}/media/"
        return (url[len(prefix) :] or None) if url.startswith(prefix) else None

    def media_object_id(self, uri: str) -> tuple[str, int] | None:
        """(username, media id) of an uploaded file's ``Image`` id, else None."""
        prefix = f"{self.base_url}/users/"
        if not uri.startswith(prefix):
            return None
        name, sep, rest = uri[len(prefix) :].partition("/media/")
        if not sep or not USERNAME_RE.match(name) or not rest.isdigit():
            return None
        return name, int(rest)

    def is_local(self, uri: str) -> bool:
        return uri == self.base_url or uri.startswith(self.base_url + "/")
