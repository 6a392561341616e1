"""Field schemas and the validation of a document's data against them (msgspec)."""

from __future__ import annotations

import pytest

from backplane_documents.errors import RenderError
from backplane_documents.fields import example_fields, parse_schema, validate_fields

SCHEMA = [
    {"name": "customer"},
    {"name": "email", "format": "email", "required": False},
    {"name": "issued_on", "type": "date"},
    {"name": "paid", "type": "boolean", "required": False},
    {"name": "total", "type": "number", "minimum": 0},
    {
        "name": "lines",
        "type": "list",
        "max_items": 3,
        "items": [{"name": "label", "max_length": 10}, {"name": "qty", "type": "integer"}],
    },
]


def good(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "customer": "Ada",
        "issued_on": "2026-12-05",
        "total": 12.5,
        "lines": [{"label": "tea", "qty": 2}],
    }
    data.update(changes)
    return data


def test_valid_data_is_normalised_to_json_values() -> None:
    checked = validate_fields(SCHEMA, good(total="12.5", lines=[{"label": "tea", "qty": "2"}]))
    assert checked == {
        "customer": "Ada",
        "issued_on": "2026-12-05",
        "total": 12.5,
        "lines": [{"label": "tea", "qty": 2}],
        "email": None,
        "paid": None,
    }


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"customer": None}, "$.customer"),
        ({"issued_on": "5 December"}, "$.issued_on"),
        ({"total": -1}, "$.total"),
        ({"total": "twelve"}, "$.total"),
        ({"email": "not an address"}, "$.email"),
        ({"lines": [{"label": "x" * 11, "qty": 1}]}, "$.lines[0].label"),
        ({"lines": [{"label": "a", "qty": "two"}]}, "$.lines[0].qty"),
        ({"lines": [{"label": "a", "qty": 1}] * 4}, "$.lines"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_data_names_the_field(changes: dict[str, object], where: str) -> None:
    with pytest.raises(RenderError) as raised:
        validate_fields(SCHEMA, good(**changes))
    assert raised.value.kind == "fields"
    assert where in str(raised.value)


def test_a_missing_required_field_is_named() -> None:
    data = good()
    del data["customer"]
    with pytest.raises(RenderError, match="customer"):
        validate_fields(SCHEMA, data)


def test_data_must_be_an_object() -> None:
    with pytest.raises(RenderError, match="JSON object"):
        validate_fields(SCHEMA, ["not", "a", "mapping"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ([{"name": "a"}, {"name": "a"}], "duplicate"),
        ([{"name": "1abc"}], "name"),
        ([{"name": "rows", "type": "list"}], "needs `items`"),
        ([{"name": "n", "type": "integer", "format": "email"}], "strings only"),
        (
            [
                {
                    "name": "rows",
                    "type": "list",
                    "items": [{"name": "x", "type": "list", "items": [{"name": "y"}]}],
                }
            ],
            "scalars",
        ),
        ([{"name": "a", "type": "money"}], "type"),
        ([{"name": "a", "colour": "red"}], "colour"),
    ],
)
def test_bad_schemas_are_refused_with_the_reason(
    schema: list[dict[str, object]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_schema(schema)
    with pytest.raises(RenderError, match=message):
        validate_fields(schema, {})


def test_examples_fill_a_preview() -> None:
    schema = parse_schema(
        [
            {"name": "who", "example": "Ada"},
            {
                "name": "rows",
                "type": "list",
                "items": [{"name": "n", "type": "integer", "example": 3}],
            },
        ]
    )
    assert example_fields(schema) == {"who": "Ada", "rows": [{"n": 3}]}
    assert validate_fields(schema, example_fields(schema)) == {"who": "Ada", "rows": [{"n": 3}]}


def test_an_integer_field_with_fractional_bounds_takes_the_integers_inside_them() -> None:
    """Bounds are stored as numbers (1 reads back as 1.0); an integer field's are rounded inward,
    since msgspec refuses a float bound on an int (a TypeError, not a clear error, that hid
    behind typing's cache of an equal ``Annotated[int, Meta(ge=1)]`` built elsewhere)."""
    schema = [{"name": "quantity", "type": "integer", "minimum": 1.5, "maximum": 9.5}]
    assert validate_fields(schema, {"quantity": "2"}) == {"quantity": 2}
    for bad in (1, 10):
        with pytest.raises(RenderError, match="quantity"):
            validate_fields(schema, {"quantity": bad})
