"""The PostgreSQL path of an import's contact upsert: the batch's rows go by ``COPY`` (asyncpg's
binary protocol) into a temporary staging table of the transaction, then one ``INSERT ...
SELECT ... ON CONFLICT DO UPDATE`` moves them into ``marketing_contacts``, returning the written
rows' ids only when tags or a list need them (otherwise just the addresses it left alone).

Both run on the session's own connection, in its transaction: a failed chunk rolls the rows
back with everything else, and row-level security applies to the insert as to any other. Per
row, Python builds one 3-tuple instead of an 11-parameter dictionary for SQLAlchemy to bind
and render into a multi-row ``VALUES``: that binding was most of an import's time.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_marketing.rows import ContactRow

STAGE = "marketing_import_stage"
_ENCODE = msgspec.json.Encoder().encode

_CREATE = text(
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} "
    "(email text NOT NULL, name text NOT NULL, attributes text NOT NULL) ON COMMIT DROP"
)
_INSERT = """
    INSERT INTO marketing_contacts AS c (id, tenant_id, email, name, attributes, consent,
        consent_source, consent_at, import_id, created_at, updated_at)
    SELECT gen_random_uuid(), :tenant_id, s.email, s.name, s.attributes::jsonb, 'unknown', '',
        NULL, :import_id, :now, :now
    FROM marketing_import_stage AS s
    ON CONFLICT (tenant_id, email) DO UPDATE SET
        name = coalesce(nullif(excluded.name, ''), c.name),
        attributes = c.attributes || excluded.attributes,
        import_id = excluded.import_id,
        updated_at = excluded.updated_at
    WHERE c.import_id IS NULL OR c.import_id <> excluded.import_id
    RETURNING c.id, c.email
"""
_UPSERT_IDS = text(_INSERT)
"""The id and address of every contact written."""
_UPSERT_SKIPPED = text(
    f"WITH written AS ({_INSERT}) "  # noqa: S608 - constant text, nothing from input
    "SELECT s.email FROM marketing_import_stage AS s "
    "WHERE NOT EXISTS (SELECT FROM written AS w WHERE w.email = s.email)"
)
"""Only the addresses left alone (usually none): when nothing needs the contacts' ids, the
server compares them, rather than every written row coming back to be decoded and looked up."""


async def copy_upsert_contacts(
    db: AsyncSession,
    tenant_id: uuid.UUID,
    import_id: uuid.UUID,
    rows: Sequence[ContactRow],
    now: datetime,
    *,
    ids: bool,
) -> tuple[dict[str, uuid.UUID], set[str]]:
    """Upsert ``rows`` (distinct addresses): the id of each address written (only if ``ids``)
    and the addresses left alone (this import already wrote them)."""
    await db.execute(_CREATE)
    await db.execute(text(f"TRUNCATE {STAGE}"))
    connection = await db.connection()
    raw: Any = (await connection.get_raw_connection()).driver_connection
    records = [(row.email, row.name, _ENCODE(row.attributes).decode()) for row in rows]
    await raw.copy_records_to_table(STAGE, records=records, columns=["email", "name", "attributes"])
    values = {"tenant_id": tenant_id, "import_id": import_id, "now": now}
    if not ids:
        return {}, set((await db.execute(_UPSERT_SKIPPED, values)).scalars())
    result = await db.execute(_UPSERT_IDS, values)
    written = {email: contact_id for contact_id, email in result.tuples()}
    return written, {row.email for row in rows if row.email not in written}
