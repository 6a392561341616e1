"""From a record of an import file to a contact's values: the header mapping (columns to
``email``, ``name``, ``tags``, ``attributes.<key>`` or ``ignore``) and every cell checked, so
that each bad row gets one clear reason."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

import msgspec

from backplane_marketing.attributes import (
    AttributeValueError,
    Definition,
    check_value,
    is_blank,
)
from backplane_marketing.emails import InvalidEmailError, normalise_email
from backplane_marketing.errors import MarketingError
from backplane_marketing.schemas import Tag

FIELDS = ("email", "name", "tags", "ignore")
ATTRIBUTE_PREFIX = "attributes."
EMAIL_HEADERS = {"email", "e-mail", "email address", "e-mail address", "mail"}
TAG_SPLIT = re.compile(r"[,|]")
TAG_PATTERN = re.compile(r"^[^\s,|][^,|]*$")


class ImportOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """How to read the file. ``delimiter`` None: found by ``csv.Sniffer``; ``mapping`` None:
    columns named like a field or an attribute key are mapped, the rest ignored; ``list_id``
    subscribes every imported contact to that list (never re-subscribing one who left it);
    ``tags`` are added to every imported contact."""

    format: Literal["csv", "jsonl"] = "csv"
    encoding: Annotated[str, msgspec.Meta(min_length=1, max_length=40)] = "utf-8"
    delimiter: Annotated[str, msgspec.Meta(min_length=1, max_length=1)] | None = None
    quotechar: Annotated[str, msgspec.Meta(min_length=1, max_length=1)] = '"'
    mapping: dict[str, str] | None = None
    list_id: uuid.UUID | None = None
    tags: list[Tag] = msgspec.field(default_factory=list)


class ContactRow(msgspec.Struct, gc=False):
    """One valid row, held in a batch until it is written. Not tracked by the garbage collector
    (it holds text, numbers and a dict of them: no cycles), and ``tags`` a tuple (the empty one
    is shared): thousands of rows alive at a time otherwise filled the collector's oldest
    generation and started a full collection of the whole process every few thousand rows."""

    line: int
    email: str
    name: str
    attributes: dict[str, Any]
    tags: tuple[str, ...]


class RowError(ValueError):
    """Why a row cannot be imported."""


def default_mapping(header: list[str], definitions: dict[str, Definition]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for column in header:
        name = column.strip().lower()
        if name in EMAIL_HEADERS:
            mapping[column] = "email"
        elif name in ("name", "tags"):
            mapping[column] = name
        elif name in definitions:
            mapping[column] = ATTRIBUTE_PREFIX + name
        else:
            mapping[column] = "ignore"
    return mapping


def checked_mapping(
    mapping: dict[str, str] | None,
    header: list[str] | None,
    definitions: dict[str, Definition],
) -> dict[str, str]:
    """The mapping to use (422 naming the problem: an unknown target or column, no email)."""
    if mapping is None:
        if header is None:  # JSON lines: keys are fields and attribute keys as they are
            return {}
        mapping = default_mapping(header, definitions)
    for column, target in mapping.items():
        if header is not None and column not in header:
            raise MarketingError(f"mapping names column {column!r}, not in the header", 422)
        key = target.removeprefix(ATTRIBUTE_PREFIX)
        if target not in FIELDS and not (
            target.startswith(ATTRIBUTE_PREFIX) and key in definitions
        ):
            raise MarketingError(
                f"mapping of {column!r}: {target!r} is not email, name, tags, ignore or "
                "attributes.<a defined attribute>",
                422,
            )
    if header is not None and "email" not in mapping.values():
        raise MarketingError("no column is mapped to email", 422)
    if list(mapping.values()).count("email") > 1:
        raise MarketingError("more than one column is mapped to email", 422)
    return mapping


class RowConverter:
    """Turns records into :class:`ContactRow` values for one import's header and mapping."""

    def __init__(
        self,
        header: list[str] | None,
        mapping: dict[str, str],
        definitions: dict[str, Definition],
        max_chars: int,
        max_tags: int,
    ) -> None:
        self.header, self.mapping, self.definitions = header, mapping, definitions
        self.max_chars, self.max_tags = max_chars, max_tags
        # CSV: the cell each mapped target is read from (a later column mapped to the same
        # target wins, as in a dict of the row), ignored columns never looked at
        used = {mapping[c]: i for i, c in enumerate(header or ()) if mapping[c] != "ignore"}
        self._cells = list(used.items())
        self._attributes = [
            (target, target.removeprefix(ATTRIBUTE_PREFIX))
            for target in used
            if target.startswith(ATTRIBUTE_PREFIX)
        ]

    def _named(self, cells: Any) -> dict[str, Any]:
        if self.header is None:
            fields: dict[str, Any] = {}
            for key, value in cells.items():
                target = self.mapping.get(key, key)
                if key == "attributes" and isinstance(value, dict):
                    fields |= {ATTRIBUTE_PREFIX + k: v for k, v in value.items()}
                elif target in FIELDS or target.startswith(ATTRIBUTE_PREFIX):
                    fields[target] = value
                elif key in self.definitions:
                    fields[ATTRIBUTE_PREFIX + key] = value
                else:
                    raise RowError(f"unknown field {key!r}")
            return fields
        if len(cells) != len(self.header):
            raise RowError(f"expected {len(self.header)} columns, found {len(cells)}")
        return {target: cells[index] for target, index in self._cells}

    def convert(self, line: int, cells: Any) -> ContactRow:
        fields = self._named(cells)
        raw_email = fields.get("email")
        if not isinstance(raw_email, str) or is_blank(raw_email):
            raise RowError("no email")
        try:
            email = normalise_email(raw_email)
        except InvalidEmailError as error:
            raise RowError(str(error)) from None
        name = fields.get("name") or ""
        if not isinstance(name, str) or len(name) > 200:
            raise RowError("name must be text of at most 200 characters")
        attributes: dict[str, Any] = {}
        targets = (
            self._attributes
            if self.header is not None
            else [
                (t, t.removeprefix(ATTRIBUTE_PREFIX))
                for t in fields
                if t.startswith(ATTRIBUTE_PREFIX)
            ]
        )
        for target, key in targets:
            value = fields.get(target)
            if is_blank(value):
                continue
            definition = self.definitions.get(key)
            if definition is None:
                raise RowError(f"unknown attribute {key!r}")
            try:
                attributes[key] = check_value(definition, value, self.max_chars)
            except AttributeValueError as error:
                raise RowError(str(error)) from None
        return ContactRow(line, email, name.strip(), attributes, self._tags(fields.get("tags")))

    def _tags(self, value: Any) -> tuple[str, ...]:
        if is_blank(value):
            return ()
        items = TAG_SPLIT.split(value) if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
            raise RowError("tags must be text (a|b) or a list of strings")
        tags = sorted({t.strip() for t in items if t.strip()})
        for tag in tags:
            if len(tag) > 100 or not TAG_PATTERN.match(tag):
                raise RowError(f"bad tag {tag!r}")
        if len(tags) > self.max_tags:
            raise RowError(f"more than {self.max_tags} tags (setting max_tags_per_contact)")
        return tuple(tags)
