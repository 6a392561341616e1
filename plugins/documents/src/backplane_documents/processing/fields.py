"""Applying extraction rules to a document's text: typed field values and per-field errors."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import msgspec
import regex

from backplane_documents.errors import RenderError
from backplane_documents.fields import FieldSpec, validate_fields
from backplane_documents.processing.results import Extraction
from backplane_documents.processing.rules import (
    RULE_TIME_LIMIT_S,
    AnchorRule,
    RegexRule,
    Rule,
    RuleSet,
    TableRule,
)

_NUMBER = regex.compile(r"[-+]?\d[\d,' \u00a0\u202f]*(?:\.\d+)?")
_TRUE = {"true", "yes", "y", "x", "1", "on", "checked", "oui", "ja"}
_FALSE = {"false", "no", "n", "0", "off", "unchecked", "", "non", "nein"}


class FieldsResult(msgspec.Struct, frozen=True, kw_only=True):
    """What the rules found: valid values, and one message for each field that has none."""

    values: dict[str, Any]
    """Field name -> value, typed as the schema says (dates as ISO strings)."""
    errors: dict[str, str]
    """Field name -> why it has no value (not found, or found but invalid)."""


class _NotFound(Exception):  # noqa: N818 (an outcome, reported per field)
    pass


def extract_fields(
    extraction: Extraction, rules: RuleSet, schema: Sequence[FieldSpec]
) -> FieldsResult:
    """Every schema field's value by its rule. ValueError when a rule names a field the schema
    lacks (a request error); a field's own failure lands in ``errors``."""
    known = {spec.name: spec for spec in schema}
    unknown = sorted(set(rules) - set(known))
    if unknown:
        raise ValueError(f"rules name fields the template does not have: {unknown}")
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in schema:
        rule = rules.get(spec.name)
        raw: Any = None
        if rule is None:
            if spec.required:
                errors[spec.name] = "required, and no rule says where to find it"
            continue
        try:
            raw = _find(extraction, rule, spec)
            value = _coerce(raw, spec, rule)
            values[spec.name] = validate_fields([spec], {spec.name: value})[spec.name]
        except _NotFound as exc:
            if spec.required or str(exc).startswith("the pattern"):
                errors[spec.name] = str(exc)
            else:
                values[spec.name] = None
        except (RenderError, ValueError) as exc:
            message = str(exc).removeprefix("invalid fields: ")
            found = f" (found {raw[:200]!r})" if isinstance(raw, str) else ""
            errors[spec.name] = message + found
    return FieldsResult(values=values, errors=errors)


def _text(extraction: Extraction, rule: Rule) -> str:
    if rule.page is None:
        return extraction.text
    if rule.page > len(extraction.pages):
        raise _NotFound(f"the document has no page {rule.page}")
    return extraction.pages[rule.page - 1].text


def _nth(matches: list[Any], occurrence: int, what: str) -> Any:
    if len(matches) < occurrence:
        raise _NotFound(f"{what} found {len(matches)} time(s); occurrence {occurrence} asked")
    return matches[occurrence - 1]


def _find(extraction: Extraction, rule: Rule, spec: FieldSpec) -> Any:
    if isinstance(rule, TableRule):
        return _table(extraction, rule, spec)
    text = _text(extraction, rule)
    if isinstance(rule, RegexRule):
        flags = regex.IGNORECASE if rule.ignore_case else 0
        try:
            pattern = regex.compile(rule.pattern, flags | regex.MULTILINE)
            found = list(pattern.finditer(text, timeout=RULE_TIME_LIMIT_S))
        except regex.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        except TimeoutError:
            raise _NotFound(
                f"the pattern took longer than {RULE_TIME_LIMIT_S:g} s (catastrophic "
                "backtracking?) and was stopped"
            ) from None
        match = _nth(found, rule.occurrence, "the pattern was")
        if rule.group is not None:
            try:
                return match.group(rule.group)
            except IndexError:
                raise ValueError(f"the pattern has no group {rule.group!r}") from None
        return match.group(1) if pattern.groups else match.group(0)
    return _after_anchor(text, rule)


