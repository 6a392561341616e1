"""Who did it, and from where: the actor of an audited action.

Kernel code records actions deep in shared functions (adding a member, creating an API key)
that the HTTP API and the CLI both call, so the actor is not threaded through every signature:
:class:`AuditContextMiddleware` makes the request's principal and client address the current
actor for the request, a CLI command makes the operator the actor (:func:`acting`), and what
runs outside both (tasks, start-up) is the ``system``. An explicit ``actor=`` wins (a login,
where no principal exists yet).
"""

from __future__ import annotations

import contextlib
import contextvars
import getpass
from collections.abc import Iterator
from typing import Any

import msgspec

SYSTEM = "system"
OPERATOR = "operator"


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """``kind`` is ``user``, ``api_key``, ``operator``, ``system`` or a plugin auth backend's
    name; ``id`` the user's id, the key's id, the operator's login name or the backend's
    subject; ``address`` the client's IP address (requests only)."""

    kind: str
    id: str | None = None
    address: str | None = None


_SYSTEM_ACTOR = Actor(kind=SYSTEM)
_current: contextvars.ContextVar[Actor | None] = contextvars.ContextVar(
    "backplane_audit_actor", default=None
)
_scope: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "backplane_audit_scope", default=None
)


def of_principal(principal: Any, address: str | None = None) -> Actor:
    """The actor a :class:`backplane.Principal` is: the user of a token, else the credential
    (an API key's id, a plugin backend's subject)."""
    via = principal.via
    if via == "token" and principal.user_id is not None:
        return Actor(kind="user", id=str(principal.user_id), address=address)
    return Actor(kind=str(via)[:32], id=str(principal.token_id)[:200], address=address)


def client_address(scope: dict[str, Any] | None) -> str | None:
    """The request's client address (as the server saw it, proxies' headers applied)."""
    client = (scope or {}).get("client")
    return str(client[0])[:64] if client else None


def current_actor() -> Actor:
    """The actor of what is running: the request's caller, the CLI operator, or the system."""
    scope = _scope.get()
    if scope is not None:
        principal = scope.get("user")
        if principal is not None and hasattr(principal, "via"):
            return of_principal(principal, client_address(scope))
        return Actor(kind="anonymous", address=client_address(scope))
    return _current.get() or _SYSTEM_ACTOR


def current_address() -> str | None:
    """The client address of the request being served, if any."""
    return client_address(_scope.get())


@contextlib.contextmanager
def acting(actor: Actor) -> Iterator[None]:
    """Make ``actor`` the actor of what runs inside the block (and of tasks it starts)."""
    token = _current.set(actor)
    try:
        yield
    finally:
        _current.reset(token)


def operator() -> Actor:
    """The person running a CLI command: their login name, as the operating system knows it."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): still an operator
        name = None
    return Actor(kind=OPERATOR, id=name)


class AuditContextMiddleware:
    """ASGI middleware, after authentication: the request (its principal, once authenticated,
    and its client address) is the actor of every action recorded while it is served."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        token = _scope.set(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            _scope.reset(token)


__all__ = [
    "Actor",
    "AuditContextMiddleware",
    "acting",
    "current_actor",
    "current_address",
    "of_principal",
    "operator",
]
