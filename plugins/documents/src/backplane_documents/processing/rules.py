"""Rules that find a template's fields in extracted text.

A rule says where a field's value is; the field's spec in the template's schema says what it
must be. Three kinds, chosen by ``kind``:

* ``regex``: a regular expression (the ``regex`` module, with a time limit: a pattern that
  backtracks catastrophically fails its field instead of hanging the worker); the value is the
  named or numbered group (the whole match when the pattern has no group);
* ``anchor``: the text after a label such as ``"Invoice number:"``, to the end of the line (or
  the next word only);
* ``table``: a cell of a table by row and column (a column may be named by its header), or, for
  a ``list`` field, the table's rows mapped onto the row schema's columns.

Values found are coerced and validated against the field spec (the same validation a render
uses); each field that cannot be found or is invalid gets its own error, never a failed request.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

RULE_TIME_LIMIT_S = 1.0
"""How long one regular expression may search one document."""

Index = Annotated[int, msgspec.Meta(ge=0, le=10_000)]


class _Rule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    page: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """Search only this page (1-based); the whole document when None."""
    date_format: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    """``strptime`` format of a date field's text (``%d %B %Y``); ISO 8601 when None."""


class RegexRule(_Rule, tag="regex", tag_field="kind", frozen=True):
    pattern: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    group: int | str | None = None
    """Which group holds the value: a number or a name; the first group (or the whole
    match) when None."""
    ignore_case: bool = False
    occurrence: Annotated[int, msgspec.Meta(ge=1)] = 1


class AnchorRule(_Rule, tag="anchor", tag_field="kind", frozen=True):
    anchor: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    until: Literal["line", "word"] = "line"
    ignore_case: bool = True
    occurrence: Annotated[int, msgspec.Meta(ge=1)] = 1


class TableRule(_Rule, tag="table", tag_field="kind", frozen=True):
    table: Index = 0
    """Which table of the document (0-based, in document order)."""
    row: Index | None = None
    """A scalar field: the row (0-based, the header is row 0)."""
    column: Index | Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    """A scalar field: the column, by position or by its header's text."""
    header: bool = True
    """Whether row 0 holds column names (a list field then maps rows by them)."""
    columns: dict[str, Index | str] | None = None
    """A list field: row-schema field name -> column (position or header); by default each
    row field takes the column whose header matches its name or label."""


Rule = RegexRule | AnchorRule | TableRule
RuleSet = dict[str, Rule]
"""Field name -> the rule that finds it."""


def parse_rules(raw: object) -> RuleSet:
    """Rules from JSON-like data; ValueError naming the problem."""
    try:
        rules = msgspec.convert(raw, RuleSet)
    except msgspec.ValidationError as error:
        raise ValueError(f"invalid extraction rules: {error}") from None
    if len(rules) > 200:
        raise ValueError("invalid extraction rules: at most 200 rules")
    return rules
