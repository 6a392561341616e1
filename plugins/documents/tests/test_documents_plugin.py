"""Plugin citizenship: its OpenAPI tag, its settings validated at start, its meters and
permissions declared, its tables covered by the data-rights hooks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from documents_helpers import backplane
from litestar import Litestar
from litestar.testing import TestClient

from backplane.testing import CHEAP_PASSWORD_HASHING


def test_every_route_is_tagged_documents(backplane_client: TestClient[Litestar]) -> None:
    paths = backplane_client.get("/schema/openapi.json").json()["paths"]
    ours = {p: ops for p, ops in paths.items() if p.startswith("/api/documents/")}
    assert len(ours) >= 9, sorted(ours)  # templates, documents, bulk jobs, ...
    for path, operations in ours.items():
        for method, operation in operations.items():
            if isinstance(operation, dict) and "responses" in operation:
                assert "documents" in operation.get("tags", []), (method, path)


def test_meters_and_permissions_are_declared() -> None:
    from backplane_documents import plugin

    declared: list[Any] = []
    plugin.register_meters(lambda *items: declared.extend(items))
    assert {(m.code, m.aggregation) for m in declared} == {
        ("documents.generated", "count"),
        ("documents.pages", "sum"),
    }
    permissions: list[Any] = []
    plugin.register_permissions(lambda *items: permissions.extend(items))
    assert {p.code for p in permissions} == {"documents.read", "documents.write", "documents.admin"}


def test_bad_settings_skip_the_plugin_with_the_reason(tmp_path: Path) -> None:
    environ = {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "documents",
        "BACKPLANE_PLUGIN__DOCUMENTS__MAX_PAGES": "0",
        **CHEAP_PASSWORD_HASHING,
    }
    listed = backplane(environ, "plugins", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    record = next(r for r in json.loads(listed.stdout) if r["name"] == "documents")
    assert record["status"] != "loaded"
    assert "BACKPLANE_PLUGIN__DOCUMENTS__MAX_PAGES: Expected `int` >= 1" in record["reason"]
