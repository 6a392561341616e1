"""Acceptance 4: tenant B cannot see or touch A's templates or documents, on SQLite (the
session's tenant filter) and on PostgreSQL (reached as the application role, row-level security
on); usage equals the documents produced; a spent quota stops generation with 429, also when
requests race for the last unit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane.testing import CHEAP_PASSWORD_HASHING, SeededTenant, seed_tenant, set_quota, usage_of

TEMPLATES = "/api/documents/templates"
DOCUMENTS = "/api/documents/documents"
HELLO = "#let d = json(bytes(sys.inputs.data))\nHello #d.name"
GENERATED, PAGES = "documents.generated", "documents.pages"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    environ = {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "documents",
        **CHEAP_PASSWORD_HASHING,
    }
    if request.param == "postgres":
        environ |= request.getfixturevalue("backplane_postgres_database")
    return environ


def make_template(client: TestClient[Litestar], name: str = "hello", **extra: Any) -> str:
    body = {"name": name, "source": HELLO, "fields": [{"name": "name"}], **extra}
    created = client.post(TEMPLATES, json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def render(client: TestClient[Litestar], template_id: str, name: str = "Ada", **kw: Any) -> Any:
    return client.post(f"{TEMPLATES}/{template_id}/render", json={"fields": {"name": name}}, **kw)


def state(client: TestClient[Litestar], headers: dict[str, str] | None = None) -> dict[str, Any]:
    kw = {"headers": headers} if headers else {}
    return {
        "templates": client.get(TEMPLATES, **kw).json(),
        "documents": client.get(DOCUMENTS, **kw).json(),
        "files": client.get("/api/files", **kw).json(),
    }


def test_tenant_b_cannot_see_or_touch_a_templates_or_documents(
    backplane_client: TestClient[Litestar], backplane_plugins: Any
) -> None:
    client = backplane_client
    template_id = make_template(client)
    document = render(client, template_id).json()
    before = state(client)
    b = seed_tenant(backplane_plugins, "globex").headers
    url, doc_url = f"{TEMPLATES}/{template_id}", f"{DOCUMENTS}/{document['id']}"

    assert state(client, b) == {"templates": [], "documents": [], "files": []}
    attempts = [
        ("GET", url, None),
        ("PUT", url, {"source": "#1"}),
        ("DELETE", url, None),
        ("GET", f"{url}/versions", None),
        ("GET", f"{url}/versions/1", None),
        ("POST", f"{url}/preview", {}),
        ("POST", f"{url}/render", {"fields": {"name": "Mallory"}}),
        ("GET", doc_url, None),
        ("GET", f"{doc_url}/content", None),
        ("DELETE", doc_url, None),
        ("GET", f"/api/files/{document['file_id']}", None),
        ("GET", f"/api/files/{document['file_id']}/content", None),
    ]
    for method, path, body in attempts:
        kwargs: dict[str, Any] = {"headers": b}
        if body is not None:
            kwargs["json"] = body
        answer = client.request(method, path, **kwargs)
        assert answer.status_code == 404, (method, path, answer.status_code, answer.text)
    assert client.get(TEMPLATES, params={"after": template_id}, headers=b).status_code == 404
    assert client.get(DOCUMENTS, params={"template_id": template_id}, headers=b).json() == []
    # B may use A's template name for its own: names are per tenant
    mine = client.post(TEMPLATES, json={"name": "hello", "source": "#1", "fields": []}, headers=b)
    assert mine.status_code == 201, mine.text
    assert state(client) == before
    assert usage_of(client, "globex", GENERATED) == 0


def test_usage_equals_documents_produced(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    short = make_template(client)
    long = make_template(
        client, name="long", source="#for i in range(3) [page #pagebreak()]", fields=[]
    )
    made = [render(client, short, f"n{n}") for n in range(3)]
    made.append(client.post(f"{TEMPLATES}/{long}/render", json={}))
    assert [m.status_code for m in made] == [201] * 4
    # failures are not counted: bad fields, a failing template
    assert client.post(f"{TEMPLATES}/{short}/render", json={"fields": {}}).status_code == 400
    broken = make_template(client, name="broken", source='#read("x")', fields=[])
    assert client.post(f"{TEMPLATES}/{broken}/render", json={}).status_code == 422
    documents = client.get(DOCUMENTS).json()
    assert len(documents) == 4
    assert usage_of(client, backplane_tenant, GENERATED) == 4
    assert usage_of(client, backplane_tenant, PAGES) == sum(d["pages"] for d in documents) == 7


def test_a_spent_quota_stops_generation_with_429(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    template_id = make_template(client)
    set_quota(client, backplane_tenant, GENERATED, 2, hard=True)
    statuses = [render(client, template_id, f"n{n}").status_code for n in range(3)]
    assert statuses == [201, 201, 429]
    refused = render(client, template_id)
    assert refused.status_code == 429
    assert refused.json()["meter"] == GENERATED
    assert "Retry-After" in refused.headers
    assert len(client.get(DOCUMENTS).json()) == 2
    assert len(client.get("/api/files").json()) == 2  # nothing of the refused ones was stored
    assert usage_of(client, backplane_tenant, GENERATED) == 2
    # the preview is not generation: it still works
    assert client.post(f"{TEMPLATES}/{template_id}/preview", json={}).status_code in (200, 400)


def test_renders_racing_for_the_last_of_a_quota(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    template_id = make_template(client)
    set_quota(client, backplane_tenant, GENERATED, 3, hard=True)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda n: render(client, template_id, f"n{n}"), range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 3 + [429] * 5, [a.text for a in answers]
    assert len(client.get(DOCUMENTS).json()) == 3
    assert len(client.get("/api/files").json()) == 3
    assert usage_of(client, backplane_tenant, GENERATED) == 3


def test_edits_at_once_make_consecutive_versions(backplane_client: TestClient[Litestar]) -> None:
    client = backplane_client
    template_id = make_template(client)
    url = f"{TEMPLATES}/{template_id}"
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda n: client.put(url, json={"source": f"#{n}"}), range(6)))
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    numbers = [v["number"] for v in client.get(f"{url}/versions").json()]
    assert numbers == list(range(1, 8))
    assert client.get(url).json()["current_version"] == 7


def test_creates_racing_for_one_name_make_one_template(
    backplane_client: TestClient[Litestar],
) -> None:
    client = backplane_client
    body = {"name": "contested", "source": HELLO, "fields": [{"name": "name"}]}
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: client.post(TEMPLATES, json=body), range(6)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * 5, [a.text for a in answers]
    assert [t["name"] for t in client.get(TEMPLATES).json()] == ["contested"]
