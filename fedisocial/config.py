"""One frozen, typed settings object.

Values come from, in rising order of precedence: the defaults declared below,
the TOML file (``fedisocial.toml`` in the working directory, or the path in
``FEDISOCIAL_CONFIG`` / ``--config``), and ``FEDISOCIAL_*`` environment
variables. Settings are read once at start-up and validated; an invalid value
stops start-up with a :class:`~fedisocial.errors.ConfigError` that names the
field and says what would be valid. ``fedisocial config`` prints the result.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import textwrap
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from fedisocial.errors import ConfigError

__all__ = [
    "AI_CRAWLER_MODES",
    "REGISTRATION_MODES",
    "Settings",
    "config_path",
    "example_toml",
    "find_config",
    "load_settings",
]

REGISTRATION_MODES = ("open", "approval", "closed")
AI_CRAWLER_MODES = ("allow", "block")
DEFAULT_CONFIG_FILE = "fedisocial.toml"
#: the [assistant] bounds and quotas, each at least one
ASSISTANT_POSITIVE = ("assistant_max_post_age_hours", "assistant_thread_depth",
                      "assistant_per_actor_per_hour", "assistant_per_actor_per_day",
                      "assistant_per_domain_per_hour", "assistant_per_domain_per_day",
                      "assistant_per_instance_per_hour",
                      "assistant_per_instance_per_day")  # fmt: skip


def _setting(
    default: Any, doc: str, env: str | tuple[str, ...], secret: bool = False, section: str = ""
) -> Any:
    """A settings field: its documentation and environment variable(s) live beside it.

    ``section`` puts it in a TOML table (``[ai.images]``); the field name is then
    the table path joined with ``_`` plus the key (``ai_images_model``).
    """
    names = (env,) if isinstance(env, str) else env
    metadata = {"doc": doc, "env": names, "secret": secret, "section": section}
    return field(default=default, metadata=metadata)


def _toml_key(f: dataclasses.Field[Any]) -> str:
    """``ai.images.model`` for a sectioned field, the field name otherwise."""
    section = f.metadata["section"]
    if not section:
        return f.name
    return f"{section}.{f.name.removeprefix(section.replace('.', '_') + '_')}"


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@dataclass(frozen=True)
class Settings:
    """The effective configuration of one instance (see conf/fedisocial.example.toml)."""

    base_url: str = _setting(
        "http://127.0.0.1:8000",
        "Public URL of the instance, as remote servers and browsers reach it. Must be "
        "https unless its host is loopback (127.0.0.1, ::1, localhost). Do not change it "
        "once others follow you: it is part of every account's identity.",
        "FEDISOCIAL_BASE_URL",
    )
    data_dir: str = _setting(
        "data",
        "Folder for the SQLite database, media and other local state.",
        "FEDISOCIAL_DATA_DIR",
    )
    database_url: str = _setting(
        "",
        "SQLAlchemy URL of the database; empty means SQLite in data_dir. "
        "sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB.",
        "FEDISOCIAL_DATABASE_URL",
        secret=True,
    )
    database_pool_size: int = _setting(
        20,
        "PostgreSQL connections each process (web process or worker) keeps open; it may open "
        "half as many more for a burst. All processes together must stay below the "
        "server's max_connections (100 by default): 3 processes at 20 open at most 90.",
        "FEDISOCIAL_DATABASE_POOL_SIZE",
    )
    allow_private_networks: bool = _setting(
        False,
        "Let the server fetch from and deliver to loopback and private addresses. Keep it "
        "off in production (it would open the door to SSRF); turn it on for tests and for "
        "instances federating on one machine or a LAN.",
        "FEDISOCIAL_ALLOW_PRIVATE_NETWORKS",
    )
    registrations: str = _setting(
        "approval",
        "Who may sign up on the web: open, approval (an admin approves) or closed.",
        "FEDISOCIAL_REGISTRATIONS",
    )
    instance_name: str = _setting(
        "fedisocial", "Name shown on pages and in NodeInfo.", "FEDISOCIAL_INSTANCE_NAME"
    )
    instance_description: str = _setting(
        "A small fediverse server with an AI image studio.",
        "One or two sentences about the instance, shown on pages and in NodeInfo.",
        "FEDISOCIAL_INSTANCE_DESCRIPTION",
    )
    authorized_fetch: bool = _setting(
        False,
        "Secure mode (Mastodon's AUTHORIZED_FETCH): ActivityPub documents are served "
        "only to signed GET requests, so blocked servers cannot read public posts "
        "anonymously. Our own fetches are always signed by the instance actor.",
        "FEDISOCIAL_AUTHORIZED_FETCH",
    )
    max_inbox_bytes: int = _setting(
        1_048_576,
        "Largest activity accepted by the inbox, in bytes; larger ones get 413.",
        "FEDISOCIAL_MAX_INBOX_BYTES",
    )
    inbox_max_backlog: int = _setting(
        10_000,
        "Received activities that may wait to be processed (due or running) before the "
        "inbox answers 503 with Retry-After; senders try again later, so nothing is lost. "
        "The default is about half a minute of work for two cores; 0 never refuses.",
        "FEDISOCIAL_INBOX_MAX_BACKLOG",
    )
    actor_cache_seconds: int = _setting(
        86400,
        "Seconds a remote actor document stays fresh before it is fetched again.",
        "FEDISOCIAL_ACTOR_CACHE_SECONDS",
    )
    job_lease_seconds: int = _setting(
        300,
        "Seconds a worker holds a claimed job; the worker renews it every third of this "
        "while the job runs, and if the worker dies, another one takes the job over after "
        "this long.",
        "FEDISOCIAL_JOB_LEASE_SECONDS",
    )
    job_retention_hours: int = _setting(
        24,
        "Hours done and cancelled jobs stay in the jobs table (to debug them) before the "
        "worker prunes them, a batch at a time.",
        "FEDISOCIAL_JOB_RETENTION_HOURS",
    )
    job_failed_retention_hours: int = _setting(
        168,
        "Hours jobs that failed for good stay in the jobs table, with their last error, "
        "before the worker prunes them (default: 7 days).",
        "FEDISOCIAL_JOB_FAILED_RETENTION_HOURS",
    )
    http_timeout: float = _setting(
        10.0,
        "Seconds an outbound HTTP request may take in all: connecting, headers and body "
        "(redirects included).",
        "FEDISOCIAL_HTTP_TIMEOUT",
    )
    max_fetch_bytes: int = _setting(
        1_048_576, "Largest remote document we read, in bytes.", "FEDISOCIAL_MAX_FETCH_BYTES"
    )
    log_level: str = _setting(
        "info", "Log level: debug, info, warning or error.", "FEDISOCIAL_LOG_LEVEL"
    )
    media_max_bytes: int = _setting(
        16_777_216,
        "Largest image accepted (uploaded or generated), in bytes.",
        "FEDISOCIAL_MEDIA_MAX_BYTES",
    )
    media_max_pixels: int = _setting(
        40_000_000,
        "Largest image accepted, in pixels (width x height); bigger ones are refused "
        "before they are decoded (decompression bombs).",
        "FEDISOCIAL_MEDIA_MAX_PIXELS",
    )
    media_max_description: int = _setting(
        1500,
        "Longest alt text (image description) accepted, in characters (Mastodon's limit). "
        "Uploaded images must have one.",
        "FEDISOCIAL_MEDIA_MAX_DESCRIPTION",
    )
    media_concurrent_decodes: int = _setting(
        2,
        "Images one process decodes at once (uploads and generated ones); the others "
        "wait their turn. A decode takes up to 4 bytes per pixel (160 MB at the largest "
        "media_max_pixels default), so this bounds the memory images may take.",
        "FEDISOCIAL_MEDIA_CONCURRENT_DECODES",
    )
    sign_in_free_attempts: int = _setting(
        5,
        "Wrong passwords an account may get before each further sign-in must wait: "
        "1 second, then twice as long after every failure, up to sign_in_max_wait. "
        "A client address gets four times as many (people share addresses). A right "
        "password resets the account's count; a day without attempts forgets it.",
        "FEDISOCIAL_SIGN_IN_FREE_ATTEMPTS",
    )
    sign_in_max_wait: int = _setting(
        900,
        "Longest wait, in seconds, between sign-in attempts after repeated failures.",
        "FEDISOCIAL_SIGN_IN_MAX_WAIT",
    )
    oauth_token_lifetime: int = _setting(
        0,
        "Seconds an OAuth access token stays valid; 0 means until revoked, as on Mastodon "
        "(whose apps never refresh). Clients get a refresh token either way, rotated on use.",
        "FEDISOCIAL_OAUTH_TOKEN_LIFETIME",
    )
    ai_crawlers: str = _setting(
        "allow",
        "AI crawlers (GPTBot, CCBot, ClaudeBot, Google-Extended...): allow lets them read "
        "public pages except those of accounts that opted out of AI use (robots.txt lists "
        "them; their pages and media say X-Robots-Tag: noai, noimageai); block asks them "
        "to stay away from the whole instance and marks every page and file noai.",
        "FEDISOCIAL_AI_CRAWLERS",
    )
    ai_hashtag: str = _setting(
        "AIGenerated",
        "Hashtag added to posts with generated images (without #), so people can filter them.",
        "FEDISOCIAL_AI_HASHTAG",
    )

    # -- [ai.images] ------------------------------------------------------------
    ai_images_provider: str = _setting(
        "auto",
        "Which image model answers the composer: openai (any OpenAI-compatible "
        "endpoint), local (an offline renderer that needs no account) or auto: "
        "openai when base_url or api_key is set, local otherwise.",
        "FEDISOCIAL_AI_IMAGES_PROVIDER",
        section="ai.images",
    )
    ai_images_base_url: str = _setting(
        "",
        "Base URL of an OpenAI-compatible API (OpenAI, Azure, LocalAI, vLLM...), "
        "e.g. https://api.openai.com/v1. Empty: OpenAI's own.",
        "FEDISOCIAL_OPENAI_BASE_URL",
        section="ai.images",
    )
    ai_images_api_key: str = _setting(
        "",
        "API key for that endpoint. Prefer the environment variable to this file; "
        "it is never printed.",
        ("FEDISOCIAL_OPENAI_API_KEY", "OPENAI_API_KEY"),
        secret=True,
        section="ai.images",
    )
    ai_images_model: str = _setting(
        "gpt-image-1", "Image model name.", "FEDISOCIAL_AI_IMAGES_MODEL", section="ai.images"
    )
    ai_images_size: str = _setting(
        "1024x1024", "Image size, WIDTHxHEIGHT.", "FEDISOCIAL_AI_IMAGES_SIZE", section="ai.images"
    )
    ai_images_quality: str = _setting(
        "auto",
        "Quality the model is asked for (gpt-image-1: low, medium, high, auto; "
        "dall-e-3: standard, hd).",
        "FEDISOCIAL_AI_IMAGES_QUALITY",
        section="ai.images",
    )
    ai_images_output_format: str = _setting(
        "png",
        "File format asked of the model: png, jpeg or webp.",
        "FEDISOCIAL_AI_IMAGES_OUTPUT_FORMAT",
        section="ai.images",
    )
    ai_images_timeout: float = _setting(
        120.0,
        "Seconds one generation may take before it fails with a timeout.",
        "FEDISOCIAL_AI_IMAGES_TIMEOUT",
        section="ai.images",
    )
    ai_images_per_hour: int = _setting(
        20, "Images one user may generate per hour.", "FEDISOCIAL_AI_IMAGES_PER_HOUR",
        section="ai.images",
    )  # fmt: skip
    ai_images_concurrent: int = _setting(
        2, "Generations one user may have queued or running at once.",
        "FEDISOCIAL_AI_IMAGES_CONCURRENT", section="ai.images",
    )  # fmt: skip

    # -- [ai.text] ------------------------------------------------------------
    ai_text_provider: str = _setting(
        "auto",
        "Which text model answers the assistant and the composer's drafting help: openai "
        "(any OpenAI-compatible chat completions endpoint), off (offline answers only) or "
        "auto: openai when base_url or api_key is set here, off otherwise.",
        "FEDISOCIAL_AI_TEXT_PROVIDER",
        section="ai.text",
    )
    ai_text_base_url: str = _setting(
        "",
        "Base URL of an OpenAI-compatible API for text, e.g. https://api.openai.com/v1. "
        "Empty: the one of [ai.images] if set, else OpenAI's own.",
        "FEDISOCIAL_AI_TEXT_BASE_URL",
        section="ai.text",
    )
    ai_text_api_key: str = _setting(
        "",
        "API key for that endpoint (empty: the key of [ai.images]). Prefer the "
        "environment variable to this file; it is never printed.",
        "FEDISOCIAL_AI_TEXT_API_KEY",
        secret=True,
        section="ai.text",
    )
    ai_text_model: str = _setting(
        "gpt-4o-mini", "Chat model name.", "FEDISOCIAL_AI_TEXT_MODEL", section="ai.text"
    )
    ai_text_vision: bool = _setting(
        False,
        "Whether the model accepts images (then it can suggest alt text for uploads).",
        "FEDISOCIAL_AI_TEXT_VISION",
        section="ai.text",
    )
    ai_text_timeout: float = _setting(
        30.0, "Seconds one answer may take before it fails with a timeout.",
        "FEDISOCIAL_AI_TEXT_TIMEOUT", section="ai.text",
    )  # fmt: skip
    ai_text_max_tokens: int = _setting(
        400, "Longest answer asked of the model, in tokens.", "FEDISOCIAL_AI_TEXT_MAX_TOKENS",
        section="ai.text",
    )  # fmt: skip
    ai_text_drafts_per_hour: int = _setting(
        30, "Suggestions from the text model (for a draft, or alt text) one user may ask "
        "for per hour; the offline hints are not counted.",
        "FEDISOCIAL_AI_TEXT_DRAFTS_PER_HOUR", section="ai.text",
    )  # fmt: skip

    # -- [assistant]: the account anyone in the fediverse can mention ---------------
    assistant_enabled: bool = _setting(
        True, "Whether the assistant account answers mentions (off: it stays, says it is "
        "off, and queues nothing).", "FEDISOCIAL_ASSISTANT_ENABLED", section="assistant",
    )  # fmt: skip
    assistant_username: str = _setting(
        "assistant", "Username of the assistant account (no person may have it).",
        "FEDISOCIAL_ASSISTANT_USERNAME", section="assistant",
    )  # fmt: skip
    assistant_display_name: str = _setting(
        "Assistant (AI)", "Name shown on the assistant's profile.",
        "FEDISOCIAL_ASSISTANT_DISPLAY_NAME", section="assistant",
    )  # fmt: skip
    assistant_system_prompt: str = _setting(
        "You are an AI assistant on a fediverse (ActivityPub) instance. People mention you "
        "in posts; answer briefly, in plain text, in the language of the question, and say "
        "so when you do not know.",
        "The system prompt of the assistant's text answers.",
        "FEDISOCIAL_ASSISTANT_SYSTEM_PROMPT", section="assistant",
    )  # fmt: skip
    assistant_max_post_age_hours: int = _setting(
        24, "Posts older than this many hours are not answered.",
        "FEDISOCIAL_ASSISTANT_MAX_POST_AGE_HOURS", section="assistant",
    )  # fmt: skip
    assistant_thread_depth: int = _setting(
        6, "Posts above the asking one that the assistant reads as context.",
        "FEDISOCIAL_ASSISTANT_THREAD_DEPTH", section="assistant",
    )  # fmt: skip
    assistant_per_actor_per_hour: int = _setting(
        5, "Requests one remote or local account may make per hour.",
        "FEDISOCIAL_ASSISTANT_PER_ACTOR_PER_HOUR", section="assistant",
    )  # fmt: skip
    assistant_per_actor_per_day: int = _setting(
        20, "Requests one account may make per day.",
        "FEDISOCIAL_ASSISTANT_PER_ACTOR_PER_DAY", section="assistant",
    )  # fmt: skip
    assistant_per_domain_per_hour: int = _setting(
        30, "Requests the accounts of one server may make per hour.",
        "FEDISOCIAL_ASSISTANT_PER_DOMAIN_PER_HOUR", section="assistant",
    )  # fmt: skip
    assistant_per_domain_per_day: int = _setting(
        200, "Requests the accounts of one server may make per day.",
        "FEDISOCIAL_ASSISTANT_PER_DOMAIN_PER_DAY", section="assistant",
    )  # fmt: skip
    assistant_per_instance_per_hour: int = _setting(
        100, "Requests the assistant answers per hour, from everyone.",
        "FEDISOCIAL_ASSISTANT_PER_INSTANCE_PER_HOUR", section="assistant",
    )  # fmt: skip
    assistant_per_instance_per_day: int = _setting(
        500, "Requests the assistant answers per day, from everyone.",
        "FEDISOCIAL_ASSISTANT_PER_INSTANCE_PER_DAY", section="assistant",
    )  # fmt: skip

    # -- derived values -------------------------------------------------------

    @property
    def netloc(self) -> str:
        """host[:port] of base_url: the domain part of our handles (alice@netloc)."""
        return urlsplit(self.base_url).netloc.lower()

    @property
    def hostname(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{Path(self.data_dir).resolve() / 'fedisocial.db'}"

    @property
    def image_provider(self) -> str:
        """openai or local: what ``ai.images.provider = auto`` resolves to."""
        if self.ai_images_provider != "auto":
            return self.ai_images_provider
        return "openai" if self.ai_images_base_url or self.ai_images_api_key else "local"

    @property
    def text_provider(self) -> str:
        """openai or off: what ``ai.text.provider = auto`` resolves to."""
        if self.ai_text_provider != "auto":
            return self.ai_text_provider
        return "openai" if self.ai_text_base_url or self.ai_text_api_key else "off"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def describe(self) -> list[tuple[str, str, str]]:
        """(name, value, source doc) rows for ``fedisocial config``, secrets masked."""
        rows = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            shown = _mask_secret(str(value)) if f.metadata["secret"] else str(value)
            rows.append((_toml_key(f), shown, " or ".join(f.metadata["env"])))
        rows.append(("(effective database)", _mask(self.effective_database_url), ""))
        return rows


def example_toml(**overrides: Any) -> str:
    """A documented config file with every setting (``fedisocial init`` writes it)."""
    lines = [
        "# fedisocial configuration. Every setting can also be set by the environment",
        "# variable named beside it, which wins over this file. `fedisocial config`",
        "# prints the effective values.",
    ]
    section = ""
    for f in sorted(dataclasses.fields(Settings), key=lambda f: bool(f.metadata["section"])):
        if f.metadata["section"] != section:
            section = f.metadata["section"]
            lines.extend(["", f"[{section}]"])
        value = overrides.get(f.name, f.default)
        lines.append("")
        lines.extend("# " + line for line in textwrap.wrap(f.metadata["doc"], 76))
        lines.append(f"# env: {' or '.join(f.metadata['env'])}")
        lines.append(f"{_toml_key(f).rpartition('.')[2]} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def _mask_secret(value: str) -> str:
    """URLs keep all but their password; other secrets (API keys) are never shown."""
    if "://" in value:
        return _mask(value)
    return "********" if value else ""


def _mask(value: str) -> str:
    """Hide a password inside a URL (postgresql://user:secret@host → user:***@host)."""
    parts = urlsplit(value)
    if parts.password:
        return value.replace(f":{parts.password}@", ":***@", 1)
    return value


def config_path(explicit: str | None = None) -> Path:
    """The config file to read: --config, then $FEDISOCIAL_CONFIG, then ./fedisocial.toml."""
    return Path(explicit or os.environ.get("FEDISOCIAL_CONFIG") or DEFAULT_CONFIG_FILE)


def find_config(explicit: str | None = None) -> Path:
    """The config file of the instance a command runs against; ConfigError if there is none.

    Commands other than ``init`` need one: run without, they would open (and
    create) an empty database under the defaults in whatever folder they run in.
    """
    path = config_path(explicit)
    if path.is_file():
        return path
    if explicit or os.environ.get("FEDISOCIAL_CONFIG"):
        raise ConfigError(
            str(path), f"no such config file (`fedisocial --config {path} init` makes one)"
        )
    raise ConfigError(
        f"no {DEFAULT_CONFIG_FILE} here", "run `fedisocial init` or pass --config PATH"
    )


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the file (if it exists) and the environment, validate, return Settings.

    A relative ``data_dir`` in the file is relative to the file's folder, so the
    instance is the same from wherever its commands run.
    """
    environ = os.environ if environ is None else environ
    file = config_path(str(path) if path else environ.get("FEDISOCIAL_CONFIG"))
    raw: dict[str, Any] = {}
    if file.exists():
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(file), f"is not valid TOML: {exc}") from exc
    values: dict[str, Any] = {}
    known = {_toml_key(f): f for f in dataclasses.fields(Settings)}
    for key, value in _flatten(raw).items():
        if key not in known:
            valid = ", ".join(sorted(known))
            raise ConfigError(key, f"unknown setting in {file}; valid settings are: {valid}")
        values[known[key].name] = _coerce(known[key], value)
    if "data_dir" in values:
        values["data_dir"] = str(file.parent / values["data_dir"])
    for f in known.values():
        for name in f.metadata["env"]:
            if name in environ:
                values[f.name] = _coerce(f, environ[name])
                break
    if "base_url" in values:
        values["base_url"] = values["base_url"].rstrip("/")
    settings = Settings(**values)
    _validate(settings)
    return settings


def _coerce(f: dataclasses.Field[Any], value: Any) -> Any:
    kind: type[Any] = type(f.default)
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f.name, f"must be true or false, not {value!r}")
    if kind in (int, float):
        try:
            return kind(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f.name, f"must be a number, not {value!r}") from exc
    if not isinstance(value, str):
        raise ConfigError(f.name, f"must be a string, not {value!r}")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validate(settings: Settings) -> None:
    parts = urlsplit(settings.base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("base_url", "must be an absolute URL like https://social.example")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError("base_url", "must not have a path, query or fragment")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            "base_url",
            f"must be https unless its host is loopback; got {settings.base_url} "
            "(put the instance behind a reverse proxy with TLS, see conf/nginx.conf)",
        )
    if settings.registrations not in REGISTRATION_MODES:
        raise ConfigError("registrations", f"must be one of {', '.join(REGISTRATION_MODES)}")
    if settings.ai_crawlers not in AI_CRAWLER_MODES:
        raise ConfigError("ai_crawlers", f"must be one of {', '.join(AI_CRAWLER_MODES)}")
    url = settings.effective_database_url
    if not url.startswith(("sqlite+aiosqlite:///", "postgresql+asyncpg://")):
        raise ConfigError(
            "database_url",
            "must start with sqlite+aiosqlite:/// or postgresql+asyncpg://",
        )
    if settings.ai_images_provider not in ("auto", "openai", "local"):
        raise ConfigError("ai.images.provider", "must be auto, openai or local")
    if settings.ai_text_provider not in ("auto", "openai", "off"):
        raise ConfigError("ai.text.provider", "must be auto, openai or off")
    if settings.ai_images_output_format not in ("png", "jpeg", "webp"):
        raise ConfigError("ai.images.output_format", "must be png, jpeg or webp")
    width, _, height = settings.ai_images_size.partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise ConfigError("ai.images.size", "must be WIDTHxHEIGHT, e.g. 1024x1024")
    if not settings.ai_hashtag.replace("_", "").isalnum():
        raise ConfigError("ai_hashtag", "must be letters, digits and underscores (no #)")
    if settings.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError("log_level", "must be one of debug, info, warning, error")
    positive = ("actor_cache_seconds", "job_lease_seconds", "job_retention_hours",
                "job_failed_retention_hours", "http_timeout", "max_fetch_bytes",
                "max_inbox_bytes", "media_max_bytes", "media_max_pixels", "ai_images_timeout",
                "ai_images_per_hour", "ai_images_concurrent", "media_concurrent_decodes",
                "media_max_description", "database_pool_size", "ai_text_timeout",
                "ai_text_max_tokens", "ai_text_drafts_per_hour",
                "sign_in_free_attempts",
                "sign_in_max_wait")  # fmt: skip
    for name in positive:
        if cast(float, getattr(settings, name)) <= 0:
            raise ConfigError(name, "must be greater than zero")
    for name in ASSISTANT_POSITIVE:
        if cast(int, getattr(settings, name)) <= 0:
            raise ConfigError(f"assistant.{name.removeprefix('assistant_')}",
                              "must be greater than zero")  # fmt: skip
    if settings.inbox_max_backlog < 0:
        raise ConfigError("inbox_max_backlog", "must be zero (no bound) or more")
    if settings.oauth_token_lifetime < 0:
        raise ConfigError("oauth_token_lifetime", "must be zero (until revoked) or more")
