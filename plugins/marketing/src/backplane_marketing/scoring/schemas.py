"""What the scoring API reads and writes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from backplane_marketing.schemas import EventIn


class RuleIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``{"kind": "event", "key": "visited_pricing", "points": 10, "half_life_days": 14}`` or
    ``{"kind": "attribute", "key": "industry", "value": "saas", "points": 5}`` (no ``value``:
    the attribute being set at all)."""

    kind: Literal["event", "attribute"]
    key: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    value: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    points: Annotated[float, msgspec.Meta(ge=-1000, le=1000)]
    half_life_days: Annotated[float, msgspec.Meta(gt=0, le=36500)] | None = None


class RuleOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    kind: str
    key: str
    value: str | None
    points: float
    half_life_days: float | None
    created_at: datetime


class ContactEventIn(EventIn, forbid_unknown_fields=True, kw_only=True):
    """An activity of the contact with this address (``converted`` records a conversion)."""

    email: Annotated[str, msgspec.Meta(min_length=1, max_length=320)]


class ScoreOut(msgspec.Struct, kw_only=True):
    """A contact's score (0-100), where it comes from (``model`` or ``rules``), the rules'
    points and the reasons, largest first."""

    contact_id: uuid.UUID
    score: float
    source: str
    rules_points: float
    reasons: list[dict[str, Any]]
    updated_at: datetime


class RecomputeOut(msgspec.Struct, kw_only=True):
    queued: bool
