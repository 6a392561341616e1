"""Reading statements (xAPI 1.0.3 Part Three 2.1.3): one indexed SQL query per page.

Filters become predicates on the statement row's indexed columns, or a join from the related
keys' index for ``related_agents``/``related_activities``. Pages follow ``(stored, seq)`` (the
specification orders by ``stored``; ``seq`` orders the statements of one batch, which share it):
``more`` is an opaque token carrying the filters and the last ``(stored, seq)`` returned, so
every page is as cheap as the first, however deep.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Select, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from backplane_education.xapi.models import (
    ACTIVITY_REF,
    AGENT_REF,
    XapiActivity,
    XapiAttachment,
    XapiStatement,
    XapiStatementRef,
)
from backplane_education.xapi.multipart import Part
from backplane_education.xapi.query import StatementQuery
from backplane_education.xapi.shape import (
    activity_key,
    canonical_format,
    context_activities,
    ids_format,
)
from backplane_education.xapi.validation import bad

MORE_PATH = "/xapi/statements?more="
_S = XapiStatement


class Page(msgspec.Struct):
    payloads: list[bytes]
    more: str


def _agent_and_activity(
    statement: Select[Any], query: StatementQuery
) -> tuple[Select[Any], list[tuple[str, str]]]:
    """``statement`` with the ``agent``/``activity`` filters on the statement row, and the
    related keys (kind, value) to join instead when ``related_*`` widens them."""
    related = []
    if query.agent is not None:
        if query.related_agents:
            related.append((AGENT_REF, query.agent))
        else:
            statement = statement.where(
                or_(_S.actor == query.agent, _S.object_agent == query.agent)
            )
    if query.activity is not None:
        if query.related_activities:
            related.append((ACTIVITY_REF, query.activity))
        else:
            statement = statement.where(_S.object_activity == query.activity)
    return statement, related


def build(
    tenant_id: uuid.UUID, query: StatementQuery, after: tuple[datetime, int] | None
) -> Select[Any]:
    """The page's SELECT of ``(stored, seq, payload)`` (``after``: the ``(stored, seq)`` of the
    previous page's last statement).

    Pages follow ``(stored, seq)``, newest first unless ``ascending``. A related filter
    (``related_agents``/``related_activities``) reads the related keys' index, which carries
    ``stored``, and joins the statements by ``seq``; any other filter is an index on the
    statement row ending with ``(stored, seq)``. Either way ``since``/``until`` and the position
    are a range on that index and the page its first ``limit + 1`` entries.
    """
    statement = select(_S.stored, _S.seq, _S.payload).where(
        _S.tenant_id == tenant_id, _S.voided.is_(False)
    )
    statement, related = _agent_and_activity(statement, query)
    stored: Any = _S.stored
    seq: Any = _S.seq
    for index, (kind, value) in enumerate(related):
        ref = aliased(XapiStatementRef)
        statement = statement.join(ref, ref.seq == _S.seq).where(
            ref.tenant_id == tenant_id, ref.kind == kind, ref.value == value
        )
        if index == 0:  # the first related key's index drives the page
            stored, seq = ref.stored, ref.seq
    if query.verb is not None:
        statement = statement.where(_S.verb == query.verb)
    if query.registration is not None:
        statement = statement.where(_S.registration == uuid.UUID(query.registration))
    if query.since is not None:
        statement = statement.where(stored > query.since)
    if query.until is not None:
        statement = statement.where(stored <= query.until)
    if after is not None:
        position = tuple_(stored, seq)
        mark = tuple_(literal(after[0], _S.stored.type), literal(after[1], _S.seq.type))
        statement = statement.where(position > mark if query.ascending else position < mark)
    order = (stored.asc(), seq.asc()) if query.ascending else (stored.desc(), seq.desc())
    return statement.order_by(*order).limit(query.limit + 1)


async def page(
    db: AsyncSession,
    tenant_id: uuid.UUID,
    query: StatementQuery,
    after: tuple[datetime, int] | None,
) -> Page:
    rows = (await db.execute(build(tenant_id, query, after))).all()
    more = ""
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        last_stored, last_seq, _ = rows[-1]
        more = MORE_PATH + encode_more(query, (last_stored, last_seq))
    return Page([payload for _, _, payload in rows], more)


async def single(
    db: AsyncSession, tenant_id: uuid.UUID, statement_id: str, *, voided: bool
) -> bytes | None:
    """The statement with this id: a voided one only when ``voided`` (voidedStatementId), a
    live one only when not (statementId)."""
    found: bytes | None = await db.scalar(
        select(_S.payload).where(
            _S.tenant_id == tenant_id,
            _S.statement_id == uuid.UUID(statement_id),
            _S.voided.is_(voided),
        )
    )
    return found


def encode_more(query: StatementQuery, last: tuple[datetime, int]) -> str:
    """The ``more`` token: the query and the ``(stored, seq)`` of the page's last statement."""
    token = msgspec.json.encode([msgspec.to_builtins(query), last[0], last[1]])
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def decode_more(token: str) -> tuple[StatementQuery, tuple[datetime, int]]:
    """The query and position a ``more`` token carries (400 if it is not one of ours)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        fields, stored, seq = msgspec.json.decode(raw, type=tuple[dict[str, Any], datetime, int])
        return msgspec.convert(fields, StatementQuery), (stored, seq)
    except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise bad("the more token is not one this LRS issued") from None


async def formatted(
    db: AsyncSession,
    tenant_id: uuid.UUID,
    payloads: list[bytes],
    format_: str,
    languages: list[str],
) -> list[bytes]:
    """The stored statements in ``format_`` (``exact``: the stored bytes as they are)."""
    if format_ == "exact":
        return payloads
    statements = [msgspec.json.decode(p) for p in payloads]
    if format_ == "ids":
        return [msgspec.json.encode(ids_format(s)) for s in statements]
    ids = {a["id"] for s in statements for a in _activities(s)}
    definitions = await canonical_definitions(db, tenant_id, ids)
    return [msgspec.json.encode(canonical_format(s, definitions, languages)) for s in statements]


def _activities(statement: dict[str, Any]) -> list[dict[str, Any]]:
    found = [statement["object"], *context_activities(statement.get("context", {}))]
    if statement["object"].get("objectType") == "SubStatement":
        found += _activities(statement["object"])
    return [a for a in found if a.get("objectType", "Activity") == "Activity" and "id" in a]


async def canonical_definitions(
    db: AsyncSession, tenant_id: uuid.UUID, activity_ids: set[str]
) -> dict[str, dict[str, Any]]:
    if not activity_ids:
        return {}
    rows = await db.execute(
        select(XapiActivity.activity_id, XapiActivity.definition).where(
            XapiActivity.tenant_id == tenant_id,
            XapiActivity.key.in_([activity_key(a) for a in activity_ids]),
        )
    )
    return {activity_id: definition for activity_id, definition in rows.all()}


async def attachment_parts(
    db: AsyncSession, tenant_id: uuid.UUID, payloads: list[bytes]
) -> list[Part]:
    """The stored attachment content the statements name, once per hash."""
    hashes: set[str] = set()
    for payload in payloads:
        statement = msgspec.json.decode(payload)
        found = list(statement.get("attachments", []))
        if statement["object"].get("objectType") == "SubStatement":
            found += statement["object"].get("attachments", [])
        hashes.update(str(a["sha2"]).lower() for a in found)
    if not hashes:
        return []
    rows = await db.execute(
        select(XapiAttachment.sha2, XapiAttachment.content_type, XapiAttachment.content).where(
            XapiAttachment.tenant_id == tenant_id, XapiAttachment.sha2.in_(hashes)
        )
    )
    return [Part(sha2, content_type, content) for sha2, content_type, content in rows.all()]
