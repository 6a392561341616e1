"""Computed fields: a template field filled by an inference model from the row's other fields.

A template declares, for a field, which model computes it (a name visible to the tenant, and
optionally a version or alias such as ``production``), which row fields make its feature
vector (in the model's order), the model's input tensor and the output to read (and, for a
row of outputs such as class probabilities, which column). Rows are filled a chunk at a time:
one ``kernel.models.infer`` call per computed field per chunk, with one row of features per
document, so a job of 10,000 rows makes a few dozen model calls, batched and metered by the
kernel (``inference.requests`` / ``inference.rows``), not 10,000.

A row whose inputs are missing or not numbers fails alone, with a message naming the field;
a model call that fails (an unknown model, inputs that do not fit its signature, a spent
inference quota) fails the rows it was for, each with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated, Any

import msgspec
import numpy as np

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class ComputedField(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a model computes one field (the ``computed`` member of a field's declaration)."""

    model: Name
    inputs: Annotated[list[Name], msgspec.Meta(min_length=1, max_length=1000)]
    """Row fields forming the feature vector, in the order the model expects them."""
    output: Name
    """The model output to read."""
    input: Name = "input"
    """The model's input tensor (a 2-D float tensor: one row of ``inputs`` per document)."""
    version: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    """A version or an alias (``production``); None: the model's default."""
    column: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """For an output with several values per row (class probabilities): which one."""


Infer = Callable[[str, dict[str, Any], str | None], Awaitable[Mapping[str, Any]]]
"""``infer(model, inputs, version)``: ``kernel.models.infer`` with the tenant's metering."""


class ComputedError(ValueError):
    """A declaration that cannot work (an input that is itself computed, say)."""


def parse_computed(declarations: Mapping[str, Any]) -> dict[str, ComputedField]:
    """The computed fields of a template from ``{field: declaration}``; :class:`ComputedError`
    naming the field for a bad one."""
    parsed: dict[str, ComputedField] = {}
    for name, declaration in declarations.items():
        try:
            parsed[name] = msgspec.convert(declaration, ComputedField)
        except msgspec.ValidationError as exc:
            raise ComputedError(f"computed field {name!r}: {exc}") from None
    for name, spec in parsed.items():
        chained = [i for i in spec.inputs if i in parsed]
        if chained:
            raise ComputedError(
                f"computed field {name!r} reads {chained[0]!r}, which is computed too"
            )
    return parsed


def _feature(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        number = float(value.strip())  # CSV cells are text: "12.5"
    else:
        raise ValueError(f"a {type(value).__name__}")
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def _python(value: Any) -> Any:
    """A numpy scalar as the JSON-able Python value a template reads."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


async def fill_computed(
    rows: list[dict[str, Any] | None],
    specs: Mapping[str, ComputedField],
    infer: Infer,
    *,
    reraise: tuple[type[BaseException], ...] = (),
) -> list[str | None]:
    """Fill every computed field of every row (in place), one model call per field for all
    rows; the error of each row (None when it was filled). Rows already None (failed before)
    are left alone, and a failed row gets no further field. A model call raising one of
    ``reraise`` (a spent quota, say: it stops the work rather than failing rows) propagates."""
    errors: list[str | None] = [None if row is not None else "" for row in rows]
    for name, spec in specs.items():
        features: list[list[float]] = []
        positions: list[int] = []
        for position, row in enumerate(rows):
            if row is None or errors[position] is not None:
                continue
            try:
                vector = []
                for field in spec.inputs:
                    if field not in row or row[field] is None or row[field] == "":
                        raise LookupError(f"its input {field!r} is missing")
                    try:
                        vector.append(_feature(row[field]))
                    except ValueError as exc:
                        raise LookupError(f"its input {field!r} is not a number ({exc})") from None
            except LookupError as exc:
                errors[position] = f"computed field {name!r}: {exc.args[0]}"
                continue
            features.append(vector)
            positions.append(position)
        if not positions:
            continue
        batch = np.asarray(features, dtype=np.float32)
        try:
            outputs = await infer(spec.model, {spec.input: batch}, spec.version)
            values = _column(np.asarray(outputs[spec.output]), spec, len(positions))
        except reraise:
            raise
        except Exception as exc:  # noqa: BLE001 - every other failure becomes the rows' error
            reason = str(exc) if not isinstance(exc, KeyError) else f"no output {exc.args[0]!r}"
            for position in positions:
                errors[position] = f"computed field {name!r} (model {spec.model}): {reason}"
            continue
        for position, value in zip(positions, values, strict=True):
            row = rows[position]
            assert row is not None
            row[name] = _python(value)
    return [error or None for error in errors]


def _column(output: Any, spec: ComputedField, count: int) -> list[Any]:
    """One value per row from an output of shape ``[n]`` or ``[n, k]``."""
    if output.ndim == 0 or output.shape[0] != count:
        raise ValueError(f"output {spec.output!r} has no row per input row ({output.shape})")
    if output.ndim == 1:
        if spec.column not in (None, 0):
            raise ValueError(f"output {spec.output!r} has one value per row, no column")
        return list(output)
    flat = output.reshape(count, -1)
    if spec.column is None:
        if flat.shape[1] != 1:
            raise ValueError(
                f"output {spec.output!r} has {flat.shape[1]} values per row: name a column"
            )
        return list(flat[:, 0])
    if spec.column >= flat.shape[1]:
        raise ValueError(f"output {spec.output!r} has no column {spec.column}")
    return list(flat[:, spec.column])


def computed_fields(schema: Sequence[Mapping[str, Any]]) -> dict[str, ComputedField]:
    """The computed fields of a stored field schema (a version's ``field_schema``)."""
    return parse_computed(
        {str(s["name"]): s["computed"] for s in schema if s.get("computed") is not None}
    )


async def compute_one(
    kernel: Any, schema: Sequence[Mapping[str, Any]], fields: Mapping[str, Any]
) -> dict[str, Any]:
    """``fields`` with the template's computed fields filled by their models (one document:
    a single render), less the models' inputs the template does not declare. ``RenderError``
    (kind ``fields``) naming the field when its model cannot fill it; ``QuotaExceeded`` of the
    model's metering propagates (429)."""
    from backplane import QuotaExceeded
    from backplane_documents.errors import RenderError

    specs = computed_fields(schema)
    filled = dict(fields)
    if not specs:
        return filled

    async def infer(model: str, inputs: dict[str, Any], version: str | None) -> Any:
        return await kernel.models.infer(model, inputs, version=version)

    [error] = await fill_computed([filled], specs, infer, reraise=(QuotaExceeded,))
    if error is not None:
        raise RenderError(error, kind="fields")
    declared = {str(s["name"]) for s in schema}
    for spec in specs.values():  # a model's inputs need not be fields of the template
        for name in spec.inputs:
            if name not in declared:
                filled.pop(name, None)
    return filled
