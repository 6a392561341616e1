"""From a data row to what the renderer takes, and from a rendering to the row's outcome.

Pure helpers of :mod:`backplane_documents.jobs_run`: which columns the template declares (the
others are left out and named in the quality report, so an extra ``id`` column in a CSV does
not fail every row), list fields sent as JSON text in a CSV cell, and the document's name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from backplane_documents.computed import ComputedField, computed_fields
from backplane_documents.jobs_zip import safe_name


class Declared(msgspec.Struct, frozen=True):
    """What a bulk job needs to know of a version's field schema."""

    required: dict[str, bool]
    """Every declared field, and whether it is required."""
    lists: frozenset[str]
    """Fields holding table rows (a CSV cell gives them as JSON text)."""
    computed: dict[str, ComputedField]
    """Fields a model fills."""


def declared_fields(schema: Sequence[Mapping[str, Any]]) -> Declared:
    """The fields of a stored field schema (its ``computed`` declarations parsed)."""
    return Declared(
        required={str(spec["name"]): bool(spec.get("required", True)) for spec in schema},
        lists=frozenset(str(spec["name"]) for spec in schema if spec.get("type") == "list"),
        computed=computed_fields(schema),
    )


_JSON = msgspec.json.Decoder()


def template_fields(row: Mapping[str, Any], declared: Declared) -> dict[str, Any]:
    """The row's values of declared fields (call it after the models filled the computed ones,
    which they overwrite whatever the row said), list fields decoded from JSON text."""
    fields: dict[str, Any] = {}
    for name, value in row.items():
        if name not in declared.required:
            continue
        fields[name] = value
        if name in declared.lists and isinstance(value, str):
            # not JSON: validation names the field ("expected array, got str")
            with contextlib.suppress(msgspec.DecodeError):
                fields[name] = _JSON.decode(value)
    return fields


def document_stem(
    row: Mapping[str, Any] | None, name_field: str | None, number: int, total: int
) -> str:
    """The document's name in the ZIP without extension: the ``name_field`` value made safe,
    else the row number padded to the job's width (``00042``)."""
    if name_field and row is not None:
        value = row.get(name_field)
        if value is not None and (stem := safe_name(str(value))):
            return stem
    return str(number).zfill(len(str(total)))
