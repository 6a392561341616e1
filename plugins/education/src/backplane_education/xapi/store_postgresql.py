"""Storing a batch of statements on PostgreSQL in one round trip.

The statement rows, their related-key rows and the canonical activity definitions go in one
SQL statement of data-modifying CTEs fed by arrays (``unnest``): its text is the same whatever
the batch size, so the driver prepares it once per connection, and a single statement costs
what the plain inserts cost (the ``bench/education`` baseline). A statement that an earlier
voiding statement already targets is stored voided in the same pass (``EXISTS`` on the
``voids`` index, which holds voiding statements only: the lookup says ``voids IS NOT NULL`` so
that PostgreSQL may use it); the RETURNING rows are the statements actually inserted (an id
already stored is left to the caller's conflict check).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_education.xapi.models import ACTIVITY_REF, AGENT_REF
from backplane_education.xapi.shape import Keys, activity_key
from backplane_education.xapi.validation import VOIDED

_STORE = text(
    """
WITH incoming AS (
    SELECT * FROM unnest(
        CAST(:statement_ids AS uuid[]), CAST(:verbs AS text[]), CAST(:actors AS text[]),
        CAST(:object_agents AS text[]), CAST(:object_activities AS text[]),
        CAST(:registrations AS uuid[]), CAST(:voids AS uuid[]),
        CAST(:has_attachments AS boolean[]), CAST(:payloads AS bytea[])
    ) AS i(statement_id, verb, actor, object_agent, object_activity, registration, voids,
           has_attachments, payload)
),
new AS (
    INSERT INTO xapi_statements (tenant_id, statement_id, stored, verb, actor, object_agent,
        object_activity, registration, voids, voided, has_attachments, payload)
    SELECT CAST(:tenant_id AS uuid), i.statement_id, CAST(:stored AS timestamptz), i.verb,
        i.actor, i.object_agent, i.object_activity, i.registration, i.voids,
        i.verb <> :voided_verb AND EXISTS (
            SELECT 1 FROM xapi_statements earlier
            WHERE earlier.tenant_id = CAST(:tenant_id AS uuid)
              AND earlier.voids IS NOT NULL AND earlier.voids = i.statement_id
        ),
        i.has_attachments, i.payload
    FROM incoming AS i
    ON CONFLICT (tenant_id, statement_id) DO NOTHING
    RETURNING seq, statement_id
),
refs AS (
    INSERT INTO xapi_statement_refs (tenant_id, seq, kind, value, stored)
    SELECT CAST(:tenant_id AS uuid), new.seq, r.kind, r.value, CAST(:stored AS timestamptz)
    FROM new JOIN unnest(
        CAST(:ref_ids AS uuid[]), CAST(:ref_kinds AS text[]), CAST(:ref_values AS text[])
    ) AS r(statement_id, kind, value) ON r.statement_id = new.statement_id
),
definitions AS (
    INSERT INTO xapi_activities AS a (id, tenant_id, key, activity_id, definition)
    SELECT gen_random_uuid(), CAST(:tenant_id AS uuid), d.key, d.activity_id,
        CAST(d.definition AS json)
    FROM unnest(
        CAST(:definition_keys AS text[]), CAST(:definition_activities AS text[]),
        CAST(:definitions AS text[])
    ) AS d(key, activity_id, definition)
    ON CONFLICT (tenant_id, key) DO UPDATE SET definition = excluded.definition
    -- an unchanged definition (the usual case) writes no new row version
    WHERE CAST(a.definition AS text) <> CAST(excluded.definition AS text)
)
SELECT seq, statement_id FROM new
"""
)


async def insert_batch(
    db: AsyncSession,
    tenant_id: uuid.UUID,
    rows: list[dict[str, Any]],
    keys: list[Keys],
    stored: datetime,
    definitions: dict[str, dict[str, Any]],
) -> dict[str, int]:
    """Insert ``rows`` (built by the store, in batch order, with their ``keys``) and the
    activity ``definitions`` (by activity id); the seq of each statement id actually
    inserted."""
    ref_ids: list[uuid.UUID] = []
    ref_kinds: list[str] = []
    ref_values: list[str] = []
    for row, key in zip(rows, keys, strict=True):
        for kind, values in ((AGENT_REF, key.agents), (ACTIVITY_REF, key.activities)):
            for value in values:
                ref_ids.append(row["statement_id"])
                ref_kinds.append(kind)
                ref_values.append(value)
    result = await db.execute(
        _STORE,
        {
            "tenant_id": tenant_id,
            "stored": stored,
            "voided_verb": VOIDED,
            "statement_ids": [row["statement_id"] for row in rows],
            "verbs": [row["verb"] for row in rows],
            "actors": [row["actor"] for row in rows],
            "object_agents": [row["object_agent"] for row in rows],
            "object_activities": [row["object_activity"] for row in rows],
            "registrations": [row["registration"] for row in rows],
            "voids": [row["voids"] for row in rows],
            "has_attachments": [row["has_attachments"] for row in rows],
            "payloads": [row["payload"] for row in rows],
            "ref_ids": ref_ids,
            "ref_kinds": ref_kinds,
            "ref_values": ref_values,
            "definition_keys": [activity_key(activity) for activity in definitions],
            "definition_activities": list(definitions),
            "definitions": [msgspec.json.encode(d).decode() for d in definitions.values()],
        },
    )
    return {str(statement_id): seq for seq, statement_id in result.all()}
