"""Rules-based structured extraction into a template's field schema."""

from __future__ import annotations

import pytest

from backplane_documents.fields import parse_schema
from backplane_documents.processing.fields import extract_fields
from backplane_documents.processing.results import Extraction, PageText
from backplane_documents.processing.rules import parse_rules

TEXT = (
    "ACME Ltd\n"
    "Invoice number: INV-2024-0042\n"
    "Date of issue: 14 March 2024\n"
    "Customer\n"
    "Ada Lovelace\n"
    "Total amount due: 1,234.56 EUR\n"
    "Paid: no\n"
    "Contact: billing@acme.example"
)
TABLE = [
    ["Item", "Qty", "Unit price"],
    ["Widget", "2", "3.50"],
    ["Gadget", "1", "10.00"],
    ["", "", ""],
]
DOCUMENT = Extraction(
    media_type="application/pdf",
    pages=[
        PageText(number=1, text=TEXT, method="text-layer"),
        PageText(number=2, text="Reference: P2-REF\nItem\tQty", method="docx", tables=[TABLE]),
    ],
)
SCHEMA = parse_schema(
    [
        {"name": "number", "type": "string"},
        {"name": "issued", "type": "date"},
        {"name": "customer", "type": "string"},
        {"name": "total", "type": "number", "minimum": 0},
        {"name": "paid", "type": "boolean"},
        {"name": "email", "type": "string", "format": "email"},
        {"name": "first_qty", "type": "integer"},
        {"name": "reference", "type": "string", "required": False},
        {
            "name": "lines",
            "type": "list",
            "items": [
                {"name": "item", "type": "string"},
                {"name": "qty", "type": "integer", "minimum": 1},
                {"name": "price", "type": "number", "label": "Unit price"},
            ],
        },
    ]
)


def test_every_kind_of_rule_finds_typed_values() -> None:
    rules = parse_rules(
        {
            "number": {"kind": "anchor", "anchor": "Invoice number:"},
            "issued": {"kind": "anchor", "anchor": "date of issue", "date_format": "%d %B %Y"},
            "customer": {"kind": "anchor", "anchor": "Customer"},
            "total": {"kind": "regex", "pattern": r"Total amount due:\s*(.+)"},
            "paid": {"kind": "anchor", "anchor": "Paid:", "until": "word"},
            "email": {"kind": "regex", "pattern": r"(?P<mail>\S+@\S+)", "group": "mail"},
            "first_qty": {"kind": "table", "row": 1, "column": "qty"},
            "reference": {"kind": "anchor", "anchor": "Reference:", "page": 2},
            "lines": {"kind": "table"},
        }
    )
    result = extract_fields(DOCUMENT, rules, SCHEMA)
    assert result.errors == {}
    assert result.values == {
        "number": "INV-2024-0042",
        "issued": "2024-03-14",
        "customer": "Ada Lovelace",
        "total": 1234.56,
        "paid": False,
        "email": "billing@acme.example",
        "first_qty": 2,
        "reference": "P2-REF",
        "lines": [
            {"item": "Widget", "qty": 2, "price": 3.5},
            {"item": "Gadget", "qty": 1, "price": 10.0},
        ],
    }


def test_each_field_gets_its_own_error() -> None:
    rules = parse_rules(
        {
            "number": {"kind": "anchor", "anchor": "Order number:"},
            "issued": {"kind": "anchor", "anchor": "Date of issue:"},
            "customer": {"kind": "regex", "pattern": "ACME", "occurrence": 2},
            "total": {"kind": "anchor", "anchor": "Customer"},
            "paid": {"kind": "anchor", "anchor": "Invoice number:"},
            "email": {"kind": "anchor", "anchor": "Customer"},
            "first_qty": {"kind": "table", "table": 3, "row": 0, "column": 0},
            "reference": {"kind": "anchor", "anchor": "Nowhere"},
            "lines": {"kind": "table", "columns": {"item": "Item", "qty": "Qty", "price": 9}},
        }
    )
    result = extract_fields(DOCUMENT, rules, SCHEMA)
    assert result.values == {"reference": None}  # optional and absent: None, no error
    errors = result.errors
    assert set(errors) == {
        "number", "issued", "customer", "total", "paid", "email", "first_qty", "lines"
    }  # fmt: skip
    assert "'Order number:' was found 0 time(s)" in errors["number"]
    assert "date" in errors["issued"].lower()
    assert "occurrence 2" in errors["customer"]
    assert "number" in errors["total"].lower() or "float" in errors["total"].lower()
    assert "bool" in errors["paid"].lower()
    assert "email" in errors["email"] or "pattern" in errors["email"]
    assert "1 table(s); table 3 asked" in errors["first_qty"]
    assert "price" in errors["lines"] or "Unit" in errors["lines"]


def test_required_fields_without_rules_are_reported() -> None:
    result = extract_fields(DOCUMENT, {}, SCHEMA)
    assert result.values == {}
    assert set(result.errors) == {spec.name for spec in SCHEMA if spec.required}


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"x": {"kind": "regex"}}, "pattern"),
        ({"x": {"kind": "nope", "anchor": "a"}}, "kind"),
        ({"x": {"kind": "anchor", "anchor": "a", "extra": 1}}, "extra"),
        ([1], "object"),
    ],
)
def test_bad_rules_are_refused(raw: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_rules(raw)


def test_rules_for_fields_the_template_lacks_are_refused() -> None:
    rules = parse_rules({"ghost": {"kind": "anchor", "anchor": "x"}})
    with pytest.raises(ValueError, match="ghost"):
        extract_fields(DOCUMENT, rules, SCHEMA)


def test_a_catastrophic_pattern_is_stopped_and_reported() -> None:
    document = Extraction(
        media_type="application/pdf",
        pages=[PageText(number=1, text="x" * 50_000, method="text-layer")],
    )
    schema = parse_schema([{"name": "number", "type": "string"}])
    rules = parse_rules({"number": {"kind": "regex", "pattern": "(x+x+)+y"}})
    result = extract_fields(document, rules, schema)  # without the limit: hours
    assert "was stopped" in result.errors["number"]


def test_invalid_regex_is_a_field_error() -> None:
    schema = parse_schema([{"name": "number", "type": "string"}])
    result = extract_fields(
        DOCUMENT, parse_rules({"number": {"kind": "regex", "pattern": "("}}), schema
    )
    assert "invalid regular expression" in result.errors["number"]
