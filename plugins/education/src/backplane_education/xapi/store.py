"""Storing statements (xAPI 1.0.3 Part Three 2.1.1-2.1.2): ids, conflicts, voiding, attachments.

One batch is a handful of statements whatever its size: the statement rows go in one multi-row
``INSERT ... ON CONFLICT DO NOTHING RETURNING``, their related-key rows in another. A statement
id already stored (by an earlier request, or by a concurrent one that won the race) is accepted
when the stored statement is the same one and refused with 409 otherwise.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Text, cast, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_education.xapi import store_postgresql, voiding
from backplane_education.xapi.models import (
    ACTIVITY_REF,
    AGENT_REF,
    IRI,
    XapiActivity,
    XapiAttachment,
    XapiStatement,
    XapiStatementRef,
)
from backplane_education.xapi.multipart import Part
from backplane_education.xapi.shape import Keys, activity_definitions, activity_key, keys_of
from backplane_education.xapi.validation import XapiError, bad, check_statement

_SET_BY_LRS = ("authority", "stored", "version")


def stored_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def prepare(
    raw: list[Any], authority: dict[str, Any], now: datetime
) -> list[tuple[dict[str, Any], Keys]]:
    """Validate each statement and complete it with what the LRS sets (id, stored, timestamp,
    authority, version); 400 naming the first invalid one or a repeated id."""
    prepared, seen = [], set()
    stored = stored_time(now)
    for index, statement in enumerate(raw):
        check_statement(statement, where=f"statement[{index}]" if len(raw) > 1 else "statement")
        statement["id"] = statement["id"].lower() if "id" in statement else str(uuid.uuid4())
        if statement["id"] in seen:
            raise bad(f"statement id {statement['id']} appears twice in the batch")
        seen.add(statement["id"])
        statement["stored"] = stored
        statement.setdefault("timestamp", stored)
        statement["authority"] = authority
        statement.setdefault("version", "1.0.0")
        keys = keys_of(statement)
        for value in (keys.verb, keys.actor, keys.object_activity, *keys.agents, *keys.activities):
            if value is not None and len(value) > IRI:
                raise bad(f"an identifier longer than {IRI} characters: {value[:60]}...")
        prepared.append((statement, keys))
    return prepared


def same(incoming: dict[str, Any], existing: dict[str, Any]) -> bool:
    """Statement comparison (Part Two 2.3.1): equal up to what the LRS sets (a timestamp it
    filled in from ``stored`` included)."""
    ignored: tuple[str, ...] = _SET_BY_LRS
    if incoming.get("timestamp") == incoming.get("stored"):
        ignored = (*_SET_BY_LRS, "timestamp")
    mine = {k: v for k, v in incoming.items() if k not in ignored}
    theirs = {k: v for k, v in existing.items() if k not in ignored}
    return mine == theirs


def _insert(db: AsyncSession, model: Any) -> Any:
    dialect = db.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


async def save_statements(
    db: AsyncSession,
    tenant_id: uuid.UUID,
    prepared: list[tuple[dict[str, Any], Keys]],
    parts: dict[str, Part],
) -> None:
    """Store ``prepared`` statements (and the attachment ``parts`` they carry)."""
    await voiding.check_targets(db, tenant_id, prepared)
    # one stored time per batch (prepare gives every statement the same), parsed once
    stored = datetime.fromisoformat(prepared[0][0]["stored"].replace("Z", "+00:00"))
    rows = [_row(tenant_id, statement, keys, stored) for statement, keys in prepared]
    keys = [keys for _, keys in prepared]
    postgresql_batch = db.get_bind().dialect.name == "postgresql"
    if postgresql_batch:
        definitions = latest_definitions([s for s, _ in prepared])
        inserted = await store_postgresql.insert_batch(
            db, tenant_id, rows, keys, rows[0]["stored"], definitions
        )
    else:
        inserted = await _insert_rows(db, tenant_id, rows, keys)
    if len(inserted) < len(prepared):
        await _check_duplicates(db, tenant_id, [s for s, _ in prepared if s["id"] not in inserted])
    # On PostgreSQL the batch statement already stored voided what earlier voiding statements
    # target; elsewhere that is one more UPDATE.
    await voiding.apply(db, tenant_id, keys, list(inserted), earlier=not postgresql_batch)
    if not postgresql_batch:
        await _save_definitions(db, tenant_id, [s for s, _ in prepared])
    if parts:
        await _save_parts(db, tenant_id, parts.values())


async def _insert_rows(
    db: AsyncSession, tenant_id: uuid.UUID, rows: list[dict[str, Any]], keys: list[Keys]
) -> dict[str, int]:
    """The statement rows then their related keys (executemany form: one cached statement,
    sent in multi-row pages); the seq of each statement id actually inserted."""
    result = await db.execute(
        _insert(db, XapiStatement)
        .on_conflict_do_nothing(index_elements=["tenant_id", "statement_id"])
        .returning(XapiStatement.seq, XapiStatement.statement_id),
        rows,
    )
    inserted = {str(statement_id): seq for seq, statement_id in result.all()}
    refs = [
        ref
        for row, key in zip(rows, keys, strict=True)
        if str(row["statement_id"]) in inserted
        for ref in _refs(tenant_id, inserted[str(row["statement_id"])], row["stored"], key)
    ]
    if refs:  # only for statements just inserted, each key once: nothing can conflict
        await db.execute(_insert(db, XapiStatementRef), refs)
    return inserted


def _row(
    tenant_id: uuid.UUID, statement: dict[str, Any], keys: Keys, stored: datetime
) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "statement_id": uuid.UUID(statement["id"]),
        "stored": stored,
        "verb": keys.verb,
        "actor": keys.actor,
        "object_agent": keys.object_agent,
        "object_activity": keys.object_activity,
        "registration": uuid.UUID(keys.registration) if keys.registration else None,
        "voids": uuid.UUID(keys.voids) if keys.voids else None,
        "voided": False,
        "has_attachments": bool(statement.get("attachments")),
        "payload": msgspec.json.encode(statement),
    }


def _refs(tenant_id: uuid.UUID, seq: int, stored: datetime, keys: Keys) -> Iterable[dict[str, Any]]:
    for kind, values in ((AGENT_REF, keys.agents), (ACTIVITY_REF, keys.activities)):
        for value in values:
            yield {
                "tenant_id": tenant_id,
                "seq": seq,
                "kind": kind,
                "value": value,
                "stored": stored,
            }


async def _check_duplicates(
    db: AsyncSession, tenant_id: uuid.UUID, statements: list[dict[str, Any]]
) -> None:
    """409 unless every statement whose id was already stored is that stored statement."""
    ids = [uuid.UUID(s["id"]) for s in statements]
    found = await db.execute(
        select(XapiStatement.statement_id, XapiStatement.payload).where(
            XapiStatement.tenant_id == tenant_id, XapiStatement.statement_id.in_(ids)
        )
    )
    existing = {str(sid): msgspec.json.decode(payload) for sid, payload in found.all()}
    for statement in statements:
        if not same(statement, existing.get(statement["id"], {})):
            raise XapiError(409, f"statement {statement['id']} exists and differs")


def latest_definitions(statements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The latest definition of each activity in the batch (it becomes the canonical one),
    by activity id."""
    return {aid: d for s in statements for aid, d in activity_definitions(s)}


