"""The rules score: points per event (decaying with the rule's half-life) and per attribute
value, summed per contact with one reason per rule that contributed."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from backplane_marketing.scoring.activity import Buckets
from backplane_marketing.scoring.models import ScoreRule


def decayed(points: float, age_days: float, half_life_days: float | None) -> float:
    """``points`` after ``age_days``: halved every ``half_life_days`` (none: never)."""
    if not half_life_days:
        return points
    return float(points * 0.5 ** (age_days / half_life_days))


def _matches(attribute: Any, value: str | None) -> bool:
    if attribute is None:
        return False
    if value is None:  # the attribute being set at all
        return True
    if isinstance(attribute, list):
        return value in [str(item) for item in attribute]
    if isinstance(attribute, bool):
        return value.lower() == str(attribute).lower()
    return str(attribute) == value


def rules_points(
    rules: Sequence[ScoreRule],
    attributes: dict[str, Any],
    events: dict[str, list[tuple[float, int]]],
) -> tuple[float, list[dict[str, Any]]]:
    """The contact's points and reasons (largest contribution first)."""
    reasons: list[dict[str, Any]] = []
    for rule in rules:
        if rule.kind == "event":
            days = events.get(rule.key, [])
            count = sum(n for _, n in days)
            if not count:
                continue
            points = sum(decayed(rule.points, age, rule.half_life_days) * n for age, n in days)
            why = f"{count} x {rule.key}"
            if rule.half_life_days:
                why += f" (half-life {rule.half_life_days:g} days)"
        elif _matches(attributes.get(rule.key), rule.value):
            points = rule.points
            why = f"{rule.key} = {rule.value}" if rule.value is not None else f"{rule.key} set"
        else:
            continue
        reasons.append({"rule": str(rule.id), "reason": why, "points": round(points, 3)})
    reasons.sort(key=lambda r: -abs(r["points"]))
    return sum(r["points"] for r in reasons), reasons


def points_for(
    rules: Sequence[ScoreRule],
    contacts: Sequence[tuple[uuid.UUID, dict[str, Any]]],
    buckets: Buckets,
) -> dict[uuid.UUID, tuple[float, list[dict[str, Any]]]]:
    """:func:`rules_points` of each ``(contact id, attributes)``."""
    return {
        contact: rules_points(rules, attributes or {}, buckets.get(contact, {}))
        for contact, attributes in contacts
    }
