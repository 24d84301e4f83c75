"""Joining: the sign-up page, and the admins' queue of sign-ups that wait for approval.

``/auth/sign_up`` follows the ``registrations`` setting: ``open`` makes the account and
signs it in at once; ``approval`` also asks why the person wants to join, and the account
waits (``users.approved`` false: it cannot sign in) until an admin approves it at
``/admin/sign_ups`` (or ``fedisocial user approve NAME``); ``closed`` says so and refuses
the form (403). The name and password rules are the accounts module's own, each mistake
said beside its field; well-formed sign-ups are throttled per client address (Mastodon's
5 in 30 minutes). Rejecting a waiting sign-up deletes its account.
"""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from fedisocial.auth.throttle import sign_up_key, sign_up_throttle
from fedisocial.errors import BadRequest, Forbidden, NotFound, RateLimited
from fedisocial.social import accounts
from fedisocial.store.models import User
from fedisocial.web import auth
from fedisocial.web import session as web_session
from fedisocial.web.context import get_context
from fedisocial.web.pages.base import done, page, read_form, signed_in

__all__ = ["MAX_REASON", "routes"]

#: the longest "why do you want to join" (Mastodon allows 1,000 characters)
MAX_REASON = 1000
_QUEUE = "/admin/sign_ups"
_WAITING = "/auth/sign_up/waiting"


def _text(form: FormData, name: str, limit: int = 200) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:]


def _mistakes(mode: str, username: str, password: str, confirmation: str,
              reason: str) -> dict[str, str]:  # fmt: skip
    """What is wrong with a sign-up, by field (empty: nothing)."""
    mistakes: dict[str, str] = {}
    try:
        accounts.check_username(username)
    except BadRequest as exc:
        mistakes["username"] = _sentence(exc.message)
    try:
        accounts.check_password_rules(password)
    except BadRequest as exc:
        mistakes["password"] = _sentence(exc.message)
    if "password" not in mistakes and confirmation != password:
        mistakes["confirmation"] = "The two passwords differ: type the same one twice"
    if mode == "approval" and not reason.strip():
        mistakes["reason"] = "Say in a few words why you want to join: an admin reads it"
    return mistakes


async def _form_page(request: Request, status: int = 200, **values: object) -> Response:
    values.setdefault("mistakes", {})
    values.setdefault("username", "")
    values.setdefault("reason", "")
    return await page(request, "sign_up.html", status, max_reason=MAX_REASON,
                      min_password=accounts.MIN_PASSWORD, **values)  # fmt: skip


async def sign_up_page(request: Request) -> Response:
    if await web_session.current_session(request) is not None:
        return RedirectResponse("/", 303)
    return await _form_page(request)


async def sign_up(request: Request) -> Response:
    """The sign-up form: check it, charge the address, make the account (and sign it in)."""
    context = get_context(request)
    mode = context.settings.registrations
    form = await read_form(request, max_fields=16)
    if mode == "closed":
        raise Forbidden("Sign-ups are closed on this server")
    username = _text(form, "username", 64).strip().lstrip("@")
    password, confirmation = _text(form, "password", 512), _text(form, "confirmation", 512)
    reason = _text(form, "reason", MAX_REASON + 1).strip() if mode == "approval" else ""
    mistakes = _mistakes(mode, username, password, confirmation, reason)
    if len(reason) > MAX_REASON:
        mistakes["reason"] = f"Say it in at most {MAX_REASON} characters"
    refill = {"username": username, "reason": reason}
    if mistakes:
        return await _form_page(request, 422, mistakes=mistakes, **refill)
    try:
        await sign_up_throttle(context.db).admit([sign_up_key(auth.client_address(request))])
        user = await accounts.create_user(context.db, context.urls, username, password,
                                          approved=mode == "open",
                                          sign_up_reason=reason or None)  # fmt: skip
    except accounts.UsernameTaken as exc:
        return await _form_page(request, 422, mistakes={"username": _sentence(exc.message)},
                                **refill)  # fmt: skip
    except RateLimited as exc:
        response = await _form_page(request, 429, message=exc.message, **refill)
        response.headers.update(exc.headers)
        return response
    if not user.approved:
        return RedirectResponse(_WAITING, 303)
    actor = await accounts.find_local_actor(context.db, context.urls, username)
    started = await web_session.store(request).start(actor, request.headers.get("user-agent", ""))
    response = RedirectResponse("/", 303)
    web_session.start_session(request, response, started)
    return response


async def waiting(request: Request) -> Response:
    return await page(request, "sign_up.html", waiting=True)


# -- the admins' queue -------------------------------------------------------------------------


async def _admin(request: Request) -> None:
    await signed_in(request)
    session = await web_session.current_session(request)
    async with get_context(request).db.session() as db_session:
        user = await db_session.get(User, session.user_id) if session else None
    if user is None or not user.is_admin:
        raise Forbidden("Only the admins of this server see its sign-ups")


async def queue(request: Request) -> Response:
    """The sign-ups waiting for approval, the oldest first, each with its reason."""
    await _admin(request)
    waiting_users = await accounts.pending_users(get_context(request).db)
    answered = request.query_params.get("answered", "")
    name = request.query_params.get("name", "")[:30]
    return await page(request, "admin_sign_ups.html", pending=waiting_users,
                      answered=answered if answered in ("approved", "rejected") else "",
                      name=name)  # fmt: skip


async def answer(request: Request) -> Response:
    """Approve (``…/approve``) or reject (``…/reject``) one waiting sign-up."""
    name, decision = request.path_params["username"], request.path_params["decision"]
    if decision not in ("approve", "reject"):
        raise NotFound("nothing here")
    await _admin(request)
    await read_form(request, max_fields=4)
    db = get_context(request).db
    user = await (accounts.approve if decision == "approve" else accounts.reject)(db, name)
    answered = "approved" if decision == "approve" else "rejected"
    return done(request, {"username": user.username, "answered": answered},
                back=f"{_QUEUE}?answered={answered}&name={user.username}")  # fmt: skip


routes: list[BaseRoute] = [
    Route("/auth/sign_up", sign_up_page, methods=["GET"]),
    Route("/auth/sign_up", sign_up, methods=["POST"]),
    Route(_WAITING, waiting, methods=["GET"]),
    Route(_QUEUE, queue, methods=["GET"]),
    Route(_QUEUE + "/{username}/{decision}", answer, methods=["POST"]),
]
