"""``GET /api/audit``: the caller's tenant's trail, newest first, for its owners and admins.

Filters narrow it (action, or an action prefix such as ``auth.*``; actor; target; a time
window) and pages are keyset-paged on the chain's sequence number: ``before`` is the
``next_before`` of the previous page, so paging stays cheap however long the trail and stable
while new rows arrive. Every query runs on the tenant's session (row-level secured).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.exceptions import ClientException
from litestar.params import FromQuery
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.audit.models import AuditEvent
from backplane.audit.record import ACTION_PATTERN, MAX_TEXT
from backplane.identity.auth import requires
from backplane.settings import Settings

AUDIT_READ = "audit.read"
_PREFIX = "*"


class AuditEventOut(msgspec.Struct):
    id: uuid.UUID
    seq: int
    created_at: datetime
    action: str
    actor_kind: str
    actor_id: str | None
    address: str | None
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    plugin: str
    hash: str


class AuditPage(msgspec.Struct):
    items: list[AuditEventOut]
    next_before: int | None
    """Pass as ``before`` for the next (older) page; null on the last page."""


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ClientException(f"{name} must name its time zone (such as 2026-12-05T10:00:00Z)")
    return value


def _action_filter(query: Select[Any], action: str) -> Select[Any]:
    if action.endswith(f".{_PREFIX}"):
        prefix = action[: -len(_PREFIX)]
        if not ACTION_PATTERN.match(prefix + "x"):
            raise ClientException(f"action prefix {action!r} is not like 'auth.*'")
        return query.where(AuditEvent.action.startswith(prefix, autoescape=True))
    if not ACTION_PATTERN.match(action):
        raise ClientException(
            f"action {action!r} is not an action code (area.what_happened) or a prefix ('auth.*')"
        )
    return query.where(AuditEvent.action == action)


def _text(name: str, value: str | None) -> str | None:
    if value is not None and not 0 < len(value) <= MAX_TEXT:
        raise ClientException(f"{name} must be 1-{MAX_TEXT} characters")
    return value


class AuditController(Controller):
    path = "/audit"
    tags = ["audit"]
    guards = [requires(AUDIT_READ)]

    @get(
        "/",
        summary="The tenant's audit trail, newest first (filtered, keyset-paged)",
        description="Filters: `action` (a code, or a prefix such as `auth.*`), `actor` (a user "
        "id, API key id, ...), `actor_kind`, `target_type`, `target_id`, `since`/`until` "
        "(ISO 8601 with a zone; since inclusive, until exclusive). `limit` rows per page "
        "(default `audit.page_size`, at most `audit.max_page_size`); `before` is the previous "
        "page's `next_before`.",
    )
    async def list_events(
        self,
        db: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        action: FromQuery[str | None] = None,
        actor: FromQuery[str | None] = None,
        actor_kind: FromQuery[str | None] = None,
        target_type: FromQuery[str | None] = None,
        target_id: FromQuery[str | None] = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
        limit: FromQuery[int | None] = None,
        before: FromQuery[int | None] = None,
    ) -> AuditPage:
        page = settings.audit.page_size if limit is None else limit
        if not 1 <= page <= settings.audit.max_page_size:
            raise ClientException(f"limit must be 1-{settings.audit.max_page_size}")
        if before is not None and before < 1:
            raise ClientException("before must be a positive sequence number (a next_before)")
        since, until = _aware("since", since), _aware("until", until)
        if since is not None and until is not None and since >= until:
            raise ClientException("since must be earlier than until")
        query = select(AuditEvent)
        if action is not None:
            query = _action_filter(query, action)
        for column, name, value in (
            (AuditEvent.actor_id, "actor", actor),
            (AuditEvent.actor_kind, "actor_kind", actor_kind),
            (AuditEvent.target_type, "target_type", target_type),
            (AuditEvent.target_id, "target_id", target_id),
        ):
            if _text(name, value) is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(AuditEvent.created_at >= since)
        if until is not None:
            query = query.where(AuditEvent.created_at < until)
        if before is not None:
            query = query.where(AuditEvent.seq < before)
        rows = list(await db.scalars(query.order_by(AuditEvent.seq.desc()).limit(page + 1)))
        more = len(rows) > page
        items = [msgspec.convert(r, AuditEventOut, from_attributes=True) for r in rows[:page]]
        return AuditPage(items=items, next_before=items[-1].seq if more else None)


ROUTES = [AuditController]
