"""Demo data (``backplane demo seed``) and the data-rights hooks (a tenant's and a person's
export, a person's erasure)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

from documents_helpers import backplane, docx_text
from litestar import Litestar
from litestar.testing import TestClient
from pypdf import PdfReader

from backplane.testing import TEST_PASSWORD, SeededTenant, seed_tenant

TEMPLATES = "/api/documents/templates"
TABLE_NAMES = ("documents_templates", "documents_template_versions", "documents_documents")


def test_demo_seed_gives_templates_of_every_engine_that_render(
    backplane_anonymous_client: TestClient[Litestar], backplane_environ: dict[str, str]
) -> None:
    seeded = backplane(backplane_environ, "demo", "seed")
    assert seeded.returncode == 0, seeded.stderr
    key = re.search(r"API key \(shown once\): (\S+)", seeded.stdout)
    assert key is not None, seeded.stdout
    client = backplane_anonymous_client
    client.headers["Authorization"] = f"Bearer {key.group(1)}"
    templates = client.get(TEMPLATES).json()
    assert {(t["name"], t["engine"]) for t in templates} == {
        ("Invoice", "typst"),
        ("Invoice (HTML)", "html"),
        ("Certificate of completion", "typst"),
        ("Letter", "docx"),
    }
    for template in templates:
        url = f"{TEMPLATES}/{template['id']}"
        preview = client.post(f"{url}/preview", json={})
        assert preview.status_code == 200, (template["name"], preview.text)
        examples = {f["name"]: f["example"] for f in template["fields"] if f["type"] != "list"}
        examples |= {
            f["name"]: [{i["name"]: i["example"] for i in f["items"]}]
            for f in template["fields"]
            if f["type"] == "list"
        }
        made = client.post(f"{url}/render", json={"fields": examples})
        assert made.status_code == 201, (template["name"], made.text)
        content = client.get(made.json()["download_url"]).content
        if template["engine"] == "typst":
            assert len(PdfReader(io.BytesIO(content)).pages) == made.json()["pages"]
        elif template["engine"] == "docx":
            assert "Dear Alan Turing," in docx_text(content)
        else:
            assert b"INV-2026-0042" in content
    again = backplane(backplane_environ, "demo", "seed")
    assert again.returncode == 0, again.stderr
    assert len(client.get(TEMPLATES).json()) == 4  # seeded once per database


def login(client: TestClient[Litestar], email: str, tenant: str) -> dict[str, str]:
    answer = client.post(
        "/api/auth/login", json={"email": email, "password": TEST_PASSWORD, "tenant": tenant}
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_export_and_erasure_of_a_person(
    backplane_client: TestClient[Litestar],
    backplane_tenant: SeededTenant,
    backplane_plugins: Any,
) -> None:
    client = backplane_client
    person = seed_tenant(backplane_plugins, "elsewhere")  # a user with a password
    joined = client.post("/api/tenant/members", json={"email": person.email, "role": "member"})
    assert joined.status_code == 201, joined.text
    as_person = login(client, person.email, backplane_tenant.slug)
    theirs = client.post(
        TEMPLATES, json={"name": "theirs", "source": "#1", "fields": []}, headers=as_person
    ).json()
    made = client.post(f"{TEMPLATES}/{theirs['id']}/render", json={}, headers=as_person)
    assert made.status_code == 201, made.text
    mine = client.post(TEMPLATES, json={"name": "mine", "source": "#2", "fields": []})
    assert mine.status_code == 201, mine.text

    exported = client.post("/api/privacy/export", json={"user_id": str(person.user_id)})
    assert exported.status_code == 200, exported.text
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        entries = {
            name: [json.loads(line) for line in archive.read(name).splitlines()]
            for name in archive.namelist()
            if name.startswith("documents/")
        }
    templates = entries["documents/documents_templates.jsonl"]
    assert [t["id"] for t in templates] == [theirs["id"]]  # not "mine": the owner's key made it
    assert len(entries["documents/documents_template_versions.jsonl"]) == 1
    assert [d["id"] for d in entries["documents/documents_documents.jsonl"]] == [made.json()["id"]]

    erased = client.post("/api/privacy/erase", json={"user_id": str(person.user_id)})
    assert erased.status_code == 200, erased.text
    report = erased.json()["plugins"]["documents"]
    assert {k: report[k] for k in TABLE_NAMES} == {
        "documents_templates": 1,
        "documents_template_versions": 1,
        "documents_documents": 1,
    }
    assert report.get("documents_documents_deleted", 0) == 0  # none was about them
    # the tenant keeps its templates and documents, without their author
    names = {t["name"] for t in client.get(TEMPLATES).json()}
    assert names == {"theirs", "mine"}
    assert client.get(made.json()["download_url"]).status_code == 200
    again = client.post("/api/privacy/export", json={"email": person.email})
    assert again.status_code == 200, again.text
    with zipfile.ZipFile(io.BytesIO(again.content)) as archive:
        leftover = {
            n: archive.read(n).strip() for n in archive.namelist() if n.startswith("documents/")
        }
    assert set(leftover.values()) <= {b""}, leftover  # nothing of the plugin's names them now


def test_documents_about_a_person_are_exported_and_erased_with_them(
    backplane_client: TestClient[Litestar],
) -> None:
    client = backplane_client
    template = client.post(
        TEMPLATES,
        json={
            "name": "certificate",
            "source": "#let d = json(bytes(sys.inputs.data))\n#d.who",
            "fields": [{"name": "who"}],
        },
    ).json()
    url = f"{TEMPLATES}/{template['id']}/render"
    about = client.post(
        url, json={"fields": {"who": "Grace"}, "subject_email": "Grace@Example.org"}
    ).json()
    other = client.post(url, json={"fields": {"who": "Alan"}}).json()
    assert about["subject_email"] == "grace@example.org"
    assert (
        client.post(url, json={"fields": {"who": "x"}, "subject_email": "nope"}).status_code == 400
    )

    exported = client.post("/api/privacy/export", json={"email": "grace@example.org"})
    assert exported.status_code == 200, exported.text
    content = client.get(about["download_url"]).content
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        rows = [
            json.loads(x) for x in archive.read("documents/documents_documents.jsonl").splitlines()
        ]
        assert [r["id"] for r in rows] == [about["id"]]
        stored = archive.read(f"documents/files/about/{about['id']}/{about['name']}")
    assert stored == content

    erased = client.post("/api/privacy/erase", json={"email": "grace@example.org"})
    assert erased.status_code == 200, erased.text
    assert erased.json()["plugins"]["documents"] == {"documents_documents_deleted": 1}
    assert client.get(f"/api/documents/documents/{about['id']}").status_code == 404
    assert client.get(f"/api/files/{about['file_id']}").status_code == 404
    assert client.get(other["download_url"]).status_code == 200
