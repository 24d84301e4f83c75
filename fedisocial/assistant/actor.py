"""The assistant's actor: a local ``Service`` account anyone in the fediverse can mention.

Made once at start-up, like the instance actor (:func:`ensure_assistant_actor`), at
``/users/USERNAME`` so that WebFinger and the actor document serve it as any account;
its profile (name, summary, fields) is written again at every start, because it says
what the settings say: which models answer, the quotas, whether it is on, and how to
opt out. It accepts follows as an unlocked account does and never follows anyone.
"""

from __future__ import annotations

from html import escape

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from fedisocial.config import Settings
from fedisocial.errors import ConfigError
from fedisocial.social.accounts import account_actor
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, ServiceState, User
from fedisocial.studio.ai.images import ImageProvider
from fedisocial.studio.ai.text import TextProvider
from fedisocial.urls import USERNAME_RE, Urls

__all__ = ["ensure_assistant_actor", "profile_fields", "profile_summary", "text_model"]


def text_model(text: TextProvider | None) -> str:
    """How the profile and the CLI name the text model: ``name/model``, or offline."""
    return f"{text.name}/{text.model}" if text is not None else "offline (no text model here)"


def profile_fields(
    settings: Settings, image: ImageProvider, text: TextProvider | None
) -> list[dict[str, str]]:
    """The profile's fields (PropertyValue attachments): what it is and how it is bounded."""
    s = settings
    return [
        {"name": "What", "value": "an AI assistant (a bot)" if s.assistant_enabled
         else "an AI assistant, switched off"},
        {"name": "Images", "value": f"{image.name}/{image.model}"},
        {"name": "Text", "value": text_model(text)},
        {"name": "Limits", "value": f"{s.assistant_per_actor_per_hour}/hour and "
         f"{s.assistant_per_actor_per_day}/day per account"},
        {"name": "Opt out", "value": "block me, or set noai on your profile"},
    ]  # fmt: skip


def profile_summary(settings: Settings, image: ImageProvider, text: TextProvider | None) -> str:
    """The profile's HTML summary (escaped: every part is ours or the admin's)."""
    s = settings
    if not s.assistant_enabled:
        lines = [f"I am the AI assistant of {s.instance_name}, and I am switched off: "
                 "I do not answer mentions."]  # fmt: skip
    else:
        lines = [
            f"I am an AI assistant run by {s.instance_name}, not a person. Mention me in a "
            "post: “draw …” gets a generated picture, anything else a short text answer, "
            "as a reply to your post.",
            f"Images: {image.name}/{image.model}. Text: {text_model(text)}.",
            f"Limits: {s.assistant_per_actor_per_hour} requests an hour and "
            f"{s.assistant_per_actor_per_day} a day per account; "
            f"{s.assistant_per_domain_per_hour} an hour and {s.assistant_per_domain_per_day} "
            f"a day per server; {s.assistant_per_instance_per_hour} an hour and "
            f"{s.assistant_per_instance_per_day} a day in all. I answer no bots and no "
            f"posts older than {s.assistant_max_post_age_hours} hours, and I never follow "
            "anyone.",
            "Opt out: block me and I never answer you nor read your posts; or mark your "
            "profile noai (FEP-5e53) and I never quote your posts into a prompt.",
        ]
    return "".join(f"<p>{escape(line)}</p>" for line in lines)


async def ensure_assistant_actor(
    db: Database, urls: Urls, settings: Settings, image: ImageProvider,
    text: TextProvider | None,
) -> tuple[Actor, bool]:  # fmt: skip
    """The assistant's Service actor, made if missing, its profile brought up to date; and
    whether the profile of an existing one changed (its followers are then told).

    ConfigError when the name cannot be an account's, or a person has it already
    (``[assistant] username`` must then name another).
    """
    username = settings.assistant_username
    if not USERNAME_RE.match(username):
        raise ConfigError("assistant.username", "must be 1-30 letters, digits or underscores")
    try:
        return await _write(db, urls, settings, image, text)
    except IntegrityError:  # another process made it at the same moment: update that one
        return await _write(db, urls, settings, image, text)


async def _write(
    db: Database, urls: Urls, settings: Settings, image: ImageProvider,
    text: TextProvider | None,
) -> tuple[Actor, bool]:  # fmt: skip
    username = settings.assistant_username
    async with db.transaction() as session:
        person = await session.scalar(
            select(User.username).where(func.lower(User.username) == username.lower())
        )
        if person is not None:
            raise ConfigError(
                "assistant.username",
                f"@{person} is a person's account on this instance; set [assistant] "
                "username to a name nobody has",
            )
        actor = await session.scalar(select(Actor).where(Actor.uri == urls.actor(username)))
        existed = actor is not None
        if actor is None:
            actor = account_actor(urls, username, "Service")
            session.add(actor)
        profile = (settings.assistant_display_name, profile_summary(settings, image, text),
                   profile_fields(settings, image, text))  # fmt: skip
        changed = existed and (actor.name, actor.summary, actor.fields) != profile
        actor.name, actor.summary, actor.fields = profile
        actor.manually_approves_followers = False
        # one assistant per instance: one left behind by a change of name answers no more
        await session.execute(
            update(ServiceState).where(ServiceState.actor_uri != actor.uri).values(enabled=False)
        )
        state = await session.get(ServiceState, actor.uri)
        if state is None:
            session.add(ServiceState(actor_uri=actor.uri, enabled=settings.assistant_enabled))
        else:
            state.enabled = settings.assistant_enabled
    return actor, changed
