"""Run one operator action on a tenant's models (shared by ``backplane models`` and its
``schedule`` subcommand, which lives in its own module)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from backplane.cli import _context

T = TypeVar("T")


def admin_models(slug: str, action: str, work: Callable[[Any, Any, Any], Awaitable[T]]) -> T:
    """``work(session, catalog, tenant_id)`` for tenant SLUG, audited as ``models ACTION``; a
    registry refusal is the command's error."""
    from backplane.identity.tenants import tenant_by_slug
    from backplane.inference.registry import RegistryError
    from backplane.inference.runtime import ModelCatalog

    catalog = ModelCatalog(_context.plugin_set())

    async def run(session: Any) -> T:
        return await work(session, catalog, (await tenant_by_slug(session, slug)).id)

    try:
        return _context.admin(f"operator: models {action}", run)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        catalog.close()