def _after_anchor(text: str, rule: AnchorRule) -> str:
    flags = regex.IGNORECASE if rule.ignore_case else 0
    # the label as words: any run of spaces in the document matches a space in the anchor
    words = [regex.escape(word) for word in rule.anchor.split()]
    pattern = regex.compile(r"[ \t]+".join(words), flags)
    found = list(pattern.finditer(text))
    match = _nth(found, rule.occurrence, f"the anchor {rule.anchor!r} was")
    lines = text[match.end() :].splitlines()  # ends at a page break (\f) too
    value = lines[0].strip(" \t:") if lines else ""
    if not value:  # a form: the label on its own line, the value on the next
        value = next((ln.strip() for ln in lines[1:] if ln.strip()), "")
    if rule.until == "word":
        value = value.split()[0] if value.split() else ""
    if not value:
        raise _NotFound(f"nothing follows the anchor {rule.anchor!r}")
    return value


def _column(header: list[str], column: int | str, where: str) -> int:
    if isinstance(column, int):
        return column
    wanted = column.strip().casefold()
    for index, name in enumerate(header):
        if name.strip().casefold() == wanted:
            return index
    raise _NotFound(f"{where} has no column headed {column!r}")


def _table(extraction: Extraction, rule: TableRule, spec: FieldSpec) -> Any:
    tables = extraction.tables if rule.page is None else extraction.pages[rule.page - 1].tables
    if rule.table >= len(tables):
        raise _NotFound(f"the document has {len(tables)} table(s); table {rule.table} asked")
    rows = tables[rule.table]
    where = f"table {rule.table}"
    header = rows[0] if rows else []
    if spec.type == "list":
        mapping = rule.columns or {item.name: item.label or item.name for item in spec.items}
        indices = {name: _column(header, col, where) for name, col in mapping.items()}
        body = rows[1:] if rule.header else rows
        return [
            {
                name: _coerce(row[i] if i < len(row) else "", item, rule)
                for item in spec.items
                if (name := item.name) in indices and (i := indices[name]) is not None
            }
            for row in body
            if any(cell.strip() for cell in row)
        ]
    if rule.row is None or rule.column is None:
        raise ValueError(f"the table rule of field {spec.name!r} needs a row and a column")
    if rule.row >= len(rows):
        raise _NotFound(f"{where} has {len(rows)} row(s); row {rule.row} asked")
    index = _column(header, rule.column, where)
    if index >= len(rows[rule.row]):
        raise _NotFound(f"{where} row {rule.row} has no column {index}")
    return rows[rule.row][index]


def _coerce(raw: Any, spec: FieldSpec, rule: Rule) -> Any:
    """Text as the field's type, where the text clearly is one (else left for validation to
    refuse with its message)."""
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    if spec.type in ("integer", "number"):
        return _number(text, spec)
    if spec.type == "boolean":
        folded = text.casefold()
        return True if folded in _TRUE else False if folded in _FALSE else text
    if spec.type == "date" and rule.date_format:
        try:
            return datetime.datetime.strptime(text, rule.date_format).date().isoformat()
        except ValueError:
            raise ValueError(
                f"{text!r} does not match the date format {rule.date_format!r}"
            ) from None
    return None if not text and not spec.required else text


def _number(text: str, spec: FieldSpec) -> str:
    """The first number in ``text`` without thousands separators (``1,234.56 EUR`` ->
    ``1234.56``); ``text`` itself when it holds none."""
    match = _NUMBER.search(text)
    if match is None:
        return text
    digits = str(regex.sub(r"[,' \u00a0\u202f]", "", match.group(0)))
    if spec.type == "integer" and digits.endswith(".0"):
        digits = digits[:-2]
    return digits
