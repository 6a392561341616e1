"""Authentication backends: what ``register_auth_backends`` gave, in the order they are asked.

Plugins' backends are asked first, in plugin order, the kernel's own (``bearer``) last, so a
plugin can claim a header or scheme before the kernel refuses it; a name registered again
replaces the earlier backend in its place. ``auth.backends`` may pick and order them by name.

A plugin's principal passes :meth:`~backplane.identity.auth.Authenticator.admit` (an existing
tenant with the plugin switched on, no user, within its role's permissions) and ``via`` becomes
the backend's name. The kernel's own backends (plugin ``core``) are trusted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from litestar.exceptions import NotAuthorizedException

from backplane._contract import AuthBackend
from backplane.identity.auth import Principal
from backplane.plugins import KERNEL_PLUGIN, PluginSet
from backplane.state import rails_of

Authenticate = Callable[[Any, Any], Awaitable[Principal | None]]
"""``authenticate(connection, kernel)``: a principal, or None when the request is not its kind."""

KERNEL_VIAS = frozenset({"token", "api_key"})
"""What the kernel's ``bearer`` backend calls its principals; no backend may take these names."""


class UnknownAuthBackendError(LookupError):
    """``auth.backends`` names a backend that no plugin registered."""


def _backend_items(plugin: str, *backends: Any) -> list[AuthBackend]:
    for backend in backends:
        if not isinstance(backend, AuthBackend):
            raise TypeError(
                f"plugin {plugin!r}: register_auth_backends expects AuthBackend values, "
                f"got {backend!r}"
            )
        if not backend.name or backend.name in KERNEL_VIAS:
            raise TypeError(f"plugin {plugin!r}: auth backend name {backend.name!r} is reserved")
        if not callable(backend.authenticate):
            raise TypeError(
                f"plugin {plugin!r}: auth backend {backend.name!r} needs an async callable "
                "authenticate(connection, kernel)"
            )
    return list(backends)


def _admitted(backend: AuthBackend, plugin: str) -> Authenticate:
    """A plugin's backend, its principals checked and named by the kernel; a tenant that
    switched the plugin off is not entered through it (401)."""
    name, authenticate = backend.name, backend.authenticate

    async def admitted(connection: Any, kernel: Any) -> Principal | None:
        principal = await authenticate(connection, kernel)
        if principal is None:
            return None
        authenticator = (await rails_of(connection).identity.get()).authenticator
        admitted = await authenticator.admit(principal, name)
        if not await authenticator.plugin_enabled(admitted.tenant_id, plugin):
            raise NotAuthorizedException(f"plugin {plugin!r} is switched off for this tenant")
        return admitted

    return admitted


def auth_backends(
    plugins: PluginSet, view: Callable[[str], Any], selected: Sequence[str] | None = None
) -> tuple[tuple[Authenticate, Any], ...]:
    """``(authenticate, kernel)`` per backend, in the order the middleware asks them; ``view``
    gives a plugin's kernel view, ``selected`` (``auth.backends``) picks and orders by name."""
    collected = plugins.collect("register_auth_backends", _backend_items)
    by_name = {backend.name: (plugin, backend) for plugin, backend in collected}
    if selected is None:
        names = sorted(by_name, key=lambda n: by_name[n][0] == KERNEL_PLUGIN)
    else:
        unknown = [n for n in selected if n not in by_name]
        if unknown:
            raise UnknownAuthBackendError(
                f"auth.backends names {', '.join(map(repr, unknown))}; registered: "
                f"{', '.join(by_name)}"
            )
        names = list(dict.fromkeys(selected))
    chosen = [by_name[name] for name in names]
    return tuple(
        (b.authenticate if p == KERNEL_PLUGIN else _admitted(b, p), view(p)) for p, b in chosen
    )
