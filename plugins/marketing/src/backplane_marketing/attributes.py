"""Typed custom attributes: a tenant defines keys with a type (string, number, boolean, date,
list) and every value stored under a key is checked and converted against it, whether it comes
as JSON (the API, JSON lines) or as text (a CSV cell)."""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Annotated, Any, Literal

import msgspec

AttributeType = Literal["string", "number", "boolean", "date", "list"]
KEY_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
LIST_SEPARATOR = "|"
"""Items of a list attribute in one CSV cell: ``a|b|c``."""
TRUE_WORDS = frozenset({"true", "yes", "y", "1", "on"})
FALSE_WORDS = frozenset({"false", "no", "n", "0", "off"})


class AttributeIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A new attribute definition. ``choices`` restricts string and list values."""

    key: Annotated[str, msgspec.Meta(pattern=KEY_PATTERN)]
    type: AttributeType
    label: Annotated[str, msgspec.Meta(max_length=200)] = ""
    choices: list[Annotated[str, msgspec.Meta(min_length=1, max_length=200)]] | None = None


class AttributeOut(msgspec.Struct, kw_only=True):
    key: str
    type: str
    label: str
    choices: list[str] | None


class AttributeValueError(ValueError):
    """A value that does not fit its attribute's definition; ``str()`` names key and reason."""


class Definition(msgspec.Struct, frozen=True):
    """What value checks need of a definition (a detached copy of the row)."""

    key: str
    type: str
    choices: tuple[str, ...] | None = None


def _text(definition: Definition, value: str, max_chars: int) -> str:
    if len(value) > max_chars:
        raise AttributeValueError(
            f"attribute {definition.key!r}: longer than {max_chars} characters "
            "(setting max_attribute_chars)"
        )
    if definition.choices is not None and value not in definition.choices:
        raise AttributeValueError(
            f"attribute {definition.key!r}: {value!r} is not one of {list(definition.choices)}"
        )
    return value


FRACTION = re.compile(r"[.eE]")
"""A number written with a fraction or an exponent: read as a float, others as integers."""


def _number(definition: Definition, value: Any) -> float | int:
    # a tuple, not ``int | float | str``: no union object built at every call (one per row)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise AttributeValueError(f"attribute {definition.key!r}: {value!r} is not a number")
    number: float | int
    if isinstance(value, str):
        try:
            number = float(value.strip()) if FRACTION.search(value) else int(value.strip())
        except ValueError:
            raise AttributeValueError(
                f"attribute {definition.key!r}: {value!r} is not a number"
            ) from None
    else:
        number = value
    if isinstance(number, float) and not math.isfinite(number):
        raise AttributeValueError(f"attribute {definition.key!r}: {value!r} is not finite")
    return number


def _boolean(definition: Definition, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise AttributeValueError(
        f"attribute {definition.key!r}: {value!r} is not a boolean (true/false, yes/no, 1/0)"
    )


def _date(definition: Definition, value: Any) -> str:
    try:
        if not isinstance(value, str):
            raise ValueError
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise AttributeValueError(
            f"attribute {definition.key!r}: {value!r} is not a date (YYYY-MM-DD)"
        ) from None


def check_value(definition: Definition, value: Any, max_chars: int) -> Any:
    """The value to store under ``definition.key`` (dates as ISO strings, numbers as numbers),
    or :class:`AttributeValueError`. ``None`` removes the key and is returned as is."""
    if value is None:
        return None
    kind = definition.type
    if kind == "number":
        return _number(definition, value)
    if kind == "boolean":
        return _boolean(definition, value)
    if kind == "date":
        return _date(definition, value)
    if kind == "list":
        items = value.split(LIST_SEPARATOR) if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise AttributeValueError(
                f"attribute {definition.key!r}: {value!r} is not a list of strings"
            )
        return [_text(definition, i.strip(), max_chars) for i in items if i.strip()]
    if not isinstance(value, str):
        raise AttributeValueError(f"attribute {definition.key!r}: {value!r} is not a string")
    return _text(definition, value, max_chars)


def check_values(
    definitions: dict[str, Definition], values: dict[str, Any], max_chars: int
) -> dict[str, Any]:
    """Every value checked against its definition; an unknown key is an error naming the
    known ones (a typo must not silently create data nobody can segment on)."""
    checked: dict[str, Any] = {}
    for key, value in values.items():
        definition = definitions.get(key)
        if definition is None:
            known = ", ".join(sorted(definitions)) or "none defined"
            raise AttributeValueError(f"unknown attribute {key!r} (known: {known})")
        checked[key] = check_value(definition, value, max_chars)
    return checked


def is_blank(value: Any) -> bool:
    """A CSV cell that says nothing (kept out of the upsert rather than stored as empty)."""
    return value is None or (isinstance(value, str) and not value.strip())


def definitions_of(rows: Any) -> dict[str, Definition]:
    """Detached definitions keyed by attribute key, from ``AttributeDefinition`` rows."""
    return {
        row.key: Definition(row.key, row.type, tuple(row.choices) if row.choices else None)
        for row in rows
    }
