"""``/api/documents/extractions`` and ``/api/documents/extraction-jobs`` end to end: uploads
and stored files, fields by rules, metering and quotas, bad input, tenant isolation."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import TestClient
from processing_fixtures import docx_bytes, pdf_from_pages

from backplane.testing import SeededTenant, set_quota, usage_of

EXTRACTIONS = "/api/documents/extractions"
JOBS = "/api/documents/extraction-jobs"
METER = "documents.pages_processed"
INVOICE = ["Invoice number: INV-77", "Total: 1,250.00 EUR", "Customer: Ada Lovelace"]
PDF_TYPE = "application/pdf"


def _upload(client: TestClient[Litestar], data: bytes, name: str, **form: str) -> Any:
    return client.post(
        EXTRACTIONS, files={"file": (name, data, "application/octet-stream")}, data=form
    )


def _store(client: TestClient[Litestar], data: bytes, name: str) -> str:
    stored = client.post(f"/api/files?name={name}", content=data)
    assert stored.status_code == 201, stored.text
    return str(stored.json()["id"])


def _invoice_template(client: TestClient[Litestar]) -> str:
    created = client.post(
        "/api/documents/templates",
        json={
            "name": "invoice-in",
            "source": "#let d = json(bytes(sys.inputs.data))\n#d.number",
            "fields": [
                {"name": "number"},
                {"name": "total", "type": "number"},
                {"name": "customer"},
                {"name": "due", "type": "date", "required": False},
            ],
        },
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


RULES = {
    "number": {"kind": "anchor", "anchor": "Invoice number:"},
    "total": {"kind": "regex", "pattern": r"Total:\s*([\d,.]+)"},
    "customer": {"kind": "anchor", "anchor": "Customer:"},
    "due": {"kind": "anchor", "anchor": "Due:"},
}


def test_an_uploaded_pdf_is_extracted_stored_and_metered(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    pages = [INVOICE, ["Second page", "with two lines"]]
    answer = _upload(backplane_client, pdf_from_pages(pages), "invoice.pdf")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["status"], body["pages"], body["media_type"]) == ("done", 2, PDF_TYPE)
    assert [p["text"] for p in body["text"]] == ["\n".join(lines) for lines in pages]
    assert {p["method"] for p in body["text"]} == {"text-layer"}
    shown = backplane_client.get(f"{EXTRACTIONS}/{body['id']}").json()
    assert shown["text"] == body["text"]
    assert backplane_client.get(f"/api/files/{body['file_id']}").json()["name"] == "invoice.pdf"
    assert usage_of(backplane_client, backplane_tenant, METER) == 2
    listed = backplane_client.get(EXTRACTIONS).json()
    assert [(e["id"], e["text"]) for e in listed] == [(body["id"], None)]


def test_a_stored_file_fills_a_templates_fields_by_rules(
    backplane_client: TestClient[Litestar],
) -> None:
    template_id = _invoice_template(backplane_client)
    file_id = _store(backplane_client, pdf_from_pages([INVOICE]), "in.pdf")
    answer = backplane_client.post(
        EXTRACTIONS, json={"file_id": file_id, "template_id": template_id, "rules": RULES}
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["fields"] == {
        "number": "INV-77",
        "total": 1250.0,
        "customer": "Ada Lovelace",
        "due": None,
    }
    assert body["field_errors"] == {}
    assert (body["template_id"], body["version_number"]) == (template_id, 1)
    # the same through a form upload, with rules as JSON text; a bad field is its own error
    rules = {**RULES, "total": {"kind": "anchor", "anchor": "Customer:"}}
    import json

    form = _upload(
        backplane_client, pdf_from_pages([INVOICE]), "x.pdf",
        template_id=template_id, rules=json.dumps(rules),
    )  # fmt: skip
    assert form.status_code == 201, form.text
    assert set(form.json()["field_errors"]) == {"total"}
    assert "Ada Lovelace" in form.json()["field_errors"]["total"]


def test_docx_uploads_give_text_and_tables(backplane_client: TestClient[Litestar]) -> None:
    data = docx_bytes(["Hello", "\f", "After the break"], table=[["A", "B"], ["1", "2"]])
    body = _upload(backplane_client, data, "t.docx").json()
    assert [(p["number"], p["text"], p["method"]) for p in body["text"]] == [
        (1, "Hello", "docx"),
        (2, "After the break\nA\tB\n1\t2", "docx"),
    ]
    assert body["text"][1]["tables"] == [[["A", "B"], ["1", "2"]]]


def test_bad_requests_are_refused_clearly(
    backplane_client: TestClient[Litestar],
    backplane_client_as: Any,
    backplane_tenant: SeededTenant,
) -> None:
    text = _upload(backplane_client, b"just some text\n", "notes.txt")
    assert text.status_code == 415, text.text
    assert "text/plain cannot be processed" in text.json()["detail"]
    broken = _upload(backplane_client, b"%PDF-1.7\n garbage", "bad.pdf")
    assert broken.status_code == 422
    assert "not a readable PDF" in broken.json()["detail"]
    no_file = backplane_client.post(EXTRACTIONS, files={"other": ("a", b"x")})
    assert no_file.status_code == 400
    assert "`file`" in no_file.json()["detail"]
    file_id = _store(backplane_client, pdf_from_pages([INVOICE]), "in.pdf")
    no_template = backplane_client.post(EXTRACTIONS, json={"file_id": file_id, "rules": RULES})
    assert no_template.status_code == 400
    assert "template_id" in no_template.json()["detail"]
    template_id = _invoice_template(backplane_client)
    ghost = backplane_client.post(
        EXTRACTIONS,
        json={"file_id": file_id, "template_id": template_id, "rules": {"ghost": RULES["number"]}},
    )
    assert ghost.status_code == 400
    assert "ghost" in ghost.json()["detail"]
    bad_rule = backplane_client.post(
        EXTRACTIONS,
        json={"file_id": file_id, "template_id": template_id, "rules": {"number": {"kind": "x"}}},
    )
    assert bad_rule.status_code == 400
    assert backplane_client.post(EXTRACTIONS, content=b"{not json").status_code == 400
    huge = backplane_client.post(EXTRACTIONS, content=b" " * (2 << 20))
    assert huge.status_code == 413
    assert "multipart" in huge.json()["detail"]
    missing = backplane_client.post(
        EXTRACTIONS, json={"file_id": "00000000-0000-4000-8000-000000000000"}
    )
    assert missing.status_code == 404
    viewer = backplane_client_as("viewer")
    assert _upload(viewer, pdf_from_pages([INVOICE]), "a.pdf").status_code == 403
    assert viewer.get(EXTRACTIONS).status_code == 200
    assert usage_of(backplane_client, backplane_tenant, METER) == 0


def test_a_spent_page_quota_answers_429_and_stores_nothing(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    set_quota(backplane_client, backplane_tenant, METER, 3)
    assert _upload(backplane_client, pdf_from_pages([["one"], ["two"]]), "a.pdf").status_code == 201
    refused = _upload(backplane_client, pdf_from_pages([["one"], ["two"]]), "b.pdf")
    assert refused.status_code == 429, refused.text
    assert len(backplane_client.get(EXTRACTIONS).json()) == 1
    assert usage_of(backplane_client, backplane_tenant, METER) == 2


def test_a_scanned_image_is_read_by_ocr_through_the_route(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    from processing_fixtures import png, scanned_image
    from rapidfuzz.distance import Levenshtein

    answer = _upload(backplane_client, png(scanned_image(INVOICE, dpi=150)), "scan.png")
    assert answer.status_code == 201, answer.text
    (page,) = answer.json()["text"]
    expected = "\n".join(INVOICE)
    assert page["method"] == "ocr"
    assert Levenshtein.distance(expected, page["text"]) / len(expected) < 0.05, page["text"]
    assert usage_of(backplane_client, backplane_tenant, METER) == 1
