"""``kernel.audit``: what plugins (and the kernel's own code holding a kernel) record with."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backplane.audit.actor import Actor, current_actor, current_address, of_principal
from backplane.audit.chain import AuditEntry
from backplane.audit.record import record

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


class TenantAudit:
    """Record security-relevant actions in the tenant's audit trail, in this transaction:
    ``await kernel.audit.record("helpdesk.ticket_deleted", target=("ticket", ticket.id),
    details={"subject": ticket.subject})``.

    The actor is the request's caller (its user, API key or auth backend subject, and client
    address), the operator in a CLI command, else ``system``. A plugin's action codes start
    with its name; the row commits, or rolls back, with the action it records.
    """

    __slots__ = ("_max_details", "_plugin", "_principal", "_session")

    def __init__(
        self, session: AsyncSession, plugin: str, principal: Any, max_details_bytes: int
    ) -> None:
        self._session = session
        self._plugin = plugin
        self._principal = principal
        self._max_details = max_details_bytes

    async def record(
        self,
        action: str,
        *,
        target: tuple[str, object] | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Append ``action`` (``<plugin>.<what_happened>``) about ``target`` (``(type, id)``)
        with ``details`` (JSON, at most ``audit.max_details_bytes`` encoded)."""
        actor: Actor = (
            of_principal(self._principal, current_address())
            if self._principal is not None
            else current_actor()
        )
        return await record(
            self._session,
            action,
            target=target,
            details=details,
            actor=actor,
            plugin=self._plugin,
            max_details_bytes=self._max_details,
        )
