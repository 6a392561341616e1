"""A plugin as a third party writes it, checked by ``tox -e types`` with ``mypy --strict`` and
nothing but the installed ``backplane-core`` (its ``py.typed``): no ``mypy_path``, no stubs.
Without the marker mypy skips ``backplane`` and every ``@hookimpl`` is an untyped decorator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import get

from backplane import Meter, Permission, PluginInfo, Principal, hookimpl, requires

plugin = PluginInfo(name="typed_example", requires_core=">=0.1")


@get("/", guards=[requires("typed_example.read")], sync_to_thread=False)
def whoami(request: Any) -> dict[str, bool]:
    principal: Principal = request.user
    return {"may_read": principal.has("typed_example.read")}


@hookimpl
def register_routes(register: Callable[..., None]) -> None:
    register(whoami)


@hookimpl
def register_permissions(register: Callable[..., None]) -> None:
    register(Permission(code="typed_example.read", roles=("owner", "admin", "member")))


@hookimpl
def register_meters(register: Callable[..., None]) -> None:
    register(Meter(code="typed_example.calls", unit="call", aggregation="count"))
