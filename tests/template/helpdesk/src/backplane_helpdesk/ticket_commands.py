"""``backplane helpdesk tickets TENANT`` and ``close-stale TENANT``: operator commands that
reach the database through ``pass_kernel``, added to the template's command group."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from backplane import pass_kernel

if TYPE_CHECKING:
    from backplane import Kernel


@click.command(name="tickets")
@click.argument("tenant")
@pass_kernel
async def count_tickets(kernel: Kernel, tenant: str) -> None:
    """How many tickets TENANT (a slug or id) has open and closed."""
    from sqlalchemy import func, select

    from backplane_helpdesk.tickets import Ticket

    async with kernel.tenant(tenant) as scoped:
        total = await scoped.db.scalar(select(func.count()).select_from(Ticket)) or 0
        open_ = (
            await scoped.db.scalar(
                select(func.count()).select_from(Ticket).where(Ticket.closed_at.is_(None))
            )
            or 0
        )
    click.echo(f"{tenant}: {open_} open, {total - open_} closed")


@click.command(name="close-stale")
@click.argument("tenant")
@pass_kernel
async def close_stale(kernel: Kernel, tenant: str) -> None:
    """Run the nightly auto-close job now, for TENANT only."""
    from backplane_helpdesk.tickets import close_stale_tickets

    async with kernel.tenant(tenant) as scoped:
        closed = await close_stale_tickets(scoped)
    click.echo(f"{tenant}: {closed} ticket(s) closed")


def add_ticket_commands(group: click.Group) -> None:
    group.add_command(count_tickets)
    group.add_command(close_stale)
