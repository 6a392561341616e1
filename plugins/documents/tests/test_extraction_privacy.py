"""Data rights over the extraction tables: a person's export holds the extractions they
started and their pages; erasure removes that text and keeps the tenant's record of the work."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient
from processing_fixtures import pdf_from_pages
from test_documents_demo_privacy import login
from test_extraction_routes import EXTRACTIONS, _upload

from backplane.testing import SeededTenant, seed_tenant


def _entries(content: bytes) -> dict[str, list[dict[str, Any]]]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {
            name: [json.loads(line) for line in archive.read(name).splitlines()]
            for name in archive.namelist()
            if name.startswith("documents/documents_extraction")
        }


def test_a_persons_extractions_are_exported_then_erased(
    backplane_client: TestClient[Litestar],
    backplane_tenant: SeededTenant,
    backplane_plugins: Any,
) -> None:
    client = backplane_client
    person = seed_tenant(backplane_plugins, "elsewhere")
    joined = client.post("/api/tenant/members", json={"email": person.email, "role": "member"})
    assert joined.status_code == 201, joined.text
    as_person = login(client, person.email, backplane_tenant.slug)
    secret = ["Patient: Ada Lovelace", "Diagnosis: private"]
    theirs = client.post(
        EXTRACTIONS,
        files={"file": ("theirs.pdf", pdf_from_pages([secret]))},
        headers=as_person,
    ).json()
    mine = _upload(client, pdf_from_pages([["the owner's own"]]), "mine.pdf").json()

    exported = client.post("/api/privacy/export", json={"user_id": str(person.user_id)})
    assert exported.status_code == 200, exported.text
    entries = _entries(exported.content)
    assert [e["id"] for e in entries["documents/documents_extractions.jsonl"]] == [theirs["id"]]
    pages = entries["documents/documents_extraction_pages.jsonl"]
    assert [p["text"] for p in pages] == ["\n".join(secret)]

    erased = client.post("/api/privacy/erase", json={"user_id": str(person.user_id)})
    assert erased.status_code == 200, erased.text
    kept = client.get(f"{EXTRACTIONS}/{theirs['id']}").json()
    assert (kept["text"], kept["name"], kept["pages"]) == ([], "(erased)", 1)
    assert client.get(f"{EXTRACTIONS}/{mine['id']}").json()["text"] == mine["text"]
    again = client.post("/api/privacy/export", json={"email": person.email})
    assert again.status_code == 200, again.text
    assert _entries(again.content) == {}
