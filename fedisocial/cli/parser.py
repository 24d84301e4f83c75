"""The argument parser: every command, its options and its help, and nothing heavy."""

from __future__ import annotations

import argparse
from typing import Any

from fedisocial import __version__
from fedisocial.ap.addressing import VISIBILITIES

_FOLLOW_ID = "(its FOLLOW-ID: `fedisocial followers USER` shows it)"
_TARGETED = (
    ("follow", "follow", "follow an account (asks, when it approves followers)", "HANDLE|URL"),
    ("unfollow", "unfollow", "stop following an account", "HANDLE|URL"),
    ("block", "block", "block an account (ends follows both ways)", "HANDLE|URL"),
    ("unblock", "unblock", "take a block back", "HANDLE|URL"),
    ("like", "like", "like a post", "URL"),
    ("unlike", "unlike", "take a like back", "URL"),
    ("boost", "boost", "boost (announce) a post to your followers", "URL"),
    ("unboost", "unboost", "take a boost back", "URL"),
    ("delete", "delete", "delete one of your posts", "URL"),
    ("accept", "accept_follow", f"accept a follow request {_FOLLOW_ID}", "FOLLOW-ID"),
    ("reject", "reject_follow", f"reject a follow request {_FOLLOW_ID}", "FOLLOW-ID"),
)


Parser = argparse.ArgumentParser


class _Commands:
    """Adds subcommands whose handler is named ``module:function`` (imported when run)."""

    def __init__(self, parent: argparse.ArgumentParser, dest: str, metavar: str) -> None:
        self.sub = parent.add_subparsers(dest=dest, required=True, metavar=metavar)

    def add(self, name: str, handler: str, help_text: str, **defaults: Any) -> Parser:
        p: Parser = self.sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler, **defaults)
        return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedisocial",
        description="A self-hostable ActivityPub server with an AI image studio.",
    )
    parser.add_argument("--version", action="version", version=f"fedisocial {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $FEDISOCIAL_CONFIG or ./fedisocial.toml)",
    )
    commands = _Commands(parser, "command", "COMMAND")
    _admin(commands)
    _users(commands.add("user", "", "manage local accounts"))
    _tokens(commands.add("token", "", "OAuth tokens for scripts and bots"))
    _assistant(commands.add("assistant", "", "the assistant account: state, queue, pause"))
    _actions(commands)
    return parser


def _admin(commands: _Commands) -> None:
    p = commands.add("init", "admin:cmd_init",
                     "write a config file (if none) and create the database")  # fmt: skip
    p.add_argument("--base-url", default="http://127.0.0.1:8000", help="public URL of the instance")
    p.add_argument("--data-dir", default="data", help="folder for the database and media")
    p.add_argument(
        "--database-url",
        default="",
        help="postgresql+asyncpg://USER@HOST/DB (default: SQLite in the data folder)",
    )
    commands.add("migrate", "admin:cmd_migrate", "bring the database schema up to date (Alembic)")
    commands.add("config", "admin:cmd_config", "print the effective configuration, secrets masked")
    p = commands.add("status", "status:cmd_status",
                     "job queue depth by kind, the oldest due job, recent failures, prunable "
                     "rows")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the figures as JSON")

    p = commands.add("serve", "admin:cmd_serve",
                     "run the web server, and a job worker process beside it")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="web processes (default 1)")
    p.add_argument("--no-worker", action="store_true",
                   help="serve web requests only; run `fedisocial worker` separately "
                        "(on this host or others)")  # fmt: skip
    p.add_argument("--ssl-certfile", metavar="FILE",
                   help="serve https with this PEM certificate (chain), so base_url can be "
                   "https://… without a proxy in front; needs --ssl-keyfile")  # fmt: skip
    p.add_argument("--ssl-keyfile", metavar="FILE",
                   help="the certificate's PEM private key (not encrypted)")  # fmt: skip

    p = commands.add("worker", "admin:cmd_worker",
                     "run a job worker alone (to scale out deliveries)")  # fmt: skip
    p.add_argument("--concurrency", type=int, default=32, help="jobs run at once (default 32)")


def _users(parent: argparse.ArgumentParser) -> None:
    users = _Commands(parent, "user_command", "SUBCOMMAND")
    p = users.add("create", "users:cmd_user_create", "create an account")
    p.add_argument("name", help="username: letters, digits and underscores")
    p.add_argument("--admin", action="store_true", help="give the account admin rights")
    p.add_argument("--display-name", help="name shown on the profile (default: the username)")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")  # fmt: skip
    p = users.add("list", "users:cmd_user_list", "list local accounts")
    p.add_argument("--pending", action="store_true",
                   help="only the sign-ups waiting for approval, with their reasons")  # fmt: skip
    p = users.add("approve", "users:cmd_user_approve", "let a waiting sign-up in")
    p.add_argument("name", help="username")
    p = users.add("reject", "users:cmd_user_reject",
                  "refuse a waiting sign-up (its account is deleted)")  # fmt: skip
    p.add_argument("name", help="username")
    p = users.add("set", "users:cmd_user_set", "change an account's settings")
    p.add_argument("name", help="username")
    locking = p.add_mutually_exclusive_group(required=True)
    locking.add_argument("--locked", action="store_true", dest="locked", default=None,
                         help="approve each follower (`fedisocial accept|reject`)")  # fmt: skip
    locking.add_argument("--unlocked", action="store_false", dest="locked",
                         help="accept followers at once (the default)")  # fmt: skip


