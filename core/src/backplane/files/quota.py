"""The ``files.bytes`` gauge: bytes a tenant stores now, held under its limit atomically.

A tenant's limit is its entitlement on ``files.bytes`` (``backplane quotas set SLUG files.bytes
N``, or a plan's limit): a cap on the level, not on a period's use. Each upload adds its size
with one conditional ``UPDATE`` of the tenant's :class:`~backplane.files.models.FileUsage` row
(``bytes + size <= limit``), so the database's row lock orders two uploads at the edge and the
second sees the first's bytes: they cannot both pass. A delete subtracts. The new level is also
recorded as a ``files.bytes`` usage event (aggregation ``latest``), so billing reports it.
"""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.billing.recording import entitlements_for, insert_for
from backplane.files.models import FileUsage

METER = "files.bytes"


class FilesQuotaExceeded(Exception):  # noqa: N818 - named for what the client sees (507)
    """Storing this file would take the tenant past its ``files.bytes`` hard limit."""

    def __init__(self, limit: float, used: float, needed: int) -> None:
        super().__init__(
            f"storage quota spent: {used:.0f} of {limit:.0f} bytes ({METER}) are used, this "
            f"file needs {needed}"
        )
        self.meter, self.limit, self.used, self.needed = METER, limit, used, needed


_ROW = FileUsage.tenant_id == bindparam("tenant")
_LEVEL = select(FileUsage.bytes).where(_ROW)
_ADD = (
    update(FileUsage)
    .where(_ROW)
    .values(bytes=FileUsage.bytes + bindparam("amount"))
    .returning(FileUsage.bytes)
)
_ADD_WITHIN = _ADD.where(FileUsage.bytes + bindparam("amount") <= bindparam("ceiling"))


async def hard_limit(session: AsyncSession, tenant_id: uuid.UUID) -> float | None:
    """The tenant's hard limit on ``files.bytes``, or None (no limit, or a soft one)."""
    found = (await entitlements_for(session, tenant_id, [METER])).get(METER)
    return found.limit if found is not None and found.hard else None


async def stored_bytes(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    connection = await session.connection()
    return int(await connection.scalar(_LEVEL, {"tenant": tenant_id}) or 0)


async def add_bytes(
    session: AsyncSession, tenant_id: uuid.UUID, amount: int, limit: float | None
) -> int:
    """Add ``amount`` (negative: a delete) to the tenant's level unless that crosses ``limit``;
    the new level, or :class:`FilesQuotaExceeded`."""
    connection = await session.connection()
    values = {"tenant": tenant_id, "amount": amount}
    statement, params = (
        (_ADD, values)
        if limit is None or amount <= 0
        else (_ADD_WITHIN, values | {"ceiling": limit})
    )
    for _ in range(5):
        row = (await connection.execute(statement, params)).first()
        if row is not None:
            return int(row[0])
        current = await connection.scalar(_LEVEL, {"tenant": tenant_id})
        if current is not None:
            if limit is not None and current + amount > limit:
                raise FilesQuotaExceeded(limit, current, amount)
            continue  # the row appeared after the update looked: try again
        if limit is not None and amount > limit:
            raise FilesQuotaExceeded(limit, 0, amount)
        created = await connection.execute(
            insert_for(session)(FileUsage)
            .values(tenant_id=tenant_id, bytes=max(amount, 0))
            .on_conflict_do_nothing(index_elements=["tenant_id"])
            .returning(FileUsage.bytes)
        )
        if (level := created.scalar()) is not None:
            return int(level)
    raise RuntimeError("could not update the tenant's stored bytes")
