"""The kernel's own contributions, registered through the same hooks a plugin would use.

Because the defaults are an ordinary hook implementation, a plugin can add to or replace any of
them, and the contract is exercised by the kernel itself on every start.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from backplane.hookspecs import hookimpl


@hookimpl
def register_migrations(register: Any) -> None:
    import backplane.db.models
    import backplane.identity.models  # noqa: F401
    from backplane.db.base import Base

    register(files("backplane") / "migrations" / "versions", branch="core", metadata=Base.metadata)
