"""Helpers of the certificate tests: the documents plugin's demo certificate template, created
for the tenant through the documents plugin's own API (as an admin would)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

CERTIFICATE = "Certificate of completion"
CERTIFICATE_FIELDS: list[dict[str, Any]] = [
    {"name": "recipient"},
    {"name": "course"},
    {"name": "completed_on", "type": "date"},
    {"name": "hours", "type": "integer", "minimum": 1, "required": False},
]


def certificate_template(client: Any, headers: dict[str, str] | None = None) -> str:
    """The tenant's "Certificate of completion" template (the documents plugin's demo source,
    read from its package data); its id."""
    source = (files("backplane_documents") / "demo_templates" / "certificate.typ").read_text()
    body = {"name": CERTIFICATE, "engine": "typst", "source": source, "fields": CERTIFICATE_FIELDS}
    kw: dict[str, Any] = {"headers": headers} if headers else {}
    made = client.post("/api/documents/templates", json=body, **kw)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])
