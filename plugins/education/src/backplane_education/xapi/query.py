"""``GET /xapi/statements`` parameters (xAPI 1.0.3 Part Three 2.1.3), checked before any SQL.

A parameter the specification does not list, a malformed value, or ``statementId`` mixed with
filters is a 400 naming it. The result is a plain struct :mod:`.store` turns into one query.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from backplane_education.xapi.validation import agent_ifi, bad, check_agent, check_iri, is_uuid

FORMATS = ("ids", "exact", "canonical")
SINGLE_ALLOWED = frozenset({"statementId", "voidedStatementId", "attachments", "format"})
KNOWN = SINGLE_ALLOWED | {
    "agent",
    "verb",
    "activity",
    "registration",
    "related_activities",
    "related_agents",
    "since",
    "until",
    "limit",
    "ascending",
}


class StatementQuery(msgspec.Struct, kw_only=True):
    statement_id: str | None = None
    voided_statement_id: str | None = None
    agent: str | None = None
    """The agent's canonical identifier (see :func:`.validation.agent_ifi`)."""
    verb: str | None = None
    activity: str | None = None
    registration: str | None = None
    related_activities: bool = False
    related_agents: bool = False
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 0
    format: str = "exact"
    attachments: bool = False
    ascending: bool = False


def parse_bool(value: str, name: str) -> bool:
    if value not in ("true", "false"):
        raise bad(f"{name} must be true or false, got {value!r}")
    return value == "true"


def parse_time(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad(f"{name} must be an ISO 8601 timestamp, got {value!r}") from None
    if moment.tzinfo is None:
        raise bad(f"{name} needs a time zone")
    return moment.astimezone(UTC)


def parse_agent(value: str, name: str = "agent") -> str:
    """The canonical identifier of the JSON agent in parameter ``name`` (400 if invalid)."""
    try:
        agent = msgspec.json.decode(value)
    except msgspec.DecodeError:
        raise bad(f"{name} must be a JSON Agent or identified Group") from None
    check_agent(agent, name)
    ifi = agent_ifi(agent)
    if ifi is None:
        raise bad(f"{name} must have an inverse functional identifier")
    return ifi


def parse_statement_query(params: Mapping[str, str], max_limit: int) -> StatementQuery:
    """The query ``params`` describe; ``limit`` 0 or above ``max_limit`` becomes ``max_limit``."""
    unknown = sorted(set(params) - KNOWN)
    if unknown:
        raise bad(f"unknown statement query parameters: {', '.join(unknown)}")
    query = StatementQuery()
    single = "statementId" in params or "voidedStatementId" in params
    if single:
        if "statementId" in params and "voidedStatementId" in params:
            raise bad("statementId and voidedStatementId cannot be combined")
        extra = sorted(set(params) - SINGLE_ALLOWED)
        if extra:
            raise bad(f"statementId cannot be combined with {', '.join(extra)}")
        for name in ("statementId", "voidedStatementId"):
            if name in params and not is_uuid(params[name]):
                raise bad(f"{name} must be a UUID")
        query.statement_id = params.get("statementId", "").lower() or None
        query.voided_statement_id = params.get("voidedStatementId", "").lower() or None
    _filters(query, params)
    limit = params.get("limit", "0")
    if not limit.isdigit():
        raise bad(f"limit must be a non-negative integer, got {limit!r}")
    query.limit = min(int(limit), max_limit) or max_limit
    query.format = params.get("format", "exact")
    if query.format not in FORMATS:
        raise bad(f"format must be one of {', '.join(FORMATS)}")
    return query


def _filters(query: StatementQuery, params: Mapping[str, Any]) -> None:
    if "agent" in params:
        query.agent = parse_agent(params["agent"])
    if "verb" in params:
        check_iri(params["verb"], "verb")
        query.verb = params["verb"]
    if "activity" in params:
        check_iri(params["activity"], "activity")
        query.activity = params["activity"]
    if "registration" in params:
        if not is_uuid(params["registration"]):
            raise bad("registration must be a UUID")
        query.registration = params["registration"].lower()
    for name in ("related_activities", "related_agents", "attachments", "ascending"):
        if name in params:
            setattr(query, name, parse_bool(params[name], name))
    if "since" in params:
        query.since = parse_time(params["since"], "since")
    if "until" in params:
        query.until = parse_time(params["until"], "until")