def _tokens(parent: argparse.ArgumentParser) -> None:
    tokens = _Commands(parent, "token_command", "SUBCOMMAND")
    p = tokens.add("create", "tokens:cmd_token_create",
                   "print a new access token for USER (it does not expire; revoke it to end "
                   "it), like Mastodon's Development > New application")  # fmt: skip
    p.add_argument("user", help="local username")
    p.add_argument("--scopes", default="read",
                   help="what it may do, comma-separated: read, write, follow, push or "
                   "Mastodon's read:… and write:… scopes (default read)")  # fmt: skip
    p.add_argument("--name", help="the app's name, shown under authorized apps")
    p = tokens.add("list", "tokens:cmd_token_list", "list tokens (of USER), revoked ones too")
    p.add_argument("user", nargs="?", help="local username (default: everyone's)")
    p = tokens.add("revoke", "tokens:cmd_token_revoke", "revoke a token by its ID (token list)")
    p.add_argument("id", type=int, help="the token's ID")


def _assistant(parent: argparse.ArgumentParser) -> None:
    assistant = _Commands(parent, "assistant_command", "SUBCOMMAND")
    assistant.add("status", "assistant:cmd_assistant_status",
                  "on, off or paused; its models, quotas and requests by status")  # fmt: skip
    p = assistant.add("queue", "assistant:cmd_assistant_queue",
                      "the requests waiting or running, then the latest that ended: id, "
                      "asker, kind, status, age, reason")  # fmt: skip
    p.add_argument("--recent", type=int, default=20,
                   help="how many ended requests to list (default 20)")  # fmt: skip
    p = assistant.add("cancel", "assistant:cmd_assistant_cancel",
                      "cancel a request (its job, and its image if not started yet)")  # fmt: skip
    p.add_argument("id", type=int, help="the request's ID (`fedisocial assistant queue`)")
    assistant.add("pause", "assistant:cmd_assistant_pause",
                  "stop answering for now: mentions wait, queued (in every process)")  # fmt: skip
    assistant.add("resume", "assistant:cmd_assistant_resume",
                  "answer again; the mentions that waited run at once")  # fmt: skip
    for name, blocked, help_text in (
        ("block-domain", True, "never answer anyone of a server (nor in threads with them)"),
        ("unblock-domain", False, "take a server block back"),
    ):
        p = assistant.add(name, "assistant:cmd_assistant_block_domain", help_text,
                          block=blocked)  # fmt: skip
        p.add_argument("domain", help="the server, like social.example")


def _actions(commands: _Commands) -> None:
    p = commands.add("lookup", "reading:cmd_lookup",
                     "print an actor or object: ours from the database, others' fetched "
                     "(WebFinger + signed GET)")  # fmt: skip
    p.add_argument("target", metavar="HANDLE|URL",
                   help="@user@host, user@host, a local username or a URL")  # fmt: skip

    p = commands.add("post", "actions:cmd_post", "publish a post as USER")
    p.add_argument("user", help="local username")
    p.add_argument("text", help="the text; @user@host mentions and #tags become links")
    p.add_argument("--visibility", choices=VISIBILITIES, default="public",
                   help="who sees it (default public)")  # fmt: skip
    p.add_argument("--reply-to", metavar="URL", help="the post this one answers")
    p.add_argument("--cw", metavar="TEXT", help="content warning shown before the text")
    p.add_argument("--generate", metavar="PROMPT", action="append", default=[],
                   help="attach an image generated from PROMPT (repeatable)")  # fmt: skip
    p.add_argument("--image", metavar="PATH", action="append", default=[],
                   help="attach a JPEG, PNG or WebP file (repeatable; needs --alt)")  # fmt: skip
    p.add_argument("--alt", metavar="TEXT",
                   help="alt text for the images (generated ones: the prompt)")  # fmt: skip
    for name, method, help_text, target in _TARGETED:
        p = commands.add(name, "actions:cmd_outbox_action", help_text, method=method)
        p.add_argument("user", help="local username")
        p.add_argument("target", metavar=target)
    p = commands.add("edit", "actions:cmd_edit", "change the text of one of your posts")
    p.add_argument("user", help="local username")
    p.add_argument("target", metavar="URL", help="the post")
    p.add_argument("text", help="the new text")
    p = commands.add("feed", "reading:cmd_feed", "show USER's home feed, newest first")
    p.add_argument("user", help="local username")
    p.add_argument("--limit", type=int, default=20, help="how many items (default 20)")
    p.add_argument("--json", action="store_true", help="print the items as AS2 JSON")
    p = commands.add("followers", "reading:cmd_followers",
                     "list USER's followers, and requests with their FOLLOW-ID")  # fmt: skip
    p.add_argument("user", help="local username")
    p = commands.add("following", "reading:cmd_following",
                     "list the accounts USER follows (and asks to follow)")  # fmt: skip
    p.add_argument("user", help="local username")
