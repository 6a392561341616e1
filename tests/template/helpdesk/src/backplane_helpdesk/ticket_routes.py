"""``/api/helpdesk/tickets``: open, list and close tickets, each route behind a permission."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec
from backplane import requires
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, JSONBody
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_helpdesk.plugin import TICKETS_READ, TICKETS_WRITE
from backplane_helpdesk.tickets import Ticket


class TicketIn(msgspec.Struct, forbid_unknown_fields=True):
    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    # Tickets imported from another helpdesk keep the date they were opened there.
    created_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None


class TicketOut(msgspec.Struct):
    id: int
    subject: str
    created_at: datetime
    closed_at: datetime | None

    @classmethod
    def of(cls, ticket: Ticket) -> TicketOut:
        # Aware on SQLite too: the kernel reads ``DateTime(timezone=True)`` back in UTC.
        return cls(ticket.id, ticket.subject, ticket.created_at, ticket.closed_at)


class TicketsController(Controller):
    path = "/tickets"

    @get("/", guards=[requires(TICKETS_READ)])
    async def list_tickets(self, db: NamedDependency[AsyncSession]) -> list[TicketOut]:
        return [TicketOut.of(t) for t in await db.scalars(select(Ticket).order_by(Ticket.id))]

    @post("/", guards=[requires(TICKETS_WRITE)])
    async def open_ticket(
        self, data: JSONBody[TicketIn], db: NamedDependency[AsyncSession]
    ) -> TicketOut:
        opened = (data.created_at or datetime.now(UTC)).astimezone(UTC)
        ticket = Ticket(subject=data.subject, created_at=opened, closed_at=None)
        db.add(ticket)
        await db.flush()
        return TicketOut.of(ticket)

    @post("/{ticket_id:int}/close", guards=[requires(TICKETS_WRITE)])
    async def close_ticket(
        self, ticket_id: FromPath[int], db: NamedDependency[AsyncSession]
    ) -> TicketOut:
        ticket = await db.scalar(select(Ticket).where(Ticket.id == ticket_id))
        if ticket is None:
            raise NotFoundException(f"no ticket {ticket_id}")
        ticket.closed_at = ticket.closed_at or datetime.now(UTC)
        await db.flush()
        return TicketOut.of(ticket)
