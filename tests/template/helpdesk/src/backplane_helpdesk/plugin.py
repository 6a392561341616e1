"""The helpdesk's hooks: the template's items, plus tickets that close themselves after
``auto_close_days`` days, through a job the kernel runs once per tenant."""

from __future__ import annotations

from importlib.resources import files
from typing import Annotated, Any

import msgspec
from backplane import Meter, Permission, PluginInfo, hookimpl

READ = "helpdesk.items.read"
WRITE = "helpdesk.items.write"
TICKETS_READ = "helpdesk.tickets.read"
TICKETS_WRITE = "helpdesk.tickets.write"
ITEMS_METER = "helpdesk.items"
"""Counts created items; a tenant's plan (or ``backplane quotas set``) may limit it."""


class Settings(msgspec.Struct, forbid_unknown_fields=True):
    """``BACKPLANE_PLUGIN__HELPDESK__AUTO_CLOSE_DAYS`` or ``auto_close_days`` under
    ``[plugins.helpdesk]``; validated when the kernel starts, so a job never sees a bad value."""

    max_items: int = 1000
    auto_close_days: Annotated[int, msgspec.Meta(ge=1)] = 30


plugin = PluginInfo(
    name="helpdesk",
    requires_core=">=0.1,<0.2",
    settings=Settings,
    description="Tickets that close themselves",
)


@hookimpl
def register_routes(register: Any) -> None:
    from backplane_helpdesk.routes import ItemsController
    from backplane_helpdesk.ticket_routes import TicketsController

    register(ItemsController)
    register(TicketsController)


@hookimpl
def register_migrations(register: Any) -> None:
    from backplane_helpdesk.models import Item
    from backplane_helpdesk.tickets import Ticket

    assert Ticket.metadata is Item.metadata  # one Base: one metadata for the branch
    register(files(__package__) / "migrations", branch="helpdesk", metadata=Item.metadata)


@hookimpl
def register_permissions(register: Any) -> None:
    register(
        Permission(code=READ, roles=("owner", "admin", "member", "viewer")),
        Permission(code=WRITE, roles=("owner", "admin", "member")),
        Permission(code=TICKETS_READ, roles=("owner", "admin", "member", "viewer")),
        Permission(code=TICKETS_WRITE, roles=("owner", "admin", "member")),
    )


@hookimpl
def register_meters(register: Any) -> None:
    register(Meter(code=ITEMS_METER, unit="item", aggregation="count"))


@hookimpl
def register_tasks(register: Any) -> None:
    from backplane_helpdesk.tasks import index_item, reindex_items
    from backplane_helpdesk.tickets import close_stale_tickets

    queue = "helpdesk"
    register(index_item, queue=queue)
    register(reindex_items, queue=queue, schedule="0 * * * *", per_tenant=True)
    # Nightly, once in every tenant that has the helpdesk enabled, each in its own tenant.
    register(close_stale_tickets, queue=queue, schedule="15 3 * * *", per_tenant=True)


@hookimpl
def register_commands(cli: Any) -> None:
    from backplane_helpdesk.commands import group
    from backplane_helpdesk.ticket_commands import add_ticket_commands

    add_ticket_commands(group)
    cli.add_command(group)
