"""A template's field schema, and the validation of a document's data against it.

The schema is a list of :class:`FieldSpec` stored with each template version; validating turns
it into a msgspec struct type (cached by schema), so data is checked by msgspec with messages
that name the field (``$.lines[2].amount``). CSV rows arrive as strings: conversion is lax
(``"12"`` is a valid integer), never silent (``"twelve"`` is not).
"""

from __future__ import annotations

import datetime
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import msgspec

from backplane_documents.computed import ComputedError, ComputedField, parse_computed
from backplane_documents.errors import RenderError

FieldType = Literal["string", "integer", "number", "boolean", "date", "list"]
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
URL_PATTERN = r"^https?://[^\s]+$"
MAX_FIELDS = 200


class FieldSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One field of a template: its type, whether it is required, and its constraints.

    ``list`` fields hold table rows: ``items`` is the schema of one row (scalars only)."""

    name: Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]
    type: FieldType = "string"
    required: bool = True
    label: Annotated[str, msgspec.Meta(max_length=200)] = ""
    format: Literal["email", "url"] | None = None
    """For strings: an email address or an http(s) URL."""
    min_length: Annotated[int, msgspec.Meta(ge=0)] | None = None
    max_length: Annotated[int, msgspec.Meta(ge=1)] | None = 10_000
    minimum: float | None = None
    maximum: float | None = None
    max_items: Annotated[int, msgspec.Meta(ge=1)] = 1000
    """For lists: at most this many rows."""
    items: tuple[FieldSpec, ...] = ()
    example: Any = None
    """A sample value, used by the preview when no data is given."""
    computed: ComputedField | None = None
    """Filled by an inference model from other fields (see :mod:`backplane_documents.computed`)."""

    def __post_init__(self) -> None:
        if self.type == "list" and not self.items:
            raise ValueError(f"list field {self.name!r} needs `items` (the columns of a row)")
        if self.type != "list" and self.items:
            raise ValueError(f"field {self.name!r}: only list fields have `items`")
        if any(item.type == "list" for item in self.items):
            raise ValueError(f"list field {self.name!r}: rows hold scalars, not lists")
        if self.computed is not None and self.type == "list":
            raise ValueError(f"field {self.name!r}: a model computes scalars, not lists")
        if self.computed is not None and self.name in self.computed.inputs:
            raise ValueError(f"computed field {self.name!r} cannot be its own input")
        if self.format is not None and self.type != "string":
            raise ValueError(f"field {self.name!r}: `format` applies to strings only")
        _unique(self.items, f"list field {self.name!r}")


def _unique(specs: Sequence[FieldSpec], where: str) -> None:
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{where}: duplicate field names {duplicates}")


def parse_schema(raw: Any) -> tuple[FieldSpec, ...]:
    """A schema from JSON-like data (stored or sent), checked; ValueError naming the problem."""
    try:
        specs = msgspec.convert(raw, tuple[FieldSpec, ...])
    except msgspec.ValidationError as error:
        raise ValueError(f"invalid field schema: {error}") from None
    if len(specs) > MAX_FIELDS:
        raise ValueError(f"invalid field schema: at most {MAX_FIELDS} fields")
    _unique(specs, "invalid field schema")
    try:  # no computed field reads another one (a model's inputs are the row's)
        parse_computed({s.name: msgspec.to_builtins(s.computed) for s in specs if s.computed})
    except ComputedError as error:
        raise ValueError(f"invalid field schema: {error}") from None
    return specs


def _scalar(spec: FieldSpec) -> Any:
    if spec.type == "string":
        pattern = {"email": EMAIL_PATTERN, "url": URL_PATTERN, None: None}[spec.format]
        meta = msgspec.Meta(min_length=spec.min_length, max_length=spec.max_length, pattern=pattern)
        return Annotated[str, meta]
    if spec.type == "integer":  # integer bounds for an integer (msgspec refuses float ones)
        low = None if spec.minimum is None else math.ceil(spec.minimum)
        high = None if spec.maximum is None else math.floor(spec.maximum)
        return Annotated[int, msgspec.Meta(ge=low, le=high)]
    if spec.type == "number":
        return Annotated[float, msgspec.Meta(ge=spec.minimum, le=spec.maximum)]
    return {"boolean": bool, "date": datetime.date}[spec.type]


def _struct(name: str, specs: Sequence[FieldSpec]) -> type[msgspec.Struct]:
    required, optional = [], []
    for spec in specs:
        kind = _scalar(spec) if spec.type != "list" else _rows(spec)
        if spec.required:
            required.append((spec.name, kind))
        else:
            optional.append((spec.name, kind | None, None))
    return msgspec.defstruct(name, [*required, *optional], kw_only=True, forbid_unknown_fields=True)


def _rows(spec: FieldSpec) -> Any:
    row = _struct(f"{spec.name}_row", spec.items)
    return Annotated[list[row], msgspec.Meta(max_length=spec.max_items)]  # type: ignore[valid-type]


@functools.lru_cache(maxsize=256)
def _compiled(encoded: bytes) -> type[msgspec.Struct]:
    return _struct("Fields", parse_schema(msgspec.json.decode(encoded)))


def validate_fields(
    schema: Sequence[FieldSpec] | Sequence[Mapping[str, Any]], data: Mapping[str, Any]
) -> dict[str, Any]:
    """``data`` checked against ``schema`` and normalised to JSON values (dates as ISO
    strings, ``"12"`` as 12 for an integer, absent optional fields as None): what templates
    receive. :class:`RenderError` (``kind="fields"``) naming the first bad field otherwise."""
    try:
        fields_type = _compiled(msgspec.json.encode(schema))
    except ValueError as error:
        raise RenderError(str(error), kind="fields") from None
    if not isinstance(data, Mapping):
        raise RenderError("fields must be a JSON object", kind="fields")
    try:
        checked = msgspec.convert(dict(data), fields_type, strict=False)
    except msgspec.ValidationError as error:
        raise RenderError(f"invalid fields: {error}", kind="fields") from None
    result: dict[str, Any] = msgspec.to_builtins(checked)
    return result


def example_fields(schema: Sequence[FieldSpec]) -> dict[str, Any]:
    """Data for a preview without data: each field's ``example`` (rows: one example row)."""
    data: dict[str, Any] = {}
    for spec in schema:
        if spec.type == "list":
            data[spec.name] = [example_fields(spec.items)] if spec.example is None else spec.example
        elif spec.example is not None:
            data[spec.name] = spec.example
    return data
