"""The model's features: per event kind the counts over 7 days, 30 days and all time and the
days since the last one (from :func:`~backplane_marketing.scoring.activity.activity`, one SQL
aggregate), then the tenant's number and boolean attributes and one column per choice of its
string attributes that have choices. The layout (``spec``) is fixed at training time and kept
(``marketing_scoring_specs``) so serving builds the same columns."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_marketing.models import AttributeDefinition, ContactEvent
from backplane_marketing.scoring.activity import CONVERSION

MAX_EVENT_KINDS = 20
"""The most frequent event kinds become features; rarer ones are left out."""
NEVER_DAYS = 365.0
"""``days since last`` of a kind the contact never did (and the cap of any other)."""


async def current_spec(db: AsyncSession) -> dict[str, Any]:
    """The layout for the tenant's data now: its most frequent event kinds and attributes."""
    kinds = await db.scalars(
        select(ContactEvent.type)
        .where(ContactEvent.type != CONVERSION)
        .group_by(ContactEvent.type)
        .order_by(func.count(ContactEvent.id).desc(), ContactEvent.type)
        .limit(MAX_EVENT_KINDS)
    )
    spec: dict[str, Any] = {"events": sorted(kinds), "numbers": [], "booleans": [], "choices": {}}
    for definition in await db.scalars(
        select(AttributeDefinition).order_by(AttributeDefinition.key)
    ):
        if definition.type == "number":
            spec["numbers"].append(definition.key)
        elif definition.type == "boolean":
            spec["booleans"].append(definition.key)
        elif definition.type == "string" and definition.choices:
            spec["choices"][definition.key] = list(definition.choices)
    return spec


def width(spec: dict[str, Any]) -> int:
    return (
        4 * len(spec["events"])
        + len(spec["numbers"])
        + len(spec["booleans"])
        + sum(len(c) for c in spec["choices"].values())
    )


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value) if math.isfinite(value) else 0.0


def row(
    spec: dict[str, Any], attributes: dict[str, Any], events: dict[str, list[tuple[float, int]]]
) -> list[float]:
    """One contact's feature vector in ``spec``'s column order."""
    out: list[float] = []
    for kind in spec["events"]:
        days = events.get(kind, [])
        out += [
            float(sum(n for age, n in days if age < 7)),
            float(sum(n for age, n in days if age < 30)),
            float(sum(n for _, n in days)),
            min(min((age for age, _ in days), default=NEVER_DAYS), NEVER_DAYS),
        ]
    out += [_number(attributes.get(key)) for key in spec["numbers"]]
    out += [1.0 if attributes.get(key) is True else 0.0 for key in spec["booleans"]]
    for key, choices in spec["choices"].items():
        out += [1.0 if attributes.get(key) == choice else 0.0 for choice in choices]
    return out


def matrix(
    spec: dict[str, Any],
    contacts: Sequence[tuple[Any, dict[str, Any]]],
    buckets: dict[Any, dict[str, list[tuple[float, int]]]],
) -> Any:
    """The float32 matrix of ``(contact id, attributes)`` rows."""
    rows = [
        row(spec, attributes or {}, buckets.get(contact, {})) for contact, attributes in contacts
    ]
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), width(spec))
