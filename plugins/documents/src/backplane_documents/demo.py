"""Demo templates seeded by ``backplane demo seed``: an invoice (typst, and HTML), a certificate
of completion (typst) and a letter (DOCX), each with a field schema whose examples make the
preview work at once. The sources are package data (``demo_templates/``); the letter's .docx
is built here with python-docx, so that no binary file needs reviewing."""

from __future__ import annotations

import io
from importlib.resources import files
from typing import Any

from backplane_documents.templates import TemplateIn, create_template

LINE_ITEMS: list[dict[str, Any]] = [
    {"name": "description", "example": "Consulting"},
    {"name": "quantity", "type": "integer", "minimum": 0, "example": 2},
    {"name": "unit_price", "type": "number", "minimum": 0, "example": 450.0},
]
INVOICE_FIELDS: list[dict[str, Any]] = [
    {"name": "number", "example": "INV-2026-0042"},
    {"name": "issued_on", "type": "date", "example": "2026-12-05"},
    {"name": "customer", "example": "Ada Lovelace & Co <ada@example.org>"},
    {"name": "email", "format": "email", "required": False, "example": "ada@example.org"},
    {"name": "currency", "required": False, "max_length": 3, "example": "EUR"},
    {"name": "lines", "type": "list", "items": LINE_ITEMS, "max_items": 200},
]
CERTIFICATE_FIELDS: list[dict[str, Any]] = [
    {"name": "recipient", "example": "Grace Hopper"},
    {"name": "course", "example": "Compilers for everyone"},
    {"name": "completed_on", "type": "date", "example": "2026-11-30"},
    {"name": "hours", "type": "integer", "minimum": 1, "required": False, "example": 12},
]
LETTER_FIELDS: list[dict[str, Any]] = [
    {"name": "recipient", "example": "Alan Turing"},
    {"name": "address", "example": "Bletchley Park, Milton Keynes"},
    {"name": "sent_on", "type": "date", "example": "2026-12-05"},
    {"name": "body", "max_length": 5000, "example": "Thank you for your order."},
    {"name": "sender", "example": "The Backplane team"},
]


def demo_source(name: str) -> str:
    """A shipped demo template's text."""
    return (files(__package__) / "demo_templates" / name).read_text(encoding="utf-8")


def letter_docx() -> bytes:
    """The demo letter: a Word document holding Jinja2 tags for docxtpl."""
    from docx import Document

    document = Document()
    document.add_paragraph("{{ sent_on }}")
    document.add_paragraph("{{ recipient }}")
    document.add_paragraph("{{ address }}")
    document.add_paragraph("Dear {{ recipient }},")
    document.add_paragraph("{{ body }}")
    document.add_paragraph("Kind regards,")
    document.add_paragraph("{{ sender }}")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def demo_templates() -> list[TemplateIn]:
    """The demo templates, as the API would receive them."""
    import base64

    return [
        TemplateIn(
            name="Invoice",
            engine="typst",
            description="An invoice with line items and a total (PDF)",
            source=demo_source("invoice.typ"),
            fields=INVOICE_FIELDS,
        ),
        TemplateIn(
            name="Invoice (HTML)",
            engine="html",
            description="The invoice as a web page",
            source=demo_source("invoice.html"),
            fields=INVOICE_FIELDS,
        ),
        TemplateIn(
            name="Certificate of completion",
            engine="typst",
            description="A landscape certificate (PDF)",
            source=demo_source("certificate.typ"),
            fields=CERTIFICATE_FIELDS,
        ),
        TemplateIn(
            name="Letter",
            engine="docx",
            description="A business letter (Word)",
            source_base64=base64.b64encode(letter_docx()).decode("ascii"),
            fields=LETTER_FIELDS,
        ),
    ]


async def seed(kernel: Any) -> dict[str, str]:
    """The demo tenant's templates (``seed_demo_data``)."""
    settings = kernel.plugin_settings
    for template in demo_templates():
        await create_template(kernel.db, template, settings, None)
    return {
        "templates": "GET /api/documents/templates, then POST /api/documents/templates/{id}/render"
    }