def _definition_rows(
    tenant_id: uuid.UUID, statements: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    return [
        {
            "id": uuid.uuid4(),
            "tenant_id": tenant_id,
            "key": activity_key(aid),
            "activity_id": aid,
            "definition": definition,
        }
        for aid, definition in latest_definitions(statements).items()
    ]


async def _save_definitions(
    db: AsyncSession, tenant_id: uuid.UUID, statements: list[dict[str, Any]]
) -> None:
    """Upsert the batch's activity definitions (PostgreSQL does it in the batch statement)."""
    rows = _definition_rows(tenant_id, statements)
    if not rows:
        return
    statement = _insert(db, XapiActivity)
    await db.execute(
        statement.on_conflict_do_update(
            index_elements=["tenant_id", "key"],
            set_={"definition": statement.excluded.definition},
            # an unchanged definition (the usual case) writes no new row version
            where=cast(XapiActivity.definition, Text) != cast(statement.excluded.definition, Text),
        ),
        rows,
    )


async def _save_parts(db: AsyncSession, tenant_id: uuid.UUID, parts: Iterable[Part]) -> None:
    rows = [
        {
            "id": uuid.uuid4(),
            "tenant_id": tenant_id,
            "sha2": part.sha2,
            "content_type": part.content_type,
            "content": part.content,
        }
        for part in parts
    ]
    await db.execute(_insert(db, XapiAttachment).values(rows).on_conflict_do_nothing())


def now() -> datetime:
    return datetime.now(UTC)
